#!/bin/sh
# tests/backbone/torch_load.sh: run torch_load.py (an exported ResNet-18 loads into
# torchvision with strict=True and matches equimod's forward) when /usr/bin/python3 has
# torch and torchvision; exit 77 (skip) otherwise.
PY=/usr/bin/python3
if ! [ -x "$PY" ] || ! "$PY" -c 'import torch, torchvision, numpy' >/dev/null 2>&1; then
    echo "SKIP: $PY with torch, torchvision and numpy not found"
    exit 77
fi
SRC=${EQM_SRCDIR:-$(dirname "$0")/../..}
exec "$PY" "$SRC/tests/backbone/torch_load.py"
