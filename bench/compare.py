#!/usr/bin/python3
"""dagnet against PyTorch and ONNX Runtime, side by side, on the same machine in the same run.

usage: compare.py [--dagnet PATH] [--ort DIR] [--threads T] [--rounds R] [--iters N]
                  [--warmup W] [--markdown FILE] [--torch-only] [--threads-scaling]
                  [--two-at-once] [MODEL:MODE:BATCH[:THREADS] ...]

What is measured, for each configuration (a model file, a mode, a batch size and a thread
count, by default --threads; the suite's batch-1 latencies use 1 thread):

  train  one full training step on a fixed synthetic batch: forward, backward and an
         Adam update (lr 0.001);
  infer  one forward pass in inference mode up to the model's outputs.

The sides, each one subprocess per round (its own warm-up of W steps, then N timed steps, each
reporting the median and quartiles of its per-step times as JSON):

  dagnet              `dagnet bench MODEL --batch B --threads T --iters N --warmup W --mode MODE
                      --json` (also its peak RSS, read from VmHWM).
  PyTorch as shipped  this script again (`compare.py --torch-worker CONFIG ...`): the same JSON
                      model built by the reader of tests/parity/parity.py and run with the calls
                      a PyTorch user would write (F.conv2d, F.max_pool2d, F.linear with an
                      [out, in] weight, F.cross_entropy, torch.optim.Adam,
                      torch.inference_mode), float32, T intra-op threads, one inter-op thread,
                      each step timed with time.perf_counter(). Its environment is this one
                      without the variables below.
  PyTorch tuned       the same worker with BLIS_NUM_THREADS=T (Debian's torch otherwise leaves
                      its Linear layers on one BLIS thread) and glibc's malloc thresholds pinned
                      (MALLOC_MMAP_THRESHOLD_=MALLOC_TRIM_THRESHOLD_=1073741824); and, when
                      dagnet chose BLIS's kernels for this CPU (docs/performance.md), the same
                      choice as BLIS_ARCH_TYPE. These must be set before torch loads, hence the
                      subprocess.
  ONNX Runtime        infer only: npm's onnxruntime-node (CPU) from --ort DIR, driven by
                      bench/ort_bench.js (T intra-op threads, one inter-op thread, all graph
                      optimisations, sequential execution) on the PyTorch module above exported
                      with torch.onnx.export (its prediction, fixed batch, opset 13). Skipped,
                      with a note, when node or DIR/onnxruntime-node is missing.

The sides alternate: each of R rounds runs every side once, the order rotated by one each
round, so that all see the same machine state; the 1-minute load average is read at the start
and end of each round. A side's figure is the median over the rounds of its per-round median
step time; the spread shown is the range of the round medians. Each ratio is the anchor's step
time over dagnet's (dagnet's images/s over the anchor's, or at batch 1 the latency ratio):
above 1, dagnet is faster.

--threads-scaling also times dagnet at 1 and at T threads (LeNet-5 and SimpleConvNet, train,
batch 100). --two-at-once times LeNet-5 training (batch 100, T threads) alone and as two
processes started at the same moment, for dagnet and for PyTorch tuned; the pair's figure is
its two img/s summed and the ratio is together / alone. --torch-only skips dagnet.

Exit status: 0 when everything ran (whether or not the targets are met), 1 when a side failed,
2 on a usage error.
"""
import argparse
import datetime
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
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

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "parity"))
import parity  # noqa: E402  (the JSON model reader and the ops in PyTorch)

MODELS = os.path.join(REPO, "examples", "models")
ORT_SCRIPT = os.path.join(HERE, "ort_bench.js")

# The default suite: (model file, mode, batch, threads or None for --threads) -> (iters,
# warm-up), sized for roughly 1-2 s per side and round on a 2-core machine.
SUITE = {
    ("simple_convnet.json", "train", 100, None): (50, 5),
    ("simple_convnet.json", "infer", 100, None): (150, 10),
    ("simple_convnet.json", "infer", 1, 1): (3000, 200),
    ("lenet5.json", "train", 100, None): (120, 10),
    ("lenet5.json", "infer", 100, None): (300, 20),
    ("lenet5.json", "infer", 1, 1): (3000, 200),
    ("alexnet.json", "train", 16, None): (3, 1),
    ("alexnet.json", "infer", 16, None): (4, 1),
}
DEFAULT_ITERS = (20, 3)          # for a configuration outside the suite
SCALING = [("lenet5.json", "train", 100, None), ("simple_convnet.json", "train", 100, None)]
TWO_AT_ONCE = ("lenet5.json", "train", 100, None)

