"""torch_roundtrip.py — PyTorch → ONNX → dagnet: torch.onnx.export of reference nets, then
`dagnet import` and `dagnet infer`, compared with PyTorch's own outputs (docs/onnx.md).

    /usr/bin/python3 tests/onnx/torch_roundtrip.py --dagnet build/dagnet [--keep DIR] [NET ...]

Each net (eval mode, seeded weights) is exported at opset 13 with a symbolic batch, imported,
run at batch 3 on uniform [0, 1) inputs and compared: max |dagnet − torch| ≤ 1e-5 · max|torch|
+ 1e-6 (float32 sums in a different order). Exit 0 when every net passes, 1 otherwise.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn

RTOL, ATOL = 1e-5, 1e-6


def lenet5():
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
        nn.Softmax(dim=1)), (1, 28, 28)


def lenet5_classic():
    """LeNet-5 as LeCun drew it: tanh, average pooling, a sigmoid."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2, 2),
        nn.Conv2d(6, 16, 5), nn.Sigmoid(), nn.AvgPool2d(2, 2), nn.Flatten(),
        nn.Linear(400, 120), nn.Tanh(), nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, 10)), \
        (1, 28, 28)


def simple_convnet():
    return nn.Sequential(
        nn.Conv2d(1, 30, 5), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(),
        nn.Linear(4320, 100), nn.ReLU(), nn.Linear(100, 10), nn.Softmax(dim=1)), (1, 28, 28)


def alexnet(lrn=True):
    """Krizhevsky's AlexNet (one tower) with its two LRNs: PyTorch writes LocalResponseNorm as a
    chain of about 70 nodes (Mul, Pad, AveragePool, Pow, Div, shape ops, an If), which the
    importer folds into one LRN each."""
    norm = (lambda: nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0)) if lrn else nn.Identity
    return nn.Sequential(
        nn.Conv2d(3, 96, 11, stride=4), nn.ReLU(), norm(), nn.MaxPool2d(3, 2),
        nn.Conv2d(96, 256, 5, padding=2), nn.ReLU(), norm(), nn.MaxPool2d(3, 2),
        nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2), nn.Flatten(),
        nn.Dropout(0.5), nn.Linear(9216, 4096), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, 1000), nn.Softmax(dim=1)), \
        (3, 227, 227)


def padded_avgpool():
    """AvgPool2d with padding: PyTorch writes a Pad before an AveragePool (count_include_pad
    True) and a pads attr otherwise."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AvgPool2d(3, 2, padding=1),
        nn.Conv2d(8, 8, 3, padding=1), nn.AvgPool2d(2, 2, padding=1, count_include_pad=False),
        nn.Flatten(), nn.Linear(8 * 5 * 5, 4)), (3, 17, 17)


def batchnorm_net():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(8 * 8 * 8, 16), nn.BatchNorm1d(16), nn.ReLU(),
        nn.Linear(16, 5)), (3, 16, 16)


NETS = {
    "lenet5": lenet5, "lenet5_classic": lenet5_classic, "simple_convnet": simple_convnet,
    "alexnet": alexnet, "padded_avgpool": padded_avgpool, "batchnorm": batchnorm_net,
}


def run(name, dagnet, work):
    torch.manual_seed(0)
    net, shape = NETS[name]()
    net.eval()
    if name == "batchnorm":  # running statistics that are not 0 and 1
        for m in net.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.data.uniform_(0.5, 1.5)
                m.bias.data.uniform_(-0.2, 0.2)
    x = torch.rand(3, *shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = net(x).numpy()
    onnx = os.path.join(work, name + ".onnx")
    torch.onnx.export(net, x, onnx, opset_version=13, input_names=["image"],
                      output_names=["out"], dynamic_axes={"image": {0: "N"}, "out": {0: "N"}})
    js, st = os.path.join(work, name + ".json"), os.path.join(work, name + ".safetensors")
    r = subprocess.run([dagnet, "import", onnx, "--out", js, "--weights", st],
                       capture_output=True, text=True)
    if r.returncode:
        return False, "import failed: " + r.stderr.strip()
    xin, out = os.path.join(work, name + ".in.npy"), os.path.join(work, name + ".out.npy")
    np.save(xin, x.numpy())
    r = subprocess.run([dagnet, "infer", js, "--weights", st, "--feed", "image=" + xin,
                        "--out", out], capture_output=True, text=True)
    if r.returncode:
        return False, "infer failed: " + r.stderr.strip()
    got = np.load(out)
    if got.shape != want.shape:
        return False, f"shape {got.shape}, PyTorch {want.shape}"
    err = float(np.max(np.abs(got - want)))
    scale = float(np.max(np.abs(want)))
    ok = err <= RTOL * scale + ATOL
    return ok, f"max |diff| {err:.3g} (max |out| {scale:.3g})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dagnet", required=True)
    ap.add_argument("--keep", help="keep the files in this folder")
    ap.add_argument("nets", nargs="*", default=list(NETS))
    a = ap.parse_args()
    torch.set_num_threads(1)
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        work = a.keep or tmp
        os.makedirs(work, exist_ok=True)
        for name in a.nets:
            ok, why = run(name, os.path.abspath(a.dagnet), work)
            failed += not ok
            tag = "ok  " if ok else "FAIL"
            print(f"{tag} {name}: {why}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
