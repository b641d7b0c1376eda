#!/usr/bin/env bash
# demo.sh — the main job: build dagnet, then train LeNet-5 (examples/models/lenet5.json) on
# Fashion-MNIST and print the test accuracy. Extra arguments go to `dagnet train`
# (e.g. --epochs 5, --threads 2, --log lenet5.csv).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target dagnet_cli >/dev/null
./build/dagnet train examples/models/lenet5.json --epochs 3 --save lenet5.safetensors "$@"
