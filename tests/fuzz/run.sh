#!/bin/sh
# tests/fuzz/run.sh: run libFuzzer harnesses one after another (make fuzz).
#   run.sh SRC_FUZZ_DIR BUILD_FUZZ_DIR SECONDS NAME...
# For each NAME: BUILD_FUZZ_DIR/fuzz_NAME fuzzes for SECONDS seconds (one process,
# -jobs=1 style), starting from the seed corpus SRC_FUZZ_DIR/corpus/NAME and the
# regression inputs SRC_FUZZ_DIR/regress/NAME (read only); new inputs go to
# BUILD_FUZZ_DIR/work/NAME, crashes/hangs/OOMs to BUILD_FUZZ_DIR/artifacts/NAME-*, the
# log to BUILD_FUZZ_DIR/work/NAME.log. One summary line per harness (executions,
# coverage, features); exit 1 if any harness found something (its artifact is named).
# Extra libFuzzer flags: $FUZZ_FLAGS (e.g. FUZZ_FLAGS=-runs=1000000 for a campaign).
set -u
src=$1 bld=$2 secs=$3
shift 3
mkdir -p "$bld/work" "$bld/artifacts"
failed=""
for name in "$@"; do
  prog="$bld/fuzz_$name"
  work="$bld/work/$name"
  log="$bld/work/$name.log"
  mkdir -p "$work"
  seeds="$src/corpus/$name"
  regress=""
  [ -d "$src/regress/$name" ] && regress="$src/regress/$name"
  # shellcheck disable=SC2086
  "$prog" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$bld/artifacts/$name-" ${FUZZ_FLAGS:-} "$work" "$seeds" $regress \
    >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
  cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
  ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
  corp=$(echo "$last" | sed -n 's/.* corp: \([0-9]*\).*/\1/p')
  printf 'fuzz %-12s %4ss: %s executions, cov %s, ft %s, corpus %s' "$name" "$secs" \
    "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}"
  if [ "$rc" -ne 0 ]; then
    art=$(sed -n 's/.*Test unit written to \(.*\)/\1/p' "$log" | tail -n 1)
    printf ' -- FOUND SOMETHING (exit %s): %s\n' "$rc" "${art:-see $log}"
    grep -E 'ERROR:|runtime error|invariant broken|SUMMARY' "$log" | head -n 8
    failed="$failed $name"
  else
    printf '\n'
  fi
done
if [ -n "$failed" ]; then
  echo "fuzz: findings in:$failed (logs in $bld/work/, reproducers in $bld/artifacts/)"
  exit 1
fi
