# tests/nn: the host nn ops (host/nn) against PyTorch fixtures and finite differences.
check_PROGRAMS += tests/nn/check_nn_ref tests/nn/check_nn_grad
TESTS += tests/nn/check_nn_ref tests/nn/check_nn_grad
tests_nn_check_nn_ref_SOURCES = tests/nn/check_nn_ref.c tests/nn/nn_test_util.h
tests_nn_check_nn_ref_CFLAGS = $(TEST_CFLAGS)
tests_nn_check_nn_ref_LDADD = libeqmhost.la $(TEST_LIBS)
tests_nn_check_nn_grad_SOURCES = tests/nn/check_nn_grad.c tests/nn/nn_test_util.h
tests_nn_check_nn_grad_CFLAGS = $(TEST_CFLAGS)
tests_nn_check_nn_grad_LDADD = libeqmhost.la $(TEST_LIBS)
dist_noinst_DATA += tests/nn/fixtures/nn_ref.bin tests/nn/gen_fixtures.py
check_PROGRAMS += tests/nn/check_bf16
TESTS += tests/nn/check_bf16
tests_nn_check_bf16_SOURCES = tests/nn/check_bf16.c tests/nn/nn_test_util.h
tests_nn_check_bf16_CFLAGS = $(TEST_CFLAGS)
tests_nn_check_bf16_LDADD = libeqmhost.la $(TEST_LIBS)
