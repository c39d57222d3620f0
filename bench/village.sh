#!/usr/bin/env bash
# Village intake throughput: wrk on loopback (2 threads), every request
# authenticated with the token of the unit it reports for, cycling over every
# village of the sample county (174; tokens issued fresh), acks=all against
# the development broker.
#   1. single reports: POST /v1/reports, one JSON report each, at 64 and at
#      512 keep-alive connections, each beside a bare evhttp server that
#      only answers 202 (bench/lib/bare202.c) under the same wrk in the same
#      run: both rates, their ratio (targets >= 0.25 at 64, >= 0.5 at 512),
#      the intake's p50/p99 (target p99 <= 50 ms) and its CPU per report
#      (from /proc: wall-clock CPU, noisy on a shared machine; CALLGRIND=1
#      adds instructions per report from bench/lib/village-callgrind.sh);
#   2. batches: POST /v1/reports:batch, BATCH reports each (a township's
#      token for its villages), at 64 connections.
# Prints POSTs/s, batch reports/s, and the share that was not 2xx (must be 0).
# Runs its own rollcall-village on a scratch database (the stack's intake and
# database are not touched).  Environment: DURATION (s, default 10), BATCH
# (default 100), PROFILE=1 records `perf` for the single-report run,
# CLIENT_IDS=1 gives each single report a new report_id of the client's own
# (each then costs the intake a lookup in the archive; shared by the reports
# that wait at the same moment).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
DURATION=${DURATION:-10}
BATCH=${BATCH:-100}
CLIENT_IDS=${CLIENT_IDS:-0}
BASE=${ROLLCALL_PORT_BASE:-25400}
PORT=$((BASE + 90))
BARE_PORT=$((BASE + 92))
WORK=$(mktemp -d /tmp/rollcall-bench-village.XXXXXX)
PID=
BARE=

command -v wrk >/dev/null || { echo "bench/village.sh: wrk is not installed (apt-get install wrk)"; exit 1; }
[ -f var/stack.env ] || BUILD=$BUILD deploy/stack.sh up >/dev/null
SAY_AS=village
. scripts/lib.sh
stack_env

