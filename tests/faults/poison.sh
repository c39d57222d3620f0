#!/usr/bin/env bash
# Poison in the middle of a county day: messages the intake would have
# refused, produced straight into Kafka, at least 1% of the day: a daily
# report whose submitter is not UTF-8, one with 200 extra indicators, one
# whose values would overflow the township's sums, an urgent report with
# 1,000 hops and one with hops PostgreSQL could not store.  Each names a
# real village of the county and a version above the day's, so that had it
# been counted verify would see it.  Each must be a dead letter with the
# reason, once (no level passes it on), none archived; the rollup answers
# /healthz 200 all along; the day is exact, nothing lost, nothing counted
# twice.
cd "$(dirname "$0")/../.." || exit 1
. tests/faults/lib.sh
fault_setup poison 6
command -v kcat >/dev/null && command -v protoc >/dev/null || skip "kcat or protoc missing (deploy/install-deps.sh)"

mapfile -t villages < <(psql -qAt "$ROLLCALL_PG_DSN" -c "SELECT code FROM rollcall.unit
    WHERE level = 1 AND code LIKE '$UNIT%' ORDER BY random() LIMIT 5")
[ "${#villages[@]}" = 5 ] || fail "the registry has no villages under $UNIT"
now_us=$(( $(now_ms) * 1000 ))
ids=()
kinds=()
P=$WORK/msg
mkdir -p "$P"
# Poison $1: a report of village $2, kind $3, with the fields $4 (protobuf
# text format), encoded into $P/$1.
poison() {
    local id; id=$(cat /proc/sys/kernel/random/uuid)
    ids+=("$id"); kinds+=("$1")
    { printf 'report_id: "%s"\nunit_code: "%s"\nlevel: LEVEL_VILLAGE\nperiod: "%s"\nkind: %s\n' \
          "$id" "$2" "$PERIOD" "$3"
      printf 'version: %s\nreceived_at: %s\n%s\n' $((now_us + 3600000000)) "$now_us" "$4"
    } >"$P/$1.txt"
    report_encode "$P/$1" <"$P/$1.txt"
}
many() { for i in $(seq 1 "$1"); do printf "$2\n" "$i"; done; }
ok_fields='submitter: "clerk" indicators { households_visited: 999 }'
poison utf8 "${villages[0]}" KIND_DAILY 'submitter: "clerk \377\376 not UTF-8" indicators { households_visited: 999 }'
poison extra "${villages[1]}" KIND_DAILY "$ok_fields
$(many 200 'extra { key: "extra_indicator_with_a_rather_long_name_number_%05d" value: 1 }')"
poison overflow "${villages[2]}" KIND_DAILY \
    'submitter: "clerk" indicators { persons_screened: 9223372036854775807 masks: 9223372036854775807 }'
incident='type: "fever_cluster" severity: 2 occurred_at: '$((now_us - 3600000000))
poison hops_many "${villages[3]}" KIND_URGENT "$ok_fields incident { $incident
$(many 1000 "hops { level: LEVEL_VILLAGE unit_code: \"${villages[3]}\" at: $now_us } %.0s") }"
poison hops_hostile "${villages[4]}" KIND_URGENT "$ok_fields incident { $incident description: \"\\377\\000\"
hops { level: 42 unit_code: \"13'); DROP TABLE x; --\\377\" at: -1 }
hops { level: LEVEL_PROVINCE unit_code: \"13\" at: 9223372036854775807 } }"

# Sampled every half second from the first poison to the end of the day.
(while :; do
     code=$(healthz 81)
     [ "$code" = 200 ] || echo "$(date +%T.%N | cut -c1-12) $code $(healthz_body 81 | head -1)"
     sleep 0.5
 done) >"$WORK/healthz.bad" 2>&1 &
SAMPLER=$!
trap 'kill $SAMPLER 2>/dev/null' EXIT

fault_start_day
for i in "${!kinds[@]}"; do
    sleep 2
    # keyed as the intake keys them: the village on reports.urgent, the
    # township on reports.village
    case ${kinds[$i]} in
        hops_*) produce_raw reports.urgent "${villages[$i]}" "$P/${kinds[$i]}" ;;
        *) produce_raw reports.village "${villages[$i]:0:9}" "$P/${kinds[$i]}" ;;
    esac
done
echo "poison: ${#kinds[@]} poison messages produced ($(du -cb "$P"/* | tail -1 | cut -f1) bytes)"
end_ms=$(now_ms)
fault_finish "$end_ms"
kill $SAMPLER 2>/dev/null

[ -s "$WORK/healthz.bad" ] && fail "the rollup's /healthz was not 200: $(head -3 "$WORK/healthz.bad")"
for i in "${!ids[@]}"; do
    id=${ids[$i]}
    row=$(psql -qAt "$ROLLCALL_PG_DSN" -c "SELECT count(*), min(topic), min(left(reason, 150))
        FROM rollcall.dead_letter WHERE position(convert_to('$id', 'UTF8') in raw) > 0")
    # once: a level that passed poison up would make a dead letter of each copy
    [ "${row%%|*}" = 1 ] || fail "${kinds[$i]} ($id) is a dead letter ${row%%|*} times, not once"
    stored=$(psql -qAt "$ROLLCALL_PG_DSN" -c "SELECT (SELECT count(*) FROM rollcall.report_archive
        WHERE report_id = '$id') + (SELECT count(*) FROM rollcall.urgent_report WHERE report_id = '$id')")
    [ "$stored" = 0 ] || fail "${kinds[$i]} ($id) was stored"
    echo "poison: ${kinds[$i]}: dead letter ${row#*|}"
done
sent=$(sed -n 's/.* sent=\([0-9]*\).*/\1/p' <<<"$(grep '^mode=' "$WORK/loadgen.out")")
echo "poison: $(awk "BEGIN{printf \"%.1f\", 100 * ${#kinds[@]} / ($sent + ${#kinds[@]})}")% of the day's messages were poison; rollup /healthz 200 throughout"
