#!/usr/bin/env bash
# Runs the Autobahn|Testsuite fuzzingclient against the node's echo mode.
#
#   scripts/conformance.sh [--outdir DIR] [--timeout SECS] [--no-compression] [CASES]
#
# Builds freeim-server (release), starts it with --echo (permessage-deflate
# on, the default) on a free loopback port, runs shared/autobahn/run.sh
# --require-compression against ws://127.0.0.1:PORT/ws, stops the node by
# its PID, prints a per-section summary, and exits non-zero if any case of
# sections 1-13 is not OK, NON-STRICT or INFORMATIONAL (or never ran;
# UNIMPLEMENTED, i.e. permessage-deflate not negotiated, fails), or if the
# node died during the run.
#
#   --outdir DIR      keep the report there (default: a new temp dir)
#   --timeout SECS    wstest time limit (default 1800)
#   --no-compression  leave out 12.*/13.* (permessage-deflate)
#   CASES             comma-separated case patterns (default "*")
#
# Environment: AUTOBAHN_DIR (default ../shared/autobahn beside the repo, or
# /work/shared/autobahn), CARGO_TARGET_DIR (honoured by cargo as usual).
set -euo pipefail
cd "$(dirname "$0")/.."

OUTDIR=""
TIMEOUT=1800
COMPRESSION=1
CASES="*"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --outdir) shift; OUTDIR="${1:?--outdir needs a value}" ;;
    --timeout) shift; TIMEOUT="${1:?--timeout needs a value}" ;;
    --no-compression) COMPRESSION=0 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "conformance.sh: unknown option $1" >&2; exit 2 ;;
    *) CASES="$1" ;;
  esac
  shift
done

AUTOBAHN_DIR="${AUTOBAHN_DIR:-}"
if [[ -z "$AUTOBAHN_DIR" ]]; then
  for dir in ../shared/autobahn /work/shared/autobahn; do
    if [[ -x "$dir/run.sh" ]]; then AUTOBAHN_DIR="$dir"; break; fi
  done
fi
if [[ -z "$AUTOBAHN_DIR" || ! -x "$AUTOBAHN_DIR/run.sh" ]]; then
  echo "conformance.sh: no Autobahn harness (set AUTOBAHN_DIR to the folder of run.sh)" >&2
  exit 2
fi
AUTOBAHN_DIR="$(cd "$AUTOBAHN_DIR" && pwd)"

# Build, and learn where cargo put the binary (CARGO_TARGET_DIR or target/).
echo "conformance: building freeim-server (release)" >&2
BIN="$(cargo build --release --bin freeim-server --message-format=json-render-diagnostics |
  python3 -c '
import json, sys
exe = ""
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("reason") == "compiler-artifact" and msg.get("executable"):
        exe = msg["executable"]
print(exe)
')"
[[ -x "$BIN" ]] || { echo "conformance.sh: build produced no binary" >&2; exit 2; }

if [[ -z "$OUTDIR" ]]; then
  OUTDIR="$(mktemp -d "${TMPDIR:-/tmp}/conformance.XXXXXX")"
fi
mkdir -p "$OUTDIR"
OUTDIR="$(cd "$OUTDIR" && pwd)"
NODE_LOG="$OUTDIR/node.log"

NODE_PID=""
stop_node() {
  [[ -n "$NODE_PID" ]] || return 0
  if kill -0 "$NODE_PID" 2>/dev/null; then
    kill -TERM "$NODE_PID" 2>/dev/null || true
    # The echo node drains in about a second; give it a few.
    for _ in $(seq 50); do
      kill -0 "$NODE_PID" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$NODE_PID" 2>/dev/null; then
      echo "conformance: node $NODE_PID ignored SIGTERM, killing it" >&2
      kill -KILL "$NODE_PID" 2>/dev/null || true
    fi
  fi
  wait "$NODE_PID" 2>/dev/null || true
  NODE_PID=""
}
trap stop_node EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Start the node on a free port; another process may take the port between
# the probe and the bind, so try a few.
PORT=""
for _ in 1 2 3 4 5; do
  PORT="$(free_port)"
  FREEIM_LOG="${FREEIM_LOG:-info}" "$BIN" --echo \
    --listen "127.0.0.1:$PORT" \
    --max-message-bytes 67108864 \
    --max-send-buffer 134217728 \
    --heartbeat-interval 0s \
    >"$NODE_LOG" 2>&1 &
  NODE_PID=$!
  up=0
  for _ in $(seq 100); do
    if ! kill -0 "$NODE_PID" 2>/dev/null; then break; fi
    if python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()' "$PORT" 2>/dev/null; then
      up=1
      break
    fi
    sleep 0.1
  done
  [[ $up == 1 ]] && break
  stop_node
  PORT=""
