#!/usr/bin/python3
"""tests/probe/gen_fixture.py: a PyTorch reference of the ridge read-out of host/eval/probe.c
(`equimod probe`), written from the protocol in host/eval/probe.h, not from the C code.

Writes tests/probe/fixtures/ridge.txt (small text file, committed):
  * "solve d k lam" then G (d x d), C (d x k) and W = torch.linalg.solve(G + lam I, C), all
    float64 (%.17g): the Cholesky solve against a direct solution;
  * "probe n d P n_groups" then the groups (first count), F (n x d float32, %.9g), T (n x P),
    the part of each row (0 fit, 1 validation, 2 test), and the expected lambda, validation
    R^2 and test R^2 of each group, the pooled R^2 and the test R^2 of each field.
Run with the Debian interpreter (torch 1.13): /usr/bin/python3 tests/probe/gen_fixture.py"""
import os

import torch

LAMBDAS = [1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0]


def fmt(v, f="%.17g"):
    return " ".join(f % x for x in v)


def probe(F, T, part, groups):
    """The protocol of probe.h in float64."""
    F = F.double()
    T = T.double()
    fit, val, test = (part == 0), (part == 1), (part == 2)
    mu = F[fit].mean(0)
    sd = F[fit].std(0, unbiased=False)
    sd = torch.where(sd > 1e-6 * mu.abs(), sd, torch.zeros_like(sd))
    X = torch.where(sd > 0, (F - mu) / torch.where(sd > 0, sd, torch.ones_like(sd)),
                    torch.zeros_like(F))
    tm = T[fit].mean(0)
    ts = T[fit].std(0, unbiased=False)
    ts = torch.where(ts > 1e-6 * tm.abs(), ts, torch.zeros_like(ts))
    Y = torch.where(ts > 0, (T - tm) / torch.where(ts > 0, ts, torch.ones_like(ts)),
                    torch.zeros_like(T))
    nf = int(fit.sum())
    G = X[fit].T @ X[fit]
    C = X[fit].T @ Y[fit]
    d = F.shape[1]

    def sst(mask):
        y = Y[mask]
        return ((y - y.mean(0)) ** 2).sum(0) * (ts > 0)

    sst_v, sst_t = sst(val), sst(test)
    sse_v, sse_t = [], []
    for lam in LAMBDAS:
        W = torch.linalg.solve(G + lam * nf * torch.eye(d, dtype=torch.float64), C)
        sse_v.append(((X[val] @ W - Y[val]) ** 2).sum(0))
        sse_t.append(((X[test] @ W - Y[test]) ** 2).sum(0))
    out = []
    field_r2 = [float("nan")] * T.shape[1]
    all_e = all_s = 0.0
    for first, count in groups:
        sl = slice(first, first + count)
        sv, st = float(sst_v[sl].sum()), float(sst_t[sl].sum())
        if sv <= 0 or st <= 0:  # nothing varies: no R^2
            out.append((float("nan"),) * 3)
            continue
        best, best_r2 = None, -float("inf")
        for li in range(len(LAMBDAS)):
            r2 = 1 - float(sse_v[li][sl].sum()) / sv
            if r2 >= best_r2:
                best, best_r2 = li, r2
        e = float(sse_t[best][sl].sum())
        for j in range(first, first + count):
            field_r2[j] = 1 - float(sse_t[best][j]) / float(sst_t[j])
        out.append((LAMBDAS[best], best_r2, 1 - e / st))
        all_e += e
        all_s += st
    return out, 1 - all_e / all_s, field_r2


def main():
    torch.manual_seed(12)
    lines = []
    # 1. the solve
    d, k, lam = 7, 3, 0.25
    A = torch.randn(20, d, dtype=torch.float64)
    G = A.T @ A
    C = torch.randn(d, k, dtype=torch.float64)
    W = torch.linalg.solve(G + lam * torch.eye(d, dtype=torch.float64), C)
    lines.append("solve %d %d %.17g" % (d, k, lam))
    lines += [fmt(r) for r in G.tolist()] + [fmt(r) for r in C.tolist()]
    lines += [fmt(r) for r in W.tolist()]
    # 2. the read-out: t fields partly linear in the features, partly not
    n, d, P = 240, 6, 5
    F = torch.randn(n, d).float()
    F[:, 5] = 3.0  # a constant feature
    T = torch.empty(n, P)
    T[:, 0] = 2 * F[:, 0] - F[:, 3] + 0.3 * torch.randn(n)
    T[:, 1] = F[:, 1] ** 2 + 0.5 * torch.randn(n)
    T[:, 2] = torch.randn(n)
    T[:, 3] = (F[:, 2] > 0).float()
    T[:, 4] = 1.0  # a constant field (its group has nothing to predict)
    T = T.float()
    part = torch.tensor([[0, 0, 0, 1, 2][i % 5] for i in range(n)])
    groups = [(0, 2), (2, 2), (4, 1)]
    res, r2_all, field_r2 = probe(F, T, part, groups)
    lines.append("probe %d %d %d %d" % (n, d, P, len(groups)))
    lines += ["%d %d" % g for g in groups]
    lines += [fmt(r, "%.9g") for r in F.tolist()]
    lines += [fmt(r, "%.9g") for r in T.tolist()]
    lines.append(" ".join(str(int(p)) for p in part))
    for lam_, vr2, tr2 in res:
        lines.append("%.17g %.17g %.17g" % (lam_, vr2, tr2))
    lines.append("%.17g" % r2_all)
    lines.append(fmt(field_r2))
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "fixtures", "ridge.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
