#!/usr/bin/env bash
# Deletes one reporting day of one subtree from every rollcall table keyed by
# (unit_code, period), and that subtree's province row, so a simulated day
# can be played again from a clean slate.  For development stacks only.
#
#   deploy/clear-day.sh UNIT_CODE YYYY-MM-DD      (needs ROLLCALL_PG_DSN)
set -euo pipefail
unit=${1:?usage: clear-day.sh UNIT_CODE YYYY-MM-DD}
period=${2:?usage: clear-day.sh UNIT_CODE YYYY-MM-DD}
[[ $unit =~ ^[0-9]{2,12}$ ]] || { echo "clear-day: not a unit code: $unit" >&2; exit 2; }
[[ $period =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}$ ]] || { echo "clear-day: not a date: $period" >&2; exit 2; }
psql -qAt -v ON_ERROR_STOP=1 "${ROLLCALL_PG_DSN:?ROLLCALL_PG_DSN is not set}" <<SQL
DO \$\$
DECLARE t text;
BEGIN
  FOR t IN SELECT c.table_name FROM information_schema.columns c
             JOIN information_schema.tables b USING (table_schema, table_name)
            WHERE c.table_schema = 'rollcall' AND b.table_type = 'BASE TABLE' AND c.column_name = 'period'
              AND EXISTS (SELECT 1 FROM information_schema.columns u WHERE u.table_schema = 'rollcall'
                           AND u.table_name = c.table_name AND u.column_name = 'unit_code')
  LOOP
    EXECUTE format('DELETE FROM rollcall.%I WHERE period = %L AND (unit_code LIKE %L OR unit_code = %L)',
                   t, '$period', '$unit%', '${unit:0:2}');
  END LOOP;
END \$\$;
SQL
