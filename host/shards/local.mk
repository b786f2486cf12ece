# host/shards: tar shard streaming (shard list, io_uring/pread reader, libarchive tar
# parsing, grouping, shuffle buffer), JPEG image services, `equimod shards` writer.
# The libjpeg API (libjpeg62-turbo-dev, -ljpeg) gives partial/scaled decoding.
libeqmhost_la_SOURCES += \
	host/shards/shards.h \
	host/shards/image.c \
	host/shards/shardlist.c \
	host/shards/reader.c \
	host/shards/stream.c \
	host/shards/source.c \
	host/shards/writer.c
libeqmhost_la_LIBADD += -ljpeg
