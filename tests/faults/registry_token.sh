#!/usr/bin/env bash
# The registry and the tokens changing under the running services, in the
# middle of a county day: a new village is imported (`rollcall registry
# import`) and the running intake accepts its report within
# REGISTRY_LIMIT_S (10: its registry_reload is 5 s), filed with its
# township's token; then a token is issued for the new village and the
# running intake honours it within TOKEN_LIMIT_S (1).  Both reports are
# counted: the day, the new village included, is exact, nothing lost,
# nothing counted twice.  The village is removed again at the end.
cd "$(dirname "$0")/../.." || exit 1
. tests/faults/lib.sh
REGISTRY_LIMIT_S=${REGISTRY_LIMIT_S:-10}
TOKEN_LIMIT_S=${TOKEN_LIMIT_S:-1}
fault_setup registry_token 0
command -v jq >/dev/null || skip "jq missing (deploy/install-deps.sh)"
NEW=${UNIT}001990           # not in the sample registry
TOWNSHIP=${NEW:0:9}
forget_unit "$NEW"          # left by a run that did not finish
township_token=$("$BUILD/rollcall" token issue "$TOWNSHIP" 2>/dev/null) || fail "token issue $TOWNSHIP"
trap 'forget_unit "$NEW"
      psql -qAt "$ROLLCALL_PG_DSN" -c "DELETE FROM rollcall.unit_token WHERE token_hash =
          encode(sha256(convert_to('"'"'$township_token'"'"', '"'"'UTF8'"'"')), '"'"'hex'"'"')" >/dev/null' EXIT
# The county's registry again, with one village more (an import checks each
# unit's parent within the file).
{ cat tests/data/registry-130102.csv; printf '%s,新村（测试）,%s,village\n' "$NEW" "$TOWNSHIP"; } \
    >"$WORK/registry.csv"

# Files report $2 (ledger role $3, households $4) with token $1 until the
# intake answers 202 or $5 seconds have passed.  FILED_S: the seconds from
# the call to the intake's receipt of the accepted request (its version);
# REFUSED: the answers before it.
file_until_accepted() {
    local start; start=$(now_ms)
    REFUSED=
    until submit_counted "$1" "$NEW" "$3" "$2" "$4"; do
        REFUSED="$REFUSED ${SUBMIT_ANSWER##* }"
        [ $(( $(now_ms) - start )) -ge $(( $5 * 1000 )) ] && return 1
        sleep 0.05
    done
    REFUSED=$(tr ' ' '\n' <<<"$REFUSED" | grep . | sort | uniq -c | awk '{ printf "%s%s x %s", (NR > 1 ? ", " : ""), $1, $2 }')
    FILED_S=$(awk "BEGIN{printf \"%.2f\", ($SUBMIT_VERSION / 1000 - $start) / 1000}")
}

# Whether the running intake knows the new village: a report of it for a
# period out of its window, always refused, names the unit unknown or not.
intake_knows_new() {
    ! curl -s -m 5 -X POST -H "Authorization: Bearer $township_token" -H 'Content-Type: application/json' \
        "$ROLLCALL_HTTP/v1/reports" -d "{\"unit_code\":\"$NEW\",\"period\":\"2000-01-01\",\"kind\":\"daily\"}" \
        | grep -q 'unknown unit'
}
# Until the running intake has forgotten the village (an earlier run's),
# its report would not show the import being picked up.
for _ in $(seq 1 60); do intake_knows_new || break; sleep 0.25; done
intake_knows_new && fail "the intake still knows $NEW 15 s after it left the registry"

fault_start_day
sleep 5
out=$("$BUILD/rollcall" registry import --csv "$WORK/registry.csv" 2>&1) || fail "registry import: $out"
echo "registry_token: village $NEW imported"
file_until_accepted "$township_token" "$(cat /proc/sys/kernel/random/uuid)" first 7 "$REGISTRY_LIMIT_S" \
    || fail "a report of the new village $NEW still refused ${REGISTRY_LIMIT_S}s after the import: $SUBMIT_ANSWER"
registry_s=$FILED_S
echo "registry_token: its report accepted ${registry_s}s after the import (refused before: ${REFUSED:-none})"

village_token=$("$BUILD/rollcall" token issue "$NEW" 2>/dev/null) || fail "token issue $NEW"
file_until_accepted "$village_token" "$(cat /proc/sys/kernel/random/uuid)" correction 8 5 \
    || fail "the token issued for $NEW still refused after 5 s: $SUBMIT_ANSWER"
token_s=$FILED_S
echo "registry_token: a report with its new token accepted ${token_s}s after the token was issued" \
     "(refused before: ${REFUSED:-none})"
awk "BEGIN{exit !($token_s <= $TOKEN_LIMIT_S)}" \
    || fail "the new token was usable only ${token_s}s after it was issued (at most ${TOKEN_LIMIT_S}s)"
fault_finish "$(now_ms)"
latest=$(psql -qAt "$ROLLCALL_PG_DSN" -c "SELECT households_visited FROM rollcall.latest_report
    WHERE unit_code = '$NEW' AND period = '$PERIOD'")
[ "$latest" = 8 ] || fail "the new village's latest report holds households_visited='$latest', not 8"
echo "registry_token: registry_s=$registry_s token_s=$token_s"
