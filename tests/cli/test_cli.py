#!/usr/bin/env python3
"""test_cli.py — the `dagnet` command's parser, help, man page and bash completion.

usage: test_cli.py PART --dagnet build/dagnet --man build/dagnet.1
                   --completion build/dagnet.bash-completion --source SOURCE_DIR

PART is one of help, version, errors, repeated, man, completion (one ctest test each, cli_*).
Usage errors are tried on a model file that does not exist: a parser that let the arguments
through would fail on opening it (exit 1, "cannot open") instead of exiting 2 with the
expected message, so each check can fail. Prints each failure and exits 1 on any.
"""
import argparse
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

FAILURES = []

# The options each command took before the table-driven parser (the old usage text): they
# must all still be there.
LEGACY = {
    "summary": [],
    "infer": "weights seed threads feed out fetch",
    "grad": "weights seed threads feed out tensors",
    "check": "batch seed threads",
    "train": "data epochs batch optimizer lr momentum weight-decay schedule seed threads val "
             "limit weights save checkpoint resume log filters bucket check-replicas",
    "eval": "weights data batch confusion classes",
    "bench": "batch threads iters warmup mode json seed",
    "filters": "weights node scale out",
    "activations": "weights image node scale out",
    "plot": "title out",
    "graph": "out",
    "import": "out weights loss label",
    "export": "weights out with-loss seed",
}


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print(f"FAIL: {what}", file=sys.stderr)


def run(args, *argv, env=None):
    e = dict(os.environ, OMP_WAIT_POLICY="passive")
    e.update(env or {})
    r = subprocess.run([args.dagnet, *argv], capture_output=True, text=True, env=e, timeout=120)
    return r.returncode, r.stdout, r.stderr


def option_head(line):
    """'--name META' of a line that starts with the option, its help perhaps beside it: the
    metavar is the next word when it starts with a capital (help texts start in lower case)."""
    words = line.split()
    return " ".join(words[:2]) if len(words) > 1 and words[1][0].isupper() else words[0]


def section(text, title):
    """The lines of a help text's section `title` ("commands:", "options:"), up to its blank
    line."""
    lines = text.splitlines()
    if title not in lines:
        return []
    rest = lines[lines.index(title) + 1:]
    return rest[:next((i for i, line in enumerate(rest) if not line.strip()), len(rest))]


def commands_of_overview(text):
    """The command names of `dagnet help`'s "commands:" section."""
    return [line.split()[0] for line in section(text, "commands:")]


def options_of_help(text):
    """'--name META' heads of a command's help, in order (without -h, --help)."""
    return [option_head(line) for line in section(text, "options:") if line.startswith("  --")]


# ------------------------------------------------------------------ parts

def part_help(args):
    rc, overview, err = run(args, "help")
    check(rc == 0 and not err, f"dagnet help: rc {rc}, stderr {err!r}")
    cmds = commands_of_overview(overview)
    check(set(cmds) == set(LEGACY), f"overview lists {cmds}, expected {sorted(LEGACY)}")
    for flag in ("--help", "-h"):
        rc, out, _ = run(args, flag)
        check(rc == 0 and out == overview, f"dagnet {flag} differs from dagnet help (rc {rc})")
    rc, out, err = run(args)
    check(rc == 2 and not out and err == overview, f"bare dagnet: rc {rc}, overview on stderr")
    for cmd in cmds:
        rc, text, err = run(args, cmd, "--help")
        check(rc == 0 and not err, f"{cmd} --help: rc {rc}, stderr {err!r}")
        check(text.startswith(f"usage: dagnet {cmd} "), f"{cmd} --help: no synopsis")
        heads = options_of_help(text)
        names = [h.split()[0][2:] for h in heads]
        legacy = LEGACY[cmd].split() if LEGACY[cmd] else []
        for name in legacy:
            check(name in names, f"{cmd} --help does not list --{name}")
        check(len(names) == len(set(names)), f"{cmd} --help lists an option twice: {names}")
        ex = text.split("\nexamples:\n", 1)
        lines = [l for l in ex[1].splitlines() if re.match(r"  \S", l)] if len(ex) == 2 else []
        check(len(lines) >= 1 and all(f"dagnet {cmd} " in l for l in lines),
              f"{cmd} --help: examples {lines}")
        for argv in (["help", cmd], [cmd, "-h"], [cmd, "missing.json", "--epochs", "x", "--help"]):
            rc, out, _ = run(args, *argv)
            check(rc == 0 and out == text, f"dagnet {' '.join(argv)} is not {cmd}'s help")
    # defaults and choices are shown
    _, text, _ = run(args, "train", "--help")
    check("(default: /usr/share/datasets/fashion-mnist)" in text, "train --help: --data default")
    check("sgd, momentum, nesterov, adagrad, rmsprop, adam" in " ".join(text.split()),
          "train --help: optimizers")
    _, text, _ = run(args, "infer", "--help")
    check("usage: dagnet infer MODEL.json --out OUT.npy [options]" in text,
          "infer --help: required --out in the synopsis")


