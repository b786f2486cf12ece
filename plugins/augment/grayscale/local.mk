# plugins/augment/grayscale
pkglib_LTLIBRARIES += plugins/augment/grayscale/augment_grayscale.la
plugins_augment_grayscale_augment_grayscale_la_SOURCES = plugins/augment/grayscale/grayscale.c plugins/augment/aug_common.h
plugins_augment_grayscale_augment_grayscale_la_LDFLAGS = $(PLUGIN_LINK)
plugins_augment_grayscale_augment_grayscale_la_CFLAGS = $(AM_CFLAGS) -O3 $(EQM_VECT_CFLAGS)
