#!/usr/bin/python3
"""tests/train/gen_fixtures.py: PyTorch reference values for host/train/optim.c.

Writes tests/train/fixtures/optim.txt (small text file, committed) holding:
  * LARSW exactly as METHOD.md §9 (ADevillers/EquiMod src/lars.py, written from the
    description: wd added to the gradient, trust ratio eta*||w||/||g||, lr inside the
    momentum buffer, no Nesterov, no dampening), two parameter groups: decay/LARS tensors
    and BN/bias tensors (wd 0, lars_weight 0);
  * torch.optim.SGD momentum 0.9 with Nesterov (the linear-probe optimizer);
  * the lr of PyTorch's SequentialLR(LinearLR(1e-8 -> 1), CosineAnnealingLR(eta_min 1e-8))
    per step, and of CosineAnnealingLR down to 1e-4 (linear probe);
  * the BYOL EMA tau per step.
Run with the Debian interpreter (torch 1.13): /usr/bin/python3 tests/train/gen_fixtures.py
Format: lines "name n v0 v1 ..." (floats as %.9g, schedule values as %.17g)."""
import math
import os

import torch


class LARSW(torch.optim.Optimizer):
    """METHOD.md §9, step by step."""

    def __init__(self, params, lr, momentum=0.9, weight_decay=0.0, eta=1e-3, lars_weight=1.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                                      eta=eta, lars_weight=lars_weight))

    @torch.no_grad()
    def step(self):
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None:
                    continue
                d_p = p.grad
                if g["weight_decay"] != 0:
                    d_p = d_p.add(p, alpha=g["weight_decay"])            # 1
                pn, gn = torch.norm(p), torch.norm(d_p)
                if pn != 0 and gn != 0:                                   # 2
                    local_lr = (g["eta"] * pn / gn).item()
                else:
                    local_lr = 1.0
                lr = g["lr"]
                scaled = lr * (1 - g["lars_weight"]) + lr * local_lr * g["lars_weight"]  # 3
                st = self.state[p]
                if "buf" not in st:
                    st["buf"] = torch.clone(d_p).mul_(scaled).detach()    # 4 (first step)
                else:
                    st["buf"].mul_(g["momentum"]).add_(d_p, alpha=scaled)  # 4
                p.add_(-st["buf"])                                         # 5


def vec(name, t):
    t = t.detach().reshape(-1).double().tolist()
    return "%s %d %s\n" % (name, len(t), " ".join("%.9g" % v for v in t))


def sched(name, vals):
    return "%s %d %s\n" % (name, len(vals), " ".join("%.17g" % v for v in vals))


