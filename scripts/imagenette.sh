#!/bin/sh
# The ImageNet path end to end on Imagenette (configs/imagenette.ini): builds equimod if
# needed, writes the shards (datasets/imagenette.sh, into shards/imagenette), trains
# SimCLR+EquiMod for 30 epochs of 1,000 images at 64 px and ends with a kNN accuracy on the
# 3,925 val images next to the same backbone untrained.
# Environment: EQUIMOD_DATA_DIR (default ../shared/data next to the checkout);
#              EQM_SKIP_DEPS=1 skips apt-get; extra arguments go to `equimod train`.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
if [ "${EQM_SKIP_DEPS:-0}" != 1 ]; then
  sh scripts/install-deps.sh
fi
[ -x configure ] || ./autogen.sh
mkdir -p _build
(cd _build && { [ -f Makefile ] || ../configure -q; } && make -j"$(nproc 2>/dev/null || echo 2)" >/dev/null)
[ -f shards/imagenette/val.index ] || sh datasets/imagenette.sh --dest shards/imagenette
EQM="$top/_build/equimod --plugin-path $top/_build/plugin-dir"
run=runs/imagenette-$(date +%Y%m%d-%H%M%S)
$EQM train configs/imagenette.ini --out "$run" "$@"