# The sides, in their order within the first round, and their names in tables.
SIDES = {"dagnet": "dagnet", "torch": "PyTorch as shipped", "tuned": "PyTorch tuned",
         "ort": "ONNX Runtime"}
ANCHORS = ["torch", "tuned", "ort"]
TUNED_ENV = {"MALLOC_MMAP_THRESHOLD_": "1073741824", "MALLOC_TRIM_THRESHOLD_": "1073741824"}

# Targets (issue 14) on dagnet's ratio to each anchor, by (model name, mode, batch); the
# batch-1 latencies are meant at 1 thread, the rest at 2.
TARGETS = {
    ("lenet5", "train", 100): {"torch": 2.0, "tuned": 1.5},
    ("simple_convnet", "train", 100): {"torch": 2.0, "tuned": 2.0},
    ("lenet5", "infer", 100): {"ort": 1.2}, ("simple_convnet", "infer", 100): {"ort": 1.2},
    ("lenet5", "infer", 1): {"ort": 1.5}, ("simple_convnet", "infer", 1): {"ort": 1.5},
    ("alexnet", "train", 16): {"tuned": 1.2}, ("alexnet", "infer", 16): {"ort": 1.0},
}
RSS_TARGETS_MB = {("lenet5", "train", 100): 50.0}
SCALING_TARGET = (2, 1.8)        # at 2 threads, at least 1.8x the 1-thread speed
TWO_AT_ONCE_TARGET = {"dagnet": 0.7}   # two together / one alone, in summed img/s


class BenchError(Exception):
    """A run failed: dagnet exited with an error or printed something unusable."""


@dataclass
class Config:
    path: str
    name: str          # the model's "name"
    mode: str          # "train" or "infer"
    batch: int
    threads: int
    iters: int
    warmup: int

    @property
    def label(self):
        return f"{self.name} {self.mode} {self.batch}, {self.threads} thr"

    @property
    def key(self):
        return (self.name, self.mode, self.batch)

    @property
    def text(self):
        """The CONFIG argument naming this configuration."""
        return f"{self.path}:{self.mode}:{self.batch}:{self.threads}"


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

    def describe_rate(self, batch):
        """'41000 (40100-42000)': images/s and the range of the rounds' images/s."""
        return (f"{fmt_rate(self.images_per_s(batch))} ({fmt_rate(batch * 1000.0 / max(self.ms))}"
                f"-{fmt_rate(batch * 1000.0 / min(self.ms))})")


def fmt_ms(ms):
    return f"{ms:.3g}" if ms < 10 else f"{ms:.1f}" if ms < 100 else f"{ms:.0f}"


def fmt_rate(per_s):
    return f"{per_s:.3g}" if per_s < 100 else f"{per_s:.0f}"


def fmt_quartiles(q):
    """'6.1 ms [6.0-6.3]' from a (median, q1, q3) triple."""
    return f"{fmt_ms(q[0])} ms [{fmt_ms(q[1])}-{fmt_ms(q[2])}]"


def fmt_ratio(ratio, target):
    """'1.34 (>= 2: NO)', or '1.34' without a target."""
    if target is None:
        return f"{ratio:.2f}"
    return f"{ratio:.2f} (>= {target:g}: {'yes' if ratio >= target else 'NO'})"


# --------------------------------------------------------------------------- the sides' runs

@dataclass
class Job:
    """One timed subprocess printing a JSON object with "ms_per_step": {median, q1, q3}."""
    what: str                  # who it is, for messages
    argv: list
    env: dict = None           # None: this process's environment
    handshake: bool = False    # prints "ready", then waits for a line on stdin before timing
    expect: dict = field(default_factory=dict)    # fields whose values must be these
    numbers: tuple = ()        # further fields that must be numbers

    def check(self, code, out, err):
        """The run's JSON object, or BenchError saying what is wrong with it."""
        said = f"$ {shlex.join(self.argv)}\nstdout:\n{out.rstrip()}\nstderr:\n{err.rstrip()}"
        if code != 0:
            raise BenchError(f"{self.what} exited with status {code}\n{said}")
        try:
            r = json.loads(out)
            ms = r["ms_per_step"]
            for k in ("median", "q1", "q3"):
                if not isinstance(ms[k], (int, float)) or not ms[k] > 0:
                    raise ValueError(f"ms_per_step.{k} is {ms[k]!r}, expected a positive number")
            for k in self.numbers:
                if not isinstance(r[k], (int, float)):
                    raise ValueError(f"{k} is {r[k]!r}, expected a number")
            for k, v in self.expect.items():
                if r[k] != v:
                    raise ValueError(f"\"{k}\" is {r[k]!r}, {v!r} was asked for")
        except (ValueError, KeyError, TypeError) as e:
            what = f"no field {e}" if isinstance(e, KeyError) else str(e)
            raise BenchError(f"{self.what} printed unusable JSON: {what}\n{said}")
        return r


