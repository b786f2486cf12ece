#!/usr/bin/python3
"""bench/winograd_bf16_error.py: how much numerical error Winograd adds to a 3x3 stride-1
conv (padding 1) when its element-wise products are done in bf16, F(2x2,3x3) vs F(4x4,3x3).

Emulated (torch, CPU, float32 wherever the C code is fp32, host/nn/winograd.c + conv2d.c):
  direct bf16 : x and w rounded to bf16 (round-to-nearest-even), products summed in fp32.
  F(m) bf16   : V = B^T d B and U = G g G^T in fp32, V and U rounded to bf16, M = sum over
                C_in of V*U in fp32, Y = A^T M A in fp32 (pad to whole tiles, crop).
  F(m) fp32   : the same without the bf16 rounding; direct fp32 likewise, for context.
  F(2x2): Lavin & Gray points 0,+-1,inf (the C code's matrices). F(4x4): Lavin & Gray points
  0,+-1,+-2,inf. F(4x4) h: points 0,+-1,+-1/2,inf (built by the same Toom-Cook rule that
  reproduces the L&G F(4x4) matrices, which is asserted). Every method's fp64 run must
  match fp64 direct conv to 1e-12 relative (asserted), so the matrices are right.
Reference: fp64 direct conv of the original (unrounded) fp32 x and w.
Not emulated: an input already stored in bf16 (EQM_NN_IN_BF16, the bf16 step's activations),
  where x's rounding costs every method the same and Winograd still rounds V.
Inputs: ResNet-like shapes, C_out = C_in, x = relu(randn) (post BN-ReLU activations),
  w ~ N(0, 2/(9 C_in)) (Kaiming); the "dX" row uses x = randn (signed, zero-mean, like a
  gradient fed through the forward in the stride-1 dX). Seeded (torch.manual_seed(i)).

Run:  bench/winograd_bf16_error.py   (Debian's /usr/bin/python3 with python3-torch and numpy;
  1 thread, about 2 s). Output, one row per shape and method:
  rel_fro = ||Y - Yref||_F / ||Yref||_F;  max/rms = max|Y - Yref| / RMS(Yref);
  x_dir_fro, x_dir_max = the bf16 method's two errors divided by direct bf16's ('-' for fp32).
  The last line gives the worst (largest) x_dir_fro and x_dir_max over the shapes.
"""
import time
from fractions import Fraction as Fr

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)

# Lavin & Gray (2016) matrices, written out.
BT2 = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
G2 = [[1, 0, 0], [Fr(1, 2), Fr(1, 2), Fr(1, 2)], [Fr(1, 2), Fr(-1, 2), Fr(1, 2)], [0, 0, 1]]
AT2 = [[1, 1, 1, 0], [0, 1, -1, -1]]
BT4 = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
       [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
G4 = [[Fr(1, 4), 0, 0], [Fr(-1, 6), Fr(-1, 6), Fr(-1, 6)], [Fr(-1, 6), Fr(1, 6), Fr(-1, 6)],
      [Fr(1, 24), Fr(1, 12), Fr(1, 6)], [Fr(1, 24), Fr(-1, 12), Fr(1, 6)], [0, 0, 1]]
AT4 = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]


def toom_cook(points, m, r=3):
    """F(m, r) matrices (exact fractions) for finite points + infinity, L&G's scaling:
    B^T row i = coefficients of prod_{j!=i}(x - p_j) (last row: prod over all j),
    G row i = p_i^k / prod_{j!=i}(p_i - p_j), A^T column i = p_i^k (last: e_{m-1})."""
    p = [Fr(v) for v in points]
    n = m + r - 1
    assert len(p) == n - 1

    def poly(roots):  # coefficients, lowest degree first, padded to n
        c = [Fr(1)]
        for a in roots:
            c = [Fr(0)] + c
            for k in range(len(c) - 1):
                c[k] -= a * c[k + 1]
        return c + [Fr(0)] * (n - len(c))

    BT = [poly(p[:i] + p[i + 1:]) for i in range(n - 1)] + [poly(p)]
    G = []
    for i in range(n - 1):
        N = Fr(1)
        for j in range(n - 1):
            if j != i:
                N *= p[i] - p[j]
        G.append([p[i] ** k / N for k in range(r)])
    G.append([Fr(0)] * (r - 1) + [Fr(1)])
    AT = [[p[i] ** k for i in range(n - 1)] + [Fr(int(k == m - 1))] for k in range(m)]
    return BT, G, AT


assert toom_cook([0, 1, -1, 2, -2], 4) == tuple(
    [[Fr(v) for v in row] for row in M] for M in (BT4, G4, AT4)), "L&G F(4x4) != Toom-Cook"
BT4h, G4h, AT4h = toom_cook([0, 1, -1, Fr(1, 2), Fr(-1, 2)], 4)
WINO = {"F(2x2)": (2, BT2, G2, AT2), "F(4x4)": (4, BT4, G4, AT4),
        "F(4x4) h": (4, BT4h, G4h, AT4h)}


def bf16(t):
    return t.to(torch.bfloat16).to(torch.float32)  # round to nearest even


