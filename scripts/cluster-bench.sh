#!/usr/bin/env bash
# One Redis against a 3-shard Redis Cluster, in one run, same load:
#
#   scripts/cluster-bench.sh
#
# For each mode (single: one redis-server; cluster: three masters made with
# `redis-cli --cluster create`), starts NODES freeim-server nodes (release,
# --threads 1; clients spread by id) and runs freeim-loadtest p2p (paced) and
# fanout (burst) against them. Besides loadtest's own figures (delivered,
# lost, latency, node CPU per delivery), it reads each redis-server's CPU
# time from /proc and its commands processed (INFO stats) before and after
# every run, so the results say Redis CPU per message per shard and how the
# messages spread over the shards. Writes target/cluster-bench/results.jsonl
# and prints a table of medians. Loopback only; every process it starts is
# stopped by PID.
#
# Settings (environment): CLUSTER_RUNS=3, CLUSTER_NODES=3, CLUSTER_CONNS=9000,
# CLUSTER_P2P_RATE=20000 (msgs/s), CLUSTER_FANOUT_RATE=20 (channel messages/s,
# to all CLUSTER_CONNS members), CLUSTER_BURST=100 (messages of fanout-burst),
# CLUSTER_ONLY="p2p fanout fanout-burst" (the scenarios to run).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RUNS=${CLUSTER_RUNS:-3}
NODES=${CLUSTER_NODES:-3}
CONNS=${CLUSTER_CONNS:-9000}
P2P_RATE=${CLUSTER_P2P_RATE:-20000}
BURST=${CLUSTER_BURST:-100}
ONLY=${CLUSTER_ONLY:-"p2p fanout fanout-burst"}
FANOUT_RATE=${CLUSTER_FANOUT_RATE:-20}
OUT=${CLUSTER_OUT:-$ROOT/target/cluster-bench}
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release

source scripts/bench-lib.sh
bench_prepare "$OUT"
cleanup() {
  stop_pids
  rm -rf "$OUT/redis"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Per shard: CPU ticks (utime + stime) and commands processed.
redis_sample() {
  local i=0
  for pid in "${REDIS_PIDS[@]}"; do
    local ticks commands
    ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    commands=$(redis-cli -p "${REDIS_PORTS[$i]}" info stats | tr -d '\r' |
      awk -F: '/^total_commands_processed:/ {print $2}')
    echo "$ticks $commands"
    i=$((i + 1))
  done
}

TICK=$(getconf CLK_TCK)
for run in $(seq "$RUNS"); do
  for mode in single cluster; do
    start_redis "$mode" "$OUT/redis"
    servers=() node_pids=()
    for _ in $(seq "$NODES"); do servers+=("127.0.0.1:$(free_port)"); done
    list=$(IFS=';'; echo "${servers[*]}")
    for server in "${servers[@]}"; do
      FREEIM_LOG=warn "$BIN/freeim-server" --listen "$server" --server "$server" --servers "$list" \
        --redis "$REDIS_URL" --threads 1 >>"$OUT/logs/node-$mode.log" 2>&1 &
      node_pids+=(--node-pid "$!")
      PIDS+=("$!")
      wait_for 10 port_open "${server##*:}"
    done
    for scenario in $ONLY; do
      if [ "$scenario" = p2p ]; then
        args=(p2p -n "$CONNS" --msg-rate "$P2P_RATE" --duration 20s --senders 4)
      elif [ "$scenario" = fanout ]; then
        args=(fanout -n "$CONNS" --msg-rate "$FANOUT_RATE" --duration 10s --senders 4)
      else # fanout-burst: flat out, where deliveries coalesce into fewer writes
        args=(fanout -n "$CONNS" --burst "$BURST" --senders 4)
      fi
      label="$scenario-$mode"
      echo "--- $label run $run" >&2
      before=$(redis_sample)
      "$BIN/freeim-loadtest" "${args[@]}" --redis "$REDIS_URL" --servers "$list" "${node_pids[@]}" \
        --label "$label" --json --timeout 300s >"$OUT/logs/$label-$run.json" 2>"$OUT/logs/$label-$run.txt"
      after=$(redis_sample)
      shards=$(paste <(echo "$before") <(echo "$after") |
        awk -v tick="$TICK" '{printf "%s{\"cpu_s\":%.3f,\"commands\":%d}", (NR>1?",":""), ($3-$1)/tick, $4-$2}')
      jq -c --argjson shards "[$shards]" '.figures.redis_shards = $shards' \
        "$OUT/logs/$label-$run.json" >>"$RESULTS"
    done
    for pid in "${PIDS[@]}"; do
      case " ${REDIS_PIDS[*]} " in *" $pid "*) ;; *) kill "$pid" 2>/dev/null || true ;; esac
    done
    stop_redis
    rm -rf "$OUT/redis"
    PIDS=()
  done
done

echo "| run | messages | delivered | lost | node CPU per delivery (µs) | Redis CPU per message, each shard (µs) | commands per shard | p99 (ms) |"
echo "|---|---|---|---|---|---|---|---|"
jq -s -r 'group_by(.label)[] | . as $runs |
  def med(f): ([$runs[] | f] | sort | .[(length / 2 | floor)]);
  "| \($runs[0].label) (\($runs | length)) | \(med(.figures.messages_sent)) | \(med(.figures.deliveries)) | \([$runs[] | .figures.lost] | add) | \(med(.figures.node_cpu_us_per_delivery) * 1000 | round / 1000) | \([range(0; $runs[0].figures.redis_shards | length) as $i | med(.figures.redis_shards[$i].cpu_s * 1e6 / .figures.messages_sent) | round] | join(" / ")) | \([range(0; $runs[0].figures.redis_shards | length) as $i | med(.figures.redis_shards[$i].commands)] | join(" / ")) | \(med(.figures.latency_p99_ms)) |"' \
  "$RESULTS"
