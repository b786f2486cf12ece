# bench/loader: loader throughput vs torchvision, per core (run on demand, never in make check):
#   make bench/loader && EQUIMOD_DATA_DIR=/path/to/data EQM_BUILDDIR=$PWD bench/loader [SECONDS]
# Include from bench/local.mk (include bench/loader.mk).
EXTRA_PROGRAMS += bench/loader
CLEANFILES += bench/loader
bench_loader_SOURCES = bench/loader_bench.c
bench_loader_CFLAGS = $(AM_CFLAGS)
bench_loader_LDADD = libeqmhost.la
EXTRA_DIST += bench/loader_torchvision.py
