// "A benchmark that measures the Worker, not the machine": the release Rust Worker against the
// JavaScript Worker that does the same work (bench/baseline-worker-same-work.js), side by side in
// one run, in workerd through Miniflare's API, all traffic on 127.0.0.1.
//
// The Rust Worker runs as in production: the front Worker (wrangler.front.toml, build/front/),
// with the whole Worker (build/) behind its service binding in the same workerd; every measured
// request is answered by the front Worker, whose isolate is the one profiled.
//
// Cases: gateway-valid-key (the Rust Worker, a valid key with an allow-list, its grant in KV,
// forwarded), js-same-work (the JavaScript Worker, the same key and grant), and two rejections by
// the Rust Worker, malformed-key and unknown-key-cached (a well-formed key that KV's negative
// entry refuses), and js-unknown-key-cached, the JavaScript Worker refusing that same key (a
// reference for unknown-key-cached: both await the rate limiter's count, which the acceptances
// do not). Every case runs on Workers of its own, each pair in a workerd of its own, so that
// every isolate and every process serves one case's traffic alone: sharing one with the
// rejections' thousands of requests a round (their garbage, the handler's path) doubled a
// valid-key case's p99 against the same build on an isolate of its own, and the tail of any
// Worker here grows with the requests its workerd has served (`node bench/stalls.mjs 300 12 4
// floor`: a forward-only JavaScript Worker's p99 went from 11.7 to 43.7 ms over four 12 s phases;
// BENCHMARKS.md), so a process that served two cases would have a longer tail than one that
// served one.
//
// Every Worker of a round is started afresh for it and disposed of after it, so that each round
// samples new processes as well as the machine's moment: the tail, and the isolate's CPU, belong
// to the workerd process as much as to the Worker (BENCHMARKS.md, fifth session).
//
// Each of BENCH_ROUNDS rounds (default 10) runs every case in three phases, phase by phase, each
// phase starting one case further on than in the round before and in the reverse order every
// other round, so that no case always follows the same one, each half of a pair goes first in
// half the rounds, and the two halves are measured seconds apart:
//   1. isolate CPU per request: a V8 CPU profile of the Worker's own isolate (its inspector), over
//      a fixed number of requests sent at the fixed rate below (BENCH_CPU_SECONDS' worth), open
//      loop, so that both Workers are measured at the same load. Only the Worker's isolate is
//      sampled: Miniflare's simulators of KV, Queues and the rate limiter, and its entry Worker
//      that routes every request, are other isolates; the one piece of simulator code that runs
//      inside it (the rate limiter's binding) is left out (see isolateBusy). This phase runs on a
//      second set of Workers, started with the inspector; the other two on Workers without one.
//   2. latency at a fixed arrival rate: oha, open loop, BENCH_LATENCY_SECONDS at BENCH_RATE
//      requests a second, latency counted from when each request was due (--latency-correction,
//      so that a stall is not hidden by the requests it held back); p50, p99, p99.9. 12 s, about
//      5,500 requests at the usual rate, so that a phase's p99 is its 55th slowest request: in
//      4 s phases it was the 18th, which one stall of workerd's (BENCHMARKS.md) decided. The
//      rate is BENCH_RATE_FRACTION (0.5) of js-same-work's saturation throughput, measured once
//      before the rounds with wrk (closed loop, 10 connections, 3 s), unless BENCH_RATE is given.
//   3. throughput: wrk, closed loop, 10 connections, BENCH_THROUGHPUT_SECONDS, as bench/run.mjs.
// A phase whose responses were not all the expected status (200 for a valid key, 401 for a
// rejection) does not count, and is reported. Every figure compared is a ratio within one round
// (a paired sample: both halves saw the same state of the machine); the point estimate is the
// median over rounds, with a 95 % percentile-bootstrap interval (10,000 resamples of the rounds,
// seeded, so that a run's report can be recomputed).
// Usage: make bench [BENCH_SUITE=edge] [BENCH_ROUNDS=10] [BENCH_CPU_SECONDS=3]
//   [BENCH_LATENCY_SECONDS=12] [BENCH_THROUGHPUT_SECONDS=3] [BENCH_RATE=req/s] [BENCH_SEED=1]
//   [BENCH_STARTUP_SAMPLES=6: cold starts of each Worker after the rounds, in alternating order]
//   [BENCH_PROFILE_DIR=dir: keep each CPU phase's profile there, for bench/profile-compare.mjs]
//   [BENCH_OTHER_BUILD=dir: a copy of another release build/ (index.js, rust.mjs, index_bg.wasm),
//    run alone as a whole Worker and measured as case other-gateway-valid-key beside
//    gateway-valid-key, with a key of its own made through its own API: a change to the build (a
//    compiler option, say) paired with this one; BENCH_OTHER_BUILD=build/ is this build's whole
//    Worker alone, as plain `wrangler dev` runs it]
//   [BENCH_OTHER_SHAPE=front: run the other build as gateway-valid-key runs, its front Worker
//    (dir/front/) with its whole Worker behind it: a change to the fast path, paired]
// Writes its report to stdout and to .bench/edge-<time>.md.