def part_version(args):
    header = open(os.path.join(args.source, "include", "dagnet.h"), encoding="utf-8").read()
    version = re.search(r'#define DN_VERSION_STRING "([^"]+)"', header).group(1)
    fmt = re.search(r'#define DN_FORMAT "([^"]+)"', header).group(1)
    rc, out, err = run(args, "--version", env={"OMP_NUM_THREADS": "3"})
    check(rc == 0 and not err, f"--version: rc {rc}, stderr {err!r}")
    lines = out.splitlines()
    check(lines[:1] == [f"dagnet {version}"], f"--version first line {lines[:1]}")
    check(f"format: {fmt}" in out, f"--version does not name the format {fmt}: {out!r}")
    check(re.search(r"build: BLIS \d+\.\d+\.\d+ \(\w+, \w+ threading(; set by dagnet as BLIS_ARCH_TYPE=\d+: [^)]+)?\); "
                    r"OpenMP \d\.\d \(\d{6}\); 3 threads by default", out),
          f"--version build line (OMP_NUM_THREADS=3): {out!r}")
    # How threads wait (src/cli/wait.c): the user's setting wins; unset, the command sets
    # GOMP_SPINCOUNT and runs itself again, and the programs it starts do not see its mark.
    check("threads wait: OMP_WAIT_POLICY=passive (yours)" in out, f"--version, passive: {out!r}")
    bare = {k: v for k, v in os.environ.items()
            if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "DAGNET_CHOSE_SPINCOUNT")}
    r = subprocess.run([args.dagnet, "--version"], capture_output=True, text=True, env=bare,
                       timeout=60)
    check(r.returncode == 0 and "threads wait: GOMP_SPINCOUNT=1000 (set by dagnet)" in r.stdout,
          f"--version with no wait policy set: rc {r.returncode}, {r.stdout!r}")
    r = subprocess.run([args.dagnet, "--version"], capture_output=True, text=True,
                       env=dict(bare, GOMP_SPINCOUNT="77"), timeout=60)
    check("threads wait: GOMP_SPINCOUNT=77 (yours)" in r.stdout, f"--version, 77: {r.stdout!r}")
    # BLIS's kernels (src/runtime/gemm.c): a BLIS_ARCH_TYPE the user set is theirs, never
    # overridden (3 is haswell in BLIS 0.9's arch_t, whose kernels need AVX2 and FMA).
    flags = open("/proc/cpuinfo", encoding="utf-8").read()
    if "build: BLIS 0.9." in out and " avx2" in flags and " fma" in flags:
        r = subprocess.run([args.dagnet, "--version"], capture_output=True, text=True,
                           env=dict(bare, BLIS_ARCH_TYPE="3"), timeout=60)
        check("(haswell, openmp threading); " in r.stdout,
              f"--version with BLIS_ARCH_TYPE=3: {r.stdout!r}")