def main():
    torch.manual_seed(1234)
    out = []
    # Tensors: conv weight (decay), BN gamma, BN beta, linear weight (decay), linear bias.
    shapes = [(4, 3, 3, 2), (4,), (4,), (5, 6), (5,)]
    decay = [1, 0, 0, 1, 0]
    steps = 6
    base_lr, wd = 0.8, 1e-2  # large wd so that its effect is visible in the fixture
    init = [torch.randn(s) * (0.5 if d else 1.0) for s, d in zip(shapes, decay)]
    init[2] = torch.zeros(4)  # a zero tensor: trust ratio falls back to 1 (norm 0)
    grads = [[torch.randn(s) * 0.1 for s in shapes] for _ in range(steps)]
    lrs = [base_lr * (0.5 + 0.1 * k) for k in range(steps)]
    out.append("meta 4 %d %d %.17g %.17g\n" % (len(shapes), steps, base_lr, wd))
    for i, s in enumerate(shapes):
        out.append("shape%d 2 %d %d\n" % (i, int(torch.tensor(s).prod()), decay[i]))
        out.append(vec("init%d" % i, init[i]))
    for k in range(steps):
        for i in range(len(shapes)):
            out.append(vec("grad%d_%d" % (k, i), grads[k][i]))
    out.append(sched("lrs", lrs))

    def run(make_opt):
        ps = [torch.nn.Parameter(t.clone()) for t in init]
        opt = make_opt(ps)
        for k in range(steps):
            for g in opt.param_groups:
                g["lr"] = lrs[k]
            for i, p in enumerate(ps):
                p.grad = grads[k][i].clone()
            opt.step()
        return ps

    lars = run(lambda ps: LARSW([
        dict(params=[p for p, d in zip(ps, decay) if d], weight_decay=wd, lars_weight=1.0),
        dict(params=[p for p, d in zip(ps, decay) if not d], weight_decay=0.0, lars_weight=0.0),
    ], lr=base_lr, momentum=0.9, eta=1e-3))
    for i, p in enumerate(lars):
        out.append(vec("lars%d" % i, p))
    sgd = run(lambda ps: torch.optim.SGD([
        dict(params=[p for p, d in zip(ps, decay) if d], weight_decay=wd),
        dict(params=[p for p, d in zip(ps, decay) if not d], weight_decay=0.0),
    ], lr=base_lr, momentum=0.9, nesterov=True))
    for i, p in enumerate(sgd):
        out.append(vec("sgd%d" % i, p))

    # Pre-training schedule: 10 warmup "epochs" of 3 steps, 40 epochs in all (T = 120).
    S, W, T, lr = 3, 30, 120, 4.0
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr)
    warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1e-8, end_factor=1.0, total_iters=W)
    cos = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=T - W, eta_min=1e-8)
    seq = torch.optim.lr_scheduler.SequentialLR(opt, [warm, cos], milestones=[W])
    vals = []
    for k in range(T):
        vals.append(opt.param_groups[0]["lr"])
        opt.step()
        seq.step()
    out.append("warmcos_meta 4 %d %d %d %.17g\n" % (S, W, T, lr))
    out.append(sched("warmcos", vals))
    # Linear probe: cosine from 0.2 to 1e-4 over T2 steps, no warmup.
    T2 = 50
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.2, momentum=0.9, nesterov=True)
    cos = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=T2, eta_min=1e-4)
    vals = []
    for k in range(T2):
        vals.append(opt.param_groups[0]["lr"])
        opt.step()
        cos.step()
    out.append("probecos_meta 1 %d\n" % T2)
    out.append(sched("probecos", vals))
    # BYOL EMA tau: 1 - (1 - 0.996) * (cos(pi k / K) + 1) / 2, K = 97 * 800.
    K = 97 * 800
    ks = [0, 1, 97, 1000, 38800, 77599, 77600]
    out.append(sched("tau_k", ks))
    out.append(sched("tau", [1 - (1 - 0.996) * (math.cos(math.pi * k / K) + 1) / 2 for k in ks]))

    # Weighted kNN (k 20, T 0.1, cosine) on class-structured random features.
    g = torch.Generator().manual_seed(7)
    ntr, nte, d, C, k, T = 300, 60, 8, 10, 20, 0.1
    centers = torch.randn(C, d, generator=g)
    ytr = torch.randint(0, C, (ntr,), generator=g)
    yte = torch.randint(0, C, (nte,), generator=g)
    xtr = centers[ytr] + 1.2 * torch.randn(ntr, d, generator=g)
    xte = centers[yte] + 1.2 * torch.randn(nte, d, generator=g)
    ntr_ = torch.nn.functional.normalize(xtr, dim=1)
    nte_ = torch.nn.functional.normalize(xte, dim=1)
    sim = nte_ @ ntr_.t()
    sw, si = sim.topk(k, dim=1)
    w = (sw / T).exp()
    scores = torch.zeros(nte, C).scatter_add_(1, ytr[si], w)
    rank = scores.argsort(dim=1, descending=True)
    top1 = (rank[:, 0] == yte).float().mean().item() * 100
    top5 = (rank[:, :5] == yte[:, None]).any(dim=1).float().mean().item() * 100
    out.append("knn_meta 6 %d %d %d %d %d %.17g\n" % (ntr, nte, d, C, k, T))
    out.append(vec("knn_xtr", xtr))
    out.append(vec("knn_ytr", ytr))
    out.append(vec("knn_xte", xte))
    out.append(vec("knn_yte", yte))
    out.append(sched("knn_acc", [top1, top5]))

    here = os.path.dirname(os.path.abspath(__file__))
    os.makedirs(os.path.join(here, "fixtures"), exist_ok=True)
    with open(os.path.join(here, "fixtures", "optim.txt"), "w") as f:
        f.write("# generated by tests/train/gen_fixtures.py (torch %s); do not edit\n"
                % torch.__version__)
        f.writelines(out)


if __name__ == "__main__":
    main()
