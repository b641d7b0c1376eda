#!/usr/bin/python3
"""dagnet against PyTorch, side by side, on the same machine in the same run.

usage: compare.py [--dagnet PATH] [--threads T] [--rounds R] [--iters N] [--warmup W]
                  [--markdown FILE] [--torch-only] [--threads-scaling] [MODEL:MODE:BATCH ...]

What is measured, for each configuration (a model file, a mode and a batch size):

  train  one full training step on a fixed synthetic batch: forward, backward and an
         Adam update (lr 0.001);
  infer  one forward pass in inference mode up to the model's outputs.

dagnet is timed by its own `dagnet bench MODEL --batch B --threads T --iters N --warmup W
--mode MODE --json` (one subprocess per round, with its own warm-up), which prints the
median, quartiles and peak RSS as JSON. PyTorch (float32) runs the same JSON model in this
process, built by the reader of tests/parity/parity.py and run with the calls a PyTorch user
would write (F.conv2d, F.max_pool2d, F.linear with a [out, in] weight, F.cross_entropy,
torch.optim.Adam, torch.inference_mode), T intra-op threads and one inter-op thread; it is
timed step by step with time.perf_counter() after W warm-up steps.

The two sides alternate: each of R rounds runs dagnet, then PyTorch, so that both see the
same machine state. A side's figure is the median over the rounds of its per-round median
step time; the spread shown is the range of the round medians. The ratio is PyTorch's step
time over dagnet's (the same as dagnet's images/s over PyTorch's, or at batch 1 the latency
ratio): above 1, dagnet is faster.

--threads-scaling also times dagnet alone at 1 and at T threads (LeNet-5 and SimpleConvNet,
train, batch 100), alternating, and prints the speedup. --torch-only skips dagnet.

Exit status: 0 when everything ran (whether or not the targets are met), 1 when dagnet or
the PyTorch run failed, 2 on a usage error.
"""
import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:
    print(f"compare.py: needs numpy and PyTorch for /usr/bin/python3 (python3-torch): {e}",
          file=sys.stderr)
    sys.exit(1)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "parity"))
import parity  # noqa: E402  (the JSON model reader and the ops in PyTorch)

MODELS = os.path.join(REPO, "examples", "models")

# The default suite: (model file, mode, batch) -> (iters, warm-up), sized for roughly
# 1-2 s per side and round on a 2-core machine.
SUITE = {
    ("simple_convnet.json", "train", 100): (50, 5),
    ("simple_convnet.json", "infer", 100): (150, 10),
    ("simple_convnet.json", "infer", 1): (3000, 200),
    ("lenet5.json", "train", 100): (120, 10),
    ("lenet5.json", "infer", 100): (300, 20),
    ("lenet5.json", "infer", 1): (3000, 200),
    ("alexnet.json", "train", 16): (3, 1),
    ("alexnet.json", "infer", 16): (4, 1),
}
DEFAULT_ITERS = (20, 3)          # for a configuration outside the suite
SCALING = [("lenet5.json", "train", 100), ("simple_convnet.json", "train", 100)]

# Targets on the ratio, by (model name, mode, batch).
TARGETS = {
    ("simple_convnet", "train", 100): 2.0, ("simple_convnet", "infer", 100): 2.0,
    ("lenet5", "train", 100): 2.0, ("lenet5", "infer", 100): 2.0,
    ("simple_convnet", "infer", 1): 4.0, ("lenet5", "infer", 1): 4.0,
    ("alexnet", "train", 16): 1.2, ("alexnet", "infer", 16): 1.0,
}
RSS_TARGETS_MB = {("lenet5", "train", 100): 50.0}
SCALING_TARGET = (2, 1.8)        # at 2 threads, at least 1.8x the 1-thread speed


class BenchError(Exception):
    """A run failed: dagnet exited with an error or printed something unusable."""


@dataclass
class Config:
    path: str
    name: str          # the model's "name"
    mode: str          # "train" or "infer"
    batch: int
    iters: int
    warmup: int

    @property
    def label(self):
        return f"{self.name} {self.mode} {self.batch}"

    @property
    def key(self):
        return (self.name, self.mode, self.batch)


