# host/loader: the batch queue: creation (loader.c), option tables (options.c), pipelines
# (pipeline.c), filling a batch (fill.c), the worker ring (ring.c), t constants and
# estimation (tconst.c), inspection (render.c); internal.h is what they share. The
# `views` and `tstats` commands are in host/cmd/views.c.
libeqmhost_la_SOURCES += \
	host/loader/loader.h \
	host/loader/internal.h \
	host/loader/loader.c \
	host/loader/options.c \
	host/loader/pipeline.c \
	host/loader/fill.c \
	host/loader/ring.c \
	host/loader/tconst.c \
	host/loader/render.c
# host/source: the sample sources below the loader (random access over a dataset plugin,
# streaming over tar shards, one sample picked) and the bad-row rule.
libeqmhost_la_SOURCES += \
	host/source/source.h \
	host/source/source.c \
	host/source/shard.c
