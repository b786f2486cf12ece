#!/usr/bin/python3
"""bench/shards_torchvision.py: the torchvision + PIL reference for bench/shards.

One process, one thread (torch.set_num_threads(1)). For each JPEG member of the given tar
shards, in a loop for --seconds: decode once with PIL (open + convert RGB), then make three
views at 224 as EquiMod's loader does:
  original: Resize(256, bilinear) + CenterCrop(224) + ToTensor + Normalize
  2 x view: RandomResizedCrop(224) + RandomHorizontalFlip + RandomApply(ColorJitter(0.4, 0.4,
            0.4, 0.1), p=0.8) + RandomGrayscale(0.2) + ToTensor + Normalize
(the configuration of BENCH-REFERENCE.md's "decode ONCE + 2 views" row, plus the original).
Prints `torchvision_img_per_s=R n=N`. Run with Debian's /usr/bin/python3 (torch 1.13,
torchvision 0.14).
"""
import argparse
import io
import tarfile
import time

import torch
from PIL import Image
from torchvision import transforms as T


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--two-views-only", action="store_true",
                    help="decode + 2 views (the BENCH-REFERENCE row), no original view")
    ap.add_argument("shards", nargs="+")
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    jpgs = []
    for s in a.shards:
        with tarfile.open(s) as t:
            for m in t.getmembers():
                if m.isfile() and m.name.endswith(".jpg"):
                    jpgs.append(t.extractfile(m).read())
    norm = T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    orig = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), norm])
    view = T.Compose([
        T.RandomResizedCrop(224),
        T.RandomHorizontalFlip(),
        T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        T.RandomGrayscale(p=0.2),
        T.ToTensor(),
        norm,
    ])
    n = 0
    t0 = time.perf_counter()
    while True:
        for b in jpgs:
            img = Image.open(io.BytesIO(b)).convert("RGB")
            if not a.two_views_only:
                orig(img)
            view(img)
            view(img)
            n += 1
            if n % 8 == 0 and time.perf_counter() - t0 >= a.seconds:
                break
        else:
            continue
        break
    dt = time.perf_counter() - t0
    print("torchvision_img_per_s=%.2f n=%d" % (n / dt, n))


if __name__ == "__main__":
    main()
