# bench/shards: shard read rate and decode + 3 views per core vs torchvision + PIL.
# (EXTRA_PROGRAMS starts empty in Makefile.am; every fragment adds with +=.)
# Built on demand only (`make bench/shards`), never by make check. Run:
#   EQUIMOD_DATA_DIR=/path/to/shared/data EQM_SRCDIR=$(srcdir) ./bench/shards [--seconds S]
EXTRA_PROGRAMS += bench/shards
bench_shards_SOURCES = bench/shards.c
bench_shards_CFLAGS = $(AM_CFLAGS) -O3 -ffast-math $(ARCHIVE_CFLAGS)
bench_shards_LDADD = libeqmhost.la
CLEANFILES += bench/shards
EXTRA_DIST += bench/shards_torchvision.py
