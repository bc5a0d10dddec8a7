// The benchmark: the release Worker and a JavaScript baseline in workerd (Miniflare's API, no
// wrangler proxy), driven by wrk over 127.0.0.1. Every case runs BENCH_REPEATS times for
// BENCH_SECONDS each, interleaved so that machine noise spreads over all cases; medians are
// reported, with throughput ratios against gateway-no-key and js-minimal from the same run. A run
// in which any response had an unexpected status does not count, and the table says how many
// there were. Cases have names; BENCHMARKS.md maps the letters earlier results quote to them.
// BENCH_OTHER_TREE names another checkout with a release build in its build/ (an older commit in
// a git worktree, say): its Worker runs beside this one as case other-gateway-valid-key, with
// that tree's own D1 schema, so that two builds are compared in one run.
// Usage: make bench [BENCH_CASES=gateway-valid-key,gateway-no-key,...] [BENCH_OTHER_TREE=dir]

import { execFile, execFileSync } from "node:child_process";
import { promisify } from "node:util";
import { createHash, randomBytes } from "node:crypto";
import { gzipSync } from "node:zlib";
import { readFileSync } from "node:fs";
import { caseNames, compatibilityDate, cpuMicros, managedEntryName, request, root, sessionToken, startOrigin, startWorker } from "./harness.mjs";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const REPEATS = Number(process.env.BENCH_REPEATS ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 10);
const JWT_SECRET = randomBytes(24).toString("hex");
const TENANT = "bench";
const LIST_TENANT = "bench-list";
const OTHER_TREE = process.env.BENCH_OTHER_TREE?.replace(/\/$/, "");
const commitOf = (tree) => {
  try {
    return execFileSync("git", ["-C", tree, "log", "-1", "--format=%h"], { encoding: "utf8" }).trim();
  } catch {
    return "no commit";
  }
};

const origin = await startOrigin();
const rust = await startWorker({ originUrl: origin.url, jwtSecret: JWT_SECRET });
const js = await startWorker({ originUrl: origin.url, jwtSecret: JWT_SECRET, scriptPath: `${root}bench/baseline-worker.js` });
// js-same-work counts usage on its own queue, as the Rust Worker does.
const jsSameWork = await startWorker({ originUrl: origin.url, jwtSecret: JWT_SECRET, scriptPath: `${root}bench/baseline-worker-same-work.js`, usageQueue: true });
const jsFloor = await startWorker({ originUrl: origin.url, jwtSecret: JWT_SECRET, scriptPath: `${root}bench/baseline-worker-floor.js` });
const other = OTHER_TREE ? await startWorker({ originUrl: origin.url, jwtSecret: JWT_SECRET, scriptPath: `${OTHER_TREE}/build/index.js`, tree: OTHER_TREE }) : undefined;

// ---- seeding -----------------------------------------------------------------------------------
async function createKey(port, tenant, scopes) {
  const res = await request(port, "POST", `${tenant}.localhost`, "/api/v1/api-keys",
    { authorization: sessionToken(tenant, JWT_SECRET), "content-type": "application/json" }, JSON.stringify({ name: "bench", scopes }));
  if (res.status !== 201) throw new Error(`create: ${res.status} ${res.body}`);
  return JSON.parse(res.body);
}
const valid = await createKey(rust.port, TENANT, "read,write");
// Each Worker has a D1 and a KV of its own: the other build makes its own key through its API.
const otherValid = other ? await createKey(other.port, TENANT, "read,write") : undefined;
// js-minimal reads one entry under its own name.
const validHash = createHash("sha256").update(valid.key).digest("hex");
await js.kv.put(`key/${validHash}`, JSON.stringify({ id: valid.id, tenant: TENANT, scopes: "read,write" }));
// js-same-work reads the Worker's three places under the Worker's names, and finds the grant in
// the managed place as a key management call leaves it; fresh all day, since it has no D1 to
// renew it from.
await jsSameWork.kv.put(managedEntryName(validHash), JSON.stringify({ grant: {
  keyId: valid.id, tenant: TENANT, scopes: "read,write", expiresAt: null, validUntil: null, freshUntil: Date.now() + 86_400_000,
} }));

