// The Worker's entry point, in front of the Rust module that worker-build generates
// (scripts/build.sh renames it rust.mjs and installs this file as build/index.js).
//
// Why a JavaScript shell: the generated entry point is a WorkerEntrypoint class behind two
// Proxies, constructed for every request, and an async Rust handler pays wasm-bindgen's
// promise glue (a task, its wake-ups, two closures per await) on every await. This shell is a
// plain module Worker object, and it runs the gateway's hot path, a key that the cache decides,
// as a gate (src/gate.rs): Rust makes every decision synchronously and hands back either the
// response, or a promise for this shell to await and give back, or nothing, in which case the
// whole request goes to the Rust handler as it is. The request's body is never touched before
// that hand-over.
import Rust from "./rust.mjs";

// worker-build puts every function that Rust exports on its entry point's prototype.
const handlers = Rust.prototype;
const { gate_begin: begin, gate_next: next, gate_end: end } = handlers;

function rust(name, argument, env, ctx) {
  return handlers[name].call({ env, ctx }, argument);
}

export default {
  async fetch(request, env, ctx) {
    const gate = begin(request, env, ctx);
    if (gate === 0) return rust("fetch", request, env, ctx);
    try {
      let step = next(gate, undefined, true);
      while (step instanceof Promise) {
        let settled;
        let ok = true;
        try {
          settled = await step;
        } catch (error) {
          settled = error;
          ok = false;
        }
        step = next(gate, settled, ok);
      }
      return step ?? rust("fetch", request, env, ctx);
    } finally {
      end(gate);
    }
  },
  queue(batch, env, ctx) {
    return rust("queue", batch, env, ctx);
  },
  scheduled(event, env, ctx) {
    return rust("scheduled", event, env, ctx);
  },
};
