#!/usr/bin/python3
"""Parity of dagnet with PyTorch: node outputs, loss and every param gradient.

usage: parity.py --dagnet PATH/TO/dagnet [--batch 2] [--seed 1] [--keep DIR] MODEL.json|DIR ...

For every model (a directory stands for the *.json files in it):

  1. random inputs are written as .npy: float32 images in U(0, 1), int32 labels in
     [0, classes) where classes is the last dim of the logits of the SoftmaxCrossEntropy
     node that reads them (shapes come from this script's own reading of the model);
  2. `dagnet grad MODEL --seed S --feed NAME=FILE ... --out G.safetensors --tensors` runs
     one forward/backward pass in training mode and writes "loss", "grad.<param>",
     "param.<param>" and "act.<node>";
  3. the same graph is built in PyTorch in float64 from the JSON (every op of docs/format.md),
     with the params dagnet used and, for Dropout, the mask dagnet drew (read back from
     its output and input: kept where the output is nonzero); each max-pool window's winner
     and each ReLU's side are taken from dagnet's own input to the node (DECIDED below), so
     that a near-tie decided the other way by float32 rounding does not reroute a gradient;
  4. every node output, the loss and every param gradient are compared:
         max|dagnet - torch| <= 1e-4 * max|torch| + 1e-7      per tensor
     and the param names and shapes must be those the model defines. Each node is also
     checked on its own (its op applied to dagnet's own inputs), so that a failure names
     the op at fault rather than everything downstream of it. The freshly initialised
     params are checked against their init spec (kind, scale; zeros exact).
  5. the params scaled by 0.9 are written with this script's safetensors writer, and
     `dagnet grad ... --weights W.safetensors` must use them bit for bit and agree again.

One line per model with the worst relative error and PASS/FAIL, details on failure.
Exit status: 0 all pass, 1 any failure, 2 usage error, 77 PyTorch is not installed
(CTest reports the test as skipped).
"""
import argparse
import json
import math
import os
import struct
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError:
    print("SKIPPED: PyTorch parity (python3-torch not installed for /usr/bin/python3)")
    sys.exit(77)

RTOL = 1e-4
ATOL = 1e-7
WEIGHT_SCALE = 0.9


class ModelError(Exception):
    """The model file cannot be read by this script (names the file and node)."""


class FileFormatError(Exception):
    """A safetensors file that breaks the format."""


# --------------------------------------------------------------------------- safetensors

ST_DTYPES = {"F32": "<f4", "F64": "<f8", "I32": "<i4", "I64": "<i8", "F16": "<f2",
             "I8": "i1", "U8": "u1", "I16": "<i2"}
ST_NAMES = {np.dtype("<f4"): "F32", np.dtype("<f8"): "F64", np.dtype("<i4"): "I32",
            np.dtype("<i8"): "I64"}


