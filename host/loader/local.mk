# host/loader: file/archive services (io.c), the batch queue (loader.c), the `views` and
# `tstats` commands (views.c).
libeqmhost_la_SOURCES += \
	host/loader/loader.h \
	host/loader/io.c \
	host/loader/loader.c \
	host/loader/views.c
