#!/usr/bin/env bash
# The PostgreSQL floor of a national day, measured now on this machine: the
# day's rows as `rollcall loadgen --dry-run --seed SEED` would send them (one
# per village, 32 indicator columns) loaded with psql's \copy into a scratch
# table, then three GROUP BY rollups (villages -> townships -> counties ->
# provinces, each level from the one below, as the pipeline sums them).
# Prints one line: copy seconds, GROUP BY seconds, total seconds, rows.
#
#   bench/lib/floor.sh CONNINFO SEED OUTDIR
set -euo pipefail
cd "$(dirname "$0")/../.."
dsn=$1 seed=$2 out=$3
RC=${BUILD:-build}/rollcall
PSQL=(psql -X -q -A -t -v ON_ERROR_STOP=1 "$dsn")
SAY_AS=floor
. scripts/lib.sh

mkdir -p "$out"
"$RC" loadgen --dry-run --seed "$seed" --dsn "$dsn" --floor-csv "$out/floor.csv" --quiet >/dev/null
cols=$("${PSQL[@]}" -c "SELECT string_agg(column_name, ',' ORDER BY ordinal_position)
                          FROM information_schema.columns
                         WHERE table_schema = 'rollcall' AND table_name = 'latest_report'
                           AND data_type = 'bigint' AND column_name <> 'version'")
sums=$(echo "$cols" | tr ',' '\n' | sed 's/.*/sum(&) AS &/' | paste -sd, -)
coldefs=$(echo "$cols" | tr ',' '\n' | sed 's/.*/& bigint/' | paste -sd, -)
drop="DROP TABLE IF EXISTS bench_floor, bench_floor_t, bench_floor_c, bench_floor_p"
"${PSQL[@]}" -c "$drop; CREATE TABLE bench_floor (code text, $coldefs)" 2>/dev/null
t0=$(now)
"${PSQL[@]}" -c "\\copy bench_floor FROM '$out/floor.csv' WITH (FORMAT csv)"
t1=$(now)
"${PSQL[@]}" -c "CREATE TABLE bench_floor_t AS SELECT left(code, 9) AS code, $sums FROM bench_floor GROUP BY 1"
"${PSQL[@]}" -c "CREATE TABLE bench_floor_c AS SELECT left(code, 6) AS code, $sums FROM bench_floor_t GROUP BY 1"
"${PSQL[@]}" -c "CREATE TABLE bench_floor_p AS SELECT left(code, 2) AS code, $sums FROM bench_floor_c GROUP BY 1"
t2=$(now)
rows=$("${PSQL[@]}" -c "SELECT count(*) FROM bench_floor")
"${PSQL[@]}" -c "$drop"
echo "$(secs "$t0" "$t1") $(secs "$t1" "$t2") $(secs "$t0" "$t2") $rows"