def read_safetensors(path):
    """{name: read-only numpy array} from a safetensors file, checked strictly: header JSON,
    dtypes, sizes, offsets inside the file, and the data block covered without holes or
    overlaps."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise FileFormatError(f"{path}: {len(blob)} bytes, too short for a header length")
    (hlen,) = struct.unpack("<Q", blob[:8])
    if hlen > len(blob) - 8:
        raise FileFormatError(f"{path}: header length {hlen} runs past the end ({len(blob)} bytes)")
    try:
        header = json.loads(blob[8:8 + hlen].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise FileFormatError(f"{path}: header is not JSON: {e}")
    if not isinstance(header, dict):
        raise FileFormatError(f"{path}: header is not a JSON object")
    base = 8 + hlen
    size = len(blob) - base
    out, spans = {}, []
    for name, ent in header.items():
        if name == "__metadata__":
            continue
        try:
            dt, shape, (b, e) = ent["dtype"], ent["shape"], ent["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise FileFormatError(f"{path}: entry \"{name}\" lacks dtype/shape/data_offsets: {ent}")
        if dt not in ST_DTYPES:
            raise FileFormatError(f"{path}: entry \"{name}\" has unknown dtype {dt!r}")
        if not isinstance(shape, list) or any(not isinstance(d, int) or d < 0 for d in shape):
            raise FileFormatError(f"{path}: entry \"{name}\" has a bad shape {shape!r}")
        npdt = np.dtype(ST_DTYPES[dt])
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if not (0 <= b <= e <= size):
            raise FileFormatError(f"{path}: entry \"{name}\" offsets [{b}, {e}] outside the "
                                  f"{size}-byte data block")
        if e - b != count * npdt.itemsize:
            raise FileFormatError(f"{path}: entry \"{name}\" {dt} {shape} needs "
                                  f"{count * npdt.itemsize} bytes, offsets give {e - b}")
        out[name] = np.frombuffer(blob, dtype=npdt, count=count, offset=base + b).reshape(shape)
        spans.append((b, e, name))
    spans.sort()
    pos = 0
    for b, e, name in spans:
        if b != pos:
            raise FileFormatError(f"{path}: data of \"{name}\" starts at {b}, expected {pos} "
                                  "(hole or overlap in the data block)")
        pos = e
    if pos != size:
        raise FileFormatError(f"{path}: {size - pos} bytes after the last tensor")
    return out


def write_safetensors(path, tensors):
    """Write {name: numpy array} (F32/F64/I32/I64, little-endian, C order); the header is
    padded with spaces to a multiple of 8 bytes, the data laid out in name order."""
    header, arrays, offset = {}, [], 0
    for name in sorted(tensors):
        a = np.asarray(tensors[name])
        # np.ascontiguousarray would turn a scalar into shape [1]; np.array keeps shape [].
        a = np.array(a, dtype=a.dtype.newbyteorder("<"), order="C")
        if a.dtype not in ST_NAMES:
            raise ValueError(f"write_safetensors: unsupported dtype {a.dtype} for \"{name}\"")
        header[name] = {"dtype": ST_NAMES[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
        arrays.append(a)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for a in arrays:
            f.write(a.tobytes())


# --------------------------------------------------------------------------- the model

# The ops whose output has their input's shape (the ops this script knows are TORCH_OPS).
UNARY = {"ReLU", "Sigmoid", "Tanh", "Dropout", "LRN", "Softmax", "LeakyReLU"}


def pair(v, what):
    if isinstance(v, bool):
        raise ModelError(f"{what}: expected an int or [h, w], found {v!r}")
    if isinstance(v, int):
        return (v, v)
    if isinstance(v, float) and v == int(v):
        return (int(v), int(v))
    if isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v):
        return (int(v[0]), int(v[1]))
    raise ModelError(f"{what}: expected an int or [h, w], found {v!r}")


def window_out(size, k, s, p, ceil=False, dilation=1):
    """PyTorch's pooling_output_shape (and conv's, ceil false): floor or ceil, and with ceil a
    last window starting at or past size + pad dropped."""
    k = dilation * (k - 1) + 1
    if size + 2 * p < k:
        return -1
    out = (size + 2 * p - k + (s - 1 if ceil else 0)) // s + 1
    if ceil and (out - 1) * s >= size + p:
        out -= 1
    return out


class Node:
    def __init__(self, j, index):
        self.name = j["name"]
        self.op = j["op"]
        self.inputs = list(j.get("inputs", []))
        self.attrs = dict(j.get("attrs") or {})
        self.index = index

    def where(self, field=None):
        return f"node \"{self.name}\" (/nodes/{self.index}{'/' + field if field else ''})"


class Model:
    """A dagnet/1 model as this script reads it: sorted nodes, implicit params created and
    every shape inferred for one batch size (independently of dagnet)."""

    def __init__(self, path, batch):
        self.path = path
        self.file = os.path.basename(path)
        with open(path, encoding="utf-8") as f:
            try:
                j = json.load(f)
            except ValueError as e:
                raise ModelError(f"{self.file}: invalid JSON: {e}")
        if j.get("format") != "dagnet/1":
            raise ModelError(f"{self.file}: (/format): expected \"dagnet/1\", found {j.get('format')!r}")
        self.name = j.get("name", "")
        self.batch = batch
        self.inputs = {}       # name -> (shape with batch filled in, dtype, batched)
        for name, spec in j["inputs"].items():
            shape = spec["shape"]
            batched = len(shape) > 0 and shape[0] is None
            dims = [batch if (i == 0 and d is None) else d for i, d in enumerate(shape)]
            self.inputs[name] = (tuple(dims), spec.get("dtype", "float32"), batched)
        self.params = {}       # name -> {"shape": tuple or None, "init": spec or None}
        self.param_order = []
        for name, spec in (j.get("params") or {}).items():
            shape = spec.get("shape")
            self.params[name] = {"shape": tuple(shape) if shape is not None else None,
                                 "init": spec.get("init")}
            self.param_order.append(name)
        self.state = {}        # name -> {"shape", "init"}: the "state" section and implicit state
        self.state_order = []
        for name, spec in (j.get("state") or {}).items():
            shape = spec.get("shape")
            if name in self.params:
                raise ModelError(f"{self.file}: state \"{name}\" is also a param")
            self.state[name] = {"shape": tuple(shape) if shape is not None else None,
                                "init": spec.get("init")}
            self.state_order.append(name)
        self.nodes = [Node(n, i) for i, n in enumerate(j["nodes"])]
        self.by_name = {n.name: n for n in self.nodes}
        self.outputs = list(j.get("outputs") or [])
        self.loss = j.get("loss")
        for n in self.nodes:
            if n.op not in TORCH_OPS:
                raise ModelError(f"{self.file}: {n.where('op')}: op {n.op!r} is not known to parity.py")
        self.order = self._sort()
        self.shapes = {}
        self.node_params = {}   # node -> [param names it reads]
        for name, (shape, _, _) in self.inputs.items():
            self.shapes[name] = shape
        for name, p in list(self.params.items()) + list(self.state.items()):
            if p["shape"] is not None:
                self.shapes[name] = p["shape"]
        for n in self.order:
            self._build(n)
        for name, p in self.params.items():
            if p["shape"] is None:
                raise ModelError(f"{self.file}: param \"{name}\": no shape and no node creates it")
        self.needed = self._ancestors(self.outputs + ([self.loss] if self.loss else []))

    def _sort(self):
        producer = {n.name: n for n in self.nodes}
        pending = {n.name: sum(1 for i in n.inputs if i in producer) for n in self.nodes}
        users = {n.name: [] for n in self.nodes}
        for n in self.nodes:
            for i in n.inputs:
                if i in producer:
                    users[i].append(n)
        ready = sorted((n.index for n in self.nodes if pending[n.name] == 0))
        order = []
        while ready:
            n = self.nodes[ready.pop(0)]
            order.append(n)
            for u in users[n.name]:
                pending[u.name] -= 1
                if pending[u.name] == 0:
                    ready.append(u.index)
                    ready.sort()
        if len(order) != len(self.nodes):
            left = [n.name for n in self.nodes if pending[n.name] > 0]
            raise ModelError(f"{self.file}: cycle among nodes {left}")
        return order

    def _ancestors(self, names):
        seen, stack = set(), list(names)
        while stack:
            v = stack.pop()
            if v in seen or v not in self.by_name:
                continue
            seen.add(v)
            stack.extend(self.by_name[v].inputs)
        return seen

    def _implicit(self, n):
        x = self.shapes[n.inputs[0]]
        a = n.attrs
        if n.op == "Conv":
            if "filters" not in a or "kernel" not in a:
                raise ModelError(f"{self.file}: {n.where('inputs')}: Conv with one input needs "
                                 "filters and kernel")
            kh, kw = pair(a["kernel"], n.where("attrs/kernel"))
            groups = int(a.get("groups", 1))
            wshape = (int(a["filters"]), (x[1] if len(x) == 4 else 1) // groups, kh, kw)
            bshape = (int(a["filters"]),)
        elif n.op == "BatchNorm":
            c = (x[1] if len(x) > 1 else 1,)
            self._create(n, [("weight", c, "ones"), ("bias", c, "zeros")], self.params, self.param_order)
            self._create(n, [("running_mean", c, "zeros"), ("running_var", c, "ones")], self.state,
                         self.state_order)
            return
        elif n.op == "Affine":
            if "units" not in a:
                raise ModelError(f"{self.file}: {n.where('inputs')}: Affine with one input needs units")
            fan = int(np.prod(x[1:], dtype=np.int64)) if len(x) > 1 else 1
            wshape = (fan, int(a["units"]))
            bshape = (int(a["units"]),)
        else:
            raise ModelError(f"{self.file}: {n.where('inputs')}: {n.op} takes more inputs")
        specs = [("weight", wshape, a.get("init"))]
        if a.get("bias", True):
            specs.append(("bias", bshape, a.get("bias_init")))
        self._create(n, specs, self.params, self.param_order)

    def _create(self, n, specs, table, order):
        """Implicit params (or state, table self.state) of node n: (suffix, shape, init)."""
        for suffix, shape, init in specs:
            pname = f"{n.name}.{suffix}"
            if pname in table:
                p = table[pname]
                if p["shape"] is not None and p["shape"] != shape:
                    raise ModelError(f"{self.file}: {n.where('attrs')}: implicit param {pname} "
                                     f"{shape} but /params declares {p['shape']}")
                p["shape"] = shape
                if p["init"] is None:
                    p["init"] = init
            elif pname in self.shapes or pname in self.by_name:
                raise ModelError(f"{self.file}: {n.where('name')}: implicit param {pname} clashes")
            else:
                table[pname] = {"shape": shape, "init": init}
                order.append(pname)
            self.shapes[pname] = shape
            n.inputs.append(pname)

    def _build(self, n):
        for i, name in enumerate(n.inputs):
            if name not in self.shapes and name not in self.by_name and name not in self.params:
                raise ModelError(f"{self.file}: {n.where(f'inputs/{i}')}: input \"{name}\" is not defined")
        if n.op in ("Conv", "Affine", "BatchNorm") and len(n.inputs) == 1:
            self._implicit(n)
        for i, name in enumerate(n.inputs):
            if name not in self.shapes:
                raise ModelError(f"{self.file}: {n.where(f'inputs/{i}')}: \"{name}\" has no shape yet")
        s = [self.shapes[i] for i in n.inputs]
        a = n.attrs
        op = n.op
        if op == "Conv":
            x, w = s[0], s[1]
            sh, sw = pair(a.get("stride", 1), n.where("attrs/stride"))
            ph, pw = pair(a.get("pad", 0), n.where("attrs/pad"))
            dh, dw = pair(a.get("dilation", 1), n.where("attrs/dilation"))
            groups = int(a.get("groups", 1))
            if len(x) != 4 or len(w) != 4 or x[1] % groups or w[0] % groups or w[1] * groups != x[1]:
                raise ModelError(f"{self.file}: {n.where()}: Conv of {x} with weight {w}, groups {groups}")
            oh, ow = window_out(x[2], w[2], sh, ph, dilation=dh), window_out(x[3], w[3], sw, pw, dilation=dw)
            out = (x[0], w[0], oh, ow)
        elif op in ("MaxPool", "AvgPool"):
            x = s[0]
            kh, kw = pair(a["kernel"], n.where("attrs/kernel"))
            sh, sw = pair(a.get("stride", a["kernel"]), n.where("attrs/stride"))
            ph, pw = pair(a.get("pad", 0), n.where("attrs/pad"))
            ceil = bool(a.get("ceil", False))
            out = (x[0], x[1], window_out(x[2], kh, sh, ph, ceil), window_out(x[3], kw, sw, pw, ceil))
        elif op == "GlobalAvgPool":
            x = s[0]
            if len(x) != 4:
                raise ModelError(f"{self.file}: {n.where()}: GlobalAvgPool of {x}")
            out = (x[0], x[1], 1, 1)
        elif op in UNARY:
            out = s[0]
        elif op == "BatchNorm":
            if len(s) != 5 or len(s[0]) < 2 or any(t != (s[0][1],) for t in s[1:]):
                raise ModelError(f"{self.file}: {n.where()}: BatchNorm of {s}")
            for i in (3, 4):
                if n.inputs[i] not in self.state:
                    raise ModelError(f"{self.file}: {n.where(f'inputs/{i}')}: \"{n.inputs[i]}\" "
                                     "is not state")
            out = s[0]
        elif op == "Affine":
            x, w = s[0], s[1]
            fan = int(np.prod(x[1:], dtype=np.int64)) if len(x) > 1 else 1
            if w[0] != fan:
                raise ModelError(f"{self.file}: {n.where()}: Affine expects {w[0]} input features, "
                                 f"got {fan} from \"{n.inputs[0]}\" {x}")
            out = (x[0], w[1])
        elif op == "SoftmaxCrossEntropy":
            out = ()
        elif op == "Flatten":
            x = s[0]
            out = (x[0], int(np.prod(x[1:], dtype=np.int64)))
        elif op == "Add":
            if s[0] != s[1]:
                raise ModelError(f"{self.file}: {n.where()}: Add of {s[0]} and {s[1]}")
            out = s[0]
        elif op == "Concat":
            axis = int(a.get("axis", 1))
            axis = axis % len(s[0])
            out = list(s[0])
            out[axis] = sum(t[axis] for t in s)
            out = tuple(out)
        else:
            raise AssertionError(f"parity.py has no output shape for {op}")
        if any(d <= 0 for d in out):
            raise ModelError(f"{self.file}: {n.where()}: output shape {out} is empty")
        self.shapes[n.name] = tuple(out)

    def consumers(self, name):
        return [n for n in self.order if name in n.inputs]

    def init_spec(self, pname):
        table = self.state if pname in self.state else self.params
        spec = table[pname]["init"]
        rank = len(table[pname]["shape"])
        if spec is None:
            return {"type": "he_normal" if rank >= 2 else "zeros"}
        if isinstance(spec, str):
            return {"type": spec}
        return dict(spec)


# --------------------------------------------------------------------------- PyTorch

# Each op on float64 tensors xs (labels as int64), as docs/format.md and docs/ops.md define
# it: node n gives the attrs, masks the Dropout masks dagnet drew.

def torch_conv(n, xs, masks):
    a = n.attrs
    return F.conv2d(xs[0], xs[1], xs[2] if len(xs) > 2 else None,
                    stride=pair(a.get("stride", 1), ""), padding=pair(a.get("pad", 0), ""),
                    dilation=pair(a.get("dilation", 1), ""), groups=int(a.get("groups", 1)))


# The discrete choices dagnet made: DECIDED[node] is dagnet's own float32 input to a MaxPool,
# ReLU or LeakyReLU node (set by compare_run). The float64 graph takes each max-pool window's
# winner and each ReLU's side from it, and the values from its own float64 input. Why: where
# two entries of a window differ by less than float32 rounding (AlexNet's overlapping pools
# after 1,728-term sums have such near-ties), float64 and float32 may pick different winners
# and route the gradient to different pixels, whichever kernels computed the sums: the
# parity of alexnet_2tower.json failed for seeds 2 and 3 with BLIS's zen3 kernels and seed 0
# with skx on exactly this. A wrong winner in dagnet's forward still fails the node-alone
# check (the max of dagnet's input), and a backward routing the gradient elsewhere than its
# own forward's winner still fails the gradients.
DECIDED = {}


def torch_maxpool(n, xs, masks):
    a = n.attrs
    k, s = pair(a["kernel"], ""), pair(a.get("stride", a["kernel"]), "")
    p, ceil = pair(a.get("pad", 0), ""), bool(a.get("ceil", False))
    decided = DECIDED.get(n.name)
    if decided is None:
        return F.max_pool2d(xs[0], k, s, p, ceil_mode=ceil)
    _, idx = F.max_pool2d(to_torch(decided), k, s, p, ceil_mode=ceil, return_indices=True)
    x = xs[0].flatten(2)
    return x.gather(2, idx.flatten(2)).view_as(idx)


def torch_relu(n, xs, masks, alpha=0.0):
    decided = DECIDED.get(n.name)
    positive = xs[0] > 0 if decided is None else to_torch(decided) > 0
    return torch.where(positive, xs[0], alpha * xs[0])


def torch_avgpool(n, xs, masks):
    a = n.attrs
    return F.avg_pool2d(xs[0], pair(a["kernel"], ""), pair(a.get("stride", a["kernel"]), ""),
                        pair(a.get("pad", 0), ""), ceil_mode=bool(a.get("ceil", False)),
                        count_include_pad=bool(a.get("count_include_pad", True)))


def torch_affine(n, xs, masks):
    x = xs[0].reshape(xs[0].shape[0], -1)
    y = x @ xs[1]
    return y + xs[2] if len(xs) > 2 else y


def torch_softmax_cross_entropy(n, xs, masks):
    logits, labels = xs
    if labels.dtype in (torch.int32, torch.int64):
        return F.cross_entropy(logits, labels.long(), reduction="mean")
    return -(labels * F.log_softmax(logits, dim=1)).sum() / logits.shape[0]


def torch_lrn(n, xs, masks):
    a = n.attrs
    return F.local_response_norm(xs[0], int(a.get("size", 5)), alpha=float(a.get("alpha", 1e-4)),
                                 beta=float(a.get("beta", 0.75)), k=float(a.get("k", 1.0)))


# BatchNorm's mode and the running statistics its training forward leaves: masks[TRAINING]
# is False for an inference run (running statistics used, not updated); UPDATED_STATE[name]
# holds a training forward's new running mean or var, for comparison with dagnet's
# "state.<name>" entries.
TRAINING = "<training>"
UPDATED_STATE = {}


def torch_batchnorm(n, xs, masks):
    a = n.attrs
    x, gamma, beta, mean, var = xs
    training = masks.get(TRAINING, True) if masks is not None else True
    rm, rv = mean.detach().clone(), var.detach().clone()
    y = F.batch_norm(x, rm, rv, gamma, beta, training=training,
                     momentum=float(a.get("momentum", 0.1)), eps=float(a.get("epsilon", 1e-5)))
    if training:
        UPDATED_STATE[n.inputs[3]], UPDATED_STATE[n.inputs[4]] = rm, rv
    return y


# Every op this script implements, by its "op" string: its one list (Model refuses any other
# op, apply_op dispatches through it). tests/test_registry.c fails, naming the op, for an op
# of dagnet's registry (ops/registry.c) that has no entry here.
TORCH_OPS = {
    "Conv": torch_conv,
    "MaxPool": torch_maxpool,
    "AvgPool": torch_avgpool,
    "ReLU": torch_relu,
    "Sigmoid": lambda n, xs, masks: torch.sigmoid(xs[0]),
    "Tanh": lambda n, xs, masks: torch.tanh(xs[0]),
    "Affine": torch_affine,
    "Softmax": lambda n, xs, masks: F.softmax(xs[0], dim=int(n.attrs.get("axis", 1))),
    "SoftmaxCrossEntropy": torch_softmax_cross_entropy,
    "Dropout": lambda n, xs, masks: xs[0] * masks[n.name],
    "LRN": torch_lrn,
    "Flatten": lambda n, xs, masks: xs[0].reshape(xs[0].shape[0], -1),
    "Add": lambda n, xs, masks: xs[0] + xs[1],
    "Concat": lambda n, xs, masks: torch.cat(xs, dim=int(n.attrs.get("axis", 1))),
    "GlobalAvgPool": lambda n, xs, masks: F.adaptive_avg_pool2d(xs[0], 1),
    "LeakyReLU": lambda n, xs, masks: torch_relu(n, xs, masks, float(n.attrs.get("alpha", 0.01))),
    "BatchNorm": torch_batchnorm,
}
assert UNARY <= TORCH_OPS.keys()


def apply_op(n, xs, masks):
    """Node n of the model applied to float64 tensors xs (labels as int64)."""
    return TORCH_OPS[n.op](n, xs, masks)


def to_torch(arr):
    if arr.dtype.kind in "iu":
        return torch.from_numpy(np.array(arr, dtype=np.int64))
    return torch.from_numpy(np.array(arr, dtype=np.float64))


# --------------------------------------------------------------------------- checks

class Report:
    """Collects per-tensor comparisons and problems for one run."""

    def __init__(self, label):
        self.label = label
        self.worst = (0.0, None)
        self.failures = []     # lines
        self.notes = []
        self.diagnosis = None  # which op is at fault, when the comparisons can tell

    def compare(self, what, got, ref, extra=""):
        got = np.asarray(got, dtype=np.float64)
        ref = np.asarray(ref, dtype=np.float64)
        if got.shape != ref.shape:
            self.failures.append(f"{what}{extra}: shape {list(got.shape)} from dagnet, "
                                 f"{list(ref.shape)} expected")
            return False
        if got.size == 0:
            return True
        if not np.all(np.isfinite(got)):
            bad = int(np.sum(~np.isfinite(got)))
            self.failures.append(f"{what}{extra}: {bad} non-finite values from dagnet")
            return False
        diff = np.abs(got - ref)
        err = float(diff.max())
        scale = float(np.abs(ref).max())
        rel = err / scale if scale > 0 else err
        if rel > self.worst[0] or self.worst[1] is None:
            self.worst = (rel, what)
        if err > RTOL * scale + ATOL:
            i = np.unravel_index(int(diff.argmax()), diff.shape)
            self.failures.append(
                f"{what}{extra}: max|dagnet-torch| {err:.3g} > {RTOL:g}*max|torch| ({scale:.3g}) "
                f"+ {ATOL:g}; rel {rel:.3g}; worst at {list(map(int, i))}: dagnet {got[i]:.9g}, "
                f"torch {ref[i]:.9g}; {int(np.sum(diff > RTOL * scale + ATOL))} of {diff.size} "
                "elements off")
            return False
        return True

    def fail(self, line):
        self.failures.append(line)


def dropout_masks(model, values, rep):
    """For every Dropout node: the mask dagnet drew, recovered from its output and input:
    1/(1-ratio) where the output is nonzero, 0 elsewhere (also where the input was 0, which
    leaves y unchanged; the gradient there is blocked upstream by the ReLU/MaxPool that made
    the zero). Also checks the kept values are x/(1-ratio) exactly enough and that the kept
    fraction fits the ratio."""
    masks = {}
    for n in model.order:
        if n.op != "Dropout" or n.name not in values:
            continue
        ratio = float(n.attrs.get("ratio", 0.5))
        scale = 1.0 / (1.0 - ratio)
        x = np.asarray(values[n.inputs[0]], dtype=np.float64)
        y = np.asarray(values[n.name], dtype=np.float64)
        if x.shape != y.shape:
            rep.fail(f"act.{n.name} (Dropout): shape {list(y.shape)}, input {list(x.shape)}")
            continue
        kept = y != 0
        if np.any(kept & (x == 0)):
            rep.fail(f"act.{n.name} (Dropout): nonzero output where the input is 0")
        live = x != 0
        if np.any(kept):
            off = np.abs(y[kept] - x[kept] * scale).max() / max(np.abs(x[kept] * scale).max(), 1e-30)
            if off > 1e-6:
                rep.fail(f"act.{n.name} (Dropout): kept values are not input/(1-ratio) "
                         f"(relative deviation {off:.3g}; expected scale {scale:g})")
        m = int(live.sum())
        if m >= 100:
            frac = float((kept & live).sum()) / m
            sigma = math.sqrt(ratio * (1 - ratio) / m)
            if abs(frac - (1 - ratio)) > 6 * sigma + 1e-9:
                rep.fail(f"act.{n.name} (Dropout): kept {frac:.4f} of {m} nonzero inputs, expected "
                         f"{1 - ratio:.4f} +- {6 * sigma:.4f} for ratio {ratio:g} in training mode")
            rep.notes.append(f"{n.name}: kept {frac:.3f} of {m} (ratio {ratio:g})")
        masks[n.name] = torch.from_numpy(np.where(kept, scale, 0.0))
    return masks


def fans(shape):
    """dagnet's fan_in and fan_out of a param (src/runtime/init.c): Affine's [in, out] as is,
    a Conv weight [F, C, kh, kw] as C·kh·kw and F·kh·kw, a 1-D param its length both ways."""
    rank = len(shape)
    if rank == 2:
        return shape[0], shape[1]
    if rank >= 3:
        rf = int(np.prod(shape[2:]))
        return shape[1] * rf, shape[0] * rf
    return (shape[0], shape[0]) if rank == 1 else (1, 1)


def check_init(model, params, rep):
    """The freshly initialised params against their init spec: exact for zeros/ones/constant,
    mean and spread for the random ones (loose bounds: a wrong fan or kind is far off)."""
    for pname in model.param_order:
        if pname not in params:
            continue
        shape = model.params[pname]["shape"]
        w = np.asarray(params[pname], dtype=np.float64)
        spec = model.init_spec(pname)
        kind = spec.get("type")
        fan_in, fan_out = fans(shape)
        what = f"param.{pname} (init {kind})"
        if kind in ("zeros", "ones", "constant"):
            v = {"zeros": 0.0, "ones": 1.0}.get(kind, float(np.float32(spec.get("value", 0.0))))
            if not np.all(w == v):
                rep.fail(f"{what}: expected every value {v:g}, found range [{w.min():g}, {w.max():g}]")
            continue
        if kind in ("normal", "he_normal", "xavier_normal"):
            std = {"normal": spec.get("std", 0.0), "he_normal": math.sqrt(2.0 / fan_in),
                   "xavier_normal": math.sqrt(2.0 / (fan_in + fan_out))}[kind]
            lo, hi, mean = None, None, 0.0
        elif kind in ("uniform", "he_uniform", "xavier_uniform"):
            if kind == "uniform":
                lo, hi = float(spec["low"]), float(spec["high"])
            else:
                b = math.sqrt(6.0 / fan_in) if kind == "he_uniform" else math.sqrt(6.0 / (fan_in + fan_out))
                lo, hi = -b, b
            std, mean = (hi - lo) / math.sqrt(12.0), (lo + hi) / 2
        else:
            rep.notes.append(f"{what}: not checked")
            continue
        if lo is not None and (w.min() < lo - 1e-6 * max(1.0, abs(lo)) or w.max() > hi + 1e-6 * max(1.0, abs(hi))):
            rep.fail(f"{what}: values [{w.min():g}, {w.max():g}] leave [{lo:g}, {hi:g}]")
        n = w.size
        if n < 100 or std == 0:
            continue
        s = float(w.std())
        mu = float(w.mean())
        # Bounds of about 6 standard errors (the sample std of n normal draws has a relative
        # standard error of 1/sqrt(2n)), plus 2%: a wrong fan or kind is far outside.
        if abs(s - std) > (6 / math.sqrt(2 * n) + 0.02) * std or \
                abs(mu - mean) > 6 * std / math.sqrt(n) + 1e-12:
            rep.fail(f"{what}: mean {mu:.4g}, std {s:.4g} over {n} values; expected mean {mean:g}, "
                     f"std {std:.4g} (fan_in {fan_in}, fan_out {fan_out})")
            continue
        if n >= 2000:
            # normal and uniform of the same std differ in shape: excess kurtosis 0 vs -1.2
            # (the sample value's standard error is below sqrt(24/n) = 0.11 here).
            z = (w - mu) / s
            kurt = float(np.mean(z ** 4)) - 3.0
            expected = 0.0 if lo is None else -1.2
            if abs(kurt - expected) > 0.6:
                rep.fail(f"{what}: excess kurtosis {kurt:.2f} over {n} values, expected {expected:g} "
                         f"({'normal' if lo is None else 'uniform'} draws)")


def run_dagnet(cmd, log):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log.append("$ " + " ".join(cmd))
    if p.stdout.strip():
        log.append(p.stdout.strip())
    if p.stderr.strip():
        log.append(p.stderr.strip())
    return p.returncode


def compare_run(model, feeds, st, rep, first_run, expect_params=None, state_before=None):
    """Compare one dagnet grad file with PyTorch. Returns (the dagnet params as float32,
    whether the file's names and shapes were complete enough to compare values)."""
    nodes = {n.name: n for n in model.order}
    acts = {k[4:]: v for k, v in st.items() if k.startswith("act.")}
    params = {k[6:]: v for k, v in st.items() if k.startswith("param.")}
    grads = {k[5:]: v for k, v in st.items() if k.startswith("grad.")}
    states = {k[6:]: v for k, v in st.items() if k.startswith("state.")}
    others = [k for k in st if not k.startswith(("act.", "param.", "grad.", "state."))
              and k != "loss"]
    if others:
        rep.fail(f"unexpected entries in the grad file: {others}")

    # --- names and shapes
    want = set(model.params)
    for label, got in (("grad.", grads), ("param.", params)):
        if set(got) != want:
            miss, extra = sorted(want - set(got)), sorted(set(got) - want)
            rep.fail(f"{label}* names differ from the model's params: missing {miss}, unexpected {extra}")
    if set(states) != set(model.state):
        rep.fail(f"state.* names differ from the model's state: missing "
                 f"{sorted(set(model.state) - set(states))}, unexpected "
                 f"{sorted(set(states) - set(model.state))}")
    for pname in sorted(want & set(params)):
        shape = model.params[pname]["shape"]
        if tuple(params[pname].shape) != shape:
            rep.fail(f"param.{pname}: shape {list(params[pname].shape)}, the model gives {list(shape)}")
        if pname in grads and tuple(grads[pname].shape) != shape:
            rep.fail(f"grad.{pname}: shape {list(grads[pname].shape)}, the model gives {list(shape)}")
    extra_acts = sorted(set(acts) - set(nodes))
    if extra_acts:
        rep.fail(f"act.* entries that are not nodes: {extra_acts}")
    missing = sorted((model.needed - set(acts)), key=lambda v: nodes[v].index if v in nodes else 0)
    if missing:
        rep.fail(f"act.* missing for computed nodes: {missing}")
    if "loss" not in st:
        rep.fail("no \"loss\" entry")
    elif st["loss"].shape != ():
        rep.fail(f"\"loss\" has shape {list(st['loss'].shape)}, expected [] (a scalar)")
    for key, arr in st.items():
        if arr.dtype != np.dtype("<f4"):
            rep.fail(f"{key}: dtype {arr.dtype}, expected F32")
    if rep.failures:
        return params, False
    if model.loss in acts and not np.array_equal(acts[model.loss].reshape(()), st["loss"]):
        rep.fail(f"\"loss\" {float(st['loss'])!r} differs from act.{model.loss} {acts[model.loss]}")

    if expect_params is not None:
        for pname, w in expect_params.items():
            if not np.array_equal(params[pname], w):
                d = np.abs(params[pname].astype(np.float64) - w).max()
                rep.fail(f"param.{pname}: not the values of --weights (max difference {d:.3g})")
    if first_run:
        check_init(model, params, rep)

    # --- values dagnet saw (inputs, params, node outputs), for masks and local checks
    dvals = dict(feeds)
    dvals.update(params)
    dvals.update(state_before or {})
    dvals.update(acts)
    masks = dropout_masks(model, dvals, rep)

    # --- each node alone: its op on dagnet's own inputs
    with torch.no_grad():
        local_bad = []
        for n in model.order:
            if n.name not in acts or any(i not in dvals for i in n.inputs):
                continue
            y = apply_op(n, [to_torch(dvals[i]) for i in n.inputs], masks)
            if not rep.compare(f"act.{n.name}", acts[n.name], y.numpy(), f" [{n.op}, alone]"):
                local_bad.append(n)

    # --- the whole graph in float64 with autograd, max-pool winners and ReLU sides as dagnet
    # decided them (DECIDED)
    DECIDED.clear()
    DECIDED.update({n.name: dvals[n.inputs[0]] for n in model.order
                    if n.op in ("MaxPool", "ReLU", "LeakyReLU") and n.inputs[0] in dvals})
    tparams = {p: to_torch(params[p]).requires_grad_(True) for p in params}
    tvals = {k: to_torch(v) for k, v in feeds.items()}
    tvals.update(tparams)
    tvals.update({k: to_torch(v) for k, v in (state_before or {}).items()})
    UPDATED_STATE.clear()
    for n in model.order:
        if n.name not in model.needed:
            continue
        tvals[n.name] = apply_op(n, [tvals[i] for i in n.inputs], masks)
    DECIDED.clear()
    loss = tvals[model.loss]
    loss.backward()
    for n in model.order:
        if n.name in acts and n.name in tvals:
            rep.compare(f"act.{n.name}", acts[n.name], tvals[n.name].detach().numpy(), f" [{n.op}]")
    rep.compare("loss", st["loss"], loss.detach().numpy())
    # The running statistics after dagnet's one training forward, against PyTorch's update
    # (momentum, unbiased batch variance) from the same starting values.
    for sname in model.state_order:
        if sname in states and sname in UPDATED_STATE:
            rep.compare(f"state.{sname}", states[sname], UPDATED_STATE[sname].numpy(),
                        " [running statistics after the training forward]")
    for pname in model.param_order:
        if pname not in grads:
            continue
        g = tparams[pname].grad
        ref = g.numpy() if g is not None else np.zeros(grads[pname].shape)
        users = ", ".join(f"{u.name} ({u.op})" for u in model.consumers(pname))
        rep.compare(f"grad.{pname}", grads[pname], ref, f" [read by {users}]")
    if local_bad:
        n = local_bad[0]
        rep.diagnosis = (f"forward: node \"{n.name}\" ({n.op}) is the first whose output disagrees "
                         "with PyTorch given dagnet's own inputs to it")
    elif rep.failures:
        # Forward agrees node by node: the failing gradient nearest the loss points at the
        # backward pass at fault (that node's op, or one between it and the loss).
        order = {n.name: i for i, n in enumerate(model.order)}
        bad = [p for p in model.param_order
               if any(f.startswith(f"grad.{p} ") for f in rep.failures)]
        if bad:
            last = max(bad, key=lambda p: max(order[u.name] for u in model.consumers(p)))
            u = max(model.consumers(last), key=lambda u: order[u.name])
            rep.diagnosis = (f"backward: forward agrees everywhere; the failing gradient nearest the "
                             f"loss is grad.{last}, read by \"{u.name}\" ({u.op}): suspect the backward "
                             f"of {u.op} (or of an op between \"{u.name}\" and the loss)")
    return params, True


def make_feeds(model, rng):
    """Random inputs: float32 U(0,1) images; int32 labels in [0, classes); float one-hot
    targets for a float input read as labels by SoftmaxCrossEntropy."""
    feeds = {}
    for name, (shape, dtype, _) in model.inputs.items():
        label_of = [n for n in model.order if n.op == "SoftmaxCrossEntropy" and len(n.inputs) > 1
                    and n.inputs[1] == name]
        classes = min((model.shapes[n.inputs[0]][-1] for n in label_of), default=None)
        if dtype == "int32":
            if classes is None:
                classes = 2
            feeds[name] = rng.integers(0, classes, size=shape).astype("<i4")
        elif label_of and len(shape) == 2:
            t = np.zeros(shape, dtype="<f4")
            t[np.arange(shape[0]), rng.integers(0, shape[1], size=shape[0])] = 1
            feeds[name] = t
        else:
            feeds[name] = rng.random(size=shape, dtype=np.float64).astype("<f4")
    return feeds


def check_infer(model, args, path, feeds, feed_args, stem, details):
    """`dagnet infer` with the run-2 weights: the first output against PyTorch in inference
    mode (Dropout is the identity). Returns (ok, summary text)."""
    wfile, out = f"{stem}.weights.safetensors", f"{stem}.infer.npy"
    log = []
    rc = run_dagnet([args.dagnet, "infer", path, "--weights", wfile, "--out", out] + feed_args, log)
    if rc != 0:
        details += ["  [infer] dagnet infer failed:"] + ["    " + l for l in "\n".join(log).splitlines()]
        return False, "infer: failed"
    got = np.load(out)
    params = read_safetensors(wfile)
    masks = {n.name: torch.tensor(1.0, dtype=torch.float64) for n in model.order if n.op == "Dropout"}
    masks[TRAINING] = False  # BatchNorm normalises with the running statistics of the file
    vals = {k: to_torch(v) for k, v in feeds.items()}
    vals.update({k: to_torch(v) for k, v in params.items()})
    target = model.outputs[0]
    with torch.no_grad():
        for n in model.order:
            if n.name in model.needed:
                vals[n.name] = apply_op(n, [vals[i] for i in n.inputs], masks)
    rep = Report("infer")
    rep.compare(f"infer {target}", got, vals[target].numpy())
    if not args.keep:
        os.remove(out)
    if rep.failures:
        details += ["  [infer] " + f for f in rep.failures]
        return False, "infer: FAILED"
    return True, f"infer {target}: worst rel. error {rep.worst[0]:.2e}"


def check_model(path, args, tmp):
    """Returns (ok, line, details)."""
    details = []
    try:
        model = Model(path, args.batch)
    except (ModelError, KeyError, TypeError, ValueError) as e:
        return False, f"FAIL  {os.path.basename(path)}: cannot read the model: {e}", details
    if not model.loss:
        return True, f"SKIP  {model.file}: no loss to differentiate", details
    rng = np.random.default_rng(args.seed)
    feeds = make_feeds(model, rng)
    stem = os.path.join(tmp, os.path.splitext(model.file)[0])
    feed_args = []
    for name, arr in feeds.items():
        fp = f"{stem}.{name}.npy"
        np.save(fp, arr, allow_pickle=False)
        feed_args += ["--feed", f"{name}={fp}"]
    base = [args.dagnet, "grad", path, "--seed", str(args.seed)] + feed_args

    summary = []
    all_ok = True
    expect = None
    # BatchNorm's running statistics: their init values for run 1; run 2 loads random ones
    # (mean U(-0.5, 0.5), var U(0.5, 1.5)) from the weights file, which the inference check
    # then normalises with.
    state_init = {}
    for sname in model.state_order:
        spec = model.init_spec(sname)
        v = {"zeros": 0.0, "ones": 1.0}.get(spec["type"], spec.get("value"))
        state_init[sname] = np.full(model.state[sname]["shape"], v if v is not None else 0.0, "<f4")
    srng = np.random.default_rng(args.seed + 1000)
    variances = {n.inputs[4] for n in model.order if n.op == "BatchNorm"}
    state_run2 = {k: (srng.uniform(0.5, 1.5, size=v.shape) if k in variances
                      else srng.uniform(-0.5, 0.5, size=v.shape)).astype("<f4")
                  for k, v in state_init.items()}
    for run in (1, 2):
        rep = Report("init" if run == 1 else f"weights x{WEIGHT_SCALE}")
        out = f"{stem}.grad{run}.safetensors"
        cmd = base + ["--out", out, "--tensors"]
        if run == 2:
            wfile = f"{stem}.weights.safetensors"
            write_safetensors(wfile, {**expect, **state_run2})
            cmd += ["--weights", wfile]
        log = []
        rc = run_dagnet(cmd, log)
        if rc != 0:
            details.append(f"  [{rep.label}] dagnet exited with status {rc}")
            details += ["    " + line for line in "\n".join(log).splitlines()]
            return False, f"FAIL  {model.file}: dagnet grad failed ({rep.label})", details
        try:
            st = read_safetensors(out)
        except (FileFormatError, OSError) as e:
            details.append(f"  [{rep.label}] {e}")
            return False, f"FAIL  {model.file}: unreadable grad file ({rep.label})", details
        params, complete = compare_run(model, feeds, st, rep, run == 1, expect,
                                       state_init if run == 1 else state_run2)
        if run == 1:
            expect = {p: (params[p].astype(np.float64) * WEIGHT_SCALE).astype("<f4") for p in params}
        del st, params
        if not args.keep:
            os.remove(out)
        ok = not rep.failures
        all_ok &= ok
        rel, what = rep.worst
        summary.append(f"{rep.label}: worst rel. error {rel:.2e} ({what})")
        if not ok or args.verbose:
            details.append(f"  [{rep.label}] {'OK' if ok else str(len(rep.failures)) + ' problem(s)'}")
            if rep.diagnosis:
                details.append("    => " + rep.diagnosis)
            details += ["    " + f for f in rep.failures[:40]]
            if len(rep.failures) > 40:
                details.append(f"    ... {len(rep.failures) - 40} more")
            details += ["    note: " + n for n in rep.notes]
        if not complete:
            break
    if all_ok and model.outputs:
        ok, line = check_infer(model, args, path, feeds, feed_args, stem, details)
        all_ok &= ok
        summary.append(line)
    nparams = sum(int(np.prod(model.params[p]["shape"])) for p in model.params)
    head = (f"{'PASS' if all_ok else 'FAIL'}  {model.file}: batch {args.batch}, {len(model.nodes)} nodes, "
            f"{len(model.params)} params ({nparams:,} values); " + "; ".join(summary))
    return all_ok, head, details


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dagnet", required=True, help="the dagnet command")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1, help="dagnet --seed and the input generator")
    ap.add_argument("--keep", metavar="DIR", help="keep the inputs and files in DIR")
    ap.add_argument("--verbose", "-v", action="store_true", help="details for passing models too")
    ap.add_argument("models", nargs="+", help="model .json files or directories of them")
    args = ap.parse_args()
    if args.batch < 1:
        ap.error("--batch must be >= 1")
    if not (os.path.isfile(args.dagnet) and os.access(args.dagnet, os.X_OK)):
        print(f"parity.py: {args.dagnet} is not an executable file", file=sys.stderr)
        return 2
    paths = []
    for m in args.models:
        if os.path.isdir(m):
            paths += sorted(os.path.join(m, f) for f in os.listdir(m) if f.endswith(".json"))
        else:
            paths.append(m)
    if not paths:
        print("parity.py: no model files", file=sys.stderr)
        return 2
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    failed = 0
    with tempfile.TemporaryDirectory(prefix="dagnet-parity-") as tmp:
        work = args.keep or tmp
        if args.keep:
            os.makedirs(args.keep, exist_ok=True)
        for path in paths:
            ok, line, details = check_model(path, args, work)
            print(line, flush=True)
            for d in details:
                print(d, flush=True)
            failed += not ok
    print(f"{len(paths) - failed} of {len(paths)} models agree with PyTorch "
          f"(float64, tolerance {RTOL:g}*max|torch| + {ATOL:g} per tensor)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
