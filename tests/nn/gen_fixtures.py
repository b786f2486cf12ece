#!/usr/bin/python3
"""tests/nn/gen_fixtures.py: PyTorch reference values for the host nn ops (host/nn/).

Run with Debian's torch (1.13):  /usr/bin/python3 tests/nn/gen_fixtures.py
Writes tests/nn/fixtures/nn_ref.bin, read by tests/nn/check_nn_ref.c.

File format (little endian): magic b"EQMFIX01", uint32 count, then per tensor:
uint32 name_len, name bytes (ASCII, "case/field"), uint32 ndim, ndim x uint32 dims,
float32 data (int tensors such as labels are stored as float32 too).
Layouts are the host's: activations NHWC, conv weights OHWI (PyTorch OIHW is permuted
here). Every case uses seeded random inputs, stored in the file, so the C side only reads.
Left out: anything on GPU; double-precision references (float32 like the host).
"""
import os
import struct

import torch
import torch.nn.functional as F

torch.manual_seed(1234)
torch.set_default_dtype(torch.float32)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "nn_ref.bin")
tensors = []


def put(name, t):
    tensors.append((name, t.detach().float().cpu().clone().contiguous()))


def nhwc(t):  # NCHW -> NHWC
    return t.permute(0, 2, 3, 1).contiguous()


def conv_case(name, N, H, W, Ci, Co, k, stride, pad):
    x = torch.randn(N, Ci, H, W, requires_grad=True)
    w = (torch.randn(Co, Ci, k, k) / (Ci * k * k) ** 0.5).requires_grad_()
    y = F.conv2d(x, w, stride=stride, padding=pad)
    dy = torch.randn_like(y)
    y.backward(dy)
    put(name + "/shape", torch.tensor([N, H, W, Ci, Co, k, k, stride, pad]))
    put(name + "/in", nhwc(x))
    put(name + "/w", w.permute(0, 2, 3, 1))  # OIHW -> OHWI
    put(name + "/out", nhwc(y))
    put(name + "/dout", nhwc(dy))
    put(name + "/din", nhwc(x.grad))
    put(name + "/dw", w.grad.permute(0, 2, 3, 1))


def bn_case(name, N, H, W, C, affine, relu, steps=2):
    bn = torch.nn.BatchNorm2d(C, eps=1e-5, momentum=0.1, affine=affine)
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(C) * 0.1)
        bn.running_var.copy_(torch.rand(C) + 0.5)
        if affine:
            bn.weight.copy_(torch.rand(C) + 0.5)
            bn.bias.copy_(torch.randn(C) * 0.2)
    put(name + "/shape", torch.tensor([N * H * W, C, affine, relu, steps]))
    put(name + "/rm0", bn.running_mean)
    put(name + "/rv0", bn.running_var)
    if affine:
        put(name + "/gamma", bn.weight)
        put(name + "/beta", bn.bias)
    bn.train()
    for s in range(steps):  # training passes: only the last one's grads are stored
        x = (torch.randn(N, C, H, W) * 2 + 0.5).requires_grad_()
        y = bn(x)
        if relu:
            y = torch.relu(y)
        dy = torch.randn_like(y)
        if affine:
            bn.weight.grad = None
            bn.bias.grad = None
        y.backward(dy)
        put(name + "/in%d" % s, nhwc(x))
        put(name + "/out%d" % s, nhwc(y))
    put(name + "/dout", nhwc(dy))
    put(name + "/din", nhwc(x.grad))
    if affine:
        put(name + "/dgamma", bn.weight.grad)
        put(name + "/dbeta", bn.bias.grad)
    put(name + "/rm", bn.running_mean)
    put(name + "/rv", bn.running_var)
    # eval mode on a fresh input with the updated running stats
    bn.eval()
    x = torch.randn(N, C, H, W, requires_grad=True)
    y = bn(x)
    if relu:
        y = torch.relu(y)
    dy = torch.randn_like(y)
    y.backward(dy)
    put(name + "/ein", nhwc(x))
    put(name + "/eout", nhwc(y))
    put(name + "/edout", nhwc(dy))
    put(name + "/edin", nhwc(x.grad))


def maxpool_case(name, N, H, W, C, k, stride, pad):
    x = torch.randn(N, C, H, W, requires_grad=True)
    y = F.max_pool2d(x, k, stride, pad)
    dy = torch.randn_like(y)
    y.backward(dy)
    put(name + "/shape", torch.tensor([N, H, W, C, k, stride, pad]))
    put(name + "/in", nhwc(x))
    put(name + "/out", nhwc(y))
    put(name + "/dout", nhwc(dy))
    put(name + "/din", nhwc(x.grad))


