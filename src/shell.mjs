// The whole Worker's entry point, in front of the Rust module that worker-build generates
// (scripts/build.sh renames it rust.mjs and installs this file as build/index.js).
//
// Why a JavaScript shell: the generated entry point is a WorkerEntrypoint class behind two
// Proxies, constructed for every request, and an async Rust handler pays wasm-bindgen's
// promise glue (a task, its wake-ups, two closures per await) on every await. This shell is a
// plain module Worker object, and it runs the gateway's hot path, a key that the cache decides,
// as a gate (src/gate.rs, driven by src/gate.mjs); the Rust handler gets everything else.
import Rust from "./rust.mjs";
import { gateway } from "./gate.mjs";

const handlers = Rust.prototype;

function rust(name, argument, env, ctx) {
  return handlers[name].call({ env, ctx }, argument);
}

export default {
  fetch: gateway(handlers, (request, env, ctx) => rust("fetch", request, env, ctx)),
  queue(batch, env, ctx) {
    return rust("queue", batch, env, ctx);
  },
  scheduled(event, env, ctx) {
    return rust("scheduled", event, env, ctx);
  },
};
