# plugins/augment/solarize
pkglib_LTLIBRARIES += plugins/augment/solarize/augment_solarize.la
plugins_augment_solarize_augment_solarize_la_SOURCES = plugins/augment/solarize/solarize.c plugins/augment/aug_common.h
plugins_augment_solarize_augment_solarize_la_LDFLAGS = $(PLUGIN_LINK)
plugins_augment_solarize_augment_solarize_la_CFLAGS = $(AM_CFLAGS) -O3 $(EQM_VECT_CFLAGS)
