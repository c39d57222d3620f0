#!/usr/bin/env bash
# Townships follow their villages' latest reports by differences (migration
# 009): in a scratch database with the sample county, every kind of write to
# rollcall.latest_report — first reports in one statement and one by one,
# revisions (a daily report turned zero, a late one replaced by an earlier
# receive time, extra maps changed), rows deleted, and two writers changing
# villages of one township at the same moment — must leave every township
# row equal to a recompute from scratch (rollcall.rebuild_day, compared by
# scripts/drift.sh), and the counts must say what was written.
set -u
cd "$(dirname "$0")/../.."
SAY_AS=township_deltas
. scripts/lib.sh
BUILD=${ROLLCALL_BUILD:-${BUILD:-build}}
RC=$BUILD/rollcall
[ -n "${ROLLCALL_PG_DSN:-}" ] || skip "ROLLCALL_PG_DSN is not set (run under tests/run.sh integration)"
[ -x "$RC" ] || skip "$RC is not built"

DB=deltas_test_$$
ADMIN="$ROLLCALL_PG_DSN dbname=postgres"
DSN="$ROLLCALL_PG_DSN dbname=$DB"
P=2026-11-30
cleanup() { psql -X -qAt "$ADMIN" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1; }
trap cleanup EXIT
psql_at "$ADMIN" -c "CREATE DATABASE $DB" >/dev/null || die "cannot create $DB"
"$RC" migrate --dsn "$DSN" >/dev/null || die "migrate"
"$RC" registry import --csv tests/data/registry-130102.csv --dsn "$DSN" >/dev/null 2>&1 || die "registry import"

check() {  # check WHAT: the townships equal a recompute
    local out
    if out=$(scripts/drift.sh "$DSN" "$P" 2); then pass "$1 ($out)"; else fail "$1: $out"; fi
}

# A village's row: version = period start + $2 µs, indicators from $3.
row() {
    printf "('%s', '%s', 1, %s, rollcall.period_start_us('%s') + %s, gen_random_uuid(), now(), %s, %s, %s, %s, '%s')" \
        "$1" "$P" "$4" "$P" "$2" "$5" "$6" "$3" "$3" "$7"
}
COLS="unit_code, period, level, kind, version, report_id, received_at, late, zone_status, households_visited, confirmed, extra"
mapfile -t V < <(psql_at "$DSN" -c "SELECT code FROM rollcall.unit WHERE level = 1 ORDER BY code")
[ "${#V[@]}" -gt 40 ] || die "the sample registry has ${#V[@]} villages"

# First reports: thirty in one statement, then five one by one.
vals=""
for i in $(seq 0 29); do
    vals+="${vals:+,}$(row "${V[$i]}" $((1000 + i)) $((i + 1)) 1 "$([ $((i % 7)) = 0 ] && echo true || echo false)" $((i % 4 + 1)) "{\"drills\": $i}")"
done
psql_at "$DSN" -c "INSERT INTO rollcall.latest_report ($COLS) VALUES $vals" >/dev/null || die "first reports"
for i in $(seq 30 34); do
    psql_at "$DSN" -c "INSERT INTO rollcall.latest_report ($COLS) VALUES $(row "${V[$i]}" $((2000 + i)) 5 2 false 1 '{}')" \
        >/dev/null || die "report $i"
done
check "first reports, in one statement and one by one"
n=$(psql_at "$DSN" -c "SELECT sum(reported_children) FROM rollcall.aggregate WHERE period = '$P' AND level = 2")
[ "$n" = 35 ] && pass "35 villages counted reported" || fail "reported villages: $n, not 35"

# Revisions: newer versions with other numbers; some turn zero, one loses
# its lateness, extra maps change and empty.
psql_at "$DSN" -c "UPDATE rollcall.latest_report
                     SET version = version + 500, households_visited = households_visited * 3,
                         kind = CASE WHEN unit_code < '${V[5]}' THEN 2 ELSE kind END,
                         late = CASE WHEN unit_code = '${V[0]}' THEN false ELSE late END,
                         zone_status = 4,
                         extra = CASE WHEN unit_code < '${V[10]}' THEN '{}'::jsonb
                                      ELSE jsonb_build_object('drills', 1, 'kits', 2) END
                   WHERE period = '$P' AND unit_code <= '${V[20]}'" >/dev/null || die "revisions"
check "revisions (zero, lateness, zones, extra)"

# Rows deleted (a repair): the villages count missing again.
psql_at "$DSN" -c "DELETE FROM rollcall.latest_report WHERE period = '$P' AND unit_code IN ('${V[1]}', '${V[31]}')" \
    >/dev/null || die "delete"
check "rows deleted"
m=$(psql_at "$DSN" -c "SELECT count(*) FROM rollcall.aggregate WHERE period = '$P' AND '${V[1]}' = ANY (missing_children)")
[ "$m" = 1 ] && pass "a deleted village is missing again" || fail "deleted village in missing_children: $m"

# Two writers of one township at once: each holds its transaction open
# while the other writes; both differences must land.
t=${V[40]:0:9}
mapfile -t W < <(psql_at "$DSN" -c "SELECT code FROM rollcall.unit WHERE rollup_parent = '$t' AND level = 1
                                    AND code NOT IN (SELECT unit_code FROM rollcall.latest_report) ORDER BY code LIMIT 2")
[ "${#W[@]}" = 2 ] || die "no two unreported villages in township $t"
c0=$(psql_at "$DSN" -c "SELECT coalesce(max(confirmed), 0) FROM rollcall.aggregate WHERE unit_code = '$t' AND period = '$P'")
psql_at "$DSN" -c "INSERT INTO rollcall.latest_report ($COLS) VALUES $(row "${W[0]}" 3000 7 1 false 1 '{}')" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 "$DSN" -c "BEGIN; UPDATE rollcall.latest_report SET version = version + 1, confirmed = 70
                                          WHERE unit_code = '${W[0]}' AND period = '$P'; SELECT pg_sleep(1); COMMIT;" \
    >/dev/null 2>&1 &
a=$!
sleep 0.3
psql -X -q -v ON_ERROR_STOP=1 "$DSN" -c "BEGIN; INSERT INTO rollcall.latest_report ($COLS) VALUES
                                          $(row "${W[1]}" 3001 11 1 true 2 '{"kits": 5}'); COMMIT;" >/dev/null 2>&1 &
b=$!
wait "$a" || fail "first writer"
wait "$b" || fail "second writer"
check "two writers of township $t at once"
c=$(psql_at "$DSN" -c "SELECT confirmed FROM rollcall.aggregate WHERE unit_code = '$t' AND period = '$P'")
[ "$c" = $((c0 + 81)) ] && pass "both writers' numbers in township $t (+70, +11)" \
    || fail "township $t confirmed = $c, not $c0 + 81"
finish
