# plugins/augment/horizontal_flip
pkglib_LTLIBRARIES += plugins/augment/horizontal_flip/augment_horizontal_flip.la
plugins_augment_horizontal_flip_augment_horizontal_flip_la_SOURCES = plugins/augment/horizontal_flip/horizontal_flip.c plugins/augment/aug_common.h
plugins_augment_horizontal_flip_augment_horizontal_flip_la_LDFLAGS = $(PLUGIN_LINK)
plugins_augment_horizontal_flip_augment_horizontal_flip_la_CFLAGS = $(AM_CFLAGS) -O3 $(EQM_VECT_CFLAGS)