@dataclass
class Side:
    """One side's per-round results."""
    ms: list = field(default_factory=list)      # median ms/step of each round
    rss_mb: list = field(default_factory=list)  # dagnet only

    def median_ms(self):
        return float(np.median(self.ms))

    def images_per_s(self, batch):
        return batch * 1000.0 / self.median_ms()

    def describe(self, batch):
        """'16393 (6.10 ms, 6.02-6.31)': images/s, median ms/step, range of round medians."""
        return (f"{fmt_rate(self.images_per_s(batch))} ({fmt_ms(self.median_ms())} ms, "
                f"{fmt_ms(min(self.ms))}-{fmt_ms(max(self.ms))})")


def fmt_ms(ms):
    return f"{ms:.3g}" if ms < 10 else f"{ms:.1f}" if ms < 100 else f"{ms:.0f}"


def fmt_rate(per_s):
    return f"{per_s:.3g}" if per_s < 100 else f"{per_s:.0f}"


def fmt_quartiles(q):
    """'6.1 ms [6.0-6.3]' from a (median, q1, q3) triple."""
    return f"{fmt_ms(q[0])} ms [{fmt_ms(q[1])}-{fmt_ms(q[2])}]"


# --------------------------------------------------------------------------- dagnet

def run_dagnet(dagnet, cfg, threads):
    """One `dagnet bench` run; returns its JSON object, checked against what was asked."""
    cmd = [dagnet, "bench", cfg.path, "--batch", str(cfg.batch), "--threads", str(threads),
           "--iters", str(cfg.iters), "--warmup", str(cfg.warmup), "--mode", cfg.mode, "--json"]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    said = f"$ {shlex.join(cmd)}\nstdout:\n{p.stdout.rstrip()}\nstderr:\n{p.stderr.rstrip()}"
    if p.returncode != 0:
        raise BenchError(f"dagnet exited with status {p.returncode}\n{said}")
    try:
        r = json.loads(p.stdout)
        ms = r["ms_per_step"]
        for k in ("median", "q1", "q3"):
            if not isinstance(ms[k], (int, float)) or not ms[k] > 0:
                raise ValueError(f"ms_per_step.{k} is {ms[k]!r}, expected a positive number")
        if not isinstance(r["peak_rss_mb"], (int, float)):
            raise ValueError(f"peak_rss_mb is {r['peak_rss_mb']!r}, expected a number")
        asked = {"mode": cfg.mode, "batch": cfg.batch, "threads": threads, "iters": cfg.iters}
        for k, v in asked.items():
            if r[k] != v:
                raise ValueError(f"\"{k}\" is {r[k]!r}, {v!r} was asked for")
    except (ValueError, KeyError, TypeError) as e:
        what = f"no field {e}" if isinstance(e, KeyError) else str(e)
        raise BenchError(f"dagnet printed unusable JSON: {what}\n{said}")
    return r


# --------------------------------------------------------------------------- PyTorch

def init_param(w, spec):
    """Fill w (in PyTorch's layout) as the model's init spec says (see docs/format.md)."""
    kind = spec["type"]
    if kind == "zeros":
        nn.init.zeros_(w)
    elif kind == "ones":
        nn.init.ones_(w)
    elif kind == "constant":
        nn.init.constant_(w, float(spec.get("value", 0.0)))
    elif kind == "normal":
        nn.init.normal_(w, 0.0, float(spec.get("std", 0.0)))
    elif kind == "uniform":
        nn.init.uniform_(w, float(spec["low"]), float(spec["high"]))
    elif kind == "he_normal":
        nn.init.kaiming_normal_(w, nonlinearity="relu")
    elif kind == "he_uniform":
        nn.init.kaiming_uniform_(w, nonlinearity="relu")
    elif kind == "xavier_normal":
        nn.init.xavier_normal_(w)
    elif kind == "xavier_uniform":
        nn.init.xavier_uniform_(w)
    else:
        raise parity.ModelError(f"init {kind!r} is not known to compare.py")


