#!/usr/bin/env bash
# Hot upgrade under load, measured: for each size, a node holds that many
# clients receiving paced p2p messages (freeim-loadtest p2p); mid-run a new
# process takes every connection over (--upgrade). Reports, per run, what the
# two processes logged (hand-over time) and what the clients saw (lost and
# duplicated messages, connections dropped, latency max = the delivery pause).
#
#   scripts/upgrade-bench.sh                 # 10,000 and 18,000 connections, 3 runs each
#   UPGRADE_SIZES="2000" UPGRADE_RUNS=1 scripts/upgrade-bench.sh
#
# Writes target/upgrade-bench/results.jsonl (loadtest's JSON line plus the
# hand-over figures) and prints a table of medians. Traffic stays on
# loopback; every process it starts is stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SIZES=${UPGRADE_SIZES:-"10000 18000"}
RUNS=${UPGRADE_RUNS:-3}
RATE=${UPGRADE_MSG_RATE:-2000}
OUT=${UPGRADE_OUT:-$ROOT/target/upgrade-bench}
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release

source scripts/bench-lib.sh
bench_prepare "$OUT"
trap 'stop_pids; rm -rf "$OUT/redis"' EXIT
trap 'exit 130' INT TERM

start_redis single "$OUT/redis"
REDIS_PORT=${REDIS_PORTS[0]}

# figure LOG PATTERN: the duration (in ms) logged after PATTERN, e.g. "in 41.2ms".
figure() {
  grep -o "$2 in [0-9.]*[mµn]*s" "$1" | tail -1 | awk '{
    v = $NF; unit = v; sub(/[0-9.]+/, "", unit); sub(/[mµn]*s$/, "", v)
    f = (unit == "s") ? 1000 : (unit == "ms") ? 1 : (unit == "µs") ? 0.001 : 0.000001
    printf "%.1f", v * f }'
}

for size in $SIZES; do
  for run in $(seq "$RUNS"); do
    label="upgrade-$size"
    port=$(free_port)
    server="127.0.0.1:$port"
    socket="$OUT/node-$port.sock"
    args=(--listen "$server" --redis "$REDIS_URL" --server "$server" --servers "$server"
      --threads 2 --upgrade-socket "$socket" --upgrade-timeout 30s)
    old_log="$OUT/logs/$label-$run-old.log"
    new_log="$OUT/logs/$label-$run-new.log"
    FREEIM_LOG=info "$BIN/freeim-server" "${args[@]}" >"$old_log" 2>&1 &
    old=$!
    PIDS+=("$old")
    wait_for 10 test -S "$socket"
    echo "--- $label run $run" >&2
    "$BIN/freeim-loadtest" p2p --redis "$REDIS_URL" --servers "$server" -n "$size" \
      --msg-rate "$RATE" --duration 40s --drain 20s --label "$label" --json \
      --timeout 300s >"$OUT/logs/$label-$run.json" 2>"$OUT/logs/$label-$run.txt" &
    loadtest=$!
    PIDS+=("$loadtest")
    # Every client online, then some messages before the hand-over.
    wait_for 120 sh -c "[ \"\$(redis-cli -p $REDIS_PORT hlen im_v2_wsOnline)\" -ge $size ]"
    sleep 10
    FREEIM_LOG=info "$BIN/freeim-server" "${args[@]}" --upgrade >"$new_log" 2>&1 &
    new=$!
    PIDS+=("$new")
    wait "$old"
    old_status=$?
    wait "$loadtest" || true
    handed=$(figure "$old_log" "connections handed over")
    sent=$(figure "$old_log" "connections ([0-9]* bytes of state)")
    took=$(figure "$new_log" "took over $size connections")
    kill "$new" 2>/dev/null || true
    wait "$new" 2>/dev/null || true
    rm -f "$socket"
    jq -c --arg handed "$handed" --arg sent "$sent" --arg took "$took" \
      --argjson old_status "$old_status" \
      '.figures += {old_exit: $old_status, handover_sent_ms: ($sent|tonumber),
        handover_released_ms: ($handed|tonumber), handover_taken_ms: ($took|tonumber)}' \
      "$OUT/logs/$label-$run.json" >>"$RESULTS"
    tail -1 "$RESULTS" | jq -c '{label: .label, old_exit: .figures.old_exit,
      handover_taken_ms: .figures.handover_taken_ms, lost: .figures.lost,
      duplicates: (.figures.duplicates // 0), dropped: .figures.dropped_during_run,
      latency_p99_ms: .figures.latency_p99_ms, latency_max_ms: .figures.latency_max_ms}' >&2
  done
done

echo "| connections | runs | hand-over, new process holds all (ms) | old process released (ms) | latency max = delivery pause (ms) | latency p99 (ms) | lost | duplicated | dropped |"
echo "|---|---|---|---|---|---|---|---|---|"
jq -s -r 'group_by(.label)[] | . as $runs | def med(f): ([$runs[] | f] | sort | .[(length / 2 | floor)]);
  "| \($runs[0].params.connections) | \($runs | length) | \(med(.figures.handover_taken_ms)) | \(med(.figures.handover_released_ms)) | \(med(.figures.latency_max_ms)) | \(med(.figures.latency_p99_ms)) | \([$runs[] | .figures.lost] | add) | \([$runs[] | (.figures.duplicates // 0)] | add) | \([$runs[] | (.figures.dropped_during_run | if type == "object" then ([.[]] | add // 0) else (. // 0) end)] | add) |"' \
  "$RESULTS"
