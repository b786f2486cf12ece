#!/usr/bin/python3
"""bench/train_step_torch.py: the PyTorch side of bench/train-step.

One ResNet-18-CIFAR (torchvision resnet18, conv1 3x3/1, no max pool, fc 512->10)
training step = forward, cross-entropy, backward, SGD (momentum 0.9, wd 5e-4) on random
32x32 images, in the tuned setting of BENCH-REFERENCE.md: channels_last, explicit thread
count (torch defaults to 1 thread here), tcmalloc preloaded by the caller (LD_PRELOAD).
Usage: train_step_torch.py BATCH STEPS WARMUP THREADS [wall|cpu] [fp32|bf16]
bf16: forward and loss under torch.autocast("cpu", dtype=torch.bfloat16) (PyTorch's CPU
mixed precision: convs and linears in bf16, fp32 master weights and optimizer).
Prints one line:  torch img_s=<images/s> step_s=<median s> rss_mib=<peak RSS MiB>
(cpu: images/s from process CPU seconds per step, for a loaded shared machine)
"""
import resource
import sys
import time

import torch
import torchvision


def main():
    batch, steps, warmup, threads = (int(a) for a in sys.argv[1:5])
    clock = time.process_time if len(sys.argv) > 5 and sys.argv[5] == "cpu" else time.perf_counter
    bf16 = len(sys.argv) > 6 and sys.argv[6] == "bf16"
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    m = torchvision.models.resnet18(num_classes=10)
    m.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    m.maxpool = torch.nn.Identity()
    m = m.to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(batch, 3, 32, 32).to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    times = []
    for i in range(warmup + steps):
        t0 = clock()
        opt.zero_grad(set_to_none=False)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(m(x), y)
        loss.backward()
        opt.step()
        t1 = clock()
        if i >= warmup:
            times.append(t1 - t0)
    times.sort()
    med = times[len(times) // 2]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("torch img_s=%.2f step_s=%.4f rss_mib=%.1f threads=%d" % (batch / med, med, rss,
                                                                  torch.get_num_threads()))


if __name__ == "__main__":
    main()
