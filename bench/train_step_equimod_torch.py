#!/usr/bin/python3
"""bench/train_step_equimod_torch.py: the PyTorch side of `bench/train-step equimod`.

One SimCLR+EquiMod training step, written from ../shared/docs/METHOD.md §5-9:
  - backbone: torchvision ResNet-18 (CIFAR stem: conv1 3x3/1 pad 1 no bias, maxpool =
    identity) or ResNet-50 (ImageNet stem), zero_init_residual=True, fc removed; ONE forward
    over x = [x0; x1; x2] (3N rows, shared BN statistics);
  - g (invariance head) on h[N:3N]: hidden blocks Linear(nb), BN, ReLU, then Linear(nb) +
    BatchNorm1d(affine=False); L_inv = NT-Xent([z1; z2], tau 0.5);
  - g' (equivariant head) on all 3N rows, same shape, own weights; ParamProj =
    Linear(P -> T, nb) + BN(T, affine=True), no ReLU, on the standardised [t1; t2];
    u_psi = Linear(Y + T -> Y, nb) + BN(Y, affine=False) on [y0 (repeated), p];
    L_equi = NT-Xent([yt; yhat], tau 0.2) over 4N rows (every other row a negative);
  - L = L_inv + 1.0 * L_equi; backward; LARS (METHOD.md §9: eta 1e-3, momentum 0.9, wd 1e-6;
    conv/linear weights get decay and the trust ratio, everything else plain momentum SGD;
    lr inside the momentum buffer) at a fixed lr.
Tuned as BENCH-REFERENCE.md: channels_last, explicit thread count, tcmalloc preloaded by the
caller (LD_PRELOAD). --precision bf16: forward and losses under
torch.autocast("cpu", dtype=torch.bfloat16) (PyTorch's CPU mixed precision; fp32 weights
and optimizer). Random inputs and t.
Usage: train_step_equimod_torch.py --setting quickstart|paper|r50 [--batch N] [--iters 3]
       [--warmup 1] [--threads 2] [--clock wall|cpu] [--precision fp32|bf16]
Prints one line:  torch img_s=<images/s> step_s=<median s> rss_mib=<peak RSS MiB> ...
"""
import argparse
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

SETTINGS = {  # depth, imagenet stem, px, batch, width of g hidden, g' head, t_layers, base width
    "quickstart": dict(depth=18, imagenet=False, px=32, batch=128, g_hidden=[512], z=128,
                       head=[512, 128], t=64, width=16),
    "paper": dict(depth=18, imagenet=False, px=32, batch=256, g_hidden=[2048, 2048], z=128,
                  head=[2048, 2048, 128], t=128, width=64),
    "r50": dict(depth=50, imagenet=True, px=224, batch=32, g_hidden=[2048, 2048], z=128,
                head=[2048, 2048, 128], t=128, width=64),
}
P_DIM = 15  # t fields of the CIFAR SimCLR pipeline, as the equimod side


def resnet(depth, imagenet, width):
    """torchvision ResNet with base width `width` (64 = the standard net; the quickstart's
    width 0.25 gives 16), zero_init_residual, fc removed."""
    block = torchvision.models.resnet.BasicBlock if depth == 18 else \
        torchvision.models.resnet.Bottleneck
    layers = [2, 2, 2, 2] if depth == 18 else [3, 4, 6, 3]

    class R(torchvision.models.resnet.ResNet):
        def __init__(self):
            nn.Module.__init__(self)
            self._norm_layer = nn.BatchNorm2d
            self.inplanes, self.dilation, self.groups, self.base_width = width, 1, 1, 64
            if imagenet:
                self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
                self.maxpool = nn.MaxPool2d(3, 2, 1)
            else:
                self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
                self.maxpool = nn.Identity()
            self.bn1 = nn.BatchNorm2d(width)
            self.relu = nn.ReLU(inplace=True)
            self.layer1 = self._make_layer(block, width, layers[0])
            self.layer2 = self._make_layer(block, width * 2, layers[1], stride=2)
            self.layer3 = self._make_layer(block, width * 4, layers[2], stride=2)
            self.layer4 = self._make_layer(block, width * 8, layers[3], stride=2)
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Identity()
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            for m in self.modules():  # zero_init_residual=True
                if isinstance(m, torchvision.models.resnet.Bottleneck):
                    nn.init.constant_(m.bn3.weight, 0)
                elif isinstance(m, torchvision.models.resnet.BasicBlock):
                    nn.init.constant_(m.bn2.weight, 0)

    net = R()
    return net, width * 8 * block.expansion


def mlp(d_in, widths, last_affine):
    """hidden blocks Linear(nb) BN ReLU, final Linear(nb) + BN(affine=last_affine)."""
    mods, d = [], d_in
    for w in widths[:-1]:
        mods += [nn.Linear(d, w, bias=False), nn.BatchNorm1d(w), nn.ReLU(inplace=True)]
        d = w
    mods += [nn.Linear(d, widths[-1], bias=False), nn.BatchNorm1d(widths[-1], affine=last_affine)]
    return nn.Sequential(*mods)


