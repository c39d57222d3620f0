#!/usr/bin/env bash
# The schema's migrations, against a real PostgreSQL (scratch databases only):
#   1. 001_baseline.sql builds the whole schema: the key tables, views and
#      functions exist, unit codes compare byte-wise, latest_report is keyed
#      by (period, unit_code), every indicator of the .proto has its column;
#      a second run is a no-op;
#   2. a database recorded with the chain the baseline squashed (001_init ..
#      006_township_refresh) is recorded as having the baseline; one with an
#      edited chain is refused, asking to recreate it;
#   3. adding an indicator is a change to proto/rollcall.proto alone: in a
#      scratch copy of the tree with one more field, the rebuilt rollcall
#      migrates a database whose tables, functions and v_unit_day carry it;
#      a rollcall built without it refuses that .proto.
set -u
cd "$(dirname "$0")/../.."
. scripts/lib.sh
BUILD=${ROLLCALL_BUILD:-${BUILD:-build}}
RC=$PWD/$BUILD/rollcall
SAY_AS=schema

[ -n "${ROLLCALL_PG_DSN:-}" ] || skip "ROLLCALL_PG_DSN is not set (run under tests/run.sh integration)"
[ -x "$RC" ] || skip "$RC is not built"

TMP=$(mktemp -d /tmp/rollcall-schema-test.XXXXXX)
DBS=()
cleanup() {
    for db in "${DBS[@]}"; do psql_admin -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1; done
    rm -rf "$TMP"
}
trap cleanup EXIT

scratch_db() {  # name: a fresh database rc_schema_<name>_<pid>, dropped at exit
    local db=rc_schema_$1_$$
    PGOPTIONS='-c client_min_messages=warning' psql_admin -c "DROP DATABASE IF EXISTS $db" \
        -c "CREATE DATABASE $db" >/dev/null || die "create $db"
    DBS+=("$db")
}
dsn_of() { printf '%s dbname=rc_schema_%s_%s' "$ROLLCALL_PG_DSN" "$1" "$$"; }
q() { local dsn=$1; shift; psql_at "$dsn" -c "$*"; }
expect() {  # what got expected
    if [ "$2" = "$3" ]; then pass "$1"; else fail "$1: got '$2', expected '$3'"; fi
}

