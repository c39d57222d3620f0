#!/usr/bin/env bash
# The urgent path against the running stack, behaviour not timings:
#   1. an URGENT report posted through the intake while the daily path is
#      busy (batches of daily reports flooding the intake and the rollup)
#      reaches the province and the rollup records every hop, within a
#      generous bound (30 s);
#   2. a single report is answered only after Kafka's delivery report: with
#      the broker down no 202 is given, neither on the fast producer nor on
#      the batching one it overflows to (an intake of our own with
#      fast_inflight=1), and once the broker is back the retry gets 202
#      and the report is in the archive.
set -euo pipefail
cd "$(dirname "$0")/../.."
set -a; . var/stack.env; set +a
BUILD=${ROLLCALL_BUILD:-build}
BASE=${ROLLCALL_PORT_BASE:-25400}
PSQL=(psql -qAt -v ON_ERROR_STOP=1 "$ROLLCALL_PG_DSN")
WORK=$(mktemp -d /tmp/rollcall-urgent-path.XXXXXX)
OWN=
FLOOD=
failed=0
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
cleanup() {
    [ -n "$FLOOD" ] && kill "$FLOOD" 2>/dev/null && wait "$FLOOD" 2>/dev/null || true
    [ -n "$OWN" ] && kill -TERM "$OWN" 2>/dev/null && wait "$OWN" 2>/dev/null || true
    curl -fs -X POST "$ROLLCALL_BROKER_CONTROL/up" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
for p in village rollup township county province; do
    [ -f "var/run/$p.pid" ] && kill -0 "$(cat "var/run/$p.pid")" 2>/dev/null \
        || { echo "SKIP: rollcall-$p is not running in the stack"; exit 0; }
done

# a village of the sample county, whichever registry the stack holds
village=$("${PSQL[@]}" -c "SELECT code FROM rollcall.unit WHERE level = 1 AND code LIKE '130102%' ORDER BY code LIMIT 1 OFFSET 4")
[ -n "$village" ] || { echo "FAIL: no village of 130102 in the registry"; exit 1; }
town=${village:0:9}
vtok=$("$BUILD/rollcall" token issue "$village" 2>/dev/null)
ttok=$("$BUILD/rollcall" token issue "$town" 2>/dev/null)
today=$(TZ=Asia/Shanghai date +%F)
flood_period=$(TZ=Asia/Shanghai date -d '-5 days' +%F)
post() {  # token body-file path -> "status"
    curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $1" -H 'Content-Type: application/json' \
        --data-binary @"$2" "$ROLLCALL_HTTP$3"
}

# ---- 1. urgent while the daily path is busy ----
villages=$("${PSQL[@]}" -c "SELECT string_agg(code, ' ') FROM rollcall.unit WHERE level = 1 AND code LIKE '$town%'")
awk -v vs="$villages" -v p="$flood_period" 'BEGIN {
    n = split(vs, v, " "); printf "["
    for (i = 0; i < 2000; i++)
        printf "%s{\"unit_code\":\"%s\",\"period\":\"%s\",\"kind\":\"daily\",\"submitter\":\"flood\",\"indicators\":{\"households_visited\":%d,\"volunteers\":3}}",
            i ? "," : "", v[i % n + 1], p, i
    printf "]" }' >"$WORK/flood.json"
( while :; do post "$ttok" "$WORK/flood.json" /v1/reports:batch >>"$WORK/flood.status"; echo >>"$WORK/flood.status"; done ) &
FLOOD=$!
for _ in $(seq 1 300); do [ -s "$WORK/flood.status" ] && break; sleep 0.1; done
printf '{"unit_code":"%s","period":"%s","kind":"urgent","submitter":"test","incident":{"type":"fever_cluster","severity":3,"occurred_at":"%s"}}' \
    "$village" "$today" "$(date -u -d '-1 min' +%Y-%m-%dT%H:%M:%SZ)" >"$WORK/urgent.json"
answer=$(curl -s -H "Authorization: Bearer $vtok" -H 'Content-Type: application/json' \
    --data-binary @"$WORK/urgent.json" "$ROLLCALL_HTTP/v1/reports")
