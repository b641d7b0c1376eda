#!/usr/bin/env bash
# test.sh — build and run every test: once optimised, once with AddressSanitizer and
# UndefinedBehaviorSanitizer. The PyTorch parity test runs in both builds.
#
# ctest runs each Criterion suite as a test of its own, $jobs at a time; --verbose prints
# every suite's output, Criterion's "Synthesis" line included, and the counts over all the
# suites are summed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test

jobs=$(nproc)

# ctest in build folder $1; then the Criterion counts of all its suites on one line.
run_ctest() {
  local status=0
  ctest --test-dir "$1" --output-on-failure --verbose -j"$jobs" 2>&1 | tee "$1/ctest.log" ||
    status=$?
  awk '/\[====\] Synthesis: Tested:/ {
         suites++
         for (i = 1; i < NF; i++) {
           if ($i == "Tested:") t += $(i + 1)
           if ($i == "Passing:") p += $(i + 1)
           if ($i == "Failing:") f += $(i + 1)
           if ($i == "Crashing:") c += $(i + 1)
         }
       }
       END { printf "[====] Synthesis of %d suites: Tested: %d | Passing: %d | Failing: %d | " \
                    "Crashing: %d\n", suites, t, p, f, c }' "$1/ctest.log"
  return "$status"
}

echo "== release build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
run_ctest build

echo "== sanitizer build (address, undefined)"
cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=Debug -DDAGNET_SANITIZE=ON >/dev/null
cmake --build build-sanitize -j"$jobs"
run_ctest build-sanitize
