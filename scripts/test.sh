#!/bin/sh
# Set up a fresh Debian 12 machine and run the whole test suite.
#   scripts/test.sh            install dependencies, build in _build/, run `make check`
# Environment: EQUIMOD_DATA_DIR (default: ../shared/data next to the checkout, when present)
#              EQM_SKIP_DEPS=1 to skip the apt-get step; EQM_SANITIZE=0 to skip the ASan/UBSan pass;
#              EQM_FUZZ=0 to skip the libFuzzer smoke, EQM_FUZZ_SECONDS=N per harness (default 8).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
if [ "${EQM_SKIP_DEPS:-0}" != 1 ]; then
  sh scripts/install-deps.sh --with-python
fi
if [ -z "${EQUIMOD_DATA_DIR:-}" ] && [ -d "$top/../shared/data" ]; then
  EQUIMOD_DATA_DIR=$(cd "$top/../shared/data" && pwd)
fi
export EQUIMOD_DATA_DIR="${EQUIMOD_DATA_DIR:-}"
echo "EQUIMOD_DATA_DIR=${EQUIMOD_DATA_DIR:-<unset: data tests will be skipped>}"
./autogen.sh
jobs=$(nproc 2>/dev/null || echo 2)
# The numerical suites compare against PyTorch fixtures and finite differences. OpenBLAS picks
# its kernels by CPU unless OPENBLAS_CORETYPE says otherwise (some machines of this kind, CI's
# included, set Haswell), and the summation order differs between them: run those suites
# under both, whatever this machine's environment says, so neither can regress.
numeric="tests/nn/check_nn_ref tests/nn/check_nn_grad tests/backbone/check_backbone
         tests/methods/check_methods tests/train/check_optim tests/train/check_checkpoint
         tests/train/check_e2e tests/dist/check_dist tests/dist/mpi.test
         tests/dist/mpi_train.test"
mkdir -p _build
(cd _build && ../configure -q --enable-werror && make -j"$jobs" &&
 env -u OPENBLAS_CORETYPE make -j"$jobs" check &&
 echo "== numerical suites again with OPENBLAS_CORETYPE=Haswell" &&
 OPENBLAS_CORETYPE=Haswell make -j"$jobs" check TESTS="$(echo $numeric)") || {
  for f in _build/tests/*/*.log; do
    if grep -qE '^(FAIL|ERROR)' "${f%.log}.trs" 2>/dev/null; then echo "=== $f"; tail -n 60 "$f"; fi
  done
  exit 1
}
# The SDK as a plugin author gets it: install into a temporary root, build the installed
# examples and `equimod new` skeletons against it alone, check them, train a few steps.
sh scripts/sdk-test.sh _build
if [ "${EQM_SANITIZE:-1}" != 0 ]; then
  # The same suite under AddressSanitizer + UndefinedBehaviorSanitizer.
  mkdir -p _build-asan
  (cd _build-asan && ../configure -q --enable-sanitizers && make -j"$jobs" &&
   ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 EQM_SANITIZED=1 make -j"$jobs" check) || {
    for f in _build-asan/tests/*/*.log; do
      if grep -qE '^(FAIL|ERROR)' "${f%.log}.trs" 2>/dev/null; then echo "=== $f"; tail -n 60 "$f"; fi
    done
    exit 1
  }
fi
if [ "${EQM_FUZZ:-1}" != 0 ]; then
  # libFuzzer smoke: every harness of tests/fuzz for EQM_FUZZ_SECONDS (clang build in
  # _build-fuzz/, see tests/fuzz/README.md). Skipped, with the reason, without clang+libFuzzer.
  # A fixed seed (FUZZ_FLAGS overrides it): the smoke checks what was fuzzed before, and a new
  # finding of a random seed belongs to a campaign (make fuzz), not to an unrelated change.
  fcc=$(command -v clang-14 || command -v clang || true)
  probe=$(mktemp -d)
  printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' >"$probe/p.c"
  if [ -n "$fcc" ] && "$fcc" -fsanitize=fuzzer "$probe/p.c" -o "$probe/p" 2>/dev/null; then
    rm -rf "$probe"
    mkdir -p _build-fuzz
    (cd _build-fuzz && { [ -f Makefile ] || ../configure -q CC="$fcc" --enable-fuzzing; } &&
     FUZZ_FLAGS="${FUZZ_FLAGS:--seed=1}" make -j"$jobs" fuzz FUZZ_SECONDS="${EQM_FUZZ_SECONDS:-8}") || {
      echo "fuzz smoke FAILED: reproducers in _build-fuzz/tests/fuzz/artifacts/, logs in _build-fuzz/tests/fuzz/work/"
      exit 1
    }
  else
    rm -rf "$probe"
    echo "fuzz smoke SKIPPED: ${fcc:-no clang found}${fcc:+ cannot link -fsanitize=fuzzer} (install clang-14 libclang-rt-14-dev; scripts/install-deps.sh does)"
  fi
fi
