#!/usr/bin/env bash
# Acceptance tests of the ops commands against real PostgreSQL, the
# development broker and a private rollup (scratch database, scratch consumer
# group, so the stack's own services and data are never touched):
#   1. replaying a whole county-day twice leaves rollcall.v_unit_day unchanged,
#      byte for byte;
#   2. deleting one township's latest rows and aggregate (a simulated loss),
#      then replaying that township, restores exactly the previous state;
#   3. a dry run changes nothing, and its printed diff is what the real run
#      then prints (also when county and province aggregates were lost);
#   4. a dead letter whose cause was fixed is replayed and counted once;
#   5. file import: invalid lines named by line and field, valid ones sent;
#   6. gaps finds the loss and proposes the replay that repairs it;
#   7. status shows the group, refuses to rewind while it runs, rewinds it
#      once stopped, and the re-read changes nothing.
# Skips (exit 0) with a message when the stack or the rollup is missing.
set -u
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUILD=${ROLLCALL_BUILD:-${BUILD:-build}}
RC=$BUILD/rollcall
ROLLUP=$BUILD/rollcall-rollup

SAY_AS=test_ops
. scripts/lib.sh
[ -n "${ROLLCALL_PG_DSN:-}" ] || skip "ROLLCALL_PG_DSN is not set (run under tests/run.sh integration)"
[ -n "${ROLLCALL_KAFKA_BROKERS:-}" ] || skip "ROLLCALL_KAFKA_BROKERS is not set"
[ -x "$RC" ] || skip "$RC is not built"
[ -x "$ROLLUP" ] || skip "$ROLLUP is not built yet (the rollup service): these tests need it"
[ -x "$BUILD/rollcall-devbroker" ] || skip "$BUILD/rollcall-devbroker is not built"

TMP=$(mktemp -d /tmp/rollcall-ops-test.XXXXXX)
DB=ops_test_$$
GROUP=ops-test-$$
ADMIN_DSN="$ROLLCALL_PG_DSN dbname=postgres"
DSN="$ROLLCALL_PG_DSN dbname=$DB"
# The rollup and the ops commands under test run as their own roles when the
# stack has them; the test's own checks and set-up stay the owner's.
ROLLUP_DSN="${ROLLCALL_PG_DSN_ROLLUP:-$ROLLCALL_PG_DSN} dbname=$DB"
OPS_DSN="${ROLLCALL_PG_DSN_OPS:-$ROLLCALL_PG_DSN} dbname=$DB"
ROLLUP_PORT=$(( ${ROLLCALL_PORT_BASE:-25400} + 60 ))
ROLLUP_PID=
BROKER_PID=
FAILED=0
DAY=$(TZ=Asia/Shanghai date +%F)
COUNTY=130102
TOWNSHIP=130102001

psql_() { psql -X -qAt -v ON_ERROR_STOP=1 "$DSN" "$@"; }

stop_rollup() {
    if [ -n "$ROLLUP_PID" ] && kill -0 "$ROLLUP_PID" 2>/dev/null; then
        kill -TERM "$ROLLUP_PID"
        for _ in $(seq 1 100); do kill -0 "$ROLLUP_PID" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$ROLLUP_PID" 2>/dev/null && kill -KILL "$ROLLUP_PID"
        wait "$ROLLUP_PID" 2>/dev/null
    fi
    ROLLUP_PID=
}

cleanup() {
    stop_rollup
    [ -n "$BROKER_PID" ] && kill -TERM "$BROKER_PID" 2>/dev/null && wait "$BROKER_PID" 2>/dev/null
    psql -X -qAt "$ADMIN_DSN" -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1
    if [ "$FAILED" -eq 0 ] && [ -z "${KEEP_TMP:-}" ]; then rm -rf "$TMP"; else say "artifacts kept in $TMP"; fi
}
trap cleanup EXIT

