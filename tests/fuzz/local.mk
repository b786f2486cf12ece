# tests/fuzz: libFuzzer harnesses over the real host code, their seed corpora and the
# regression inputs of fixed findings (tests/fuzz/README.md).
#   make check          replays corpus/NAME/ and regress/NAME/ through each harness built
#                       with the normal compiler (tests/fuzz/replay_NAME)
#   make fuzz [FUZZ_SECONDS=N]   fuzzes each harness N seconds (default 60) with libFuzzer:
#                       in a clang build (configure CC=clang-14 --enable-fuzzing) directly,
#                       from any other build through a clang build folder fuzz-build/ made
#                       on first use
FUZZ_HARNESSES = config cifar shards jpeg checkpoint safetensors sweep
FUZZ_SECONDS = 60
FUZZ_COMMON = tests/fuzz/fuzz.h tests/fuzz/fuzz_util.c
FUZZ_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tests/fuzz \
	-DFUZZ_PLUGIN_DIR='"$(abs_top_builddir)/plugin-dir"'
FUZZ_CFLAGS = $(AM_CFLAGS) $(ZLIB_CFLAGS)
EXTRA_DIST += tests/fuzz/README.md tests/fuzz/run.sh tests/fuzz/corpus tests/fuzz/regress
# config
check_PROGRAMS += tests/fuzz/replay_config
TESTS += tests/fuzz/replay_config
tests_fuzz_replay_config_SOURCES = tests/fuzz/fuzz_config.c tests/fuzz/replay.c $(FUZZ_COMMON)
tests_fuzz_replay_config_CPPFLAGS = $(FUZZ_CPPFLAGS) -DFUZZ_NAME='"config"'
tests_fuzz_replay_config_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_replay_config_LDADD = libeqmhost.la
EXTRA_PROGRAMS += tests/fuzz/fuzz_config
tests_fuzz_fuzz_config_SOURCES = tests/fuzz/fuzz_config.c $(FUZZ_COMMON)
tests_fuzz_fuzz_config_CPPFLAGS = $(FUZZ_CPPFLAGS)
tests_fuzz_fuzz_config_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_config_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_config_LDADD = libeqmhost.la
# cifar
check_PROGRAMS += tests/fuzz/replay_cifar
TESTS += tests/fuzz/replay_cifar
tests_fuzz_replay_cifar_SOURCES = tests/fuzz/fuzz_cifar.c tests/fuzz/replay.c $(FUZZ_COMMON)
tests_fuzz_replay_cifar_CPPFLAGS = $(FUZZ_CPPFLAGS) -DFUZZ_NAME='"cifar"'
tests_fuzz_replay_cifar_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_replay_cifar_LDADD = libeqmhost.la
EXTRA_PROGRAMS += tests/fuzz/fuzz_cifar
tests_fuzz_fuzz_cifar_SOURCES = tests/fuzz/fuzz_cifar.c $(FUZZ_COMMON)
tests_fuzz_fuzz_cifar_CPPFLAGS = $(FUZZ_CPPFLAGS)
tests_fuzz_fuzz_cifar_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_cifar_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_cifar_LDADD = libeqmhost.la
# shards
check_PROGRAMS += tests/fuzz/replay_shards
TESTS += tests/fuzz/replay_shards
tests_fuzz_replay_shards_SOURCES = tests/fuzz/fuzz_shards.c tests/fuzz/replay.c $(FUZZ_COMMON)
tests_fuzz_replay_shards_CPPFLAGS = $(FUZZ_CPPFLAGS) -DFUZZ_NAME='"shards"'
tests_fuzz_replay_shards_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_replay_shards_LDADD = libeqmhost.la
EXTRA_PROGRAMS += tests/fuzz/fuzz_shards
tests_fuzz_fuzz_shards_SOURCES = tests/fuzz/fuzz_shards.c $(FUZZ_COMMON)
tests_fuzz_fuzz_shards_CPPFLAGS = $(FUZZ_CPPFLAGS)
tests_fuzz_fuzz_shards_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_shards_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_shards_LDADD = libeqmhost.la
# jpeg
check_PROGRAMS += tests/fuzz/replay_jpeg
TESTS += tests/fuzz/replay_jpeg
tests_fuzz_replay_jpeg_SOURCES = tests/fuzz/fuzz_jpeg.c tests/fuzz/replay.c $(FUZZ_COMMON)
tests_fuzz_replay_jpeg_CPPFLAGS = $(FUZZ_CPPFLAGS) -DFUZZ_NAME='"jpeg"'
tests_fuzz_replay_jpeg_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_replay_jpeg_LDADD = libeqmhost.la
EXTRA_PROGRAMS += tests/fuzz/fuzz_jpeg
tests_fuzz_fuzz_jpeg_SOURCES = tests/fuzz/fuzz_jpeg.c $(FUZZ_COMMON)
tests_fuzz_fuzz_jpeg_CPPFLAGS = $(FUZZ_CPPFLAGS)
tests_fuzz_fuzz_jpeg_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_jpeg_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_jpeg_LDADD = libeqmhost.la
# checkpoint
check_PROGRAMS += tests/fuzz/replay_checkpoint
TESTS += tests/fuzz/replay_checkpoint
tests_fuzz_replay_checkpoint_SOURCES = tests/fuzz/fuzz_checkpoint.c tests/fuzz/replay.c $(FUZZ_COMMON)
tests_fuzz_replay_checkpoint_CPPFLAGS = $(FUZZ_CPPFLAGS) -DFUZZ_NAME='"checkpoint"'
tests_fuzz_replay_checkpoint_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_replay_checkpoint_LDADD = libeqmhost.la
EXTRA_PROGRAMS += tests/fuzz/fuzz_checkpoint
tests_fuzz_fuzz_checkpoint_SOURCES = tests/fuzz/fuzz_checkpoint.c $(FUZZ_COMMON)
tests_fuzz_fuzz_checkpoint_CPPFLAGS = $(FUZZ_CPPFLAGS)
tests_fuzz_fuzz_checkpoint_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_checkpoint_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_checkpoint_LDADD = libeqmhost.la
# safetensors
check_PROGRAMS += tests/fuzz/replay_safetensors
TESTS += tests/fuzz/replay_safetensors
tests_fuzz_replay_safetensors_SOURCES = tests/fuzz/fuzz_safetensors.c tests/fuzz/replay.c $(FUZZ_COMMON)
tests_fuzz_replay_safetensors_CPPFLAGS = $(FUZZ_CPPFLAGS) -DFUZZ_NAME='"safetensors"'
tests_fuzz_replay_safetensors_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_replay_safetensors_LDADD = libeqmhost.la
EXTRA_PROGRAMS += tests/fuzz/fuzz_safetensors
tests_fuzz_fuzz_safetensors_SOURCES = tests/fuzz/fuzz_safetensors.c $(FUZZ_COMMON)
tests_fuzz_fuzz_safetensors_CPPFLAGS = $(FUZZ_CPPFLAGS)
tests_fuzz_fuzz_safetensors_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_safetensors_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_safetensors_LDADD = libeqmhost.la
# sweep
check_PROGRAMS += tests/fuzz/replay_sweep
TESTS += tests/fuzz/replay_sweep
tests_fuzz_replay_sweep_SOURCES = tests/fuzz/fuzz_sweep.c tests/fuzz/replay.c $(FUZZ_COMMON)
tests_fuzz_replay_sweep_CPPFLAGS = $(FUZZ_CPPFLAGS) -DFUZZ_NAME='"sweep"'
tests_fuzz_replay_sweep_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_replay_sweep_LDADD = libeqmhost.la
EXTRA_PROGRAMS += tests/fuzz/fuzz_sweep
tests_fuzz_fuzz_sweep_SOURCES = tests/fuzz/fuzz_sweep.c $(FUZZ_COMMON)
tests_fuzz_fuzz_sweep_CPPFLAGS = $(FUZZ_CPPFLAGS)
tests_fuzz_fuzz_sweep_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_sweep_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_sweep_LDADD = libeqmhost.la
FUZZ_PROGS = $(FUZZ_HARNESSES:%=tests/fuzz/fuzz_%$(EXEEXT))
CLEANFILES += $(FUZZ_PROGS)
if FUZZING
# `all` first, then the harnesses in a second make: automake's `all` runs a sub-make
# (BUILT_SOURCES), and the harnesses as prerequisites beside it made two makes build
# libeqmhost.la at once under -j ("... is not a valid libtool object", seen in CI).
fuzz: all
	$(MAKE) $(AM_MAKEFLAGS) $(FUZZ_PROGS)
	EQUIMOD_PLUGIN_PATH='$(abs_top_builddir)/plugin-dir' EQUIMOD_PLUGIN_SYSTEM_PATH= \
	  $(SHELL) $(top_srcdir)/tests/fuzz/run.sh '$(top_srcdir)/tests/fuzz' tests/fuzz \
	  $(FUZZ_SECONDS) $(FUZZ_HARNESSES)
