# host/shards: tar shard streaming (shard list, io_uring/pread reader, libarchive tar
# parsing, grouping, shuffle buffer), `equimod shards` writer. (The JPEG image services
# are in host/services.)
libeqmhost_la_SOURCES += \
	host/shards/shards.h \
	host/shards/shardlist.c \
	host/shards/reader.c \
	host/shards/stream.c \
	host/shards/writer.c
