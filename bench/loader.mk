# bench/loader: loader throughput vs torchvision (run on demand: make bench/loader &&
# EQUIMOD_DATA_DIR=... EQM_BUILDDIR=$PWD bench/loader). Include from bench/local.mk.
EXTRA_PROGRAMS += bench/loader
bench_loader_SOURCES = bench/loader_bench.c
bench_loader_CFLAGS = $(AM_CFLAGS)
bench_loader_LDADD = libeqmhost.la
CLEANFILES += bench/loader
EXTRA_DIST += bench/loader_torchvision.py
