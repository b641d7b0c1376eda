#!/usr/bin/env bash
# setup.sh — install what dagnet needs from Debian's packages, or print the line to run.
#
#   bash scripts/setup.sh          build dependencies (compiler, CMake, pkg-config, BLIS, cJSON,
#                                  zlib, Criterion, cairo and Graphviz for the pictures,
#                                  protobuf-c and ONNX's onnx.proto for the ONNX bridge,
#                                  Open MPI for `mpirun -np K dagnet train` and its test)
#                                  and the default data set, Fashion-MNIST
#   bash scripts/setup.sh --test   also PyTorch and NumPy for the parity tests, clang-format
#                                  for the format check, and clang with its libFuzzer runtime
#                                  and OpenMP for the fuzz build; ONNX's test cases and Node.js
#                                  with npm (ONNX Runtime comes from npm) for the ONNX stage
set -euo pipefail

packages=(build-essential cmake pkg-config libblis-dev libcjson-dev libcriterion-dev zlib1g-dev
          libcairo2-dev libgraphviz-dev libprotobuf-c-dev protobuf-c-compiler libonnx-dev
          libopenmpi-dev openmpi-bin dataset-fashion-mnist)
if [[ "${1:-}" == "--test" ]]; then
  packages+=(python3-torch python3-numpy clang-format clang libclang-rt-dev libomp-dev
             libonnx-testdata)
  # Node.js and npm as commands: a machine with another build of Node.js (NodeSource's
  # nodejs carries its own npm and conflicts with Debian's npm package) keeps it.
  command -v node >/dev/null || packages+=(nodejs)
  command -v npm >/dev/null || packages+=(npm)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -eq 0 ]]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup: missing packages; run:" >&2
  echo "  sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
