# tests/plugins: loader tests against real shared objects, and the SDK-only build test.
# The tp_*.la fixtures are check_LTLIBRARIES: real .so files in tests/plugins/.libs
# ($EQM_TEST_PLUGIN_DIR), built for `make check` only and never installed.
check_LTLIBRARIES += tests/plugins/tp_a_valid.la
tests_plugins_tp_a_valid_la_SOURCES = tests/plugins/tp_a_valid.c tests/plugins/tp_common.h
tests_plugins_tp_a_valid_la_CFLAGS = $(AM_CFLAGS)
tests_plugins_tp_a_valid_la_LDFLAGS = $(TEST_PLUGIN_LINK)
check_LTLIBRARIES += tests/plugins/tp_bad_noentry.la
tests_plugins_tp_bad_noentry_la_SOURCES = tests/plugins/tp_bad_noentry.c tests/plugins/tp_common.h
tests_plugins_tp_bad_noentry_la_CFLAGS = $(AM_CFLAGS)
# no -export-symbols-regex here: with nothing matching it libtool writes an empty
# version script that ld rejects
tests_plugins_tp_bad_noentry_la_LDFLAGS = -module -avoid-version -shared -rpath /nowhere $(EQM_LDFLAGS)
check_LTLIBRARIES += tests/plugins/tp_bad_major.la
tests_plugins_tp_bad_major_la_SOURCES = tests/plugins/tp_bad_major.c tests/plugins/tp_common.h
tests_plugins_tp_bad_major_la_CFLAGS = $(AM_CFLAGS)
tests_plugins_tp_bad_major_la_LDFLAGS = $(TEST_PLUGIN_LINK)
check_LTLIBRARIES += tests/plugins/tp_bad_minor.la
tests_plugins_tp_bad_minor_la_SOURCES = tests/plugins/tp_bad_minor.c tests/plugins/tp_common.h
tests_plugins_tp_bad_minor_la_CFLAGS = $(AM_CFLAGS)
tests_plugins_tp_bad_minor_la_LDFLAGS = $(TEST_PLUGIN_LINK)
check_LTLIBRARIES += tests/plugins/tp_bad_short.la
tests_plugins_tp_bad_short_la_SOURCES = tests/plugins/tp_bad_short.c tests/plugins/tp_common.h
tests_plugins_tp_bad_short_la_CFLAGS = $(AM_CFLAGS)
tests_plugins_tp_bad_short_la_LDFLAGS = $(TEST_PLUGIN_LINK)
check_LTLIBRARIES += tests/plugins/tp_bad_nullfn.la
tests_plugins_tp_bad_nullfn_la_SOURCES = tests/plugins/tp_bad_nullfn.c tests/plugins/tp_common.h
tests_plugins_tp_bad_nullfn_la_CFLAGS = $(AM_CFLAGS)
tests_plugins_tp_bad_nullfn_la_LDFLAGS = $(TEST_PLUGIN_LINK)
check_LTLIBRARIES += tests/plugins/tp_bad_kind.la
tests_plugins_tp_bad_kind_la_SOURCES = tests/plugins/tp_bad_kind.c tests/plugins/tp_common.h
tests_plugins_tp_bad_kind_la_CFLAGS = $(AM_CFLAGS)
tests_plugins_tp_bad_kind_la_LDFLAGS = $(TEST_PLUGIN_LINK)
check_LTLIBRARIES += tests/plugins/tp_bad_opsnull.la
tests_plugins_tp_bad_opsnull_la_SOURCES = tests/plugins/tp_bad_opsnull.c tests/plugins/tp_common.h
tests_plugins_tp_bad_opsnull_la_CFLAGS = $(AM_CFLAGS)
tests_plugins_tp_bad_opsnull_la_LDFLAGS = $(TEST_PLUGIN_LINK)
check_LTLIBRARIES += tests/plugins/tp_bad_opssize.la
tests_plugins_tp_bad_opssize_la_SOURCES = tests/plugins/tp_bad_opssize.c tests/plugins/tp_common.h
tests_plugins_tp_bad_opssize_la_CFLAGS = $(AM_CFLAGS)
tests_plugins_tp_bad_opssize_la_LDFLAGS = $(TEST_PLUGIN_LINK)
check_LTLIBRARIES += tests/plugins/tp_bad_half.la
tests_plugins_tp_bad_half_la_SOURCES = tests/plugins/tp_bad_half.c tests/plugins/tp_common.h
tests_plugins_tp_bad_half_la_CFLAGS = $(AM_CFLAGS)
tests_plugins_tp_bad_half_la_LDFLAGS = $(TEST_PLUGIN_LINK)
check_LTLIBRARIES += tests/plugins/tp_old_minor.la
tests_plugins_tp_old_minor_la_SOURCES = tests/plugins/tp_old_minor.c tests/plugins/tp_common.h
tests_plugins_tp_old_minor_la_CFLAGS = $(AM_CFLAGS)
tests_plugins_tp_old_minor_la_LDFLAGS = $(TEST_PLUGIN_LINK)
check_LTLIBRARIES += tests/plugins/tp_bad_name.la
tests_plugins_tp_bad_name_la_SOURCES = tests/plugins/tp_bad_name.c tests/plugins/tp_common.h
tests_plugins_tp_bad_name_la_CFLAGS = $(AM_CFLAGS)
tests_plugins_tp_bad_name_la_LDFLAGS = $(TEST_PLUGIN_LINK)
check_LTLIBRARIES += tests/plugins/tp_bad_params.la
tests_plugins_tp_bad_params_la_SOURCES = tests/plugins/tp_bad_params.c tests/plugins/tp_common.h
tests_plugins_tp_bad_params_la_CFLAGS = $(AM_CFLAGS)
tests_plugins_tp_bad_params_la_LDFLAGS = $(TEST_PLUGIN_LINK)
check_LTLIBRARIES += tests/plugins/tp_z_dup.la
tests_plugins_tp_z_dup_la_SOURCES = tests/plugins/tp_z_dup.c tests/plugins/tp_common.h
tests_plugins_tp_z_dup_la_CFLAGS = $(AM_CFLAGS)
tests_plugins_tp_z_dup_la_LDFLAGS = $(TEST_PLUGIN_LINK)

