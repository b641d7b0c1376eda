#!/usr/bin/env bash
# demo.sh — the main job: build dagnet, then load every model in examples/models/, print its
# summary and run one forward and backward pass on a small synthetic batch.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target dagnet_cli >/dev/null
for model in examples/models/*.json; do
  echo "==== $model"
  ./build/dagnet summary "$model"
  ./build/dagnet check "$model" --batch 2
  echo
done
