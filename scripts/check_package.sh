#!/usr/bin/env bash
# check_package.sh — install dagnet to a temporary prefix, static and shared, and build three
# consumers against each install (tests/package/consumer.c): CMake's find_package(dagnet) with
# dagnet::dagnet, CMake's pkg_check_modules(... IMPORTED_TARGET dagnet), and plain
# cc $(pkg-config --cflags --libs dagnet). Each consumer runs on examples/models/lenet5.json.
# Also checks: the shared library's SONAME and versioned file name; a shared consumer needs
# libdagnet.so, a static one does not; no -fopenmp in pkg-config's Cflags or in the consumers'
# compile flags; the man page and the bash completion of the `dagnet` command installed.
#
#   bash scripts/check_package.sh [WORK_DIR]     (default: a fresh mktemp -d, removed after)
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
jobs=$(nproc)
work=${1:-}
if [[ -z "$work" ]]; then
  work=$(mktemp -d /tmp/dagnet_package.XXXXXX)
  trap 'rm -rf "$work"' EXIT
fi
model=$src/examples/models/lenet5.json
fail() { echo "check_package: $*" >&2; exit 1; }

for kind in static shared; do
  shared=OFF; [[ $kind == shared ]] && shared=ON
  prefix=$work/prefix-$kind
  echo "== $kind: build and install to $prefix"
  cmake -S "$src" -B "$work/build-$kind" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=$shared \
    -DDAGNET_TESTS=OFF -DCMAKE_INSTALL_PREFIX="$prefix" >/dev/null
  cmake --build "$work/build-$kind" -j"$jobs" --target dagnet dagnet_cli >/dev/null
  cmake --install "$work/build-$kind" >/dev/null
  libdir=$(find "$prefix" -name dagnet.pc -printf '%h\n' | head -1)/..
  [[ -f $libdir/cmake/dagnet/dagnetConfig.cmake ]] || fail "$kind: no dagnetConfig.cmake"
  [[ -s $prefix/share/man/man1/dagnet.1 ]] || fail "$kind: no share/man/man1/dagnet.1"
  [[ -s $prefix/share/bash-completion/completions/dagnet ]] ||
    fail "$kind: no share/bash-completion/completions/dagnet"
  if [[ $kind == shared ]]; then
    so=$(ls "$libdir"/libdagnet.so.*.*.* 2>/dev/null | head -1)
    [[ -n $so ]] || fail "no versioned libdagnet.so.X.Y.Z in $libdir"
    soname=$(objdump -p "$so" | awk '/SONAME/ {print $2}')
    [[ $soname == libdagnet.so.* ]] || fail "SONAME is '$soname'"
    python3 "$src/scripts/check_exports.py" "$prefix/include/dagnet.h" "$so"
    echo "   $(basename "$so"), SONAME $soname"
  else
    [[ -f $libdir/libdagnet.a ]] || fail "no libdagnet.a"
  fi
  export PKG_CONFIG_PATH=$libdir/pkgconfig
  cflags=$(pkg-config --cflags dagnet)
  [[ $cflags != *-fopenmp* ]] || fail "$kind: pkg-config Cflags hold -fopenmp: $cflags"

  for way in find_package pkg_config; do
    b=$work/consumer-$kind-$way
    cmake -S "$src/tests/package/$way" -B "$b" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
    cmake --build "$b" >/dev/null
    ! grep -rq fopenmp "$b/CMakeFiles/consumer.dir/flags.make" ||
      fail "$kind/$way: -fopenmp in the consumer's compile flags"
    LD_LIBRARY_PATH=$libdir "$b/consumer" "$model"
  done
  b=$work/consumer-$kind-cc
  mkdir -p "$b"
  # shellcheck disable=SC2046 # pkg-config's words are meant to split
  cc -std=c11 -Wall -Wextra -o "$b/consumer" "$src/tests/package/consumer.c" \
    $(pkg-config --cflags --libs dagnet)
  LD_LIBRARY_PATH=$libdir "$b/consumer" "$model"
  for c in "$work"/consumer-$kind-*/consumer; do
    if readelf -d "$c" | grep -q 'NEEDED.*libdagnet'; then linked=shared; else linked=static; fi
    [[ $linked == "$kind" ]] || fail "$c links dagnet $linked, expected $kind"
  done
  echo "   three consumers built and ran ($kind)"
done
echo "== package: static and shared installs, three consumers each: passed"
