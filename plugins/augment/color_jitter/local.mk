# plugins/augment/color_jitter
pkglib_LTLIBRARIES += plugins/augment/color_jitter/augment_color_jitter.la
plugins_augment_color_jitter_augment_color_jitter_la_SOURCES = plugins/augment/color_jitter/color_jitter.c plugins/augment/aug_common.h
plugins_augment_color_jitter_augment_color_jitter_la_LDFLAGS = $(PLUGIN_LINK)
plugins_augment_color_jitter_augment_color_jitter_la_CFLAGS = $(AM_CFLAGS) -O3 $(EQM_VECT_CFLAGS)