/// Adds `count` synthetic keys (random hashes) spread over 100 tenants, or all in one tenant.
async function seed(count, tenant) {
  const tenantSql = tenant ? "?2" : "'scale-' || (i % 100)";
  await rust.db.prepare(
    `INSERT INTO api_keys (id, tenant, key_prefix, name, scopes, created_at)
     WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
     SELECT lower(hex(randomblob(16))), ${tenantSql}, 'rk_live_0000', 'seed', 'read', 1700000000000 + i FROM n`,
  ).bind(...(tenant ? [count, tenant] : [count])).run();
  await rust.db.prepare(
    `INSERT INTO api_key_secrets (key_hash, key_id, tenant, valid_until)
     SELECT lower(hex(randomblob(32))), k.id, k.tenant, NULL FROM api_keys k
     WHERE NOT EXISTS (SELECT 1 FROM api_key_secrets s WHERE s.tenant = k.tenant AND s.key_id = k.id)`,
  ).run();
}
const countKeys = async () => (await rust.db.prepare("SELECT count(*) AS n FROM api_key_secrets").first()).n;

// ---- wrk ---------------------------------------------------------------------------------------
const cases = {
  "gateway-valid-key": { what: "gateway, valid key, KV hit, forwarded", port: rust.port, pid: rust.pid, headers: { "X-Api-Key": valid.key }, expect: 200 },
  "gateway-no-key": { what: "gateway, no key, forwarded (floor)", port: rust.port, pid: rust.pid, headers: {}, expect: 200 },
  "js-minimal": { what: "JS baseline: SHA-256 + KV get + forward", port: js.port, pid: js.pid, headers: { "X-Api-Key": valid.key }, expect: 200 },
  "malformed-key": { what: "malformed key rejected", port: rust.port, pid: rust.pid, headers: { "X-Api-Key": "rk_live_not-a-key" }, expect: 401 },
  "unknown-key-cached": { what: "unknown key, negative cache", port: rust.port, pid: rust.pid, headers: { "X-Api-Key": `rk_live_${"ab".repeat(16)}` }, expect: 401 },
  "d1-miss": { what: "D1 miss path (fresh unknown key each request)", port: rust.port, pid: rust.pid, headers: {}, randomKey: true, expect: 401 },
  "list-page": { what: "list page (100 of 10,000 keys)", port: rust.port, pid: rust.pid, tenant: LIST_TENANT, path: "/api/v1/api-keys",
       headers: { Authorization: sessionToken(LIST_TENANT, JWT_SECRET) }, expect: 200 },
  "js-same-work": { what: "JS doing all of gateway-valid-key's work (format, scope, headers, log line)", port: jsSameWork.port, pid: jsSameWork.pid,
       headers: { "X-Api-Key": valid.key }, expect: 200 },
  "js-floor": { what: "JS floor: the forward of js-minimal without hash or KV read", port: jsFloor.port, pid: jsFloor.pid, headers: {}, expect: 200 },
  ...(other ? { "other-gateway-valid-key": { what: `gateway-valid-key on the other build (${commitOf(OTHER_TREE)})`, port: other.port, pid: other.pid,
    headers: { "X-Api-Key": otherValid.key }, expect: 200 } } : {}),
};
// BENCH_CASES=gateway-valid-key,js-minimal runs only those cases (the old letters are accepted
// too), and skips the scale phase unless d1-miss is among them.
const ONLY = process.env.BENCH_CASES ? caseNames("BENCH_CASES", Object.keys(cases)) : undefined;

// wrk runs asynchronously: a blocked event loop would stop Node from draining workerd's output
// pipe, and workerd would stall once that pipe is full.
const wrk = promisify(execFile);

