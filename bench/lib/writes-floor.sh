#!/usr/bin/env bash
# The least PostgreSQL work the rollup's writes of a day can cost, measured
# now on this machine: the day's village report revisions, as the rollup
# stored them, inserted with plain INSERT ... SELECT into empty copies of
# rollcall.report_archive and rollcall.latest_report (same columns, indexes
# and constraints), one statement each, on one connection.  No conflict
# handling, no latest-wins, no aggregates, no Kafka: every real rollup does
# more than this.  Beside bench/lib/floor.sh it shows how much of a national
# day's time the archive and the latest reports alone take.
# Prints one line: archive seconds, latest seconds, total seconds, rows.
#
#   bench/lib/writes-floor.sh CONNINFO PERIOD
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 CONNINFO PERIOD" >&2; exit 2; }
dsn=$1 period=$2
PSQL=(psql -X -q -A -t -v ON_ERROR_STOP=1 "$dsn")
SAY_AS=writes-floor
. "$(dirname "$0")/../../scripts/lib.sh"

drop="DROP TABLE IF EXISTS bench_wf_archive_src, bench_wf_latest_src, bench_wf_archive, bench_wf_latest"
"${PSQL[@]}" -c "$drop" 2>/dev/null
# The sources are scratch copies (not timed), so the timed statements read
# what a staging table would hold and write nothing else.
"${PSQL[@]}" -c "CREATE UNLOGGED TABLE bench_wf_archive_src AS SELECT * FROM rollcall.report_archive
                  WHERE period = '$period' AND level = 1"
"${PSQL[@]}" -c "CREATE UNLOGGED TABLE bench_wf_latest_src AS SELECT * FROM rollcall.latest_report
                  WHERE period = '$period' AND level = 1"
"${PSQL[@]}" -c "CREATE TABLE bench_wf_archive (LIKE rollcall.report_archive INCLUDING ALL)"
"${PSQL[@]}" -c "CREATE TABLE bench_wf_latest (LIKE rollcall.latest_report INCLUDING ALL)"
rows=$("${PSQL[@]}" -c "SELECT count(*) FROM bench_wf_archive_src")
[ "$rows" -gt 0 ] || { echo "writes-floor: no village reports stored for $period" >&2; "${PSQL[@]}" -c "$drop"; exit 1; }
t0=$(now)
"${PSQL[@]}" -c "INSERT INTO bench_wf_archive SELECT * FROM bench_wf_archive_src"
t1=$(now)
"${PSQL[@]}" -c "INSERT INTO bench_wf_latest SELECT * FROM bench_wf_latest_src"
t2=$(now)
"${PSQL[@]}" -c "$drop"
echo "$(secs "$t0" "$t1") $(secs "$t1" "$t2") $(secs "$t0" "$t2") $rows"
