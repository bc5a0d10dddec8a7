#!/usr/bin/env bash
# Lints the OpenAPI document (public/api/v1/openapi.json) with the OpenAPI and OWASP API Security
# rules of .spectral.yaml; fails on any error (warnings are printed, not fatal). Needs the npm
# packages (npm ci).
set -euo pipefail
cd "$(dirname "$0")/.."

printf '\n== OpenAPI lint (public/api/v1/openapi.json, .spectral.yaml)\n'
node_modules/.bin/spectral lint public/api/v1/openapi.json --ruleset .spectral.yaml --fail-severity error
