#!/usr/bin/env bash
# PostgreSQL stopped for FAULT_SECONDS (60) in the middle of a county day:
# the intake keeps accepting (tokens and registry are cached), the rollup
# and the three desks answer /healthz 503 naming PostgreSQL within 15 s
# (OUTAGE_HEALTH_S), keep their Kafka positions (stored in PostgreSQL) and
# resume by themselves, /healthz 200 again; then the day is exact, nothing
# lost, nothing counted twice.
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
down_ms=$(now_ms)
echo "pg_stop: PostgreSQL stopped for ${SECONDS_DOWN}s"
# Every service whose work needs PostgreSQL: the rollup and the three desks
# (the intake works from its cached tokens and registry).
expect_unhealthy "$down_ms" postgres 81 82 83 84
echo "pg_stop: the intake answers /healthz $(healthz 80) meanwhile"
left=$(( SECONDS_DOWN - ($(now_ms) - down_ms) / 1000 ))
[ "$left" -gt 0 ] && sleep "$left"
pg_start || fail "PostgreSQL did not start again"
up_ms=$(now_ms)
echo "pg_stop: PostgreSQL started again"
expect_healthy_again "$up_ms" 80 81 82 83 84
echo "pg_stop: every service healthy $(( ($(now_ms) - up_ms) / 1000 ))s after PostgreSQL came back"
fault_finish "$up_ms"
