#!/bin/sh
# bench/scaling.sh: data-parallel scaling on this machine (issue 13), one invocation:
#   1 rank x 2 threads   (plain equimod train, [train] threads = 2)
#   2 ranks x 1 thread   (mpirun -np 2, [train] threads = 1, SyncBN + gathered NT-Xent)
# for each: mean step time and img/s over the steps after the first two (warm-up), and for
# the MPI run the gradient all-reduce time per step, the part of it that overlapped the
# backbone's backward, the time backward waited for it, and the bytes one rank sent per step
# (from the trainer's closing "MPI:" line). The ratio img/s(2x1) / img/s(1x2) is the last
# line (target >= 0.9).
# Usage: sh bench/scaling.sh [BUILD_DIR] [--set KEY=VALUE]...   (make bench-scaling)
# Default model: configs/simclr_equimod_cifar10.ini (ResNet-18-CIFAR, full width) at a
# global batch of 64 for 8 steps; EQUIMOD_DATA_DIR must hold cifar10/.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/_build}
[ $# -gt 0 ] && shift
eqm="$build/equimod --plugin-path $build/plugin-dir"
cfg="$top/configs/simclr_equimod_cifar10.ini"
B=${EQM_BENCH_BATCH:-64}
STEPS=${EQM_BENCH_STEPS:-8}
sets="--set loader.batch_size=$B --set train.max_samples=$((B * STEPS)) --set train.epochs=1
      --set train.checkpoint_every=0 --set loader.workers=1 --set eval.knn_at_end=false"
mpirun=$(command -v mpirun || command -v mpiexec) || { echo "no mpirun on PATH"; exit 1; }
flags=""
"$mpirun" --version 2>&1 | grep -q "Open MPI\|OpenRTE" && flags="--oversubscribe --allow-run-as-root"
tmp=$(mktemp -d /tmp/eqm_scaling_XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# mean step_s of the step lines after the first two
mean_step() {
  awk -F'"step_s":' '/"kind":"step"/ { n++; if (n > 2) { split($2, a, /[,}]/); s += a[1]; k++ } }
                     END { if (k) printf "%.4f", s / k; else print "nan" }' "$1/metrics.jsonl"
}

echo "bench/scaling: $(basename "$cfg"), global batch $B, $STEPS steps (the first 2 not timed)"
# shellcheck disable=SC2086
$eqm train "$cfg" --out "$tmp/r1" $sets --set train.threads=2 "$@" >"$tmp/r1.log" 2>&1 ||
  { cat "$tmp/r1.log"; exit 1; }
# shellcheck disable=SC2086
"$mpirun" $flags -np 2 $eqm train "$cfg" --out "$tmp/r2" $sets --set train.threads=1 "$@" \
  >"$tmp/r2.log" 2>&1 || { cat "$tmp/r2.log"; exit 1; }
s1=$(mean_step "$tmp/r1"); s2=$(mean_step "$tmp/r2")
printf "%-22s %10s %10s\n" "" "step (s)" "img/s"
awk -v s="$s1" -v b="$B" 'BEGIN { printf "%-22s %10.3f %10.1f\n", "1 rank x 2 threads", s, b / s }'
awk -v s="$s2" -v b="$B" 'BEGIN { printf "%-22s %10.3f %10.1f\n", "2 ranks x 1 thread", s, b / s }'
grep "MPI:" "$tmp/r2.log" | sed 's/^equimod train: /  2 ranks: /'
awk -v a="$s1" -v b="$s2" 'BEGIN { printf "ratio img/s (2 ranks x 1 thread) / (1 rank x 2 threads): %.2f\n", a / b }'
