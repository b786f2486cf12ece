#!/usr/bin/python3
"""bench/step_floor.py: a floor under a whole SimCLR+EquiMod bf16 step on one core.

Counts the step's work from the PyTorch step of bench/train_step_equimod_torch.py (the same
network equimod runs: forward hooks on every Conv2d, Linear and BatchNorm of the backbone and
heads, one forward at N = 1 scaled to the setting's batch, every count being linear in the
rows), and prices it at this core's measured ceilings (`bench/conv-layers --peak 1`):

  products  every conv and linear multiply-add of the forward, dX and dW (no dX for the stem
            and t's projector, whose inputs need no gradient), with the 3x3 stride-1 convs as
            equimod runs them (Winograd F(2x2, 3x3): 16 products a 2x2 output tile, tiles
            ceil(Ho/2) x ceil(Wo/2)), at the vdpbf16ps peak from registers;
  BN        the passes an unfused batch norm must make over each activation, at the one-core
            streaming read rate (writes cost at least as much): forward apply reads the bf16
            conv output and writes bf16 (4 B an element; the statistics come free in the
            conv's epilogue, as equimod's conv2d_forward_stats does), backward reads fp32
            dout and bf16 x twice and writes fp32 din (16 B).
Everything else (Winograd and layout transforms, conversions, pooling, residual adds, the
losses, LARS) is counted as free, so the floor is below what any implementation of this
arithmetic can reach; the gap between it and a measured step is what the kernels lose.
`--wino 4` prices the 3x3 convs as F(4x4, 3x3) instead (36 products a 4x4 tile), for the
what-if (bench/winograd_bf16_error.py measures what that costs in accuracy); `--wino 0` as
direct convolutions, every tap a product (PyTorch's oneDNN arithmetic).

Usage: step_floor.py [--setting r50|paper|quickstart] [--conv-layers _build/bench/conv-layers
       | --peak "peak bf16_gflops=... read_gbs=..."] [--step-s S] [--autocast-s A]
       [--target 1.3] [--wino 0|2|4]
--step-s and --autocast-s (measured step seconds of equimod bf16 and PyTorch autocast, from
bench/train-step at the same thread count) add the comparison lines.
Prints the work, the floor, and the last line `floor_s=F`.
"""
import argparse
import math
import os
import subprocess
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_step_equimod_torch as ts  # noqa: E402


def count(setting, wino):
    s = ts.SETTINGS[setting]
    torch.manual_seed(0)
    mods = ts.build(s)
    backbone, proj_t = mods[0], mods[3]
    w = dict(direct=0, wino=0, wino_taps=0, linear=0, bn=0)
    no_dx = {backbone.conv1, proj_t[0]}

    def hook(m, inp, out):
        x = inp[0]
        if isinstance(m, nn.Conv2d):
            kh, kw = m.kernel_size
            taps = out.numel() * m.in_channels * kh * kw // m.groups
            passes = 2 if m in no_dx else 3
            if wino and (kh, kw) == (3, 3) and m.stride == (1, 1) and m.groups == 1:
                n, _, ho, wo = out.shape
                tiles = math.ceil(ho / wino) * math.ceil(wo / wino)
                w["wino"] += passes * n * tiles * (wino + 2) ** 2 * m.in_channels * m.out_channels
                w["wino_taps"] += passes * taps
            else:
                w["direct"] += passes * taps
        elif isinstance(m, nn.Linear):
            w["linear"] += (2 if m in no_dx else 3) * x.shape[0] * m.in_features * m.out_features
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            w["bn"] += out.numel()

    for mod in mods:
        for m in mod.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm2d, nn.BatchNorm1d)):
                m.register_forward_hook(hook)
    n = 1  # rows scale linearly: count at N = 1, multiply by the batch
    with torch.no_grad():
        ts.forward(mods, torch.randn(3 * n, 3, s["px"], s["px"]), torch.randn(2 * n, ts.P_DIM), n)
    return {k: v * s["batch"] for k, v in w.items()}, s["batch"]


def peak_line(a):
    if a.peak:
        line = a.peak
    else:
        r = subprocess.run([a.conv_layers, "--peak", "1", "--reps", "3", "--threads", "1"],
                           capture_output=True, text=True, check=True)
        sys.stdout.write(r.stdout)
        line = r.stdout.strip().splitlines()[-1]
    kv = dict(f.split("=") for f in line.split()[1:] if "=" in f)
    return float(kv["bf16_gflops"]), float(kv["read_gbs"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--setting", default="r50", choices=sorted(ts.SETTINGS))
    ap.add_argument("--conv-layers", default="bench/conv-layers")
    ap.add_argument("--peak", default="")
    ap.add_argument("--step-s", type=float, default=0)
    ap.add_argument("--autocast-s", type=float, default=0)
    ap.add_argument("--target", type=float, default=1.3)
    ap.add_argument("--wino", type=int, default=2, choices=[0, 2, 4])
    a = ap.parse_args()
    torch.set_num_threads(1)
    gflops, gbs = peak_line(a)
    w, batch = count(a.setting, a.wino)
    mac = w["direct"] + w["wino"] + w["linear"]
    t_prod = 2 * mac / (gflops * 1e9)
    bn_bytes = 20 * w["bn"]
    t_bn = bn_bytes / (gbs * 1e9)
    floor = t_prod + t_bn
    print("# %s, batch %d (%d rows), one core: vdpbf16ps %.1f GFLOP/s, read %.2f GB/s"
          % (a.setting, batch, 3 * batch, gflops, gbs))
    print("products: %.1f GMAC = direct %.1f + Winograd F(%dx%d) %.1f (its taps %.1f) + linear %.1f"
          % (mac / 1e9, w["direct"] / 1e9, a.wino, a.wino, w["wino"] / 1e9,
             w["wino_taps"] / 1e9, w["linear"] / 1e9) if a.wino else
          "products: %.1f GMAC = direct %.1f (every tap) + linear %.1f"
          % (mac / 1e9, w["direct"] / 1e9, w["linear"] / 1e9))
    print("products at peak: %.2f s" % t_prod)
    print("BN: %.3f G elements x 20 B = %.1f GB at %.2f GB/s: %.2f s"
          % (w["bn"] / 1e9, bn_bytes / 1e9, gbs, t_bn))
    print("floor (products + BN, the rest free): %.2f s" % floor)
    if a.autocast_s:
        need = a.autocast_s / a.target
        print("target %.2fx autocast's %.2f s: a step of %.2f s; floor / that = %.2f; left for "
              "all but products and BN at their ceilings: %.2f s"
              % (a.target, a.autocast_s, need, floor / need, need - floor))
        print("floor / autocast = %.3f: the best ratio this arithmetic allows is %.3f"
              % (floor / a.autocast_s, a.autocast_s / floor))
    if a.step_s:
        print("measured step %.2f s = floor x %.2f; %.2f s above the floor"
              % (a.step_s, a.step_s / floor, a.step_s - floor))
    print("floor_s=%.3f" % floor)


if __name__ == "__main__":
    main()