import { execFile, execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { gzipSync } from "node:zlib";
import {
  ALLOWED_IPS, CLIENT_IP, OHA, cacheEntryName, compatibilityDate, cpuMicros, createFreshKey, releaseScripts, request, root, shareKey,
  startOrigin, startWorker,
} from "./harness.mjs";
import { EDGE_RATIOS, bootstrap, median } from "./stats.mjs";

const number = (name, fallback) => {
  const value = process.env[name] === undefined || process.env[name] === "" ? fallback : Number(process.env[name]);
  if (!(value > 0)) {
    console.error(`${name}: a positive number, please`);
    process.exit(2);
  }
  return value;
};
const ROUNDS = Math.round(number("BENCH_ROUNDS", 10));
const CPU_SECONDS = number("BENCH_CPU_SECONDS", 3);
const LATENCY_SECONDS = number("BENCH_LATENCY_SECONDS", 12);
const THROUGHPUT_SECONDS = number("BENCH_THROUGHPUT_SECONDS", 3);
const SATURATION_SECONDS = 3;
const RATE_FRACTION = number("BENCH_RATE_FRACTION", 0.5);
const SEED = Math.round(number("BENCH_SEED", 1));
const STARTUP_SAMPLES = Math.round(number("BENCH_STARTUP_SAMPLES", 6));
const RESAMPLES = 10_000;
const PROFILE_DIR = process.env.BENCH_PROFILE_DIR;
const OTHER_BUILD = process.env.BENCH_OTHER_BUILD ? process.env.BENCH_OTHER_BUILD.replace(/\/?$/, "/") : undefined;
const OTHER_FRONT = process.env.BENCH_OTHER_SHAPE === "front";
if (!["front", "whole", undefined].includes(process.env.BENCH_OTHER_SHAPE)) {
  console.error("BENCH_OTHER_SHAPE: front or whole");
  process.exit(2);
}
let profilesKept = 0;
const WRK_CONNECTIONS = 10;
// Enough for the fixed rate with latencies far above the usual: oha sends each request when it
// is due on any free connection, and counts a wait for a free one as latency.
const OPEN_LOOP_CONNECTIONS = 32;
// V8's sampler period asked for, in µs (it gets about 1.6 times that on this kind of machine).
const SAMPLING_INTERVAL_US = 100;
const JWT_SECRET = randomBytes(24).toString("hex");
const TENANT = "bench";
const HOST = `${TENANT}.localhost`;
const PATH = "/crm/contacts?page=2";
// High enough that the rejection cases measure the 401 path throughout, never the 429 one; the
// limiter is still called for every 401, as in production.
const RATE_LIMIT = { limit: 1_000_000_000 };
const runStarted = Date.now();

// ---- processes, without ever showing a key -----------------------------------------------------
// The key is in the load generators' arguments; an error message of execFile would quote them.
const secrets = [];
const redact = (text) => secrets.reduce((t, s) => t.replaceAll(s, "[redacted]"), String(text));
function run(command, args) {
  return new Promise((resolve, reject) => {
    // Asynchronous, so that Node keeps draining workerd's output pipes meanwhile.
    execFile(command, args.map(String), { maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${command} failed (${error.code ?? error.signal}): ${redact(stderr).slice(0, 500)}`));
      else resolve(stdout);
    });
  });
}
const progress = (line) => console.error(redact(line));

// ---- the Workers -------------------------------------------------------------------------------
// Two sets, both new each round: profiled Workers, with V8's inspector, for the CPU phase, and
// plain ones for the latency and throughput phases. An inspector costs the Worker even when it
// is not profiling (measured here: about 8 % more workerd CPU per malformed-key request, about
// 0.1 ms), so the phases that time requests run without one. The CPU phase cannot: its figures
// include that cost for both Workers alike (each logs one line per request), which pulls its
// ratios a little towards 1.
const origin = await startOrigin();
// The Rust Worker as production runs it: the front Worker (build/front/), with the whole Worker
// (build/) behind its service binding, both in one workerd. Every case's requests are answered by
// the front Worker's isolate, which is the one profiled; the whole Worker only makes the keys.
const { front: rustScript, whole: wholeScript } = releaseScripts;
const jsScript = `${root}bench/baseline-worker-same-work.js`;
const start = (scriptPath, inspect, front) => startWorker({
  originUrl: origin.url, jwtSecret: JWT_SECRET, scriptPath, inspect, rateLimit: RATE_LIMIT, usageQueue: true, front,
});
const startRust = (inspect) => start(rustScript, inspect, { behind: wholeScript });
const startOther = (inspect) => OTHER_FRONT
  ? start(`${OTHER_BUILD}front/index.js`, inspect, { behind: `${OTHER_BUILD}index.js` })
  : start(`${OTHER_BUILD}index.js`, inspect);
/// One Worker of each case, each in a workerd of its own.
async function workersOf(inspect) {
  const pair = {
    rust: await startRust(inspect), js: await start(jsScript, inspect), malformed: await startRust(inspect),
    rejections: await startRust(inspect), jsRejections: await start(jsScript, inspect),
    ...(OTHER_BUILD ? { other: await startOther(inspect) } : {}),
  };
  [pair.rust.label, pair.js.label, pair.malformed.label, pair.rejections.label, pair.jsRejections.label] = ["rust", "js-same-work", "rust-malformed", "rust-rejections", "js-rejections"];
  if (pair.other) pair.other.label = "other";
  return pair;
}
const workersIn = (pair) => [pair.rust, pair.js, pair.malformed, pair.rejections, pair.jsRejections, pair.other].filter(Boolean);
// Both sets are started afresh for each round (`profiled` and `plain`, below) and disposed of
// after it. Two workerd processes of the same build differ by more than the two Workers do: in
// their tails (runs 16 and 17 in BENCHMARKS.md: 0.86 and 1.29 for the p99 ratio, one build, each
// case on one process for the whole run) and in their isolate's CPU (runs 21 to 23:
// js-same-work's median 484, 416 and 430 µs a request on profiled Workers kept for the run). So
// each round is a sample of new processes too, and the interval over rounds holds the spread
// between processes.
let profiled;
let plain;

/// A DevTools session on the Worker's isolate. Each Miniflare has an inspector of its own, which
/// lists the Worker (title "Cloudflare Worker", id ending in its name); the target is looked up
/// for each Worker, never assumed.
async function inspectorSession(worker) {
  const base = (await worker.mf.getInspectorURL()).href.replace("ws:", "http:");
  const targets = await (await fetch(`${base}json`)).json();
  const target = targets.find((t) => t.id?.endsWith(`-${worker.workerName}`)) ?? (targets.length === 1 ? targets[0] : undefined);
  if (!target) throw new Error(`${worker.label}: no inspector target for the Worker among ${targets.length}`);
  // The inspector proxy accepts DevTools clients from a local origin only.
  const socket = new WebSocket(target.webSocketDebuggerUrl, { headers: { origin: "http://localhost" } });
  socket.binaryType = "arraybuffer";
  await new Promise((resolve, reject) => { socket.onopen = resolve; socket.onerror = reject; });
  let nextId = 1;
  const pending = new Map();
  socket.onmessage = (event) => {
    const message = JSON.parse(typeof event.data === "string" ? event.data : new TextDecoder().decode(event.data));
    const waiting = pending.get(message.id);
    if (!waiting) return;
    pending.delete(message.id);
    if (message.error) waiting.reject(new Error(`${worker.label} inspector: ${message.error.message}`));
    else waiting.resolve(message.result);
  };
  const send = (method, params = {}) => new Promise((resolve, reject) => {
    const id = nextId++;
    pending.set(id, { resolve, reject });
    socket.send(JSON.stringify({ id, method, params }));
  });
  await send("Profiler.enable");
  await send("Profiler.setSamplingInterval", { interval: SAMPLING_INTERVAL_US });
  return { send, close: () => socket.close() };
}
/// A set of Workers with an inspector, a DevTools session open on each.
async function profiledWorkers() {
  const pair = await workersOf(true);
  for (const worker of workersIn(pair)) worker.inspector = await inspectorSession(worker);
  return pair;
}

// ---- the key -----------------------------------------------------------------------------------
/// A key with the allow-list through a Rust Worker's API, its grant fresh all day; the key and
/// its hash are redacted from the report.
async function createKey(worker) {
  const made = await createFreshKey(worker, { host: HOST, tenant: TENANT, jwtSecret: JWT_SECRET, allowedIps: ALLOWED_IPS });
  secrets.push(made.key, made.keyHash);
  return made;
}

// The key that no Worker knows, refused by a negative cache entry. The Rust Workers make theirs
// (a miss, D1, the negative fill, which they renew each minute as it expires: one request a
// minute, which a probe of 75 s at 450 req/s found to be no part of the tail); the JavaScript
// Worker has no D1 lookup, so its entry is put in its KV once, as the Rust Worker writes it (the
// filled place), without an expiry.
const UNKNOWN_KEY = `rk_live_${"ab".repeat(16)}`;
const unknownHash = createHash("sha256").update(UNKNOWN_KEY).digest("hex");
const unknownEntry = cacheEntryName("filled", unknownHash);
const keys = new Map();
/// The key of each role of a pair: the Rust Worker's, given to the JavaScript Worker too (the
/// same grant, and the same row for its usage consumer, which counts only keys its D1 knows, as
/// the Rust one does), and the other build's own; and unknown-key-cached's entry for the
/// JavaScript Worker.
async function prepare(pair) {
  const made = await createKey(pair.rust);
  await shareKey(pair.rust, pair.js, made);
  const key = made.key;
  keys.set(pair, { rust: key, js: key, ...(pair.other ? { other: (await createKey(pair.other)).key } : {}) });
  await pair.jsRejections.kv.put(unknownEntry, JSON.stringify("deny"));
}

// Each case names its Worker by role; a phase picks the pair (profiled for CPU, plain otherwise).
const cases = {
  "gateway-valid-key": { what: "Rust: valid key, allow-list, KV hit, forwarded", role: "rust", valid: true, expect: 200 },
  "js-same-work": { what: "JavaScript doing the same work", role: "js", valid: true, expect: 200 },
  "malformed-key": { what: "Rust: malformed key rejected", role: "malformed", key: "rk_live_not-a-key", expect: 401 },
  "unknown-key-cached": { what: "Rust: unknown key, negative cache entry", role: "rejections", key: UNKNOWN_KEY, expect: 401 },
  "js-unknown-key-cached": { what: "JavaScript: the same unknown key and entry", role: "jsRejections", key: UNKNOWN_KEY, expect: 401 },
  ...(OTHER_BUILD ? { "other-gateway-valid-key": { what: `gateway-valid-key on the build in ${OTHER_BUILD}${OTHER_FRONT ? "front/ (with its whole Worker behind)" : " (its whole Worker alone)"}`, role: "other", valid: true, expect: 200 } } : {}),
};
const NAMES = Object.keys(cases);
const RUST = "gateway-valid-key";
const JS = "js-same-work";
const REJECTIONS = ["malformed-key", "unknown-key-cached"];
const JS_UNKNOWN = "js-unknown-key-cached";
const OTHER = "other-gateway-valid-key";
/// The Worker, key and expected status of a case on a pair of Workers.
const target = (name, pair) => {
  const c = cases[name];
  return { ...c, worker: pair[c.role], key: c.valid ? keys.get(pair)[c.role] : c.key };
};

// ---- load generators ---------------------------------------------------------------------------
const url = (c) => `http://127.0.0.1:${c.worker.port}${PATH}`;

async function wrk(name, seconds, { pair = plain, connections = WRK_CONNECTIONS } = {}) {
  const c = target(name, pair);
  // A 10 s timeout, as run.mjs: a slow response counts in the latencies, not as a socket error.
  const out = await run("wrk", ["-t1", `-c${connections}`, `-d${seconds}s`, "--timeout", "10s", "-s", `${root}bench/wrk/check.lua`,
    "-H", `Host: ${HOST}`, "-H", `X-Api-Key: ${c.key}`, url(c)]);
  const result = JSON.parse(out.split("\n").find((l) => l.startsWith("BENCH ")).slice(6));
  const statuses = result.statuses;
  return {
    rps: result.requests / result.seconds,
    requests: result.requests,
    unexpected: result.requests - (statuses[c.expect] ?? 0) + result.socket_errors,
    statuses: { ...statuses, ...(result.socket_errors ? { socketErrors: result.socket_errors } : {}) },
  };
}

/// oha, open loop at `rate`: a fixed number of requests (`requests`) or a fixed time (`seconds`,
/// waiting for the requests still under way at the end rather than counting them as errors).
async function oha(name, rate, { requests, seconds, pair = plain }) {
  const c = target(name, pair);
  const out = await run(OHA, [
    ...(requests ? ["-n", requests] : ["-z", `${seconds}s`, "-w"]),
    "-q", rate, "--latency-correction", "-c", OPEN_LOOP_CONNECTIONS, "--no-tui", "--output-format", "json",
    "-t", "10s", "-H", `Host: ${HOST}`, "-H", `X-Api-Key: ${c.key}`, "-H", `CF-Connecting-IP: ${CLIENT_IP}`, url(c),
  ]);
  const result = JSON.parse(out);
  const statuses = result.statusCodeDistribution ?? {};
  const errors = Object.values(result.errorDistribution ?? {}).reduce((a, b) => a + b, 0);
  const answered = Object.values(statuses).reduce((a, b) => a + b, 0);
  const p = result.latencyPercentiles ?? {};
  return {
    answered,
    unexpected: answered - (statuses[c.expect] ?? 0) + errors,
    statuses: { ...statuses, ...(errors ? { errors: result.errorDistribution } : {}) },
    p50: p.p50 * 1000,
    p99: p.p99 * 1000,
    p999: p["p99.9"] * 1000,
    rps: result.summary?.requestsPerSec,
  };
}

// ---- isolate CPU -------------------------------------------------------------------------------
/// Miniflare's own simulator code that runs inside the Worker's isolate: locally, the rate limiter's
/// binding is a JavaScript module of Miniflare's (it checks the options, then fetches from a Durable
/// Object that keeps the counts), a stand-in for the real binding. (D1's binding module is workerd's
/// own, the one production runs, and counts; it is not on these cases' paths anyway.)
const SIMULATOR_MODULES = ["cloudflare-internal:ratelimit:module"];

/// The isolate's busy time in one V8 CPU profile, in µs.
/// V8 samples an isolate only while it is entered: a tick of the sampler that finds workerd's
/// thread elsewhere (waiting for I/O, or running another isolate: Miniflare's KV, Queues and rate
/// limiter simulators and its entry Worker all share that thread) records nothing, and the next
/// sample's timeDelta then spans the whole absence. Summing timeDeltas would charge the Worker
/// with that time: measured here, 200 requests spaced 5 ms apart summed to 1.7 s of "busy" time
/// in 2.0 s. So each sample stands for one sampler period instead: busy = samples × period, the
/// period being the peak of the timeDeltas' distribution (back-to-back samples of a busy stretch;
/// about 170 µs for the 100 µs asked for here, more on a loaded machine, so it is taken from each
/// profile itself). A sample counts unless it is "(idle)" or has SIMULATOR_MODULES on its stack:
/// "(program)" is workerd's native code run for the Worker while its isolate is entered (headers,
/// streams, Web Crypto, the KV and queue clients), and "(garbage collector)" is collecting the
/// Worker's garbage; both are the Worker's cost. (Concurrent GC work on V8's helper threads is not
/// sampled, for either Worker.)
function isolateBusy(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parentOf = new Map();
  for (const n of profile.nodes) for (const child of n.children ?? []) parentOf.set(child, n.id);
  const simulated = new Map();
  const isSimulated = (id) => {
    if (id === undefined) return false;
    if (!simulated.has(id)) simulated.set(id, SIMULATOR_MODULES.includes(byId.get(id).callFrame.url) || isSimulated(parentOf.get(id)));
    return simulated.get(id);
  };
  const deltas = profile.timeDeltas;
  let samples = 0;
  let simulator = 0;
  let summed = 0;
  profile.samples.forEach((id, i) => {
    if (byId.get(id).callFrame.functionName === "(idle)") return;
    if (isSimulated(id)) {
      simulator++;
      return;
    }
    samples++;
    summed += deltas[i] ?? 0;
  });
  const period = samplerPeriod(deltas);
  return { busy: samples * period, simulator: simulator * period, samples, period, summed };
}

/// The sampler's period in a profile, in µs. The sampler ticks at a fixed period, and a tick
/// that finds the isolate elsewhere records nothing, so the timeDeltas cluster at whole multiples
/// of the period: back-to-back samples of a busy stretch at 1 ×, a sample after one or two missed
/// ticks at 2 × or 3 ×, and so on. The period is the lowest of those clusters that holds at least
/// a quarter as many deltas as the largest one. (Not simply the largest: where the requests are
/// short, as a rejection's are, few stretches last two ticks, and the 3 × cluster can outweigh
/// the 1 × one; taking it tripled such a case's busy time.) Clusters are 10 µs bins, between half
/// and ten times the interval asked for, each counted with its two neighbours; the period is the
/// median of the deltas within 25 % of the chosen bin.
function samplerPeriod(deltas) {
  const bins = new Map();
  for (const d of deltas) {
    if (d >= SAMPLING_INTERVAL_US / 2 && d <= SAMPLING_INTERVAL_US * 10) bins.set(Math.round(d / 10), (bins.get(Math.round(d / 10)) ?? 0) + 1);
  }
  const weight = (bin) => (bins.get(bin - 1) ?? 0) + (bins.get(bin) ?? 0) + (bins.get(bin + 1) ?? 0);
  const heaviest = Math.max(0, ...[...bins.keys()].map(weight));
  const lowest = [...bins.keys()].sort((a, b) => a - b).find((bin) => weight(bin) >= heaviest / 4);
  if (lowest === undefined) return SAMPLING_INTERVAL_US;
  // Up to the cluster's top, not its lower edge.
  let peak = lowest;
  while (weight(peak + 1) > weight(peak)) peak++;
  const near = deltas.filter((d) => Math.abs(d - peak * 10) <= peak * 10 * 0.25);
  return near.length ? median(near) : SAMPLING_INTERVAL_US;
}

async function cpuPhase(name, rate) {
  const c = target(name, profiled);
  const requests = Math.max(100, Math.round(rate * CPU_SECONDS));
  const processBefore = cpuMicros(c.worker.pid);
  await c.worker.inspector.send("Profiler.start");
  const load = await oha(name, rate, { requests, pair: profiled });
  const { profile } = await c.worker.inspector.send("Profiler.stop");
  const processCpu = cpuMicros(c.worker.pid) - processBefore;
  // BENCH_PROFILE_DIR keeps every CPU phase's profile (for bench/profile-compare.mjs).
  if (PROFILE_DIR) writeFileSync(`${PROFILE_DIR}/${name}-${++profilesKept}.cpuprofile`, JSON.stringify(profile));
  const busy = isolateBusy(profile);
  return {
    cpu: busy.busy / load.answered,
    simulator: busy.simulator / load.answered,
    period: busy.period,
    summed: busy.summed / load.answered,
    // workerd's whole process (the simulators, Miniflare's entry Worker and the network included),
    // with the profiler running: information only.
    process: processCpu / load.answered,
    unexpected: load.unexpected,
    statuses: load.statuses,
  };
}

// ---- the run -----------------------------------------------------------------------------------
const loadAverage = () => loadavg().map((l) => l.toFixed(2)).join(" ");
const loadAtStart = loadAverage();
progress(`edge: warming up (load average ${loadAtStart})`);
/// Warms the isolates of a pair (the JIT, the wasm tiers), the KV entries and the negative entry
/// of unknown-key-cached, and each Worker's usage queue, with 2 s of every case it has; then
/// checks that the valid key is admitted.
async function warm(pair, names = NAMES) {
  for (const name of names) await wrk(name, 2, { pair, connections: 2 });
  for (const name of names.filter((n) => cases[n].valid)) {
    const c = target(name, pair);
    const check = await request(c.worker.port, "GET", HOST, PATH, { "x-api-key": c.key, "cf-connecting-ip": CLIENT_IP });
    if (check.status !== 200) throw new Error(`${name}: a request with the valid key answered ${check.status}`);
  }
}
// js-same-work's saturation, on Workers of their own (so that no round's Workers have served it).
const saturated = { rust: await startRust(false), js: await start(jsScript, false) };
const saturatedKey = await createKey(saturated.rust);
await shareKey(saturated.rust, saturated.js, saturatedKey);
keys.set(saturated, { js: saturatedKey.key });
await warm(saturated, [JS]);
const saturation = await wrk(JS, SATURATION_SECONDS, { pair: saturated });
for (const worker of [saturated.rust, saturated.js]) await worker.mf.dispose();
if (saturation.unexpected) throw new Error(`${JS}: unexpected statuses while measuring saturation: ${JSON.stringify(saturation.statuses)}`);
const RATE = process.env.BENCH_RATE ? number("BENCH_RATE", 0) : Math.max(10, Math.round(saturation.rps * RATE_FRACTION));
progress(`edge: ${JS} saturates at ${saturation.rps.toFixed(0)} req/s (wrk -c${WRK_CONNECTIONS}, ${SATURATION_SECONDS} s); fixed rate ${RATE} req/s`);

const phases = {
  cpu: (name) => cpuPhase(name, RATE),
  latency: (name) => oha(name, RATE, { seconds: LATENCY_SECONDS }),
  throughput: (name) => wrk(name, THROUGHPUT_SECONDS),
};
// results[phase][case][round]: the phase's result, or null when it did not count.
const results = Object.fromEntries(Object.keys(phases).map((phase) => [phase, Object.fromEntries(NAMES.map((n) => [n, []]))]));
const notCounted = [];
// Did both Workers count their usage through their queues into D1? (A check that the JavaScript
// Worker does that work too, not a measurement.) Summed over every Worker before it is disposed of.
const usageRows = async (w) => (await w.db.prepare("SELECT COALESCE(SUM(allowed), 0) AS n FROM api_key_usage").first()).n;
const usage = { rust: 0, js: 0 };
const countUsage = async (pair) => {
  usage.rust += await usageRows(pair.rust);
  usage.js += await usageRows(pair.js);
};
for (let round = 0; round < ROUNDS; round++) {
  profiled = await profiledWorkers();
  plain = await workersOf(false);
  for (const pair of [profiled, plain]) {
    await prepare(pair);
    await warm(pair);
  }
  // Rotated, and reversed every other round: rotation alone kept each case's neighbours, so
  // gateway-valid-key ran just before js-same-work in four rounds of five.
  const rotated = [...NAMES.slice(round % NAMES.length), ...NAMES.slice(0, round % NAMES.length)];
  const order = round % 2 === 0 ? rotated : rotated.reverse();
  for (const [phase, measure] of Object.entries(phases)) {
    for (const name of order) {
      const r = await measure(name);
      const counted = r.unexpected === 0;
      results[phase][name][round] = counted ? r : null;
      if (!counted) notCounted.push({ round: round + 1, phase, name, statuses: r.statuses });
      const figure = phase === "cpu" ? `${r.cpu.toFixed(0)} µs/req isolate (sampler period ${r.period.toFixed(0)} µs)`
        : phase === "latency" ? `p50 ${r.p50.toFixed(2)} p99 ${r.p99.toFixed(2)} p99.9 ${r.p999.toFixed(2)} ms`
          : `${r.rps.toFixed(0)} req/s`;
      progress(`round ${round + 1}/${ROUNDS} ${phase} ${name}: ${figure}${counted ? "" : ` NOT COUNTED, statuses ${JSON.stringify(r.statuses)}`}`);
    }
  }
  for (const pair of [profiled, plain]) {
    await countUsage(pair);
    for (const w of workersIn(pair)) {
      w.inspector?.close();
      await w.mf.dispose();
    }
    keys.delete(pair);
  }
}
const loadAtEnd = loadAverage();

// Start-up: a new Miniflare to ready (workerd started, every module loaded, the wasm compiled and
// instantiated), for each Worker alone in turn, the order rotating; each Worker is disposed of
// before the next starts. workerd's own start is in every figure alike, so a paired difference
// is what a Worker's modules cost over the JavaScript one's. The front Worker is what a cold
// gateway isolate loads in production; the whole Worker is also what plain `wrangler dev` runs.
const startup = { rust: [], whole: [], js: [], difference: [], wholeDifference: [] };
const starts = {
  rust: () => start(rustScript, false, { behind: null }),
  whole: () => start(wholeScript, false),
  js: () => start(jsScript, false),
};
for (let i = 0; i < STARTUP_SAMPLES; i++) {
  const sample = {};
  const order = ["rust", "whole", "js"];
  for (const role of [...order.slice(i % 3), ...order.slice(0, i % 3)]) {
    const worker = await starts[role]();
    sample[role] = worker.startMs;
    await worker.mf.dispose();
  }
  for (const role of order) startup[role].push(sample[role]);
  startup.difference.push(sample.rust - sample.js);
  startup.wholeDifference.push(sample.whole - sample.js);
}

// ---- report ------------------------------------------------------------------------------------
const fields = { cpu: "cpu", simulator: "cpu", period: "cpu", process: "cpu", summed: "cpu", p50: "latency", p99: "latency", p999: "latency", rps: "throughput" };
const values = (name, field) => results[fields[field]][name].filter(Boolean).map((r) => r[field]);
const caseMedian = (name, field) => median(values(name, field));
/// Per-round ratios x/y of `field`, for the rounds in which both counted.
const ratios = (x, y, field) => {
  const phase = fields[field];
  return results[phase][x].map((r, i) => (r && results[phase][y][i] ? r[field] / results[phase][y][i][field] : NaN)).filter(Number.isFinite);
};
const ratio = (x, y, field) => {
  const list = ratios(x, y, field);
  const [low, high] = bootstrap(list, `${x}/${y}/${field}`, { seed: SEED, resamples: RESAMPLES });
  return { median: median(list), low, high, rounds: list.length };
};
const fixed = (n, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : "n/a");
const interval = (r) => `${fixed(r.low, 2)}–${fixed(r.high, 2)}`;

const commit = (() => {
  try {
    return execFileSync("git", ["-C", root, "log", "-1", "--format=%h %s"], { encoding: "utf8" }).trim();
  } catch {
    return "no commit";
  }
})();
const ohaVersion = (() => {
  try {
    return execFileSync(OHA, ["--version"], { encoding: "utf8" }).trim();
  } catch {
    return "oha";
  }
})();
const wasm = readFileSync(`${root}build/front/index_bg.wasm`);
const wasmGzip = gzipSync(wasm, { level: 9 }).length;
const wholeWasm = readFileSync(`${root}build/index_bg.wasm`);
const lines = [];
lines.push(`# Edge benchmark, ${new Date(runStarted).toISOString()}`);
lines.push("");
lines.push(`Commit ${commit}; workerd via Miniflare, compatibility date ${compatibilityDate}; ${ohaVersion}; load average ${loadAtStart} at the start, ${loadAtEnd} at the end.`);
const ordinal = (k) => (k === 1 ? "" : `${k}${k === 2 ? "nd" : k === 3 ? "rd" : "th"} `);
const cpuRequests = Math.max(100, Math.round(RATE * CPU_SECONDS));
const latencyRequests = Math.round(RATE * LATENCY_SECONDS);
lines.push(`${ROUNDS} interleaved rounds. Per round and case: isolate CPU over ${cpuRequests} requests at ${RATE} req/s `
  + `(V8 profile of the Worker's isolate, sampling every ${SAMPLING_INTERVAL_US} µs asked); latency: oha, open loop at ${RATE} req/s `
  + `for ${LATENCY_SECONDS} s (about ${latencyRequests} requests, of which oha's p99.9 is the ${ordinal(latencyRequests - Math.floor(0.999 * latencyRequests))}largest), `
  + `coordinated-omission corrected; throughput: wrk, closed loop, ${WRK_CONNECTIONS} connections, ${THROUGHPUT_SECONDS} s. `
  + (process.env.BENCH_RATE ? `The rate is BENCH_RATE; ${JS} saturated at ${fixed(saturation.rps)} req/s. `
    : `The rate is ${RATE_FRACTION} × ${JS}'s saturation throughput, ${fixed(saturation.rps)} req/s (wrk, ${WRK_CONNECTIONS} connections, ${SATURATION_SECONDS} s). `)
  + `Latency and throughput run on Workers without an inspector, CPU on a second set with one; both sets are started afresh for each round (every case in a workerd of its own). `
  + `Intervals: 95 % percentile bootstrap of the median over rounds, ${RESAMPLES} resamples, seed ${SEED}.`);
lines.push("");
lines.push("| case | what | isolate CPU µs/req | p50 ms | p99 ms | p99.9 ms | req/s (closed loop) | limiter simulator µs/req (left out) | workerd process CPU µs/req | rounds counted (CPU / latency / throughput) |");
lines.push("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
for (const name of NAMES) {
  lines.push(`| ${name} | ${cases[name].what} | ${fixed(caseMedian(name, "cpu"))} | ${fixed(caseMedian(name, "p50"), 2)} | ${fixed(caseMedian(name, "p99"), 2)} | `
    + `${fixed(caseMedian(name, "p999"), 2)} | ${fixed(caseMedian(name, "rps"))} | ${fixed(caseMedian(name, "simulator"))} | ${fixed(caseMedian(name, "process"))} | `
    + `${values(name, "cpu").length} / ${values(name, "p99").length} / ${values(name, "rps").length} of ${ROUNDS} |`);
}
lines.push("");
lines.push("Medians over rounds. Isolate CPU: the Worker's own isolate, at the fixed rate, without the code of Miniflare's rate-limiter "
  + "simulator that runs in it (next to last column). Process CPU: all of workerd (Miniflare's simulators and entry Worker included) "
  + "during the profiled phase, for comparison only.");
lines.push("");
const ratioRows = [
  ...EDGE_RATIOS,
  ...(OTHER_BUILD ? [["isolate CPU per request", OTHER, RUST, "cpu"], ["throughput (closed loop)", OTHER, RUST, "rps"],
    ["p99 at the fixed rate", OTHER, RUST, "p99"], ["p99.9 at the fixed rate", OTHER, RUST, "p999"]] : []),
];
const computed = new Map(ratioRows.map(([, x, y, field]) => [`${x}/${y}/${field}`, ratio(x, y, field)]));
const get = (x, y, field) => computed.get(`${x}/${y}/${field}`);
lines.push("| ratio | figure | paired rounds | median | 95 % interval |");
lines.push("| --- | --- | ---: | ---: | --- |");
for (const [what, x, y, field] of ratioRows) {
  const r = get(x, y, field);
  lines.push(`| ${x} / ${y} | ${what} | ${r.rounds} | ${fixed(r.median, 3)} | ${fixed(r.low, 3)}–${fixed(r.high, 3)} |`);
}
lines.push("");
const cpu = get(RUST, JS, "cpu");
const rps = get(RUST, JS, "rps");
const p99 = get(RUST, JS, "p99");
const p999 = get(RUST, JS, "p999");
const targets = [
  [cpu.median <= 0.9 && cpu.high <= 1.0,
    `isolate CPU per request <= 0.90 x ${JS}, 95 % interval's upper bound <= 1.00: ${fixed(cpu.median, 2)} x (${interval(cpu)})`],
  [rps.median >= 1.0, `throughput >= 1.00 x ${JS}: ${fixed(rps.median, 2)} x (${interval(rps)})`],
  [p99.median <= 1.0, `p99 at ${RATE} req/s <= 1.00 x ${JS}: ${fixed(p99.median, 2)} x (${interval(p99)})`],
  [p999.median <= 1.25, `p99.9 at ${RATE} req/s <= 1.25 x ${JS}: ${fixed(p999.median, 2)} x (${interval(p999)})`],
  ...REJECTIONS.map((name) => {
    const c = get(name, RUST, "cpu");
    const l = get(name, RUST, "p99");
    return [c.median <= 1.0 && l.median <= 1.0,
      `${name} never slower than ${RUST}: isolate CPU ${fixed(c.median, 2)} x (${interval(c)}), p99 ${fixed(l.median, 2)} x (${interval(l)}), both <= 1.00`];
  }),
  [wasmGzip <= 160 * 1024, `the front Worker's wasm (build/front/index_bg.wasm) <= 160 KiB gzip -9: ${wasmGzip} bytes (${(wasmGzip / 1024).toFixed(1)} KiB; ${wasm.length} bytes raw)`],
];
for (const [met, text] of targets) lines.push(`${met ? "met" : "MISSED"} ${text}`);
{
  const c = get(JS_UNKNOWN, JS, "cpu");
  const l = get(JS_UNKNOWN, JS, "p99");
  lines.push(`info: the same rejection by the JavaScript Worker, ${JS_UNKNOWN} / ${JS} (what any Worker that awaits the limiter here pays): `
    + `isolate CPU ${fixed(c.median, 2)} x (${interval(c)}), p99 ${fixed(l.median, 2)} x (${interval(l)})`);
}
const spread = (list) => `${fixed(median(list))} ms (${fixed(Math.min(...list))}–${fixed(Math.max(...list))})`;
lines.push(`info: the whole Worker's wasm (build/index_bg.wasm, behind the front one): ${gzipSync(wholeWasm, { level: 9 }).length} bytes gzip -9, ${wholeWasm.length} raw`);
lines.push(`info: start-up, new Miniflare to ready, median (range) of ${STARTUP_SAMPLES} cold starts each: front Worker ${spread(startup.rust)}, `
  + `whole Worker ${spread(startup.whole)}, ${JS} ${spread(startup.js)}; paired differences front − ${JS} ${spread(startup.difference)}, `
  + `whole − ${JS} ${spread(startup.wholeDifference)}`);
if (OTHER_BUILD) {
  const other = readFileSync(`${OTHER_BUILD}${OTHER_FRONT ? "front/" : ""}index_bg.wasm`);
  lines.push(`info: ${OTHER}'s index_bg.wasm: ${gzipSync(other, { level: 9 }).length} bytes gzip -9, ${other.length} raw; `
    + `start-up ${fixed(profiled.other.startMs)} ms (the last round's, with an inspector)`);
}
lines.push("");
lines.push(`Sampler period found in the profiles (median µs): ${NAMES.map((n) => `${n} ${fixed(caseMedian(n, "period"))}`).join(", ")}. `
  + `The timeDeltas of the non-idle samples summed, for comparison (µs/req; they include the isolate's absences, see isolateBusy): `
  + `${NAMES.map((n) => `${n} ${fixed(caseMedian(n, "summed"))}`).join(", ")}.`);
lines.push(`Usage counted through each Worker's queue into its D1 (allowed requests): rust ${usage.rust}, ${JS} ${usage.js}.`);
if (notCounted.length) {
  lines.push("");
  lines.push("Phases not counted (unexpected statuses or socket errors):");
  for (const n of notCounted) lines.push(`- round ${n.round}, ${n.phase}, ${n.name}: ${JSON.stringify(n.statuses)}`);
}
lines.push("");
lines.push(`Run time ${((Date.now() - runStarted) / 1000).toFixed(0)} s.`);
const report = redact(lines.join("\n"));
console.log(report);
mkdirSync(`${root}.bench`, { recursive: true });
const file = `${root}.bench/edge-${new Date(runStarted).toISOString().replace(/[:.]/g, "-")}.md`;
writeFileSync(file, `${report}\n`);
progress(`edge: report written to ${file}`);

origin.server.close();
process.exit(notCounted.length === 0 ? 0 : 1);