def run_together(jobs):
    """Start the jobs at the same moment and return their checked JSON objects, in order.

    Jobs with a handshake (the PyTorch worker, whose import and set-up take seconds) are let
    go together once all have said "ready". The worker prints nothing else before it is let
    go, so the one line read here leaves nothing buffered that communicate() would miss."""
    procs = [subprocess.Popen(j.argv, env=j.env, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE,
                              stdin=subprocess.PIPE if j.handshake else subprocess.DEVNULL)
             for j in jobs]
    for j, p in zip(jobs, procs):
        if j.handshake:
            p.stdout.readline()
    for j, p in zip(jobs, procs):
        if j.handshake:
            try:
                p.stdin.write("go\n")
                p.stdin.flush()
            except BrokenPipeError:
                pass          # it has died; its status and stderr say why below
    outs = [p.communicate() for p in procs]
    return [j.check(p.returncode, out, err) for j, p, (out, err) in zip(jobs, procs, outs)]


def quartiles(res):
    ms = res["ms_per_step"]
    return (float(ms["median"]), float(ms["q1"]), float(ms["q3"]))


def dagnet_job(dagnet, cfg, threads):
    return Job("dagnet", [dagnet, "bench", cfg.path, "--batch", str(cfg.batch), "--threads",
                          str(threads), "--iters", str(cfg.iters), "--warmup", str(cfg.warmup),
                          "--mode", cfg.mode, "--json"],
               expect={"mode": cfg.mode, "batch": cfg.batch, "threads": threads,
                       "iters": cfg.iters},
               numbers=("peak_rss_mb",))


def blis_choice(dagnet):
    """When dagnet chose BLIS's kernels for this CPU, the BLIS_ARCH_TYPE it set (its `--version`
    says "set by dagnet as BLIS_ARCH_TYPE=N"), so that PyTorch tuned's BLIS products (its Linear
    layers; convolutions go to oneDNN) run on the same kernels; None when BLIS chose itself."""
    try:
        out = subprocess.run([dagnet, "--version"], capture_output=True, text=True).stdout
    except OSError:
        return None
    found = re.search(r"set by dagnet as BLIS_ARCH_TYPE=(\d+)", out)
    return found.group(1) if found else None


def torch_env(tuned, threads):
    """This environment without the tuning variables, or with them set for `threads`."""
    tuning = dict(TUNED_ENV, BLIS_NUM_THREADS=str(threads))
    env = {k: v for k, v in os.environ.items() if k not in tuning}
    return dict(env, **tuning) if tuned else env


def torch_job(cfg, tuned):
    return Job(SIDES["tuned" if tuned else "torch"],
               [sys.executable, os.path.abspath(__file__), "--torch-worker", cfg.text,
                "--iters", str(cfg.iters), "--warmup", str(cfg.warmup)],
               env=torch_env(tuned, cfg.threads), handshake=True,
               expect={"threads": cfg.threads, "iters": cfg.iters})


def ort_job(args, cfg, onnx):
    """ort_bench.js on the exported file; onnx is (path, {input name: shape})."""
    path, shapes = onnx
    dims = [f"{name}={','.join(map(str, shape))}" for name, shape in shapes.items()]
    return Job(SIDES["ort"], ["node", ORT_SCRIPT, path, "--threads", str(cfg.threads), "--iters",
                              str(cfg.iters), "--warmup", str(cfg.warmup)] + dims,
               env=dict(os.environ, NODE_PATH=os.path.abspath(args.ort)),
               expect={"threads": cfg.threads, "iters": cfg.iters})


