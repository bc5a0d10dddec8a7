// Where two cases of one bench/edge.mjs run spend their isolate's time, function by function,
// side by side: the profiles that BENCH_PROFILE_DIR kept, summed over the rounds. Samples are
// counted (as edge.mjs counts busy time), "(idle)" left out; a runtime call shows as the glue
// function that made it (__wbg_*) in the Rust Worker and inside its caller in JavaScript.
// Usage: node bench/profile-compare.mjs DIR [CASE_A=gateway-valid-key] [CASE_B=js-same-work] [ROWS=40]

import { readdirSync, readFileSync } from "node:fs";

const [dir, caseA = "gateway-valid-key", caseB = "js-same-work", rows = "40"] = process.argv.slice(2);
if (!dir) {
  console.error("usage: node bench/profile-compare.mjs DIR [CASE_A] [CASE_B] [ROWS]");
  process.exit(2);
}

function samplesByFunction(name) {
  const counts = new Map();
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
    }
    profiles++;
  }
  return { counts, profiles, total: [...counts.values()].reduce((a, b) => a + b, 0) };
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
