# One fragment per test area; each adds its Check programs to check_PROGRAMS and TESTS.
include tests/unit/local.mk
include tests/plugins/local.mk
include tests/nn/local.mk
include tests/backbone/local.mk
include tests/data/local.mk
include tests/train/local.mk
include tests/methods/local.mk
include tests/shards/local.mk
include tests/dist/local.mk
include tests/sweep/local.mk
include tests/fuzz/local.mk
include tests/fault/local.mk
include tests/probe/local.mk