class TorchNet(nn.Module):
    """A dagnet model (as parity.Model reads it) as an idiomatic float32 PyTorch module.

    The nodes run in the model's sorted order through parity.apply_op, which calls the
    usual functionals (F.conv2d, F.max_pool2d, F.relu, F.cross_entropy, ...), except for
    Affine, whose weight is kept as PyTorch's [out, in] and applied with F.linear, and
    Dropout, which is F.dropout (identity in eval mode). forward() returns the loss,
    predict() the model's outputs."""

    def __init__(self, spec):
        super().__init__()
        self.spec = spec
        transposed = {n.inputs[1] for n in spec.order if n.op == "Affine"}
        for pname in transposed:
            if any(n.op != "Affine" or n.inputs.index(pname) != 1 for n in spec.consumers(pname)):
                raise parity.ModelError(f"{spec.file}: param \"{pname}\" is an Affine weight and "
                                        "also read otherwise; compare.py cannot lay it out")
        self.names = list(spec.param_order)
        self.weights = nn.ParameterList()
        for pname in self.names:
            shape = spec.params[pname]["shape"]
            if pname in transposed:
                shape = shape[::-1]
            w = nn.Parameter(torch.empty(shape, dtype=torch.float32))
            init_param(w, spec.init_spec(pname))
            self.weights.append(w)
        self.loss_plan = self._plan([spec.loss] if spec.loss else [])
        self.output_plan = self._plan(spec.outputs)

    def _plan(self, targets):
        needed = self.spec._ancestors(targets)
        return [n for n in self.spec.order if n.name in needed]

    def _run(self, feeds, plan):
        vals = dict(feeds)
        vals.update(zip(self.names, self.weights))
        for n in plan:
            xs = [vals[i] for i in n.inputs]
            if n.op == "Affine":
                y = F.linear(torch.flatten(xs[0], 1), xs[1], xs[2] if len(xs) > 2 else None)
            elif n.op == "Dropout":
                y = F.dropout(xs[0], float(n.attrs.get("ratio", 0.5)), training=self.training)
            else:
                y = parity.apply_op(n, xs, None)
            vals[n.name] = y
        return vals

    def forward(self, feeds):
        return self._run(feeds, self.loss_plan)[self.spec.loss]

    def predict(self, feeds):
        vals = self._run(feeds, self.output_plan)
        return [vals[o] for o in self.spec.outputs]


def torch_step(cfg, spec):
    """A function running one PyTorch step of cfg on a fixed random batch."""
    net = TorchNet(spec)
    feeds = {}
    for name, a in parity.make_feeds(spec, np.random.default_rng(1)).items():
        t = torch.from_numpy(a)
        feeds[name] = t.long() if a.dtype.kind == "i" else t
    if cfg.mode == "train":
        net.train()
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)

        def step():
            opt.zero_grad(set_to_none=True)
            loss = net(feeds)
            loss.backward()
            opt.step()
    else:
        net.eval()

        def step():
            with torch.inference_mode():
                net.predict(feeds)
    return step


def time_torch(step, cfg):
    """(median, q1, q3) of the ms of cfg.iters steps timed one by one, after cfg.warmup
    steps."""
    for _ in range(cfg.warmup):
        step()
    ms = []
    for _ in range(cfg.iters):
        t0 = time.perf_counter()
        step()
        ms.append((time.perf_counter() - t0) * 1000.0)
    return tuple(float(v) for v in np.percentile(ms, [50, 25, 75]))


def dagnet_quartiles(res):
    ms = res["ms_per_step"]
    return (float(ms["median"]), float(ms["q1"]), float(ms["q3"]))


# --------------------------------------------------------------------------- measuring

def progress(line):
    """A line on stderr while measuring: each side's median ms/step [q1-q3] in a round."""
    print(line, file=sys.stderr, flush=True)


def compare(cfg, args):
    """R alternating rounds of dagnet then PyTorch: (dagnet Side or None, PyTorch Side)."""
    step = torch_step(cfg, parity.Model(cfg.path, cfg.batch))
    dn, pt = (None if args.torch_only else Side()), Side()
    for r in range(1, args.rounds + 1):
        line = f"{cfg.label}: round {r}/{args.rounds}:"
        if dn is not None:
            res = run_dagnet(args.dagnet, cfg, args.threads)
            q = dagnet_quartiles(res)
            dn.ms.append(q[0])
            dn.rss_mb.append(float(res["peak_rss_mb"]))
            line += f" dagnet {fmt_quartiles(q)},"
        q = time_torch(step, cfg)
        pt.ms.append(q[0])
        progress(f"{line} PyTorch {fmt_quartiles(q)}")
    return dn, pt


def scaling(cfg, args):
    """R alternating rounds of dagnet at 1 thread then at T threads: (1-thread, T-thread)."""
    one, many = Side(), Side()
    for r in range(1, args.rounds + 1):
        q1 = dagnet_quartiles(run_dagnet(args.dagnet, cfg, 1))
        qt = dagnet_quartiles(run_dagnet(args.dagnet, cfg, args.threads))
        one.ms.append(q1[0])
        many.ms.append(qt[0])
        progress(f"{cfg.label}: round {r}/{args.rounds}: dagnet 1 thread {fmt_quartiles(q1)}, "
                 f"{args.threads} threads {fmt_quartiles(qt)}")
    return one, many


