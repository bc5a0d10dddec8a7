// Where the Worker's wasm bytes go, and what a Worker without some of its code would weigh.
//
//   EDGE_KEYS_KEEP_NAMES=1 bash scripts/build.sh      # a release build that keeps function names
//   node bench/wasm-size.mjs [--top N] [--without REGEX]... [build/index_bg.wasm]
//
// Prints the module's sections (raw and gzip -9 each), the code section's bytes by crate and by
// module of this crate, and the N largest functions (default 25). With --without, it also writes
// a copy of the module in which every function whose name matches one of the expressions has
// the body `unreachable`, runs wasm-opt over it as build.sh does (names stripped), and prints its
// size: what a build without that code would weigh, everything that only those functions reached
// being dropped by wasm-opt's dead-code passes. It is an estimate, not a build: a function that
// the compiler inlined into one that stays is kept, and functions reachable only through the
// table of indirect calls (the futures' vtables) stay too, so the figure is an upper bound.
// Run it on the module as wasm-bindgen leaves it (BENCHMARKS.md, "Size", has the commands):
// build.sh's wasm-opt inlines the routes into the fetch task, after which they have no name.
// Reads and writes files only; runs nothing of the Worker.

import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const root = fileURLToPath(new URL("..", import.meta.url));
const args = process.argv.slice(2);
let top = 25;
const without = [];
let file = `${root}build/index_bg.wasm`;
while (args.length) {
  const arg = args.shift();
  if (arg === "--top") top = Number(args.shift());
  else if (arg === "--without") without.push(new RegExp(args.shift()));
  else file = arg;
}

const gzip = (bytes) => gzipSync(bytes, { level: 9 }).length;

/// An unsigned LEB128 at `at`: its value and the offset after it.
function leb(bytes, at) {
  let value = 0;
  let shift = 0;
  for (;;) {
    const byte = bytes[at++];
    value += (byte & 0x7f) * 2 ** shift;
    shift += 7;
    if (byte < 0x80) return [value, at];
  }
}
function encodeLeb(value) {
  const out = [];
  do {
    let byte = value % 128;
    value = Math.floor(value / 128);
    if (value) byte |= 0x80;
    out.push(byte);
  } while (value);
  return Buffer.from(out);
}
const name = (bytes, at) => {
  const [length, start] = leb(bytes, at);
  return [bytes.subarray(start, start + length).toString("utf8"), start + length];
};

/// The module's sections, the names of its functions (from the name section) and how many
/// functions it imports (the code section's first body is function number `imported`).
function parse(bytes) {
  const sections = [];
  const names = new Map();
  let imported = 0;
  for (let at = 8; at < bytes.length;) {
    const id = bytes[at];
    const [size, start] = leb(bytes, at + 1);
    const body = bytes.subarray(start, start + size);
    let label = ["custom", "type", "import", "function", "table", "memory", "global", "export", "start", "element", "code", "data", "data count", "tag"][id] ?? `${id}`;
    if (id === 0) {
      const [custom, after] = name(body, 0);
      label = `custom: ${custom}`;
      if (custom === "name") {
        for (let k = after; k < body.length;) {
          const kind = body[k];
          const [length, from] = leb(body, k + 1);
          if (kind === 1) {
            let [count, m] = leb(body, from);
            for (; count > 0; count--) {
              let index;
              [index, m] = leb(body, m);
              let text;
              [text, m] = name(body, m);
              names.set(index, text);
            }
          }
          k = from + length;
        }
      }
    }
    if (id === 2) {
      let [count, m] = leb(body, 0);
      for (; count > 0; count--) {
        m = name(body, m)[1];
        m = name(body, m)[1];
        const kind = body[m++];
        if (kind === 0) {
          imported++;
          m = leb(body, m)[1];
        } else if (kind === 1) {
          m++;
          const flags = body[m++];
          m = leb(body, m)[1];
          if (flags & 1) m = leb(body, m)[1];
        } else if (kind === 2) {
          const flags = body[m++];
          m = leb(body, m)[1];
          if (flags & 1) m = leb(body, m)[1];
        } else if (kind === 3) m += 2;
        else if (kind === 4) m = leb(body, m + 1)[1];
      }
    }
    sections.push({ id, label, whole: bytes.subarray(at, start + size), body });
    at = start + size;
  }
  const code = sections.find((s) => s.id === 10);
  const functions = [];
  if (code) {
    let [count, m] = leb(code.body, 0);
    for (let index = imported; count > 0; count--, index++) {
      const [size, start] = leb(code.body, m);
      functions.push({ index, name: names.get(index) ?? `function ${index}`, size: start - m + size, body: code.body.subarray(start, start + size) });
      m = start + size;
    }
  }
  return { sections, functions };
}

