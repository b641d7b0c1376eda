#!/usr/bin/env python3
"""onnx_conformance.py — ONNX's own backend test cases through dagnet (docs/onnx.md).

    /usr/bin/python3 scripts/onnx_conformance.py --dagnet build/dagnet --tool build/onnx_tensor
        [--data /usr/share/libonnx-testdata/data] [--report FILE.md] [--doc docs/onnx.md] [-v]

Every case of node/ and pytorch-converted/ (a model.onnx and test_data_set_*/input_N.pb,
output_N.pb, Debian's libonnx-testdata) is imported with `dagnet import`. A case whose import
names an op type dagnet does not have is out of scope (counted per op). Every other case is
either
  passed       each data set's outputs match, by `dagnet infer`, within ONNX's backend-test
               tolerances (rtol 1e-3, atol 1e-7: onnx/backend/test/runner)
  unsupported  the importer refused it, naming what dagnet cannot express (its message)
  FAILED       a mismatch or an error after a successful import: a bug
--report writes the per-case table; --doc replaces the part of docs/onnx.md between its
`<!-- conformance -->` markers with it. Exit status 1 when a case FAILED.
"""
import argparse
import collections
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

RTOL, ATOL = 1e-3, 1e-7

# What a dagnet model loader says about fields and ops that other branches add.
def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    return r.returncode, (r.stderr.strip() or r.stdout.strip()).replace("dagnet: ", "", 1)


def short(msg):
    """The reason without the file name and node prefix noise."""
    msg = msg.splitlines()[0] if msg else msg
    msg = re.sub(r"^the model imported from ONNX: ", "", msg)
    msg = re.sub(r"^\S*model\.onnx: ", "", msg)
    return msg.replace("|", "\\|")


def one_case(case, a, tmp):
    model = os.path.join(case, "model.onnx")
    js, st = os.path.join(tmp, "m.json"), os.path.join(tmp, "m.safetensors")
    rc, msg = run([a.dagnet, "import", model, "--out", js, "--weights", st])
    if rc:
        m = re.search(r'op type "([^"]+)" is not supported', msg)
        if m:
            return "op", m.group(1)
        return "unsupported", short(msg)
    with open(js) as f:
        spec = json.load(f)
    inputs = list(spec["inputs"])
    outputs = spec["outputs"]
    sets = sorted(glob.glob(os.path.join(case, "test_data_set_*")))
    if not sets:
        return "unsupported", "no test data"
    worst = 0.0
    for ds in sets:
        feeds = []
        ins = sorted(glob.glob(os.path.join(ds, "input_*.pb")),
                     key=lambda p: int(re.findall(r"\d+", os.path.basename(p))[0]))
        if len(ins) != len(inputs):
            return "FAILED", f"{len(ins)} input files for {len(inputs)} inputs"
        for i, (pb, name) in enumerate(zip(ins, inputs)):
            npy = os.path.join(tmp, f"in{i}.npy")
            rc, msg = run([a.tool, pb, npy])
            if rc:
                return "unsupported", "test input: " + short(msg)
            feeds += ["--feed", f"{name}={npy}"]
        for k, name in enumerate(outputs):
            want_pb = os.path.join(ds, f"output_{k}.pb")
            want_npy, got_npy = os.path.join(tmp, "want.npy"), os.path.join(tmp, "got.npy")
            rc, msg = run([a.tool, want_pb, want_npy])
            if rc:
                return "unsupported", "test output: " + short(msg)
            rc, msg = run([a.dagnet, "infer", js, "--weights", st, *feeds, "--fetch", name,
                           "--out", got_npy])
            if rc:
                return "FAILED", "infer: " + short(msg)
            want, got = np.load(want_npy), np.load(got_npy)
            if want.shape != got.shape:
                return "FAILED", f"output {name}: shape {got.shape}, expected {want.shape}"
            if not np.allclose(got, want, rtol=RTOL, atol=ATOL, equal_nan=True):
                err = np.max(np.abs(got.astype(np.float64) - want))
                return "FAILED", f"output {name}: max |diff| {err:.3g}"
            if want.size:
                worst = max(worst, float(np.max(np.abs(got.astype(np.float64) - want) /
                                                (np.abs(want) + 1e-30) * (np.abs(want) > 1e-6))))
    return "passed", f"{len(sets)} data set(s), max relative diff {worst:.2g}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dagnet", required=True)
    ap.add_argument("--tool", required=True)
    ap.add_argument("--data", default="/usr/share/libonnx-testdata/data")
    ap.add_argument("--report")
    ap.add_argument("--doc")
    ap.add_argument("-v", action="store_true")
    ap.add_argument("cases", nargs="*", help="only cases whose name contains one of these")
    a = ap.parse_args()
    a.dagnet, a.tool = os.path.abspath(a.dagnet), os.path.abspath(a.tool)
    rows, ops = [], collections.Counter()
    count = collections.Counter()
    with tempfile.TemporaryDirectory() as tmp:
        for suite in ("node", "pytorch-converted"):
            for case in sorted(glob.glob(os.path.join(a.data, suite, "*"))):
                name = f"{suite}/{os.path.basename(case)}"
                if a.cases and not any(c in name for c in a.cases):
                    continue
                if not os.path.exists(os.path.join(case, "model.onnx")):
                    continue
                status, why = one_case(case, a, tmp)
                if status == "op":
                    ops[why] += 1
                    count["out of scope"] += 1
                    continue
                count[status] += 1
                rows.append((name, status, why))
                if a.v or status == "FAILED":
                    print(f"{status:11s} {name}: {why}", flush=True)
    summary = (f"{count['passed']} passed, {count['unsupported']} unsupported, "
               f"{count['FAILED']} failed; "
               f"{count['out of scope']} cases of {len(ops)} op types dagnet does not have")
    print("onnx_conformance:", summary)
    lines = [f"Result: {summary}.", "", "| case | result | details |", "|---|---|---|"]
    lines += [f"| {n} | {s} | {w} |" for n, s, w in rows]
    lines += ["", "Op types out of scope (cases): " +
              ", ".join(f"{o} ({c})" for o, c in sorted(ops.items())) + "."]
    text = "\n".join(lines) + "\n"
    if a.report:
        with open(a.report, "w") as f:
            f.write(text)
    if a.doc:
        with open(a.doc) as f:
            doc = f.read()
        start, end = "<!-- conformance -->", "<!-- /conformance -->"
        i, j = doc.index(start) + len(start), doc.index(end)
        with open(a.doc, "w") as f:
            f.write(doc[:i] + "\n" + text + doc[j:])
    return 1 if count["FAILED"] else 0


if __name__ == "__main__":
    sys.exit(main())
