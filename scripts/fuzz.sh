#!/usr/bin/env bash
# `make fuzz`: every cargo-fuzz target for a bounded time each (FUZZ_SECONDS, default 60).
# Needs the nightly toolchain (on these machines) and cargo-fuzz, installed here when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO_FUZZ_VERSION=0.13.2
seconds="${FUZZ_SECONDS:-60}"
cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
if [ "$("$cargo_bin/cargo-fuzz" --version 2>/dev/null | awk '{ print $NF }')" != "$CARGO_FUZZ_VERSION" ]; then
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
for target in $(cargo +nightly fuzz list); do
  printf '\n== fuzz %s for %ss\n' "$target" "$seconds"
  cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" -rss_limit_mb=2048 2>&1 | tail -n 3
done
