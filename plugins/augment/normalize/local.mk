# plugins/augment/normalize
pkglib_LTLIBRARIES += plugins/augment/normalize/augment_normalize.la
plugins_augment_normalize_augment_normalize_la_SOURCES = plugins/augment/normalize/normalize.c plugins/augment/aug_common.h
plugins_augment_normalize_augment_normalize_la_LDFLAGS = $(PLUGIN_LINK)
plugins_augment_normalize_augment_normalize_la_CFLAGS = $(AM_CFLAGS) -O3 $(EQM_VECT_CFLAGS)
