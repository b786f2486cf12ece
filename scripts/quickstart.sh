#!/bin/sh
# Set up a fresh Debian 12 machine and run the main job: a short real SimCLR+EquiMod
# training run on CIFAR-10 (configs/quickstart.ini), ending with a kNN accuracy.
# Environment: EQUIMOD_DATA_DIR (default: ../shared/data next to the checkout);
#              EQM_SKIP_DEPS=1 skips apt-get; extra arguments go to `equimod train`.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
if [ "${EQM_SKIP_DEPS:-0}" != 1 ]; then
  sh scripts/install-deps.sh
fi
if [ -z "${EQUIMOD_DATA_DIR:-}" ] && [ -d "$top/../shared/data" ]; then
  EQUIMOD_DATA_DIR=$(cd "$top/../shared/data" && pwd)
fi
if [ -z "${EQUIMOD_DATA_DIR:-}" ]; then
  echo "quickstart: set EQUIMOD_DATA_DIR to a folder holding cifar10/ (see datasets/)" >&2
  exit 1
fi
export EQUIMOD_DATA_DIR
[ -x configure ] || ./autogen.sh
mkdir -p _build
(cd _build && { [ -f Makefile ] || ../configure -q; } && make -j"$(nproc 2>/dev/null || echo 2)" >/dev/null)
EQM="$top/_build/equimod --plugin-path $top/_build/plugin-dir"
run=runs/quickstart-$(date +%Y%m%d-%H%M%S)
# `train` ends by printing the kNN accuracy of the trained backbone next to the untrained one
# (and appends both to $run/report.md).
$EQM train configs/quickstart.ini --out "$run" "$@"
