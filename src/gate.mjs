// Drives the gateway's fast path (src/gate.rs) of a Rust module: shared by the two entry points,
// the whole Worker's (src/shell.mjs) and the front Worker's (src/front.mjs).
//
// Rust makes every decision synchronously and hands back either the response, or a promise for
// this loop to await and give back, or nothing, in which case the whole request goes to
// `otherwise` as it is. The request's body is never touched before that hand-over.

/// A fetch handler that runs each request through the gate of `handlers` (the prototype of a
/// module's generated entry point, where worker-build puts every function Rust exports).
export function gateway({ gate_begin: begin, gate_next: next, gate_end: end }, otherwise) {
  return async function fetch(request, env, ctx) {
    const gate = begin(request, env, ctx);
    if (gate === 0) return otherwise(request, env, ctx);
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
      return step ?? otherwise(request, env, ctx);
    } finally {
      end(gate);
    }
  };
}
