# tests/sweep: `equimod sweep` end to end through the program (the training parts skip
# without $EQUIMOD_DATA_DIR/cifar10).
EXTRA_DIST += tests/sweep/tiny2x2.ini
check_PROGRAMS += tests/sweep/check_sweep
TESTS += tests/sweep/check_sweep
tests_sweep_check_sweep_CFLAGS = $(TEST_CFLAGS)
tests_sweep_check_sweep_LDADD = $(TEST_LIBS)
# `equimod report`: the HTML of a tiny sweep parsed against results.csv, and rendered by
# headless Chromium (skips without chromium: scripts/install-deps.sh installs it).
EXTRA_DIST += tests/sweep/report_util.h
check_PROGRAMS += tests/sweep/check_report_html tests/sweep/check_report_browser
TESTS += tests/sweep/check_report_html tests/sweep/check_report_browser
tests_sweep_check_report_html_CFLAGS = $(TEST_CFLAGS)
tests_sweep_check_report_html_LDADD = $(TEST_LIBS)
tests_sweep_check_report_browser_CFLAGS = $(TEST_CFLAGS) $(PNG_CFLAGS)
tests_sweep_check_report_browser_LDADD = $(TEST_LIBS) $(PNG_LIBS)