assert bf16(torch.tensor([1 + 2**-8, 1 + 3 * 2**-8])).tolist() == [1.0, 1 + 2**-6], "not RNE"


def winograd(x, w, m, BT, G, AT, dtype, round_bf16):
    """3x3 stride-1 pad-1 conv of x (N,C,H,W) with w (K,C,3,3) by F(m x m, 3x3)."""
    BT, G, AT = (torch.tensor([[float(v) for v in row] for row in M], dtype=torch.float64)
                 .to(dtype) for M in (BT, G, AT))  # fp64 -> dtype: one rounding of 1/6 etc.
    x, w = x.to(dtype), w.to(dtype)
    N, C, H, W = x.shape
    K, n = w.shape[0], m + 2
    th, tw = -(-H // m), -(-W // m)
    xp = F.pad(x, (1, tw * m + 1 - W, 1, th * m + 1 - H))  # zeros: padding + whole tiles
    d = xp.unfold(2, n, m).unfold(3, n, m)  # (N, C, th, tw, n, n)
    V = torch.einsum("ij,ncyxjk,lk->ilnyxc", BT, d, BT).reshape(n * n, N * th * tw, C)
    U = torch.einsum("ia,kcab,jb->ijck", G, w, G).reshape(n * n, C, K)
    if round_bf16:
        V, U = bf16(V), bf16(U)
    Mt = torch.bmm(V, U).reshape(n, n, N, th, tw, K)  # sum over C in `dtype`
    Y = torch.einsum("ai,ijnyxk,bj->nkyaxb", AT, Mt, AT).reshape(N, K, th * m, tw * m)
    return Y[:, :, :H, :W]


def errors(Y, ref):
    e = (Y.double() - ref).abs()
    rms = ref.pow(2).mean().sqrt()
    return (e.pow(2).sum().sqrt() / ref.pow(2).sum().sqrt()).item(), (e.max() / rms).item()


SHAPES = [  # (label, N, C, H, input kind)
    ("4x64x28x28", 4, 64, 28, "relu"), ("4x128x28x28", 4, 128, 28, "relu"),
    ("8x256x14x14", 8, 256, 14, "relu"), ("8x512x7x7", 8, 512, 7, "relu"),
    ("dX 4x128x28x28", 4, 128, 28, "randn")]


def main():
    t0 = time.time()
    print(f"torch {torch.__version__}, numpy {np.__version__}, threads {torch.get_num_threads()}")
    hdr = f"{'shape':<16} {'method':<17} {'rel_fro':>10} {'max/rms':>10} {'x_dir_fro':>10} {'x_dir_max':>10}"
    print(hdr + "\n" + "-" * len(hdr))
    worst, fp64_chk = {}, 0.0
    for i, (label, N, C, H, kind) in enumerate(SHAPES):
        torch.manual_seed(i)
        x = torch.randn(N, C, H, H)
        x = torch.relu(x) if kind == "relu" else x
        w = torch.randn(C, C, 3, 3) * (2.0 / (9 * C)) ** 0.5
        ref = F.conv2d(x.double(), w.double(), padding=1)
        res = {"direct fp32": F.conv2d(x, w, padding=1),
               "direct bf16": F.conv2d(bf16(x), bf16(w), padding=1)}
        assert res["direct bf16"].dtype == torch.float32
        for name, (m, BT, G, AT) in WINO.items():
            y64 = winograd(x, w, m, BT, G, AT, torch.float64, False)
            chk = errors(y64, ref)[0]
            assert chk < 1e-12, f"{name} fp64 Winograd vs fp64 direct: {chk:.2e}"
            fp64_chk = max(fp64_chk, chk)
            res[name + " fp32"] = winograd(x, w, m, BT, G, AT, torch.float32, False)
            res[name + " bf16"] = winograd(x, w, m, BT, G, AT, torch.float32, True)
        dir_fro, dir_max = errors(res["direct bf16"], ref)
        for name, Y in res.items():
            assert Y.dtype == torch.float32 and Y.shape == ref.shape
            fro, mx = errors(Y, ref)
            r = f"{'':>10} {'':>10}"
            if name.endswith("bf16"):
                rf, rm = fro / dir_fro, mx / dir_max
                r = f"{rf:>10.2f} {rm:>10.2f}"
                wf, wm = worst.get(name, (0.0, 0.0))
                worst[name] = (max(wf, rf), max(wm, rm))
            print(f"{label:<16} {name:<17} {fro:>10.3e} {mx:>10.3e} {r}")
        print()
    s = lambda k: f"{worst[k][0]:.2f} x (max-error metric {worst[k][1]:.2f} x)"
    print(f"summary: F(2x2) bf16 error = {s('F(2x2) bf16')} direct bf16, "
          f"F(4x4) bf16 = {s('F(4x4) bf16')} direct bf16, F(4x4) h bf16 = "
          f"{s('F(4x4) h bf16')} direct bf16 (worst over shapes, rel Frobenius)")
    print(f"fp64 Winograd vs fp64 direct, worst rel_fro over all methods and shapes: "
          f"{fp64_chk:.1e} (asserted < 1e-12)")
    print(f"runtime {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
