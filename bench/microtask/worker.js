// Schedules ?n= callbacks with ?mode= qm (queueMicrotask), then (a resolved promise) or none
// (plain calls), and answers once all have run. For bench/microtask/run.mjs.
export default {
  async fetch(request) {
    const url = new URL(request.url);
    const n = Number(url.searchParams.get("n") ?? 100000);
    const mode = url.searchParams.get("mode");
    let count = 0;
    await new Promise((resolve) => {
      const tick = () => { if (++count === n) resolve(); };
      if (mode === "qm") for (let i = 0; i < n; i++) queueMicrotask(tick);
      else if (mode === "then") { const p = Promise.resolve(); for (let i = 0; i < n; i++) p.then(tick); }
      else { for (let i = 0; i < n; i++) tick(); }
    });
    return new Response(String(count));
  },
};
