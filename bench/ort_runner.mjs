// ort_runner.mjs — runs an ONNX export of a uflow model (tools/uflow_onnx.py) with ONNX Runtime's
// CPU execution provider (npm onnxruntime-node), for bench/vs_ort.py.
//
//   node bench/ort_runner.mjs --ort DIR --model M.onnx run --input IN.safetensors --out OUT.safetensors [--threads T]
//   node bench/ort_runner.mjs --ort DIR --model M.onnx bench [--batch B] [--threads T] [--iters N] [--warmup W]
//                             [--profile PREFIX]
//
// DIR is a folder where `npm install onnxruntime-node` was run (bench/vs_ort.py makes and caches
// it). `run` feeds IN's 'image' (float32 [B,3,H,W], the file `uflow infer --tensor` takes) and
// writes every graph output as float32 safetensors. `bench` times session.run on a seeded N(0,1)
// input like `uflow bench` and prints one JSON line with the same field names. --profile writes
// ORT's own per-node trace (PREFIX_<date>.json, Chrome trace format) and adds a per-op-type
// summary of the timed runs to the JSON line ("ops": {type: ms per run}).
//
// Session options are the ones the comparison is defined with: graph optimisation "all",
// sequential execution, intra-op threads = T, inter-op threads = 1, CPU EP only.
import { createRequire } from "node:module";
import { readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { performance } from "node:perf_hooks";

function usage(msg) {
  if (msg) process.stderr.write(`ort_runner: ${msg}\n`);
  process.stderr.write("usage: node ort_runner.mjs --ort DIR --model M.onnx (run --input IN --out OUT | bench [--batch B]\n" +
                       "       [--threads T] [--iters N] [--warmup W])\n");
  process.exit(2);
}

function parseArgs(argv) {
  const o = { batch: 1, threads: 2, iters: 20, warmup: 3 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "run" || a === "bench") { o.cmd = a; continue; }
    if (!a.startsWith("--") || i + 1 >= argv.length) usage(`bad argument ${a}`);
    o[a.slice(2)] = argv[++i];
  }
  for (const k of ["batch", "threads", "iters", "warmup"]) {
    const v = Number(o[k]);
    if (!Number.isInteger(v) || v < (k === "warmup" ? 0 : 1)) usage(`--${k} must be a positive integer`);
    o[k] = v;
  }
  if (!o.ort || !o.model || !o.cmd) usage("--ort, --model and a command are required");
  if (o.cmd === "run" && (!o.input || !o.out)) usage("run needs --input and --out");
  return o;
}

// safetensors: u64 LE header length, JSON header, raw little-endian data
function readImage(path) {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const hdr = JSON.parse(buf.subarray(8, 8 + n).toString("utf8"));
  const t = hdr.image;
  if (!t || t.dtype !== "F32" || t.shape.length !== 4) throw new Error(`${path}: no F32 [B,3,H,W] 'image'`);
  const [b, e] = t.data_offsets;
  const bytes = buf.subarray(8 + n + b, 8 + n + e);
  // copy: the Float32Array must be 4-byte aligned, the slice of the file need not be
  const data = new Float32Array(bytes.length / 4);
  new Uint8Array(data.buffer).set(bytes);
  return { data, dims: t.shape };
}

