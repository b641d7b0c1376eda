// ort_bench.js — time ONNX Runtime (npm's onnxruntime-node, CPU) on one ONNX model, the third
// side of bench/compare.py's `infer` configurations.
//
//   NODE_PATH=DIR/node_modules node bench/ort_bench.js MODEL.onnx --threads T --iters N
//       --warmup W NAME=D0,D1,... [NAME=...]
//
// The session is created as the issue-14 anchor was measured: T intra-op threads, one inter-op
// thread, all graph optimisations, sequential execution. Each input NAME gets a fixed float32
// array of shape D0 x D1 x ... drawn uniform in [0, 1) from a seeded generator (the values do
// not change the speed; fixed so that every round computes the same thing). W untimed runs, then
// N runs each timed with process.hrtime around `await session.run(feeds)` (the call a Node user
// makes). Prints one JSON object on stdout:
//   {"threads": T, "iters": N, "warmup": W, "ms_per_step": {"median", "q1", "q3"}, "ort": VERSION}
// Exit 1 with a message on stderr when anything fails.
'use strict';
const ort = require('onnxruntime-node');

function parseArgs(argv) {
  const a = { model: null, threads: 1, iters: 100, warmup: 10, inputs: {} };
  for (let i = 0; i < argv.length; i++) {
    const s = argv[i];
    if (s === '--threads' || s === '--iters' || s === '--warmup') {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < (s === '--warmup' ? 0 : 1)) {
        throw new Error(`${s} ${argv[i]}: expected a whole number`);
      }
      a[s.slice(2)] = v;
    } else if (s.includes('=')) {
      const eq = s.indexOf('=');
      const dims = s.slice(eq + 1).split(',').map(Number);
      if (dims.some((d) => !Number.isInteger(d) || d < 1)) {
        throw new Error(`input ${s}: expected NAME=D0,D1,... with positive dimensions`);
      }
      a.inputs[s.slice(0, eq)] = dims;
    } else if (a.model === null) {
      a.model = s;
    } else {
      throw new Error(`unexpected argument ${s}`);
    }
  }
  if (a.model === null) throw new Error('usage: ort_bench.js MODEL.onnx --threads T --iters N ' +
                                        '--warmup W NAME=D0,D1,...');
  return a;
}

// A small seeded generator (xorshift32): the same input in every run, without a dependency.
function uniform(n, seed) {
  const out = new Float32Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    out[i] = x / 4294967296;
  }
  return out;
}

function quantile(sorted, q) {
  const pos = (sorted.length - 1) * q;  // linear interpolation, as numpy.percentile's default
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const session = await ort.InferenceSession.create(a.model, {
    intraOpNumThreads: a.threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
  });
  const feeds = {};
  for (const name of session.inputNames) {
    const dims = a.inputs[name];
    if (!dims) throw new Error(`${a.model}: input "${name}" has no NAME=D0,D1,... argument`);
    feeds[name] = new ort.Tensor('float32', uniform(dims.reduce((p, d) => p * d, 1), 1), dims);
  }
  for (let i = 0; i < a.warmup; i++) await session.run(feeds);
  const ms = [];
  for (let i = 0; i < a.iters; i++) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  ms.sort((x, y) => x - y);
  const version = require('onnxruntime-node/package.json').version;
  console.log(JSON.stringify({
    threads: a.threads, iters: a.iters, warmup: a.warmup, ort: version,
    ms_per_step: { median: quantile(ms, 0.5), q1: quantile(ms, 0.25), q3: quantile(ms, 0.75) },
  }));
}

main().catch((e) => {
  console.error(`ort_bench: ${e.message}`);
  process.exit(1);
});
