# plugins/augment/resize
pkglib_LTLIBRARIES += plugins/augment/resize/augment_resize.la
plugins_augment_resize_augment_resize_la_SOURCES = plugins/augment/resize/resize.c plugins/augment/aug_common.h
plugins_augment_resize_augment_resize_la_LDFLAGS = $(PLUGIN_LINK)
plugins_augment_resize_augment_resize_la_CFLAGS = $(AM_CFLAGS) -O3 $(EQM_VECT_CFLAGS)
