#!/usr/bin/env bash
# Real VS Code for `npm start` and the in-host/e2e tests, offline: code-server 4.117.0 (= VS Code 1.117)
# from the npm registry, run on Node 22, driven by Debian's Chromium. Adapted from the verified recipe in
# ../shared/vscode-e2e/recipe.sh; its pitfalls are kept as comments here.
#   . scripts/code-server.sh && cs_setup      # once: apt packages, code-server (~95 s on 2 cores)
# Everything lives in .cache/vscode (HOME, XDG dirs, npm cache), never in the user's own profile.
set -u
EXAI_ROOT=${EXAI_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
. "$EXAI_ROOT/scripts/node22.sh"
CS_VERSION=${CS_VERSION:-4.117.0}          # 4.103.2 .. 4.117.0 need Node 22; 4.133+ need Node 24
CS_LAB="$EXAI_ROOT/.cache/vscode"
CS_BIN="$CS_LAB/cs/node_modules/.bin/code-server"   # '#!/usr/bin/env node': Node 22 must be first on PATH
unset PORT                                   # code-server treats $PORT as an override of --bind-addr

cs_env() {
  export npm_config_unsafe_perm=true         # code-server's postinstall refuses to run as root without it
  export TMPDIR="$CS_LAB/tmp"                # @vscode/ripgrep looks for its download cache in $TMPDIR
  export HOME="$CS_LAB/home" XDG_CONFIG_HOME="$CS_LAB/home/.config" XDG_DATA_HOME="$CS_LAB/home/.local/share" XDG_CACHE_HOME="$CS_LAB/home/.cache"
  mkdir -p "$TMPDIR" "$XDG_CONFIG_HOME" "$XDG_DATA_HOME" "$XDG_CACHE_HOME"
}

cs_apt() {
  # chromium (the browser), ripgrep (stand-in for @vscode/ripgrep's GitHub download),
  # libkrb5-dev (the kerberos native module needs gssapi headers)
  if ! command -v chromium >/dev/null || ! command -v rg >/dev/null || ! dpkg -s libkrb5-dev >/dev/null 2>&1; then
    echo "[setup] installing Debian packages: chromium ripgrep libkrb5-dev ..." >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium ripgrep libkrb5-dev >&2
  fi
}

cs_setup() {
  cs_apt || return 1
  [ -x "$CS_BIN" ] && return 0
  ( cs_env
    local pk="$CS_LAB/pack" rgv rgtag
    mkdir -p "$pk"
    echo "[setup] installing code-server $CS_VERSION (about 95 s on 2 cores; log: $CS_LAB/cs-install.log) ..." >&2
    # Seed @vscode/ripgrep's download cache with Debian's rg (its postinstall would fetch from github.com).
    (cd "$pk" && npm pack --silent "code-server@$CS_VERSION" >/dev/null && tar xzf "code-server-$CS_VERSION.tgz" package/lib/vscode/npm-shrinkwrap.json)
    rgv=$(node -p "require('$pk/package/lib/vscode/npm-shrinkwrap.json').packages['node_modules/@vscode/ripgrep'].version")
    (cd "$pk" && npm pack --silent "@vscode/ripgrep@$rgv" >/dev/null && mkdir -p rg && tar xzf "vscode-ripgrep-$rgv.tgz" -C rg)
    rgtag=$(sed -n "s/^const VERSION = '\(.*\)';/\1/p" "$pk/rg/package/lib/postinstall.js")
    mkdir -p "$TMPDIR/vscode-ripgrep-cache-$rgv" "$CS_LAB/rgstage" && cp "$(command -v rg)" "$CS_LAB/rgstage/rg"
    tar czf "$TMPDIR/vscode-ripgrep-cache-$rgv/ripgrep-$rgtag-x86_64-unknown-linux-musl.tar.gz" -C "$CS_LAB/rgstage" rg
    # code-server's postinstall runs `npm install` in lib/vscode and builds ~10 native modules with node-gyp.
    mkdir -p "$CS_LAB/cs"; [ -f "$CS_LAB/cs/package.json" ] || echo '{"name":"cs","private":true}' > "$CS_LAB/cs/package.json"
    local started=$SECONDS
    (cd "$CS_LAB/cs" && npm install "code-server@$CS_VERSION" --foreground-scripts --no-audit --no-fund > "$CS_LAB/cs-install.log" 2>&1) &
    local pid=$!
    while kill -0 $pid 2>/dev/null; do sleep 10; echo "[setup]   ... code-server install running ($((SECONDS - started)) s)" >&2; done
    wait $pid || { tail -40 "$CS_LAB/cs-install.log" >&2; exit 1; }
    echo "[setup] code-server installed in $((SECONDS - started)) s" >&2
  )
}
