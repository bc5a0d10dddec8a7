// The ratios of bench/edge.mjs over the rounds of several runs pooled: since every round starts
// its Workers afresh, each round is an independent sample of new processes and of the machine's
// moment, and rounds from runs of the same build can be put together for a narrower interval.
// It reads what edge.mjs prints while it runs (its standard error: one `round r/n phase case:
// figure` line per measurement, the figures rounded as printed), pairs the cases within each
// round of each run, and leaves out the measurements that edge.mjs did not count.
//
//   node bench/pool-rounds.mjs RUN.log [RUN.log ...]     (BENCH_SEED=1 as in edge.mjs)

import { readFileSync } from "node:fs";
import { EDGE_RATIOS, bootstrap, median } from "./stats.mjs";

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node bench/pool-rounds.mjs RUN.log [RUN.log ...]");
  process.exit(2);
}
const SEED = Math.round(Number(process.env.BENCH_SEED || 1));
const RESAMPLES = 10_000;

const LINE = /^round (\d+)\/\d+ (cpu|latency|throughput) ([\w-]+): (.*)$/;
/// Per run and round, each case's figures: { cpu, p50, p99, p999, rps }.
const rounds = [];
for (const file of files) {
  const byRound = new Map();
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const match = LINE.exec(line);
    if (!match || line.includes("NOT COUNTED")) continue;
    const [, round, phase, name, figure] = match;
    if (!byRound.has(round)) byRound.set(round, {});
    const entry = (byRound.get(round)[name] ??= {});
    if (phase === "latency") {
      [entry.p50, entry.p99, entry.p999] = /p50 ([\d.]+) p99 ([\d.]+) p99\.9 ([\d.]+)/.exec(figure).slice(1).map(Number);
    } else {
      entry[phase === "cpu" ? "cpu" : "rps"] = Number.parseFloat(figure);
    }
  }
  rounds.push(...byRound.values());
}

console.log(`${rounds.length} rounds from ${files.length} runs (${files.join(", ")}); 95 % percentile bootstrap of the median over the pooled rounds, ${RESAMPLES} resamples, seed ${SEED}.\n`);
console.log("| ratio | figure | paired rounds | median | 95 % interval | rounds at or below 1.00 |");
console.log("| --- | --- | ---: | ---: | --- | ---: |");
for (const [what, x, y, field] of EDGE_RATIOS) {
  const list = rounds.map((r) => r[x]?.[field] / r[y]?.[field]).filter(Number.isFinite);
  const [low, high] = bootstrap(list, `${x}/${y}/${field}`, { seed: SEED, resamples: RESAMPLES });
  const atOrBelow = list.filter((v) => v <= 1).length;
  console.log(`| ${x} / ${y} | ${what} | ${list.length} | ${median(list).toFixed(3)} | ${low.toFixed(3)}–${high.toFixed(3)} | ${atOrBelow} of ${list.length} |`);
}
