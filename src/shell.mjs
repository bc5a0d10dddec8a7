// The Worker's entry point, in front of the Rust module that worker-build generates
// (scripts/build.sh renames it rust.mjs and installs this file as build/index.js).
//
// Why a JavaScript shell: the generated entry point is a WorkerEntrypoint class behind two
// Proxies, constructed for every request, and an async Rust handler pays wasm-bindgen's
// promise glue (a task, its wake-ups, two closures per await) on every await. This shell is a
// plain module Worker object, and it runs the gateway's hot path, a key that the cache
// decides, as a `Gate`: Rust makes every decision synchronously and hands back either the
// response, or a promise for this shell to await and give back, or nothing, in which case the
// whole request goes to the Rust handler as it is. The request's body is never touched before
// that hand-over.
import Rust, { Gate } from "./rust.mjs";

const handlers = Rust.prototype;
// Read once: worker-build exports each Rust class behind a Proxy.
const begin = Gate.begin;

function rust(name, argument, env, ctx) {
  return handlers[name].call({ env, ctx }, argument);
}

export default {
  async fetch(request, env, ctx) {
    const gate = begin(request, env, ctx);
    if (gate === undefined) return rust("fetch", request, env, ctx);
    try {
      let step = gate.next(undefined, true);
      while (step instanceof Promise) {
        let settled;
        let ok = true;
        try {
          settled = await step;
        } catch (error) {
          settled = error;
          ok = false;
        }
        step = gate.next(settled, ok);
      }
      return step ?? rust("fetch", request, env, ctx);
    } finally {
      gate.free();
    }
  },
  queue(batch, env, ctx) {
    return rust("queue", batch, env, ctx);
  },
  scheduled(event, env, ctx) {
    return rust("scheduled", event, env, ctx);
  },
};
