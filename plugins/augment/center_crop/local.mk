# plugins/augment/center_crop
pkglib_LTLIBRARIES += plugins/augment/center_crop/augment_center_crop.la
plugins_augment_center_crop_augment_center_crop_la_SOURCES = plugins/augment/center_crop/center_crop.c plugins/augment/aug_common.h
plugins_augment_center_crop_augment_center_crop_la_LDFLAGS = $(PLUGIN_LINK)
plugins_augment_center_crop_augment_center_crop_la_CFLAGS = $(AM_CFLAGS) -O3 $(EQM_VECT_CFLAGS)
