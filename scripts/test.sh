#!/usr/bin/env bash
# test.sh — build and run every test: once optimised, once with AddressSanitizer and
# UndefinedBehaviorSanitizer. The PyTorch parity test runs in both builds.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test

jobs=$(nproc)
echo "== release build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure --verbose

echo "== sanitizer build (address, undefined)"
cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=Debug -DDAGNET_SANITIZE=ON >/dev/null
cmake --build build-sanitize -j"$jobs"
ctest --test-dir build-sanitize --output-on-failure --verbose
