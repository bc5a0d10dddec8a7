# The two commands of the README, and the benchmark. Each sets up what it needs itself.
.PHONY: dev test build bench profile fuzz soak

dev:
	bash scripts/dev.sh

test:
	bash scripts/test.sh

build:
	bash scripts/setup.sh dev && bash scripts/build.sh

# Performance and size of the release Worker in workerd, wrk over 127.0.0.1 (BENCHMARKS.md): bench/run.mjs,
# then bench/edge.mjs (the Rust Worker against the JavaScript Worker doing the same work: isolate CPU,
# latency at a fixed rate with oha, throughput; paired rounds, bootstrap intervals, one line per target).
# BENCH_SUITE=edge|run runs only one of them (scripts/bench.sh).
# BENCH_OTHER_TREE=dir runs another checkout's release build beside it (case other-gateway-valid-key).
bench:
	bash scripts/bench.sh

# Where case gateway-valid-key's (or PROFILE_CASE's) time goes: a V8 CPU profile of the release
# Worker under wrk, built with the wasm names kept (bench/profile.mjs).
profile:
	bash scripts/setup.sh dev && EDGE_KEYS_KEEP_NAMES=1 bash scripts/build.sh
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	node_modules/.bin/node bench/profile.mjs

# Every cargo-fuzz target for FUZZ_SECONDS (default 60) each; needs nightly (see scripts/fuzz.sh).
fuzz:
	bash scripts/fuzz.sh

# Load and soak: SOAK_SECONDS (60) at SOAK_CONNECTIONS (50) against the front Worker with the whole
# Worker behind it (SOAK_SHAPE=whole: the whole Worker alone) in workerd on 127.0.0.1, every
# decision checked (bench/soak.mjs).
soak: build
	node_modules/.bin/node bench/soak.mjs
