#!/usr/bin/env bash
# The proof of the live aggregates: recomputes one day from scratch
# (rollcall.rebuild_day, inside a transaction that is rolled back) and counts
# the aggregate rows that differ from what the rollup had kept, in any column
# but updated_at and the filing columns (which rebuild_day leaves to the
# rollup).  Prints "recompute drift: N rows (M aggregates)"; exits 1 when N > 0.
#
#   scripts/drift.sh DSN YYYY-MM-DD
set -euo pipefail
dsn=${1:?usage: drift.sh DSN YYYY-MM-DD}
day=${2:?usage: drift.sh DSN YYYY-MM-DD}
[[ $day =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}$ ]] || { echo "drift: not a date: $day" >&2; exit 2; }
level=${3:-}
[[ $level =~ ^[235]?$ ]] || { echo "drift: not a level: $level" >&2; exit 2; }
rows="a.period = '$day'${level:+ AND a.level = $level}"
out=$(psql -qAt -v ON_ERROR_STOP=1 "$dsn" <<SQL
BEGIN;
CREATE TEMP TABLE kept ON COMMIT DROP AS
  SELECT to_jsonb(a) - 'updated_at' - 'filed_children' - 'filed_late_children' - 'unfiled_children' AS j
    FROM rollcall.aggregate a WHERE $rows;
SELECT count(*) FROM kept;
SELECT rollcall.rebuild_day('$day') >= 0;
SELECT count(*) FROM (
  (SELECT j FROM kept
   EXCEPT ALL
   SELECT to_jsonb(a) - 'updated_at' - 'filed_children' - 'filed_late_children' - 'unfiled_children'
     FROM rollcall.aggregate a WHERE $rows)
  UNION ALL
  (SELECT to_jsonb(a) - 'updated_at' - 'filed_children' - 'filed_late_children' - 'unfiled_children'
     FROM rollcall.aggregate a WHERE $rows
   EXCEPT ALL
   SELECT j FROM kept)) d;
ROLLBACK;
SQL
)
n=$(sed -n 1p <<<"$out"); drift=$(sed -n 3p <<<"$out")
echo "recompute drift: $drift rows ($n aggregates)"
[ "$drift" = 0 ]
