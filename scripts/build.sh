#!/usr/bin/env bash
# wrangler's [build] command. It finds its own pinned tools, so plain `npx wrangler dev` and
# `npx wrangler deploy` work without any variable set by the caller. worker-build would otherwise
# download wasm-bindgen and wasm-opt from GitHub, which these machines cannot reach.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
export WASM_BINDGEN_BIN="$cargo_bin/wasm-bindgen"
export WASM_OPT_BIN="$PWD/node_modules/.bin/wasm-opt"
export ESBUILD_BIN="$PWD/node_modules/.bin/esbuild"
for tool in "$WASM_BINDGEN_BIN" "$WASM_OPT_BIN" "$ESBUILD_BIN" "$cargo_bin/worker-build"; do
  [ -x "$tool" ] || { echo "build: $tool is missing; run scripts/setup.sh (or make dev) first" >&2; exit 1; }
done
# The end-to-end harness builds once per run, then starts wrangler dev (which runs this command
# again) with EDGE_KEYS_PREBUILT=1 so that the same build is not repeated for every start.
if [ "${EDGE_KEYS_PREBUILT:-}" = 1 ] && [ -f build/index.js ]; then
  exit 0
fi
# EDGE_KEYS_FEATURES: cargo features of a test build (the e2e harness's panic-on-demand); none
# for a deployment.
if [ -n "${EDGE_KEYS_FEATURES:-}" ]; then
  "$cargo_bin/worker-build" --release . --features "$EDGE_KEYS_FEATURES"
else
  "$cargo_bin/worker-build" --release
fi

# worker-build keeps the wasm names section (about 110 KB, 35 KB gzipped) for symbolicated stack
# traces. With panic = "abort" those traces are rare and short, and every byte is paid at each
# cold start, so it is stripped. EDGE_KEYS_KEEP_NAMES=1 keeps it for a debugging build.
if [ "${EDGE_KEYS_KEEP_NAMES:-}" != 1 ]; then
  features="--enable-mutable-globals --enable-sign-ext --enable-nontrapping-float-to-int --enable-bulk-memory"
  features="$features --enable-multivalue --enable-reference-types --enable-exception-handling"
  # shellcheck disable=SC2086 # the features are separate words on purpose
  "$WASM_OPT_BIN" build/index_bg.wasm $features --strip-debug --strip-producers -o build/index_bg.wasm
fi

# The entry point is the JavaScript shell (src/shell.mjs), which runs the gateway's fast path
# and hands everything else to the Rust module; worker-build's own entry module becomes the
# shell's import. `.mjs`, since a module loader that is told nothing else reads `.js` imports
# as CommonJS.
mv build/index.js build/rust.mjs
cp src/shell.mjs build/index.js
