# host/services: the service tables handed to plugins, beside host/api.c (which assembles
# eqm_host_api). image.c: api->image, JPEG header and decoding through libjpeg-turbo (the
# libjpeg API, libjpeg62-turbo-dev, -ljpeg, gives partial/scaled decoding); image_png.c:
# PNG through libpng and the JPEG-or-PNG entry points (ABI 1.3); resample.c:
# the one resampler (Pillow-exact, AVX2 passes) behind api->image->resample and
# crop_resize, which the augment plugins use; io.c: api->io (whole-file reads, gunzip,
# archive members).
libeqmhost_la_SOURCES += \
	host/services/image.c \
	host/services/image_png.h \
	host/services/image_png.c \
	host/services/resample.h \
	host/services/resample.c \
	host/services/io.c
libeqmhost_la_LIBADD += -ljpeg
