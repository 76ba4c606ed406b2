#!/usr/bin/env bash
# Installs playwright-core (npm, pinned) under target/ci-playwright for the console's browser
# test, which drives the system's Chromium (Debian: apt-get install chromium). A prefix of its
# own: installed beside componentize-js in target/ci-node, npm reshaped that tree and dropped a
# package componentize-js needs. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/../.."

PLAYWRIGHT_CORE=1.65.1

node=target/ci-playwright
mkdir -p "$node"
installed=$(node -p "require('./$node/node_modules/playwright-core/package.json').version" 2>/dev/null || true)
if [ "$installed" != "$PLAYWRIGHT_CORE" ]; then
    (cd "$node" && npm install --silent --no-audit --no-fund --save-exact "playwright-core@$PLAYWRIGHT_CORE")
fi
echo "playwright-core $PLAYWRIGHT_CORE"
