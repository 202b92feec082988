#!/usr/bin/env bash
# A/B comparison of two freeim-server binaries under the same load, measured
# in one run and alternated so machine noise hits both alike:
#   scripts/ab.sh BASELINE_BIN CANDIDATE_BIN ROUNDS -- <freeim-loadtest scenario args>
# Prints one JSON line per run (label "a" or "b") to target/bench/ab.jsonl and a
# median summary. Loopback only; every process it starts is stopped by PID.
# AB_A_ARGS / AB_B_ARGS: extra load tester arguments for one arm only (e.g.
# the same binary twice, AB_B_ARGS=--deflate: without and with compression).
# The load tester is $CARGO_TARGET_DIR/release/freeim-loadtest (target/ by default).
set -euo pipefail
cd "$(dirname "$0")/.."
a_bin=$1 b_bin=$2 rounds=$3; shift 3; [ "${1:-}" = "--" ] && shift
scenario=("$@")
loadtest=${CARGO_TARGET_DIR:-target}/release/freeim-loadtest
read -ra a_args <<<"${AB_A_ARGS:-}"
read -ra b_args <<<"${AB_B_ARGS:-}"
out=target/bench/ab.jsonl
mkdir -p target/bench; : > "$out"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT
run_one() { # label binary [extra load tester args]
  local label=$1 bin=$2 rport nport rpid npid; shift 2
  rport=$(free_port); nport=$(free_port)
  redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no >/dev/null & rpid=$!; pids+=("$rpid")
  until redis-cli -p "$rport" ping >/dev/null 2>&1; do sleep 0.05; done
  FREEIM_LOG=warn "$bin" --listen "127.0.0.1:$nport" --redis "redis://127.0.0.1:$rport/" --threads 2 & npid=$!; pids+=("$npid")
  until (exec 3<>"/dev/tcp/127.0.0.1/$nport") 2>/dev/null; do sleep 0.05; done
  "$loadtest" "${scenario[@]}" "$@" --redis "redis://127.0.0.1:$rport/" --servers "127.0.0.1:$nport" --node-pid "$npid" \
    --redis-pid "$rpid" --label "$label" --append "$out" --json >/dev/null
  kill "$npid" "$rpid"; wait "$npid" "$rpid" 2>/dev/null || true
}
for _ in $(seq "$rounds"); do
  run_one a "$a_bin" "${a_args[@]}"
  run_one b "$b_bin" "${b_args[@]}"
done
"$loadtest" summary "$out" --markdown