def ort_missing(args):
    """Why ONNX Runtime cannot run (a sentence), or None when it can."""
    if args.ort is None:
        return "not asked for (--ort '')"
    if shutil.which("node") is None:
        return "node is not on PATH"
    if not os.path.isfile(os.path.join(args.ort, "onnxruntime-node", "package.json")):
        return (f"{args.ort}/onnxruntime-node is missing (install it: mkdir -p build/ort && "
                "cd build/ort && npm install --ignore-scripts onnxruntime-node)")
    return None


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


def torch_feeds(spec):
    """The fixed random batch, as tensors by input name."""
    feeds = {}
    for name, a in parity.make_feeds(spec, np.random.default_rng(1)).items():
        t = torch.from_numpy(a)
        feeds[name] = t.long() if a.dtype.kind == "i" else t
    return feeds


def torch_step(cfg, spec):
    """A function running one PyTorch step of cfg on a fixed random batch."""
    net = TorchNet(spec)
    feeds = torch_feeds(spec)
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


def torch_worker(cfg):
    """The PyTorch side as a subprocess (--torch-worker): set up, say "ready", wait for the
    line that lets it go, time, print the JSON object a Job reads. 0 on success."""
    torch.set_num_threads(cfg.threads)
    torch.set_num_interop_threads(1)
    step = torch_step(cfg, parity.Model(cfg.path, cfg.batch))
    print("ready", flush=True)
    sys.stdin.readline()
    q = time_torch(step, cfg)
    print(json.dumps({"threads": torch.get_num_threads(), "iters": cfg.iters,
                      "warmup": cfg.warmup, "torch": torch.__version__,
                      "ms_per_step": dict(zip(("median", "q1", "q3"), q))}))
    return 0


class Predictor(nn.Module):
    """TorchNet's prediction as a module of positional inputs, for torch.onnx.export."""

    def __init__(self, net, names):
        super().__init__()
        self.net, self.names = net, names

    def forward(self, *xs):
        return tuple(self.net.predict(dict(zip(self.names, xs))))


def export_onnx(cfg, workdir):
    """The PyTorch module's inference graph for cfg, exported with torch.onnx.export at cfg's
    batch (opset 13); returns (path, {input name: shape}) for ort_job."""
    spec = parity.Model(cfg.path, cfg.batch)
    net = TorchNet(spec).eval()
    feeds = torch_feeds(spec)
    names = [i for i in spec.inputs if any(i in n.inputs for n in net.output_plan)]
    if any(feeds[i].dtype != torch.float32 for i in names):
        raise BenchError(f"{cfg.path}: ort_bench.js feeds float32 inputs only")
    path = os.path.join(workdir, f"{cfg.name}.b{cfg.batch}.onnx")
    # The exporter's UserWarnings (constant folding of Slice, shape inference of constants, for
    # LRN's padding) are about its own graph passes, not about this model's outputs.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        torch.onnx.export(Predictor(net, names), tuple(feeds[i] for i in names), path,
                          opset_version=13, input_names=names, output_names=spec.outputs)
    return path, {i: tuple(feeds[i].shape) for i in names}


# --------------------------------------------------------------------------- measuring

def progress(line):
    """A line on stderr while measuring: each side's median ms/step [q1-q3] in a round."""
    print(line, file=sys.stderr, flush=True)


def load1():
    """The 1-minute load average (/proc/loadavg)."""
    return os.getloadavg()[0]


def rounds(args, label, tasks):
    """R rounds of every task, the order rotated by one each round. tasks maps a name to a
    function running it once and returning (ms for its Side, text for the progress line).
    Returns ({name: Side}, [(load at round start, load at round end)])."""
    names = list(tasks)
    sides, loads = {n: Side() for n in names}, []
    for r in range(args.rounds):
        start, said = load1(), []
        for name in names[r % len(names):] + names[:r % len(names)]:
            ms, text = tasks[name]()
            sides[name].ms.append(ms)
            said.append(f"{name} {text}")
        loads.append((start, load1()))
        progress(f"{label}: round {r + 1}/{args.rounds} (load {loads[-1][0]:.2f} to "
                 f"{loads[-1][1]:.2f}): " + ", ".join(said))
    return sides, loads


def timed(job, rss=None):
    """A task running job alone; appends dagnet's peak RSS to rss when given."""
    def run():
        res = run_together([job])[0]
        if rss is not None:
            rss.append(float(res["peak_rss_mb"]))
        q = quartiles(res)
        return q[0], fmt_quartiles(q)
    return run


