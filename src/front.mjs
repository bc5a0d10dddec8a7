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

const { gate_hand_over: handOver } = Gate.prototype;

export default {
  fetch: gateway(Gate.prototype, (request, env) => env.EDGE_KEYS.fetch(handOver(request, env))),
};
