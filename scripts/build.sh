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
if [ "${EDGE_KEYS_PREBUILT:-}" = 1 ] && [ -f build/index.js ] && [ -f build/front/index.js ]; then
  exit 0
fi
# `make dev` runs two configs (wrangler.front.toml, wrangler.toml), and each runs this build when a
# source changes: one build at a time, on a lock of this very file.
exec 9<scripts/build.sh
flock 9

# EDGE_KEYS_FEATURES: cargo features of a test build (the e2e harness's panic-on-demand); none
# for a deployment.
features="${EDGE_KEYS_FEATURES:-}"

# One module of the Worker: worker-build into $1, with the cargo features that follow.
build_module() {
  local out="$1"
  shift
  local with_features=()
  local joined
  joined="$(IFS=,; echo "$*")"
  [ -n "$joined" ] && with_features=(--features "$joined")
  "$cargo_bin/worker-build" --release --out-dir "$out" . "${with_features[@]}"

  # worker-build keeps the wasm names section (about 110 KB, 35 KB gzipped) for symbolicated
  # stack traces. With panic = "abort" those traces are rare and short, and every byte is paid
  # at each cold start, so it is stripped. EDGE_KEYS_KEEP_NAMES=1 keeps it for a debugging build.
  if [ "${EDGE_KEYS_KEEP_NAMES:-}" != 1 ]; then
    local wasm_features="--enable-mutable-globals --enable-sign-ext"
    wasm_features="$wasm_features --enable-nontrapping-float-to-int --enable-bulk-memory"
    wasm_features="$wasm_features --enable-multivalue --enable-reference-types"
    wasm_features="$wasm_features --enable-exception-handling"
    # shellcheck disable=SC2086 # the features are separate words on purpose
    "$WASM_OPT_BIN" "$out/index_bg.wasm" $wasm_features --strip-debug --strip-producers \
      -o "$out/index_bg.wasm"
  fi
  # The shell imports each module's generated entry point as `rust.mjs`: `.mjs`, since a module
  # loader that is told nothing else reads `.js` imports as CommonJS.
  mv "$out/index.js" "$out/rust.mjs"
}

# build/: the whole Worker (wrangler.toml). build/front/: the front Worker
# (wrangler.front.toml), the gateway's fast path alone, built without the handlers.
# shellcheck disable=SC2086 # no features, or a comma-separated list: one word either way
build_module build $features
# shellcheck disable=SC2086
build_module build/front gate-only $features

# Each entry point is a JavaScript shell (src/shell.mjs, src/front.mjs) that runs the gateway's
# fast path (src/gate.mjs) and hands everything else on.
cp src/shell.mjs build/index.js
cp src/front.mjs build/front/index.js
cp src/gate.mjs build/gate.mjs
cp src/gate.mjs build/front/gate.mjs
