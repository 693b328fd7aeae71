#!/usr/bin/env bash
# `npm start` (local mode: no Supabase account) and `npm run start:multi-user` (a GoTrue-compatible
# test server, PostgreSQL and the daemon in supabase mode; or a real project): VS Code (code-server)
# with the extension, on http://127.0.0.1:<free port>, in the foreground. Ctrl-C stops everything.
#
#   bash scripts/start.sh [--multi-user] [--check]
#
# This part is the set-up that needs a shell, each step skipped when already done, so a second run
# is ready in seconds: Node 22, npm packages, code-server (+ Chromium), PostgreSQL, then the build
# and the .vsix. Then it hands over to scripts/start/main.ts, which starts, prints and stops.
#
# package.json runs this as `exec bash scripts/start.sh`, and this file ends in `exec node`: npm's
# child is then the node program itself. With a `sh -c` in between, Ctrl-C kills that shell (npm
# then exits 130 although everything stopped cleanly) and `kill <npm pid>` (SIGTERM, which npm
# forwards to its child) kills only the shell and orphans the run.
set -euo pipefail
cd "$(dirname "$0")/.."
export EXAI_ROOT=$PWD

MODE=local
ARGS=()
for arg in "$@"; do
  case $arg in
    --multi-user) MODE=multi-user ;;
    --check) ARGS+=(--check) ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "[start] unknown option $arg (usage: npm start -- [--check]; npm run start:multi-user -- [--check])" >&2; exit 2 ;;
  esac
done

say() { echo "[start] $*"; }

# Times a step, so a slow one is visible as such (long ones print their own progress too).
step() {
  local what=$1 started=$SECONDS
  shift
  say "$what ..."
  "$@"
  say "  done in $((SECONDS - started)) s"
}

# A real project needs both its URL and its anon key; say so before any set-up.
check_real_project() {
  [ "$MODE" = multi-user ] || return 0
  if [[ -n ${SUPABASE_URL:-} && -z ${SUPABASE_ANON_KEY:-} || -z ${SUPABASE_URL:-} && -n ${SUPABASE_ANON_KEY:-} ]]; then
    echo "[start] set both SUPABASE_URL and SUPABASE_ANON_KEY to use a real Supabase project, or neither to use the built-in test server." >&2
    exit 2
  fi
}

# npm packages, installed with Node 22; reinstalled when the lock changes (as scripts/test.sh does).
npm_packages() {
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    step "installing npm packages (npm ci, about a minute)" npm ci --no-audit --no-fund --loglevel=error
  fi
}

# The production build and the .vsix (what `npm run package` does), output kept for failures only.
package_extension() {
  mkdir -p .cache/start
  bash scripts/package.sh > .cache/start/package.log 2>&1 || { cat .cache/start/package.log >&2; return 1; }
}

# scripts/start/main.ts and the test server's CLI, bundled into .cache/start/bin (not out/, which
# `npm test` deletes and rebuilds). Three levels below the root, as the test helpers expect.
bundle_start() {
  node_modules/.bin/esbuild start=scripts/start/main.ts auth-server=test/auth-server/main.ts \
    --bundle --platform=node --target=node22 --format=cjs --packages=external \
    --outdir=.cache/start/bin --log-level=warning
}

check_real_project
. scripts/node22.sh
say "node $(node -v)"
npm_packages
. scripts/code-server.sh                # also unsets PORT (code-server would bind to it)
cs_setup                                # prints progress every 10 s while installing (~95 s once)
if [ "$MODE" = multi-user ] && [ -z "${SUPABASE_URL:-}" ]; then
  . scripts/postgres.sh                 # exports EXAI_TEST_PG_ADMIN_URL
fi
step "building and packaging the extension" package_extension
bundle_start
exec node .cache/start/bin/start.js --mode "$MODE" ${ARGS[@]+"${ARGS[@]}"}