# Whether the rollup has joined its group yet does not matter: every replay
# below waits for it to store offsets past what was sent.
start_rollup() {
    # A fresh port each start (the previous one may linger in TIME_WAIT),
    # and the next one when something else holds it.
    local try
    for try in 1 2 3 4 5; do
        ROLLUP_PORT=$((ROLLUP_PORT + 1))
        ROLLCALL_PG_DSN="$ROLLUP_DSN" "$ROLLUP" --http_port="$ROLLUP_PORT" --group="$GROUP" --registry_reload=0 \
            >>"$TMP/rollup.log" 2>&1 </dev/null &
        ROLLUP_PID=$!
        for _ in $(seq 1 100); do
            curl -fs "http://127.0.0.1:$ROLLUP_PORT/healthz" >/dev/null 2>&1 && return 0
            kill -0 "$ROLLUP_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$ROLLUP_PID" 2>/dev/null && return 0   # up, health not yet green
        wait "$ROLLUP_PID" 2>/dev/null
        ROLLUP_PID=
        grep -q "cannot listen" "$TMP/rollup.log" || break
    done
    die "rollup did not start: $(tail -3 "$TMP/rollup.log")"
}

# v_unit_day for the county-day, every column (byte-for-byte comparisons).
dump() {
    psql_ -c "COPY (SELECT * FROM rollcall.v_unit_day WHERE period = '$DAY' AND unit_code LIKE '13%'
                    ORDER BY level, unit_code) TO STDOUT" >"$1"
}
# The same without updated_at, which records when a row was last written.
dump_content() {
    local cols
    cols=$(psql_ -c "SELECT string_agg(attname, ', ' ORDER BY attnum) FROM pg_attribute
                      WHERE attrelid = 'rollcall.v_unit_day'::regclass AND attnum > 0
                        AND NOT attisdropped AND attname <> 'updated_at'")
    psql_ -c "COPY (SELECT $cols FROM rollcall.v_unit_day WHERE period = '$DAY' AND unit_code LIKE '13%'
                    ORDER BY level, unit_code) TO STDOUT" >"$1"
}
# The diff lines a replay printed (the unit-period lines and their count).
diff_lines() { grep -E '^(village|township|county|province) |row\(s\) of rollcall.v_unit_day changed|^\.\.\. and' "$1"; }

# ---------------------------------------------------------------- set up
# A private broker too: the stack's level services would otherwise answer
# this rollup's aggregates with filed reports at moments of their choosing.
"$BUILD/rollcall-devbroker" --bootstrap-file "$TMP/broker.addr" >"$TMP/broker.log" 2>&1 </dev/null &
BROKER_PID=$!
for _ in $(seq 1 100); do [ -s "$TMP/broker.addr" ] && break; sleep 0.1; done
[ -s "$TMP/broker.addr" ] || die "private broker did not start"
export ROLLCALL_KAFKA_BROKERS=$(cat "$TMP/broker.addr")
say "scratch database $DB, consumer group $GROUP, broker $ROLLCALL_KAFKA_BROKERS"
psql -X -qAt "$ADMIN_DSN" -c "CREATE DATABASE $DB" >/dev/null || die "cannot create $DB"
"$RC" migrate --dsn "$DSN" >"$TMP/migrate.log" 2>&1 || die "migrate: $(tail -2 "$TMP/migrate.log")"
"$RC" registry import --csv tests/data/registry-130102.csv --dsn "$DSN" >"$TMP/registry.log" 2>&1 \
    || die "registry import: $(tail -2 "$TMP/registry.log")"
start_rollup

# A county-day: every village of county 130102, some ZERO, some revised
# later in the file (the later line wins), one URGENT.
psql_ -c "SELECT code FROM rollcall.unit WHERE level = 1 ORDER BY code" >"$TMP/villages"
awk -v d="$DAY" '{
    n = NR
    if (n % 7 == 0)
        printf "{\"unit_code\":\"%s\",\"level\":\"village\",\"period\":\"%s\",\"kind\":\"zero\",\"zone_status\":\"normal\"}\n", $1, d
    else
        printf "{\"unit_code\":\"%s\",\"level\":\"village\",\"period\":\"%s\",\"kind\":\"daily\",\"zone_status\":\"%s\",\"indicators\":{\"households_visited\":%d,\"persons_screened\":%d,\"confirmed\":%d,\"masks\":%d},\"extra\":{\"hb_checkpoints\":%d}}\n", $1, d, (n % 5 == 0 ? "control" : "prevention"), 30 + n, 100 + 3 * n, n % 3, 500 + n, n % 4
} END {
    # revisions of the first three villages
    while ((getline v < ARGV[1]) > 0 && k < 3) {
        k++
        printf "{\"unit_code\":\"%s\",\"level\":\"village\",\"period\":\"%s\",\"kind\":\"daily\",\"indicators\":{\"households_visited\":%d,\"confirmed\":%d}}\n", v, d, 1000 + k, 10 + k
    }
}' "$TMP/villages" >"$TMP/day.jsonl"
first=$(head -1 "$TMP/villages")
printf '{"unit_code":"%s","level":"village","period":"%s","kind":"urgent","incident":{"type":"fever_cluster","severity":2,"occurred_at":"%s"}}\n' \
    "$first" "$DAY" "$(date -u -d '-1 min' +%FT%TZ)" >>"$TMP/day.jsonl"
