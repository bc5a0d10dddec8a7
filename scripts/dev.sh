#!/usr/bin/env bash
# Command 1: set up, apply the schema to the local D1, and serve on http://*.localhost:8787.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export WRANGLER_SEND_METRICS=false
npx wrangler d1 execute DB --local --file schema.sql
exec npx wrangler dev --local --port "${PORT:-8787}" "$@"
