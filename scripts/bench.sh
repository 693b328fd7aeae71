#!/usr/bin/env bash
# `npm run bench`: sets up what the bench needs the way `npm test` does (Node 22, npm packages,
# PostgreSQL 15, code-server), builds the production bundles and the VSIX (`npm run package`) and the
# bench, then runs bench/main.ts. Under 5 minutes on 2 cores once set up. Options: see bench/main.ts.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/node22.sh
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "[bench] installing npm packages ..." >&2
  npm ci --no-audit --no-fund --loglevel=error
fi
. scripts/postgres.sh
if [ -z "${BENCH_ONLY:-}" ] || [[ ",${BENCH_ONLY}," == *,extension,* ]]; then
  . scripts/code-server.sh
  cs_setup
fi
# 2,000 connections: the bench holds 2,000 sockets and so does the server it measures.
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 8192 ]; then
  ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
fi
mkdir -p bench/results
rm -rf .cache/e2e/bench-*   # the previous run's code-server profile and screenshots
echo "[bench] building the production bundles and the VSIX (npm run package) ..." >&2
bash scripts/package.sh > bench/results/package.log 2>&1 || { cat bench/results/package.log; exit 1; }
node esbuild.js --production --bench
exec node out/bench/run/main.js
