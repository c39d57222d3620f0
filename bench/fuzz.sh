#!/usr/bin/env bash
# Every libFuzzer harness of tests/fuzz/ (JSON codec and validator, protobuf
# decoder and validator, the batch framing, the rollup's message-to-stage
# path) for FUZZ_RUNS (1,000,000)
# executions each from the committed seed corpus, with ASan and UBSan.
# Prints executions, seconds and crashes (must be 0) per harness.
set -u
cd "$(dirname "$0")/.."
make --no-print-directory fuzz >/dev/null || exit 1
RUNS=${FUZZ_RUNS:-1000000}
status=0
printf '%-16s %10s %8s %8s\n' harness executions seconds crashes
for h in build/fuzz/fuzz_*; do
    [ -x "$h" ] || { echo "no harness built (clang with libFuzzer missing)"; exit 1; }
    name=$(basename "$h"); work=$(mktemp -d)
    start=$(date +%s.%N)
    "$h" -runs="$RUNS" -print_final_stats=1 -artifact_prefix="$work/" "$work" \
        "tests/fuzz/corpus/${name#fuzz_}" >"$work/log" 2>&1
    rc=$?
    secs=$(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $start}")
    execs=$(sed -n 's/.*number_of_executed_units: //p' "$work/log" | tail -1)
    crashes=$(ls "$work" | grep -c -E '^(crash|leak|timeout|oom)-')
    printf '%-16s %10s %8s %8s\n' "$name" "${execs:-?}" "$secs" "$crashes"
    [ "$rc" -eq 0 ] && [ "$crashes" -eq 0 ] || { status=1; tail -20 "$work/log"; }
    rm -rf "$work"
done
exit $status
