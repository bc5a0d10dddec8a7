// What a microtask costs in workerd, scheduled the two ways wasm-bindgen's executor can
// (src/microtasks.rs): `queueMicrotask(f)` and `then(f)` on a resolved promise. A JS Worker
// schedules ROUNDS × 100,000 of each, interleaved with a request that schedules none, and the
// workerd process's CPU time is divided by the count.
//   node bench/microtask/run.mjs
import { Miniflare } from "miniflare";
import { compatibilityDate, cpuMicros } from "../harness.mjs";
import { readdirSync, readFileSync } from "node:fs";

const PER_REQUEST = 100_000;
const REQUESTS = 10;
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const workerd = () => readdirSync("/proc").filter((p) => /^\d+$/.test(p)).filter((p) => {
  try {
    return readFileSync(`/proc/${p}/stat`, "utf8").includes("(workerd)");
  } catch {
    return false;
  }
});
const before = workerd();
const mf = new Miniflare({ modules: true, scriptPath: new URL("worker.js", import.meta.url).pathname, compatibilityDate });
const url = await mf.ready;
const pid = workerd().find((p) => !before.includes(p));
const perTask = { none: [], qm: [], then: [] };
for (let round = 0; round < ROUNDS; round++) {
  for (const mode of Object.keys(perTask)) {
    const start = cpuMicros(pid);
    for (let i = 0; i < REQUESTS; i++) await (await fetch(`${url}?n=${PER_REQUEST}&mode=${mode}`)).text();
    perTask[mode].push((cpuMicros(pid) - start) / (PER_REQUEST * REQUESTS));
  }
}
const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
for (const [mode, values] of Object.entries(perTask)) {
  const what = { none: "a plain call (the loop itself)", qm: "queueMicrotask(f)", then: "resolved.then(f)" }[mode];
  console.log(`${what.padEnd(32)} ${median(values).toFixed(3)} µs CPU each (median of ${ROUNDS} rounds of ${PER_REQUEST * REQUESTS})`);
}
await mf.dispose();
