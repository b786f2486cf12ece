#!/usr/bin/python3
"""tests/shards/gen_fixtures.py: Pillow references for image crop_resize (check_image).

Writes fixtures/resize_ref.bin: for each case in CASES, the Pillow 9.4 output of
Image.resize((ow, oh), BILINEAR, box=(x0, y0, x0 + cw, y0 + ch)) of the test pattern
(su_pattern in shard_util.h: R = x*255//(w-1), G = y*255//(h-1), B = (seed*29) % 128 + (x+y)*127//(w+h))
as raw RGB bytes, cases concatenated. Run with /usr/bin/python3 (Debian's Pillow).
"""
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

if __name__ == "__main__":
    main()
