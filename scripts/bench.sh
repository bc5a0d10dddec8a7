#!/usr/bin/env bash
# `make bench`: set up, build the release Worker, install wrk (Debian) and oha (cargo, pinned) when
# missing, and run the benchmarks against workerd on 127.0.0.1:
#   BENCH_SUITE=all (default): bench/run.mjs (every case, throughput and process CPU, the D1 miss
#     path as the table grows; a few minutes), then bench/edge.mjs (the Rust Worker against the
#     JavaScript Worker doing the same work: isolate CPU, latency at a fixed rate, throughput, in
#     paired rounds with intervals, every round on new processes; about 20 minutes).
#   BENCH_SUITE=edge: bench/edge.mjs only.  BENCH_SUITE=run: bench/run.mjs only.
set -euo pipefail
cd "$(dirname "$0")/.."
suite="${BENCH_SUITE:-all}"
case "$suite" in
  all | edge | run) ;;
  *) echo "BENCH_SUITE: all, edge or run, not $suite" >&2; exit 2 ;;
esac
bash scripts/setup.sh dev
bash scripts/build.sh
if ! command -v wrk >/dev/null; then
  apt-get update -qq && apt-get install -y -qq wrk
fi
if [ "$suite" != run ]; then
  cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
  # The open-loop load generator of bench/edge.mjs, at the version its JSON output was read for.
  if [ ! -x "$cargo_bin/oha" ]; then
    cargo install oha --locked --version 1.16.0
  fi
  export OHA="$cargo_bin/oha"
fi
status=0
if [ "$suite" != edge ]; then
  node_modules/.bin/node bench/run.mjs || status=$?
fi
if [ "$suite" != run ]; then
  # Runs even when run.mjs reported unexpected responses: the two are independent.
  node_modules/.bin/node bench/edge.mjs || status=$?
fi
exit "$status"
