#!/usr/bin/env bash
# `make bench`: set up, build the release Worker, install wrk (Debian) when missing, and run
# bench/run.mjs: every case against workerd on 127.0.0.1, a few minutes in all.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
bash scripts/build.sh
if ! command -v wrk >/dev/null; then
  apt-get update -qq && apt-get install -y -qq wrk
fi
exec node_modules/.bin/node bench/run.mjs
