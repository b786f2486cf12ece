# tests/dist: host/dist and the nn ops across ranks. check_dist alone runs the
# single-process group; mpi.test runs it under mpirun -np 2 (77 without MPI or mpirun).
check_PROGRAMS += tests/dist/check_dist
TESTS += tests/dist/check_dist tests/dist/mpi.test
EXTRA_DIST += tests/dist/mpi.test
tests_dist_check_dist_SOURCES = tests/dist/check_dist.c
tests_dist_check_dist_CFLAGS = $(TEST_CFLAGS)
tests_dist_check_dist_LDADD = libeqmhost.la $(TEST_LIBS)
# mpi_train.test: -np 2 vs -np 1 of a tiny SimCLR+EquiMod and BYOL+EquiMod run (run_diff
# compares the step losses and the final checkpoints).
check_PROGRAMS += tests/dist/run_diff
TESTS += tests/dist/mpi_train.test
EXTRA_DIST += tests/dist/mpi_train.test
tests_dist_run_diff_SOURCES = tests/dist/run_diff.c
tests_dist_run_diff_CFLAGS = $(TEST_CFLAGS)
tests_dist_run_diff_LDADD = libeqmhost.la $(TEST_LIBS)
# mpi_fault.test: a rank killed, SIGTERM to one rank, SIGUSR1 to mpirun: the job ends, the
# resumed run is bit-identical to the uninterrupted one; rank-prefixed errors and refusals.
TESTS += tests/dist/mpi_fault.test
EXTRA_DIST += tests/dist/mpi_fault.test
# mpi_shards.test: training on tar shards with -np 2 equals -np 1 (every rank reads the
# stream, decodes its slice); drop_last = false on a stream under MPI refused.
TESTS += tests/dist/mpi_shards.test
EXTRA_DIST += tests/dist/mpi_shards.test
