#!/usr/bin/env python3
"""bench/scaling_projection.py: the cluster projection of bench/README.md (issue 13).

A model, not a measurement: per step and node, with N nodes and global batch B,
  t_c   = 3 (B / N) / r        compute: every image of the global batch is 3 backbone rows
                               (the original and two views; EquiMod), r = rows/s of a node
  t_ar  = 2 (N-1)/N G / bw     ring all-reduce of the gradient (G bytes), NOT overlapped with
                               the backbone's backward (only the heads' buckets are, today)
  t_bn  = 2 L ceil(log2 N) a   SyncBN: one small all-reduce per BN layer forward and one
                               backward, latency-bound (recursive doubling, a per message)
  t_ntx = 2 x 2 (N-1)/N (2 B x 128 x 4) / bw
                               gathered NT-Xent of both losses: all-gather forward and
                               reduce-scatter backward of 2B rows of 128 floats
  efficiency = t_c / (t_c + t_ar + t_bn + t_ntx)
Inputs (bench/README.md says where each comes from):
  r  ResNet-18-CIFAR: 32 cores x 36 backbone rows/s per core (bench/train-step, 1 thread);
     ResNet-50 at 224 px: 7.3x fewer (FLOPs per row, 4.1 G vs 0.56 G)
  G  4 bytes x trained floats: 22.2 M for configs/simclr_equimod_cifar10.ini (counted from its
     checkpoint: backbone 11.18 M, SimCLR head 5.52 M, EquiMod 5.56 M; matches the 89.7 MB
     that bench/scaling's rank 0 sent per step at N = 2, where 2(N-1)/N = 1), 40.9 M for
     configs/simclr_equimod_imagenet.ini (ResNet-50 23.5 M + two 2048-2048-2048-128 heads)
  L  BN layers: 26 (ResNet-18-CIFAR + heads), 59 (ResNet-50 + heads)
  a  25 us (10 Gbit/s Ethernet, TCP), 5 us (100 Gbit/s, RDMA)
Usage: python3 bench/scaling_projection.py   (prints the markdown table rows)
"""
import math

MODELS = [  # name, gradient bytes, node rows/s, BN layers, global batches
    ("ResNet-18-CIFAR", 4 * 22.2e6, 32 * 36.0, 26, [512, 1024]),
    ("ResNet-50-ImageNet", 4 * 40.9e6, 32 * 36.0 / 7.3, 59, [4096, 8192]),
]
NETWORKS = [("10 Gbit/s", 10e9 / 8, 25e-6), ("100 Gbit/s", 100e9 / 8, 5e-6)]
NODES = [8, 32, 128]


def terms(batch, nodes, grad_bytes, rows_s, bn_layers, bw, alpha):
    tc = 3 * (batch / nodes) / rows_s
    tar = 2 * (nodes - 1) / nodes * grad_bytes / bw
    tbn = 2 * bn_layers * math.ceil(math.log2(nodes)) * alpha
    tntx = 2 * 2 * (nodes - 1) / nodes * (2 * batch * 128 * 4) / bw
    return tc / (tc + tar + tbn + tntx), tc, tar, tbn, tntx


def main():
    print("| model, global batch | network | " + " | ".join(f"{n} nodes" for n in NODES) + " |")
    print("|---|---|" + "---|" * len(NODES))
    for name, g, r, layers, batches in MODELS:
        for b in batches:
            for net, bw, alpha in NETWORKS:
                cells = []
                for n in NODES:
                    e, tc, tar, tbn, tntx = terms(b, n, g, r, layers, bw, alpha)
                    cells.append(f"{e:.2f} (t_c {tc * 1e3:,.0f}, t_ar {tar * 1e3:.0f}, "
                                 f"t_bn {tbn * 1e3:.1f}, t_ntx {tntx * 1e3:.1f})")
                print(f"| {name}, {b} | {net} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
