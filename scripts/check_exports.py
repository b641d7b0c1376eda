#!/usr/bin/env python3
"""check_exports.py — the shared library exports exactly the functions dagnet.h declares.

usage: check_exports.py include/dagnet.h path/to/libdagnet.so

The declared set: every `DN_API ... dn_name(` of the header. The exported set: the defined
dynamic symbols of the library (`nm -D --defined-only`), leaving out the linker's own
(_init, _fini, _edata, _end, __bss_start). Fails, listing them, on any exported symbol the
header does not declare (an internal function that escaped hidden visibility) and on any
declared function the library does not export.
"""
import re
import subprocess
import sys

LINKER = {"_init", "_fini", "_edata", "_end", "__bss_start"}


def declared(header):
    text = open(header, encoding="utf-8").read()
    # Declarations may wrap: join each DN_API statement up to its '('.
    return set(re.findall(r"^DN_API\b[^;{(]*?\b(dn_\w+)\s*\(", text, re.M))


def exported(lib):
    out = subprocess.run(["nm", "-D", "--defined-only", lib], check=True, capture_output=True,
                         text=True).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3:
            names.add(parts[2].split("@")[0])
    return names - LINKER


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    want, have = declared(sys.argv[1]), exported(sys.argv[2])
    extra, missing = sorted(have - want), sorted(want - have)
    for name in extra:
        print(f"exported but not declared in dagnet.h: {name}")
    for name in missing:
        print(f"declared in dagnet.h but not exported: {name}")
    print(f"exports: {len(have)} exported, {len(want)} declared, {len(extra)} extra, "
          f"{len(missing)} missing")
    return 1 if extra or missing or not want else 0


if __name__ == "__main__":
    sys.exit(main())
