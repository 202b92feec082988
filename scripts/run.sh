#!/usr/bin/env bash
# Runs the system: Redis (installed and started when missing), one
# freeim-server node in the background, and the freeim-demo business service
# in the foreground, which serves the chat page (http://127.0.0.1:8080/).
# Ctrl-C (or the demo exiting) stops both, by PID.
#
# Settings come from FREEIM_* variables: FREEIM_LISTEN, FREEIM_SERVERS,
# FREEIM_PATH, FREEIM_REDIS (or REDIS_PORT) are shared by the node and the
# demo; FREEIM_DEMO_LISTEN is the demo's address. Arguments go to the node.
# `./scripts/run.sh --help` lists every setting of both programs.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-packages.sh

REDIS_PORT="${REDIS_PORT:-6379}"
export FREEIM_REDIS="${FREEIM_REDIS:-redis://127.0.0.1:${REDIS_PORT}/}"
export FREEIM_LISTEN="${FREEIM_LISTEN:-127.0.0.1:6001}"
# The demo must route ids exactly as the node does: same servers list.
export FREEIM_SERVERS="${FREEIM_SERVERS:-${FREEIM_SERVER:-$FREEIM_LISTEN}}"
export FREEIM_DEMO_LISTEN="${FREEIM_DEMO_LISTEN:-127.0.0.1:8080}"
BIN="${CARGO_TARGET_DIR:-target}/release"

build() {
  ensure_build_tools
  cargo build --release -p freeim-server -p freeim-demo --bins
}

if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then
  build >&2
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
  echo
  echo "== the node (arguments of run.sh go here) =="
  "$BIN/freeim-server" --help
  echo
  echo "== the demo service =="
  "$BIN/freeim-demo" --help
  exit 0
fi

ensure_redis_installed
if ! redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  echo "starting redis-server on 127.0.0.1:${REDIS_PORT}" >&2
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --daemonize yes --logfile /tmp/freeim-redis.log >/dev/null
  for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

build

# `host:port` as a local client reaches it (0.0.0.0 / [::] → loopback).
local_addr() {
  local host="${1%:*}" port="${1##*:}"
  case "$host" in 0.0.0.0 | "[::]" | "") host=127.0.0.1 ;; esac
  echo "$host:$port"
}

NODE_PID=""
DEMO_PID=""
# Stops what this script started, by PID: the demo, then the node (which
# drains: it closes its sockets and clears their presence).
stop_all() {
  for pid in $DEMO_PID $NODE_PID; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
}
trap stop_all EXIT
trap 'exit 130' INT TERM

"$BIN/freeim-server" "$@" &
NODE_PID=$!

node_addr="$(local_addr "$FREEIM_LISTEN")"
for _ in $(seq 100); do
  if ! kill -0 "$NODE_PID" 2>/dev/null; then
    echo "run.sh: the node exited; see its error above" >&2
    exit 1
  fi
  if (exec 3<>"/dev/tcp/${node_addr%:*}/${node_addr##*:}") 2>/dev/null; then break; fi
  sleep 0.1
done

echo >&2
echo "  node:  ws://${FREEIM_LISTEN}${FREEIM_PATH:-/ws}?token=<from ImHelper::prev_connect_server>" >&2
echo "  chat:  open http://$(local_addr "$FREEIM_DEMO_LISTEN")/ in a browser (two tabs = two users)" >&2
echo "  Ctrl-C stops the demo and the node." >&2
echo >&2
# The demo runs as a child we wait for (its output is in this terminal), so
# that Ctrl-C and a SIGTERM to this script both reach the traps at once.
"$BIN/freeim-demo" &
DEMO_PID=$!
wait "$DEMO_PID"
