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
 * report (columns: see lib/rollup_sql.c); and rollup_known (report_id),
 * emptied at every commit.  Two statements: run with rc_pg_command. */
const char *rc_rollup_sql_stage_create(void);
/* COPY rollup_stage (...) FROM STDIN (FORMAT binary), in the column order
 * the rollup writes. */
const char *rc_rollup_sql_stage_copy(void);
/* Archives the staged reports but the URGENT ones (ON CONFLICT (report_id)
 * DO NOTHING) and returns how many rows it archived.  With repeats true,
 * the rows with rep = true; with repeats false the others, taking two
 * parameters: $1 how many of those there are, $2 a limit.  When some of
 * them but not all met a report_id archived before, and no more than $2,
 * their report_ids are kept in rollup_known until the transaction ends,
 * for RC_CHECK_KNOWN. */
const char *rc_rollup_sql_archive_insert(bool repeats);

/* An URGENT report comes twice: on reports.village (the day's record) and on
 * reports.urgent (the fast path, its own transactions).  Both take this
 * transaction lock on its report_id before writing any row of it, so
 * neither waits on rows the other holds for long, and they never deadlock
 * (each took the report's archive row and waited for its urgent_report row
 * in the other order).  id: an SQL expression of the report_id. */
#define RC_URGENT_LOCK(id) "pg_advisory_xact_lock(7501, hashtext((" id ")::uuid::text))"

/* Archives the staged URGENT rows (kind 3, left out of
 * rc_rollup_sql_archive_insert), each after RC_URGENT_LOCK.  Run at the
 * end of the batch, just before the urgent_report rows and the commit. */
const char *rc_rollup_sql_urgent_archive(void);

/* Which staged rows the latest-wins upsert checks against the archive:
 * such a row applies only if the archive holds its report_id for the same
 * unit, period, kind and version (a report_id reused for other content
 * changes nothing), and (repeats false) it is left out beforehand when the
 * stored report already beats it.  A row the archive insert just archived
 * needs no check. */
typedef enum rc_archive_check {
    RC_CHECK_NONE,              /* the archive insert archived every row */
    RC_CHECK_KNOWN,             /* the rows whose report_id is in rollup_known */
    RC_CHECK_ALL,               /* every row */
} rc_archive_check;

/* The check a set of rows needs after its archive insert: rows staged, how
 * many the insert archived, and the limit ($2) it was given — the same rule
 * as the insert's own for filling rollup_known, so RC_CHECK_KNOWN comes
 * only when it did (a limit of 0 never gives it). */
rc_archive_check rc_rollup_sql_check_for(long rows, long archived, long known_max);

/* The latest-wins upsert of the staged DAILY/ZERO rows: with repeats false,
 * the rows whose (unit, period) came first in the stage (rep = false); with
 * repeats true, the later ones (the newest per key wins, with the earliest
 * receive time; RC_CHECK_KNOWN counts as RC_CHECK_ALL).  Run the first,
 * then the second when rep rows exist. */
const char *rc_rollup_sql_latest_upsert(bool repeats, rc_archive_check check);
/* The aggregates of ($1 codes, $2 periods) changed in this transaction. */
const char *rc_rollup_sql_changed_aggregates(void);

#endif