DB=rollcall_bench_village
DSN="$ROLLCALL_PG_DSN dbname=$DB"
cleanup() {
    [ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
    [ -n "$BARE" ] && kill -TERM "$BARE" 2>/dev/null && wait "$BARE" 2>/dev/null || true
    psql -q "$ROLLCALL_PG_DSN" -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

psql -q "$ROLLCALL_PG_DSN" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
"$BUILD/rollcall" migrate --dsn "$DSN" >/dev/null
"$BUILD/rollcall" registry import --csv tests/data/registry-130102.csv --dsn "$DSN" >/dev/null 2>&1
"$BUILD/rollcall" token issue --villages-under 130102 --dsn "$DSN" >"$WORK/village.tokens" 2>/dev/null
towns=$(psql -qAt "$DSN" -c "SELECT code FROM rollcall.unit WHERE level = 2 ORDER BY code")
# shellcheck disable=SC2086
"$BUILD/rollcall" token issue $towns --dsn "$DSN" >"$WORK/town.tokens" 2>/dev/null
PERIOD=$(TZ=Asia/Shanghai date +%F)

# Lua tables of {unit, token} for wrk.
{
    echo "villages = {"
    while read -r unit tok; do echo "  {\"$unit\", \"$tok\"},"; done <"$WORK/village.tokens"
    echo "}"
    echo "towns = {"
    while read -r unit tok; do
        kids=$(grep "^$unit" "$WORK/village.tokens" | awk '{printf "\"%s\",", $1}')
        echo "  {\"$unit\", \"$tok\", {$kids}},"
    done <"$WORK/town.tokens"
    echo "}"
} >"$WORK/units.lua"

cat >"$WORK/single.lua" <<LUA
dofile("$WORK/units.lua")
local n = 0
local reqs, heads, bodies = {}, {}, {}
function setup(thread) end
function init(args)
  -- One request per village, built once; each sends a new report (the
  -- service assigns report_id and version).
  for i, v in ipairs(villages) do
    local body = '{"unit_code":"' .. v[1] .. '","period":"$PERIOD","kind":"daily",' ..
      '"submitter":"bench","zone_status":"normal","indicators":{"households_visited":' .. (i % 97) ..
      ',"persons_screened":' .. (i * 3) .. ',"temperature_checks":' .. (i * 2) ..
      ',"staff_on_duty":4,"volunteers":7,"masks":1200}}'
    heads[i] = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. v[2]}
    bodies[i] = body
    reqs[i] = wrk.format("POST", "/v1/reports", heads[i], body)
  end
  n = math.random(#reqs)
end
function request()
  n = n % #reqs + 1
  if $CLIENT_IDS == 1 then
    -- A report_id of the client's own, new each time: the intake asks the
    -- archive about it (a client's id the window does not know).
    local id = string.format("%08x-%04x-4%03x-%04x-%04x%08x", math.random(0, 0x7fffffff),
      math.random(0, 0xffff), math.random(0, 0xfff), math.random(0x8000, 0xbfff),
      math.random(0, 0xffff), math.random(0, 0x7fffffff))
    return wrk.format("POST", "/v1/reports", heads[n], '{"report_id":"' .. id .. '",' .. bodies[n]:sub(2))
  end
  return reqs[n]
end
function done(summary, latency, requests)
  io.write(string.format("non2xx_check %d\n", summary.errors.status))
end
LUA

cat >"$WORK/batch.lua" <<LUA
dofile("$WORK/units.lua")
local n = 0
local reqs = {}
function init(args)
  for i, t in ipairs(towns) do
    local items = {}
    for k = 1, $BATCH do
      local v = t[3][(k - 1) % #t[3] + 1]
      items[k] = '{"unit_code":"' .. v .. '","period":"$PERIOD","kind":"daily","submitter":"bench",' ..
        '"indicators":{"households_visited":' .. k .. ',"persons_screened":' .. (k * 3) ..
        ',"staff_on_duty":4,"volunteers":7}}'
    end
    reqs[i] = wrk.format("POST", "/v1/reports:batch",
      {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. t[2]},
      "[" .. table.concat(items, ",") .. "]")
  end
  n = math.random(#reqs)
end
function request()
  n = n % #reqs + 1
  return reqs[n]
end
function done(summary, latency, requests)
  io.write(string.format("non2xx_check %d\n", summary.errors.status))
end
LUA

# The same batches as length-delimited protobuf streams (what an offline app
# syncing would send): each village's report encoded once by protoc.
varint() {  # the protobuf varint of $1, as bytes
    local n=$1 out=
    while [ "$n" -ge 128 ]; do out+=$(printf '\\x%02x' $(( (n & 127) | 128 ))); n=$((n >> 7)); done
    out+=$(printf '\\x%02x' "$n")
    printf '%b' "$out"
}
mkdir -p "$WORK/pb"
while read -r unit _; do
    printf 'unit_code: "%s"\nlevel: LEVEL_VILLAGE\nperiod: "%s"\nkind: KIND_DAILY\nsubmitter: "bench"\nindicators { households_visited: 12 persons_screened: 40 staff_on_duty: 4 volunteers: 7 }\n' \
        "$unit" "$PERIOD" | protoc --encode=rollcall.Report proto/rollcall.proto >"$WORK/pb/$unit.bin"
    { varint "$(stat -c %s "$WORK/pb/$unit.bin")"; cat "$WORK/pb/$unit.bin"; } >"$WORK/pb/$unit.del"
done <"$WORK/village.tokens"
while read -r town _; do
    kids=($(grep "^$town" "$WORK/village.tokens" | awk '{print $1}'))
    files=()
    for k in $(seq 0 $((BATCH - 1))); do files+=("$WORK/pb/${kids[$((k % ${#kids[@]}))]}.del"); done
    cat "${files[@]}" >"$WORK/pb/town-$town.stream"
done <"$WORK/town.tokens"

cat >"$WORK/batchpb.lua" <<LUA
dofile("$WORK/units.lua")
local n = 0
local reqs = {}
function init(args)
  for i, t in ipairs(towns) do
    local f = assert(io.open("$WORK/pb/town-" .. t[1] .. ".stream", "rb"))
    local body = f:read("*a")
    f:close()
    reqs[i] = wrk.format("POST", "/v1/reports:batch",
      {["Content-Type"] = "application/x-protobuf", ["Authorization"] = "Bearer " .. t[2]}, body)
  end
  n = math.random(#reqs)
end
function request()
  n = n % #reqs + 1
  return reqs[n]
end
function done(summary, latency, requests)
  io.write(string.format("non2xx_check %d\n", summary.errors.status))
end
LUA

"$BUILD/rollcall-village" --http_port="$PORT" --pg_dsn="$DSN" --kafka_brokers="$ROLLCALL_KAFKA_BROKERS" \
    --log_level=warn >"$WORK/village.log" 2>&1 &
PID=$!
await_healthz "http://127.0.0.1:$PORT" || { cat "$WORK/village.log"; exit 1; }

cc -O2 -o "$WORK/bare202" bench/lib/bare202.c $(pkg-config --cflags --libs libevent)
"$WORK/bare202" "$BARE_PORT" &
BARE=$!

cpu_ticks() { awk '{print $14 + $15}' "/proc/${1:-$PID}/stat"; }
# Runs wrk; sets rps, p50, p99, bad (non-2xx), us (server CPU µs per request).
run_wrk() {  # script seconds [connections [port [pid]]]
    local t0 t1 out reqs c=${3:-64} port=${4:-$PORT} pid=${5:-$PID}
    t0=$(cpu_ticks "$pid")
    out=$(wrk -t2 -c"$c" -d"$2"s --latency -s "$WORK/$1" "http://127.0.0.1:$port" 2>&1)
    t1=$(cpu_ticks "$pid")
    rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
    reqs=$(awk '/ requests in / {print $1}' <<<"$out")
    bad=$(awk '/^non2xx_check/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out"); p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    us=$(awk -v a="$t0" -v b="$t1" -v r="$reqs" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.1f", (b - a) * 1e6 / hz / r}')
}

echo "village intake: $(wc -l <"$WORK/village.tokens") villages, wrk -t2, ${DURATION}s each, acks=all, auth on"
echo "(load generator, intake, librdkafka and the development broker share the machine's $(nproc) cores; $(uptime | sed 's/.*load/load/'))"
run_wrk single.lua 2                     # warm-up: connections, metadata
for c in 64 512; do
    run_wrk single.lua "$DURATION" "$c" "$BARE_PORT" "$BARE"
    bare_rps=$rps bare_p50=$p50 bare_p99=$p99 bare_bad=$bad
    run_wrk single.lua "$DURATION" "$c"
    printf 'single reports, %3d connections: intake %6.0f/s  bare evhttp %6.0f/s  ratio %.2f (target %s)  intake p50 %-8s p99 %-8s (target 50ms)  bare p50 %-8s p99 %-8s  non-2xx %s/%s  intake CPU %s us/report\n' \
        "$c" "$rps" "$bare_rps" "$(awk -v a="$rps" -v b="$bare_rps" 'BEGIN {print (b > 0 ? a / b : 0)}')" \
        "$([ "$c" = 64 ] && echo 0.25 || echo 0.5)" "$p50" "$p99" "$bare_p50" "$bare_p99" "$bad" "$bare_bad" "$us"
done
if [ "${CALLGRIND:-0}" = 1 ]; then
    BUILD=$BUILD bench/lib/village-callgrind.sh 2000 | sed -n 2p
fi
if [ "${PROFILE:-0}" = 1 ]; then
    perf record -F 999 -g -p "$PID" -o "$WORK/perf.data" -- sleep "$DURATION" >/dev/null 2>&1 &
    PERF=$!
    run_wrk single.lua "$DURATION"
    wait "$PERF"
    { echo "# by library"
      perf report -i "$WORK/perf.data" --no-children --sort comm,dso --stdio 2>/dev/null | grep -E '^ +[0-9.]+%' | head -20
      echo "# by function"
      perf report -i "$WORK/perf.data" --no-children --sort dso,sym --percent-limit 0.7 --stdio 2>/dev/null \
          | grep -E '^ +[0-9.]+%' | head -40
    } >"${PROFILE_OUT:-/tmp/village.perf.txt}"
    echo "profile of a 64-connection single-report run: ${PROFILE_OUT:-/tmp/village.perf.txt}"
fi
run_wrk batch.lua "$DURATION"
printf 'batch reports (JSON):  %8.0f reports/s  p50 %-8s p99 %-8s non-2xx %s  intake CPU %s us/report  (%s per POST, target 200000)\n' \
    "$(awk -v r="$rps" -v b="$BATCH" 'BEGIN {print r * b}')" "$p50" "$p99" "$bad" \
    "$(awk -v u="$us" -v b="$BATCH" 'BEGIN {printf "%.1f", u / b}')" "$BATCH"
run_wrk batchpb.lua "$DURATION"
printf 'batch reports (proto): %8.0f reports/s  p50 %-8s p99 %-8s non-2xx %s  intake CPU %s us/report  (%s per POST, target 200000)\n' \
    "$(awk -v r="$rps" -v b="$BATCH" 'BEGIN {print r * b}')" "$p50" "$p99" "$bad" \
    "$(awk -v u="$us" -v b="$BATCH" 'BEGIN {printf "%.1f", u / b}')" "$BATCH"

accepted=$(curl -fs "http://127.0.0.1:$PORT/metrics" | awk '/^rollcall_village_reports_total\{status="202"\}/ {print $2}')
echo "accepted by the intake (acknowledged by Kafka, 202): ${accepted:-0} reports; RSS $(awk '/VmRSS/ {print $2 / 1024 " MB"}' "/proc/$PID/status")"
grep -E 'level=(warn|error)' "$WORK/village.log" | head -5 || true
