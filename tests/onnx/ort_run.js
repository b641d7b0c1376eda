// ort_run.js — run an ONNX model in ONNX Runtime (npm's onnxruntime-node) on .npy inputs and
// write each output as .npy: the reference that tests/onnx/export_roundtrip.py compares
// `dagnet export`'s files against.
//
//   NODE_PATH=DIR/node_modules node tests/onnx/ort_run.js MODEL.onnx OUT_PREFIX NAME=IN.npy ...
//
// Output i goes to OUT_PREFIX.i.npy; float32 and int32 arrays (little-endian, C order) only.
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

function readNpy(path) {
  const b = fs.readFileSync(path);
  if (b.toString('latin1', 1, 6) !== 'NUMPY') throw new Error(`${path}: not a .npy file`);
  const major = b[6];
  const hlen = major === 1 ? b.readUInt16LE(8) : b.readUInt32LE(8);
  const start = (major === 1 ? 10 : 12) + hlen;
  const header = b.toString('latin1', major === 1 ? 10 : 12, start);
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(',').filter((s) => s.trim())
    .map(Number);
  const data = b.subarray(start);
  const copy = new ArrayBuffer(data.length);
  new Uint8Array(copy).set(data);
  if (descr === '<f4') return new ort.Tensor('float32', new Float32Array(copy), shape);
  if (descr === '<i4') return new ort.Tensor('int32', new Int32Array(copy), shape);
  throw new Error(`${path}: dtype ${descr} is not read`);
}

function writeNpy(path, t) {
  const descr = t.type === 'float32' ? '<f4' : t.type === 'int32' ? '<i4' : null;
  if (!descr) throw new Error(`output of type ${t.type}`);
  const shape = t.dims.length === 1 ? `${t.dims[0]},` : t.dims.join(', ');
  let h = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape}), }`;
  h += ' '.repeat((64 - ((10 + h.length + 1) % 64)) % 64) + '\n';
  const pre = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, h.length & 0xff, h.length >> 8]);
  const body = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  fs.writeFileSync(path, Buffer.concat([pre, Buffer.from(h, 'latin1'), body]));
}

async function main() {
  const [model, prefix, ...feeds] = process.argv.slice(2);
  if (!model || !prefix) throw new Error('usage: ort_run.js MODEL.onnx OUT_PREFIX NAME=IN.npy ...');
  const session = await ort.InferenceSession.create(model, { intraOpNumThreads: 1 });
  const inputs = {};
  for (const f of feeds) {
    const eq = f.indexOf('=');
    inputs[f.slice(0, eq)] = readNpy(f.slice(eq + 1));
  }
  const out = await session.run(inputs);
  session.outputNames.forEach((name, i) => writeNpy(`${prefix}.${i}.npy`, out[name]));
}

main().catch((e) => {
  console.error(`ort_run: ${e.message}`);
  process.exit(1);
});