# Hostile fixtures (wild descriptor pointers, exit() in a constructor, a crashing entry, a
# constructor that never returns) live in their own folder, tests/plugins/hostile/.libs, so
# that scans of the main fixture folder never run them.
check_LTLIBRARIES += tests/plugins/hostile/tp_wild.la
tests_plugins_hostile_tp_wild_la_SOURCES = tests/plugins/hostile/tp_wild.c tests/plugins/tp_common.h
tests_plugins_hostile_tp_wild_la_CFLAGS = $(AM_CFLAGS)
tests_plugins_hostile_tp_wild_la_LDFLAGS = $(TEST_PLUGIN_LINK)
check_LTLIBRARIES += tests/plugins/hostile/tp_exit.la
tests_plugins_hostile_tp_exit_la_SOURCES = tests/plugins/hostile/tp_exit.c tests/plugins/tp_common.h
tests_plugins_hostile_tp_exit_la_CFLAGS = $(AM_CFLAGS)
tests_plugins_hostile_tp_exit_la_LDFLAGS = $(TEST_PLUGIN_LINK)
check_LTLIBRARIES += tests/plugins/hostile/tp_crash.la
tests_plugins_hostile_tp_crash_la_SOURCES = tests/plugins/hostile/tp_crash.c tests/plugins/tp_common.h
tests_plugins_hostile_tp_crash_la_CFLAGS = $(AM_CFLAGS)
tests_plugins_hostile_tp_crash_la_LDFLAGS = $(TEST_PLUGIN_LINK)
check_LTLIBRARIES += tests/plugins/hostile/tp_hang.la
tests_plugins_hostile_tp_hang_la_SOURCES = tests/plugins/hostile/tp_hang.c tests/plugins/tp_common.h
tests_plugins_hostile_tp_hang_la_CFLAGS = $(AM_CFLAGS)
tests_plugins_hostile_tp_hang_la_LDFLAGS = $(TEST_PLUGIN_LINK)

check_PROGRAMS += tests/plugins/check_loader
TESTS += tests/plugins/check_loader
tests_plugins_check_loader_SOURCES = tests/plugins/check_loader.c
tests_plugins_check_loader_CFLAGS = $(TEST_CFLAGS)
tests_plugins_check_loader_LDADD = libeqmhost.la $(TEST_LIBS)

# Out-of-tree build of sdk/examples against the SDK headers only, NEEDED check, load test.
TESTS += tests/plugins/sdk_example.test
EXTRA_DIST += tests/plugins/sdk_example.test

# equimod new: a skeleton of each kind compiles against the SDK headers alone and loads.
TESTS += tests/plugins/sdk_new.test
EXTRA_DIST += tests/plugins/sdk_new.test

# equimod check: every shipped plugin and SDK example holds; broken copies of the examples
# fail with the rule they break.
TESTS += tests/plugins/check_cmd.test
EXTRA_DIST += tests/plugins/check_cmd.test

# The SDK headers under strict C11 and C++ (GNU extensions guarded).
TESTS += tests/plugins/sdk_headers.test
EXTRA_DIST += tests/plugins/sdk_headers.test tests/plugins/cxx/cxx_negate.cpp

# A plugin file whose plugins each break their contract in one way (tests/plugins/broken,
# a folder no scan reads), and the test that the host names plugin, function and rule.
check_LTLIBRARIES += tests/plugins/broken/tp_broken.la
tests_plugins_broken_tp_broken_la_SOURCES = tests/plugins/broken/tp_broken.c tests/plugins/tp_common.h
tests_plugins_broken_tp_broken_la_CFLAGS = $(AM_CFLAGS)
tests_plugins_broken_tp_broken_la_LDFLAGS = $(TEST_PLUGIN_LINK)
check_PROGRAMS += tests/plugins/check_failures
TESTS += tests/plugins/check_failures
tests_plugins_check_failures_SOURCES = tests/plugins/check_failures.c tests/data/data_util.h
tests_plugins_check_failures_CFLAGS = $(TEST_CFLAGS)
tests_plugins_check_failures_LDADD = libeqmhost.la $(TEST_LIBS) -lm

# ABI 1.3 appends (PNG decoding, out_shape_p, image_sizes) and 1.2 builds without them.
check_LTLIBRARIES += tests/plugins/v13/tp_v13.la
tests_plugins_v13_tp_v13_la_SOURCES = tests/plugins/v13/tp_v13.c tests/plugins/tp_common.h
tests_plugins_v13_tp_v13_la_CFLAGS = $(AM_CFLAGS)
tests_plugins_v13_tp_v13_la_LDFLAGS = $(TEST_PLUGIN_LINK)
check_PROGRAMS += tests/plugins/check_appends
TESTS += tests/plugins/check_appends
tests_plugins_check_appends_SOURCES = tests/plugins/check_appends.c tests/data/data_util.h
tests_plugins_check_appends_CFLAGS = $(TEST_CFLAGS) $(PNG_CFLAGS) $(TURBOJPEG_CFLAGS)
tests_plugins_check_appends_LDADD = libeqmhost.la $(TEST_LIBS) $(PNG_LIBS) $(TURBOJPEG_LIBS) -lm
