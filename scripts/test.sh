#!/usr/bin/env bash
# test.sh — build and run every test: once optimised, once with AddressSanitizer and
# UndefinedBehaviorSanitizer (the PyTorch parity test and the MPI test, mpirun -np 2, run in
# both builds); a build without MPI (it must still build and refuse mpirun); then the threads
# test under ThreadSanitizer, the ONNX bridge's conformance and round trips, each libFuzzer
# harness for a short, bounded time, and the installed package with three consumers
# (scripts/check_package.sh).
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
       END { printf "all %d suites of %s:\n[====] Synthesis: Tested: %d | Passing: %d | " \
                    "Failing: %d | Crashing: %d\n", suites, dir, t, p, f, c }' dir="$1" \
    "$1/ctest.log" | tee "$1/ctest.summary"
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

# Without MPI (-DDAGNET_MPI=OFF) dagnet still builds, trains as one process, and under a
# launcher of two processes says how to get MPI instead of training twice.
echo "== build without MPI"
cmake -S . -B build-nompi -DCMAKE_BUILD_TYPE=Release -DDAGNET_MPI=OFF -DDAGNET_TESTS=OFF >/dev/null
cmake --build build-nompi -j"$jobs" --target dagnet_cli
if OMPI_COMM_WORLD_SIZE=2 build-nompi/dagnet train examples/models/lenet5.json --epochs 0 \
  2>build-nompi/mpi.err; then
  echo "a dagnet without MPI trained under a launcher of 2" >&2
  exit 1
fi
grep -q "built without MPI: install Open MPI" build-nompi/mpi.err

# Only the library and the threads test: four threads with their own sessions on one model.
# halt_on_error: any TSan report fails CI. The sessions use one kernel thread each (libgomp and
# BLIS are not instrumented); OMP_NUM_THREADS=1 says the same for anything else.
echo "== ThreadSanitizer build (the library and the threads test)"
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDAGNET_TSAN=ON >/dev/null
cmake --build build-tsan -j"$jobs" --target dagnet_tsan_tests
TSAN_OPTIONS=halt_on_error=1 OMP_NUM_THREADS=1 build-tsan/dagnet_tsan_tests

# The ONNX bridge (docs/onnx.md): ONNX's own backend test cases whose ops dagnet has, PyTorch's
# exports of the reference nets, and dagnet's exports run by ONNX Runtime. ONNX Runtime is npm's
# onnxruntime-node, installed once into build/ort (--ignore-scripts: the Linux CPU library is in
# the package; its install script would download what is not needed).
echo "== ONNX bridge (conformance cases, PyTorch and ONNX Runtime round trips)"
/usr/bin/python3 scripts/onnx_conformance.py --dagnet build/dagnet --tool build/onnx_tensor
if [[ ! -d build/ort/node_modules/onnxruntime-node ]]; then
  mkdir -p build/ort
  (cd build/ort && npm install --ignore-scripts --no-save --no-audit --no-fund \
    onnxruntime-node >/dev/null)
fi
/usr/bin/python3 tests/onnx/torch_roundtrip.py --dagnet build/dagnet
# AlexNet's export (three 250 MB files) is left to a full run of the script, for time; its
# import from PyTorch runs above.
/usr/bin/python3 tests/onnx/export_roundtrip.py --dagnet build/dagnet --ort build/ort/node_modules \
  $(ls examples/models/*.json tests/parity/models/*.json | grep -v alexnet)

# Each harness for 10 s from its committed seeds (a longer run: bash scripts/fuzz.sh 300).
echo "== fuzzing (clang, libFuzzer, ASan, UBSan: 10 s per reader)"
bash scripts/fuzz.sh 10

# The package: static and shared installs to a temporary prefix, three consumers each
# (find_package, pkg_check_modules IMPORTED_TARGET, plain cc with pkg-config).
echo "== package (install, find_package, pkg-config; static and shared)"
bash scripts/check_package.sh

# Every stage above stops the script when it fails, so reaching here means all passed; the
# last line repeats the release build's counts for whoever reads only the end of the log.
echo "== all stages passed"
tail -n 1 build/ctest.summary
