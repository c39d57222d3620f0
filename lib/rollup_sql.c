/* rc_rollup_sql — see rc_rollup_sql.h.  The statements of the rollup's hot
 * path, built once at start from the indicator list (rc_indicator_name) so
 * they always match proto/rollcall.proto and the schema (migrations/001_baseline.sql
 * expands its indicator columns from the same .proto). */
#include "rc_rollup_sql.h"
#include "rc_buf.h"
#include "rc_report.h"

#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *stage_create, *stage_copy, *archive_insert[2], *urgent_archive, *latest[2][3],
    *changed_aggs;

/* ", name" for every indicator, with an optional prefix and suffix. */
static void sb_indicators(rc_buf *b, const char *prefix, const char *suffix)
{
    for (size_t i = 0; i < rc_indicator_count(); i++)
        rc_buf_add(b, ", %s%s%s", prefix, rc_indicator_name(i), suffix);
}

/* A staged row whose report_id the archive holds for other content (a
 * report_id reused for another unit, period, kind or version) is a
 * duplicate and changes nothing.  After the archive insert every staged
 * report_id is archived — this row or the one that came first — so the
 * check is "the archived row is this one".  The same revision arriving
 * again in a new message (an operator's replay from the archive, a producer
 * retry) passes and is applied again: the upsert is latest-wins, so that
 * changes nothing unless latest_report lost it, and then restores it. */
static const char same_as_archived[] =
    "EXISTS (SELECT 1 FROM rollcall.report_archive a WHERE a.report_id = s.report_id "
    "AND (a.unit_code, a.period, a.kind, a.version) = (s.unit_code, s.period, s.kind, s.version))";

/* The latest-wins upsert.  A revision replaces the stored one only when it
 * is newer: larger version, or equal version and larger report_id
 * (byte-wise: uuid comparison is memcmp).  first_received_at keeps the
 * earliest receive time of any accepted revision and late follows it: late
 * is monotone in the receive time, so late(min(a, b)) = late(a) AND late(b). */
static char *build_latest(bool repeated, rc_archive_check check)
{
    rc_buf b = RC_BUF_INIT;
    const char *w = "(excluded.version, excluded.report_id) > (l.version, l.report_id)";

    rc_buf_add(&b, "INSERT INTO rollcall.latest_report AS l (unit_code, period, level, kind, version, "
               "report_id, received_at, late, zone_status");
    sb_indicators(&b, "", "");
    rc_buf_add(&b, ", extra, first_received_at)\n");
    if (!repeated) {
        /* Rows whose report_id was archived before (a replay, a
         * re-delivery) are checked against the archive, and those the
         * stored report already beats (the WHERE below would refuse them)
         * stay out first: ON CONFLICT DO UPDATE locks the row it meets even
         * when it then changes nothing, and a replay is all such rows.
         * OFFSET 0: the archive is probed only for the rows that survive
         * (on a replay, none).  A revision new to the archive needs
         * neither: the stored row can beat it only when versions came out
         * of order, rarely, and the two probes per row were half of a
         * national day's upsert. */
        const char *known = check == RC_CHECK_ALL     ? "true"
                            : check == RC_CHECK_KNOWN ? "s.report_id IN (SELECT report_id FROM "
                                                        "rollup_known)"
                                                      : NULL;
        rc_buf_add(&b, "SELECT unit_code, period, level, kind, version, report_id, received_at, late, "
                   "zone_status");
        sb_indicators(&b, "", "");
        if (known)
            rc_buf_add(&b, ", extra, received_at FROM (SELECT * FROM rollup_stage s WHERE kind IN (1, 2) "
                       "AND NOT rep AND (NOT %s OR NOT EXISTS (SELECT 1 FROM rollcall.latest_report x "
                       "WHERE x.unit_code = s.unit_code AND x.period = s.period "
                       "AND (x.version, x.report_id) >= (s.version, s.report_id) "
                       "AND x.first_received_at <= s.received_at)) OFFSET 0) s "
                       "WHERE NOT %s OR %s\n",
                       known, known, same_as_archived);
        else
            rc_buf_add(&b, ", extra, received_at FROM rollup_stage s WHERE kind IN (1, 2) AND NOT rep\n");
    } else {
        /* The later revisions of keys seen earlier in the batch (rep; the
         * first one went in with the bulk): the newest of them meets the
         * stored row, carrying their earliest receive time. */
        rc_buf_add(&b, "SELECT DISTINCT ON (unit_code, period) unit_code, period, level, kind, version, "
                   "report_id, received_at, bool_and(late) OVER w, zone_status");
        sb_indicators(&b, "", "");
        rc_buf_add(&b, ", extra, min(received_at) OVER w FROM rollup_stage s "
                   "WHERE kind IN (1, 2) AND rep %s%s "
                   "WINDOW w AS (PARTITION BY unit_code, period) "
                   "ORDER BY unit_code, period, version DESC, report_id DESC\n",
                   check ? "AND " : "", check ? same_as_archived : "");
    }
    rc_buf_add(&b, "ON CONFLICT (unit_code, period) DO UPDATE SET\n");
    const char *plain[] = {"level", "kind", "version", "report_id", "received_at", "zone_status",
                           "extra"};
    for (size_t i = 0; i < sizeof plain / sizeof *plain; i++)
        rc_buf_add(&b, "  %s = CASE WHEN %s THEN excluded.%s ELSE l.%s END,\n", plain[i], w, plain[i],
                   plain[i]);
    for (size_t i = 0; i < rc_indicator_count(); i++) {
        const char *n = rc_indicator_name(i);
        rc_buf_add(&b, "  %s = CASE WHEN %s THEN excluded.%s ELSE l.%s END,\n", n, w, n, n);
    }
    rc_buf_add(&b, "  first_received_at = least(l.first_received_at, excluded.first_received_at),\n"
               "  late = l.late AND excluded.late\n"
               "WHERE %s OR excluded.first_received_at < l.first_received_at", w);
    return rc_buf_take(&b);
}

