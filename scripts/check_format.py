#!/usr/bin/env python3
"""check_format.py — every C file is laid out as .clang-format says, within 100 columns.

clang-format (Debian's, the version scripts/setup.sh installs) checks the layout; it does not
reflow comments, so this script also counts the characters of every line, comments included.
Prints each offending file and line and exits 1.

    python3 scripts/check_format.py [ROOT]
"""
import os
import shutil
import subprocess
import sys

LIMIT = 100
FOLDERS = ["include", "src", "ops", "graph", "tests", "examples"]


def sources(root):
    out = []
    for folder in FOLDERS:
        for dirpath, _, files in os.walk(os.path.join(root, folder)):
            out += [os.path.join(dirpath, f) for f in sorted(files) if f.endswith((".c", ".h"))]
    return sorted(out)


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                           os.path.join(os.path.dirname(__file__), ".."))
    files = sources(root)
    if not files:
        print("check_format: no C files under", root)
        return 1
    bad = 0
    for path in files:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                width = len(line.rstrip("\n"))
                if width > LIMIT:
                    print(f"{os.path.relpath(path, root)}:{n}: {width} columns (limit {LIMIT})")
                    bad += 1
    tool = shutil.which("clang-format")
    if not tool:
        print("check_format: clang-format is not installed (scripts/setup.sh --test installs it)")
        return 1
    r = subprocess.run([tool, "--dry-run", "--Werror", *files], cwd=root,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        # clang-format prints each place it would change; show the first few.
        lines = r.stdout.splitlines()
        print("\n".join(lines[:40]))
        if len(lines) > 40:
            print(f"... {len(lines) - 40} more lines")
        print("check_format: run `clang-format -i` on the files above")
        bad += 1
    print(f"check_format: {len(files)} files, {'not ' if bad else ''}formatted")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
