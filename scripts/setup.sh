#!/usr/bin/env bash
# What a bare machine needs, and nothing twice. Two levels:
#   scripts/setup.sh dev   (the default) what `wrangler dev`, the build and the benchmarks need:
#                          the wasm target, the pinned cargo tools, the npm packages, .dev.vars
#   scripts/setup.sh test  all of that, and the test-only tools: schemathesis in .venv and
#                          Debian's Chromium for the browser test
set -euo pipefail
cd "$(dirname "$0")/.."

level=${1:-dev}
case "$level" in
  dev | test) ;;
  *) echo "usage: scripts/setup.sh [dev|test]" >&2; exit 2 ;;
esac

WORKER_BUILD_VERSION=0.8.7
# The CLI must equal the wasm-bindgen crate in Cargo.lock exactly.
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"

step() { printf '\n== setup: %s\n' "$*"; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  step "rust target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

# worker-build prints "0.8.7", wasm-bindgen "wasm-bindgen 0.2.129": take the last word.
installed_version() { "$cargo_bin/$1" --version 2>/dev/null | awk '{ print $NF }' || true; }

if [ "$(installed_version worker-build)" != "$WORKER_BUILD_VERSION" ]; then
  step "worker-build $WORKER_BUILD_VERSION (about 10 minutes on 2 cores)"
  cargo install worker-build --version "$WORKER_BUILD_VERSION" --locked
fi
if [ "$(installed_version wasm-bindgen)" != "$WASM_BINDGEN_VERSION" ]; then
  step "wasm-bindgen-cli $WASM_BINDGEN_VERSION (about 8 minutes on 2 cores)"
  # Not --locked: its lock file names a webpki-roots release the registry here does not serve.
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi

# npm ci only when package-lock.json changed since the last install.
if ! cmp -s package-lock.json node_modules/.installed-lock 2>/dev/null; then
  step "npm ci (wrangler, workerd, Node 22, wasm-opt, esbuild)"
  npm ci --no-audit --no-fund
  cp package-lock.json node_modules/.installed-lock
fi

if [ ! -f .dev.vars ]; then
  step ".dev.vars from .dev.vars.example"
  cp .dev.vars.example .dev.vars
fi
# A .dev.vars made before a new variable was added to the example gets that variable; values a
# developer set are never changed.
for name in $(sed -n 's/^\([A-Z_][A-Z0-9_]*\)=.*/\1/p' .dev.vars.example); do
  if ! grep -q "^$name=" .dev.vars; then
    step ".dev.vars: $name from .dev.vars.example"
    grep "^$name=" .dev.vars.example >> .dev.vars
  fi
done

[ "$level" = test ] || exit 0

# schemathesis (the OpenAPI contract run of the test suite), only when its pins changed.
if ! cmp -s requirements-test.txt .venv/.installed-requirements 2>/dev/null; then
  step "python test tools (.venv, requirements-test.txt)"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements-test.txt
  cp requirements-test.txt .venv/.installed-requirements
fi

# Debian's Chromium for the settings page's browser test (playwright-core drives it; Playwright's
# own browser download cannot work on these machines).
if [ ! -x /usr/bin/chromium ]; then
  step "chromium (apt)"
  apt-get update -qq
  apt-get install -y -qq chromium
fi
