# host/: the equimod program. Core sources (CLI, config, loader of plugins, host services).
# The static convenience library libeqmhost.la holds everything but main.c, so that the
# Check suites link the very same code.
noinst_LTLIBRARIES += libeqmhost.la
libeqmhost_la_SOURCES = \
	host/core.h \
	host/api.c \
	host/commands.def \
	host/sections.h \
	host/params.c \
	host/registry.c \
	host/config.c \
	host/sections.c \
	host/resolve.c \
	host/cli.c \
	host/fsutil.h \
	host/fsutil.c \
	host/cmd/new.c \
	host/cmd/check.c \
	host/check/internal.h \
	host/check/common.c \
	host/check/augment.c \
	host/check/dataset.c \
	host/check/stream.c \
	host/check/module.c \
	host/cmd/train.c \
	host/cmd/export.c \
	host/cmd/views.c \
	host/cmd/shards.c \
	host/cmd/probe.c \
	host/eval/probe.h \
	host/eval/probe.c \
	host/eval/probe_out.c
libeqmhost_la_CFLAGS = $(AM_CFLAGS) $(OPENBLAS_CFLAGS) $(URING_CFLAGS) $(ARCHIVE_CFLAGS) \
	$(TURBOJPEG_CFLAGS) $(ZLIB_CFLAGS) $(INIH_CFLAGS) $(JANSSON_CFLAGS) $(PNG_CFLAGS)
libeqmhost_la_LIBADD = $(OPENBLAS_LIBS) $(URING_LIBS) $(ARCHIVE_LIBS) $(TURBOJPEG_LIBS) \
	$(ZLIB_LIBS) $(INIH_LIBS) $(JANSSON_LIBS) $(PNG_LIBS)

bin_PROGRAMS += equimod
equimod_SOURCES = host/main.c
equimod_CFLAGS = $(libeqmhost_la_CFLAGS)
equimod_LDADD = libeqmhost.la
