#!/usr/bin/env bash
# The dashboard's browser tests against the running stack (tests/run.sh runs
# it after the integration tests, var/stack.env sourced).  Prepares what the
# pages are checked on, then runs dashboard.test.mjs in headless chromium:
#   - the sample county 130102 with 30 days of reports (days already in
#     PostgreSQL are kept, all 30 are cleared at exit; today is played
#     afresh through the intake, so that villages are missing and one can
#     report live);
#   - a second county, 110101 (tests/data/registry-110101.csv), with today;
#     in a province of its own, so that the sample province 13 stays the
#     sample county alone (the other tests compare it with their ledgers);
#   - yesterday played again with county sign-off required, so it waits for
#     a signer (the policy is put back at exit);
#   - a signer account of 130102 and a viewer of 110101.
# Screenshots of every page go to $BUILD/screenshots/.
set -uo pipefail
cd "$(dirname "$0")/../.."
BUILD=${ROLLCALL_BUILD:-${BUILD:-build}}
WORK=var/browser
COUNTY=130102
OTHER=110101
WAIT=${BROWSER_WAIT:-90}

skip() { echo "SKIP browser: $*"; exit 0; }
fail() { echo "FAIL browser: $*"; exit 1; }

[ -n "${ROLLCALL_PG_DSN:-}" ] || skip "ROLLCALL_PG_DSN is not set (run it through tests/run.sh)"
[ -x "$BUILD/rollcall-dashboard" ] || skip "$BUILD/rollcall-dashboard is not built"
[ -n "${ROLLCALL_DASHBOARD:-}" ] || fail "ROLLCALL_DASHBOARD is not in var/stack.env"
[ -x /usr/bin/chromium ] || fail "/usr/bin/chromium is missing (deploy/install-deps.sh installs it)"
[ -f web/node_modules/playwright-core/package.json ] || fail "playwright-core is missing (make web runs npm ci in web/)"
[ -f "$BUILD/web/index.html" ] || fail "$BUILD/web is not built (make web)"
for _ in $(seq 1 60); do
    curl -fsS "$ROLLCALL_DASHBOARD/api/me" -o /dev/null -w '%{http_code}' 2>/dev/null | grep -q 401 && break
    sleep 0.5
done
mkdir -p "$WORK"
sql() { psql -qAtX -v ON_ERROR_STOP=1 "$ROLLCALL_PG_DSN" -c "$1"; }

# The second county: the rollup and the level desks read the registry at
# start, so they are restarted (through the stack) when it is new to them.
new_other=$(sql "SELECT count(*) FROM rollcall.unit WHERE code = '$OTHER'")
for csv in tests/data/registry-$COUNTY.csv tests/data/registry-$OTHER.csv; do
    out=$("$BUILD/rollcall" registry import --csv "$csv" 2>&1) || fail "registry import $csv: $out"
done
if [ "$new_other" = 0 ]; then
    pids=()
    for s in village rollup township county province; do
        [ -f "var/run/$s.pid" ] || continue
        pid=$(cat "var/run/$s.pid")
        kill "$pid" 2>/dev/null && pids+=("$pid")
    done
    # The stack starts only what is not running: wait until every one is gone.
    for pid in "${pids[@]}"; do
        for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && fail "pid $pid did not stop within 30 s of SIGTERM"
    done
    BUILD=$BUILD deploy/stack.sh up >/dev/null 2>&1 || fail "the stack did not come back after the registry import"
    for s in village rollup township county province; do
        [ -f "var/run/$s.pid" ] && kill -0 "$(cat "var/run/$s.pid")" 2>/dev/null \
            || fail "rollcall-$s is not running after the restart (see var/log/$s.log)"
    done
fi

TODAY=$(TZ=Asia/Shanghai date +%F)
SIGN_PERIOD=$(TZ=Asia/Shanghai date -d yesterday +%F)
loadgen() {  # unit period seed [args...]
    local u=$1 p=$2 seed=$3; shift 3
    "$BUILD/rollcall" loadgen --unit "$u" --period "$p" --seed "$seed" --ledger "$WORK/ledger-$u-$p.jsonl" \
        --quiet --urgent-count 2 --invalid-count 0 "$@" >/dev/null \
        || fail "loadgen --unit $u --period $p $* did not complete (see $WORK/ledger-$u-$p.jsonl)"
}

