#!/bin/sh
# datasets/cifar10.sh: fetch CIFAR-10 (binary version) or register a local copy, verifying
# the official MD5 checksums, into the folder the cifar10 plugin reads
# ($EQUIMOD_DATA_DIR/cifar10 by default, or [data] root).
#
#   datasets/cifar10.sh [--dest DIR] [--from PATH] [--copy]
#     --from PATH  a local copy: the official cifar-10-binary.tar.gz, or a folder holding
#                  data_batch_{1..5}.bin / test_batch.bin (plain or .gz), optionally in
#                  cifar-10-batches-bin/, plus the extra test files described below.
#                  No network is used. Files are symlinked (--copy: copied).
#     without --from: downloads https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz
#                  (curl or wget) and checks its MD5.
#     --dest DIR   target folder (default: $EQUIMOD_DATA_DIR/cifar10)
# Checked: MD5 of the archive (c32a1d4a...), or of every unpacked data_batch_N.bin and
# test_batch.bin (the published checksums), plus test_batch_first1000.bin(.gz) (records
# 0-999 of the official test set) and the JPEG q75 test set files when present.
# Exit status: 0 = verified and registered; 1 = a check failed (nothing is registered for
# that file); 2 = usage.
set -eu

ARCHIVE_URL=https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz
ARCHIVE_MD5=c32a1d4ab5d03f1284b67883e8d87530
md5_of_name() {
  case "$1" in
    data_batch_1.bin) echo 5dd7e06a14cb22eb9f671a540d1b7c25 ;;
    data_batch_2.bin) echo 5ea93a67294ea407fff1d09f752e9692 ;;
    data_batch_3.bin) echo 942cd6a4bcdd0dd3c604fbe906cb4421 ;;
    data_batch_4.bin) echo ae636b3ba5c66a11e91e8cb52e771fcb ;;
    data_batch_5.bin) echo 53f37980c15c3d472c316c40844f3f0d ;;
    test_batch.bin) echo 803d5f7f4d78ea53de84dbe85f74fb6d ;;
    test_batch_first1000.bin) echo 371f65da31ad652f5e24b3699a3e6515 ;;
    cifar10-test-jpeg-q75.tar.gz) echo 3dddd8169710c52c868c2d1810c0f675 ;;
    cifar10-test-jpeg-q75-index.txt) echo d2312980160d8ef1d0a06ccc9b06cecc ;;
    batches.meta.txt) echo 728051cd483f366e254dddb25bead8b3 ;;
    *) echo "" ;;
  esac
}

dest="" from="" copy=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dest) dest=$2; shift 2 ;;
    --from) from=$2; shift 2 ;;
    --copy) copy=1; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "cifar10.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ -z "$dest" ]; then
  if [ -z "${EQUIMOD_DATA_DIR:-}" ]; then
    echo "cifar10.sh: give --dest DIR or set EQUIMOD_DATA_DIR" >&2; exit 2
  fi
  dest=$EQUIMOD_DATA_DIR/cifar10
fi
mkdir -p "$dest"

md5() { md5sum "$1" | cut -d' ' -f1; }
# MD5 of the unpacked content of a file (gunzipped when it ends in .gz)
md5_content() {
  case "$1" in
    *.bin.gz) gzip -dc "$1" | md5sum | cut -d' ' -f1 ;;
    *) md5 "$1" ;;
  esac
}
place() { # place SRC NAME
  if [ "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")" = "$(cd "$dest" && pwd)/$2" ]; then return 0; fi
  rm -f "$dest/$2"
  if [ $copy = 1 ]; then cp "$1" "$dest/$2"; else ln -s "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")" "$dest/$2"; fi
}
fail=0
check_archive() {
  got=$(md5 "$1")
  if [ "$got" != "$ARCHIVE_MD5" ]; then
    echo "cifar10.sh: $1: MD5 $got, expected $ARCHIVE_MD5 (the official cifar-10-binary.tar.gz); not registered" >&2
    return 1
  fi
  echo "ok  cifar-10-binary.tar.gz (MD5 $got)"
}

if [ -z "$from" ]; then
  tmp="$dest/cifar-10-binary.tar.gz.part"
  if command -v curl >/dev/null; then curl -fL -o "$tmp" "$ARCHIVE_URL"
  elif command -v wget >/dev/null; then wget -O "$tmp" "$ARCHIVE_URL"
  else echo "cifar10.sh: need curl or wget (or use --from with a local copy)" >&2; exit 1; fi
  if check_archive "$tmp"; then mv "$tmp" "$dest/cifar-10-binary.tar.gz"; else rm -f "$tmp"; exit 1; fi
  echo "registered $dest (train: data_batch_1..5, test: official test_batch, read from the archive)"
  exit 0
fi

if [ -f "$from" ]; then
  check_archive "$from" || exit 1
  place "$from" cifar-10-binary.tar.gz
  echo "registered $dest (read from the archive)"
  exit 0
fi
if [ ! -d "$from" ]; then echo "cifar10.sh: $from: no such file or folder" >&2; exit 1; fi

found_train=0
for name in data_batch_1.bin data_batch_2.bin data_batch_3.bin data_batch_4.bin data_batch_5.bin \
            test_batch.bin test_batch_first1000.bin batches.meta.txt; do
  src=""
  for cand in "$from/cifar-10-batches-bin/$name" "$from/cifar-10-batches-bin/$name.gz" "$from/$name" "$from/$name.gz"; do
    if [ -f "$cand" ]; then src=$cand; break; fi
  done
  [ -n "$src" ] || continue
  want=$(md5_of_name "$name")
  got=$(md5_content "$src")
  if [ "$got" != "$want" ]; then
    echo "cifar10.sh: $src: MD5 of the content $got, expected $want; not registered" >&2
    fail=1; continue
  fi
  echo "ok  $name (MD5 $got, from $src)"
  mkdir -p "$dest/cifar-10-batches-bin"
  case "$src" in *.gz) suffix=.gz ;; *) suffix= ;; esac
  case "$name" in
    test_batch_first1000.bin) place "$src" "$name$suffix" ;;
    *) place "$src" "cifar-10-batches-bin/$name$suffix" ;;
  esac
  case "$name" in data_batch_*) found_train=$((found_train + 1)) ;; esac
done
for name in cifar10-test-jpeg-q75.tar.gz cifar10-test-jpeg-q75-index.txt; do
  [ -f "$from/$name" ] || continue
  want=$(md5_of_name "$name")
  got=$(md5 "$from/$name")
  if [ "$got" != "$want" ]; then
    echo "cifar10.sh: $from/$name: MD5 $got, expected $want; not registered" >&2
    fail=1; continue
  fi
  echo "ok  $name (MD5 $got)"
  place "$from/$name" "$name"
done
if [ $found_train -ne 5 ]; then
  echo "cifar10.sh: found $found_train of the 5 training batches in $from" >&2
  fail=1
fi
[ $fail = 0 ] && echo "registered $dest"
exit $fail
