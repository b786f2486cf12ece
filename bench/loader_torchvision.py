#!/usr/bin/python3
"""bench/loader_torchvision.py: torchvision's SimCLR CIFAR-10 view pipeline on PIL images,
one process, one thread (the reference for bench/loader). Views per CPU-second
(time.process_time), so that other load on the machine does not count.

Usage: loader_torchvision.py DATA_DIR SECONDS
Pipeline (METHOD.md §3): RandomResizedCrop(32, scale=(0.2, 1), bicubic), RandomHorizontalFlip,
RandomApply([ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), RandomGrayscale(0.2), ToTensor,
Normalize. Images: the exact first 1,000 CIFAR-10 test images. Prints views_per_s=X.
"""
import gzip
import os
import sys
import time

import numpy as np
import torch
from PIL import Image
import torchvision.transforms as T

torch.set_num_threads(1)
data, secs = sys.argv[1], float(sys.argv[2])
raw = gzip.open(os.path.join(data, "cifar10", "test_batch_first1000.bin.gz")).read()
imgs = []
for i in range(1000):
    rec = np.frombuffer(raw[i * 3073 + 1:(i + 1) * 3073], dtype=np.uint8)
    imgs.append(Image.fromarray(rec.reshape(3, 32, 32).transpose(1, 2, 0).copy(), "RGB"))
tf = T.Compose([
    T.RandomResizedCrop(32, scale=(0.2, 1.0), interpolation=T.InterpolationMode.BICUBIC),
    T.RandomHorizontalFlip(),
    T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
    T.RandomGrayscale(p=0.2),
    T.ToTensor(),
    T.Normalize((0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261)),
])
for k in range(200):  # warm-up
    tf(imgs[k])
n, t0, w0 = 0, time.process_time(), time.perf_counter()
while True:
    for k in range(0, 1000):
        tf(imgs[k])
    n += 1000
    dt = time.process_time() - t0
    if time.perf_counter() - w0 > 10 * secs:
        break
    if dt >= secs:
        break
print(f"views_per_s={n / dt:.1f}")
