#!/usr/bin/env bash
# The development broker down for FAULT_SECONDS (10 here; bench/ runs 30) in
# the middle of a county day (POST /down, /up on its control port): the
# intake answers 503 while it cannot make a report durable and the client
# retries; every service (intake, rollup, the three desks) answers /healthz
# 503 naming Kafka within 15 s (OUTAGE_HEALTH_S), keeps its positions,
# resumes and answers 200 again; then the day is exact, nothing lost,
# nothing counted twice.
cd "$(dirname "$0")/../.." || exit 1
. tests/faults/lib.sh
SECONDS_DOWN=${FAULT_SECONDS:-10}
fault_setup broker_down 4
[ -n "${ROLLCALL_BROKER_CONTROL:-}" ] || skip "no broker control port"
trap 'curl -s -X POST "$ROLLCALL_BROKER_CONTROL/up" >/dev/null' EXIT

fault_start_day
sleep 6
curl -fsS -X POST "$ROLLCALL_BROKER_CONTROL/down" >/dev/null || fail "broker /down"
down_ms=$(now_ms)
echo "broker_down: broker down for ${SECONDS_DOWN}s"
# Every service: the intake, the rollup and the three desks.
expect_unhealthy "$down_ms" kafka 80 81 82 83 84
left=$(( SECONDS_DOWN - ($(now_ms) - down_ms) / 1000 ))
[ "$left" -gt 0 ] && sleep "$left"
curl -fsS -X POST "$ROLLCALL_BROKER_CONTROL/up" >/dev/null || fail "broker /up"
up_ms=$(now_ms)
expect_healthy_again "$up_ms" 80 81 82 83 84
echo "broker_down: every service healthy $(( ($(now_ms) - up_ms) / 1000 ))s after the broker came back"
fault_finish "$up_ms"
