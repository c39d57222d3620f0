#!/usr/bin/env bash
# Runs the test binaries: unit tests alone, integration tests against the
# embedded stack (brought up if it is not), then the dashboard's browser
# tests (tests/run.sh browser runs those alone).  Prints each binary's cmocka
# summary and, at the end, one "N passed, N failed" line over all binaries.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
what=${1:-all}
passed=0; failed=0; failures=()

run_one() {
    local bin=$1
    echo "== $bin"
    if "$bin"; then passed=$((passed+1)); else failed=$((failed+1)); failures+=("$bin"); fi
}

if [ "$what" = all ] || [ "$what" = unit ]; then
    # Binaries from the sources in the tree, never a stale one left in build/.
    for src in tests/unit/test_*.c; do
        [ -e "$src" ] && run_one "$BUILD/tests/unit/$(basename "$src" .c)"
    done
fi
if [ "$what" = all ] || [ "$what" = unit ] || [ "$what" = fuzz ]; then
    # libFuzzer harnesses (make fuzz), a few seconds each from the committed
    # seed corpus; bench/fuzz.sh runs them for a million executions.
    for h in build/fuzz/fuzz_*; do
        [ -x "$h" ] || continue
        name=$(basename "$h"); corpus=tests/fuzz/corpus/${name#fuzz_}
        work=$(mktemp -d)
        echo "== $h (${FUZZ_SECONDS:-5} s)"
        if "$h" -max_total_time="${FUZZ_SECONDS:-5}" -print_final_stats=1 -artifact_prefix="$work/" \
                "$work" "$corpus" >"$work/log" 2>&1; then
            grep -h 'number_of_executed_units' "$work/log"; passed=$((passed+1))
        else
            tail -30 "$work/log"; failed=$((failed+1)); failures+=("$h")
        fi
        rm -rf "$work"
    done
fi
if [ "$what" = all ] || [ "$what" = integration ]; then
    BUILD=$BUILD deploy/stack.sh up || { echo "embedded stack failed to start"; exit 1; }
    set -a; . var/stack.env; set +a
    export ROLLCALL_BUILD=$BUILD
    for src in tests/integration/test_*.c; do
        [ -e "$src" ] && run_one "$BUILD/tests/integration/$(basename "$src" .c)"
    done
    for t in tests/integration/*.sh; do
        [ -x "$t" ] && run_one "$t"
    done
fi
if [ "$what" = all ] || [ "$what" = browser ]; then
    # The dashboard pages in headless chromium, against the stack the
    # integration tests leave up (and with its settings).
    if [ "$what" = browser ]; then
        BUILD=$BUILD deploy/stack.sh up || { echo "embedded stack failed to start"; exit 1; }
        set -a; . var/stack.env; set +a
        export ROLLCALL_BUILD=$BUILD
    fi
    run_one tests/browser/run.sh
fi
if [ "$what" = all ] || [ "$what" = faults ]; then
    # A county day with a fault injected mid-way (PostgreSQL stopped, broker
    # down, broker errors, broker RTT, every service killed, poison, registry
    # and tokens changed); each under two minutes.
    if [ "$what" = faults ]; then
        BUILD=$BUILD deploy/stack.sh up || { echo "embedded stack failed to start"; exit 1; }
        set -a; . var/stack.env; set +a
        export ROLLCALL_BUILD=$BUILD
    fi
    for t in tests/faults/*.sh; do
        [ -x "$t" ] && run_one "$t"
    done
fi
[ ${#failures[@]} -gt 0 ] && printf 'failed: %s\n' "${failures[@]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