else
fuzz:
	@if test "$(FUZZ_CC)" = no; then \
	  echo "make fuzz: no clang found (apt-get install clang-14 libclang-rt-14-dev, or configure FUZZ_CC=...)" >&2; \
	  exit 1; fi
	@test -f fuzz-build/Makefile || { \
	  echo "make fuzz: configuring a $(FUZZ_CC) --enable-fuzzing build in fuzz-build/"; \
	  mkdir -p fuzz-build && cd fuzz-build && \
	  $(abs_top_srcdir)/configure -q CC='$(FUZZ_CC)' --enable-fuzzing; }
	cd fuzz-build && $(MAKE) $(AM_MAKEFLAGS) fuzz FUZZ_SECONDS=$(FUZZ_SECONDS)
endif
distclean-local:
	rm -rf fuzz-build tests/fuzz/work tests/fuzz/artifacts
.PHONY: fuzz
# The checkpoint and safetensors seeds, written by the real writers (make_seeds.c).
EXTRA_PROGRAMS += tests/fuzz/make_seeds
tests_fuzz_make_seeds_SOURCES = tests/fuzz/make_seeds.c
tests_fuzz_make_seeds_LDADD = libeqmhost.la
CLEANFILES += tests/fuzz/make_seeds$(EXEEXT)