def pair(job, batch):
    """A task running two copies of job started together; its ms is the batch time of their
    summed images/s."""
    def run():
        rate = sum(batch * 1000.0 / quartiles(r)[0] for r in run_together([job, job]))
        return batch * 1000.0 / rate, f"{fmt_rate(rate)} img/s"
    return run


def compare(cfg, args, onnx):
    """R rounds of every side on cfg: ({side: Side}, loads)."""
    tasks = {}
    rss = []
    if not args.torch_only:
        tasks["dagnet"] = timed(dagnet_job(args.dagnet, cfg, cfg.threads), rss)
    tasks["torch"] = timed(torch_job(cfg, False))
    tasks["tuned"] = timed(torch_job(cfg, True))
    if onnx is not None:
        tasks["ort"] = timed(ort_job(args, cfg, onnx))
    sides, loads = rounds(args, cfg.label, tasks)
    if "dagnet" in sides:
        sides["dagnet"].rss_mb = rss
    return sides, loads


def scaling(cfg, args):
    """R rounds of dagnet at 1 thread and at cfg.threads: ({"1": Side, "T": Side}, loads)."""
    return rounds(args, cfg.label, {"1": timed(dagnet_job(args.dagnet, cfg, 1)),
                                    "T": timed(dagnet_job(args.dagnet, cfg, cfg.threads))})


def two_at_once(cfg, args):
    """R rounds of dagnet and PyTorch tuned, each alone and two at once: ({"dagnet alone",
    "dagnet x2", "tuned alone", "tuned x2"}: Side), loads)."""
    jobs = {} if args.torch_only else {"dagnet": dagnet_job(args.dagnet, cfg, cfg.threads)}
    jobs["tuned"] = torch_job(cfg, True)
    tasks = {}
    for side, job in jobs.items():
        tasks[f"{side} alone"] = timed(job)
        tasks[f"{side} x2"] = pair(job, cfg.batch)
    return rounds(args, f"{cfg.label}, two at once", tasks)


def fmt_loads(loads):
    return ", ".join(f"{a:.2f}→{b:.2f}" for a, b in loads)


def comparison_row(cfg, sides, loads):
    targets = TARGETS.get(cfg.key, {})
    row = [cfg.label, f"{cfg.iters}+{cfg.warmup}"]
    row += [sides[s].describe(cfg.batch) if s in sides else "-" for s in SIDES]
    dn = sides.get("dagnet")
    for a in ANCHORS:
        row.append(fmt_ratio(sides[a].median_ms() / dn.median_ms(), targets.get(a))
                   if dn and a in sides else "-")
    rss_target = RSS_TARGETS_MB.get(cfg.key)
    rss = max(dn.rss_mb) if dn else None
    row.append("-" if rss is None else f"{rss:.1f}" + (
        f" (<= {rss_target:g}: {'yes' if rss <= rss_target else 'NO'})" if rss_target else ""))
    return row + [fmt_loads(loads)]


COMPARISON_HEAD = (["config", "iters+warmup"] +
                   [f"{t} img/s (ms/step, rounds)" for t in SIDES.values()] +
                   [f"dagnet / {SIDES[a]}" for a in ANCHORS] +
                   ["dagnet peak RSS MB", "load avg per round (start→end)"])
COMPARISON_NOTE = ("img/s from the median over the rounds of each round's median ms/step; "
                   "'rounds' is the range of the round medians. dagnet / X = X ms/step / dagnet "
                   "ms/step = dagnet img/s / X img/s (> 1: dagnet is faster), with issue 14's "
                   "target where it sets one. PyTorch tuned: BLIS_NUM_THREADS=T, "
                   "MALLOC_MMAP_THRESHOLD_=MALLOC_TRIM_THRESHOLD_=1073741824 (and BLIS_ARCH_TYPE "
                   "when dagnet chose BLIS's kernels: see the header). ONNX Runtime: "
                   "infer only, on the PyTorch module exported by torch.onnx.export.")


def scaling_row(cfg, sides, loads):
    one, many = sides["1"], sides["T"]
    speedup = one.median_ms() / many.median_ms()
    want_threads, want = SCALING_TARGET
    return [cfg.label, f"{cfg.iters}+{cfg.warmup}", one.describe(cfg.batch),
            many.describe(cfg.batch),
            fmt_ratio(speedup, want if cfg.threads == want_threads else None), fmt_loads(loads)]


