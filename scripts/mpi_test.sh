#!/usr/bin/env bash
# mpi_test.sh — `mpirun -np 2 dagnet train` end to end on small data it writes itself
# (docs/distributed.md), registered as the ctest `mpi_train` when CMake finds MPI:
#
#   1. same maths: 20 steps with 2 ranks give the weights of 1 process (every param's
#      max |a − b| / max |b| below 1e-5), the global batch of 25 split 12 + 13;
#   2. replicas: --check-replicas finds the ranks' params identical at every epoch's end;
#   3. resume: 2 ranks stopped after epoch 1 and resumed from its checkpoint end with the
#      same bits as 2 ranks run straight through 2 epochs;
#   4. faults: ranks given other data fail together, each naming the difference, with a
#      non-zero exit and no hang; a rank killed mid-run ends the job, and the checkpoints
#      already written still resume.
#
#   bash scripts/mpi_test.sh BUILD/dagnet
set -euo pipefail
dagnet=$(realpath "$1")
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Containers: no ptrace between processes for single-copy shared memory; TCP and shared memory
# only; spare cores need not exist (ranks yield when idle).
export OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_btl=self,vader,tcp
export OMPI_MCA_mpi_yield_when_idle=1 OMP_WAIT_POLICY=passive
# In the sanitizer build: Open MPI's components (dlopen'ed, unloaded at MPI_Finalize) leave
# allocations LeakSanitizer cannot even name; dagnet's own leaks are checked by the dist_*
# suites, which run the same trainer code without MPI.
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
mpirun=(mpirun --oversubscribe --allow-run-as-root)
tmp=$(mktemp -d /tmp/dn_mpi_test_XXXXXX)
[[ -n ${DN_KEEP:-} ]] || trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