def nt_xent(v, tau):
    """METHOD.md §7: rows L2-normalised, cosine / tau, diagonal removed, positive k <-> k+B.
    In fp32 under autocast too (as equimod's losses)."""
    with torch.autocast("cpu", enabled=False):
        v = F.normalize(v.float(), dim=1)
        n = v.shape[0]
        b = n // 2
        logits = v @ v.t() / tau
        logits = logits - 1e8 * torch.eye(n, dtype=logits.dtype)
        target = torch.cat([torch.arange(b, n), torch.arange(0, b)])
        return F.cross_entropy(logits, target)


class Lars:
    """METHOD.md §9 (LARSW): g += wd w; local_lr = eta |w|/|g| (both non-zero, else 1);
    buf = m buf + lr local_lr g; w -= buf. Non-decay tensors: plain momentum SGD."""

    def __init__(self, decay, plain, lr, momentum=0.9, wd=1e-6, eta=1e-3):
        self.decay, self.plain = decay, plain
        self.lr, self.m, self.wd, self.eta = lr, momentum, wd, eta
        self.buf = {}

    @torch.no_grad()
    def step(self):
        for p in self.decay + self.plain:
            if p.grad is None:
                continue
            g = p.grad
            if p in self.decay_set:
                g = g.add(p, alpha=self.wd)
                wn, gn = torch.norm(p), torch.norm(g)
                local = torch.where((wn > 0) & (gn > 0), self.eta * wn / gn,
                                    torch.ones_like(wn))
                g = g.mul(local * self.lr)
            else:
                g = g.mul(self.lr)
            b = self.buf.get(p)
            if b is None:
                self.buf[p] = b = g.clone()
            else:
                b.mul_(self.m).add_(g)
            p.sub_(b)

    @property
    def decay_set(self):
        if not hasattr(self, "_ds"):
            self._ds = set(self.decay)
        return self._ds


def build(s):
    """The step's modules, in train mode: [backbone, g, g', t's projector, u_psi]."""
    backbone, D = resnet(s["depth"], s["imagenet"], s["width"])
    g = mlp(D, s["g_hidden"] + [s["z"]], False)
    gp = mlp(D, s["head"], False)
    Y, T = s["head"][-1], s["t"]
    proj_t = nn.Sequential(nn.Linear(P_DIM, T, bias=False), nn.BatchNorm1d(T))
    u = nn.Sequential(nn.Linear(Y + T, Y, bias=False), nn.BatchNorm1d(Y, affine=False))
    return [m.train() for m in (backbone, g, gp, proj_t, u)]


def forward(mods, x, t, N):
    """L = L_inv + 1.0 * L_equi of x = [x0; x1; x2] (3N rows) and t (2N rows)."""
    backbone, g, gp, proj_t, u = mods
    h = backbone(x)
    z = g(h[N:])
    l_inv = nt_xent(z, 0.5)
    y = gp(h)
    y0 = torch.cat([y[:N], y[:N]])
    yt = y[N:]
    p = proj_t(t)
    yhat = u(torch.cat([y0, p], dim=1))
    l_equi = nt_xent(torch.cat([yt, yhat]), 0.2)
    return l_inv + 1.0 * l_equi


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--setting", default="quickstart", choices=sorted(SETTINGS))
    ap.add_argument("--batch", type=int, default=0)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clock", default="wall", choices=["wall", "cpu"])
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    a = ap.parse_args()
    s = SETTINGS[a.setting]
    N = a.batch or s["batch"]
    clock = time.process_time if a.clock == "cpu" else time.perf_counter
    bf16 = a.precision == "bf16"
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    mods = build(s)
    mods[0] = mods[0].to(memory_format=torch.channels_last)
    decay, plain = [], []
    for m in mods:
        for mod in m.modules():
            for name, p in mod.named_parameters(recurse=False):
                is_w = name == "weight" and isinstance(mod, (nn.Conv2d, nn.Linear))
                (decay if is_w else plain).append(p)
    opt = Lars(decay, plain, lr=0.1)
    px = s["px"]
    x = torch.randn(3 * N, 3, px, px).to(memory_format=torch.channels_last)
    t = torch.randn(2 * N, P_DIM)
    times = []
    for it in range(a.warmup + a.iters):
        t0 = clock()
        for m in mods:
            for p in m.parameters():
                p.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = forward(mods, x, t, N)
        loss.backward()
        opt.step()
        t1 = clock()
        if it >= a.warmup:
            times.append(t1 - t0)
    times.sort()
    med = times[len(times) // 2]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("torch img_s=%.4f step_s=%.4f rss_mib=%.1f threads=%d setting=%s precision=%s "
          "loss=%.4f" % (N / med, med, rss, torch.get_num_threads(), a.setting, a.precision,
                         float(loss)))


if __name__ == "__main__":
    main()
