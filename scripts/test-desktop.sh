#!/usr/bin/env bash
# `npm run test:desktop`: the in-host suite in desktop VS Code via @vscode/test-electron.
# Needs a VS Code it can download, or one given by VSCODE_EXECUTABLE_PATH; on Linux without a
# display it runs under xvfb-run (Debian package xvfb). CI uses code-server instead (npm test).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/node22.sh
[ -f node_modules/.package-lock.json ] || npm ci --no-audit --no-fund --loglevel=error
. scripts/postgres.sh
node esbuild.js --tests
mkdir -p test-results
if [ -z "${DISPLAY:-}" ] && command -v xvfb-run >/dev/null; then
  exec xvfb-run -a node out/test/desktop/run.js
fi
exec node out/test/desktop/run.js
