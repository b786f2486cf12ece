# tests/sweep: `equimod sweep` end to end through the program (the training parts skip
# without $EQUIMOD_DATA_DIR/cifar10).
EXTRA_DIST += tests/sweep/tiny2x2.ini
check_PROGRAMS += tests/sweep/check_sweep
TESTS += tests/sweep/check_sweep
tests_sweep_check_sweep_CFLAGS = $(TEST_CFLAGS)
tests_sweep_check_sweep_LDADD = $(TEST_LIBS)
