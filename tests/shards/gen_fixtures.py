#!/usr/bin/python3
"""tests/shards/gen_fixtures.py: Pillow references for the image service's resampling
(check_image).

Writes fixtures/resize_ref.bin: for each case in CASES, the Pillow 9.4 output of
Image.resize((ow, oh), BILINEAR, box=(x0, y0, x0 + cw, y0 + ch)) of the test pattern
(su_pattern in shard_util.h: R = x*255//(w-1), G = y*255//(h-1), B = (seed*29) % 128 + (x+y)*127//(w+h))
as raw RGB bytes, cases concatenated.
Writes fixtures/resample_ref.bin: for each case in RESAMPLE_CASES, on a noise image
(NOISE_W x NOISE_H, bytes of the LCG st = st * 1664525 + 1013904223 (mod 2^32), byte =
st >> 24, from st = 777, row-major; "L" takes the first NOISE_W * NOISE_H bytes, "RGB" the
first 3 * NOISE_W * NOISE_H), the raw bytes of Pillow's
  crop = 0: im.resize((ow, oh), filter, box=(x, y, x + w, y + h))
  crop = 1: im.crop(window).resize((ow, oh), filter, box=(x - x0, y - y0, x - x0 + w,
            y - y0 + h)), window = (x0, y0, x1, y1) = (floor(x), floor(y), ceil(x + w),
            ceil(y + h))  (api->image->resample with EQM_RESAMPLE_CROP)
cases concatenated. Box values are exact in float (Pillow takes the box as float).
Run with /usr/bin/python3 (Debian's Pillow).
"""
import math
import os
from PIL import Image

W, H, SEED = 23, 17, 3
CASES = [  # (x0, y0, cw, ch, ow, oh)
    (0.0, 0.0, 23.0, 17.0, 10, 7),   # downscale, whole image
    (2.5, 1.25, 17.5, 14.25, 9, 8),  # fractional box
    (0.0, 0.0, 23.0, 17.0, 40, 31),  # upscale
    (4.0, 3.0, 8.0, 6.0, 24, 24),    # crop + upscale (RandomResizedCrop-like)
]

def pattern(w, h, seed):
    im = Image.new("RGB", (w, h))
    px = im.load()
    for y in range(h):
        for x in range(w):
            px[x, y] = (x * 255 // (w - 1), y * 255 // (h - 1), (seed * 29) % 128 + (x + y) * 127 // (w + h))
    return im

NOISE_W, NOISE_H = 61, 47
RESAMPLE_CASES = [  # (mode, filter, crop, x, y, w, h, ow, oh)
    ("RGB", "bilinear", 0, 0.0, 0.0, 61.0, 47.0, 20, 15),      # downscale, whole image
    ("RGB", "bicubic", 0, 0.0, 0.0, 61.0, 47.0, 20, 15),
    ("RGB", "bicubic", 0, 3.5, 2.25, 40.5, 30.75, 90, 70),     # fractional box, upscale
    ("RGB", "bicubic", 1, 5.0, 4.0, 30.0, 20.0, 32, 32),       # crop + resize (RandomResizedCrop)
    ("RGB", "bilinear", 1, 5.0, 4.0, 30.0, 20.0, 13, 9),
    ("RGB", "bicubic", 1, 2.375, 1.75, 55.125, 44.5, 16, 12),  # fractional window (apply_scaled)
    ("RGB", "bicubic", 0, 2.375, 1.75, 55.125, 44.5, 16, 12),  # the same box, taps around it
    ("RGB", "bicubic", 1, 0.0, 0.0, 61.0, 47.0, 61, 30),       # one axis unchanged
    ("L", "bicubic", 1, 7.0, 3.0, 37.0, 41.0, 45, 19),
    ("L", "bilinear", 0, 1.5, 0.5, 58.0, 45.0, 33, 47),
]

def noise(n):
    st, out = 777, bytearray(n)
    for i in range(n):
        st = (st * 1664525 + 1013904223) & 0xFFFFFFFF
        out[i] = st >> 24
    return bytes(out)

def resample_ref():
    out = bytearray()
    filters = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}
    for (mode, flt, crop, x, y, w, h, ow, oh) in RESAMPLE_CASES:
        ch = 3 if mode == "RGB" else 1
        im = Image.frombytes(mode, (NOISE_W, NOISE_H), noise(NOISE_W * NOISE_H * ch))
        if crop:
            x0, y0 = math.floor(x), math.floor(y)
            win = (x0, y0, min(NOISE_W, math.ceil(x + w)), min(NOISE_H, math.ceil(y + h)))
            r = im.crop(win).resize((ow, oh), filters[flt],
                                    box=(x - x0, y - y0, x - x0 + w, y - y0 + h))
        else:
            r = im.resize((ow, oh), filters[flt], box=(x, y, x + w, y + h))
        out += r.tobytes()
    return out

def main():
    im = pattern(W, H, SEED)
    out = bytearray()
    for (x0, y0, cw, ch, ow, oh) in CASES:
        r = im.resize((ow, oh), Image.BILINEAR, box=(x0, y0, x0 + cw, y0 + ch))
        out += r.tobytes()
    d = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "resize_ref.bin"), "wb") as f:
        f.write(out)
    print(len(out), "bytes")
    rr = resample_ref()
    with open(os.path.join(d, "resample_ref.bin"), "wb") as f:
        f.write(rr)
    print(len(rr), "bytes")

if __name__ == "__main__":
    main()
