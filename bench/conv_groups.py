#!/usr/bin/python3
"""Grouped and depthwise Conv against an ungrouped Conv of one group's shape (issue 12, item 3).

usage: conv_groups.py [--dagnet build/dagnet] [--threads T] [--rounds R] [--mode infer|train]
                      [--only TEXT]

A Conv with G groups is G independent convolutions of C/G channels into F/G filters each,
which dagnet runs as views of one tensor (no copies). Its speed per group is compared with
two ungrouped Convs of one group's shape [C/G -> F/G], same kernel, stride, pad, dilation
and image size:
  - "same batch": batch N, the group's own shape; its input is G times smaller than the
    grouped Conv's, so at small channel counts it stays in the caches between steps;
  - "same bytes": batch N*G, the same data volume (and flops) as the grouped Conv, so both
    sides read their inputs from the same level of the memory hierarchy.
GFLOP/s = the op's flops / its median time in `dagnet bench --json` (the node's own time,
without the step's other costs). The sides alternate: each round runs every configuration
once, the three sides of a shape one after another in an order rotated by one each round; a
figure is the median of the round medians, with their range.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

# name, C, F, G, H, kernel, stride, pad, dilation, batch
SHAPES = [
    ("depthwise 64ch 28x28 3x3", 64, 64, 64, 28, 3, 1, 1, 1, 32),
    ("depthwise 64ch 28x28 3x3 dil 2", 64, 64, 64, 28, 3, 1, 2, 2, 32),
    ("2-tower conv2 96->256 27x27 5x5 (G 2)", 96, 256, 2, 27, 5, 1, 2, 1, 4),
    ("2-tower conv4 384->384 13x13 3x3 (G 2)", 384, 384, 2, 13, 3, 1, 1, 1, 4),
    ("grouped 64->64 14x14 3x3 (G 4)", 64, 64, 4, 14, 3, 1, 1, 1, 32),
]


def model(c, f, g, h, k, s, p, d):
    """The Conv alone, then a cheap loss (global average, softmax cross-entropy over its
    filters) so that train mode has something to differentiate; only the Conv's row is read."""
    return {
        "format": "dagnet/1",
        "name": "conv",
        "inputs": {"x": {"shape": [None, c, h, h]}, "label": {"shape": [None], "dtype": "int32"}},
        "nodes": [{"name": "conv", "op": "Conv", "inputs": ["x"],
                   "attrs": {"filters": f, "kernel": k, "stride": s, "pad": p,
                             "dilation": d, "groups": g}},
                  {"name": "gap", "op": "GlobalAvgPool", "inputs": ["conv"]},
                  {"name": "flat", "op": "Flatten", "inputs": ["gap"]},
                  {"name": "loss", "op": "SoftmaxCrossEntropy", "inputs": ["flat", "label"]}],
        "outputs": ["flat"],
        "loss": "loss",
    }


def run(dagnet, path, batch, threads, mode):
    out = subprocess.run([dagnet, "bench", path, "--batch", str(batch), "--threads", str(threads),
                          "--mode", mode, "--json"], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"conv_groups.py: {dagnet} bench {path} failed:\n{out.stderr}")
    r = json.loads(out.stdout)
    op = next(o for o in r["ops"] if o["node"] == "conv")
    ms = op["forward_ms"] + op["backward_ms"]
    gflop = op["forward_gflops"] * op["forward_ms"] + op["backward_gflops"] * op["backward_ms"]
    return gflop / ms if ms > 0 else 0.0  # GFLOP/s over the node's forward (+ backward)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dagnet", default="build/dagnet")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mode", choices=["infer", "train"], default="infer")
    ap.add_argument("--only", default="", help="shapes whose name contains this text")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="conv_groups.")
    runs = []  # (label, kind, path, batch)
    for name, c, f, g, h, k, s, p, d, n in SHAPES:
        if args.only not in name:
            continue
        sides = [("grouped", model(c, f, g, h, k, s, p, d), n),
                 ("same batch", model(c // g, f // g, 1, h, k, s, p, d), n),
                 ("same bytes", model(c // g, f // g, 1, h, k, s, p, d), n * g)]
        for kind, m, batch in sides:
            path = os.path.join(tmp, f"{len(runs)}.json")
            with open(path, "w") as fp:
                json.dump(m, fp)
            runs.append((name, kind, path, batch))

    got = {i: [] for i in range(len(runs))}
    for r in range(args.rounds):
        # The three sides of a shape in turn, their order rotated by one each round, so that
        # no side always runs first (or after the same neighbour).
        for j in range(0, len(runs), 3):
            for i in (j + (r + t) % 3 for t in range(3)):
                got[i].append(run(args.dagnet, runs[i][2], runs[i][3], args.threads, args.mode))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)

    with open("/proc/loadavg") as fp:
        load = fp.read().split()[:3]
    print(f"# Conv groups, {args.mode}, {args.threads} thread(s), {args.rounds} rounds, "
          f"load average {' '.join(load)} at the end")
    print("| shape | batch | grouped GFLOP/s | same batch | ratio | same bytes | ratio |")
    print("|---|---|---|---|---|---|---|")
    for j in range(0, len(runs), 3):
        med = [statistics.median(got[j + i]) for i in range(3)]
        rng = [f"{min(got[j + i]):.1f}–{max(got[j + i]):.1f}" for i in range(3)]
        name, _, _, batch = runs[j]
        print(f"| {name} | {batch} | {med[0]:.1f} ({rng[0]}) | {med[1]:.1f} ({rng[1]}) | "
              f"{med[0] / med[1]:.2f} | {med[2]:.1f} ({rng[2]}) | {med[0] / med[2]:.2f} |")


if __name__ == "__main__":
    main()
