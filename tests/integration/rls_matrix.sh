#!/usr/bin/env bash
# The access matrix of migration 007 against real PostgreSQL, in a scratch
# database holding rows of two counties (130102 from the sample registry and
# an invented 130104) in every table a reader can reach:
#   - rollcall_dashboard with the scope of one county sees rows of that
#     county in every table and view, and none of the other; with no scope,
#     an empty scope or a malformed one, no rows at all;
#   - the policies use the indexes (EXPLAIN: the scope is an Index Cond);
#   - the dashboard cannot INSERT, UPDATE or DELETE any report table, and
#     signs off only its own scope's unit;
#   - rollcall_intake reads the registry and the tokens, no report (the
#     archive only by report_id, through rollcall.intake_archived);
#   - each writer role lacks every privilege listed for it below.
# Skips without the stack's role DSNs.
set -u
cd "$(dirname "$0")/../.."
BUILD=${ROLLCALL_BUILD:-${BUILD:-build}}
RC=$BUILD/rollcall
skip() { echo "SKIP rls_matrix: $*"; exit 0; }
[ -n "${ROLLCALL_PG_DSN:-}" ] || skip "ROLLCALL_PG_DSN is not set (run under tests/run.sh integration)"
[ -n "${ROLLCALL_PG_DSN_DASHBOARD:-}" ] || skip "the role DSNs are not in the environment (var/stack.env)"
[ -x "$RC" ] || skip "$RC is not built"

DB=rls_test_$$
ADMIN="$ROLLCALL_PG_DSN dbname=postgres"
OWNER="$ROLLCALL_PG_DSN dbname=$DB"
FAILED=0
P=2026-11-30
say() { printf 'rls_matrix: %s\n' "$*"; }
fail() { printf 'FAIL rls_matrix: %s\n' "$*"; FAILED=$((FAILED + 1)); }
pass() { printf 'ok   rls_matrix: %s\n' "$*"; }
cleanup() { psql -X -qAt "$ADMIN" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1; }
trap cleanup EXIT

as() {  # as ROLE SQL... : runs as the role in the scratch database; prints rows
    local v="ROLLCALL_PG_DSN_${1^^}"; shift
    printf '%s\n' "$*" | psql -X -qAt -v ON_ERROR_STOP=1 "${!v} dbname=$DB" 2>&1
}

psql -X -qAt "$ADMIN" -c "CREATE DATABASE $DB" >/dev/null || { fail "cannot create $DB"; exit 1; }
"$RC" migrate --dsn "$OWNER" >/dev/null || { fail "migrate"; exit 1; }
"$RC" registry import --csv tests/data/registry-130102.csv --dsn "$OWNER" >/dev/null 2>&1 || { fail "registry import"; exit 1; }

# Rows of both counties in every reader-reachable table.
psql -X -q -v ON_ERROR_STOP=1 "$OWNER" >/dev/null <<SQL || { fail "seeding"; exit 1; }
INSERT INTO rollcall.unit (code, name, level, parent_code, rollup_parent, expected_children) VALUES
  ('130104', 'other county', 3, '1301', '13', 1),
  ('130104001', 'other township', 2, '130104', '130104', 2),
  ('130104001001', 'other village 1', 1, '130104001', '130104001', 0),
  ('130104001002', 'other village 2', 1, '130104001', '130104001', 0);
