#!/usr/bin/env bash
# Every request to the development broker answered 200 ms late (its /rtt)
# for FAULT_SECONDS (10) in the middle of a county day: slow is not down, so
# every service keeps answering /healthz 200 throughout (a false alarm
# fails the test); the intake's answers wait for the slower
# acknowledgements; then the day is exact, nothing lost, nothing counted
# twice.
cd "$(dirname "$0")/../.." || exit 1
. tests/faults/lib.sh
SECONDS_SLOW=${FAULT_SECONDS:-10}
fault_setup broker_rtt 2
[ -n "${ROLLCALL_BROKER_CONTROL:-}" ] || skip "no broker control port"
trap 'curl -s -X POST "$ROLLCALL_BROKER_CONTROL/rtt?ms=0" >/dev/null' EXIT

fault_start_day
sleep 4
curl -fsS -X POST "$ROLLCALL_BROKER_CONTROL/rtt?ms=200" >/dev/null || fail "broker /rtt"
slow_ms=$(now_ms)
echo "broker_rtt: 200 ms RTT for ${SECONDS_SLOW}s"
while [ $(( $(now_ms) - slow_ms )) -lt $(( SECONDS_SLOW * 1000 )) ]; do
    for off in 80 81 82 83 84; do
        code=$(healthz "$off")
        [ "$code" = 200 ] || fail "service on port $((BASE + off)) answers /healthz $code under 200 ms RTT: $(healthz_body "$off")"
    done
    sleep 1
done
curl -fsS -X POST "$ROLLCALL_BROKER_CONTROL/rtt?ms=0" >/dev/null || fail "broker /rtt?ms=0"
fault_finish "$(now_ms)"