# What a fully migrated database records: the baseline and every delta after it.
RECORDED=$(ls migrations/*.sql | sed -E 's#.*/0*([0-9]+)_(.*)\.sql$#\1 \2#' | paste -sd, -)
NDELTAS=$(( $(ls migrations/*.sql | wc -l) - 1 ))

# ---- 1. the baseline
scratch_db base; A=$(dsn_of base)
"$RC" migrate --dsn "$A" >"$TMP/m1.log" 2>&1 || die "migrate: $(tail -2 "$TMP/m1.log")"
expect "baseline recorded" "$(q "$A" "SELECT string_agg(version || ' ' || name, ',' ORDER BY version) FROM rollcall.schema_migration")" "$RECORDED"
missing=$(q "$A" "SELECT string_agg(o, ' ') FROM unnest(ARRAY[
    'rollcall.unit','rollcall.unit_token','rollcall.report_archive','rollcall.latest_report',
    'rollcall.aggregate','rollcall.level_policy','rollcall.filing','rollcall.filing_log',
    'rollcall.reminder','rollcall.escalation_rule','rollcall.escalation','rollcall.urgent_report',
    'rollcall.urgent_hop','rollcall.consumer_offset','rollcall.outbox','rollcall.dead_letter',
    'rollcall.v_unit_day','rollcall.v_missing','rollcall.v_urgent','rollcall.v_filing',
    'rollcall.v_pending_signoff','rollcall.report_archive_period_brin',
    'rollcall.filing_due_early_idx','rollcall.filing_remind_idx','rollcall.escalation_once_idx']) o
    WHERE to_regclass(o) IS NULL")
expect "key tables, views and indexes exist" "$missing" ""
missing=$(q "$A" "SELECT string_agg(f, ' ') FROM unnest(ARRAY['refresh_townships','refresh_parents',
    'lock_parents','refresh_filing','refresh_level','rebuild_day','period_start_us',
    'jsonb_sum_array','unit_token_notify','notify_level_config']) f
    WHERE NOT EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                       WHERE n.nspname = 'rollcall' AND p.proname = f)")
expect "functions exist" "$missing" ""
expect "unit codes compare byte-wise" "$(q "$A" "SELECT string_agg(table_name || '.' || column_name, ' '
    ORDER BY table_name, column_name) FROM information_schema.columns c
    WHERE table_schema = 'rollcall' AND collation_name = 'C'
      AND EXISTS (SELECT 1 FROM information_schema.tables t WHERE t.table_schema = c.table_schema
                     AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE')")" \
    "account.unit_code aggregate.rollup_parent aggregate.unit_code latest_report.unit_code report_archive.unit_code unit.code unit.parent_code unit.rollup_parent urgent_report.unit_code"
expect "latest_report is keyed by (period, unit_code)" "$(q "$A" "SELECT pg_get_indexdef('rollcall.latest_report_pkey'::regclass)")" \
    "CREATE UNIQUE INDEX latest_report_pkey ON rollcall.latest_report USING btree (period, unit_code)"
expect "aggregate has room for HOT updates" "$(q "$A" "SELECT array_to_string(reloptions, ',') FROM pg_class WHERE oid = 'rollcall.aggregate'::regclass")" "fillfactor=60"
NIND=$(sed -n '/^message Indicators/,/^}/p' proto/rollcall.proto | grep -c '^ *int64 ')
for t in latest_report aggregate v_unit_day; do
    expect "$t has the $NIND indicators of the .proto" "$(q "$A" "SELECT count(*) FROM information_schema.columns
        WHERE table_schema = 'rollcall' AND table_name = '$t' AND data_type = 'bigint'
          AND column_name NOT IN ('version')")" "$NIND"
done
expect "level policies seeded" "$(q "$A" "SELECT string_agg(level || '@' || deadline, ' ' ORDER BY level) FROM rollcall.level_policy")" \
    "1@10:00:00 2@11:00:00 3@12:00:00 5@14:00:00"
"$RC" migrate --dsn "$A" >"$TMP/m2.log" 2>&1 || die "second migrate: $(tail -2 "$TMP/m2.log")"
expect "second run is a no-op" "$(grep -c '^up to date' "$TMP/m2.log")" 1

# ---- 2. a database migrated with the squashed chain
scratch_db chain; B=$(dsn_of chain)
"$RC" migrate --dsn "$B" >/dev/null 2>&1 || die "migrate chain db"
chain="(1, 'init', 'cf079af99d6944f2015d1018c381a0963c72d09a1bc0df68576ee22a62507a7f'),
       (2, 'village', '0e8822294330a91cd71d5a827233ea6c93b9b58496b7668517fc8b26081ccd66'),
       (3, 'rollup', '813987d2908e8f473c7a03c3633ffc919045b0f2b7c14e2ab2bb8a36131c82bc'),
       (4, 'levels', '3c4a364f99e7c27b7d4c186491107b3f0b183e9d29ba7f2c72fec0ea5803904b'),
       (5, 'sweep', 'efa1e4f6ac368f12672cf4bf98618d57fb08e4c6149a2ba831950ce15952ae78'),
       (6, 'township_refresh', '0877e7daa68eca045f2c56931d3f273f0424de2d46f2cd649f72668eef2588ac')"
q "$B" "DELETE FROM rollcall.schema_migration WHERE version = 1; INSERT INTO rollcall.schema_migration (version, name, checksum) VALUES $chain" >/dev/null
"$RC" migrate --dsn "$B" >"$TMP/m3.log" 2>&1 || fail "migrate over the squashed chain: $(tail -2 "$TMP/m3.log")"
expect "squashed chain recorded as the baseline" "$(q "$B" "SELECT string_agg(version || ' ' || name, ',' ORDER BY version) FROM rollcall.schema_migration")" "$RECORDED"
q "$B" "DELETE FROM rollcall.schema_migration WHERE version = 1; INSERT INTO rollcall.schema_migration (version, name, checksum) VALUES $chain;
        UPDATE rollcall.schema_migration SET checksum = 'edited' WHERE version = 4" >/dev/null
if "$RC" migrate --dsn "$B" >"$TMP/m4.log" 2>&1; then
    fail "an edited old chain was accepted"
else
    expect "an edited old chain is refused, asking to recreate" "$(grep -c 'recreate the database' "$TMP/m4.log")" 1
fi
expect "and nothing was recorded" "$(q "$B" "SELECT count(*) FROM rollcall.schema_migration")" $((6 + NDELTAS))

# ---- 3. one more indicator, in the .proto alone
say "building a scratch copy of the tree with one more indicator"
mkdir -p "$TMP/tree"
git ls-files -z | xargs -0 cp --parents -t "$TMP/tree" 2>/dev/null \
    || tar --exclude=./build --exclude=./var --exclude=./.git -cf - . | tar -C "$TMP/tree" -xf -
last=$(sed -n '/^message Indicators/,/^}/p' proto/rollcall.proto | sed -n 's/.*= \([0-9]*\);.*/\1/p' | sort -n | tail -1)
sed -i "/^message Indicators/,/^}/ s/^}/  int64 probe_indicator = $((last + 1));  \/\/ added by tests\/integration\/schema.sh\n}/" \
    "$TMP/tree/proto/rollcall.proto"
grep -q 'int64 probe_indicator' "$TMP/tree/proto/rollcall.proto" || die "could not add the field"
(cd "$TMP/tree" && make -j2 BUILD=build build/rollcall >"$TMP/build.log" 2>&1) || die "scratch build: $(tail -3 "$TMP/build.log")"
changed=$(cd "$TMP/tree" && for f in $(git -C "$OLDPWD" ls-files); do cmp -s "$OLDPWD/$f" "$f" || echo "$f"; done)
expect "the copy differs in the .proto alone" "$changed" "proto/rollcall.proto"
scratch_db probe; C=$(dsn_of probe)
"$TMP/tree/build/rollcall" migrate --dir "$TMP/tree/migrations" --dsn "$C" >"$TMP/m5.log" 2>&1 \
    || die "migrate with the new indicator: $(tail -2 "$TMP/m5.log")"
for t in latest_report aggregate v_unit_day; do
    expect "$t has probe_indicator" "$(q "$C" "SELECT count(*) FROM information_schema.columns
        WHERE table_schema = 'rollcall' AND table_name = '$t' AND column_name = 'probe_indicator'")" 1
done
# The recomputation sums it too: one village reporting 5 shows at every level.
q "$C" "INSERT INTO rollcall.unit (code, name, level, parent_code, rollup_parent, expected_children) VALUES
          ('13', 'P', 5, NULL, NULL, 1), ('130102', 'C', 3, '13', '13', 1),
          ('130102001', 'T', 2, '130102', '130102', 1), ('130102001001', 'V', 1, '130102001', '130102001', 0);
        INSERT INTO rollcall.latest_report (unit_code, period, level, kind, version, report_id, probe_indicator, confirmed)
          VALUES ('130102001001', '2026-01-05', 1, 1, rollcall.period_start_us('2026-01-05') + 1000,
                  gen_random_uuid(), 5, 2);
        SELECT rollcall.rebuild_day('2026-01-05')" >/dev/null || die "rebuild_day"
expect "rebuild_day sums the new indicator up to the province" "$(q "$C" "SELECT string_agg(level || '=' || probe_indicator, ' ' ORDER BY unit_code)
    FROM rollcall.v_unit_day WHERE period = '2026-01-05'")" "province=5 county=5 township=5 village=5"
q "$C" "SELECT rollcall.lock_parents(2::smallint, '{130102001}', '{2026-01-05}'); UPDATE rollcall.aggregate SET probe_indicator = 0;
        SELECT rollcall.refresh_level(2::smallint, '{130102001}', '{2026-01-05}', '{1}', '{}', '{}')" >/dev/null || die "refresh_level"
expect "refresh_townships sums it" "$(q "$C" "SELECT probe_indicator FROM rollcall.aggregate WHERE unit_code = '130102001'")" 5
if "$RC" migrate --dir "$TMP/tree/migrations" --dsn "$A" >"$TMP/m6.log" 2>&1; then
    fail "a rollcall built without the indicator accepted the .proto that has it"
else
    expect "a stale rollcall asks to rebuild" "$(grep -c 'rebuild' "$TMP/m6.log")" 1
fi
if "$TMP/tree/build/rollcall" migrate --dir "$TMP/tree/migrations" --dsn "$A" >"$TMP/m7.log" 2>&1; then
    fail "a database without the new column was accepted"
else
    expect "a database created before the indicator is named as such" "$(grep -c 'probe_indicator has no column' "$TMP/m7.log")" 1
fi

finish
