#!/usr/bin/env bash
# The development broker down for FAULT_SECONDS (10 here; bench/ runs 30) in
# the middle of a county day (POST /down, /up on its control port): the
# intake answers 503 while it cannot make a report durable and the client
# retries; the rollup and the levels keep their positions and resume; then
# the day is exact, nothing lost, nothing counted twice.
cd "$(dirname "$0")/../.." || exit 1
. tests/faults/lib.sh
SECONDS_DOWN=${FAULT_SECONDS:-10}
fault_setup broker_down 4
[ -n "${ROLLCALL_BROKER_CONTROL:-}" ] || skip "no broker control port"
trap 'curl -s -X POST "$ROLLCALL_BROKER_CONTROL/up" >/dev/null' EXIT

fault_start_day
sleep 6
curl -fsS -X POST "$ROLLCALL_BROKER_CONTROL/down" >/dev/null || fail "broker /down"
echo "broker_down: broker down for ${SECONDS_DOWN}s"
sleep "$SECONDS_DOWN"
curl -fsS -X POST "$ROLLCALL_BROKER_CONTROL/up" >/dev/null || fail "broker /up"
up_ms=$(now_ms)
for off in 80 81 82 83 84; do
    wait_healthy $off 60 || fail "service on port $((BASE + off)) did not recover: $(healthz_body $off)"
done
echo "broker_down: every service healthy $(( ($(now_ms) - up_ms) / 1000 ))s after the broker came back"
fault_finish "$up_ms"