UPDATE rollcall.level_policy SET signoff_required = true WHERE level = 3;
DO \$\$
DECLARE c text; t text; v text; id uuid;
BEGIN
  FOREACH c IN ARRAY ARRAY['130102', '130104'] LOOP
    t := c || '001'; v := t || '001';
    id := gen_random_uuid();
    INSERT INTO rollcall.report_archive (report_id, unit_code, level, period, kind, version, payload)
      VALUES (id, v, 1, '$P', 1, 1, '\\x');
    INSERT INTO rollcall.latest_report (unit_code, period, level, kind, version, report_id, confirmed)
      VALUES (v, '$P', 1, 1, 1, id, 1);
    INSERT INTO rollcall.aggregate (unit_code, period, level, version, rollup_parent)
      VALUES (t, '$P', 2, 1, c), (c, '$P', 3, 1, '13')
      ON CONFLICT (unit_code, period) DO NOTHING;   -- the township's follows latest_report (009)
    INSERT INTO rollcall.filing (unit_code, period, level, live_version, live_report_id, live_payload,
                                 live_expected, live_reported, live_missing, live_complete, live_at,
                                 source_partition, ready_at)
      VALUES (c, '$P', 3, 1, gen_random_uuid(), '\\x', 1, 1, 0, true, now(), 0, now());
    INSERT INTO rollcall.filing_log (report_id, unit_code, period, level, version, kind, reason, revised,
                                     submitter, expected, reported, filed_at, topic)
      VALUES (gen_random_uuid(), t, '$P', 2, 1, 1, 'complete', false, 'x', 1, 1, now(), 'reports.township');
    INSERT INTO rollcall.reminder (unit_code, period, asked_by_unit, asked_by_level, minutes_before, deadline, reminded_at)
      VALUES (v, '$P', t, 2, 60, now(), now());
    INSERT INTO rollcall.escalation (unit_code, period, rule, raised_to_level) VALUES (c, '$P', 'confirmed', 5);
    id := gen_random_uuid();
    INSERT INTO rollcall.urgent_report (report_id, unit_code, period, incident_type, severity)
      VALUES (id, v, '$P', 'fever_cluster', 3);
    INSERT INTO rollcall.urgent_hop (report_id, level, unit_code, at) VALUES (id, 1, v, now());
  END LOOP;
END \$\$;
ANALYZE;
SQL

# table:code column
objects="unit:code report_archive:unit_code latest_report:unit_code aggregate:unit_code filing:unit_code
filing_log:unit_code reminder:unit_code escalation:unit_code urgent_report:unit_code urgent_hop:unit_code
v_unit_day:unit_code v_missing:unit_code v_urgent:unit_code v_filing:unit_code v_pending_signoff:unit_code"

scoped() {  # scoped SCOPE SQL : the dashboard's rows under a scope
    as dashboard "BEGIN;
SELECT set_config('rollcall.scope', '$1', true) \g /dev/null
$2;
COMMIT;"
}

