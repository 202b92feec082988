#!/usr/bin/env bash
# The standard benchmark set, in one command:
#
#   scripts/bench.sh
#
# Builds release, starts its own redis-server (free port, no persistence) and
# a fresh node for every run (so memory figures start from a clean process),
# runs every scenario of freeim-loadtest against loopback only, and writes
#   target/bench/results.jsonl   one JSON line per run
#   target/bench/summary.md      medians per run label
#   target/bench/*.svg           latency vs load, memory vs connections, CPU
# Every process it starts is stopped by PID at the end (or on Ctrl-C).
#
# Settings (environment):
#   BENCH_RUNS=3        runs of each cheap scenario
#   BENCH_THREADS=2     node --threads
#   BENCH_NODES=1       nodes in the cluster (clients spread by id)
#   BENCH_QUICK=1       small sizes (1,000 clients, short runs): a smoke test
#   BENCH_ONLY="idle p2p"  run only these groups (idle p2p fanout slowread broadcast storm churn)
#   BENCH_OUT=dir       output directory (default target/bench)
#   BENCH_NODE_ARGS="--heartbeat-interval 10s"   extra freeim-server flags
#   BENCH_REDIS=cluster  a Redis Cluster of 3 masters instead of one redis-server
#                       (the sharded layout; Redis CPU is then not measured)
#   BENCH_IDLE="15000 18000" BENCH_CONNS=10000     override the sizes
#   BENCH_HOLD=15s BENCH_RATE=5000                 idle hold time, connects/s
#   BENCH_READ_RATE=8192 BENCH_RECV_BUFFER=16384 BENCH_SETTLE=30s
#                       slowread: bytes/s each client reads, its SO_RCVBUF,
#                       idle time after the drain before the last memory reading
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

RUNS=${BENCH_RUNS:-3}
THREADS=${BENCH_THREADS:-2}
NODES=${BENCH_NODES:-1}
QUICK=${BENCH_QUICK:-0}
ONLY=${BENCH_ONLY:-"idle p2p fanout slowread broadcast storm churn"}
OUT=${BENCH_OUT:-$ROOT/target/bench}
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release

source scripts/bench-lib.sh
[ -f "$OUT/results.jsonl" ] && mv "$OUT/results.jsonl" "$OUT/results.jsonl.prev"
bench_prepare "$OUT"
LOGS=$OUT/logs

