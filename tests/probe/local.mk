# tests/probe: `equimod probe` (host/eval/probe.c): the ridge read-out against a direct
# solve and a PyTorch reference (gen_fixture.py), known answers, and the command end to end
# on a tiny run (probe.test; skips without $EQUIMOD_DATA_DIR/cifar10).
EXTRA_DIST += tests/probe/gen_fixture.py tests/probe/fixtures/ridge.txt
check_PROGRAMS += tests/probe/check_probe
TESTS += tests/probe/check_probe
tests_probe_check_probe_CFLAGS = $(TEST_CFLAGS) $(OPENBLAS_CFLAGS)
tests_probe_check_probe_LDADD = libeqmhost.la $(TEST_LIBS)
TESTS += tests/probe/probe.test
EXTRA_DIST += tests/probe/probe.test