"$RC" replay --file "$TMP/day.jsonl" --dsn "$OPS_DSN" --group "$GROUP" --wait-timeout 120 \
    >"$TMP/import.out" 2>"$TMP/import.err" || die "importing the county-day: $(tail -2 "$TMP/import.err")"
nvill=$(psql_ -c "SELECT count(*) FROM rollcall.latest_report WHERE period = '$DAY' AND level = 1")
nexp=$(wc -l <"$TMP/villages")
[ "$nvill" -eq "$nexp" ] && pass "county-day in: $nvill village reports" \
    || die "county-day: $nvill latest village rows, expected $nexp"
dump "$TMP/A.tsv"

# ------------------------------------------------- 1. replay twice, no change
for i in 1 2; do
    "$RC" replay --unit "$COUNTY" --from "$DAY" --to "$DAY" --dsn "$OPS_DSN" --group "$GROUP" \
        --wait-timeout 120 >"$TMP/replay$i.out" 2>"$TMP/replay$i.err" \
        || fail "replay $i of the county-day failed: $(tail -1 "$TMP/replay$i.err")"
    dump "$TMP/B$i.tsv"
    if cmp -s "$TMP/A.tsv" "$TMP/B$i.tsv"; then
        pass "replay $i of the whole county-day: v_unit_day unchanged byte for byte"
    else
        fail "replay $i changed v_unit_day"; diff "$TMP/A.tsv" "$TMP/B$i.tsv" | head -5
    fi
    grep -q '^0 row(s) of rollcall.v_unit_day changed' "$TMP/replay$i.out" \
        || fail "replay $i printed changes: $(diff_lines "$TMP/replay$i.out" | head -3)"
done
sent=$(grep -o 'replayed [0-9]* report' "$TMP/replay1.out" | grep -o '[0-9]*')
archived=$(psql_ -c "SELECT count(*) FROM rollcall.report_archive WHERE period = '$DAY'")
[ "$sent" = "$archived" ] && pass "the replay sent every archived revision ($sent)" \
    || fail "replay sent $sent, the archive holds $archived"

# ------------------------------------- 2+3. loss of one township, dry run, replay
dump_content "$TMP/A_content.tsv"
psql_ -c "DELETE FROM rollcall.latest_report WHERE period = '$DAY' AND unit_code LIKE '$TOWNSHIP%';
          DELETE FROM rollcall.aggregate WHERE period = '$DAY' AND unit_code = '$TOWNSHIP'"
dump "$TMP/lost.tsv"
"$RC" gaps --period "$DAY" --unit "$COUNTY" --dsn "$OPS_DSN" >"$TMP/gaps.out" 2>&1
grep -q "rollcall replay --unit $TOWNSHIP --from $DAY --to $DAY" "$TMP/gaps.out" \
    && pass "gaps proposes replaying $TOWNSHIP" || { fail "gaps did not propose the township"; cat "$TMP/gaps.out"; }

"$RC" replay --unit "$TOWNSHIP" --from "$DAY" --to "$DAY" --dry-run --dsn "$OPS_DSN" --limit 0 \
    >"$TMP/dry.out" 2>"$TMP/dry.err" || fail "dry run failed: $(tail -1 "$TMP/dry.err")"
dump "$TMP/after_dry.tsv"
cmp -s "$TMP/lost.tsv" "$TMP/after_dry.tsv" && pass "the dry run changed nothing" \
    || fail "the dry run changed v_unit_day"
"$RC" replay --unit "$TOWNSHIP" --from "$DAY" --to "$DAY" --dsn "$OPS_DSN" --group "$GROUP" --limit 0 \
    --wait-timeout 120 >"$TMP/real.out" 2>"$TMP/real.err" || fail "replay of $TOWNSHIP failed: $(tail -1 "$TMP/real.err")"
