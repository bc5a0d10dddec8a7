// The front Worker's entry point (wrangler.front.toml; scripts/build.sh installs it as
// build/front/index.js): the gateway's fast path on a build of this crate with the feature
// `gate-only`, which has nothing else (README, "The front Worker"). Whatever the gate does not
// finish goes, as it is, to the whole Worker behind the service binding EDGE_KEYS.
//
// Why a Worker of its own: every module of a Worker is loaded with it, whether anything imports
// it or not (bench/wasm-load.mjs), so only a Worker without the management API's code starts
// without carrying it (BENCHMARKS.md, "The front Worker").
import Gate from "./rust.mjs";
import { gateway } from "./gate.mjs";

const { gate_blocked_until: blockedUntil } = Gate.prototype;

/// Tells the whole Worker that this request has been through a gate (its own would only read the
/// cache again), and when this isolate's block of the client ends, or 0 (src/gate.rs,
/// HANDED_OVER). Edge-owned (`x-rally-`): never forwarded to the origin, and a client's own
/// value is replaced.
const HANDED_OVER = "x-rally-handed-over";

function handOver(request, env) {
  const headers = new Headers(request.headers);
  headers.set(HANDED_OVER, String(blockedUntil(request, env)));
  return env.EDGE_KEYS.fetch(new Request(request, { headers }));
}

export default {
  fetch: gateway(Gate.prototype, handOver),
};