NODE_PIDS=()
cleanup() {
  stop_nodes
  stop_pids
  rm -rf "$OUT/redis"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_redis "${BENCH_REDIS:-single}" "$OUT/redis"
# Redis CPU is measured on one server only.
REDIS_PID_ARGS=()
[ "${BENCH_REDIS:-single}" = cluster ] || REDIS_PID_ARGS=(--redis-pid "${REDIS_PIDS[0]}")

SERVERS=""
NODE_PORTS=()
for _ in $(seq "$NODES"); do NODE_PORTS+=("$(free_port)"); done
SERVERS=$(printf '127.0.0.1:%s;' "${NODE_PORTS[@]}")
SERVERS=${SERVERS%;}

start_nodes() {
  local n=0
  NODE_PIDS=()
  for port in "${NODE_PORTS[@]}"; do
    FREEIM_LOG=warn "$BIN/freeim-server" --listen "127.0.0.1:$port" --redis "$REDIS_URL" \
      --server "127.0.0.1:$port" --servers "$SERVERS" --threads "$THREADS" ${BENCH_NODE_ARGS:-} \
      >>"$LOGS/node-$n.log" 2>&1 &
    NODE_PIDS+=("$!")
    n=$((n + 1))
  done
  for port in "${NODE_PORTS[@]}"; do wait_for 10 port_open "$port"; done
}

stop_nodes() {
  local pid
  for pid in "${NODE_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${NODE_PIDS[@]}"; do
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  NODE_PIDS=()
}

# run LABEL SCENARIO ARGS...: one run against a fresh node.
run() {
  local label=$1 scenario=$2
  shift 2
  start_nodes
  local pids=()
  for pid in "${NODE_PIDS[@]}"; do pids+=(--node-pid "$pid"); done
  echo "--- $label" >&2
  if ! "$BIN/freeim-loadtest" "$scenario" --redis "$REDIS_URL" --servers "$SERVERS" \
    "${pids[@]}" "${REDIS_PID_ARGS[@]}" --label "$label" --append "$RESULTS" "$@" \
    --timeout 900s 2>&1 | tee -a "$LOGS/runs.txt" >&2; then
    echo "run $label failed: see $LOGS/runs.txt" >&2
  fi
  stop_nodes
}

# repeat N LABEL SCENARIO ARGS...
repeat() {
  local n=$1
  shift
  for _ in $(seq "$n"); do run "$@"; done
}

wants() { case " $ONLY " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

if [ "$QUICK" = 1 ]; then
  IDLE_A=1000 IDLE_B=1500 CONNS=1000 HOLD=3s DUR=3s STORM=1000 CHURN=500 CHURN_DUR=5s BURST=20
  SLOW_BURST=100 SLOW_BURST_4K=10 SETTLE=3s
else
  IDLE_A=15000 IDLE_B=18000 CONNS=10000 HOLD=15s DUR=15s STORM=15000 CHURN=5000 CHURN_DUR=30s BURST=100
  SLOW_BURST=500 SLOW_BURST_4K=50 SETTLE=30s
fi
if [ -n "${BENCH_IDLE:-}" ]; then read -r IDLE_A IDLE_B <<<"$BENCH_IDLE"; fi
CONNS=${BENCH_CONNS:-$CONNS}
HOLD=${BENCH_HOLD:-$HOLD}
RATE=${BENCH_RATE:-5000}
READ_RATE=${BENCH_READ_RATE:-8192}
RECV_BUFFER=${BENCH_RECV_BUFFER:-16384}
SETTLE=${BENCH_SETTLE:-$SETTLE}

{
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "date: $(date -u +%FT%TZ)"
  echo "nodes: $NODES x --threads $THREADS ${BENCH_NODE_ARGS:-}; runs: $RUNS; quick: $QUICK"
  echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB"
} >"$OUT/meta.txt"

if wants idle; then
  repeat "$RUNS" "idle-$IDLE_A" idle -n "$IDLE_A" --rate "$RATE" --hold "$HOLD"
  repeat "$RUNS" "idle-$IDLE_B" idle -n "$IDLE_B" --rate "$RATE" --hold "$HOLD"
fi
if wants p2p; then
  repeat "$RUNS" "p2p-$CONNS-paced-10k" p2p -n "$CONNS" --msg-rate 10000 --duration "$DUR"
  repeat "$RUNS" "p2p-$CONNS-flat-out" p2p -n "$CONNS" --msg-rate 0 --senders 8 --duration "$DUR"
  # send_messages: 64 messages per Redis round trip, paced below saturation.
  repeat "$RUNS" "p2p-$CONNS-batched-100k" p2p -n "$CONNS" --msg-rate 100000 --senders 4 --batch 64 --duration "$DUR"
  repeat "$RUNS" "p2p-$CONNS-batched-150k" p2p -n "$CONNS" --msg-rate 150000 --senders 4 --batch 64 --duration "$DUR"
fi
if wants fanout; then
  repeat "$RUNS" "fanout-$CONNS-paced-2" fanout -n "$CONNS" --msg-rate 2 --duration "$DUR"
  repeat "$RUNS" "fanout-$CONNS-burst-$BURST" fanout -n "$CONNS" --burst "$BURST" --senders 4
fi
if wants slowread; then
  # Slow readers: the node's memory under backlog. Every client reads at most
  # READ_RATE bytes/s (8 KiB/s, a 64 kbit/s link: far above any steady chat
  # traffic, so readers keep up) through a 32 KiB receive buffer (16 KiB asked,
  # Linux doubles it), while a burst is published flat out. 500 messages of
  # ~134 B (payload 100 B of padding + the probe) are ~68 KB per client: ~8 s
  # of backlog; 50 of ~4.1 KiB are ~207 KB per client: ~25 s. Faster readers
  # would make the machine, not the readers, the limit: reading costs the load
  # generator ~8 ns per byte (the kernel's loopback transfer runs in the
  # reader's context), ~0.65 of a core at 10,000 x 8 KiB/s. Node RSS is read
  # every 100 ms: before the first send, peak during send + drain, right after
  # the drain, and after SETTLE idle (node_rss_*_bytes); kernel_tcp_mem_*_bytes
  # shows what the kernel's socket buffers held at the same moments (on
  # loopback the node's kernel send buffers autotune to megabytes and take in
  # most of a backlog; at 10,000 clients the 4 KiB burst needs ~2.3 GB of them,
  # around this machine's net.ipv4.tcp_mem limits, beyond which the kernel
  # stops taking bytes and the rest waits in the node's own queues).
  # Clients are spread over processes and source addresses by the load
  # generator itself, as for the other groups.
  slow=(fanout -n "$CONNS" --senders 4 --read-rate "$READ_RATE" --recv-buffer "$RECV_BUFFER"
    --drain 120s --settle "$SETTLE")
  repeat "$RUNS" "fanout-$CONNS-slow-burst-$SLOW_BURST" "${slow[@]}" \
    --burst "$SLOW_BURST" --payload-bytes 100
  repeat "$RUNS" "fanout-$CONNS-slow-burst-$SLOW_BURST_4K-4k" "${slow[@]}" \
    --burst "$SLOW_BURST_4K" --payload-bytes 4096
fi
if wants broadcast; then
  repeat "$RUNS" "broadcast-$CONNS-burst-$BURST" broadcast -n "$CONNS" --burst "$BURST" --senders 4
fi
if wants storm; then
  repeat "$RUNS" "storm-$STORM" storm -n "$STORM"
fi
if wants churn; then
  repeat 1 "churn-$CHURN" churn -n "$CHURN" --duration "$CHURN_DUR" --life 2s
fi

"$BIN/freeim-loadtest" summary --markdown "$RESULTS" >"$OUT/summary.md"
"$BIN/freeim-loadtest" chart "$RESULTS" --out-dir "$OUT" >/dev/null
echo "results: $RESULTS" >&2
echo "summary: $OUT/summary.md; charts: $(ls "$OUT"/*.svg | tr '\n' ' ')" >&2
