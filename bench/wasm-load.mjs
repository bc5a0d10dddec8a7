// What does a wasm module in a Worker cost at start-up when nothing instantiates it, or when only
// a dynamic import() reaches it? The question behind the front Worker (README, "The front
// Worker"): if such a module cost nothing, one Worker with the fast path's module and a lazily
// imported whole one would start as fast as a Worker of its own.
//
//   node_modules/.bin/node bench/wasm-load.mjs [copies=20] [samples=8]
//
// Four throwaway Workers under a temporary directory, each started in a new Miniflare (new
// workerd) to ready, in rotating order, `samples` times: `none` has no wasm; `imported` imports
// `copies` copies of build/index_bg.wasm statically and never instantiates them; `dynamic` has
// the same copies, imported by a module that only a dynamic import() in the fetch handler (never
// called) reaches; `data` imports the same bytes as Data modules, which nothing compiles (what
// carrying the bytes from Node to workerd costs). Prints each Worker's start-up times and the
// median difference to `none`, per copy. Nothing of the project's Worker runs; all on 127.0.0.1.

import { Miniflare } from "miniflare";
import { copyFileSync, mkdtempSync, mkdirSync, rmSync, writeFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { root } from "./harness.mjs";

const copies = Number(process.argv[2] ?? 20);
const samples = Number(process.argv[3] ?? 8);
const wasm = `${root}build/index_bg.wasm`;
const dir = mkdtempSync(join(tmpdir(), "wasm-load-"));
const imports = Array.from({ length: copies }, (_, i) => `import m${i} from "./m${i}.wasm";`).join("\n");
const workers = {
  none: { "index.js": 'export default { fetch() { return new Response("none"); } };' },
  imported: { "index.js": `${imports}\nexport default { fetch() { return new Response(typeof m0); } };` },
  dynamic: {
    "index.js": 'export default { async fetch() { return new Response(String((await import("./lazy.mjs")).n)); } };',
    "lazy.mjs": `${imports}\nexport const n = ${copies};`,
  },
  // The same bytes as Data modules (an ArrayBuffer each): what carrying them to workerd costs,
  // without any compiling.
  data: { "index.js": `${imports.replaceAll(".wasm", ".bin")}\nexport default { fetch() { return new Response(String(m0.byteLength)); } };` },
};
for (const [name, files] of Object.entries(workers)) {
  mkdirSync(join(dir, name));
  for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, name, file), text);
  const suffix = name === "data" ? "bin" : "wasm";
  if (name !== "none") for (let i = 0; i < copies; i++) copyFileSync(wasm, join(dir, name, `m${i}.${suffix}`));
}

async function startMs(name) {
  const started = performance.now();
  const mf = new Miniflare({
    host: "127.0.0.1", port: 0, scriptPath: join(dir, name, "index.js"), modules: true, modulesRoot: join(dir, name),
    modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"] }, { type: "Data", include: ["**/*.bin"] }],
    compatibilityDate: "2025-01-01",
  });
  await mf.ready;
  const ms = performance.now() - started;
  await mf.dispose();
  return ms;
}

const names = Object.keys(workers);
const times = Object.fromEntries(names.map((n) => [n, []]));
for (let s = 0; s < samples; s++) {
  for (const name of [...names.slice(s % names.length), ...names.slice(0, s % names.length)]) {
    times[name].push(await startMs(name));
  }
}
rmSync(dir, { recursive: true });
const median = (list) => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)];
console.log(`${copies} copies of build/index_bg.wasm (${statSync(wasm).size} bytes each), ${samples} starts each`);
for (const name of names) {
  const extra = name === "none" ? "" : `; median − none: ${(median(times[name]) - median(times.none)).toFixed(0)} ms, `
    + `${((median(times[name]) - median(times.none)) / copies).toFixed(1)} ms a copy`;
  console.log(`${name}: median ${median(times[name]).toFixed(0)} ms (${times[name].map((t) => t.toFixed(0)).join(" ")})${extra}`);
}