# 30 days for the trends: the 28 before yesterday, once each.
started=$(date +%s)
have=$(sql "SELECT string_agg(period::text, ' ') FROM rollcall.aggregate WHERE unit_code = '$COUNTY'")
loaded=0
for back in $(seq 29 -1 2); do
    p=$(TZ=Asia/Shanghai date -d "$back days ago" +%F)
    [[ " $have " == *" $p "* ]] && continue
    loadgen "$COUNTY" "$p" "$((20000 + back))" --direct --wait "$WAIT"
    loaded=$((loaded + 1))
done
echo "browser: 30 days of $COUNTY in PostgreSQL ($loaded loaded now, $(( $(date +%s) - started )) s)"

# At exit: the county sign-off policy as it was, and the 30 days cleared
# again, so that the tests that play one of these days with their own seed
# (and compare with their own ledger) find it empty on the next run.
restore_policy=$(sql "SELECT signoff_required::text FROM rollcall.level_policy WHERE level = 3")
cleanup() {
    sql "UPDATE rollcall.level_policy SET signoff_required = $restore_policy WHERE level = 3" >/dev/null
    for back in $(seq 29 -1 0); do
        deploy/clear-day.sh "$COUNTY" "$(TZ=Asia/Shanghai date -d "$back days ago" +%F)" >/dev/null 2>&1
    done
    deploy/clear-day.sh "$OTHER" "$TODAY" >/dev/null 2>&1
}
trap cleanup EXIT
sql "UPDATE rollcall.level_policy SET signoff_required = true WHERE level = 3" >/dev/null
deploy/clear-day.sh "$COUNTY" "$SIGN_PERIOD" || fail "could not clear $SIGN_PERIOD"
loadgen "$COUNTY" "$SIGN_PERIOD" "$(date +%s)" --direct --wait "$WAIT"

# Today: the second county (no --wait: its province is not in the
# sample's ledger) is waited for here.
deploy/clear-day.sh "$COUNTY" "$TODAY" || fail "could not clear $TODAY"
deploy/clear-day.sh "$OTHER" "$TODAY" || fail "could not clear $TODAY for $OTHER"
loadgen "$COUNTY" "$TODAY" "$(date +%s)" --http "$ROLLCALL_HTTP" --tokens "$WORK/tokens.tsv" --missing-share 0.05 --wait "$WAIT"
loadgen "$OTHER" "$TODAY" "$(date +%s)" --direct --missing-share 0.2
for _ in $(seq 1 120); do
    ok=$(sql "SELECT (SELECT villages_reported FROM rollcall.v_unit_day WHERE unit_code = '$OTHER' AND period = '$TODAY')
                   = (SELECT count(*) FROM rollcall.latest_report WHERE unit_code LIKE '$OTHER%' AND period = '$TODAY' AND level = 1)")
    [ "$ok" = t ] && break
    sleep 0.5
done
[ "$ok" = t ] || fail "the rollup did not aggregate $OTHER for $TODAY"

echo "browser: yesterday and today played ($(( $(date +%s) - started )) s)"
for _ in $(seq 1 120); do
    st=$(sql "SELECT status FROM rollcall.v_filing WHERE unit_code = '$COUNTY' AND period = '$SIGN_PERIOD'")
    [ "$st" = awaiting_signoff ] && break
    sleep 0.5
done
[ "$st" = awaiting_signoff ] || fail "$COUNTY $SIGN_PERIOD did not come to wait for sign-off (status '$st')"

# Accounts: a new password each run (the same names are kept).
account() {  # name unit role password
    if ! printf '%s\n' "$4" | "$BUILD/rollcall" user add "$1" --unit "$2" --role "$3" >/dev/null 2>"$WORK/user.err"; then
        printf '%s\n' "$4" | "$BUILD/rollcall" user passwd "$1" >/dev/null 2>>"$WORK/user.err" \
            || fail "could not create or reset account $1: $(cat "$WORK/user.err")"
    fi
}
export RC_USER=browser.signer.$COUNTY RC_OTHER_USER=browser.viewer.$OTHER
export RC_PASSWORD=$(head -c 18 /dev/urandom | base64) RC_OTHER_PASSWORD=$(head -c 18 /dev/urandom | base64)
account "$RC_USER" "$COUNTY" signer "$RC_PASSWORD"
account "$RC_OTHER_USER" "$OTHER" viewer "$RC_OTHER_PASSWORD"

export RC_TODAY=$TODAY RC_SIGN_PERIOD=$SIGN_PERIOD RC_COUNTY=$COUNTY RC_OTHER_COUNTY=$OTHER
export RC_SHOTS=$BUILD/screenshots ROLLCALL_BUILD=$BUILD
echo "browser: data and accounts ready ($(( $(date +%s) - started )) s)"
node tests/browser/dashboard.test.mjs
