#!/usr/bin/env bash
# Command 1: set up what wrangler dev needs, apply the D1 migrations not yet applied to the local
# D1, and serve on http://*.localhost:8787 (the front Worker, the whole one behind it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
export WRANGLER_SEND_METRICS=false
# CI=true: wrangler applies without asking (it asks only when a migration is pending).
CI=true npx wrangler d1 migrations apply DB --local
# The front Worker first, so that it has the port, and the whole Worker behind it, as in
# production (README, "The front Worker"); both read .dev.vars. Plain `npx wrangler dev` runs
# the whole Worker alone, which serves everything too.
exec npx wrangler dev -c wrangler.front.toml -c wrangler.toml --local --port "${PORT:-8787}" "$@"
