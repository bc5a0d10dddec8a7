// Where two cases of one bench/edge.mjs run spend their isolate's time, function by function,
// side by side: the profiles that BENCH_PROFILE_DIR kept, summed over the rounds. Samples are
// counted (as edge.mjs counts busy time), "(idle)" left out; a runtime call shows as the glue
// function that made it (__wbg_*) in the Rust Worker and inside its caller in JavaScript.
// After the functions, the same samples by kind: the Rust Worker's own code (wasm functions, the
// glue's helpers, the shims between them) against JavaScript's, and the runtime's calls.
// Usage: node bench/profile-compare.mjs DIR [CASE_A=gateway-valid-key] [CASE_B=js-same-work] [ROWS=40]

import { readdirSync, readFileSync } from "node:fs";

const [dir, caseA = "gateway-valid-key", caseB = "js-same-work", rows = "40"] = process.argv.slice(2);
if (!dir) {
  console.error("usage: node bench/profile-compare.mjs DIR [CASE_A] [CASE_B] [ROWS]");
  process.exit(2);
}

/// What kind of code a sample's function is: a runtime call shows as the glue function that made
/// it (`__wbg_*`, the call itself, native, counted there) or as a native frame of its own.
function kindOf(frame, where) {
  const name = frame.functionName;
  if (where.includes(".wasm")) return name.includes("shim") || name.startsWith("js-to-wasm") ? "wasm shims (JavaScript to wasm)" : "wasm code";
  if (where.endsWith("rust.mjs")) return name.startsWith("__wbg_") ? "runtime calls made by the glue" : "the glue's JavaScript (strings in and out of wasm, src/boundary.rs's inline helpers)";
  if (where.startsWith("baseline")) return "JavaScript code (with the builtins it calls)";
  if (where) return `other scripts (${where})`;
  if (["wasm-to-js", "decode", "encode"].includes(name)) return "wasm-to-JavaScript calls and TextDecoder/TextEncoder";
  if (name.startsWith("(")) return name;
  return "runtime calls (native frames: fetch, console.log, Headers, Response, Web Crypto)";
}

function samplesByFunction(name) {
  const counts = new Map();
  const kinds = new Map();
  let profiles = 0;
  for (const file of readdirSync(dir).filter((f) => f.startsWith(`${name}-`) && f.endsWith(".cpuprofile"))) {
    const profile = JSON.parse(readFileSync(`${dir}/${file}`, "utf8"));
    const byId = new Map(profile.nodes.map((node) => [node.id, node]));
    for (const id of profile.samples) {
      const frame = byId.get(id).callFrame;
      if (frame.functionName === "(idle)") continue;
      const where = frame.url ? frame.url.split("/").pop().slice(0, 24) : "";
      const key = `${frame.functionName || "(anonymous)"} ${where}`.trim();
      counts.set(key, (counts.get(key) ?? 0) + 1);
      const kind = kindOf(frame, where);
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
    }
    profiles++;
  }
  return { counts, kinds, profiles, total: [...counts.values()].reduce((a, b) => a + b, 0) };
}

const a = samplesByFunction(caseA);
const b = samplesByFunction(caseB);
const share = (side, key) => (side.total ? (100 * (side.counts.get(key) ?? 0)) / side.total : 0);
console.log(`${caseA}: ${a.total} busy samples in ${a.profiles} profiles; ${caseB}: ${b.total} in ${b.profiles}`);
console.log(`${"% " + caseA}`.padStart(24) + `${"% " + caseB}`.padStart(18) + "  function");
const keys = [...new Set([...a.counts.keys(), ...b.counts.keys()])]
  .sort((x, y) => share(a, y) + share(b, y) - share(a, x) - share(b, x));
for (const key of keys.slice(0, Number(rows))) {
  console.log(`${share(a, key).toFixed(1).padStart(24)}${share(b, key).toFixed(1).padStart(18)}  ${key}`);
}
console.log("\nBy kind:");
const kindShare = (side, kind) => (side.total ? (100 * (side.kinds.get(kind) ?? 0)) / side.total : 0);
const kinds = [...new Set([...a.kinds.keys(), ...b.kinds.keys()])]
  .sort((x, y) => kindShare(a, y) + kindShare(b, y) - kindShare(a, x) - kindShare(b, x));
for (const kind of kinds) {
  console.log(`${kindShare(a, kind).toFixed(1).padStart(24)}${kindShare(b, kind).toFixed(1).padStart(18)}  ${kind}`);
}