/// A function's crate and, for this crate, its module: from a demangled name as wasm-bindgen
/// leaves it (`<a::b as c::D>::f`, `core[hash]::x::y`), or a mangled one.
function owner(functionName) {
  const path = functionName.replace(/^<+(&(mut )?)?/, "").replace(/\[[0-9a-f]+\]/g, "");
  const parts = path.split("::");
  return parts[0] === "rally_edge_keys" ? `rally_edge_keys::${parts[1]}` : parts[0].split(/[ <]/)[0];
}

const bytes = readFileSync(file);
const { sections, functions } = parse(bytes);
const out = [];
out.push(`${file}: ${bytes.length} bytes, ${gzip(bytes)} gzip -9`);
out.push("");
out.push("| section | bytes | gzip -9 alone |");
out.push("| --- | ---: | ---: |");
for (const s of sections) out.push(`| ${s.label} | ${s.body.length} | ${gzip(s.body)} |`);
if (!functions.some((f) => !f.name.startsWith("function "))) {
  out.push("", "No function names in this module: build it with EDGE_KEYS_KEEP_NAMES=1 to see where the code goes.");
} else {
  const byOwner = new Map();
  for (const f of functions) byOwner.set(owner(f.name), (byOwner.get(owner(f.name)) ?? 0) + f.size);
  out.push("", "| crate or module | code bytes |", "| --- | ---: |");
  for (const [who, size] of [...byOwner].sort((a, b) => b[1] - a[1]).slice(0, top)) out.push(`| ${who} | ${size} |`);
  out.push("", "| function | bytes |", "| --- | ---: |");
  for (const f of [...functions].sort((a, b) => b.size - a.size).slice(0, top)) out.push(`| ${f.name.slice(0, 120)} | ${f.size} |`);
}

if (without.length) {
  // The code section again, each matching body replaced by `unreachable` (no locals, the
  // instruction, end), which is valid whatever the function's type.
  const stub = Buffer.from([0x00, 0x00, 0x0b]);
  const stubbed = functions.filter((f) => without.some((re) => re.test(f.name)));
  const bodies = functions.map((f) => (stubbed.includes(f) ? stub : f.body));
  const code = Buffer.concat([encodeLeb(bodies.length), ...bodies.flatMap((b) => [encodeLeb(b.length), b])]);
  const parts = [bytes.subarray(0, 8), ...sections.map((s) => (s.id === 10 ? Buffer.concat([Buffer.from([10]), encodeLeb(code.length), code]) : s.whole))];
  const copy = `${file.replace(/\.wasm$/, "")}.without.wasm`;
  writeFileSync(copy, Buffer.concat(parts));
  const features = ["mutable-globals", "sign-ext", "nontrapping-float-to-int", "bulk-memory", "multivalue", "reference-types", "exception-handling"]
    .map((f) => `--enable-${f}`);
  execFileSync(`${root}node_modules/.bin/wasm-opt`, [copy, ...features, "-O", "--strip-debug", "--strip-producers", "-o", copy]);
  const after = readFileSync(copy);
  out.push("", `Without ${stubbed.length} functions (${stubbed.reduce((a, f) => a + f.size, 0)} bytes of their own) matching ${without.map(String).join(", ")}:`);
  for (const f of stubbed) out.push(`- ${f.name.slice(0, 120)} (${f.size})`);
  out.push(`then wasm-opt -O, names stripped: ${after.length} bytes, ${gzip(after)} gzip -9 (${(gzip(after) / 1024).toFixed(1)} KiB), in ${copy}`);
}
console.log(out.join("\n"));
