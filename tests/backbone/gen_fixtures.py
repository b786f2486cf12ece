#!/usr/bin/python3
"""tests/backbone/gen_fixtures.py: PyTorch references for the resnet backbone plugin.

Run with Debian's torch 1.13 / torchvision 0.14:  /usr/bin/python3 tests/backbone/gen_fixtures.py
Writes, for each case, two .safetensors files under tests/backbone/fixtures/ (read by
tests/backbone/check_backbone.c, no Python needed at `make check` time):
  <case>_weights.safetensors  the state_dict BEFORE the pass (torchvision names, OIHW,
                              num_batches_tracked), fc removed: exactly what
                              `equimod export --import` accepts, so the C side loads it with
                              the real importer
  <case>_ref.safetensors      input_nhwc (N,H,W,3), dout (N,D), out (N,D) of the
                              training-mode forward, din_nhwc = dL/dx with L = sum(out*dout),
                              grad.<name> (OIHW for convs) for every trainable tensor,
                              after.<bn>.running_mean/var after that one pass, and out_eval
                              (N,D): an eval-mode forward afterwards (running statistics).

Cases (narrow so the files stay small; the network structure is torchvision's own:
torchvision.models.resnet.BasicBlock/Bottleneck and ResNet._make_layer, with the base
width 64 replaced by `base` (inplanes and planes scaled; Bottleneck's width = planes as
base_width stays 64), the classifier fc replaced by Identity):
  r18: ResNet-18, base 4 (equimod width = 4/64 = 0.0625), CIFAR stem, input 2x3x16x16
  r50: ResNet-50, base 4, ImageNet stem (7x7/2 + max pool), input 2x3x64x64 (64: the last
       stage is 2x2, so its BN sees M = 8 values; at M = 2 the BN backward is so
       ill-conditioned that float32 rounding alone reaches 1e-3)
Weights are torchvision's initialisation from a fixed seed, then BN weight/bias and running
statistics are randomised (so that zero-init and unit statistics hide nothing).
Left out: GPU, double precision.
"""
import os
import sys

import torch
import torch.nn as nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


class NarrowResNet(ResNet):
    """torchvision's ResNet with base width `base` and a CIFAR or ImageNet stem."""

    def __init__(self, block, layers, base, stem):
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes, self.dilation, self.groups, self.base_width = base, 1, 1, 64
        if stem == "cifar":
            self.conv1 = nn.Conv2d(3, base, 3, 1, 1, bias=False)
            self.maxpool = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(3, base, 7, 2, 3, bias=False)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.bn1 = nn.BatchNorm2d(base)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(block, base, layers[0])
        self.layer2 = self._make_layer(block, base * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(block, base * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(block, base * 8, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Identity()
        for m in self.modules():  # torchvision's init
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def nhwc(t):
    return t.permute(0, 2, 3, 1).contiguous()


def case(name, block, layers, base, stem, N, HW, seed):
    torch.manual_seed(seed)
    m = NarrowResNet(block, layers, base, stem)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                c = mod.num_features
                mod.weight.copy_(torch.rand(c) + 0.5)
                mod.bias.copy_(torch.randn(c) * 0.2)
                mod.running_mean.copy_(torch.randn(c) * 0.1)
                mod.running_var.copy_(torch.rand(c) + 0.5)
    sd0 = {k: v.clone() for k, v in m.state_dict().items()}
    st_io.save(os.path.join(OUT, name + "_weights.safetensors"), sd0,
               {"format": "pt", "generator": "tests/backbone/gen_fixtures.py"})

    x = torch.randn(N, 3, HW, HW, requires_grad=True)
    m.train()
    y = m(x)
    dout = torch.randn_like(y)
    y.backward(dout)
    ref = {"input_nhwc": nhwc(x.detach()), "dout": dout, "out": y.detach(),
           "din_nhwc": nhwc(x.grad)}
    for k, p in m.named_parameters():
        ref["grad." + k] = p.grad
    for k, v in m.state_dict().items():
        if k.endswith("running_mean") or k.endswith("running_var"):
            ref["after." + k] = v.clone()
    m.eval()
    with torch.no_grad():
        ref["out_eval"] = m(x.detach())
    st_io.save(os.path.join(OUT, name + "_ref.safetensors"), ref,
               {"generator": "tests/backbone/gen_fixtures.py", "torch": torch.__version__})
    n_par = sum(p.numel() for p in m.parameters())
    print(f"{name}: {n_par} parameters, out {tuple(y.shape)}, |out| {y.abs().mean():.4f}")


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    case("r18", BasicBlock, [2, 2, 2, 2], 4, "cifar", 2, 16, 1)
    case("r50", Bottleneck, [3, 4, 6, 3], 4, "imagenet", 2, 64, 2)


if __name__ == "__main__":
    main()
