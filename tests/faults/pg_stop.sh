#!/usr/bin/env bash
# PostgreSQL stopped for FAULT_SECONDS (60) in the middle of a county day:
# the intake keeps accepting (tokens and registry are cached), the rollup
# and the level services back off with /healthz 503 naming PostgreSQL, keep
# their Kafka positions (stored in PostgreSQL) and resume by themselves;
# then the day is exact, nothing lost, nothing counted twice.
cd "$(dirname "$0")/../.." || exit 1
. tests/faults/lib.sh
SECONDS_DOWN=${FAULT_SECONDS:-60}
fault_setup pg_stop 5

PGBIN=${ROLLCALL_PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
DATA=$(readlink -f var/pg)
PG_PORT=$((BASE + 32))
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_start() {
    as_postgres "$PGBIN/pg_ctl" -D "$DATA" -w -t 60 -l "$DATA/server.log" \
        -o "-p $PG_PORT -k $DATA" start >/dev/null
}
trap 'as_postgres "$PGBIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1 || pg_start' EXIT

fault_start_day
sleep 6
as_postgres "$PGBIN/pg_ctl" -D "$DATA" -w -m fast stop >/dev/null || fail "pg_ctl stop"
echo "pg_stop: PostgreSQL stopped for ${SECONDS_DOWN}s"
sleep 8
code=$(healthz 81); body=$(healthz_body 81)
[ "$code" = 503 ] || fail "rollup /healthz answered $code with PostgreSQL down"
grep -qi postgres <<<"$body" || fail "rollup /healthz does not name PostgreSQL: $body"
for off in 82 83 84; do
    c=$(healthz $off)
    [ "$c" = 503 ] || echo "pg_stop: note: service on port $((BASE + off)) answered /healthz $c with PostgreSQL down"
done
sleep $((SECONDS_DOWN - 8))
pg_start || fail "PostgreSQL did not start again"
up_ms=$(now_ms)
echo "pg_stop: PostgreSQL started again"
for off in 81 82 83 84; do
    wait_healthy $off 60 || fail "service on port $((BASE + off)) did not recover: $(healthz_body $off)"
done
echo "pg_stop: every service healthy $(( ($(now_ms) - up_ms) / 1000 ))s after PostgreSQL came back"
fault_finish "$up_ms"
