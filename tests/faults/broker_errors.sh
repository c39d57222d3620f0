#!/usr/bin/env bash
# Produce and Fetch requests failing (retriable errors pushed through the
# development broker's /errors) in the middle of a county day: every client
# retries, the day is exact, nothing lost, nothing counted twice.  (Round
# trips of 200 ms are broker_rtt.sh.)
cd "$(dirname "$0")/../.." || exit 1
. tests/faults/lib.sh
fault_setup broker_errors 1
[ -n "${ROLLCALL_BROKER_CONTROL:-}" ] || skip "no broker control port"
ctl() { curl -fsS -X POST "$ROLLCALL_BROKER_CONTROL/$1" >/dev/null || fail "broker $1"; }
trap 'curl -s -X POST "$ROLLCALL_BROKER_CONTROL/errors/clear?api=Produce" >/dev/null
      curl -s -X POST "$ROLLCALL_BROKER_CONTROL/errors/clear?api=Fetch" >/dev/null' EXIT

fault_start_day
sleep 4
ctl "errors?api=Produce&code=6&count=50"
ctl "errors?api=Fetch&code=6&count=50"
echo "broker_errors: 50 Produce and 50 Fetch errors injected"
sleep 8
ctl "errors/clear?api=Produce"
ctl "errors/clear?api=Fetch"
end_ms=$(now_ms)
fault_finish "$end_ms"
