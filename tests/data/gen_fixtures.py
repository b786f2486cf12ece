#!/usr/bin/python3
"""tests/data/gen_fixtures.py: reference outputs of torchvision 0.14 functional ops on PIL
images (Pillow 9.4) for the augmentation plugins, on real CIFAR-10 images.

Run:  EQUIMOD_DATA_DIR=/path/to/data /usr/bin/python3 tests/data/gen_fixtures.py
Writes tests/data/fixtures/augment.bin.gz (read by tests/data/check_augment.c):
  "EQMAUGF1", int32 n_images, n_images x (32*32*3 uint8, HWC),
  int32 n_cases, then per case: op (24 bytes, NUL padded), int32 image, int32 n_params,
  float32 params[16], int32 opt[4], int32 out_w, out_h, out_c, out_fmt (0 uint8, 1 float32),
  then out_h*out_w*out_c values.
Images: official test records 0, 1, 2, 3, 7, 42 (exact, from test_batch_first1000.bin.gz).
"""
import gzip
import os
import struct
import sys

import numpy as np
import torch
from PIL import Image
import torchvision.transforms.functional as F
from torchvision.transforms import InterpolationMode

IDX = [0, 1, 2, 3, 7, 42]
data = os.environ.get("EQUIMOD_DATA_DIR")
if not data:
    sys.exit("set EQUIMOD_DATA_DIR")
raw = gzip.open(os.path.join(data, "cifar10", "test_batch_first1000.bin.gz")).read()
imgs = []
for i in IDX:
    rec = np.frombuffer(raw[i * 3073 + 1:(i + 1) * 3073], dtype=np.uint8)
    imgs.append(rec.reshape(3, 32, 32).transpose(1, 2, 0).copy())
pil = [Image.fromarray(a, "RGB") for a in imgs]

cases = []


def add(op, k, params, opt, out):
    a = np.asarray(out)
    if isinstance(out, Image.Image):
        a = np.array(out)
        if a.ndim == 2:
            a = a[:, :, None]
    fmt = 0 if a.dtype == np.uint8 else 1
    if fmt == 1:
        a = a.astype(np.float32)
    cases.append((op, k, params, opt, a, fmt))


BIC, BIL = InterpolationMode.BICUBIC, InterpolationMode.BILINEAR
crops = [(0, 0, 32, 32, 32, 1), (3, 5, 17, 21, 32, 1), (10, 2, 9, 13, 32, 1), (1, 0, 31, 24, 32, 0),
         (0, 4, 28, 28, 20, 1), (5, 5, 20, 12, 48, 1), (2, 3, 30, 29, 16, 0)]
for k in range(len(pil)):
    for (i, j, h, w, size, bic) in crops[k % 3::2] if k > 1 else crops:
        add("rrc", k, [i, j, h, w], [size, bic, 0, 0],
            F.resized_crop(pil[k], i, j, h, w, [size, size], BIC if bic else BIL))
    add("flip", k, [1], [0, 0, 0, 0], F.hflip(pil[k]))
    add("gray", k, [1], [0, 0, 0, 0], F.rgb_to_grayscale(pil[k], 3))
    add("solarize", k, [1], [128, 0, 0, 0], F.solarize(pil[k], 128))
    add("normalize", k, [], [0, 0, 0, 0],
        F.normalize(F.to_tensor(pil[k]), [0.4914, 0.4822, 0.4465], [0.247, 0.243, 0.261])
        .permute(1, 2, 0).numpy())

# colour jitter: single operations (mask of enabled ops) and full random-order chains
fns = [F.adjust_brightness, F.adjust_contrast, F.adjust_saturation, F.adjust_hue]
singles = [(0, 0.6), (0, 1.37), (1, 0.61), (1, 1.4), (2, 0.0), (2, 0.65), (2, 1.33), (3, 0.1),
           (3, -0.1), (3, 0.047), (3, -0.5), (3, 0.5)]
for k in range(len(pil)):
    for (op, f) in singles[k % 2::2] if k > 0 else singles:
        p = [1, op, (op + 1) % 4, (op + 2) % 4, (op + 3) % 4, 1.0, 1.0, 1.0, 0.0]
        p[5 + op] = f
        add("jitter", k, p, [1 << op, 0, 0, 0], fns[op](pil[k], f))
chains = [([2, 0, 3, 1], [1.21, 0.77, 1.3, -0.07]), ([0, 1, 2, 3], [0.62, 1.38, 0.9, 0.1]),
          ([3, 2, 1, 0], [1.05, 0.95, 0.6, 0.033]), ([1, 3, 0, 2], [1.39, 1.1, 1.4, -0.099])]
for k in range(len(pil)):
    for order, fac in chains[k % 2::2] if k > 0 else chains:
        x = pil[k]
        for op in order:
            x = fns[op](x, fac[op])
        add("jitter", k, [1] + order + fac, [15, 0, 0, 0], x)

# gaussian blur (tensor path of torchvision on the PIL image)
for k in range(len(pil)):
    for (ks, s) in [(3, 0.1), (3, 0.73), (3, 2.0), (5, 1.3)]:
        add("blur", k, [1, s], [ks, 0, 0, 0], F.gaussian_blur(pil[k], [ks, ks], [s, s]))

# evaluation preprocessing
for k in range(len(pil)):
    add("resize", k, [], [36, 1, 0, 0], F.resize(pil[k], 36, BIC))
    add("resize", k, [], [24, 0, 0, 0], F.resize(pil[k], 24, BIL))
    add("center_crop", k, [], [25, 0, 0, 0], F.center_crop(pil[k], 25))

out = bytearray(b"EQMAUGF1")
out += struct.pack("<i", len(imgs))
for a in imgs:
    out += a.tobytes()
out += struct.pack("<i", len(cases))
for op, k, params, opt, a, fmt in cases:
    pp = list(map(float, params)) + [0.0] * (16 - len(params))
    out += op.encode().ljust(24, b"\0")
    out += struct.pack("<ii", k, len(params))
    out += struct.pack("<16f", *pp)
    out += struct.pack("<4i", *opt)
    h, w, c = a.shape
    out += struct.pack("<4i", w, h, c, fmt)
    out += np.ascontiguousarray(a).tobytes()
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "augment.bin.gz")
with open(path, "wb") as f:
    f.write(gzip.compress(bytes(out), 9, mtime=0))
print(f"{path}: {len(cases)} cases, {len(out)} bytes raw")
