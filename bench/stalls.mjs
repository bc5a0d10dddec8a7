// Where the fixed-rate tail comes from: the Rust Worker as production runs it (front Worker,
// whole Worker behind), the JavaScript same-work Worker, and the JavaScript floor (a forward with
// no key and no KV read), each in a workerd of its own, oha at a fixed rate in rotating order,
// every request kept (oha --db-url). Per phase it prints:
//   - p50, p99, p99.9, corrected for coordinated omission as bench/edge.mjs does;
//   - the stalls: stretches of at least STALL_MS in which requests were under way and none
//     completed, their count, the longest, and how many of the requests at or above the phase's
//     p99 were under way during one;
//   - the Worker's own time for the slowest requests (the log line's `ms`, from the request's
//     start to its last awaited I/O) against oha's, which tells a wait inside the Worker's awaits
//     (KV, the origin) from a wait before the Worker ran;
//   - the longest gap of a sleeper (a process that wakes every millisecond, at the highest
//     priority when it may have it) and of the origin's event loop (this Node process): a stall
//     of the machine or of the origin shows there, a stall of workerd does not;
//   - workerd's CPU per request (all of its threads) and its resident memory after the phase.
// Usage: node bench/stalls.mjs [RATE=300] [SECONDS=12] [ROUNDS=3] [CASES=rust,js,floor]
// A diagnostic, not a comparison: its phases are not paired the way bench/edge.mjs's rounds are.

import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { DatabaseSync } from "node:sqlite";
import { ALLOWED_IPS, CLIENT_IP, OHA, asInProduction, cpuMicros, createFreshKey, root, shareKey, startOrigin, startWorker } from "./harness.mjs";

const [rate = "300", seconds = "12", rounds = "3", caseList = "rust,js,floor"] = process.argv.slice(2);
const STALL_MS = 20;
const JWT_SECRET = randomBytes(24).toString("hex");
const HOST = "bench.localhost";
const dir = mkdtempSync(`${tmpdir()}/stalls-`);

const origin = await startOrigin();
const logs = new Map();
let recording = null;
const start = (label, scriptPath, front) => startWorker({
  originUrl: origin.url, jwtSecret: JWT_SECRET, scriptPath, rateLimit: { limit: 1_000_000_000 }, usageQueue: true, front,
  onLogLine: (line) => { if (recording === label && line.includes('"ms":')) logs.get(label).push(line); },
});
const SCRIPTS = {
  rust: () => start("rust", asInProduction.scriptPath, asInProduction.front),
  js: () => start("js", `${root}bench/baseline-worker-same-work.js`),
  floor: () => start("floor", `${root}bench/baseline-worker-floor.js`),
};
const names = caseList.split(",");
const workers = {};
for (const name of names) workers[name] = await SCRIPTS[name]();

// A key made through the Rust Worker's API (a Rust Worker is started for it if not measured),
// its grant and row given to the JavaScript one, as bench/edge.mjs does.
const maker = workers.rust ?? await SCRIPTS.rust();
const made = await createFreshKey(maker, { host: HOST, tenant: "bench", jwtSecret: JWT_SECRET, allowedIps: ALLOWED_IPS, name: "stalls" });
if (workers.js) await shareKey(maker, workers.js, made);

const run = (command, args) => new Promise((resolve, reject) => execFile(command, args.map(String), { maxBuffer: 1 << 26 },
  (error, stdout) => (error ? reject(new Error(`${command} failed (${error.code ?? error.signal})`)) : resolve(stdout))));

/// The longest gap, in ms, between the wake-ups of a process that sleeps 1 ms at a time, at
/// nice -20 where allowed.
function sleeper(secondsToRun) {
  const code = `let last = performance.now(), worst = 0; const end = last + ${secondsToRun * 1000};
    const tick = () => { const now = performance.now(); worst = Math.max(worst, now - last); last = now;
      if (now < end) setTimeout(tick, 1); else console.log(worst.toFixed(1)); }; setTimeout(tick, 1);`;
  return new Promise((resolve) => {
    const child = spawn("nice", ["-n", "-20", process.execPath, "-e", code]);
    let out = "";
    child.stdout.on("data", (d) => { out += d; });
    child.on("close", () => resolve(Number(out.trim())));
  });
}

