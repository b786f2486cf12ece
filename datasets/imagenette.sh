#!/bin/sh
# datasets/imagenette.sh: write Imagenette (10 ImageNet classes) as tar shards for the
# imagenet_tar dataset (configs/imagenette.ini), with `equimod shards`.
#
#   datasets/imagenette.sh [--dest DIR] [--train SRC] [--val SRC] [--equimod BIN]
#     --train SRC, --val SRC  an ImageFolder tree (SRC/<wnid>/<file>.JPEG) or a .tar/.tar.gz
#              of one. Default: the local copies in $EQUIMOD_DATA_DIR/imagenette2-224/
#              (imagenette2-224-train-sub100.tar.gz: 100 images per class;
#              imagenette2-224-val.tar.gz: the whole val split, 3,925 images).
#              For the full dataset: download and unpack (elsewhere; this script never uses
#              the network) https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-320.tgz
#              and pass --train imagenette2-320/train --val imagenette2-320/val (then edit
#              the shard ranges in the config to the counts this script prints).
#     --dest DIR   output folder (default: shards/imagenette)
#     --equimod BIN  the equimod program (default: _build/equimod, then equimod on PATH)
# Writes DIR/train-NNNNNN.tar (250 samples each), DIR/val-NNNNNN.tar (1,000 each),
# DIR/train.index, DIR/val.index and DIR/classes.txt (wnid and name per line when the
# source has a classes.txt next to it; the val shards use the train class order).
# Exit status: 0 = written; 1 = a source is missing or `equimod shards` failed; 2 = usage.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
dest=shards/imagenette
train=
val=
bin=
while [ $# -gt 0 ]; do
  case "$1" in
    --dest) dest=$2; shift 2 ;;
    --train) train=$2; shift 2 ;;
    --val) val=$2; shift 2 ;;
    --equimod) bin=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "datasets/imagenette.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
data=${EQUIMOD_DATA_DIR:-}
if [ -z "$train" ] || [ -z "$val" ]; then
  if [ -z "$data" ] && [ -d "$top/../shared/data" ]; then
    data=$(cd "$top/../shared/data" && pwd)
  fi
  [ -n "$train" ] || train=$data/imagenette2-224/imagenette2-224-train-sub100.tar.gz
  [ -n "$val" ] || val=$data/imagenette2-224/imagenette2-224-val.tar.gz
fi
for s in "$train" "$val"; do
  if [ ! -e "$s" ]; then
    echo "datasets/imagenette.sh: $s: not found (set EQUIMOD_DATA_DIR, or pass --train/--val)" >&2
    exit 1
  fi
done
if [ -z "$bin" ]; then
  if [ -x "$top/_build/equimod" ]; then
    bin="$top/_build/equimod --plugin-path $top/_build/plugin-dir"
  else
    bin=equimod
  fi
fi
mkdir -p "$dest"
$bin shards --prefix train --per-shard 250 "$train" "$dest"
$bin shards --prefix val --per-shard 1000 --classes "$dest/classes.txt" "$val" "$dest"
names=$(dirname "$train")/classes.txt
if [ -f "$names" ]; then
  # the wnid -> name list of the local copy, in the order of the shards' classes.txt
  while read -r wnid _; do
    line=$(grep "^$wnid " "$names" || echo "$wnid")
    echo "$line"
  done < "$dest/classes.txt" > "$dest/classes.named.txt"
fi
echo "datasets/imagenette.sh: shards in $dest"
