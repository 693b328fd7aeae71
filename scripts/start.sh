#!/usr/bin/env bash
# `npm start`: sets up (Node 22, npm packages, build) and runs the daemon in local mode, the
# embedded default that needs no Supabase account, in the foreground. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/node22.sh
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "[start] installing npm packages ..."
  npm ci --no-audit --no-fund --loglevel=error
fi
echo "[start] building ..."
node esbuild.js
export EXAI_STATE_DIR=${EXAI_STATE_DIR:-$PWD/.cache/state}
echo "[start] daemon state and logs: $EXAI_STATE_DIR"
exec node dist/server.js "$@"
