#!/usr/bin/env bash
# What the one-off benchmark scripts (upgrade-bench.sh, cluster-bench.sh)
# share; sourced, it defines functions and changes nothing else:
#   bench_prepare OUT     packages, a release build, OUT/logs, an empty
#                         OUT/results.jsonl (in $RESULTS)
#   port_open PORT        something listens on 127.0.0.1:PORT
#   free_port             a loopback port below the ephemeral range, free
#                         together with PORT+10000 (a Redis Cluster bus)
#   wait_for SECONDS CMD  runs CMD every 0.1 s until it succeeds
#   stop_pids             stops every process in $PIDS by PID and waits
# Each script sets its own EXIT trap, calling stop_pids.

bench_prepare() {
  source scripts/ensure-packages.sh
  ensure_build_tools
  ensure_redis_installed
  ensure_command jq jq
  cargo build --release -p freeim-server -p freeim-loadtest
  mkdir -p "$1/logs"
  RESULTS=$1/results.jsonl
  : >"$RESULTS"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 10000))
    port_open "$port" || port_open $((port + 10000)) || { echo "$port"; return; }
  done
}

wait_for() {
  local tries=$(($1 * 10)); shift
  for _ in $(seq "$tries"); do "$@" && return 0; sleep 0.1; done
  echo "gave up waiting for: $*" >&2
  return 1
}

PIDS=()
stop_pids() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
