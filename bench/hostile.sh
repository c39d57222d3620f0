#!/usr/bin/env bash
# Hostile clients against the village intake: honest single reports from wrk
# (64 keep-alive connections, 2 threads, every village of the sample county
# with its own token), first alone, then while 1,000 slowloris connections
# send a request head a byte every 10 s and 1,000 unauthenticated clients
# upload 8 MB bodies at once (bench/lib/hostile.py, from other loopback
# addresses than wrk's).  Prints the honest p50/p99 unloaded and loaded
# (target: loaded p99 within 2x of unloaded), the intake's RSS at its peak
# (target <= 64 MB) and what the attackers saw.
# Runs its own rollcall-village on a scratch database.  Environment: UNLOADED
# (s, default 15), LOADED (s, default 30), SLOW (1000), BIG (1000), BIG_MB (8).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
UNLOADED=${UNLOADED:-15}
LOADED=${LOADED:-30}
SLOW=${SLOW:-1000}
BIG=${BIG:-1000}
BIG_MB=${BIG_MB:-8}
BASE=${ROLLCALL_PORT_BASE:-25400}
PORT=$((BASE + 93))
WORK=$(mktemp -d /tmp/rollcall-bench-hostile.XXXXXX)
PID=
ATTACK=
SLOWPID=

command -v wrk >/dev/null || { echo "bench/hostile.sh: wrk is not installed (apt-get install wrk)"; exit 1; }
command -v python3 >/dev/null || { echo "bench/hostile.sh: python3 is not installed"; exit 1; }
[ -f var/stack.env ] || BUILD=$BUILD deploy/stack.sh up >/dev/null
SAY_AS=hostile
. scripts/lib.sh
stack_env
# Two thousand attackers and the honest connections: file descriptors on
# both sides (the intake inherits the limit).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

