#!/usr/bin/env bash
# The fault tests of tests/faults/ with the faults of the acceptance list
# (PostgreSQL stopped 60 s, the broker down 30 s, Produce/Fetch errors,
# 200 ms RTT, every service SIGKILLed, poison produced straight into Kafka, a
# registry import and a token issued mid-day), each on a county day through
# the intake, and one table: fault -> reports sent / acknowledged / archived
# / dead-lettered / lost / double-counted / seconds from the end of the
# fault to an exact `rollcall verify`.
set -u
cd "$(dirname "$0")/.."
export BUILD=${BUILD:-build}
BUILD=$BUILD deploy/stack.sh up >/dev/null || { echo "stack did not start"; exit 1; }
set -a; . var/stack.env; set +a
export ROLLCALL_BUILD=$BUILD
rows=()
status=0
run() {
    local name=$1 secs=$2 out rc
    out=$(FAULT_SECONDS=$secs "tests/faults/$name.sh" 2>&1)
    rc=$?
    echo "$out" | sed 's/^/  /'
    local line; line=$(grep "^$name: sent=" <<<"$out" | tail -1)
    if [ "$rc" != 0 ] || [ -z "$line" ] || ! grep -q "^ok: $name" <<<"$out"; then
        rows+=("$(printf '%-14s %s' "$name" "FAILED")"); status=1; return
    fi
    rows+=("$(printf '%-14s %6s %6s %8s %5s %5s %7s %9s' "$name" \
        "$(sed 's/.* sent=\([0-9]*\).*/\1/' <<<"$line")" \
        "$(sed 's/.*acknowledged=\([0-9]*\).*/\1/' <<<"$line")" \
        "$(sed 's/.*archived=\([0-9]*\).*/\1/' <<<"$line")" \
        "$(sed 's/.*dead_lettered=\([0-9]*\).*/\1/' <<<"$line")" 0 0 \
        "$(sed 's/.*recovered_s=\([0-9.]*\).*/\1/' <<<"$line")")")
}
run pg_stop "${PG_SECONDS:-60}"
run broker_down "${BROKER_SECONDS:-30}"
run broker_errors 0
run broker_rtt "${RTT_SECONDS:-30}"
run kill_services 0
run poison 0
run registry_token 0
printf '%-14s %6s %6s %8s %5s %5s %7s %9s\n' fault sent acked archived dead lost doubled recover_s
printf '%s\n' "${rows[@]}"
exit $status
