// The statistics of bench/edge.mjs and bench/pool-rounds.mjs: the ratios they report, medians
// over rounds, and their percentile-bootstrap intervals from a seeded generator, so that a run's
// intervals can be recomputed from its figures.

import { createHash } from "node:crypto";

/// The ratios of bench/edge.mjs's cases, [what, x, y, field] for x / y, with which its targets
/// are judged: the Rust Worker against the JavaScript one, each rejection against the Rust
/// acceptance, and the two Workers' refusals of the same unknown key.
export const EDGE_RATIOS = [
  ["isolate CPU per request", "gateway-valid-key", "js-same-work", "cpu"],
  ["throughput (closed loop)", "gateway-valid-key", "js-same-work", "rps"],
  ["p50 at the fixed rate", "gateway-valid-key", "js-same-work", "p50"],
  ["p99 at the fixed rate", "gateway-valid-key", "js-same-work", "p99"],
  ["p99.9 at the fixed rate", "gateway-valid-key", "js-same-work", "p999"],
  ...["malformed-key", "unknown-key-cached"].flatMap((name) => [
    ["isolate CPU per request", name, "gateway-valid-key", "cpu"],
    ["p99 at the fixed rate", name, "gateway-valid-key", "p99"],
  ]),
  ["isolate CPU per request", "js-unknown-key-cached", "js-same-work", "cpu"],
  ["p99 at the fixed rate", "js-unknown-key-cached", "js-same-work", "p99"],
  ["isolate CPU per request", "unknown-key-cached", "js-unknown-key-cached", "cpu"],
  ["p99 at the fixed rate", "unknown-key-cached", "js-unknown-key-cached", "p99"],
];

export function median(values) {
  const sorted = [...values].sort((x, y) => x - y);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length === 0 ? NaN : sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/// mulberry32: a small seeded PRNG.
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/// The percentile-bootstrap 95 % interval of the median of `values` (one value per round):
/// `resamples` resamples of the rounds, with replacement. Each ratio gets its own stream of the
/// seed, derived from its label, so that its interval does not depend on which others are
/// computed.
export function bootstrap(values, label, { seed, resamples }) {
  if (values.length < 2) return [NaN, NaN];
  const random = prng(seed ^ Number.parseInt(createHash("sha256").update(label).digest("hex").slice(0, 8), 16));
  const medians = new Float64Array(resamples);
  const resample = new Array(values.length);
  for (let r = 0; r < resamples; r++) {
    for (let i = 0; i < values.length; i++) resample[i] = values[Math.floor(random() * values.length)];
    medians[r] = median(resample);
  }
  medians.sort();
  return [medians[Math.floor(0.025 * resamples)], medians[Math.ceil(0.975 * resamples) - 1]];
}
