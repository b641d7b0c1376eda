#!/usr/bin/env python3
"""check_layers.py — the include rule of docs/architecture.md, checked.

Every quoted #include names its layer ("runtime/tensor.h", "ops/op.h"), except "dagnet.h" (the
public header, open to all) and a test's own helpers in tests/. A layer may include only
itself and the layers listed for it below; nothing includes cli/, and only cli/ and tests/
include draw/ (the pictures, themselves on the public API only). A violation prints file:line
and the offending line, and the script exits 1.

    python3 scripts/check_layers.py [ROOT]
"""
import os
import re
import sys

# layer -> the layers it may include (itself always included)
ALLOWED = {
    "runtime": set(),
    "io": {"runtime"},
    "ops": {"runtime"},
    "graph": {"runtime", "ops"},
    "train": {"runtime", "io", "ops", "graph"},
    "api": {"runtime", "io", "ops", "graph", "train"},
    "draw": set(),  # the public API only (and cairo, Graphviz)
    "cli": {"draw"},  # the public API and the pictures
    "examples": set(),
    "tests": {"runtime", "io", "ops", "graph", "train", "api", "draw"},
}

# where each layer's files live, relative to the root
FOLDERS = {
    "runtime": "src/runtime", "io": "src/io", "train": "src/train", "api": "src/api",
    "draw": "src/draw", "cli": "src/cli", "ops": "ops", "graph": "graph", "examples": "examples",
    "tests": "tests",
}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def check(root):
    problems = []
    seen = 0
    for layer, folder in FOLDERS.items():
        base = os.path.join(root, folder)
        for dirpath, _, files in os.walk(base):
            for name in sorted(files):
                if not name.endswith((".c", ".h")):
                    continue
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, root)
                seen += 1
                with open(path, encoding="utf-8") as f:
                    for lineno, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if not m:
                            continue
                        target = m.group(1)
                        why = verdict(layer, target, dirpath)
                        if why:
                            problems.append(f"{rel}:{lineno}: {line.strip()}: {why}")
    return problems, seen


def verdict(layer, target, dirpath):
    if target == "dagnet.h":
        return None
    if ".." in target.split("/"):
        return "relative include; name the layer (e.g. \"runtime/tensor.h\")"
    head = target.split("/")[0] if "/" in target else None
    if head is None:
        if layer == "tests" and os.path.exists(os.path.join(dirpath, target)):
            return None  # a test's own helper beside it
        return "unqualified include; name the layer (e.g. \"runtime/tensor.h\")"
    if head not in FOLDERS or head in ("examples", "tests"):
        return f"\"{head}/\" is not a layer"
    if head == "cli" and layer != "cli":
        return "nothing includes cli/"
    if head == "draw" and layer not in ("draw", "cli", "tests"):
        return "only cli/ and tests/ include draw/"
    if head == layer or head in ALLOWED[layer]:
        return None
    allowed = sorted(ALLOWED[layer] | {layer})
    return f"{layer}/ may include only {', '.join(allowed)} (and dagnet.h), found {head}/"


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    problems, seen = check(os.path.abspath(root))
    for p in problems:
        print(p)
    if seen == 0:
        print("check_layers: no source files found under", root)
        return 1
    print(f"check_layers: {seen} files, {len(problems)} violations")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
