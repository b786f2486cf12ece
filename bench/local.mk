# bench/: programs run on demand, never by make check. `make bench` builds them;
# `make bench-train-step` runs the ResNet-18-CIFAR training-step benchmark against
# PyTorch (see bench/README.md).
# (EXTRA_PROGRAMS starts empty in Makefile.am.)
include bench/shards.mk
include bench/loader.mk
# bench/resample: api->image->resample (AVX2, portable) against Pillow, per call.
EXTRA_PROGRAMS += bench/resample
bench_resample_SOURCES = bench/resample.c
bench_resample_CFLAGS = $(libeqmhost_la_CFLAGS)
bench_resample_LDADD = libeqmhost.la -lm
CLEANFILES += bench/resample
EXTRA_PROGRAMS += bench/train-step bench/conv-layers
bench_conv_layers_SOURCES = bench/conv_layers.c
bench_conv_layers_CFLAGS = $(libeqmhost_la_CFLAGS)
bench_conv_layers_LDADD = libeqmhost.la
CLEANFILES += bench/conv-layers
bench_train_step_SOURCES = bench/train_step.c bench/train_step_equimod.c
bench_train_step_CFLAGS = $(libeqmhost_la_CFLAGS)
bench_train_step_LDADD = libeqmhost.la
CLEANFILES += bench/train-step
EXTRA_DIST += bench/train_step_torch.py bench/train_step_equimod_torch.py bench/README.md \
	bench/step_floor.py bench/winograd_bf16_error.py

bench: bench/train-step bench/conv-layers bench/shards bench/loader bench/resample $(pkglib_LTLIBRARIES)
bench-train-step: bench
	EQM_SRCDIR='$(abs_top_srcdir)' ./bench/train-step \
	  --plugin-path '$(abs_top_builddir)/plugins/backbone/resnet/.libs' $(BENCH_ARGS)
# the whole SimCLR+EquiMod step: BENCH_ARGS='--setting paper' etc.
bench-train-step-equimod: bench
	EQM_SRCDIR='$(abs_top_srcdir)' ./bench/train-step equimod \
	  --plugin-path '$(abs_top_builddir)/plugin-dir' $(BENCH_ARGS)
# bench/scaling.sh: 1 rank x 2 threads vs 2 ranks x 1 thread (MPI, issue 13).
bench-scaling: all
	sh '$(abs_top_srcdir)/bench/scaling.sh' '$(abs_top_builddir)' $(BENCH_ARGS)
EXTRA_DIST += bench/scaling.sh bench/scaling_projection.py
.PHONY: bench bench-train-step bench-train-step-equimod bench-scaling