def comparison_row(cfg, dn, pt):
    target = TARGETS.get(cfg.key)
    rss_target = RSS_TARGETS_MB.get(cfg.key)
    latency = " (latency)" if cfg.batch == 1 else ""
    row = [cfg.label, f"{cfg.iters}+{cfg.warmup}",
           dn.describe(cfg.batch) if dn else "-", pt.describe(cfg.batch)]
    if dn is None:
        return row + ["-", f">= {target:g}{latency}" if target else "-", "-", "-"]
    ratio = pt.median_ms() / dn.median_ms()
    rss = max(dn.rss_mb)
    return row + [f"{ratio:.2f}",
                  f">= {target:g}{latency}" if target else "-",
                  ("yes" if ratio >= target else "NO") if target else "-",
                  f"{rss:.1f}" + (f" (<= {rss_target:g}: {'yes' if rss <= rss_target else 'NO'})"
                                  if rss_target else "")]


COMPARISON_HEAD = ["config", "iters+warmup", "dagnet img/s (ms/step, rounds)",
                   "PyTorch img/s (ms/step, rounds)", "ratio", "target", "met?",
                   "dagnet peak RSS MB"]
COMPARISON_NOTE = ("img/s from the median over the rounds of each round's median ms/step; "
                   "'rounds' is the range of the round medians. ratio = PyTorch ms/step / dagnet "
                   "ms/step = dagnet img/s / PyTorch img/s (> 1: dagnet is faster).")


def scaling_row(cfg, threads, one, many):
    speedup = one.median_ms() / many.median_ms()
    want_threads, want = SCALING_TARGET
    target = want if threads == want_threads else None
    return [cfg.label, f"{cfg.iters}+{cfg.warmup}", one.describe(cfg.batch),
            many.describe(cfg.batch), f"{speedup:.2f}",
            f">= {target:g}" if target else "-",
            ("yes" if speedup >= target else "NO") if target else "-"]


def scaling_head(threads):
    return ["config", "iters+warmup", "dagnet 1 thread img/s (ms/step, rounds)",
            f"dagnet {threads} threads img/s (ms/step, rounds)", "speedup", "target", "met?"]


# --------------------------------------------------------------------------- output

