#!/usr/bin/env bash
# What the benchmark scripts (bench.sh, upgrade-bench.sh, cluster-bench.sh)
# share; sourced, it defines functions and changes nothing else:
#   bench_prepare OUT     packages, a release build, OUT/logs, an empty
#                         OUT/results.jsonl (in $RESULTS)
#   port_open PORT        something listens on 127.0.0.1:PORT
#   free_port             a loopback port below the ephemeral range, free
#                         together with PORT+10000 (a Redis Cluster bus)
#   wait_for SECONDS CMD  runs CMD every 0.1 s until it succeeds
#   start_redis MODE DIR  one redis-server (MODE single) or a 3-master Redis
#                         Cluster (MODE cluster), files under DIR; sets
#                         REDIS_URL, REDIS_PORTS, REDIS_PIDS (also in PIDS)
#   stop_redis            stops what start_redis started
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

start_redis() {
  local mode=$1 dir=$2 count=1 extra=()
  REDIS_PORTS=() REDIS_PIDS=()
  if [ "$mode" = cluster ]; then count=3; extra=(--cluster-enabled yes --cluster-node-timeout 5000); fi
  for _ in $(seq "$count"); do
    local port
    port=$(free_port)
    mkdir -p "$dir/$port"
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir/$port" \
      --maxclients 10000 "${extra[@]}" >"$dir/$port/log" 2>&1 &
    REDIS_PIDS+=("$!")
    PIDS+=("$!")
    REDIS_PORTS+=("$port")
    wait_for 10 sh -c "redis-cli -p $port ping >/dev/null 2>&1"
  done
  if [ "$mode" = cluster ]; then
    local hosts=()
    for port in "${REDIS_PORTS[@]}"; do hosts+=("127.0.0.1:$port"); done
    redis-cli --cluster create "${hosts[@]}" --cluster-yes >"$dir/create.log" 2>&1
    for port in "${REDIS_PORTS[@]}"; do
      wait_for 20 sh -c "redis-cli -p $port cluster info | grep -q cluster_state:ok"
    done
    REDIS_URL="redis+cluster://$(IFS=,; echo "${hosts[*]}")/"
  else
    REDIS_URL="redis://127.0.0.1:${REDIS_PORTS[0]}/"
  fi
}

stop_redis() {
  for pid in "${REDIS_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  REDIS_PIDS=()
}

PIDS=()
stop_pids() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