def scaling_head(threads):
    return ["config", "iters+warmup", "dagnet 1 thread img/s (ms/step, rounds)",
            f"dagnet {threads} threads img/s (ms/step, rounds)", "speedup",
            "load avg per round (start→end)"]


def two_at_once_rows(cfg, sides, loads):
    rows = []
    for side in ("dagnet", "tuned"):
        if f"{side} alone" in sides:
            alone, both = sides[f"{side} alone"], sides[f"{side} x2"]
            rows.append([f"{cfg.label}, {SIDES[side]}", f"{cfg.iters}+{cfg.warmup}",
                         alone.describe_rate(cfg.batch), both.describe_rate(cfg.batch),
                         fmt_ratio(alone.median_ms() / both.median_ms(),
                                   TWO_AT_ONCE_TARGET.get(side)), fmt_loads(loads)])
    return rows


TWO_AT_ONCE_HEAD = ["config", "iters+warmup", "one alone img/s (rounds)",
                    "two at once, summed img/s (rounds)", "together / alone",
                    "load avg per round (start→end)"]
TWO_AT_ONCE_NOTE = ("Two processes of the same training started at the same moment (PyTorch's "
                    "after both have loaded), each with T threads; their img/s (each from its "
                    "median ms/step) summed, against one process alone in the same round.")


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


