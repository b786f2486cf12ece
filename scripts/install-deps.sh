#!/bin/sh
# Install the Debian 12 packages equimod needs to build, test and run (Open MPI for
# data-parallel training: configure builds with MPI when it finds it).
# Usage: scripts/install-deps.sh [--with-python]   (run as root, or with sudo available)
#   clang-14 + libclang-rt-14-dev (libFuzzer) are for `make fuzz` and the fuzz smoke only.
#   --with-python also installs python3-torch/torchvision/numpy/pil, needed only to
#   regenerate reference fixtures and to run the side-by-side benchmarks in bench/.
#   chromium renders `equimod report` pages headless in tests/sweep/check_report_browser.
set -eu
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
PKGS="build-essential autoconf automake libtool pkg-config make
      libopenblas-dev liburing-dev libarchive-dev libturbojpeg0-dev libjpeg62-turbo-dev
      zlib1g-dev check libsubunit-dev libinih-dev libjansson-dev libpng-dev
      libopenmpi-dev openmpi-bin
      chromium
      clang-14 libclang-rt-14-dev"
if [ "${1:-}" = "--with-python" ]; then
  PKGS="$PKGS python3 python3-torch python3-torchvision python3-numpy python3-pil libtcmalloc-minimal4"
fi
export DEBIAN_FRONTEND=noninteractive
# Skip the network round-trip when everything is already there.
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  $SUDO apt-get install -y -qq --no-install-recommends $missing
fi
