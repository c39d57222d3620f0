#!/usr/bin/env bash
# Acceptance tests of rollcall-dashboard (services/dashboard/API.md) against
# the stack's dashboard, PostgreSQL and pipeline, with real accounts of a
# village, a township, the county 130102 and the province 13:
#   - each sees exactly its subtree: its day's children and totals are those
#     of rollcall.v_unit_day and the registry read as the owner; units above
#     or beside it, and unknown units, are 404 with the same body;
#   - forged, expired and disabled sessions, tampered API keys: 401;
#   - 20 wrong passwords in a row are throttled (429);
#   - CSV equals JSON; ETag and If-None-Match give 304;
#   - an event stream sees a new village report's township aggregate within
#     2 s of its submission through the intake;
#   - requests held by a slow query occupy workers, not the loop: beyond the
#     queue they are refused with 503 at once, /healthz and files still answer.
# Skips without the stack's dashboard.
set -u
cd "$(dirname "$0")/../.."
BUILD=${ROLLCALL_BUILD:-${BUILD:-build}}
RC=$BUILD/rollcall
skip() { echo "SKIP dashboard_api: $*"; exit 0; }
[ -n "${ROLLCALL_DASHBOARD:-}" ] && [ -n "${ROLLCALL_PG_DSN_OPS:-}" ] || skip "run under tests/run.sh integration"
[ -x "$BUILD/rollcall-dashboard" ] || skip "rollcall-dashboard is not built"
curl -fs "$ROLLCALL_DASHBOARD/healthz" >/dev/null || skip "rollcall-dashboard is not running"
command -v jq >/dev/null || skip "jq is not installed"

D=$ROLLCALL_DASHBOARD
T=$(mktemp -d /tmp/rollcall-dash-test.XXXXXX)
FAILED=0
N=t$$
OWN() { psql -X -qAt -v ON_ERROR_STOP=1 "$ROLLCALL_PG_DSN" -c "$1"; }
say() { printf 'dashboard_api: %s\n' "$*"; }
fail() { printf 'FAIL dashboard_api: %s\n' "$*"; FAILED=$((FAILED + 1)); }
pass() { printf 'ok   dashboard_api: %s\n' "$*"; }
check() { if [ "$2" = "$3" ]; then pass "$1"; else fail "$1: got '$2', expected '$3'"; fi; }
cleanup() {
    [ -n "${SSE_PID:-}" ] && kill "$SSE_PID" 2>/dev/null
    OWN "DELETE FROM rollcall.account WHERE name LIKE '$N-%';
         DELETE FROM rollcall.login_attempt WHERE account LIKE '$N-%' OR address = '127.0.0.1'" >/dev/null 2>&1
    [ "$FAILED" -eq 0 ] && rm -rf "$T"
}
trap cleanup EXIT
OWN "DELETE FROM rollcall.login_attempt WHERE address = '127.0.0.1'" >/dev/null

COUNTY=130102; TOWNSHIP=130102001; VILLAGE=130102001001
P=$(TZ=Asia/Shanghai date -d "4 days ago" +%F)
"$RC" loadgen --direct --unit $COUNTY --period "$P" --seed 11 --wait 300 --quiet >"$T/loadgen.out" 2>&1 \
    || { cat "$T/loadgen.out"; fail "loadgen"; exit 1; }
say "period $P: $(tail -n 1 "$T/loadgen.out")"

PW=correct-horse-$$
add() { echo "$PW" | "$RC" user add "$N-$1" --unit "$2" --role "$3" >/dev/null || fail "user add $1"; }
add village $VILLAGE viewer; add township $TOWNSHIP viewer; add county $COUNTY signer; add province 13 viewer
login() {  # login NAME -> cookie jar $T/NAME.jar; prints the HTTP status
    curl -s -o "$T/$1.login" -w '%{http_code}' -c "$T/$1.jar" -H 'Content-Type: application/json' \
        -d "{\"user\":\"$N-$1\",\"password\":\"$2\"}" "$D/api/login"
}
get() {  # get NAME PATH [curl args] -> body on stdout
    local who=$1 path=$2; shift 2
    curl -s -b "$T/$who.jar" "$@" "$D$path"
}
code() { local who=$1 path=$2; shift 2; curl -s -o /dev/null -w '%{http_code}' -b "$T/$who.jar" "$@" "$D$path"; }