def ntxent_ref(z, tau, period):
    B2 = z.shape[0]
    B = B2 // 2
    zn = F.normalize(z, dim=1)
    logits = zn @ zn.t() / tau
    idx = torch.arange(B2)
    pos = (idx + B) % B2
    mask = torch.eye(B2, dtype=torch.bool)
    if period > 0:
        same = (idx[:, None] % period) == (idx[None, :] % period)
        mask = mask | (same & (idx[None, :] != pos[:, None]))
    logits = logits.masked_fill(mask, float("-inf"))
    return F.cross_entropy(logits, pos)


def ntxent_case(name, B2, D, tau, period):
    z = torch.randn(B2, D, requires_grad=True)
    loss = ntxent_ref(z, tau, period)
    loss.backward()
    put(name + "/shape", torch.tensor([B2, D, period]))
    put(name + "/tau", torch.tensor([tau]))
    put(name + "/z", z)
    put(name + "/loss", loss.reshape(1))
    put(name + "/dz", z.grad)


def main():
    conv_case("conv3x3s1", 2, 7, 6, 5, 6, 3, 1, 1)
    conv_case("conv3x3s2", 2, 9, 8, 4, 7, 3, 2, 1)
    conv_case("conv1x1s2", 2, 8, 7, 6, 5, 1, 2, 0)
    conv_case("conv1x1s1", 2, 5, 5, 6, 5, 1, 1, 0)
    conv_case("conv7x7s2", 2, 12, 11, 3, 4, 7, 2, 3)
    conv_case("conv3x3s1_wide", 3, 10, 10, 16, 16, 3, 1, 1)
    bn_case("bn_affine", 2, 4, 3, 5, 1, 0)
    bn_case("bn_plain", 2, 4, 3, 5, 0, 0)
    bn_case("bn_relu", 3, 3, 3, 20, 1, 1)
    bn_case("bn_big", 4, 8, 8, 8, 1, 1)  # M = 256: several row parts, 64-row runs
    maxpool_case("maxpool", 2, 9, 8, 3, 3, 2, 1)

    x = torch.randn(3, 4, 5, 6, requires_grad=True)  # avgpool over H, W
    y = x.mean(dim=(2, 3))
    dy = torch.randn_like(y)
    y.backward(dy)
    put("avgpool/in", nhwc(x))
    put("avgpool/out", y)
    put("avgpool/dout", dy)
    put("avgpool/din", nhwc(x.grad))

    lin = torch.nn.Linear(7, 5)
    x = torch.randn(4, 7, requires_grad=True)
    y = lin(x)
    dy = torch.randn_like(y)
    y.backward(dy)
    for k, v in (("in", x), ("w", lin.weight), ("b", lin.bias), ("out", y), ("dout", dy),
                 ("din", x.grad), ("dw", lin.weight.grad), ("db", lin.bias.grad)):
        put("linear/" + k, v)

    x = torch.randn(5, 9, requires_grad=True)
    y = F.normalize(x, dim=1)
    dy = torch.randn_like(y)
    y.backward(dy)
    put("l2norm/in", x)
    put("l2norm/out", y)
    put("l2norm/dout", dy)
    put("l2norm/din", x.grad)

    ntxent_case("ntxent", 8, 6, 0.5, 0)
    ntxent_case("ntxent_excl", 12, 5, 0.2, 3)

    q = torch.randn(6, 8, requires_grad=True)
    t = torch.randn(6, 8)
    loss = (2 - 2 * (F.normalize(q, dim=1) * F.normalize(t, dim=1)).sum(1)).mean()
    loss.backward()
    put("cosine/q", q)
    put("cosine/t", t)
    put("cosine/loss", loss.reshape(1))
    put("cosine/dq", q.grad)

    logits = torch.randn(7, 5, requires_grad=True)
    labels = torch.randint(0, 5, (7,))
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    put("xent/logits", logits)
    put("xent/labels", labels)
    put("xent/loss", loss.reshape(1))
    put("xent/dlogits", logits.grad)

    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "wb") as f:
        f.write(b"EQMFIX01")
        f.write(struct.pack("<I", len(tensors)))
        for name, t in tensors:
            nb = name.encode("ascii")
            f.write(struct.pack("<I", len(nb)))
            f.write(nb)
            f.write(struct.pack("<I", t.dim()))
            f.write(struct.pack("<%dI" % t.dim(), *t.shape))
            f.write(t.numpy().astype("<f4").tobytes())
    print("wrote %s (%d tensors, %d bytes)" % (OUT, len(tensors), os.path.getsize(OUT)))


if __name__ == "__main__":
    main()
