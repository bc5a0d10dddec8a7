#!/usr/bin/env bash
# Lints openapi.json with the OpenAPI and OWASP API Security rules of .spectral.yaml; fails on
# any error (warnings are printed, not fatal). Needs the npm packages (npm ci).
set -euo pipefail
cd "$(dirname "$0")/.."

printf '\n== OpenAPI lint (openapi.json, .spectral.yaml)\n'
node_modules/.bin/spectral lint openapi.json --ruleset .spectral.yaml --fail-severity error