def header_lines(args, ort_note):
    """(label, text) pairs describing the run and the machine."""
    u = os.uname()
    if ort_note is None:
        package = os.path.join(args.ort, "onnxruntime-node", "package.json")
        with open(package, encoding="utf-8") as f:
            ort_note = (f"onnxruntime-node {json.load(f)['version']} from {args.ort} (infer "
                        "configurations)")
    else:
        ort_note = f"not run: {ort_note}"
    return [("command", shlex.join(sys.argv)),
            ("date", f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC"),
            ("system", f"{u.sysname} {u.release} {u.machine}"),
            ("cpu", f"{cpu_model()} ({os.cpu_count()} logical CPUs)"),
            ("torch", f"{torch.__version__} (float32, T threads, 1 inter-op thread; a "
                      "subprocess per round, as shipped and tuned)"),
            ("ONNX Runtime", ort_note),
            ("dagnet", "(not run: --torch-only)" if args.torch_only else args.dagnet),
            ("PyTorch tuned's environment", " ".join(f"{k}={v}" for k, v in TUNED_ENV.items())
             + " BLIS_NUM_THREADS=T"),
            ("threads", f"{args.threads} (batch-1 latencies of the default suite: 1); "
                        f"rounds: {args.rounds}"),
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
        description="Time dagnet, PyTorch (as shipped and tuned) and ONNX Runtime alternately "
                    "on the same models and print the ratios.",
        epilog="CONFIG is MODEL.json:MODE:BATCH[:THREADS] with MODE train or infer and THREADS "
               "by default --threads, e.g. examples/models/lenet5.json:train:100. Without "
               "CONFIG: the default suite (SimpleConvNet and LeNet-5 train 100, infer 100, "
               "infer 1 at 1 thread; AlexNet train 16, infer 16).")
    ap.add_argument("--dagnet", default=os.path.join(REPO, "build", "dagnet"),
                    help="the dagnet command (default: build/dagnet in the repository)")
    ap.add_argument("--ort", default=os.path.join(REPO, "build", "ort", "node_modules"),
                    metavar="DIR", help="the node_modules folder holding onnxruntime-node "
                    "(default: build/ort/node_modules, where scripts/test.sh installs it); '' "
                    "skips ONNX Runtime")
    ap.add_argument("--threads", type=int, default=2, help="threads for every side (default 2)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    ap.add_argument("--iters", type=int, help="timed steps per round and side (default: per config)")
    ap.add_argument("--warmup", type=int, help="warm-up steps per round and side (default: per config)")
    ap.add_argument("--markdown", metavar="FILE", help="also write the tables as Markdown to FILE")
    ap.add_argument("--torch-only", action="store_true", help="skip dagnet")
    ap.add_argument("--threads-scaling", action="store_true",
                    help="also time dagnet at 1 and at --threads threads (LeNet-5 and "
                         "SimpleConvNet, train 100)")
    ap.add_argument("--two-at-once", action="store_true",
                    help="also time two LeNet-5 trainings (batch 100) started together against "
                         "one alone, for dagnet and PyTorch tuned")
    ap.add_argument("--torch-worker", metavar="CONFIG", help=argparse.SUPPRESS)
    ap.add_argument("configs", nargs="*", metavar="CONFIG")
    args = ap.parse_args(argv)
    for name in ("threads", "rounds", "iters"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            ap.error(f"--{name} must be at least 1")
    if args.warmup is not None and args.warmup < 0:
        ap.error("--warmup must be at least 0")
    args.ort = args.ort or None
    if args.torch_worker:
        try:
            return args, [make_config(args.torch_worker, args)], [], []
        except ValueError as e:
            ap.error(str(e))
    if args.torch_only and args.threads_scaling:
        ap.error("--threads-scaling times dagnet; it cannot go with --torch-only")
    if args.threads_scaling and args.threads < 2:
        ap.error("--threads-scaling needs --threads 2 or more")
    if not args.torch_only and not (os.path.isfile(args.dagnet) and os.access(args.dagnet, os.X_OK)):
        ap.error(f"{args.dagnet} is not an executable file (see --dagnet)")
    suite = lambda entries: [make_config(f"{os.path.join(MODELS, m)}:{mode}:{b}:"
                                         f"{t or args.threads}", args)
                             for m, mode, b, t in entries]
    try:
        configs = [make_config(c, args) for c in args.configs] or suite(SUITE)
        scaled = suite(SCALING) if args.threads_scaling else []
        paired = suite([TWO_AT_ONCE]) if args.two_at_once else []
    except ValueError as e:
        ap.error(str(e))
    return args, configs, scaled, paired


def make_config(text, args):
    """A Config from MODEL:MODE:BATCH[:THREADS] (MODEL relative to here or to the
    repository)."""
    parts = text.rsplit(":", 3)
    if not (len(parts) == 4 and parts[1] in ("train", "infer")):
        parts = text.rsplit(":", 2) + [str(args.threads)]
    if len(parts) != 4 or parts[1] not in ("train", "infer") or \
            not all(p.isdigit() and int(p) >= 1 for p in parts[2:]):
        raise ValueError(f"config {text!r}: expected MODEL.json:train|infer:BATCH[:THREADS]")
    path, mode, batch, threads = parts[0], parts[1], int(parts[2]), int(parts[3])
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
    iters, warmup = next((v for k, v in SUITE.items() if k[:3] == (os.path.basename(path), mode,
                                                                   batch)), DEFAULT_ITERS)
    return Config(path, spec.name or os.path.splitext(os.path.basename(path))[0], mode, batch,
                  threads, args.iters or iters, warmup if args.warmup is None else args.warmup)


def measure(args, configs, scaled, paired):
    """Every table: [(title, head, rows, note)]."""
    ort_note = ort_missing(args)
    with tempfile.TemporaryDirectory(prefix="compare-onnx-") as work:
        rows = []
        for cfg in configs:
            onnx = export_onnx(cfg, work) if cfg.mode == "infer" and ort_note is None else None
            rows.append(comparison_row(cfg, *compare(cfg, args, onnx)))
            if onnx is not None:
                os.unlink(onnx[0])      # AlexNet's is 250 MB
    note = COMPARISON_NOTE + ("" if ort_note is None else f" ONNX Runtime not run: {ort_note}.")
    tables = [(f"dagnet vs PyTorch and ONNX Runtime, {args.threads} threads unless the config "
               "says otherwise", COMPARISON_HEAD, rows, note)]
    if scaled:
        tables.append((f"dagnet at 1 and {args.threads} threads", scaling_head(args.threads),
                       [scaling_row(cfg, *scaling(cfg, args)) for cfg in scaled],
                       f"speedup = 1-thread ms/step / {args.threads}-thread ms/step."))
    if paired:
        tables.append((f"two trainings at once, {args.threads} threads each", TWO_AT_ONCE_HEAD,
                       [r for cfg in paired
                        for r in two_at_once_rows(cfg, *two_at_once(cfg, args))],
                       TWO_AT_ONCE_NOTE))
    return tables


def main(argv):
    args, configs, scaled, paired = parse_args(argv)
    if args.torch_worker:
        return torch_worker(configs[0])
    arch = None if args.torch_only else blis_choice(args.dagnet)
    if arch:
        TUNED_ENV["BLIS_ARCH_TYPE"] = arch
    header = header_lines(args, ort_missing(args))
    print("\n".join(f"{k}: {v}" for k, v in header), flush=True)
    try:
        tables = measure(args, configs, scaled, paired)
    except (BenchError, parity.ModelError, RuntimeError, OSError) as e:
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