# argv (the model path is missing.json), the first line of stderr expected
ERRORS = [
    (["train", "missing.json", "--epoch", "1"],
     "dagnet train: unknown option '--epoch' (did you mean '--epochs'?)"),
    (["trian", "missing.json"], "dagnet: unknown command 'trian' (did you mean 'train'?)"),
    (["help", "infr"], "dagnet: unknown command 'infr' (did you mean 'infer'?)"),
    (["--verison"], "dagnet: unknown option '--verison' (did you mean '--version'?)"),
    (["frobnicate"], "dagnet: unknown command 'frobnicate'"),
    (["train", "missing.json", "-epochs", "1"],
     "dagnet train: unknown option '-epochs' (did you mean '--epochs'?)"),
    (["train", "missing.json", "--zzz", "1"], "dagnet train: unknown option '--zzz'"),
    (["infer", "missing.json", "--out", "o.npy", "--epochs", "3"],
     "dagnet infer: unknown option '--epochs' (an option of train, not of infer)"),
    (["train", "missing.json", "--epochs", "x"],
     "dagnet train: --epochs: expected an integer from 0 to 1000000, found 'x'"),
    (["train", "missing.json", "--epochs=-1"],
     "dagnet train: --epochs: expected an integer from 0 to 1000000, found '-1'"),
    (["train", "missing.json", "--lr", "-1"], "dagnet train: --lr: expected a number > 0, found '-1'"),
    (["train", "missing.json", "--lr", "inf"], "dagnet train: --lr: expected a number > 0, found 'inf'"),
    (["train", "missing.json", "--momentum", "1"],
     "dagnet train: --momentum: expected a number in [0, 1), found '1'"),
    (["train", "missing.json", "--val", "many"],
     "dagnet train: --val: expected an integer >= 0, found 'many'"),
    (["train", "missing.json", "--limit", "0"],
     "dagnet train: --limit: expected a positive integer, found '0'"),
    (["train", "missing.json", "--threads", "0"],
     "dagnet train: --threads: expected an integer from 1 to 1024, found '0'"),
    (["train", "missing.json", "--optimizer", "adamw"],
     "dagnet train: --optimizer: expected sgd, momentum, nesterov, adagrad, rmsprop or adam, "
     "found 'adamw' (did you mean 'adam'?)"),
    (["bench", "missing.json", "--mode", "fast"],
     "dagnet bench: --mode: expected train or infer, found 'fast'"),
    (["bench", "missing.json", "--json=yes"], "dagnet bench: --json takes no value, found 'yes'"),
    (["infer", "missing.json"], "dagnet infer: missing --out OUT.npy"),
    (["infer", "missing.json", "--out"], "dagnet infer: --out needs a value (OUT.npy)"),
    (["infer", "missing.json", "--out", "--fetch", "x"], "dagnet infer: --out needs a value (OUT.npy)"),
    (["infer", "missing.json", "--out", "o.npy", "--feed", "image"],
     "dagnet infer: --feed: expected NAME=FILE.npy, found 'image'"),
    (["infer", "missing.json", "--out", "o.npy"] + [f"--feed=x{i}=f.npy" for i in range(17)],
     "dagnet infer: --feed: at most 16 inputs, found more ('x16=f.npy')"),
    (["eval", "missing.json"], "dagnet eval: missing --weights W.safetensors"),
    (["activations", "missing.json", "--out", "a.png", "--image", "i.npy"],
     "dagnet activations: missing --node NAME"),
    (["summary", "missing.json", "extra"],
     "dagnet summary: unexpected argument 'extra' (it takes one MODEL.json)"),
    (["summary"], "dagnet summary: missing MODEL.json"),
    (["plot", "--out", "c.png"], "dagnet plot: missing LOG.csv [LOG.csv ...]"),
    (["plot", "--out", "c.png"] + [f"l{i}.csv" for i in range(13)],
     "dagnet plot: unexpected argument 'l12.csv' (at most 12 operands)"),
    (["import", "missing.onnx", "--out", "m.json", "--weights", "w.st", "--loss", "mse"],
     "dagnet import: --loss: expected softmax-cross-entropy, found 'mse'"),
]


