#!/usr/bin/env bash
# Runs the system: Redis (installed and started when missing) and one
# freeim-server node. Settings come from FREEIM_* variables (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-packages.sh

REDIS_PORT="${REDIS_PORT:-6379}"
export FREEIM_REDIS="${FREEIM_REDIS:-redis://127.0.0.1:${REDIS_PORT}/}"
export FREEIM_LISTEN="${FREEIM_LISTEN:-127.0.0.1:6001}"

ensure_redis_installed
if ! redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  echo "starting redis-server on 127.0.0.1:${REDIS_PORT}" >&2
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --daemonize yes --logfile /tmp/freeim-redis.log >/dev/null
  for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

cargo build --release --bin freeim-server
echo "node: ws://${FREEIM_LISTEN}${FREEIM_PATH:-/ws}?token=<token from ImHelper::prev_connect_server>" >&2
exec target/release/freeim-server "$@"
