# tests/fault: fault injection over a tiny real training run with checkpoints (issue 10):
# posix_memalign (api->alloc) and write() of the host code fail at the Nth call, through
# the linker's --wrap (the host objects come from the static convenience library).
# Skips without $EQUIMOD_DATA_DIR/cifar10.
check_PROGRAMS += tests/fault/check_faults
TESTS += tests/fault/check_faults
tests_fault_check_faults_LDFLAGS = $(AM_LDFLAGS) -Wl,--wrap=posix_memalign -Wl,--wrap=write
tests_fault_check_faults_LDADD = libeqmhost.la