id=$(jq -r '.report_id // empty' <<<"$answer")
if [ -z "$id" ]; then
    fail "the urgent report was not accepted: $answer"
else
    hops=0
    for _ in $(seq 1 300); do
        hops=$("${PSQL[@]}" -c "SELECT count(*) FROM rollcall.urgent_hop WHERE report_id = '$id' AND level IN (1, 2, 3, 5)")
        [ "$hops" -eq 4 ] && break
        sleep 0.1
    done
    batches=$(grep -c '^200' "$WORK/flood.status" || true)
    if [ "$hops" -eq 4 ]; then
        echo "ok: urgent report $id recorded at village, township, county and province while the daily path was busy" \
             "($batches flood batches of 2000 reports accepted meanwhile)"
    else
        fail "urgent report $id: $hops of 4 hops recorded after 30 s"
    fi
    [ "$batches" -ge 1 ] || fail "the daily flood was not accepted ($(head -c 200 "$WORK/flood.status"))"
fi
kill "$FLOOD" 2>/dev/null; wait "$FLOOD" 2>/dev/null || true
FLOOD=

# ---- 2. no 202 before the delivery report ----
port=$((BASE + 93))
"$BUILD/rollcall-village" --http_port="$port" --pg_dsn="$ROLLCALL_PG_DSN" --kafka_brokers="$ROLLCALL_KAFKA_BROKERS" \
    --fast_inflight=1 --produce_timeout=2s --log_level=warn >"$WORK/village.log" 2>&1 &
OWN=$!
for _ in $(seq 1 300); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
for i in 1 2 3 4; do
    printf '{"report_id":"%s","unit_code":"%s","period":"%s","kind":"daily","submitter":"test","indicators":{"volunteers":%d}}' \
        "$(cat /proc/sys/kernel/random/uuid)" "$village" "$today" "$i" >"$WORK/single-$i.json"
done
curl -fs -X POST "$ROLLCALL_BROKER_CONTROL/down" >/dev/null || fail "broker /down"
for i in 1 2 3 4; do
    curl -s -o "$WORK/down-$i.body" -w '%{http_code}' -H "Authorization: Bearer $vtok" -H 'Content-Type: application/json' \
        --data-binary @"$WORK/single-$i.json" "http://127.0.0.1:$port/v1/reports" >"$WORK/down-$i.status" &
done
wait $(jobs -p | grep -v "^$OWN$") 2>/dev/null || true
curl -fs -X POST "$ROLLCALL_BROKER_CONTROL/up" >/dev/null || fail "broker /up"
for i in 1 2 3 4; do
    st=$(cat "$WORK/down-$i.status")
    [ "$st" = 503 ] || fail "report $i answered $st with the broker down (expected 503, never 202): $(cat "$WORK/down-$i.body")"
done
[ "$failed" -eq 0 ] && echo "ok: with the broker down, 4 concurrent single reports (fast and batching producer) were answered 503"
# the client retries with the same report_id, as the 503 says, until 202
for i in 1 2 3 4; do
    st=
    for _ in $(seq 1 15); do
        st=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $vtok" -H 'Content-Type: application/json' \
            --data-binary @"$WORK/single-$i.json" "http://127.0.0.1:$port/v1/reports")
        [ "$st" = 202 ] && break
        sleep 2
    done
    [ "$st" = 202 ] || fail "report $i: $st after the broker came back"
done
id=$(jq -r .report_id "$WORK/single-4.json")
n=0
for _ in $(seq 1 300); do
    n=$("${PSQL[@]}" -c "SELECT count(*) FROM rollcall.report_archive WHERE report_id = '$id'")
    [ "$n" -ge 1 ] && break
    sleep 0.1
done
[ "$n" -ge 1 ] && echo "ok: after /up the retries were accepted (202) and the report reached the archive" \
    || fail "report $id answered 202 but never archived"
echo "urgent path: $failed failed"
[ "$failed" -eq 0 ]