for o in $objects; do
    t=${o%%:*}; col=${o##*:}
    mine=$(scoped 130102 "SELECT count(*) FROM rollcall.$t WHERE $col LIKE '130102%'")
    other=$(scoped 130102 "SELECT count(*) FROM rollcall.$t WHERE $col NOT LIKE '130102%'")
    owner_other=$(psql -X -qAt "$OWNER" -c "SELECT count(*) FROM rollcall.$t WHERE $col LIKE '130104%'")
    if [ "$mine" -gt 0 ] && [ "$other" = 0 ] && [ "$owner_other" -gt 0 ]; then
        pass "$t: county 130102 sees $mine row(s) of its own, 0 of the $owner_other of county 130104"
    else
        fail "$t: own $mine, other county's $other (the owner sees $owner_other of 130104)"
    fi
    for s in unset '' '13010' "1301' OR true --" 'x'; do
        if [ "$s" = unset ]; then
            n=$(as dashboard "SELECT count(*) FROM rollcall.$t")
        else
            n=$(scoped "${s//\'/\'\'}" "SELECT count(*) FROM rollcall.$t")
        fi
        [ "$n" = 0 ] || fail "$t: scope '$s' shows $n row(s)"
    done
    pass "$t: no scope, an empty or malformed scope: 0 rows"
done

# An incident's hops follow the incident: county 130102 sees the province hop
# (unit 13, above its subtree) of its own villages' incidents, none of 130104's.
psql -X -qAt "$OWNER" -c "INSERT INTO rollcall.urgent_hop (report_id, level, unit_code, at)
    SELECT report_id, 5, '13', now() FROM rollcall.urgent_report" >/dev/null
own=$(psql -X -qAt "$OWNER" -c "SELECT count(*) FROM rollcall.urgent_report WHERE unit_code LIKE '130102%'")
all=$(psql -X -qAt "$OWNER" -c "SELECT count(*) FROM rollcall.urgent_hop WHERE level = 5")
n=$(scoped 130102 "SELECT count(*) FROM rollcall.urgent_hop WHERE level = 5")
seen=$(scoped 130102 "SELECT count(*) FROM rollcall.v_urgent WHERE province_at IS NOT NULL")
if [ "$n" = "$own" ] && [ "$seen" = "$own" ] && [ "$all" -gt "$own" ]; then
    pass "urgent hops: county 130102 sees the province hop of its $own incidents, 0 of the other $((all - own))"
else
    fail "urgent hops: province hops seen $n (v_urgent $seen), own incidents $own, all province hops $all"
fi
psql -X -qAt "$OWNER" -c "DELETE FROM rollcall.urgent_hop WHERE level = 5" >/dev/null

# Prefix edges: the prefecture 1301 sees both counties, the township only itself.
n=$(scoped 1301 "SELECT count(*) FROM rollcall.aggregate")
[ "$n" = 4 ] && pass "prefecture scope 1301 sees both counties' aggregates" || fail "prefecture scope: $n aggregates"
n=$(scoped 130102001 "SELECT count(*) FROM rollcall.aggregate")
[ "$n" = 1 ] && pass "township scope sees its own aggregate only" || fail "township scope: $n aggregates"

# The policies use the indexes.
# (enable_seqscan off: the scratch tables are a few rows, where a scan is cheaper)
plan=$(scoped 130102 "SET LOCAL enable_seqscan = off; EXPLAIN SELECT * FROM rollcall.latest_report WHERE period = '$P'")
if grep -q 'Index Cond: ((period = .*unit_code >= rollcall.scope()' <<<"$plan"; then
    pass "latest_report under a scope: the scope is an Index Cond"
else
    fail "latest_report plan: $plan"
fi
plan=$(scoped 130102 "SET LOCAL enable_seqscan = off; EXPLAIN SELECT * FROM rollcall.aggregate")
grep -q 'Index Cond: ((unit_code >= rollcall.scope())' <<<"$plan" \
    && pass "aggregate under a scope: the scope is an Index Cond" || fail "aggregate plan: $plan"

denied() {  # denied ROLE WHAT SQL
    local role=$1 what=$2 out; shift 2
    out=$(as "$role" "$@")
    if grep -q 'permission denied\|must be owner' <<<"$out"; then pass "$role cannot $what"
    else fail "$role can $what: $out"; fi
}
allowed() {
    local role=$1 what=$2 out; shift 2
    if out=$(as "$role" "$@"); then pass "$role can $what"; else fail "$role cannot $what: $out"; fi
}

for o in $objects; do
    t=${o%%:*}; col=${o##*:}
    case $t in v_*) continue ;; esac
    denied dashboard "INSERT INTO $t" "INSERT INTO rollcall.$t DEFAULT VALUES"
    denied dashboard "UPDATE $t" "UPDATE rollcall.$t SET $col = $col"
    denied dashboard "DELETE FROM $t" "DELETE FROM rollcall.$t"
done
denied dashboard "read dead letters" "SELECT count(*) FROM rollcall.dead_letter"
denied dashboard "read the outbox" "SELECT count(*) FROM rollcall.outbox"
denied dashboard "read unit tokens" "SELECT count(*) FROM rollcall.unit_token"
out=$(scoped 130102 "SELECT rollcall.dashboard_signoff('130104', '$P', 'x')")
grep -q 'outside the scope' <<<"$out" && pass "dashboard signs off nothing outside its scope" \
    || fail "dashboard signed off another county: $out"
out=$(scoped 130102 "SELECT rollcall.dashboard_signoff('130102', '$P', 'tester')")
[ "$out" = 3 ] && pass "dashboard signs off its own scope's unit (through rollcall.dashboard_signoff)" \
    || fail "sign-off of its own unit: $out"

denied intake "read latest reports" "SELECT count(*) FROM rollcall.latest_report"
denied intake "read the archive" "SELECT count(*) FROM rollcall.report_archive"
denied intake "read aggregates" "SELECT count(*) FROM rollcall.aggregate"
denied intake "write a token" "INSERT INTO rollcall.unit_token (token_hash, unit_code) VALUES (repeat('a', 64), '130102')"
denied intake "change the registry" "UPDATE rollcall.unit SET name = name"
# The archive only through rollcall.intake_archived (012): the ids it names,
# nothing else; no other role may call it.
ids=$(psql -X -qAt "$OWNER" -c "SELECT string_agg(report_id::text, ',') FROM rollcall.report_archive WHERE level = 1")
n=$(as intake "SELECT count(*) FROM rollcall.intake_archived('{$ids}'::uuid[])")
want=$(psql -X -qAt "$OWNER" -c "SELECT count(*) FROM rollcall.report_archive WHERE level = 1")
[ "$n" = "$want" ] && [ "$n" -gt 0 ] && pass "intake looks up archived report_ids ($n)" \
    || fail "intake_archived answered $n of $want ids"
n=$(as intake "SELECT count(*) FROM rollcall.intake_archived('{}'::uuid[])")
[ "$n" = 0 ] && pass "intake_archived answers nothing for no ids" || fail "intake_archived('{}') gave $n rows"
denied dashboard "look up the archive for the intake" "SELECT * FROM rollcall.intake_archived('{}'::uuid[])"
denied level "look up the archive for the intake" "SELECT * FROM rollcall.intake_archived('{}'::uuid[])"
n=$(as intake "SELECT count(*) FROM rollcall.unit")
[ "$n" -gt 190 ] && pass "intake reads the whole registry ($n units)" || fail "intake reads $n units"

# Writers: their job (a sample) and every privilege they must not have.
allowed rollup "write an aggregate" "UPDATE rollcall.aggregate SET version = version WHERE period = '$P'"
denied rollup "change the registry" "UPDATE rollcall.unit SET name = name"
denied rollup "delete from the archive" "DELETE FROM rollcall.report_archive"
denied rollup "delete latest reports" "DELETE FROM rollcall.latest_report"
denied rollup "write the filing desk" "UPDATE rollcall.filing SET signoff_by = 'x'"
denied rollup "read accounts" "SELECT count(*) FROM rollcall.account"
denied rollup "read unit tokens" "SELECT count(*) FROM rollcall.unit_token"
denied rollup "create a table" "CREATE TABLE rollcall.x (a int)"
allowed level "write the filing desk" "UPDATE rollcall.filing SET reminders_done = reminders_done"
denied level "write aggregates" "UPDATE rollcall.aggregate SET version = version"
denied level "write latest reports" "UPDATE rollcall.latest_report SET version = version"
denied level "read the archive" "SELECT count(*) FROM rollcall.report_archive"
denied level "delete filings" "DELETE FROM rollcall.filing"
denied level "change the registry" "UPDATE rollcall.unit SET name = name"
denied level "read accounts" "SELECT count(*) FROM rollcall.account"
denied level "change escalation rules" "UPDATE rollcall.escalation_rule SET note = note"
allowed ops "read every report" "SELECT count(*) FROM rollcall.v_unit_day"
denied ops "change the registry" "UPDATE rollcall.unit SET name = name"
denied ops "delete from the archive" "DELETE FROM rollcall.report_archive"
denied ops "change a filing's live version" "UPDATE rollcall.filing SET live_version = live_version"
denied ops "read the migrations" "SELECT count(*) FROM rollcall.schema_migration"
denied ops "create a table" "CREATE TABLE rollcall.x (a int)"
denied ops "change level policy" "UPDATE rollcall.level_policy SET deadline = deadline"

for r in intake rollup level dashboard ops; do
    s=$(psql -X -qAt "$ADMIN" -c "SELECT rolsuper OR rolbypassrls OR rolcreaterole OR rolcreatedb FROM pg_roles WHERE rolname = 'rollcall_$r'")
    [ "$s" = f ] && pass "rollcall_$r: no superuser, BYPASSRLS, CREATEROLE or CREATEDB" || fail "rollcall_$r attributes: $s"
done
n=$(psql -X -qAt "$OWNER" -c "SELECT count(*) FROM pg_tables WHERE schemaname = 'rollcall' AND tableowner LIKE 'rollcall\_%'")
[ "$n" = 0 ] && pass "no component role owns a table" || fail "$n tables owned by component roles"

if [ "$FAILED" -eq 0 ]; then say "all passed"; else say "$FAILED failure(s)"; exit 1; fi
