#!/usr/bin/env bash
# End to end, one county (130102, 16 townships, 174 villages): a seeded day
# from `rollcall loadgen` through whatever pipeline the stack runs (the
# village intake when it is built, else straight into reports.village), then
# `rollcall verify` must find every village, township, county and province
# row of rollcall.v_unit_day exactly as the ledger implies.
#
# Runs under tests/run.sh integration (the stack up, var/stack.env sourced).
# Skips, with the reason, until build/rollcall-rollup exists.
#
# The day is six days back (inside the intake's 7-day window, away from the
# days other tests use) and starts clean: rows of that period for the county
# (and its province row, recomputed by the rollup from its counties) are
# deleted first, and every run uses a fresh seed, so fresh report_ids.
set -uo pipefail
cd "$(dirname "$0")/../.."
BUILD=${ROLLCALL_BUILD:-${BUILD:-build}}
UNIT=130102
WORK=var/e2e
WAIT=${E2E_WAIT:-90}

SAY_AS=e2e_small_day
. scripts/lib.sh

[ -x "$BUILD/rollcall-rollup" ] || skip "$BUILD/rollcall-rollup is not built yet (this becomes the acceptance test once the rollup lands)"
[ -n "${ROLLCALL_PG_DSN:-}" ] || skip "ROLLCALL_PG_DSN is not set (run it through tests/run.sh integration)"
[ -n "${ROLLCALL_KAFKA_BROKERS:-}" ] || skip "ROLLCALL_KAFKA_BROKERS is not set"
BASE=${ROLLCALL_PORT_BASE:-25400}
# A test before this one may have taken the broker down and up: give the
# rollup time to find it again.
for _ in $(seq 1 60); do
    curl -fsS "http://127.0.0.1:$((BASE + 81))/healthz" >/dev/null 2>&1 && break
    sleep 0.5
done
curl -fsS "http://127.0.0.1:$((BASE + 81))/healthz" >/dev/null 2>&1 \
    || die "rollcall-rollup is built but not healthy on port $((BASE + 81)) (deploy/stack.sh up)"

mkdir -p "$WORK"
PERIOD=$(TZ=Asia/Shanghai date -d '6 days ago' +%F)
SEED=${E2E_SEED:-$(date +%s)}

out=$("$BUILD/rollcall" registry import --csv tests/data/registry-130102.csv 2>&1) \
    || die "registry import: $out"
started=$(date -u +%FT%TZ)

# A clean day for the county: every rollcall table keyed by (unit_code, period).
deploy/clear-day.sh "$UNIT" "$PERIOD" || die "could not clear $PERIOD for $UNIT"

if [ -x "$BUILD/rollcall-village" ] && [ -n "${ROLLCALL_HTTP:-}" ] \
    && curl -fsS "$ROLLCALL_HTTP/healthz" >/dev/null 2>&1; then
    MODE=(--http "$ROLLCALL_HTTP" --tokens "$WORK/tokens.tsv" --connections 8)
    how="through the intake at $ROLLCALL_HTTP"
else
    MODE=(--direct)
    how="straight into reports.village (no intake running)"
fi
echo "e2e_small_day: county $UNIT, day $PERIOD, seed $SEED, $how"

if ! "$BUILD/rollcall" loadgen --unit "$UNIT" --period "$PERIOD" --seed "$SEED" "${MODE[@]}" \
        --ledger "$WORK/ledger.jsonl" --wait "$WAIT" --quiet; then
    # The most likely cause when nothing arrives: the rollup refused the
    # county's reports (e.g. it loaded the registry before the import above).
    psql -qAt "$ROLLCALL_PG_DSN" -c "SELECT 'dead letters since the test began: ' || count(*) || coalesce(', e.g. ' || min(reason), '')
                                       FROM rollcall.dead_letter WHERE received_at >= '$started'::timestamptz" 2>/dev/null
    die "loadgen: the pipeline did not take the day as expected (ledger $WORK/ledger.jsonl)"
fi
"$BUILD/rollcall" verify --ledger "$WORK/ledger.jsonl" --quiet \
    || die "verify found differences (ledger $WORK/ledger.jsonl)"
echo "ok: e2e_small_day"