diff_lines "$TMP/dry.out" >"$TMP/dry.diff"; diff_lines "$TMP/real.out" >"$TMP/real.diff"
if [ -s "$TMP/dry.diff" ] && cmp -s "$TMP/dry.diff" "$TMP/real.diff"; then
    pass "the dry run's diff is what the real run did ($(tail -1 "$TMP/real.diff"))"
else
    fail "dry-run diff and real diff differ"; diff "$TMP/dry.diff" "$TMP/real.diff" | head -10
fi
dump_content "$TMP/restored.tsv"
cmp -s "$TMP/A_content.tsv" "$TMP/restored.tsv" && pass "replaying $TOWNSHIP restored exactly the previous state" \
    || { fail "the township's replay did not restore the state"; diff "$TMP/A_content.tsv" "$TMP/restored.tsv" | head -5; }

# The same when the county and province aggregates were lost too: the diff
# then shows aggregates recomputed by the rollup's SQL.
psql_ -c "DELETE FROM rollcall.latest_report WHERE period = '$DAY' AND unit_code LIKE '$TOWNSHIP%';
          DELETE FROM rollcall.aggregate WHERE period = '$DAY' AND unit_code IN ('$TOWNSHIP', '$COUNTY', '13')"
"$RC" replay --unit "$TOWNSHIP" --from "$DAY" --to "$DAY" --dry-run --dsn "$OPS_DSN" --limit 0 \
    >"$TMP/dry2.out" 2>"$TMP/dry2.err" || fail "dry run 2 failed: $(tail -1 "$TMP/dry2.err")"
"$RC" replay --unit "$TOWNSHIP" --from "$DAY" --to "$DAY" --dsn "$OPS_DSN" --group "$GROUP" --limit 0 \
    --wait-timeout 120 >"$TMP/real2.out" 2>"$TMP/real2.err" || fail "replay 2 failed: $(tail -1 "$TMP/real2.err")"
diff_lines "$TMP/dry2.out" >"$TMP/dry2.diff"; diff_lines "$TMP/real2.out" >"$TMP/real2.diff"
if grep -q '^county ' "$TMP/dry2.diff" && grep -q '^province ' "$TMP/dry2.diff" \
        && cmp -s "$TMP/dry2.diff" "$TMP/real2.diff"; then
    pass "with county and province lost too, the dry run's diff is what the real run did"
else
    fail "dry-run diff 2 and real diff 2 differ"; diff "$TMP/dry2.diff" "$TMP/real2.diff" | head -10
fi
dump_content "$TMP/restored2.tsv"
cmp -s "$TMP/A_content.tsv" "$TMP/restored2.tsv" && pass "... and the state is restored exactly" \
    || { fail "state not restored after losing the parents"; diff "$TMP/A_content.tsv" "$TMP/restored2.tsv" | head -5; }

# -------------------------------------------------------- 5. file import
cat >"$TMP/bad.csv" <<CSV
unit_code,level,period,kind,confirmed,households_visited
$first,village,$DAY,daily,-4,10
$first,township,$DAY,daily,1,1
999999999999,village,$DAY,daily,1,1
CSV
"$RC" replay --file "$TMP/bad.csv" --dsn "$OPS_DSN" --no-wait >"$TMP/bad.out" 2>"$TMP/bad.err"
st=$?
if [ $st -ne 0 ] && grep -q "bad.csv:2: indicators.confirmed: must not be negative" "$TMP/bad.err" \
        && grep -q "bad.csv:3: level" "$TMP/bad.err" && grep -q "bad.csv:4: unit_code" "$TMP/bad.err"; then
    pass "file import names each invalid line and field"
else
    fail "file import errors not as expected (exit $st)"; cat "$TMP/bad.err"
fi

# Versions and receive times are the system's, as at the intake: a line
# that brings its own is refused, naming the field, and nothing is sent.
second=$(sed -n 2p "$TMP/villages")
rx=$(date -u +%FT%T.123456Z)
{
    printf '{"unit_code":"%s","period":"%s","kind":"daily","received_at":"%s","indicators":{"confirmed":77}}\n' \
        "$second" "$DAY" "$rx"
    printf '{"unit_code":"%s","period":"%s","kind":"daily","version":4102444800000000,"indicators":{"confirmed":78}}\n' \
        "$second" "$DAY"
} >"$TMP/own.jsonl"
"$RC" replay --file "$TMP/own.jsonl" --dsn "$OPS_DSN" --no-wait >"$TMP/own.out" 2>"$TMP/own.err"
st=$?
if [ $st -ne 0 ] && grep -q "own.jsonl:1: received_at: assigned by the service" "$TMP/own.err" \
        && grep -q "own.jsonl:2: version: assigned by the service" "$TMP/own.err"; then
    pass "file import refuses a version or receive time taken from the file"