async function runWrk(name) {
  const c = cases[name];
  // A 10 s timeout: on this shared machine a few responses in thousands take over wrk's default
  // 2 s; they count in the latency percentiles instead of as socket errors.
  const args = ["-t1", `-c${CONNECTIONS}`, `-d${SECONDS}s`, "--timeout", "10s", "--latency", "-s", `${root}bench/wrk/check.lua`,
    "-H", `Host: ${c.tenant ?? TENANT}.localhost`];
  for (const [header, value] of Object.entries(c.headers)) args.push("-H", `${header}: ${value}`);
  args.push(`http://127.0.0.1:${c.port}${c.path ?? "/crm/contacts?page=2"}`);
  const cpuBefore = cpuMicros(c.pid);
  const { stdout: out } = await wrk("wrk", args, { env: { ...process.env, BENCH_RANDOM_KEY: c.randomKey ? "1" : "0" } });
  const cpu = cpuMicros(c.pid) - cpuBefore;
  const result = JSON.parse(out.split("\n").find((l) => l.startsWith("BENCH ")).slice(6));
  const expected = result.statuses[c.expect] ?? 0;
  return {
    rps: result.requests / result.seconds,
    // workerd's CPU time per request: what the Worker costs, much less disturbed by the other
    // processes on the machine than throughput is.
    cpu: cpu / result.requests,
    p50: result.p50_us / 1000,
    p99: result.p99_us / 1000,
    unexpected: result.requests - expected + result.socket_errors,
    statuses: result.statuses,
    socketErrors: result.socket_detail,
  };
}