for a in village township county province; do
    check "$a signs in" "$(login $a "$PW")" 200
done
check "/api/me names the account's unit" "$(get county /api/me | jq -r '.unit.code + " " + .role')" "$COUNTY signer"
grep -q 'HttpOnly; SameSite=Strict; Path=/' "$T/county.login" 2>/dev/null || \
    curl -s -D - -o /dev/null -H 'Content-Type: application/json' -d "{\"user\":\"$N-county\",\"password\":\"$PW\"}" \
        "$D/api/login" | grep -qi '^Set-Cookie: rc_session=.*HttpOnly; SameSite=Strict; Path=/' \
    && pass "the session cookie is HttpOnly, SameSite=Strict" || fail "Set-Cookie attributes"

# ---- each sees exactly its subtree
notfound='{"error":"not found"}'
for pair in "village:$VILLAGE:$TOWNSHIP" "township:$TOWNSHIP:$COUNTY" "county:$COUNTY:13" "province:13:14"; do
    IFS=: read -r who unit above <<<"$pair"
    day=$(get $who "/api/units/$unit/day?period=$P")
    check "$who: its day is its unit" "$(jq -r .unit.code <<<"$day")" "$unit"
    if [ "$who" = village ]; then
        want=$(OWN "SELECT version FROM rollcall.v_unit_day WHERE unit_code = '$unit' AND period = '$P'")
        check "$who: totals = its latest report" "$(jq -r .totals.version <<<"$day")" "$want"
    else
        want=$(OWN "SELECT version || ' ' || villages_reported || '/' || villages_expected || ' ' || confirmed
                      FROM rollcall.v_unit_day WHERE unit_code = '$unit' AND period = '$P'")
        check "$who: totals = v_unit_day" \
            "$(jq -r '"\(.totals.version) \(.totals.villages_reported)/\(.totals.villages_expected) \(.totals.indicators.confirmed)"' <<<"$day")" "$want"
        want=$(OWN "SELECT string_agg(code, ',' ORDER BY code) FROM rollcall.unit WHERE rollup_parent = '$unit'")
        check "$who: children = the registry's" "$(jq -r '[.children[].code] | join(",")' <<<"$day")" "$want"
        want=$(OWN "SELECT coalesce(sum(villages_reported), count(*)) FROM rollcall.v_unit_day v JOIN rollcall.unit u
                      ON u.code = v.unit_code WHERE u.rollup_parent = '$unit' AND v.period = '$P'")
        [ "$who" = township ] && want=$(OWN "SELECT count(*) FROM rollcall.latest_report l JOIN rollcall.unit u
                      ON u.code = l.unit_code WHERE u.rollup_parent = '$unit' AND l.period = '$P'")
        check "$who: children's villages reported = v_unit_day's" \
            "$(jq '[.children[].villages_reported] | add' <<<"$day")" "$want"
        want=$(OWN "SELECT count(*) FROM rollcall.unit v WHERE v.level = 1 AND v.code LIKE '$unit%'
                      AND NOT EXISTS (SELECT 1 FROM rollcall.latest_report l WHERE l.unit_code = v.code AND l.period = '$P')")
        check "$who: the missing list = the villages without a report" \
            "$(get $who "/api/units/$unit/missing?period=$P" | jq '.rows | length')" "$want"
    fi
    check "$who: the unit above is not found" "$(get $who "/api/units/$above/day?period=$P")" "$notfound"
    check "$who: another county is not found" "$(get $who "/api/units/130104/day?period=$P")" "$notfound"
    check "$who: another county is 404" "$(code $who "/api/units/130104/missing?period=$P")" 404
done
check "an unknown unit inside the scope: the same 404" "$(get county "/api/units/130102999/day?period=$P")" "$notfound"
check "a township's day from the county account" "$(get county "/api/units/$TOWNSHIP/day?period=$P" | jq -r .unit.level)" township
check "the path from the account's unit" "$(get county "/api/units/$VILLAGE" | jq -r '[.path[].code] | join(",")')" \
    "$COUNTY,$TOWNSHIP,$VILLAGE"
check "the account's own unit has no parent" "$(get county "/api/units/$COUNTY" | jq -c .parent)" null
grep -q "out-of-scope request user=$N-county" var/log/dashboard.log 2>/dev/null \
    && pass "out-of-scope requests are logged with the account" || fail "no out-of-scope log line"

# ---- authentication
check "no cookie: 401" "$(curl -s "$D/api/units/$COUNTY/day")" '{"error":"not signed in"}'
check "a forged cookie: 401" "$(curl -s -o /dev/null -w '%{http_code}' -b "rc_session=$(head -c 32 /dev/urandom | xxd -p -c 64)" "$D/api/me")" 401
tok=$(head -c 32 /dev/urandom | xxd -p -c 64)
OWN "INSERT INTO rollcall.account_session (token_hash, account, created_at, expires_at)
     VALUES (encode(sha256('$tok'::bytea), 'hex'), '$N-county', now() - interval '2 days', now() - interval '1 day')" >/dev/null
check "an expired session: 401" "$(curl -s -o /dev/null -w '%{http_code}' -b "rc_session=$tok" "$D/api/me")" 401
key=$("$RC" user apikey "$N-county")
check "an API key: 200" "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $key" "$D/api/units/$COUNTY/day")" 200
bad=${key%?}$([ "${key: -1}" = 0 ] && echo 1 || echo 0)
check "a tampered API key: 401" "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $bad" "$D/api/me")" 401
check "logout without JSON content type: 415" "$(code county /api/logout -X POST)" 415
check "logout: 204" "$(code county /api/logout -X POST -H 'Content-Type: application/json')" 204
check "the logged-out session: 401" "$(curl -s -o /dev/null -w '%{http_code}' -b "$T/county.jar" "$D/api/me")" 401
"$RC" user disable "$N-township" >/dev/null
check "a disabled account's session: 401" "$(code township /api/me)" 401
check "a disabled account cannot sign in (same answer)" "$(login township "$PW"; echo; cat "$T/township.login")" \
    "401
{\"error\":\"invalid user or password\"}"
check "a wrong password: the same answer" "$(login county wrong-password; echo; cat "$T/county.login")" \
    "401
{\"error\":\"invalid user or password\"}"
codes=""
for _ in $(seq 1 20); do codes="$codes $(login province wrong-password)"; done
[ "${codes: -3}" = 429 ] && pass "20 wrong passwords: throttled ($(tr ' ' '\n' <<<"$codes" | sort | uniq -c | tr -s ' \n' ' '))" \
    || fail "20 wrong passwords: $codes"
check "the right password while throttled: still 429" "$(login province "$PW")" 429
OWN "DELETE FROM rollcall.login_attempt WHERE address = '127.0.0.1'" >/dev/null
check "county signs in again" "$(login county "$PW")" 200
check "province signs in again" "$(login province "$PW")" 200

# ---- CSV, ETag
json=$(get county "/api/units/$COUNTY/missing?period=$P" | jq -r '(.rows[0] | keys_unsorted | join(",")),
        (.rows[] | [.[] | if . == null then "" else tostring end] | join(","))')
csv=$(get county "/api/units/$COUNTY/missing?period=$P&format=csv" | tr -d '\r')
check "CSV (?format=csv) = JSON" "$csv" "$json"
csv2=$(get county "/api/units/$COUNTY/missing?period=$P" -H 'Accept: text/csv' | tr -d '\r')
check "CSV (Accept: text/csv) = JSON" "$csv2" "$json"
disp=$(curl -s -D - -o /dev/null -b "$T/county.jar" "$D/api/units/$COUNTY/late?period=$P&format=csv" | tr -d '\r' | grep -i '^Content-Disposition')
check "CSV is an attachment named unit-what-period" "$disp" "Content-Disposition: attachment; filename=\"$COUNTY-late-$P.csv\""
etag=$(curl -s -D - -o /dev/null -b "$T/county.jar" "$D/api/units/$COUNTY/day?period=$P" | tr -d '\r' | awk -F': ' 'tolower($1)=="etag"{print $2}')
[ -n "$etag" ] && pass "day has an ETag ($etag)" || fail "no ETag"
check "If-None-Match: 304" "$(code county "/api/units/$COUNTY/day?period=$P" -H "If-None-Match: $etag")" 304
check "another ETag: 200" "$(code county "/api/units/$COUNTY/day?period=$P" -H 'If-None-Match: "x"')" 200
check "trends: unknown indicator 400" "$(code county "/api/units/$COUNTY/trends?indicator=drop_table")" 400
check "trends: first series is the unit" "$(get county "/api/units/$COUNTY/trends?days=7&period=$P" | jq -r '.series[0].code + " " + (.days | length | tostring)')" "$COUNTY 7"
check "calendar of the province: too many villages? no (174): 200" "$(code province "/api/units/13/calendar?days=3&period=$P")" 200
check "sign-off by a viewer: 403" "$(code province "/api/units/13/signoff?period=$P" -X POST -H 'Content-Type: application/json')" 403
check "sign-off of a unit below the signer's: 403" "$(code county "/api/units/$TOWNSHIP/signoff?period=$P" -X POST -H 'Content-Type: application/json')" 403

# ---- the event stream
if [ -n "${ROLLCALL_HTTP:-}" ]; then
    TODAY=$(TZ=Asia/Shanghai date +%F)
    SV=$(OWN "SELECT min(code) FROM rollcall.unit WHERE rollup_parent = '130102002'")
    vtoken=$("$RC" token issue "$SV" 2>/dev/null)
    curl -s -N -b "$T/county.jar" "$D/api/stream?unit=130102002" >"$T/sse" 2>/dev/null &
    SSE_PID=$!
    for _ in $(seq 1 50); do grep -q connected "$T/sse" && break; sleep 0.1; done
    t0=$(date +%s%N)
    "$RC" submit --unit "$SV" --period "$TODAY" --indicator confirmed=$((RANDOM % 50)) --token "$vtoken" \
        >/dev/null 2>&1 || fail "submit through the intake"
    got=
    for _ in $(seq 1 100); do
        if grep -q "\"unit_code\":\"130102002\",\"period\":\"$TODAY\"" "$T/sse"; then got=$(date +%s%N); break; fi
        sleep 0.05
    done
    if [ -n "$got" ]; then
        ms=$(( (got - t0) / 1000000 ))
        [ "$ms" -le 2000 ] && pass "the stream saw the township's new aggregate ${ms} ms after the report" \
            || fail "the stream took ${ms} ms"
    else
        fail "the stream saw nothing within 5 s: $(cat "$T/sse")"
    fi
    check "a stream outside the scope: 404" "$(code county "/api/stream?unit=130104")" 404
fi

# ---- static files: a dashboard of our own over a scratch web root
mkdir -p "$T/web/assets" "$T/outside"
echo '<!doctype html><title>index</title>' >"$T/web/index.html"
echo 'export const x = 1;' >"$T/web/assets/app.mjs"
echo 'body{}' >"$T/web/assets/app.css"
echo 'secret' >"$T/outside/secret.txt"
ln -s "$T/outside" "$T/web/out"
SPORT=$(( ${ROLLCALL_PORT_BASE:-25400} + 87 ))
ROLLCALL_PG_DSN=$ROLLCALL_PG_DSN_DASHBOARD "$BUILD/rollcall-dashboard" --http_port=$SPORT --web_root="$T/web" \
    --workers=2 --queue_max=1 >"$T/static-dashboard.log" 2>&1 </dev/null &
SPID=$!
for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$SPORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
S=http://127.0.0.1:$SPORT
ct() { curl -s -o /dev/null -w '%{http_code} %{content_type}' --path-as-is "$S$1"; }
check "static: index.html" "$(ct /index.html)" "200 text/html; charset=utf-8"
check "static: .mjs" "$(ct /assets/app.mjs)" "200 text/javascript; charset=utf-8"
check "static: .css" "$(ct /assets/app.css)" "200 text/css; charset=utf-8"
check "static: a client route gets index.html" "$(curl -s "$S/unit/130102/today")" "<!doctype html><title>index</title>"
check "static: / gets index.html" "$(curl -s "$S/")" "<!doctype html><title>index</title>"
check "static: .. does not leave the root" "$(curl -s --path-as-is "$S/../outside/secret.txt")" "<!doctype html><title>index</title>"
check "static: %2e%2e does not leave the root" "$(curl -s --path-as-is "$S/%2e%2e/outside/secret.txt")" "<!doctype html><title>index</title>"
check "static: a symlink out of the root is not followed" "$(curl -s "$S/out/secret.txt")" "<!doctype html><title>index</title>"
check "static: index.html is revalidated" "$(curl -s -D - -o /dev/null "$S/unit/1" | tr -d '\r' | grep -i '^cache-control')" "Cache-Control: no-cache"
check "static: an unknown /api/ path is JSON 401, not the page" "$(curl -s "$S/api/nothing")" '{"error":"not signed in"}'

# ---- the workers (this dashboard has 2 and lets 1 request wait): while the
# aggregates are locked, two day requests hold both workers and a third
# waits; a fourth is refused at once with 503 and Retry-After, and the loop
# still answers /healthz and the files.  Once the lock goes, the three held
# requests are answered.
blocked() {  # dashboard backends waiting for the lock
    OWN "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'rollcall-dashboard'
           AND wait_event_type = 'Lock'"
}
psql -X -qAt "$ROLLCALL_PG_DSN" -c "BEGIN; LOCK TABLE rollcall.aggregate IN ACCESS EXCLUSIVE MODE;
    SELECT pg_sleep(4); COMMIT" >/dev/null 2>&1 &
LOCK_PID=$!
for _ in $(seq 1 50); do
    [ "$(OWN "SELECT count(*) FROM pg_locks WHERE relation = 'rollcall.aggregate'::regclass AND mode = 'AccessExclusiveLock' AND granted")" = 1 ] && break
    sleep 0.1
done
held=()
for i in 1 2; do
    curl -s -o "$T/held$i" -w '%{http_code}' -b "$T/county.jar" "$S/api/units/$COUNTY/day?period=$P" >"$T/held$i.code" &
    held+=($!)
done
for _ in $(seq 1 50); do [ "$(blocked)" -ge 2 ] && break; sleep 0.1; done
check "workers: two slow requests hold both workers" "$(blocked)" 2
curl -s -o "$T/held3" -w '%{http_code}' -b "$T/county.jar" "$S/api/units/$COUNTY/day?period=$P" >"$T/held3.code" &
held+=($!)
sleep 0.3
busy=$(curl -s -D - -o /dev/null --max-time 2 -b "$T/county.jar" "$S/api/me" | tr -d '\r')
check "workers: a request beyond the queue is refused at once" "$(head -n 1 <<<"$busy" | cut -d' ' -f2)" 503
check "workers: the refusal says when to retry" "$(grep -i '^retry-after' <<<"$busy")" "Retry-After: 1"
check "workers: /healthz answers while every worker is busy" \
    "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$S/healthz")" 200
check "workers: files are served while every worker is busy" \
    "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$S/index.html")" 200
wait "$LOCK_PID" "${held[@]}"
check "workers: the held requests are answered once the lock goes" \
    "$(cat "$T/held1.code" "$T/held2.code" "$T/held3.code" | tr -d '\n')" 200200200
check "workers: a held answer is the county's day" "$(jq -r .unit.code "$T/held3")" "$COUNTY"
kill -TERM "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null

if [ "$FAILED" -eq 0 ]; then say "all passed"; else say "$FAILED failure(s); files in $T"; exit 1; fi