else
    fail "file import with its own version/received_at (exit $st): $(cat "$TMP/own.err")"
fi

# A revision from a file, dry run then real: the same revision, the same
# change printed but for the version each run assigns (its receive time).
printf '{"report_id":"%s","unit_code":"%s","level":"village","period":"%s","kind":"daily","indicators":{"confirmed":5,"masks":9}}\n' \
    "$(cat /proc/sys/kernel/random/uuid)" "$second" "$DAY" >"$TMP/rev.jsonl"
t_before=$(date +%s%6N)
"$RC" replay --file "$TMP/rev.jsonl" --dry-run --dsn "$OPS_DSN" --limit 0 >"$TMP/fdry.out" 2>"$TMP/fdry.err" \
    || fail "file dry run: $(tail -1 "$TMP/fdry.err")"
"$RC" replay --file "$TMP/rev.jsonl" --dsn "$OPS_DSN" --group "$GROUP" --limit 0 --wait-timeout 120 \
    >"$TMP/freal.out" 2>"$TMP/freal.err" || fail "file import: $(tail -1 "$TMP/freal.err")"
# Each run's own version (its receive time) aside, the two diffs agree.
unversioned() { diff_lines "$1" | sed -E 's/version [0-9]+ -> [0-9]+/version (assigned)/'; }
unversioned "$TMP/fdry.out" >"$TMP/fdry.diff"; unversioned "$TMP/freal.out" >"$TMP/freal.diff"
v=$(psql_ -c "SELECT version FROM rollcall.latest_report WHERE unit_code = '$second' AND period = '$DAY'")
if [ "${v:-0}" -ge "$t_before" ] && [ "$v" -le "$(date +%s%6N)" ]; then
    pass "file import: the version is the system's receive time ($v)"
else
    fail "file import: version $v is not a receive time after $t_before"
fi
if grep -q "^village  $second .*confirmed .* -> 5" "$TMP/fdry.diff" && cmp -s "$TMP/fdry.diff" "$TMP/freal.diff"; then
    pass "file import: the dry run's diff is what the import did ($(tail -1 "$TMP/freal.diff"))"
else
    fail "file dry-run diff and import diff differ"; diff "$TMP/fdry.diff" "$TMP/freal.diff" | head -6
fi

# ------------------------------------------------------- 4. dead letters
# The registry gains a village the running rollup does not know yet (it
# runs with --registry_reload=0: it reads the registry only at start): its
# report is dead-lettered; once the rollup knows it, the replay goes through.
newv=${TOWNSHIP}777
cp tests/data/registry-130102.csv "$TMP/registry-plus.csv"
echo "$newv,Test village,$TOWNSHIP,village" >>"$TMP/registry-plus.csv"
"$RC" registry import --csv "$TMP/registry-plus.csv" --dsn "$DSN" >/dev/null 2>&1 || fail "registry import"
printf '{"unit_code":"%s","level":"village","period":"%s","kind":"daily","indicators":{"confirmed":7}}\n' \
    "$newv" "$DAY" >"$TMP/new.jsonl"
"$RC" replay --file "$TMP/new.jsonl" --dsn "$OPS_DSN" --group "$GROUP" --wait-timeout 120 >/dev/null 2>"$TMP/new.err" \
    || fail "sending the new village's report: $(tail -1 "$TMP/new.err")"
ndl=$(psql_ -c "SELECT count(*) FROM rollcall.dead_letter WHERE status = 'new'")
[ "$ndl" -eq 1 ] && pass "the unknown village's report was dead-lettered" || fail "dead letters: $ndl, expected 1"
"$RC" dlq list --dsn "$OPS_DSN" >"$TMP/dlq.out" 2>&1
grep -q "unknown unit $newv" "$TMP/dlq.out" && pass "dlq list shows the reason" || { fail "dlq list"; cat "$TMP/dlq.out"; }
stop_rollup
start_rollup    # now with the village in its registry
"$RC" dlq replay --all --dsn "$OPS_DSN" >"$TMP/dlq1.out" 2>&1
"$RC" dlq replay --all --dsn "$OPS_DSN" >"$TMP/dlq2.out" 2>&1
grep -q '^replayed 1, still invalid 0' "$TMP/dlq1.out" && grep -q 'no dead letters to replay' "$TMP/dlq2.out" \
    && pass "dlq replay: replayed once, nothing the second time" \
    || { fail "dlq replay output"; cat "$TMP/dlq1.out" "$TMP/dlq2.out"; }