# Small data: 4 classes of 12×12 bars on noise, 500 training and 100 test images (IDX).
/usr/bin/python3 - <<'PY'
import random, struct, os
def write(dirname, prefix, n, seed):
    os.makedirs(dirname, exist_ok=True)
    rng = random.Random(seed)
    img = bytearray(struct.pack('>IIII', 0x803, n, 12, 12))
    lab = bytearray(struct.pack('>II', 0x801, n))
    for i in range(n):
        c = (i * 7 + seed) % 4
        lab.append(c)
        pos = 2 + 3 * (c // 2) + 2 * (c % 2)
        for y in range(12):
            for x in range(12):
                on = (pos <= y < pos + 3) if c % 2 == 0 else (pos <= x < pos + 3)
                img.append(160 + rng.randrange(90) if on else rng.randrange(90))
    open(f'{dirname}/{prefix}-images-idx3-ubyte', 'wb').write(img)
    open(f'{dirname}/{prefix}-labels-idx1-ubyte', 'wb').write(lab)
write('data', 'train', 500, 1); write('data', 't10k', 100, 2)
write('other', 'train', 500, 3); write('other', 't10k', 100, 2)
PY
cat > bars.json <<'JSON'
{"format": "dagnet/1", "name": "bars",
 "inputs": {"image": {"shape": [null, 1, 12, 12]}, "label": {"shape": [null], "dtype": "int32"}},
 "nodes": [
  {"name": "conv", "op": "Conv", "inputs": ["image"], "attrs": {"filters": 4, "kernel": 3, "pad": 1}},
  {"name": "relu", "op": "ReLU", "inputs": ["conv"]},
  {"name": "pool", "op": "MaxPool", "inputs": ["relu"], "attrs": {"kernel": 2}},
  {"name": "fc", "op": "Affine", "inputs": ["pool"], "attrs": {"units": 4}},
  {"name": "prob", "op": "Softmax", "inputs": ["fc"]},
  {"name": "loss", "op": "SoftmaxCrossEntropy", "inputs": ["fc", "label"]}],
 "outputs": ["prob"], "loss": "loss",
 "train": {"optimizer": "adam", "lr": 0.01, "batch": 25, "epochs": 1}}
JSON

# max over params of max|a − b| / max|b| between two safetensors files (float32).
compare() {
  /usr/bin/python3 - "$1" "$2" <<'PY'
import json, struct, sys, array
def read(path):
    b = open(path, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    head = json.loads(b[8:8 + n])
    out = {}
    for k, v in head.items():
        if k == '__metadata__':
            continue
        s, e = v['data_offsets']
        out[k] = array.array('f', b[8 + n + s:8 + n + e])
    return out
a, b = read(sys.argv[1]), read(sys.argv[2])
assert a.keys() == b.keys() and a, (a.keys(), b.keys())
worst = 0.0
for k in a:
    diff = max(abs(x - y) for x, y in zip(a[k], b[k]))
    scale = max(abs(y) for y in b[k]) or 1.0
    worst = max(worst, diff / scale)
print(f'{worst:.3g}')
PY
}
fail() { echo "mpi_test: FAIL: $*" >&2; exit 1; }
train=(train bars.json --data data --threads 1 --seed 4)

echo "== 1. same maths: 20 steps (500 images, global batch 25), 1 process and 2 ranks"
"$dagnet" "${train[@]}" --save one.safetensors >one.log
timeout 300 "${mpirun[@]}" -np 2 "$dagnet" "${train[@]}" --save two.safetensors \
  --check-replicas >two.log
grep -q "data parallel: 2 ranks, global batch 25" two.log || fail "no data-parallel line: $(cat two.log)"
[[ $(grep -c "^epoch 1/1:" two.log) == 1 ]] || fail "rank 0 alone should print: $(cat two.log)"
rel=$(compare two.safetensors one.safetensors)
echo "max relative difference, 2 ranks against 1 process: $rel"
/usr/bin/python3 -c "import sys; sys.exit(0 if 0 < float('$rel') < 1e-5 else 1)" ||
  fail "relative difference $rel not in (0, 1e-5)"

echo "== 2. replicas identical at every epoch's end"
grep -q "replicas: params and optimiser state identical on 2 ranks after epoch 1" two.log ||
  fail "no replica check line: $(cat two.log)"

echo "== 3. resume with 2 ranks"
timeout 300 "${mpirun[@]}" -np 2 "$dagnet" "${train[@]}" --epochs 2 --checkpoint straight \
  --save straight.safetensors >straight.log
timeout 300 "${mpirun[@]}" -np 2 "$dagnet" "${train[@]}" --epochs 2 --checkpoint resumed \
  --resume straight/epoch-1.ckpt --save resumed.safetensors >resumed.log
cmp straight.safetensors resumed.safetensors || fail "the resumed run ended elsewhere"
[[ ! -e resumed/epoch-1.ckpt && -e resumed/epoch-2.ckpt ]] || fail "resumed checkpoints"

echo "== 4a. other data on rank 1: every rank fails, naming it"
status=0
timeout 120 "${mpirun[@]}" -np 1 "$dagnet" "${train[@]}" : \
  -np 1 "$dagnet" train bars.json --data other --threads 1 --seed 4 >bad.log 2>&1 || status=$?
[[ $status != 0 && $status != 124 ]] || fail "exit status $status (124: a hang)"
[[ $(grep -c "the 2 ranks disagree with rank 0 (rank [01] speaking): rank 1: training data" \
    bad.log) == 2 ]] || fail "both ranks should name the data: $(cat bad.log)"

# 2000 epochs (about 100 s) so that the kill, 0.2 s after the first checkpoint, always lands
# before the end, however loaded the machine.
echo "== 4b. a rank killed mid-run ends the job; its checkpoints resume"
status=0
timeout 300 "${mpirun[@]}" -np 2 sh -c '
  if [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then
    (while [ ! -e killed/epoch-1.ckpt ]; do sleep 0.05; done; sleep 0.2; kill -9 $$) &
  fi
  exec "$0" "$@"' "$dagnet" "${train[@]}" --epochs 2000 --checkpoint killed >killed.log 2>&1 ||
  status=$?
[[ $status != 0 && $status != 124 ]] || fail "exit status $status after a kill (124: a hang)"
ls killed/*.ckpt >/dev/null
last=$(ls killed/epoch-*.ckpt | sort -t- -k2 -n | tail -n 1)
[[ -z $(ls killed | grep -v '\.ckpt$' || true) ]] || fail "temporary files left: $(ls killed)"
timeout 300 "${mpirun[@]}" -np 2 "$dagnet" "${train[@]}" --resume "$last" \
  --epochs $(( $(basename "$last" .ckpt | cut -d- -f2) + 1 )) >after.log ||
  fail "resuming $last after the kill: $(cat after.log)"
echo "mpi_test: all passed (relative difference $rel)"
