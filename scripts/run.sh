#!/usr/bin/env bash
# Runs the system: Redis (installed and started when missing), one
# freeim-server node in the background, and the freeim-demo business service
# in the foreground, which serves the chat page (http://127.0.0.1:8080/).
# Ctrl-C, SIGTERM or the demo exiting stops, by PID, what it started: the
# demo, the node, then the Redis it started (one already running is left).
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
  sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
  echo
  echo "== the node (arguments of run.sh go here) =="
  "$BIN/freeim-server" --help
  echo
  echo "== the demo service =="
  "$BIN/freeim-demo" --help
  exit 0
fi

NODE_PID=""
DEMO_PID=""
REDIS_PID=""
# Stops what this script started, by PID: the demo, then the node (which
# drains: it closes its sockets and clears their presence, in Redis), then
# the redis-server if this script started it. Keeps the exit status.
stop_all() {
  local status=$?
  set +e
  # A second Ctrl-C must not cut this short (the node's drain is bounded by
  # its --drain-timeout).
  trap '' INT TERM
  for pid in $DEMO_PID $NODE_PID; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null
      wait "$pid" 2>/dev/null
    fi
  done
  if [ -n "$REDIS_PID" ] && kill -0 "$REDIS_PID" 2>/dev/null; then
    # It runs with --save "" and no AOF: once stopped, the demo's keys are
    # gone with it (nothing was written to disk).
    echo "stopping the redis-server this script started on port ${REDIS_PORT} (pid ${REDIS_PID})" >&2
    kill -TERM "$REDIS_PID" 2>/dev/null
    wait "$REDIS_PID" 2>/dev/null
  elif [ -z "$REDIS_PID" ] && [ -n "${REDIS_FOUND:-}" ]; then
    echo "leaving the redis-server on port ${REDIS_PORT} running: this script did not start it" >&2
  fi
  exit "$status"
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ensure_redis_installed
REDIS_FOUND=""
if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  REDIS_FOUND=1
  echo "a Redis already answers on port ${REDIS_PORT}: using it (this script did not start it, so it leaves it running, keys included)" >&2
else
  echo "starting redis-server on 127.0.0.1:${REDIS_PORT} (log: /tmp/freeim-redis.log); this script stops it when it ends" >&2
  # Not daemonized: our child, so $! is its PID (setsid execs it, no fork).
  # setsid puts it in its own session, so the terminal's Ctrl-C does not
  # reach it: it stays up while the node drains, and stop_all stops it last.
  # `--save ""` and `--appendonly no`: nothing on disk, so stopping it
  # discards the demo's keys.
  setsid redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --daemonize no --logfile /tmp/freeim-redis.log </dev/null >/dev/null 2>&1 &
  REDIS_PID=$!
  for _ in $(seq 50); do
    if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then break; fi
    if ! kill -0 "$REDIS_PID" 2>/dev/null; then
      REDIS_PID=""
      echo "run.sh: redis-server did not start on port ${REDIS_PORT}; see /tmp/freeim-redis.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  if ! redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    echo "run.sh: redis-server (pid ${REDIS_PID}) does not answer on port ${REDIS_PORT} after 5 s; see /tmp/freeim-redis.log" >&2
    exit 1
  fi
fi

build

# `host:port` as a local client reaches it (0.0.0.0 / [::] → loopback).
local_addr() {
  local host="${1%:*}" port="${1##*:}"
  case "$host" in 0.0.0.0 | "[::]" | "") host=127.0.0.1 ;; esac
  echo "$host:$port"
}

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
if [ -n "$REDIS_PID" ]; then
  echo "  Ctrl-C stops the demo, the node, then the redis-server it started." >&2
else
  echo "  Ctrl-C stops the demo and the node (not the Redis that was already running)." >&2
fi
echo >&2
# The demo runs as a child we wait for (its output is in this terminal), so
# that Ctrl-C and a SIGTERM to this script both reach the traps at once.
"$BIN/freeim-demo" &
DEMO_PID=$!
wait "$DEMO_PID"
