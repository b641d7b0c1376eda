#!/usr/bin/env bash
# fuzz.sh — build the libFuzzer harnesses of tests/fuzz/ with clang (-fsanitize=fuzzer,address,
# undefined; CMake option DAGNET_FUZZ in its own build folder) and run each for a given time.
#
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]    default: 60 s each; targets model, npy,
#                                                 safetensors, idx, checkpoint, onnx
#
# Each target starts from its committed seeds (tests/fuzz/corpus/<target>/, read only) and
# keeps what it finds in build-fuzz/corpus/<target>/, so a later run goes on from there. A
# crash, leak, sanitizer report or message-less failure stops the script with a non-zero
# status; the input that caused it is saved as build-fuzz/crashes/<target>/crash-* (replay it
# with `build-fuzz/fuzz_<target> FILE`). The last line per target counts the executions.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=(model npy safetensors idx checkpoint onnx)
build=${DAGNET_FUZZ_BUILD:-build-fuzz}

if ! command -v clang >/dev/null; then
  echo "fuzz.sh: clang is missing (bash scripts/setup.sh --test installs it)" >&2
  exit 1
fi
CC=clang cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDAGNET_FUZZ=ON >/dev/null
cmake --build "$build" -j"$(nproc)" --target "${targets[@]/#/fuzz_}" >/dev/null

# Tests ask for impossible allocations on purpose: ASan must return NULL, as malloc does. One
# kernel thread: the harnesses' sessions ask for one anyway, and libFuzzer wants no threads.
export ASAN_OPTIONS=allocator_may_return_null=1:detect_leaks=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive

status=0
for t in "${targets[@]}"; do
  mkdir -p "$build/corpus/$t" "$build/crashes/$t"
  echo "== fuzz_$t for ${seconds} s"
  if ! "$build/fuzz_$t" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$build/crashes/$t/" \
      "$build/corpus/$t" "tests/fuzz/corpus/$t" >"$build/fuzz_$t.log" 2>&1; then
    status=1
    grep -E "ERROR|SUMMARY|Test unit written|deadly signal" "$build/fuzz_$t.log" ||
      tail -20 "$build/fuzz_$t.log"
  fi
  runs=$(awk '/stat::number_of_executed_units/ { print $2 }' "$build/fuzz_$t.log")
  rss=$(awk '/stat::peak_rss_mb/ { print $2 }' "$build/fuzz_$t.log")
  echo "fuzz_$t: ${runs:-?} executions, peak RSS ${rss:-?} MB," \
    "$(ls "$build/corpus/$t" | wc -l) inputs in $build/corpus/$t"
done
exit "$status"
