# tests/shards: image services, shard streaming, shard writer + imagenet_tar plugin.
# Fixtures: tests/shards/fixtures (made by tests/shards/gen_fixtures.py, committed).
check_PROGRAMS += tests/shards/check_image tests/shards/check_stream tests/shards/check_shards_plugin
TESTS += tests/shards/check_image tests/shards/check_stream tests/shards/check_shards_plugin
tests_shards_check_image_SOURCES = tests/shards/check_image.c tests/shards/shard_util.h
tests_shards_check_image_CFLAGS = $(TEST_CFLAGS) $(TURBOJPEG_CFLAGS) $(ARCHIVE_CFLAGS)
tests_shards_check_image_LDADD = libeqmhost.la $(TEST_LIBS)
tests_shards_check_stream_SOURCES = tests/shards/check_stream.c tests/shards/shard_util.h
tests_shards_check_stream_CFLAGS = $(TEST_CFLAGS) $(TURBOJPEG_CFLAGS) $(ARCHIVE_CFLAGS)
tests_shards_check_stream_LDADD = libeqmhost.la $(TEST_LIBS)
tests_shards_check_shards_plugin_SOURCES = tests/shards/check_shards_plugin.c tests/shards/shard_util.h
tests_shards_check_shards_plugin_CFLAGS = $(TEST_CFLAGS) $(TURBOJPEG_CFLAGS) $(ARCHIVE_CFLAGS)
tests_shards_check_shards_plugin_LDADD = libeqmhost.la $(TEST_LIBS)
EXTRA_DIST += tests/shards/gen_fixtures.py tests/shards/fixtures
# Integration: shards of the real Imagenette subset -> a few steps of SimCLR+EquiMod,
# resume bit-identical (skips without $EQUIMOD_DATA_DIR). t_probe is its helper.
check_PROGRAMS += tests/shards/t_probe
tests_shards_t_probe_CFLAGS = $(TEST_CFLAGS)
tests_shards_t_probe_LDADD = libeqmhost.la $(TEST_LIBS)
TESTS += tests/shards/train_shards.test
EXTRA_DIST += tests/shards/train_shards.test tests/shards/tiny_imagenette.ini
# Per-thread error messages of one instance context (host/api.c), concurrent setters.
check_PROGRAMS += tests/shards/check_host_error
TESTS += tests/shards/check_host_error
tests_shards_check_host_error_CFLAGS = $(TEST_CFLAGS)
tests_shards_check_host_error_LDADD = libeqmhost.la $(TEST_LIBS)
# Bad samples of a stream under on_bad = skip/fail: batches identical for 1-3 workers.
check_PROGRAMS += tests/shards/check_bad_samples
TESTS += tests/shards/check_bad_samples
tests_shards_check_bad_samples_SOURCES = tests/shards/check_bad_samples.c tests/shards/shard_util.h
tests_shards_check_bad_samples_CFLAGS = $(TEST_CFLAGS) $(TURBOJPEG_CFLAGS) $(ARCHIVE_CFLAGS)
tests_shards_check_bad_samples_LDADD = libeqmhost.la $(TEST_LIBS)
# t estimate on the real image sizes of a stream: loader_estimate_t, trainer, equimod tstats.
check_PROGRAMS += tests/shards/check_tstats
TESTS += tests/shards/check_tstats
tests_shards_check_tstats_SOURCES = tests/shards/check_tstats.c tests/shards/shard_util.h
tests_shards_check_tstats_CFLAGS = $(TEST_CFLAGS) $(TURBOJPEG_CFLAGS) $(ARCHIVE_CFLAGS)
tests_shards_check_tstats_LDADD = libeqmhost.la $(TEST_LIBS)
# check_dct_scaling: [loader] dct_scaling on real shards (scaled vs full-size decode)
check_PROGRAMS += tests/shards/check_dct_scaling
TESTS += tests/shards/check_dct_scaling
tests_shards_check_dct_scaling_SOURCES = tests/shards/check_dct_scaling.c tests/shards/shard_util.h
tests_shards_check_dct_scaling_CFLAGS = $(TEST_CFLAGS) $(TURBOJPEG_CFLAGS) $(ARCHIVE_CFLAGS)
tests_shards_check_dct_scaling_LDADD = libeqmhost.la $(TEST_LIBS)