int rc_rollup_sql_init(char *errbuf, size_t errlen)
{
    rc_buf b = RC_BUF_INIT;

    rc_buf_add(&b, "CREATE TEMP TABLE IF NOT EXISTS rollup_stage (report_id uuid NOT NULL, "
               "unit_code text NOT NULL, level smallint NOT NULL, period date NOT NULL, "
               "kind smallint NOT NULL, version bigint NOT NULL, received_at timestamptz, "
               "submitted_at timestamptz, submitter text, source_topic text NOT NULL, "
               "source_partition int NOT NULL, source_offset bigint NOT NULL, "
               "payload bytea NOT NULL, late boolean NOT NULL, zone_status smallint NOT NULL");
    sb_indicators(&b, "", " bigint NOT NULL");
    rc_buf_add(&b, ", extra jsonb NOT NULL, rep boolean NOT NULL DEFAULT false); "
               "CREATE TEMP TABLE IF NOT EXISTS rollup_known (report_id uuid NOT NULL) "
               "ON COMMIT DELETE ROWS");
    stage_create = rc_buf_take(&b);

    memset(&b, 0, sizeof b);
    rc_buf_add(&b, "COPY rollup_stage (report_id, unit_code, level, period, kind, version, received_at, "
               "submitted_at, submitter, source_topic, source_partition, source_offset, payload, "
               "late, zone_status");
    sb_indicators(&b, "", "");
    rc_buf_add(&b, ", extra, rep) FROM STDIN (FORMAT binary)");
    stage_copy = rc_buf_take(&b);

    static const char archive_cols[] =
        "report_id, unit_code, level, period, kind, version, received_at, submitted_at, "
        "submitter, source_topic, source_partition, source_offset, payload";
    memset(&b, 0, sizeof b);
    /* The first revisions of keys (rep = false).  When some of them but not
     * all were archived before and no more than $2, their report_ids go to
     * rollup_known (EXCEPT ALL: a hash or a sort, never a probe per row),
     * so that only they are checked (RC_CHECK_KNOWN).  Returns how many
     * rows were archived. */
    rc_buf_add(&b, "WITH ins AS (INSERT INTO rollcall.report_archive (%s) SELECT %s FROM rollup_stage "
               "WHERE NOT rep AND kind <> 3 ON CONFLICT (report_id) DO NOTHING RETURNING report_id), "
               "n AS (SELECT count(*) AS n FROM ins), "
               "go AS (SELECT n > 0 AND $1::bigint - n BETWEEN 1 AND $2::bigint AS go FROM n), "
               "k AS (INSERT INTO rollup_known (SELECT report_id FROM rollup_stage WHERE NOT rep "
               "AND kind <> 3 AND (SELECT go FROM go) "
               "EXCEPT ALL SELECT report_id FROM ins WHERE (SELECT go FROM go))) "
               "SELECT n FROM n",
               archive_cols, archive_cols);
    archive_insert[0] = rc_buf_take(&b);
    memset(&b, 0, sizeof b);
    rc_buf_add(&b, "INSERT INTO rollcall.report_archive (%s) SELECT %s FROM rollup_stage WHERE rep "
               "ON CONFLICT (report_id) DO NOTHING",
               archive_cols, archive_cols);
    archive_insert[1] = rc_buf_take(&b);
    memset(&b, 0, sizeof b);
    /* The locks first (InitPlan), in one order, then the rows. */
    rc_buf_add(&b, "WITH lk AS (SELECT " RC_URGENT_LOCK("k.report_id") " FROM (SELECT report_id "
               "FROM rollup_stage WHERE kind = 3 ORDER BY hashtext(report_id::text)) k) "
               "INSERT INTO rollcall.report_archive (%s) SELECT %s FROM rollup_stage "
               "WHERE kind = 3 AND (SELECT count(*) FROM lk) >= 0 "
               "ON CONFLICT (report_id) DO NOTHING",
               archive_cols, archive_cols);
    urgent_archive = rc_buf_take(&b);

    for (int r = 0; r < 2; r++)
        for (int c = 0; c < 3; c++)
            latest[r][c] = build_latest(r, (rc_archive_check)c);

    memset(&b, 0, sizeof b);
    rc_buf_add(&b, "SELECT nextval('rollcall.outbox_id_seq'), a.unit_code, a.period::text, a.level, "
               "a.version, a.expected_children, a.reported_children, a.zero_children, "
               "a.late_children, a.missing_children, a.zone_normal, a.zone_prevention, "
               "a.zone_control, a.zone_lockdown, a.extra");
    sb_indicators(&b, "a.", "");
    /* The batch's parents drive (LATERAL; OFFSET 0 keeps the planner from
     * flattening it and putting a scan of rollcall.aggregate outside): one
     * index probe each, whatever the statistics say. */
    rc_buf_add(&b, " FROM unnest($1::text[], $2::date[]) AS p(code, period) "
               "CROSS JOIN LATERAL (SELECT * FROM rollcall.aggregate x WHERE x.unit_code = p.code "
               "AND x.period = p.period AND x.updated_at = now() OFFSET 0) a");
    changed_aggs = rc_buf_take(&b);

    bool built = stage_create && stage_copy && archive_insert[0] && archive_insert[1] &&
                 urgent_archive && changed_aggs;
    for (int r = 0; r < 2; r++)
        for (int c = 0; c < 3; c++)
            built = built && latest[r][c];
    if (!built) {
        snprintf(errbuf, errlen, "out of memory building SQL");
        return -1;
    }
    return 0;
}

const char *rc_rollup_sql_stage_create(void) { return stage_create; }
const char *rc_rollup_sql_stage_copy(void) { return stage_copy; }
const char *rc_rollup_sql_archive_insert(bool repeats) { return archive_insert[repeats]; }
const char *rc_rollup_sql_urgent_archive(void) { return urgent_archive; }
rc_archive_check rc_rollup_sql_check_for(long rows, long archived, long known_max)
{
    if (archived >= rows)
        return RC_CHECK_NONE;
    return archived > 0 && rows - archived <= known_max ? RC_CHECK_KNOWN : RC_CHECK_ALL;
}

const char *rc_rollup_sql_latest_upsert(bool repeats, rc_archive_check check)
{
    return latest[repeats][check];
}
const char *rc_rollup_sql_changed_aggregates(void) { return changed_aggs; }