def part_errors(args):
    for argv, want in ERRORS:
        rc, out, err = run(args, *argv)
        first = err.splitlines()[0] if err else ""
        check(rc == 2 and first == want and not out,
              f"dagnet {' '.join(argv)}: rc {rc}, stderr {first!r}, expected {want!r}")
    # the same arguments made right get past the parser: to the missing model (exit 1)
    rc, _, err = run(args, "train", "missing.json", "--epochs", "1", "--lr=0.1", "--momentum", "0")
    check(rc == 1 and "missing.json" in err, f"a good train line: rc {rc}, {err!r}")


def write_npy(path, dtype, shape, values):
    """A .npy file (version 1.0, little-endian) without NumPy."""
    descr = {"f4": "<f4", "i4": "<i4"}[dtype]
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': ({', '.join(map(str, shape))},), }}"
    header += " " * (63 - (len(header) + 10) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
        f.write(struct.pack("<%d%s" % (len(values), "f" if dtype == "f4" else "i"), *values))


def part_repeated(args):
    model = os.path.join(args.source, "examples", "models", "mlp_tanh.json")
    # scalars: the last value wins, in either spelling, options before or after the operand
    for argv, batch in ((["--batch", "3", "--batch", "5"], 5), (["--batch=4", "--batch", "2"], 2),
                        (["--batch", "6"], 6)):
        rc, out, err = run(args, "check", *argv, model, "--threads", "1", "--threads", "2")
        check(rc == 0 and out.startswith(f"check: batch {batch},"),
              f"check {argv}: rc {rc}, {out!r} {err!r}, expected batch {batch}")
    rc, out, _ = run(args, "summary", "--", model)
    check(rc == 0 and '"mlp_tanh"' in out, "summary -- MODEL: '--' ends the options")
    # --feed accumulates: grad needs both inputs, so both must have been kept
    with tempfile.TemporaryDirectory() as tmp:
        img, lab = os.path.join(tmp, "x.npy"), os.path.join(tmp, "y.npy")
        write_npy(img, "f4", (2, 1, 28, 28), [((i * 37) % 101) / 101.0 for i in range(2 * 784)])
        write_npy(lab, "i4", (2,), [3, 7])
        out_st = os.path.join(tmp, "g.safetensors")
        rc, out, err = run(args, "grad", model, "--feed", f"image={img}", f"--feed=label={lab}",
                           "--out", out_st, "--threads", "1")
        check(rc == 0 and out.startswith("loss ") and os.path.exists(out_st),
              f"grad with two --feed: rc {rc}, {out!r} {err!r}")
        # in order: the first missing file is the one reported
        rc, _, err = run(args, "infer", model, "--feed", f"image={tmp}/first.npy",
                         "--feed", f"image={tmp}/second.npy", "--out", f"{tmp}/o.npy")
        check(rc == 1 and "first.npy" in err and "second.npy" not in err,
              f"two --feed in order: rc {rc}, {err!r}")


def man_options(args):
    """{command: ['--name META', ...]} of the man page as groff renders it, and groff's
    warnings."""
    warn = subprocess.run(["groff", "-man", "-ww", "-z", args.man], capture_output=True, text=True)
    text = subprocess.run(["groff", "-man", "-Tascii", "-P-cbou", "-rLL=200n", args.man],
                          capture_output=True, text=True, check=True).stdout
    found, cmd, section = {}, None, None
    for line in text.splitlines():
        if re.match(r"^[A-Z][A-Z ]+$", line):
            section, cmd = line, None
        elif section == "COMMANDS" and re.match(r"^   dagnet [a-z]+", line):
            cmd = line.split()[1]
            found[cmd] = []
        elif cmd and re.match(r"^       --[a-z]", line):
            found[cmd].append(option_head(line))
    return found, warn.stderr


def part_man(args):
    if not shutil.which("groff"):
        print("cli man: skipped, no groff (Debian's groff-base renders man pages)")
        sys.exit(77)
    found, warnings = man_options(args)
    check(not warnings, f"groff warns about {args.man}: {warnings}")
    _, overview, _ = run(args, "help")
    cmds = commands_of_overview(overview)
    check(list(found) == cmds, f"man page commands {list(found)} != help's {cmds}")
    for cmd in cmds:
        _, text, _ = run(args, cmd, "--help")
        check(found.get(cmd) == options_of_help(text),
              f"{cmd}: man page options {found.get(cmd)} != --help's {options_of_help(text)}")
    rc, out, _ = run(args, "--man")
    check(rc == 0 and out == open(args.man, encoding="utf-8").read(),
          f"{args.man} is not what dagnet --man prints now")


def complete(args, cwd, line):
    """COMPREPLY for the command line `line` (the word being completed is its last, maybe
    empty), with the completion script sourced in bash."""
    script = r'''
source "$1"
read -ra COMP_WORDS <<< "$2"
[[ $2 == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
_dagnet
printf '%s\n' "${COMPREPLY[@]}"
'''
    r = subprocess.run(["bash", "-c", script, "_", args.completion, line], cwd=cwd,
                       capture_output=True, text=True)
    check(r.returncode == 0 and not r.stderr, f"completion of {line!r}: {r.stderr}")
    return sorted(set(w for w in r.stdout.splitlines() if w))


def part_completion(args):
    r = subprocess.run(["bash", "-c", 'source "$1" && complete -p dagnet', "_", args.completion],
                       capture_output=True, text=True)
    check(r.returncode == 0 and "-F _dagnet" in r.stdout, f"complete -p dagnet: {r.stdout!r}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("a.json", "b.onnx", "w.safetensors", "log.csv", "notes.txt"):
            open(os.path.join(tmp, name), "w").close()
        os.mkdir(os.path.join(tmp, "sub"))
        expect = {
            "dagnet tr": ["train"],
            "dagnet help gr": ["grad", "graph"],
            "dagnet train --ep": ["--epochs"],
            "dagnet train ": ["a.json", "b.onnx", "sub"],
            "dagnet plot ": ["log.csv", "sub"],
            "dagnet import ": ["b.onnx", "sub"],
            "dagnet train a.json --weights ": ["sub", "w.safetensors"],
            "dagnet train a.json --data ": ["sub"],
            "dagnet train a.json --optimizer a": ["adagrad", "adam"],
            "dagnet bench a.json --mode ": ["infer", "train"],
            "dagnet train a.json --epochs ": [],
        }
        for line, want in expect.items():
            got = complete(args, tmp, line)
            check(got == want, f"completion of {line!r}: {got}, expected {want}")
        # every command completes exactly the options its help lists
        _, overview, _ = run(args, "help")
        for cmd in commands_of_overview(overview):
            _, text, _ = run(args, cmd, "--help")
            want = sorted([h.split()[0] for h in options_of_help(text)] + ["--help"])
            got = complete(args, tmp, f"dagnet {cmd} --")
            check(got == want, f"completion of 'dagnet {cmd} --': {got}, expected {want}")


PARTS = {"help": part_help, "version": part_version, "errors": part_errors,
         "repeated": part_repeated, "man": part_man, "completion": part_completion}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("part", choices=sorted(PARTS))
    ap.add_argument("--dagnet", required=True)
    ap.add_argument("--man", required=True)
    ap.add_argument("--completion", required=True)
    ap.add_argument("--source", required=True)
    args = ap.parse_args()
    PARTS[args.part](args)
    if FAILURES:
        print(f"{len(FAILURES)} failure(s)", file=sys.stderr)
        return 1
    print(f"cli {args.part}: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
