#!/usr/bin/env bash
# `npm run bench`: builds the daemon and the benchmarks, runs them with Node 22.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/node22.sh
node esbuild.js
npx esbuild bench/*.ts --bundle --platform=node --target=node22 --format=cjs --packages=external --outdir=out/bench --log-level=warning
for b in out/bench/*.js; do echo "== $b"; node "$b"; done
