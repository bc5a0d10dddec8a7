#!/usr/bin/env bash
# Command 2: set up, then every test: lints, native unit tests, and the end-to-end suite against
# the real Worker under wrangler dev (the harness in tests/e2e builds it once).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
export WRANGLER_SEND_METRICS=false

printf '\n== format and lints (native and wasm32)\n'
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo clippy --lib --target wasm32-unknown-unknown --locked -- -D warnings
# The gate module is shipped too (scripts/build.sh).
cargo clippy --lib --target wasm32-unknown-unknown --locked --features gate-only -- -D warnings

bash scripts/lint-openapi.sh

printf '\n== unit and end-to-end tests\n'
rm -f .e2e/wrangler.pgid
cargo test --locked

printf '\n== no process of the run outlives it\n'
# The harness started each wrangler dev (and so its workerd) in a process group of its own and
# wrote the group ids down; every process of those groups must be gone. Other checkouts' runs
# are not counted.
groups=$(cat .e2e/wrangler.pgid)
survivors() { for g in $groups; do pgrep -g "$g" || true; done; }
for _ in $(seq 1 20); do [ -z "$(survivors)" ] && break; sleep 0.5; done
if [ -n "$(survivors)" ]; then
  echo "processes of the test run outlived it:" >&2
  for g in $groups; do pgrep -a -g "$g" >&2 || true; done
  exit 1
fi
echo "no process of the run's wrangler/workerd groups ($(echo $groups)) is left"