const median = (values) => {
  const sorted = [...values].sort((x, y) => x - y);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
function summarise(runs) {
  const counted = runs.filter((r) => r.unexpected === 0);
  return {
    rps: counted.length ? median(counted.map((r) => r.rps)) : NaN,
    cpu: counted.length ? median(counted.map((r) => r.cpu)) : NaN,
    p50: counted.length ? median(counted.map((r) => r.p50)) : NaN,
    p99: counted.length ? median(counted.map((r) => r.p99)) : NaN,
    counted: counted.length,
    unexpected: runs.reduce((n, r) => n + r.unexpected, 0),
  };
}

// Warm the isolates and the caches (the KV entry of gateway-valid-key, the negative entry of
// unknown-key-cached).
for (const name of ["gateway-valid-key", "js-minimal", "unknown-key-cached", "js-same-work", "js-floor", ...(other ? ["other-gateway-valid-key"] : [])]) {
  const c = cases[name];
  await wrk("wrk", ["-t1", "-c2", "-d1s", "-H", `Host: ${TENANT}.localhost`,
    ...Object.entries(c.headers).flatMap(([h, v]) => ["-H", `${h}: ${v}`]), `http://127.0.0.1:${c.port}/crm/contacts`]);
}

// ---- phase 1: the D1 miss path as the table grows ----------------------------------------------
// The miss path is warmed too (D1's file, the statements, the isolate's code for it), so that the
// first size measured is not also the first use.
if (!ONLY || ONLY.includes("d1-miss")) await runWrk("d1-miss");
const scale = [];
for (const target of ONLY && !ONLY.includes("d1-miss") ? [] : [10, 10_000, 100_000]) {
  const have = await countKeys();
  if (target > have) await seed(target - have);
  const stored = await countKeys();
  const runs = [];
  for (let i = 0; i < REPEATS; i++) runs.push(await runWrk("d1-miss"));
  scale.push({ stored, ...summarise(runs) });
  console.error(`scale: ${stored} keys stored, miss path ${scale.at(-1).rps.toFixed(0)} req/s`);
}
const plan = scale.length === 0 ? [] : (await rust.db.prepare(
  `EXPLAIN QUERY PLAN SELECT s.key_hash, k.id, k.tenant, k.scopes, k.expires_at, k.revoked_at, s.valid_until
   FROM api_key_secrets s JOIN api_keys k ON k.id = s.key_id WHERE s.key_hash = ?1`,
).bind("0".repeat(64)).all()).results;

// ---- phase 2: every case, interleaved ----------------------------------------------------------
await seed(10_000, LIST_TENANT);
for (const name of Object.keys(cases)) if (ONLY && !ONLY.includes(name)) delete cases[name];
const results = Object.fromEntries(Object.keys(cases).map((name) => [name, []]));
const order = Object.keys(cases);
for (let i = 0; i < REPEATS; i++) {
  // Each round starts one case further on, so that no case always follows the same one.
  for (const name of [...order.slice(i % order.length), ...order.slice(0, i % order.length)]) {
    results[name].push(await runWrk(name));
    const last = results[name].at(-1);
    const detail = last.unexpected ? ` (statuses ${JSON.stringify(last.statuses)}, socket errors ${JSON.stringify(last.socketErrors)})` : "";
    console.error(`run ${i + 1}/${REPEATS} case ${name}: ${last.rps.toFixed(0)} req/s, ${last.cpu.toFixed(0)} CPU µs/req, unexpected ${last.unexpected}${detail}`);
  }
}
const summary = Object.fromEntries(Object.entries(results).map(([name, runs]) => [name, summarise(runs)]));
// Ratios of runs made back to back, one pair per round: less disturbed by the machine's drift
// than a ratio of two medians.
const pairedRatios = (x, y, field) => results[x].map((run, i) => {
  const paired = results[y]?.[i];
  return run.unexpected === 0 && paired?.unexpected === 0 ? run[field] / paired[field] : NaN;
}).filter(Number.isFinite);
const pairedRatio = (x, y, field) => median(pairedRatios(x, y, field));
/// A distribution-free interval for the median of `values`: the k-th smallest to the k-th
/// largest, with the largest k whose coverage is still at least 95 % (with 5 rounds no k reaches
/// it, and the interval is the whole range, 93.8 %). Returns [low, high, coverage].
function medianInterval(values) {
  const sorted = [...values].sort((x, y) => x - y);
  const n = sorted.length;
  const below = (k) => { // P(Binomial(n, 1/2) < k)
    let p = 0;
    for (let i = 0, c = 1; i < k; c = (c * (n - i)) / (i + 1), i++) p += c / 2 ** n;
    return p;
  };
  let k = 1;
  while (k + 1 <= n / 2 && 1 - 2 * below(k + 1) >= 0.95) k++;
  return n ? [sorted[k - 1], sorted[n - k], 1 - 2 * below(k)] : [NaN, NaN, NaN];
}

// ---- report ------------------------------------------------------------------------------------
// Throughput and CPU are also given relative to these two: the Worker's own floor, and the
// obvious JavaScript Worker.
const FLOOR = "gateway-no-key";
const JS = "js-minimal";
const wasm = readFileSync(`${root}build/index_bg.wasm`);
const glue = readFileSync(`${root}build/index.js`);
const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
const fixed = (n, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : "n/a");
const lines = [];
lines.push(`wrk -t1 -c${CONNECTIONS} -d${SECONDS}s --timeout 10s, ${REPEATS} interleaved runs per case, medians; workerd via miniflare, compatibility date ${compatibilityDate}; ${new Date().toISOString()}`);
lines.push("");
lines.push(`| case | what | req/s | ÷ ${FLOOR} | ÷ ${JS} | CPU µs/req | CPU ÷ ${FLOOR} | CPU ÷ ${JS} | p50 ms | p99 ms | runs counted | unexpected responses |`);
lines.push("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
for (const [name, s] of Object.entries(summary)) {
  lines.push(`| ${name} | ${cases[name].what} | ${fixed(s.rps)} | ${fixed(s.rps / summary[FLOOR]?.rps, 2)} | ${fixed(s.rps / summary[JS]?.rps, 2)} | ${fixed(s.cpu)} | ${fixed(s.cpu / summary[FLOOR]?.cpu, 2)} | ${fixed(s.cpu / summary[JS]?.cpu, 2)} | ${fixed(s.p50, 2)} | ${fixed(s.p99, 2)} | ${s.counted}/${REPEATS} | ${s.unexpected} |`);
}
lines.push("");
if (summary["gateway-valid-key"] && summary[FLOOR] && summary[JS]) {
  lines.push("Paired ratios (median over rounds of the ratio within each round):");
  const pairs = [["gateway-valid-key", FLOOR], ["gateway-valid-key", JS], ["gateway-valid-key", "js-same-work"], [JS, "js-floor"]];
  for (const [x, y] of pairs.filter(([x, y]) => summary[x] && summary[y])) {
    lines.push(`  ${x} / ${y}: throughput ${fixed(pairedRatio(x, y, "rps"), 2)}, CPU per request ${fixed(pairedRatio(x, y, "cpu"), 2)}`);
  }
  lines.push("");
}
// The comparisons a run with another build is for, each with its interval.
const comparisons = [["gateway-valid-key", "other-gateway-valid-key"], ["gateway-valid-key", "js-same-work"], ["other-gateway-valid-key", "js-same-work"]]
  .filter(([x, y]) => summary[x] && summary[y]);
if (other && comparisons.length) {
  lines.push("Paired ratios with a distribution-free interval for their median (rounds counted):");
  lines.push("");
  lines.push("| ratio | rounds | throughput | interval | CPU per request | interval | coverage |");
  lines.push("| --- | ---: | ---: | --- | ---: | --- | ---: |");
  for (const [x, y] of comparisons) {
    const [rpsLow, rpsHigh, coverage] = medianInterval(pairedRatios(x, y, "rps"));
    const [cpuLow, cpuHigh] = medianInterval(pairedRatios(x, y, "cpu"));
    lines.push(`| ${x} / ${y} | ${pairedRatios(x, y, "rps").length} | ${fixed(pairedRatio(x, y, "rps"), 3)} | ${fixed(rpsLow, 3)}–${fixed(rpsHigh, 3)} | ${fixed(pairedRatio(x, y, "cpu"), 3)} | ${fixed(cpuLow, 3)}–${fixed(cpuHigh, 3)} | ${fixed(100 * coverage, 1)} % |`);
  }
  lines.push("");
}
if (scale.length) lines.push("| keys stored | miss path req/s | ÷ (10 keys) | p50 ms | p99 ms | unexpected |");
if (scale.length) lines.push("| ---: | ---: | ---: | ---: | ---: | ---: |");
for (const s of scale) {
  lines.push(`| ${s.stored} | ${fixed(s.rps)} | ${fixed(s.rps / scale[0].rps, 2)} | ${fixed(s.p50, 2)} | ${fixed(s.p99, 2)} | ${s.unexpected} |`);
}
lines.push("");
lines.push("EXPLAIN QUERY PLAN of the lookup by hash:");
for (const row of plan) lines.push(`    ${row.detail}`);
lines.push("");
lines.push(`index_bg.wasm ${wasm.length} bytes (${kib(wasm.length)}), gzip -9 ${gzipSync(wasm, { level: 9 }).length} bytes (${kib(gzipSync(wasm, { level: 9 }).length)}); index.js ${glue.length} bytes`);
if (other) {
  const otherWasm = readFileSync(`${OTHER_TREE}/build/index_bg.wasm`);
  lines.push(`other build (${OTHER_TREE}, ${commitOf(OTHER_TREE)}): index_bg.wasm ${otherWasm.length} bytes, gzip -9 ${gzipSync(otherWasm, { level: 9 }).length} bytes; index.js ${readFileSync(`${OTHER_TREE}/build/index.js`).length} bytes`);
}
// One sample each, from a cold workerd: indicative only.
lines.push(`start-up, new Miniflare to ready (modules compiled), one sample each: this build ${fixed(rust.startMs)} ms${other ? `, other build ${fixed(other.startMs)} ms` : ""}, js-same-work ${fixed(jsSameWork.startMs)} ms`);
const targets = ONLY ? [] : [
  [`gateway-valid-key >= 0.85 x ${FLOOR}`, summary["gateway-valid-key"].rps >= 0.85 * summary[FLOOR].rps],
  [`gateway-valid-key >= 1.0 x ${JS}`, summary["gateway-valid-key"].rps >= summary[JS].rps],
  ["malformed-key >= gateway-valid-key", summary["malformed-key"].rps >= summary["gateway-valid-key"].rps],
  ["unknown-key-cached >= gateway-valid-key", summary["unknown-key-cached"].rps >= summary["gateway-valid-key"].rps],
  ["miss path at 100,000 keys: p50 <= 1.3 x at 10 keys", scale[2].p50 <= 1.3 * scale[0].p50],
  ["index_bg.wasm <= 150 KiB gzip", gzipSync(wasm, { level: 9 }).length <= 150 * 1024],
];
lines.push("");
for (const [target, met] of targets) lines.push(`${met ? "met    " : "MISSED "} ${target}`);
console.log(lines.join("\n"));

await rust.mf.dispose();
await js.mf.dispose();
await jsSameWork.mf.dispose();
await jsFloor.mf.dispose();
await other?.mf.dispose();
origin.server.close();
const totalUnexpected = Object.values(summary).reduce((n, s) => n + s.unexpected, 0) + scale.reduce((n, s) => n + s.unexpected, 0);
process.exit(totalUnexpected === 0 ? 0 : 1);
