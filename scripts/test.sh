#!/usr/bin/env bash
# Runs every test: installs redis-server when missing (the tests start their
# own instances on free ports), then the whole workspace's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-redis.sh

ensure_redis_installed
cargo test --workspace "$@"
