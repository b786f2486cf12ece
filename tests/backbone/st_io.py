"""tests/backbone/st_io.py: a minimal .safetensors reader/writer for torch tensors.

Debian has no python3-safetensors package, so the tests carry this (the format is an
8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}},
optional "__metadata__", then the raw little-endian data; see host/train/safetensors.h).
Left out: dtypes other than F32, F64, I64, I32.
"""
import json
import struct

import numpy as np
import torch

_DT = {"F32": (np.float32, 4), "F64": (np.float64, 8), "I64": (np.int64, 8),
       "I32": (np.int32, 4)}
_TO = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64", torch.int32: "I32"}


def save(path, tensors, metadata=None):
    """tensors: dict name -> torch tensor (written in dict order, back to back)."""
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    # larger elements first keeps every tensor aligned to its element size
    items = sorted(tensors.items(), key=lambda kv: -_DT[_TO[kv[1].dtype]][1])
    for name, t in items:
        t = t.detach().contiguous().cpu()
        dt = _TO[t.dtype]
        b = t.numpy().astype(_DT[dt][0]).tobytes()
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load(path):
    """Returns (dict name -> torch tensor, metadata dict)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    out = {}
    base = 8 + n
    for name, e in header.items():
        np_dt, size = _DT[e["dtype"]]
        b, end = e["data_offsets"]
        a = np.frombuffer(raw[base + b:base + end], dtype=np_dt).copy()
        out[name] = torch.from_numpy(a.reshape(e["shape"]))
    return out, meta
