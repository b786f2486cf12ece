# tests/data: the CIFAR-10 dataset plugin, the augmentation plugins (against torchvision
# fixtures made by tests/data/gen_fixtures.py, committed under tests/data/fixtures) and the
# batch queue. Tests needing $EQUIMOD_DATA_DIR skip those parts when it is absent.
check_PROGRAMS += tests/data/check_loader
TESTS += tests/data/check_loader
tests_data_check_loader_SOURCES = tests/data/check_loader.c tests/data/data_util.h
tests_data_check_loader_CFLAGS = $(TEST_CFLAGS)
tests_data_check_loader_LDADD = libeqmhost.la $(TEST_LIBS)
check_PROGRAMS += tests/data/check_augment
TESTS += tests/data/check_augment
tests_data_check_augment_SOURCES = tests/data/check_augment.c tests/data/data_util.h
tests_data_check_augment_CFLAGS = $(TEST_CFLAGS)
tests_data_check_augment_LDADD = libeqmhost.la $(TEST_LIBS)
EXTRA_DIST += tests/data/gen_fixtures.py tests/data/fixtures
# check_resample: the host resampler's AVX2 passes equal its portable ones (random cases)
check_PROGRAMS += tests/data/check_resample
TESTS += tests/data/check_resample
tests_data_check_resample_SOURCES = tests/data/check_resample.c
tests_data_check_resample_CFLAGS = $(TEST_CFLAGS)
tests_data_check_resample_LDADD = libeqmhost.la $(TEST_LIBS) -lm
# check_color_simd: the AVX2 luma and blend kernels equal the scalar formulas (exhaustive)
check_PROGRAMS += tests/data/check_color_simd
TESTS += tests/data/check_color_simd
tests_data_check_color_simd_SOURCES = tests/data/check_color_simd.c
tests_data_check_color_simd_CFLAGS = $(TEST_CFLAGS)
tests_data_check_color_simd_LDADD = $(TEST_LIBS) -lm
check_PROGRAMS += tests/data/check_cifar
TESTS += tests/data/check_cifar
tests_data_check_cifar_SOURCES = tests/data/check_cifar.c tests/data/data_util.h
tests_data_check_cifar_CFLAGS = $(TEST_CFLAGS) $(ARCHIVE_CFLAGS) $(ZLIB_CFLAGS)
tests_data_check_cifar_LDADD = libeqmhost.la $(TEST_LIBS) $(ARCHIVE_LIBS) $(ZLIB_LIBS)
EXTRA_DIST += tests/data/exhaustive_color.sh tests/data/hue_float_check.c

# views.test: `equimod views` writes the three views (PNG) and t of a real CIFAR image.
TESTS += tests/data/views.test
EXTRA_DIST += tests/data/views.test
