# tests/methods: the simclr, byol and equimod plugins (real .so files) against PyTorch
# fixtures (tests/methods/gen_fixtures.py, outputs committed) and finite differences.
check_PROGRAMS += tests/methods/check_methods
TESTS += tests/methods/check_methods
tests_methods_check_methods_SOURCES = tests/methods/check_methods.c tests/methods/harness.c \
	tests/methods/harness.h
tests_methods_check_methods_CFLAGS = $(TEST_CFLAGS)
tests_methods_check_methods_LDADD = libeqmhost.la $(TEST_LIBS)
dist_noinst_DATA += tests/methods/gen_fixtures.py tests/methods/fixtures/simclr.txt \
	tests/methods/fixtures/byol.txt tests/methods/fixtures/equimod.txt \
	tests/methods/fixtures/equimod_excl.txt
