# plugins/augment/gaussian_blur
pkglib_LTLIBRARIES += plugins/augment/gaussian_blur/augment_gaussian_blur.la
plugins_augment_gaussian_blur_augment_gaussian_blur_la_SOURCES = plugins/augment/gaussian_blur/gaussian_blur.c plugins/augment/aug_common.h
plugins_augment_gaussian_blur_augment_gaussian_blur_la_LDFLAGS = $(PLUGIN_LINK)
plugins_augment_gaussian_blur_augment_gaussian_blur_la_CFLAGS = $(AM_CFLAGS) -O3 $(EQM_VECT_CFLAGS)
