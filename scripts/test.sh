#!/usr/bin/env bash
# Command 2: set up, then every test: lints, native unit tests, and the end-to-end suite against
# the real Worker under wrangler dev (the harness in tests/e2e builds it once).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export WRANGLER_SEND_METRICS=false

printf '\n== format and lints (native and wasm32)\n'
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo clippy --lib --target wasm32-unknown-unknown --locked -- -D warnings

printf '\n== unit and end-to-end tests\n'
workerd_before=$(pgrep -x workerd | sort || true)
cargo test --locked

printf '\n== no process of the run outlives it\n'
left_over() { comm -13 <(echo "$workerd_before") <(pgrep -x workerd | sort || true) | grep . || true; }
for _ in $(seq 1 20); do [ -z "$(left_over)" ] && break; sleep 0.5; done
if [ -n "$(left_over)" ]; then echo "workerd processes outlived the test run: $(left_over)" >&2; exit 1; fi
echo "no workerd process of this run is left"
