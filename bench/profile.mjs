// Where the time of one benchmark case goes: runs the release Worker as production runs it (the
// front Worker, with the whole Worker behind its service binding) in workerd (Miniflare, with the
// front Worker's V8 inspector on loopback), drives case gateway-valid-key or gateway-no-key with wrk for
// PROFILE_SECONDS, records a V8 CPU profile meanwhile and prints the functions with the most
// self time, wasm and JS alike.
// Build with EDGE_KEYS_KEEP_NAMES=1 so that wasm functions have names.
// Usage: make profile [PROFILE_CASE=gateway-valid-key|gateway-no-key] [PROFILE_SECONDS=8]

import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { randomBytes } from "node:crypto";
import { asInProduction, caseNames, request, sessionToken, startOrigin, startWorker } from "./harness.mjs";

// The two cases this profile can drive (an old letter, a or b, is accepted too).
const CASE = process.env.PROFILE_CASE ? caseNames("PROFILE_CASE", ["gateway-valid-key", "gateway-no-key"])[0] : "gateway-valid-key";
const SECONDS = Number(process.env.PROFILE_SECONDS ?? 8);
const TOP = Number(process.env.PROFILE_TOP ?? 40);
const JWT_SECRET = randomBytes(24).toString("hex");
const TENANT = "bench";
const wrk = promisify(execFile);

const origin = await startOrigin();
const worker = await startWorker({
  originUrl: origin.url, jwtSecret: JWT_SECRET, inspect: true, ...asInProduction,
});
const created = await request(worker.port, "POST", `${TENANT}.localhost`, "/api/v1/api-keys",
  { authorization: sessionToken(TENANT, JWT_SECRET), "content-type": "application/json" },
  JSON.stringify({ name: "profile", scopes: "read,write" }));
if (created.status !== 201) throw new Error(`create: ${created.status} ${created.body}`);
const headers = CASE === "gateway-valid-key" ? ["-H", `X-Api-Key: ${JSON.parse(created.body).key}`] : [];
const load = (seconds) => wrk("wrk", ["-t1", "-c10", `-d${seconds}s`, "-s", `${import.meta.dirname}/wrk/check.lua`,
  "-H", `Host: ${TENANT}.localhost`, ...headers, `http://127.0.0.1:${worker.port}/crm/contacts?page=2`]);

// The inspector lists the Worker's isolate; its debugger URL speaks the Chrome DevTools Protocol.
const targets = await (await fetch(`${(await worker.mf.getInspectorURL()).href.replace("ws:", "http:")}json`)).json();
const target = targets.find((t) => t.id?.endsWith(`-${worker.workerName}`)) ?? targets[0];
// The inspector proxy accepts DevTools clients from a local origin only.
const socket = new WebSocket(target.webSocketDebuggerUrl, { headers: { origin: "http://localhost" } });
await new Promise((resolve, reject) => { socket.onopen = resolve; socket.onerror = reject; });
let nextId = 1;
const pending = new Map();
socket.binaryType = "arraybuffer";
socket.onmessage = (event) => {
  const message = JSON.parse(typeof event.data === "string" ? event.data : new TextDecoder().decode(event.data));
  if (pending.has(message.id)) { pending.get(message.id)(message.result); pending.delete(message.id); }
};
const send = (method, params = {}) => new Promise((resolve) => {
  const id = nextId++;
  pending.set(id, resolve);
  socket.send(JSON.stringify({ id, method, params }));
});

await load(2); // warm-up: the isolate, the wasm instance and the KV entry
await send("Profiler.enable");
await send("Profiler.setSamplingInterval", { interval: 100 });
await send("Profiler.start");
const { stdout } = await load(SECONDS);
const { profile } = await send("Profiler.stop");
socket.close();

// Self time per function: each sample is charged to the node it landed in.
const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const self = new Map();
profile.samples.forEach((id, i) => {
  const frame = byId.get(id).callFrame;
  const name = `${frame.functionName || "(anonymous)"} ${frame.url ? frame.url.split("/").pop() : ""}`.trim();
  self.set(name, (self.get(name) ?? 0) + (profile.timeDeltas[i] ?? 0));
});
const total = [...self.values()].reduce((a, b) => a + b, 0);
const busy = [...self.entries()].filter(([name]) => name !== "(idle)" && name !== "(program)");
const busyTotal = busy.reduce((a, [, t]) => a + t, 0);
const result = JSON.parse(stdout.split("\n").find((l) => l.startsWith("BENCH ")).slice(6));
console.log(`case ${CASE}: ${(result.requests / result.seconds).toFixed(0)} req/s over ${SECONDS} s; ` +
  `isolate busy ${(100 * busyTotal / total).toFixed(1)} % of samples (idle and program excluded below)`);
console.log("self %  function");
for (const [name, t] of busy.sort((x, y) => y[1] - x[1]).slice(0, TOP)) {
  console.log(`${(100 * t / busyTotal).toFixed(1).padStart(6)}  ${name.slice(0, 150)}`);
}
await worker.mf.dispose();
origin.server.close();
