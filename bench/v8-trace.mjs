// What V8 does besides running the Workers' code, under the edge bench's load: the release Rust
// Worker as production runs it (the front Worker, the whole Worker behind it) and the JavaScript
// Worker doing the same work, each in a workerd of its own started with
// V8's --trace-gc and --trace-wasm-compilation-times (Miniflare passes MINIFLARE_WORKERD_V8_FLAGS
// to workerd), a valid key with its grant in KV, oha at a fixed rate after 3 s of warm-up. Prints,
// per Worker, the latency, the garbage collections of the loaded seconds by kind (count and
// main-thread pause; every isolate of that workerd, the simulators' included, which both have),
// the same per isolate (V8 names each by its address; which one is the Worker's is not told), and
// the wasm functions compiled in those seconds, by tier (count, time, the longest).
// Usage: node bench/v8-trace.mjs [RATE=300] [SECONDS=8] [BUILD_DIR=build]
// One run is one sample: the latencies of a single run say little (BENCHMARKS.md); the counts
// are what it is for.

import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { ALLOWED_IPS, CLIENT_IP, OHA, createFreshKey, root, startOrigin, startWorker } from "./harness.mjs";

const [rate = "300", seconds = "8", buildDir = `${root}build`] = process.argv.slice(2);
const JWT_SECRET = randomBytes(24).toString("hex");
const HOST = "bench.localhost";

process.env.MINIFLARE_WORKERD_V8_FLAGS = "--trace-gc --trace-wasm-compilation-times";
const origin = await startOrigin();

async function traced(label, scriptPath, front) {
  const lines = [];
  let recording = false;
  const worker = await startWorker({
    originUrl: origin.url, jwtSecret: JWT_SECRET, scriptPath, rateLimit: { limit: 1_000_000_000 }, usageQueue: true, front,
    onLogLine: (line) => { if (recording && /(Scavenge|Mark-Compact|Mark-sweep|Minor Mark|Compiled function)/.test(line)) lines.push(line); },
  });
  return { label, worker, lines, record: (on) => { recording = on; } };
}

const rust = await traced("rust", `${buildDir}/front/index.js`, { behind: `${buildDir}/index.js` });
const js = await traced("js-same-work", `${root}bench/baseline-worker-same-work.js`);

// A key made through the Rust Worker's API, its grant fresh all day, given to both (as edge.mjs).
const { key, cacheName, written } = await createFreshKey(rust.worker, { host: HOST, tenant: "bench", jwtSecret: JWT_SECRET, allowedIps: ALLOWED_IPS, name: "gc" });
await js.worker.kv.put(cacheName, JSON.stringify(written));

const oha = (w, secs) => new Promise((resolve, reject) => execFile(OHA, ["-z", `${secs}s`, "-w", "-q", rate, "--latency-correction", "-c", "32",
  "--no-tui", "--output-format", "json", "-H", `Host: ${HOST}`, "-H", `X-Api-Key: ${key}`, "-H", `CF-Connecting-IP: ${CLIENT_IP}`,
  `http://127.0.0.1:${w.worker.port}/crm/contacts?page=2`], { maxBuffer: 1 << 26 }, (e, out) => (e ? reject(e) : resolve(JSON.parse(out)))));

for (const w of [rust, js]) {
  await oha(w, 3); // warm up: the JIT, the wasm tiers, the KV entries
  w.record(true);
  const result = await oha(w, Number(seconds));
  w.record(false);
  const p = result.latencyPercentiles;
  const kinds = new Map();
  const isolates = new Map();
  const tiers = new Map();
  for (const line of w.lines) {
    const compiled = line.match(/using (\w+), took (\d+) μs/);
    if (compiled) {
      const t = tiers.get(compiled[1]) ?? { count: 0, micros: 0, longest: 0 };
      t.count++;
      t.micros += Number(compiled[2]);
      t.longest = Math.max(t.longest, Number(compiled[2]));
      tiers.set(compiled[1], t);
      continue;
    }
    const kind = (line.match(/(Scavenge|Mark-Compact|Mark-sweep|Minor Mark-Sweep|Minor Mark-Compact)/) ?? ["?"])[0];
    // "..., 12.3 / 4.5 ms": the pause, then the mutator's share of the collection's work.
    const pause = Number((line.match(/,\s*([\d.]+)\s*\/\s*([\d.]+)\s*ms/) ?? [])[1] ?? NaN);
    // "[pid:0x…]": the isolate the collection was in.
    const isolate = (line.match(/\[\d+:(0x[0-9a-f]+)\]/) ?? [])[1] ?? "?";
    for (const [map, name] of [[kinds, kind], [isolates, isolate]]) {
      const k = map.get(name) ?? { count: 0, pause: 0, longest: 0 };
      k.count++;
      if (Number.isFinite(pause)) {
        k.pause += pause;
        k.longest = Math.max(k.longest, pause);
      }
      map.set(name, k);
    }
  }
  console.log(`\n${w.label}: ${result.summary.requestsPerSec.toFixed(0)} req/s over ${seconds} s, p50 ${(p.p50 * 1000).toFixed(2)} p99 ${(p.p99 * 1000).toFixed(2)} p99.9 ${(p["p99.9"] * 1000).toFixed(2)} ms; statuses ${JSON.stringify(result.statusCodeDistribution)}`);
  for (const [kind, k] of kinds) console.log(`  GC ${kind}: ${k.count} collections, ${k.pause.toFixed(1)} ms of pause, the longest ${k.longest.toFixed(1)} ms`);
  const byPause = [...isolates].sort((a, b) => b[1].pause - a[1].pause);
  for (const [isolate, k] of byPause) console.log(`    isolate ${isolate}: ${k.count} collections, ${k.pause.toFixed(1)} ms of pause, the longest ${k.longest.toFixed(1)} ms`);
  if (!tiers.size) console.log("  wasm compiled: none");
  for (const [tier, t] of tiers) console.log(`  wasm compiled with ${tier}: ${t.count} functions, ${(t.micros / 1000).toFixed(1)} ms, the longest ${(t.longest / 1000).toFixed(1)} ms`);
}
for (const w of [rust, js]) await w.worker.mf.dispose();
origin.server.close();