for _ in $(seq 1 300); do
    [ "$(psql_ -c "SELECT count(*) FROM rollcall.latest_report WHERE unit_code = '$newv'")" -eq 1 ] && break
    sleep 0.1
done
sleep 1
got=$(psql_ -c "SELECT (SELECT count(*) FROM rollcall.latest_report WHERE unit_code = '$newv' AND period = '$DAY')
                    || ' ' || (SELECT count(*) FROM rollcall.report_archive WHERE unit_code = '$newv')
                    || ' ' || (SELECT confirmed - (SELECT sum(confirmed) FROM rollcall.latest_report
                                                    WHERE level = 1 AND period = '$DAY'
                                                      AND unit_code LIKE '$TOWNSHIP%' AND unit_code <> '$newv')
                                 FROM rollcall.aggregate WHERE unit_code = '$TOWNSHIP' AND period = '$DAY')
                    || ' ' || (SELECT status FROM rollcall.dead_letter ORDER BY id LIMIT 1)")
[ "$got" = "1 1 7 replayed" ] && pass "the fixed dead letter counted once (latest 1, archive 1, +7 in the township, status replayed)" \
    || fail "after dlq replay: '$got', expected '1 1 7 replayed'"

# ---------------------------------------------------------- 7. status
"$RC" status --dsn "$OPS_DSN" --group "$GROUP" >"$TMP/status.out" 2>&1
grep -q "^$GROUP .*reports.village .*postgresql" "$TMP/status.out" && pass "status shows the rollup's positions" \
    || { fail "status"; head -5 "$TMP/status.out"; }
"$RC" status --dsn "$OPS_DSN" --rewind "$GROUP" --earliest --join-timeout 5 >"$TMP/rewind.out" 2>&1
st=$?
[ $st -ne 0 ] && grep -q "refusing" "$TMP/rewind.out" && pass "status --rewind refuses while the rollup runs" \
    || { fail "rewind while running (exit $st)"; cat "$TMP/rewind.out"; }

# Stopped, the group can be rewound; started again, the rollup re-reads the
# partitions from their first message and, idempotent, changes nothing.
stop_rollup
dump "$TMP/before_rewind.tsv"
pos() { psql_ -c "SELECT coalesce(sum(next_offset), -1) FROM rollcall.consumer_offset
                   WHERE consumer_group = '$GROUP' AND topic = 'reports.village'"; }
p_before=$(pos)
"$RC" status --dsn "$OPS_DSN" --rewind "$GROUP" --earliest --topic reports.village \
    --join-timeout 120 >"$TMP/rewind2.out" 2>&1
if grep -q "^rewound [0-9]* partition(s) of $GROUP in rollcall.consumer_offset" "$TMP/rewind2.out" \
        && [ "$(pos)" -eq 0 ] && [ "$p_before" -gt 0 ]; then
    pass "status --rewind --earliest once the rollup is stopped (positions $p_before -> 0)"
else
    fail "rewind of the stopped group (positions $p_before -> $(pos))"; cat "$TMP/rewind2.out"
fi
start_rollup
for _ in $(seq 1 600); do [ "$(pos)" -ge "$p_before" ] && break; sleep 0.5; done
sleep 1
dump "$TMP/after_rewind.tsv"
[ "$(pos)" -eq "$p_before" ] && cmp -s "$TMP/before_rewind.tsv" "$TMP/after_rewind.tsv" \
    && pass "re-reading reports.village from the start left v_unit_day unchanged byte for byte" \
    || { fail "after the rewind: positions $(pos) of $p_before"; diff "$TMP/before_rewind.tsv" "$TMP/after_rewind.tsv" | head -4; }

[ "$FAILED" -eq 0 ] && say "all passed" || say "$FAILED failure(s)"
exit $(( FAILED > 0 ))
