#!/usr/bin/env bash
# Command 1: set up what wrangler dev needs, apply the D1 migrations not yet applied to the local
# D1, and serve on http://*.localhost:8787.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
export WRANGLER_SEND_METRICS=false
# CI=true: wrangler applies without asking (it asks only when a migration is pending).
CI=true npx wrangler d1 migrations apply DB --local
exec npx wrangler dev --local --port "${PORT:-8787}" "$@"
