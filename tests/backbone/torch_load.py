#!/usr/bin/python3
"""tests/backbone/torch_load.py: an `equimod export` file loads into torchvision's
resnet18 (CIFAR stem, fc removed) with strict=True and computes what equimod computes.

Run by torch_load.sh (make check) with EQM_BUILDDIR set; needs /usr/bin/python3 with torch
and torchvision (the .sh skips with 77 otherwise). Steps, in a temporary folder:
  1. equimod export cfg.ini -o w.safetensors        (ResNet-18, stem cifar, width 1,
                                                    zero_init_residual false, seed 11)
  2. torchvision.models.resnet18(); conv1 = Conv2d(3, 64, 3, 1, 1, bias=False);
     maxpool = Identity; fc = Identity; load_state_dict(w, strict=True)
  3. equimod export cfg.ini --import w.safetensors -o w2.safetensors: every tensor equal
  4. input (4, 3, 32, 32) from a fixed seed; PyTorch eval then train forward; equimod's
     forward of w.safetensors (tests/backbone/resnet_forward) on the same input:
     max |diff| / max(1, max |ref|) < 1e-4 for both.
Left out: training; ResNet-50 (check_backbone covers it against fixtures).
"""
import os
import subprocess
import sys
import tempfile

import torch
import torch.nn as nn
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402

BUILD = os.environ.get("EQM_BUILDDIR", ".")
EQUIMOD = os.path.join(BUILD, "equimod")
FWD = os.path.join(BUILD, "tests", "backbone", "resnet_forward")
# make check sets EQUIMOD_PLUGIN_PATH (plugin-dir/); by hand, point at the plugin's .libs
PLUGARGS = ([] if os.environ.get("EQUIMOD_PLUGIN_PATH") else
            ["--plugin-path", os.path.join(BUILD, "plugins", "backbone", "resnet", ".libs")])
OPTS = ["depth=18", "stem=cifar", "zero_init_residual=false"]


def run(args):
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"FAIL: {' '.join(args)} exited {r.returncode}\n{r.stdout}{r.stderr}")
    return r


def rel(a, b):
    return float((a - b).abs().max() / max(1.0, float(b.abs().max())))


def main():
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as d:
        cfg = os.path.join(d, "cfg.ini")
        with open(cfg, "w") as f:
            f.write("[run]\nseed = 11\n\n[backbone]\nplugin = resnet\n")
            f.write("".join(o.replace("=", " = ") + "\n" for o in OPTS))
        w = os.path.join(d, "w.safetensors")
        run([EQUIMOD] + PLUGARGS + ["export", cfg, "-o", w])
        sd, meta = st_io.load(w)
        assert meta.get("format") == "pt", meta

        m = torchvision.models.resnet18()
        m.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        m.maxpool = nn.Identity()
        m.fc = nn.Identity()
        m.load_state_dict(sd, strict=True)  # raises on any missing/extra/mis-shaped tensor
        print(f"strict load: {len(sd)} tensors OK")

        w2 = os.path.join(d, "w2.safetensors")
        run([EQUIMOD] + PLUGARGS + ["export", cfg, "--import", w, "-o", w2])
        sd2, _ = st_io.load(w2)
        assert sd2.keys() == sd.keys()
        for k in sd:
            assert torch.equal(sd[k], sd2[k]), f"import/export changed {k}"
        print("import + export: identical")

        torch.manual_seed(5)
        x = torch.randn(4, 3, 32, 32)
        io = os.path.join(d, "io.safetensors")
        st_io.save(io, {"input_nhwc": x.permute(0, 2, 3, 1).contiguous()})
        with torch.no_grad():
            m.eval()
            ref_eval = m(x)
            m.train()
            ref_train = m(x)
        out = os.path.join(d, "out.safetensors")
        run([FWD, w, io, out] + OPTS)
        got, _ = st_io.load(out)
        e_eval, e_train = rel(got["out_eval"], ref_eval), rel(got["out_train"], ref_train)
        print(f"forward vs torchvision: eval {e_eval:.2e}, train {e_train:.2e} (tolerance 1e-4)")
        if e_eval > 1e-4 or e_train > 1e-4:
            sys.exit("FAIL: equimod's forward differs from torchvision's")
    print("PASS")


if __name__ == "__main__":
    main()
