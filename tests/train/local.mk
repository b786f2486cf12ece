# tests/train: optimizer/schedule fixtures (PyTorch), checkpoints, end-to-end training.
EXTRA_DIST += tests/train/gen_fixtures.py tests/train/fixtures/optim.txt
check_PROGRAMS += tests/train/check_optim
TESTS += tests/train/check_optim
tests_train_check_optim_CFLAGS = $(TEST_CFLAGS)
tests_train_check_optim_LDADD = libeqmhost.la $(TEST_LIBS)
check_PROGRAMS += tests/train/check_checkpoint
TESTS += tests/train/check_checkpoint
tests_train_check_checkpoint_CFLAGS = $(TEST_CFLAGS)
tests_train_check_checkpoint_LDADD = libeqmhost.la $(TEST_LIBS)
# End-to-end training on real CIFAR-10 (skips without $EQUIMOD_DATA_DIR); runs ./equimod.
EXTRA_DIST += tests/train/tiny.ini tests/train/tiny_byol.ini
check_PROGRAMS += tests/train/check_e2e
TESTS += tests/train/check_e2e
tests_train_check_e2e_CFLAGS = $(TEST_CFLAGS)
tests_train_check_e2e_LDADD = libeqmhost.la $(TEST_LIBS)
# model_source.test: eval/features/export take a run folder, a checkpoint or a config alike.
TESTS += tests/train/model_source.test
EXTRA_DIST += tests/train/model_source.test
# Refusals of sizes and thread counts before anything large is allocated.
TESTS += tests/train/limits.test
EXTRA_DIST += tests/train/limits.test
# [equimod] t_fields: refused names, the printed layout, a tiny run with t_fields = crop.
TESTS += tests/train/t_fields.test
EXTRA_DIST += tests/train/t_fields.test
