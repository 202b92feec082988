#!/usr/bin/env bash
# Runs every cargo-fuzz target, one after another, for SECONDS each.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      (default 60 s; all targets)
#
# Targets: upgrade, frames, command, resp (see fuzz/fuzz_targets/). Needs
# cargo-fuzz (`cargo install cargo-fuzz`) and a nightly toolchain. Each run
# reads the committed seeds (fuzz/seeds/TARGET) and grows the git-ignored
# working corpus (fuzz/corpus/TARGET); a crash lands in fuzz/artifacts/TARGET.
# Runs niced (FUZZ_NICE, default 10), never more than one fuzzer at a time.
# Builds go to $CARGO_TARGET_DIR/fuzz when CARGO_TARGET_DIR is set, else to
# fuzz/target. Prints one summary line per target; exits 1 if any crashed.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH="${1:-60}"
shift || true
TARGETS=("$@")
[[ ${#TARGETS[@]} -gt 0 ]] || TARGETS=(upgrade frames command resp)
NICE="${FUZZ_NICE:-10}"
TARGET_DIR="${CARGO_TARGET_DIR:+$CARGO_TARGET_DIR/fuzz}"
TARGET_DIR="${TARGET_DIR:-$PWD/fuzz/target}"
# Release with debug assertions (overflow checks); the fuzzed code has no
# `unsafe`, so no sanitizer, for about twice the executions.
BUILD_FLAGS=(-O -a -s none --target-dir "$TARGET_DIR")

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: cargo-fuzz is missing: cargo install cargo-fuzz" >&2
  exit 2
fi

max_len() {
  case "$1" in
    upgrade) echo 9000 ;;   # past the 8 KiB head cap
    frames) echo 20000 ;;   # past the 16 KiB message limit
    *) echo 4096 ;;
  esac
}

if [[ $# -eq 0 ]]; then
  nice -n "$NICE" cargo +nightly fuzz build "${BUILD_FLAGS[@]}"
else
  for target in "${TARGETS[@]}"; do
    nice -n "$NICE" cargo +nightly fuzz build "${BUILD_FLAGS[@]}" "$target"
  done
fi

FAILED=0
SUMMARY=()
for target in "${TARGETS[@]}"; do
  corpus="fuzz/corpus/$target"
  artifacts="fuzz/artifacts/$target"
  mkdir -p "$corpus" "$artifacts"
  log="$artifacts/fuzz.log"
  echo "fuzz: $target for ${SECONDS_EACH}s (log $log)" >&2
  start=$(date +%s)
  set +e
  nice -n "$NICE" cargo +nightly fuzz run "${BUILD_FLAGS[@]}" "$target" "$corpus" "fuzz/seeds/$target" -- \
    -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
    -max_len="$(max_len "$target")" -print_final_stats=1 \
    -artifact_prefix="$artifacts/" >"$log" 2>&1
  rc=$?
  set -e
  elapsed=$(( $(date +%s) - start ))
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  # libFuzzer's own corpus (after its reductions), then the folder, which
  # keeps superseded inputs until `cargo fuzz cmin`.
  live="$(grep -o 'corp: [0-9]*/[0-9]*[bKM]*b*' "$log" | tail -1 | cut -d' ' -f2)"
  files="$(find "$corpus" -type f | wc -l)"
  bytes="$(du -sb "$corpus" | cut -f1)"
  crashes="$(find "$artifacts" -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) | wc -l)"
  line="$target: ${elapsed}s, ${execs:-?} executions, corpus ${live:-?} (folder: $files files, $bytes bytes), exit $rc, $crashes artifact(s) in $artifacts"
  SUMMARY+=("$line")
  echo "fuzz: $line" >&2
  if [[ $rc != 0 ]]; then
    FAILED=1
    grep -m1 -A3 -E "panicked|ERROR: libFuzzer|SUMMARY" "$log" >&2 || tail -20 "$log" >&2
  fi
done

printf '%s\n' "${SUMMARY[@]}"
exit "$FAILED"