DB=rollcall_bench_hostile
DSN="$ROLLCALL_PG_DSN dbname=$DB"
cleanup() {
    [ -n "$ATTACK" ] && kill "$ATTACK" "$SLOWPID" 2>/dev/null && wait "$ATTACK" "$SLOWPID" 2>/dev/null || true
    [ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
    psql -q "$ROLLCALL_PG_DSN" -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

psql -q "$ROLLCALL_PG_DSN" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null 2>&1
"$BUILD/rollcall" migrate --dsn "$DSN" >/dev/null
"$BUILD/rollcall" registry import --csv tests/data/registry-130102.csv --dsn "$DSN" >/dev/null 2>&1
"$BUILD/rollcall" token issue --villages-under 130102 --dsn "$DSN" >"$WORK/village.tokens" 2>/dev/null
PERIOD=$(TZ=Asia/Shanghai date +%F)

{
    echo "villages = {"
    awk '{printf "  {\"%s\", \"%s\"},\n", $1, $2}' "$WORK/village.tokens"
    echo "}"
} >"$WORK/units.lua"
cat >"$WORK/single.lua" <<LUA
dofile("$WORK/units.lua")
local n = 0
local reqs = {}
function init(args)
  for i, v in ipairs(villages) do
    local body = '{"unit_code":"' .. v[1] .. '","period":"$PERIOD","kind":"daily",' ..
      '"submitter":"bench","indicators":{"households_visited":' .. (i % 97) .. ',"staff_on_duty":4}}'
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

"$BUILD/rollcall-village" --http_port="$PORT" --pg_dsn="$DSN" --kafka_brokers="$ROLLCALL_KAFKA_BROKERS" \
    --log_level=warn >"$WORK/village.log" 2>&1 &
PID=$!
await_healthz "http://127.0.0.1:$PORT" || { cat "$WORK/village.log"; exit 1; }

# Sets rps, p50, p99, bad (non-2xx, plus socket errors).
run_wrk() {  # seconds
    local out
    out=$(wrk -t2 -c64 -d"$1"s --latency -s "$WORK/single.lua" "http://127.0.0.1:$PORT" 2>&1)
    rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out"); p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    bad=$(awk '/^non2xx_check/ {print $2}' <<<"$out")
    errs=$(awk '/Socket errors/ {print}' <<<"$out")
}
ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) printf "%.3f", v / 1000; else if (v ~ /ms$/) printf "%.3f", v + 0; else printf "%.3f", v * 1000 }'; }
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$PID/stat"; }
rss_mb() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$PID/status"; }
hwm_mb() { awk '/^VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$PID/status"; }

echo "hostile clients: intake on :$PORT, wrk -t2 -c64 honest single reports; $(nproc) cores shared ($(uptime | sed 's/.*load/load/'))"
run_wrk 3                               # warm-up: connections, metadata
c0=$(cpu_s)
run_wrk "$UNLOADED"
u_rps=$rps u_p50=$p50 u_p99=$p99 u_bad=$bad
u_cpu=$(awk -v a="$c0" -v b="$(cpu_s)" -v t="$UNLOADED" 'BEGIN {printf "%.0f", (b - a) / t * 100}')
echo "unloaded: $u_rps req/s  p50 $u_p50  p99 $u_p99  non-2xx $u_bad  RSS $(rss_mb) MB  intake CPU ${u_cpu}% of a core"

# Two processes: the uploads keep one Python loop busy, and the slowloris
# clients must keep their pace of a byte every 10 s.
python3 bench/lib/hostile.py "$PORT" "$((LOADED + 5))" "$SLOW" 0 "$BIG_MB" >"$WORK/slow.out" 2>&1 &
SLOWPID=$!
python3 bench/lib/hostile.py "$PORT" "$((LOADED + 5))" 0 "$BIG" "$BIG_MB" >"$WORK/attack.out" 2>&1 &
ATTACK=$!
( while kill -0 "$ATTACK" 2>/dev/null; do
      echo "$(rss_mb) $(curl -fs -m 2 "http://127.0.0.1:$PORT/metrics" | awk '/^rollcall_village_connections / {print $2}')"
      sleep 0.5
  done ) >"$WORK/samples" &
SAMPLER=$!
sleep 5                                 # the attack builds up
c0=$(cpu_s)
run_wrk "$LOADED"
l_rps=$rps l_p50=$p50 l_p99=$p99 l_bad=$bad
l_cpu=$(awk -v a="$c0" -v b="$(cpu_s)" -v t="$LOADED" 'BEGIN {printf "%.0f", (b - a) / t * 100}')
echo "loaded:   $l_rps req/s  p50 $l_p50  p99 $l_p99  non-2xx $l_bad  intake CPU ${l_cpu}% of a core  ${errs:-no socket errors}"
wait "$ATTACK" || true
wait "$SLOWPID" || true
ATTACK=
wait "$SAMPLER" 2>/dev/null || true
peak=$(awk '{print $1}' "$WORK/samples" | sort -n | tail -1)
conns=$(awk '{print $2}' "$WORK/samples" | sort -n | tail -1)
echo "intake connections open at most (sampled): ${conns:-?}"
cat "$WORK/slow.out" "$WORK/attack.out"
ratio=$(awk -v a="$(ms "$l_p99")" -v b="$(ms "$u_p99")" 'BEGIN {printf "%.2f", a / b}')
echo "honest p99 loaded / unloaded: $ratio (target <= 2)"
echo "intake RSS: peak sampled ${peak:-?} MB, VmHWM $(hwm_mb) MB (target <= 64)"
curl -fs "http://127.0.0.1:$PORT/metrics" | grep -E '^rollcall_village_(auth_failures_total|reports_total\{status="(401|413)"|connections )' || true
grep -E 'connections cut' "$WORK/village.log" | awk '{for (i = 1; i <= NF; i++) if ($i ~ /=[0-9]+,?$/) {split($i, kv, "="); sum[kv[1]] += kv[2]}}
    END {printf "intake log: cut over the per-address cap %d, at request_deadline %d, refused at the head %d\n",
         sum["max_connections_per_address"], sum["request_deadline"], sum["head"]}' || true
