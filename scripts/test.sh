#!/usr/bin/env bash
# Runs every test: installs what the build and the tests need when missing
# (make and gcc for jemalloc; redis-server with redis-cli, redis-sentinel,
# nginx and openssl: the tests start their own instances on free ports), then
# the whole workspace's tests (README and imhelper examples included, the
# README's against scripts/run.sh itself), then the node's end-to-end suites
# again on a Redis Cluster (FREEIM_TEST_REDIS=cluster: each test starts three
# masters; see testkit::TestRedis), then the browser tests
# (scripts/browser-test.sh; screenshots to SCREENSHOT_DIR, default
# target/screenshots). Arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-packages.sh

ensure_build_tools
ensure_redis_installed
ensure_command redis-sentinel redis-sentinel
ensure_command redis-cli redis-tools
ensure_command nginx nginx
ensure_command openssl openssl
export PATH="$PATH:/usr/sbin"
# The demo's tests run the node binary this same build makes, instead of
# building it again on their own (a second build with other features).
profile=debug
for arg in "$@"; do [ "$arg" = "--release" ] && profile=release; done
export FREEIM_SERVER_BIN="${FREEIM_SERVER_BIN:-$(realpath -m "${CARGO_TARGET_DIR:-target}")/$profile/freeim-server}"
cargo test --workspace "$@"
FREEIM_TEST_REDIS=cluster cargo test -p freeim-server --tests "$@"
SCREENSHOT_DIR="${SCREENSHOT_DIR:-$(realpath -m "${CARGO_TARGET_DIR:-target}")/screenshots}" \
  bash scripts/browser-test.sh
