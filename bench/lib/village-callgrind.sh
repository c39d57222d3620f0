#!/usr/bin/env bash
# CPU per single JSON report, as instructions counted by callgrind: a
# repeatable figure on a shared machine, where wall-clock CPU time is not.
# Runs rollcall-village under valgrind against the stack's broker and
# database (the sample county's tokens), warms up, zeroes the counters,
# sends N single JSON reports over keep-alive connections with wrk, dumps,
# and prints the instructions per report of the whole process (every
# thread: the loop and librdkafka's) and the top functions.
#
#   bench/lib/village-callgrind.sh [N]        (default 2000; stack up)
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
VILLAGE=${VILLAGE:-$BUILD/rollcall-village}   # the binary measured
N=${1:-2000}
BASE=${ROLLCALL_PORT_BASE:-25400}
PORT=$((BASE + 91))
WORK=$(mktemp -d /tmp/rollcall-callgrind.XXXXXX)
PID=
command -v valgrind >/dev/null || { echo "village-callgrind: valgrind is not installed"; exit 1; }
command -v wrk >/dev/null || { echo "village-callgrind: wrk is not installed"; exit 1; }
set -a; . var/stack.env; set +a
cleanup() {
    [ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

"$BUILD/rollcall" token issue --villages-under 130102 >"$WORK/tokens" 2>/dev/null
PERIOD=$(TZ=Asia/Shanghai date +%F)
{
    echo "villages = {"
    while read -r unit tok; do echo "  {\"$unit\", \"$tok\"},"; done <"$WORK/tokens"
    echo "}"
} >"$WORK/units.lua"
cat >"$WORK/single.lua" <<LUA
dofile("$WORK/units.lua")
local reqs, n, got, limit = {}, 0, 0, 0
function init(args)
  limit = tonumber(args[1])
  for i, v in ipairs(villages) do
    local body = '{"unit_code":"' .. v[1] .. '","period":"$PERIOD","kind":"daily",' ..
      '"submitter":"bench","zone_status":"normal","indicators":{"households_visited":' .. (i % 97) ..
      ',"persons_screened":' .. (i * 3) .. ',"temperature_checks":' .. (i * 2) ..
      ',"staff_on_duty":4,"volunteers":7,"masks":1200}}'
    reqs[i] = wrk.format("POST", "/v1/reports",
      {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. v[2]}, body)
  end
  n = math.random(#reqs)
end
function request() n = n % #reqs + 1; return reqs[n] end
LUA
accepted() {
    curl -fs "http://127.0.0.1:$PORT/metrics" \
        | awk '/^rollcall_village_reports_total\{status="202"\}/ {n = $2} END {print n + 0}' || echo 0
}
# wrk runs for a duration, not a count: it is stopped when the intake has
# answered N more reports.
send() {  # requests
    local from to w
    from=$(accepted); from=${from:-0}
    to=$((from + $1))
    wrk -t1 -c8 -d3600s -s "$WORK/single.lua" "http://127.0.0.1:$PORT" >"$WORK/wrk.out" 2>&1 &
    w=$!
    while [ "$(accepted)" -lt "$to" ] && kill -0 "$PID" 2>/dev/null; do sleep 0.2; done
    kill -TERM "$w"; wait "$w" 2>/dev/null || true
    SENT=$(( $(accepted) - from ))
}

valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out" --dump-instr=no \
    "$VILLAGE" --http_port="$PORT" --pg_dsn="$ROLLCALL_PG_DSN" \
    --kafka_brokers="$ROLLCALL_KAFKA_BROKERS" --log_level=warn >"$WORK/village.log" 2>&1 &
PID=$!
for _ in $(seq 1 3000); do   # valgrind starts slowly on a busy machine
    curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done
send 300                               # warm-up: connections, metadata, tokens
callgrind_control -z "$PID" >/dev/null
send "$N"
callgrind_control -d "$PID" >/dev/null
mkdir -p var/bench
dump=var/bench/village-callgrind.out
mv "$(ls -t "$WORK"/cg.out.* | head -1)" "$dump"
N=$SENT
total=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
echo "village intake under callgrind: $N single JSON reports answered 202 between zero and dump ($dump)"
awk -v t="$total" -v n="$N" 'BEGIN {printf "instructions per single JSON report: %.0f (whole process, every thread)\n", t / n}'
for incl in no yes; do
    echo "# top functions, inclusive=$incl, instructions per report"
    callgrind_annotate --auto=no --inclusive=$incl "$dump" 2>/dev/null | grep -E '^ *[0-9,]+ ' \
        | sed 1d | head -"${TOP:-25}" \
        | awk -v n="$N" '{c = $1; gsub(",", "", c); $1 = ""; printf "%8.0f %s\n", c / n, $0}'
done
