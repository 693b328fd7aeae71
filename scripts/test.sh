#!/usr/bin/env bash
# `npm test`: sets up what the tests need (Node 22, npm packages, PostgreSQL 15) and runs every suite.
# Works on a fresh machine and on CI (CI=true, no stdin).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/node22.sh
echo "[test] node $(node -v)"

# npm packages, installed with Node 22 (the runtime supabase-js requires); reinstalled when the lock changes.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "[test] installing npm packages ..."
  npm ci --no-audit --no-fund --loglevel=error
fi

. scripts/postgres.sh
# Real VS Code for the in-host and end-to-end suites: code-server + Debian Chromium (first run ~2 min).
. scripts/code-server.sh
cs_setup

mkdir -p test-results
echo "[test] type-checking ..."
npx tsc -p tsconfig.json --noEmit
echo "[test] building ..."
rm -rf out .cache/e2e test-results/*.json
node esbuild.js --tests
echo "[test] packaging the extension ..."
bash scripts/package.sh > test-results/package.log 2>&1 || { cat test-results/package.log; exit 1; }

set +e
npx mocha --config test/.mocharc.json "$@"
rc=$?
set -e
node scripts/summarize-results.js test-results/mocha.json test-results/inhost.json || true
exit $rc
