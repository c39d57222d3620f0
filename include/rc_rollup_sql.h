/* rc_rollup_sql — the statements the rollup runs for every batch: the
 * staging table, the archive insert, the latest-wins upsert into rollcall.latest_report and the selection of changed
 * aggregates.  Built once from the
 * indicator list.  Shared by rollcall-rollup and `rollcall replay --dry-run`,
 * which applies staged reports with exactly these statements inside a
 * transaction it rolls back, so a dry run cannot drift from the service.
 * The township, county and province refresh is SQL too:
 * rollcall.refresh_level() of migration 003. */
#ifndef RC_ROLLUP_SQL_H
#define RC_ROLLUP_SQL_H

#include <stdbool.h>
#include <stddef.h>

/* Builds the statement texts.  Returns 0, or -1 with errbuf filled (out of
 * memory).  Call once before the getters; the texts live until exit. */
int rc_rollup_sql_init(char *errbuf, size_t errlen);

/* CREATE TEMP TABLE IF NOT EXISTS rollup_stage (...): one row per consumed
 * report (columns: see lib/rollup_sql.c). */
const char *rc_rollup_sql_stage_create(void);
/* COPY rollup_stage (...) FROM STDIN (FORMAT binary), in the column order
 * the rollup writes. */
const char *rc_rollup_sql_stage_copy(void);
/* Archives the staged reports (ON CONFLICT (report_id) DO NOTHING). */
const char *rc_rollup_sql_archive_insert(void);
/* The latest-wins upsert of the staged DAILY/ZERO rows: with repeats false,
 * the rows whose (unit, period) came first in the stage (rep = false); with
 * repeats true, the later ones (the newest per key wins, with the earliest
 * receive time).  Run the first, then the second when rep rows exist.
 * With check_archive, a row applies only if the archive holds its
 * report_id for the same unit, period, kind and version — a report_id
 * reused for other content changes nothing.  Needed whenever the archive
 * insert did not insert every staged row; without a conflict there is
 * nothing to check. */
const char *rc_rollup_sql_latest_upsert(bool repeats, bool check_archive);
/* The aggregates of ($1 codes, $2 periods) changed in this transaction. */
const char *rc_rollup_sql_changed_aggregates(void);

#endif
