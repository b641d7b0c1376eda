#!/usr/bin/python3
"""Train a dagnet model in PyTorch 1.13 with the settings of its "train" section, for the
comparison in docs/benchmarks.md.

usage: train_torch.py MODEL.json [--data DIR] [--epochs E] [--threads T] [--limit N]
       train_torch.py MODEL.json --bench STEPS [--threads T]

The graph is built from the JSON by tests/parity/parity.py's reader (the same one the parity
test uses: implicit params and state, every op's PyTorch equivalent), in float32, with:
  - params drawn as dagnet draws them (he_normal N(0, sqrt(2/fan_in)) for rank >= 2 weights,
    zeros for biases, BatchNorm's ones/zeros; explicit "init" specs honoured), from
    torch.manual_seed(seed), so the distribution is dagnet's, not its exact numbers;
  - Dropout as inverted dropout (PyTorch's F.dropout), BatchNorm in training mode with its
    running statistics updated each step and used for the test accuracy;
  - the optimizer, lr, batch, epochs, momentum, weight decay and schedule of the "train"
    section (defaults as dagnet's: adam, 0.001, batch 100, 3 epochs); cosine and step
    schedules per epoch, as dagnet's trainer; torch.optim.Adam / SGD, whose updates dagnet's
    match (tests/optim_reference.py);
  - the data as dagnet reads it: Fashion-MNIST bytes / 255, the training set shuffled each
    epoch; with "mirror": true each training image flipped left to right with probability 1/2
    (torchvision's RandomHorizontalFlip, drawn per image and epoch from torch's generator),
    then with "shift": P moved by offsets uniform in [-P, P] with zeros moved in
    (torchvision's RandomCrop(size, padding=P)).
Each epoch prints the train loss and accuracy, the test accuracy, its time and img/s
(training steps only, as dagnet's img/s).

--bench STEPS times STEPS training steps (after 2 warm-up steps) on the first training batch
and prints the median ms per step and img/s, the figure `dagnet bench MODEL --mode train
--batch B` gives on its side.
"""
import argparse
import gzip
import importlib.util
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("parity", os.path.join(HERE, "..", "tests", "parity",
                                                                     "parity.py"))
parity = importlib.util.module_from_spec(spec)
spec.loader.exec_module(parity)


def read_idx(path):
    op = gzip.open if path.endswith(".gz") else open
    with op(path, "rb") as f:
        data = f.read()
    magic = struct.unpack(">I", data[:4])[0]
    dims = struct.unpack(">" + "I" * (magic & 0xFF), data[4:4 + 4 * (magic & 0xFF)])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * len(dims)).reshape(dims)


def load(data_dir, prefix):
    def find(stem):
        for ext in ("", ".gz"):
            p = os.path.join(data_dir, stem + ext)
            if os.path.exists(p):
                return p
        raise FileNotFoundError(stem)
    x = read_idx(find(f"{prefix}-images-idx3-ubyte")).astype(np.float32) / np.float32(255.0)
    y = read_idx(find(f"{prefix}-labels-idx1-ubyte")).astype(np.int64)
    return torch.from_numpy(x.reshape(-1, 1, 28, 28).copy()), torch.from_numpy(y.copy())


def init_tensor(model, name, table):
    shape = table[name]["shape"]
    s = model.init_spec(name)
    kind = s["type"]
    fan_in, fan_out = parity.fans(shape)
    t = torch.empty(shape, dtype=torch.float32)
    if kind in ("zeros", "ones", "constant"):
        t.fill_({"zeros": 0.0, "ones": 1.0}.get(kind, float(s.get("value", 0.0))))
    elif kind == "he_normal":
        t.normal_(0, math.sqrt(2.0 / fan_in))
    elif kind == "xavier_normal":
        t.normal_(0, math.sqrt(2.0 / (fan_in + fan_out)))
    elif kind == "normal":
        t.normal_(0, float(s["std"]))
    elif kind == "he_uniform":
        b = math.sqrt(6.0 / fan_in)
        t.uniform_(-b, b)
    elif kind == "xavier_uniform":
        b = math.sqrt(6.0 / (fan_in + fan_out))
        t.uniform_(-b, b)
    elif kind == "uniform":
        t.uniform_(float(s["low"]), float(s["high"]))
    else:
        raise ValueError(f"init {kind} of {name}")
    return t


