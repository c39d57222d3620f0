#!/usr/bin/env bash
# Village intake throughput: wrk on loopback (2 threads, 64 keep-alive
# connections), every request authenticated with the token of the unit it
# reports for, cycling over every village of the sample county (174; tokens
# issued fresh), acks=all against the development broker.
#   1. single reports: POST /v1/reports, one JSON report each;
#   2. batches: POST /v1/reports:batch, BATCH reports each (a township's
#      token for its villages).
# Prints POSTs/s, batch reports/s, and the share that was not 2xx (must be 0).
# Runs its own rollcall-village on a scratch database (the stack's intake and
# database are not touched).  Environment: DURATION (s, default 10), BATCH
# (default 100), PROFILE=1 records `perf` for the single-report run.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
DURATION=${DURATION:-10}
BATCH=${BATCH:-100}
BASE=${ROLLCALL_PORT_BASE:-55400}
PORT=$((BASE + 90))
WORK=$(mktemp -d /tmp/rollcall-bench-village.XXXXXX)
PID=

command -v wrk >/dev/null || { echo "bench/village.sh: wrk is not installed (apt-get install wrk)"; exit 1; }
[ -f var/stack.env ] || BUILD=$BUILD deploy/stack.sh up >/dev/null
set -a; . var/stack.env; set +a

DB=rollcall_bench_village
DSN="$ROLLCALL_PG_DSN dbname=$DB"
cleanup() {
    [ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
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
local reqs = {}
function setup(thread) end
function init(args)
  -- One request per village, built once; each sends a new report (the
  -- service assigns report_id and version).
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
function request()
  n = n % #reqs + 1
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

"$BUILD/rollcall-village" --http_port="$PORT" --pg_dsn="$DSN" --kafka_brokers="$ROLLCALL_KAFKA_BROKERS" \
    --log_level=warn >"$WORK/village.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null || { cat "$WORK/village.log"; exit 1; }

run_wrk() {  # script seconds
    wrk -t2 -c64 -d"$2"s --latency -s "$WORK/$1" "http://127.0.0.1:$PORT" 2>&1
}

echo "village intake: $(wc -l <"$WORK/village.tokens") villages, wrk -t2 -c64, ${DURATION}s each, acks=all, auth on"
run_wrk single.lua 2 >/dev/null          # warm-up: connections, metadata, JIT-less Lua
if [ "${PROFILE:-0}" = 1 ]; then
    perf record -F 499 -g -p "$PID" -o "$WORK/perf.data" -- sleep "$DURATION" >/dev/null 2>&1 &
    PERF=$!
fi
out=$(run_wrk single.lua "$DURATION")
[ "${PROFILE:-0}" = 1 ] && wait "$PERF" && perf report -i "$WORK/perf.data" --no-children --percent-limit 1.5 --stdio 2>/dev/null \
    | grep -E '^ +[0-9.]+%' | head -40 >"${PROFILE_OUT:-/tmp/village.perf.txt}"
rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
bad=$(awk '/^non2xx_check/ {print $2}' <<<"$out")
p50=$(awk '$1 == "50%" {print $2}' <<<"$out"); p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
printf 'single reports:  %10.0f POSTs/s    (p50 %s, p99 %s, non-2xx %s)   target 40000\n' "$rps" "$p50" "$p99" "$bad"

out=$(run_wrk batch.lua "$DURATION")
brps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
bbad=$(awk '/^non2xx_check/ {print $2}' <<<"$out")
p50=$(awk '$1 == "50%" {print $2}' <<<"$out"); p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
printf 'batch reports:   %10.0f reports/s  (%s per POST, %.0f POSTs/s, p50 %s, p99 %s, non-2xx %s)   target 200000\n' \
    "$(awk -v r="$brps" -v b="$BATCH" 'BEGIN {print r * b}')" "$BATCH" "$brps" "$p50" "$p99" "$bbad"

accepted=$(curl -fs "http://127.0.0.1:$PORT/metrics" | awk '/^rollcall_village_reports_total\{status="202"\}/ {print $2}')
echo "accepted by the intake (durable in Kafka, 202): ${accepted:-0} reports"
grep -E 'level=(warn|error)' "$WORK/village.log" | head -5 || true
