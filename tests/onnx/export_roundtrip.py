"""export_roundtrip.py — dagnet → ONNX → ONNX Runtime, and dagnet → ONNX → dagnet (docs/onnx.md).

    /usr/bin/python3 tests/onnx/export_roundtrip.py --dagnet build/dagnet
        [--ort DIR/node_modules] [--keep DIR] [MODEL.json ...]   (default: examples/models/*)

For each model, with its params initialised from seed 7 (`dagnet grad --tensors` writes them):
  1. `dagnet export` → ONNX Runtime (tests/onnx/ort_run.js) gives dagnet's `infer` outputs
     within 1e-5 relative (max |diff| ≤ 1e-5 · max |dagnet| + 1e-7); skipped without --ort;
  2. `dagnet import` of that file gives back every param, bit for bit, under its name, and
     `dagnet infer` on the imported model gives the same outputs (same tolerance).
Exit 1 when a model fails.
"""
import argparse
import glob
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
RTOL, ATOL = 1e-5, 1e-7


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        dt = {"F32": np.float32, "I32": np.int32, "I64": np.int64}[e["dtype"]]
        out[name] = np.frombuffer(data[base + b:base + end], dtype=dt).reshape(e["shape"])
    return out


def sh(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode:
        raise RuntimeError(f"{' '.join(cmd[:2])}: {r.stderr.strip()}")
    return r.stdout


def close(got, want):
    err = float(np.max(np.abs(got - want))) if want.size else 0.0
    return got.shape == want.shape and err <= RTOL * float(np.max(np.abs(want))) + ATOL, err


def run(model, a, work):
    name = os.path.splitext(os.path.basename(model))[0]
    spec = json.load(open(model))
    rng = np.random.RandomState(3)
    feeds, fmodel = [], []
    for inp, e in spec["inputs"].items():
        shape = [2 if d is None else d for d in e["shape"]]
        path = os.path.join(work, f"{name}.{inp}.npy")
        if e.get("dtype") == "int32":
            np.save(path, np.zeros(shape, np.int32))
        else:
            np.save(path, rng.rand(*shape).astype(np.float32))
            fmodel += [f"{inp}={path}"]
        feeds += ["--feed", f"{inp}={path}"]
    w = os.path.join(work, name + ".safetensors")
    dump = os.path.join(work, name + ".grad.safetensors")
    if spec.get("loss"):
        sh([a.dagnet, "grad", model, "--seed", "7", *feeds, "--out", dump, "--tensors"])
        dumped = read_safetensors(dump)
        params = {k[6:]: v for k, v in dumped.items() if k.startswith("param.")}
        # State (BatchNorm's running statistics) comes back by name; its values in the dump
        # are after grad's training forward, not the exported ones, so the re-imported
        # model's outputs (below) are what check them.
        state = {k[6:] for k in dumped if k.startswith("state.")}
        save = [a.dagnet, "export", model, "--seed", "7", "--out"]
    else:
        raise RuntimeError("a model without a loss (no params dump)")
    onnx = os.path.join(work, name + ".onnx")
    sh(save + [onnx])
    outs = spec["outputs"]
    want = {}
    for o in outs:
        p = os.path.join(work, f"{name}.dn.{o}.npy")
        sh([a.dagnet, "infer", model, "--seed", "7", *feeds, "--fetch", o, "--out", p])
        want[o] = np.load(p)
    notes = []
    if a.ort:
        prefix = os.path.join(work, name + ".ort")
        sh(["node", os.path.join(HERE, "ort_run.js"), onnx, prefix, *fmodel],
           env=dict(os.environ, NODE_PATH=a.ort))
        for i, o in enumerate(outs):
            ok, err = close(np.load(f"{prefix}.{i}.npy"), want[o])
            notes.append(f"ORT {o} {err:.2g}")
            if not ok:
                return False, "ONNX Runtime differs: " + ", ".join(notes)
    js, wi = os.path.join(work, name + ".imported.json"), os.path.join(work, name + ".imported.st")
    sh([a.dagnet, "import", onnx, "--out", js, "--weights", wi])
    back = read_safetensors(wi)
    if sorted(back) != sorted(set(params) | state):
        return False, f"params after import: {sorted(set(back) ^ (set(params) | state))} differ"
    for k, v in params.items():
        if back[k].shape != v.shape or not np.array_equal(back[k], v):
            return False, f"param {k} changed by export + import"
    for o in outs:
        p = os.path.join(work, f"{name}.back.{o}.npy")
        sh([a.dagnet, "infer", js, "--weights", wi,
            *[x for f in fmodel for x in ("--feed", f)], "--fetch", o, "--out", p])
        ok, err = close(np.load(p), want[o])
        notes.append(f"re-import {o} {err:.2g}")
        if not ok:
            return False, "re-imported model differs: " + ", ".join(notes)
    return True, f"{len(params)} params identical; max |diff| " + ", ".join(notes)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dagnet", required=True)
    ap.add_argument("--ort", help="node_modules folder holding onnxruntime-node")
    ap.add_argument("--keep")
    ap.add_argument("models", nargs="*")
    a = ap.parse_args()
    a.dagnet = os.path.abspath(a.dagnet)
    models = a.models or sorted(glob.glob(os.path.join(HERE, "..", "..", "examples", "models",
                                                       "*.json")))
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        work = a.keep or tmp
        os.makedirs(work, exist_ok=True)
        for m in models:
            try:
                ok, why = run(m, a, work)
            except RuntimeError as e:
                ok, why = False, str(e)
            failed += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {os.path.basename(m)}: {why}", flush=True)
    if not a.ort:
        print("export_roundtrip: ONNX Runtime not given (--ort): only export → import checked")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