done
if [[ -z "$PORT" ]]; then
  echo "conformance.sh: the echo node did not start; its log:" >&2
  cat "$NODE_LOG" >&2
  exit 2
fi
URL="ws://127.0.0.1:$PORT/ws"
echo "conformance: echo node pid $NODE_PID on $URL" >&2

RUN_ARGS=(--outdir "$OUTDIR" --timeout "$TIMEOUT" --agent freeim-server)
if [[ $COMPRESSION == 1 ]]; then
  RUN_ARGS+=(--require-compression)
else
  RUN_ARGS+=(--no-compression)
fi
set +e
"$AUTOBAHN_DIR/run.sh" "${RUN_ARGS[@]}" "$URL" "$CASES"
RUN_RC=$?
set -e

NODE_ALIVE=1
kill -0 "$NODE_PID" 2>/dev/null || NODE_ALIVE=0
stop_node
trap - EXIT

VERSION="$("$AUTOBAHN_DIR/wstest" --autobahnversion 2>/dev/null | tr '\n' ' ' || true)"
echo "conformance: suite: ${VERSION:-unknown version}" >&2

set +e
python3 - "$OUTDIR/index.json" freeim-server <<'EOF'
"""Per-section counts; fails on any case that did not pass."""
import collections, json, sys

path, agent = sys.argv[1:3]
try:
    with open(path) as f:
        results = json.load(f).get(agent, {})
except (OSError, ValueError) as e:
    sys.exit("conformance: no report (%s)" % e)
if not results:
    sys.exit("conformance: empty report")

passing = {"OK", "NON-STRICT", "INFORMATIONAL"}
sections = collections.defaultdict(collections.Counter)
bad = []
for cid, r in results.items():
    section = int(cid.split(".")[0])
    sections[section][r["behavior"]] += 1
    if r["behavior"] not in passing:
        bad.append(cid)
    if r["behavior"] != "OK" and r["behavior"] in passing:
        print("  note: %s %s (close: %s)" % (cid, r["behavior"], r.get("behaviorClose")))

order = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]
print("| section | cases | " + " | ".join(order) + " | other |")
print("|---|---|" + "---|" * (len(order) + 1))
for section in sorted(sections):
    counts = sections[section]
    other = sum(n for b, n in counts.items() if b not in order)
    print("| %d | %d | %s | %d |" % (
        section, sum(counts.values()),
        " | ".join(str(counts.get(b, 0)) for b in order), other))
if bad:
    key = lambda c: tuple(int(p) for p in c.split("."))
    print("conformance: failed cases: " + " ".join(sorted(bad, key=key)))
    sys.exit(1)
EOF
SUMMARY_RC=$?
set -e

FAIL=0
if [[ $NODE_ALIVE == 0 ]]; then
  echo "conformance: the node died during the run; its log: $NODE_LOG" >&2
  tail -20 "$NODE_LOG" >&2
  FAIL=1
fi
if grep -q "panicked" "$NODE_LOG"; then
  echo "conformance: the node panicked; its log: $NODE_LOG" >&2
  FAIL=1
fi
# run.sh fails on MISSING cases (wstest stopped early) and on any failed case.
[[ $RUN_RC == 0 && $SUMMARY_RC == 0 ]] || FAIL=1
echo "conformance: report $OUTDIR/index.html" >&2
if [[ $FAIL == 0 ]]; then
  echo "conformance: passed"
else
  echo "conformance: FAILED"
fi
exit "$FAIL"
