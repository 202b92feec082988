#!/usr/bin/env bash
# Browser test of the demo chat page: installs what it needs when missing
# (Debian's redis-server and chromium, the npm packages of tests/browser from
# its package-lock.json), builds freeim-server and freeim-demo, then runs
# tests/browser with Node's test runner:
#   - client.test.mjs: the JavaScript client in Node.js;
#   - readme.test.mjs: the README's JavaScript example, run as written;
#   - the other *.test.mjs: their own redis-server, node and demo on free
#     loopback ports (killed by PID at the end) driven through headless
#     Chromium. Screenshots go to SCREENSHOT_DIR (default docs/).
# Bounded in time (BROWSER_TEST_TIMEOUT seconds, default 300); exits
# non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-packages.sh

ensure_redis_installed
ensure_command chromium chromium
ensure_command node nodejs
ensure_command npm npm

CHROMIUM="${CHROMIUM:-$(command -v chromium)}"
export CHROMIUM
echo "browser-test: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM"), node $(node --version)" >&2

(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)

cargo build -p freeim-server -p freeim-demo --bins
target_dir="${CARGO_TARGET_DIR:-target}"
FREEIM_BIN_DIR="$(cd "$target_dir/debug" && pwd)"
export FREEIM_BIN_DIR
export SCREENSHOT_DIR="${SCREENSHOT_DIR:-$PWD/docs}"

cd tests/browser
timeout --kill-after=15 "${BROWSER_TEST_TIMEOUT:-300}" \
  node --test --test-reporter=spec ./*.test.mjs
