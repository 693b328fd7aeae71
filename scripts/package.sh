#!/usr/bin/env bash
# `npm run package`: a production build, then the .vsix (with the daemon bundle; no node_modules,
# tests or sources — see .vscodeignore).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/node22.sh
node esbuild.js --production
npx vsce package --no-dependencies --allow-missing-repository --readme-path docs/extension-README.md --no-rewrite-relative-links -o "exai-vscode-$(node -p 'require("./package.json").version').vsix"