class Net:
    def __init__(self, model):
        self.m = model
        self.params = {p: init_tensor(model, p, model.params).requires_grad_(True)
                       for p in model.param_order}
        self.state = {s: init_tensor(model, s, model.state) for s in model.state_order}
        self.target = [n for n in model.order if n.op == "SoftmaxCrossEntropy"][0]

    def forward(self, x, labels, training):
        vals = {"image": x, "label": labels}
        vals.update(self.params)
        vals.update(self.state)
        masks = {parity.TRAINING: training}
        parity.UPDATED_STATE.clear()
        for n in self.m.order:
            if n.name not in self.m.needed:
                continue
            xs = [vals[i] for i in n.inputs]
            if n.op == "Dropout":
                vals[n.name] = F.dropout(xs[0], float(n.attrs.get("ratio", 0.5)), training)
            else:
                vals[n.name] = parity.apply_op(n, xs, masks)
        if training:
            for k, v in parity.UPDATED_STATE.items():
                self.state[k] = v.detach()
        return vals[self.target.inputs[0]], vals[self.m.loss]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="first N training images only")
    ap.add_argument("--bench", type=int, default=0, help="time this many steps, then stop")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with open(args.model) as f:
        train = json.load(f).get("train", {})
    epochs = args.epochs or train.get("epochs", 3)
    batch = train.get("batch", 100)
    lr = train.get("lr", 0.001)
    opt_name = train.get("optimizer", "adam")
    seed = train.get("seed", 1)
    wd = train.get("weight_decay", 0.0)
    schedule = train.get("schedule", "constant")
    mirror = train.get("mirror", False)
    shift = train.get("shift", 0)
    torch.manual_seed(seed)
    model = parity.Model(args.model, batch)
    net = Net(model)
    params = list(net.params.values())
    if opt_name == "adam":
        opt = torch.optim.Adam(params, lr=lr, weight_decay=wd)
    elif opt_name in ("momentum", "nesterov"):
        opt = torch.optim.SGD(params, lr=lr, momentum=train.get("momentum", 0.9),
                              nesterov=opt_name == "nesterov", weight_decay=wd)
    elif opt_name == "sgd":
        opt = torch.optim.SGD(params, lr=lr, weight_decay=wd)
    else:
        raise SystemExit(f"optimizer {opt_name} not mapped here")
    xtr, ytr = load(args.data, "train")
    xte, yte = load(args.data, "t10k")
    if args.limit:
        xtr, ytr = xtr[:args.limit], ytr[:args.limit]
    if args.bench:
        x, y = xtr[:batch], ytr[:batch]
        times = []
        for i in range(args.bench + 2):
            t0 = time.perf_counter()
            _, loss = net.forward(x, y, True)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if i >= 2:
                times.append(time.perf_counter() - t0)
        ms = 1000 * float(np.median(times))
        print(f"torch {model.name}: batch {batch}, {args.threads} threads, {args.bench} steps: "
              f"median {ms:.1f} ms/step ({batch * 1000 / ms:.0f} img/s), range "
              f"{1000 * min(times):.1f}-{1000 * max(times):.1f} ms", flush=True)
        return 0
    print(f"# {model.name}: {opt_name} lr {lr} batch {batch} epochs {epochs} schedule {schedule} "
          f"mirror {mirror} shift {shift} seed {seed}, torch {torch.__version__}, {args.threads} threads", flush=True)
    print("epoch,train_loss,train_acc,test_acc,lr,seconds,img_per_s", flush=True)
    for epoch in range(epochs):
        if schedule == "cosine":
            cur = lr * (1 + math.cos(math.pi * epoch / epochs)) / 2
        elif schedule == "step":
            cur = lr * train.get("gamma", 0.1) ** (epoch // train.get("step_size", 1))
        else:
            cur = lr
        for g in opt.param_groups:
            g["lr"] = cur
        perm = torch.randperm(len(xtr))
        t0 = time.perf_counter()
        loss_sum, correct = 0.0, 0
        for i in range(0, len(xtr), batch):
            idx = perm[i:i + batch]
            x, y = xtr[idx], ytr[idx]
            if mirror:
                flip = torch.rand(len(idx)) < 0.5
                x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            if shift:  # RandomCrop(size, padding=shift): pad with zeros, crop at a random offset
                n, c, h, w = x.shape
                padded = torch.nn.functional.pad(x, (shift,) * 4)
                rows = torch.randint(0, 2 * shift + 1, (n, 1)) + torch.arange(h)
                cols = torch.randint(0, 2 * shift + 1, (n, 1)) + torch.arange(w)
                x = padded[torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None],
                           rows[:, None, :, None], cols[:, None, None, :]]
            logits, loss = net.forward(x, y, True)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += float(loss) * len(idx)
            correct += int((logits.argmax(1) == y).sum())
        secs = time.perf_counter() - t0
        with torch.no_grad():
            hit = 0
            for i in range(0, len(xte), 500):
                logits, _ = net.forward(xte[i:i + 500], yte[i:i + 500], False)
                hit += int((logits.argmax(1) == yte[i:i + 500]).sum())
        print(f"{epoch + 1},{loss_sum / len(xtr):.4f},{100 * correct / len(xtr):.2f},"
              f"{100 * hit / len(xte):.2f},{cur:.6g},{secs:.1f},{len(xtr) / secs:.0f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