/// The phase's requests from oha's database: when each was due, when it ended, in seconds.
function requests(db) {
  const sqlite = new DatabaseSync(db, { readOnly: true });
  const rows = sqlite.prepare("SELECT start_latency_correction AS due, end FROM oha ORDER BY end").all();
  sqlite.close();
  return rows;
}

/// Stretches of at least STALL_MS with requests due and none completing.
function stalls(rows) {
  const found = [];
  const dues = rows.map((r) => r.due).sort((a, b) => a - b);
  let i = 0;
  for (let k = 1; k < rows.length; k++) {
    const [from, to] = [rows[k - 1].end, rows[k].end];
    if ((to - from) * 1000 < STALL_MS) continue;
    while (i < dues.length && dues[i] <= from) i++;
    // Requests under way at `from`: due by then and not yet ended (ends are sorted).
    const dueBy = i;
    if (dueBy > k) found.push({ from, to });
  }
  return found;
}

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
const h = monitorEventLoopDelay({ resolution: 1 });
console.log(`${rate} req/s for ${seconds} s per phase; a stall is >= ${STALL_MS} ms with requests under way and none completing`);
console.log("| phase | p50 ms | p99 ms | p99.9 ms | stalls | longest ms | p99's requests in a stall | Worker's own ms, slowest 1 % (median) | sleeper's longest gap ms | origin loop max ms | workerd CPU µs/req | RSS MB |");
console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
for (let round = 0; round < Number(rounds); round++) {
  for (let n = 0; n < names.length; n++) {
    const name = names[(n + round) % names.length];
    const w = workers[name];
    const db = `${dir}/${name}-${round}.db`;
    logs.set(name, []);
    recording = name;
    h.reset();
    h.enable();
    const cpuBefore = cpuMicros(w.pid);
    const gap = sleeper(Number(seconds) + 1);
    await run(OHA, ["-z", `${seconds}s`, "-w", "-q", rate, "--latency-correction", "-c", 32, "--no-tui", "--output-format", "quiet",
      "--db-url", db, "-H", `Host: ${HOST}`, "-H", `X-Api-Key: ${made.key}`, "-H", `CF-Connecting-IP: ${CLIENT_IP}`,
      `http://127.0.0.1:${w.port}/crm/contacts?page=2`]);
    const cpu = cpuMicros(w.pid) - cpuBefore;
    h.disable();
    recording = null;
    const rows = requests(db);
    const latencies = rows.map((r) => (r.end - r.due) * 1000).sort((a, b) => a - b);
    const p99 = percentile(latencies, 0.99);
    const found = stalls(rows);
    const inStall = rows.filter((r) => (r.end - r.due) * 1000 >= p99 && found.some((s) => r.due <= s.to && r.end >= s.from)).length;
    const tail = rows.filter((r) => (r.end - r.due) * 1000 >= p99).length;
    const own = logs.get(name).map((l) => JSON.parse(l).ms).sort((a, b) => a - b);
    const ownTail = own.slice(Math.floor(own.length * 0.99));
    const rss = Number(readFileSync(`/proc/${w.pid}/status`, "utf8").match(/VmRSS:\s+(\d+)/)[1]) / 1024;
    const longest = found.reduce((m, s) => Math.max(m, (s.to - s.from) * 1000), 0);
    console.log(`| ${name} ${round + 1} | ${percentile(latencies, 0.5).toFixed(1)} | ${p99.toFixed(1)} | ${percentile(latencies, 0.999).toFixed(1)} `
      + `| ${found.length} | ${longest.toFixed(0)} | ${inStall} of ${tail} | ${own.length ? percentile(ownTail, 0.5) : "no log"} `
      + `| ${(await gap).toFixed(1)} | ${(h.max / 1e6).toFixed(1)} | ${(cpu / rows.length).toFixed(0)} | ${rss.toFixed(0)} |`);
  }
}
for (const w of new Set([...Object.values(workers), maker])) await w.mf.dispose();
origin.server.close();
rmSync(dir, { recursive: true, force: true });