function writeSafetensors(path, tensors) {
  const hdr = { __metadata__: { producer: "bench/ort_runner.mjs" } };
  let off = 0;
  for (const [name, t] of Object.entries(tensors)) {
    hdr[name] = { dtype: "F32", shape: t.dims.map(Number), data_offsets: [off, off + t.data.byteLength] };
    off += t.data.byteLength;
  }
  let json = JSON.stringify(hdr);
  json += " ".repeat((8 - (json.length % 8)) % 8);
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(BigInt(json.length));
  const parts = [head, Buffer.from(json, "utf8")];
  for (const t of Object.values(tensors)) parts.push(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  writeFileSync(path, Buffer.concat(parts));
}

// the same xorshift64 + Box-Muller stream as cli/cmd_bench.c (any N(0,1) would do)
function gaussian(n) {
  const x = new Float32Array(n);
  let s = 0x9E3779B97F4A7C15n;
  const M = (1n << 64n) - 1n;
  const next = () => {
    s ^= (s << 13n) & M; s ^= s >> 7n; s ^= (s << 17n) & M;
    return (Number(s >> 11n) + 0.5) / 9007199254740992.0;
  };
  for (let i = 0; i < n; i += 2) {
    const u0 = next(), u1 = next(), r = Math.sqrt(-2 * Math.log(u0));
    x[i] = r * Math.cos(2 * Math.PI * u1);
    if (i + 1 < n) x[i + 1] = r * Math.sin(2 * Math.PI * u1);
  }
  return x;
}

function pct(sorted, p) {
  const i = Math.ceil((p / 100) * sorted.length) - 1;
  return sorted[Math.min(Math.max(i, 0), sorted.length - 1)];
}

// endProfiling() names the trace in some versions and returns nothing in others: then the newest
// PREFIX_* file is it
function profileFile(sess, prefix) {
  const f = sess.endProfiling();
  if (typeof f === "string" && f) return f;
  const dir = dirname(prefix), base = basename(prefix) + "_";
  const cands = readdirSync(dir === "" ? "." : dir).filter((n) => n.startsWith(base) && n.endsWith(".json"))
    .map((n) => join(dir, n)).sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  if (!cands.length) throw new Error(`no profile file ${prefix}_*.json`);
  return cands[0];
}

// ms per run by op type over the timed runs (the trace's node events after the warm-up runs)
function opSummary(file, warmup, iters, r3) {
  const ev = JSON.parse(readFileSync(file, "utf8"));
  const runs = ev.filter((e) => e.name === "model_run").sort((a, b) => a.ts - b.ts);
  const t0 = runs.length > warmup ? runs[warmup].ts : 0;
  const by = {};
  for (const e of ev) {
    if (e.cat !== "Node" || e.ts < t0 || !e.name.endsWith("_kernel_time")) continue;
    const k = e.args?.op_name ?? "?";
    by[k] = (by[k] ?? 0) + e.dur / 1e3 / iters;
  }
  return Object.fromEntries(Object.entries(by).sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, r3(v)]));
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const ort = createRequire(join(o.ort, "package.json"))("onnxruntime-node");
  const t0 = performance.now();
  const opts = {
    executionProviders: ["cpu"], graphOptimizationLevel: "all", executionMode: "sequential",
    intraOpNumThreads: o.threads, interOpNumThreads: 1,
  };
  if (o.profile) Object.assign(opts, { enableProfiling: true, profileFilePrefix: o.profile });
  const sess = await ort.InferenceSession.create(o.model, opts);
  const sessionMs = performance.now() - t0;
  const inName = sess.inputNames[0];
  if (o.cmd === "run") {
    const img = readImage(o.input);
    const res = await sess.run({ [inName]: new ort.Tensor("float32", img.data, img.dims) });
    const out = {};
    for (const k of sess.outputNames) out[k] = res[k];
    writeSafetensors(o.out, out);
    return;
  }
  const meta = sess.inputMetadata?.[0];
  const shape = meta?.shape;
  const [H, W] = shape && typeof shape[2] === "number" ? [shape[2], shape[3]] : [Number(o.height), Number(o.width)];
  if (!(H > 0 && W > 0)) usage("the model's input size is not in its metadata: pass --height and --width");
  const feeds = { [inName]: new ort.Tensor("float32", gaussian(o.batch * 3 * H * W), [o.batch, 3, H, W]) };
  const lat = [];
  for (let i = 0; i < o.warmup + o.iters; i++) {
    const s = performance.now();
    await sess.run(feeds);
    if (i >= o.warmup) lat.push(performance.now() - s);
  }
  const tot = lat.reduce((a, b) => a + b, 0);
  lat.sort((a, b) => a - b);
  const r3 = (v) => Math.round(v * 1000) / 1000;
  const extra = {};
  if (o.profile) extra.ops = opSummary(profileFile(sess, o.profile), o.warmup, o.iters, r3);
  process.stdout.write(JSON.stringify({
    impl: "ort", ort_version: ort.env.versions?.node ?? "?", model: o.model, input: [H, W], batch: o.batch,
    threads: o.threads, iters: o.iters, session_ms: r3(sessionMs), mean_ms: r3(tot / o.iters),
    p50_ms: r3(pct(lat, 50)), p90_ms: r3(pct(lat, 90)), p99_ms: r3(pct(lat, 99)),
    images_per_s: r3((o.batch * o.iters) / (tot / 1e3)), ...extra,
  }) + "\n");
}

main().catch((e) => { process.stderr.write(`ort_runner: ${e?.message ?? e}\n`); process.exit(1); });