def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def header_lines(args):
    """(label, text) pairs describing the run and the machine."""
    u = os.uname()
    return [("command", shlex.join(sys.argv)),
            ("date", f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC"),
            ("system", f"{u.sysname} {u.release} {u.machine}"),
            ("cpu", f"{cpu_model()} ({os.cpu_count()} logical CPUs)"),
            ("torch", f"{torch.__version__} (float32, {torch.get_num_threads()} threads, "
                      f"{torch.get_num_interop_threads()} inter-op thread)"),
            ("dagnet", "(not run: --torch-only)" if args.torch_only else args.dagnet),
            ("threads", f"{args.threads}; rounds: {args.rounds}"),
            ("load average at start", " ".join(f"{v:.2f}" for v in os.getloadavg()))]


def plain_table(head, rows):
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
    return [fmt(head), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows]


def markdown_table(head, rows):
    line = lambda r: "| " + " | ".join(c.replace("|", "\\|") for c in r) + " |"
    return [line(head), "|" + "---|" * len(head)] + [line(r) for r in rows]


def write_markdown(path, header, tables):
    """The header as a list and each (title, head, rows, note) as a Markdown table; written
    to a temporary file beside path, then renamed into place."""
    out = [f"- {k}: `{v}`" if k == "command" else f"- {k}: {v}" for k, v in header]
    for title, head, rows, note in tables:
        out += ["", f"**{title}**", ""] + markdown_table(head, rows) + ["", note]
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("\n".join(out) + "\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# --------------------------------------------------------------------------- command line

def parse_args(argv):
    ap = argparse.ArgumentParser(
        description="Time dagnet and PyTorch alternately on the same models and print the ratio.",
        epilog="CONFIG is MODEL.json:MODE:BATCH with MODE train or infer, e.g. "
               "examples/models/lenet5.json:train:100. Without CONFIG: the default suite "
               "(SimpleConvNet and LeNet-5 train 100, infer 100, infer 1; AlexNet train 16, "
               "infer 16).")
    ap.add_argument("--dagnet", default=os.path.join(REPO, "build", "dagnet"),
                    help="the dagnet command (default: build/dagnet in the repository)")
    ap.add_argument("--threads", type=int, default=2, help="threads for both sides (default 2)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    ap.add_argument("--iters", type=int, help="timed steps per round and side (default: per config)")
    ap.add_argument("--warmup", type=int, help="warm-up steps per round and side (default: per config)")
    ap.add_argument("--markdown", metavar="FILE", help="also write the tables as Markdown to FILE")
    ap.add_argument("--torch-only", action="store_true", help="time PyTorch alone, skip dagnet")
    ap.add_argument("--threads-scaling", action="store_true",
                    help="also time dagnet at 1 and at --threads threads (LeNet-5 and "
                         "SimpleConvNet, train 100)")
    ap.add_argument("configs", nargs="*", metavar="CONFIG")
    args = ap.parse_args(argv)
    for name in ("threads", "rounds", "iters"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            ap.error(f"--{name} must be at least 1")
    if args.warmup is not None and args.warmup < 0:
        ap.error("--warmup must be at least 0")
    if args.torch_only and args.threads_scaling:
        ap.error("--threads-scaling times dagnet; it cannot go with --torch-only")
    if args.threads_scaling and args.threads < 2:
        ap.error("--threads-scaling needs --threads 2 or more")
    if not args.torch_only and not (os.path.isfile(args.dagnet) and os.access(args.dagnet, os.X_OK)):
        ap.error(f"{args.dagnet} is not an executable file (see --dagnet)")
    try:
        configs = [make_config(c, args) for c in args.configs] or \
            [make_config(f"{os.path.join(MODELS, m)}:{mode}:{b}", args) for m, mode, b in SUITE]
        scaled = [make_config(f"{os.path.join(MODELS, m)}:{mode}:{b}", args)
                  for m, mode, b in SCALING] if args.threads_scaling else []
    except ValueError as e:
        ap.error(str(e))
    return args, configs, scaled


def make_config(text, args):
    """A Config from MODEL:MODE:BATCH (MODEL relative to here or to the repository)."""
    parts = text.rsplit(":", 2)
    if len(parts) != 3 or parts[1] not in ("train", "infer") or not parts[2].isdigit() \
            or int(parts[2]) < 1:
        raise ValueError(f"config {text!r}: expected MODEL.json:train|infer:BATCH")
    path, mode, batch = parts[0], parts[1], int(parts[2])
    if not os.path.isfile(path) and os.path.isfile(os.path.join(REPO, path)):
        path = os.path.join(REPO, path)
    try:
        spec = parity.Model(path, batch)
    except OSError as e:
        raise ValueError(f"config {text!r}: {e}")
    except (parity.ModelError, KeyError, TypeError) as e:
        raise ValueError(f"config {text!r}: cannot read the model: {e}")
    if mode == "train" and not spec.loss:
        raise ValueError(f"config {text!r}: the model has no loss to train")
    if mode == "infer" and not spec.outputs:
        raise ValueError(f"config {text!r}: the model has no outputs")
    iters, warmup = SUITE.get((os.path.basename(path), mode, batch), DEFAULT_ITERS)
    return Config(path, spec.name or os.path.splitext(os.path.basename(path))[0], mode, batch,
                  args.iters or iters, warmup if args.warmup is None else args.warmup)


def main(argv):
    args, configs, scaled = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    header = header_lines(args)
    print("\n".join(f"{k}: {v}" for k, v in header), flush=True)
    try:
        rows = [comparison_row(cfg, *compare(cfg, args)) for cfg in configs]
        tables = [(f"dagnet vs PyTorch, {args.threads} threads", COMPARISON_HEAD, rows,
                   COMPARISON_NOTE)]
        if scaled:
            rows = [scaling_row(cfg, args.threads, *scaling(cfg, args)) for cfg in scaled]
            tables.append((f"dagnet at 1 and {args.threads} threads", scaling_head(args.threads),
                           rows, "speedup = 1-thread ms/step / "
                                 f"{args.threads}-thread ms/step."))
    except (BenchError, parity.ModelError, RuntimeError) as e:
        print(f"compare.py: {e}", file=sys.stderr)
        return 1
    for title, head, rows, note in tables:
        print(f"\n{title}\n")
        print("\n".join(plain_table(head, rows)))
        print(note)
    if args.markdown:
        write_markdown(args.markdown, header, tables)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
