/* The dry run's apply step: the reports a replay would send are staged in
 * the rollup's own stage table and applied with the rollup's own batch
 * statements (rc_rollup_sql: archive, duplicates, latest-wins upsert) and
 * its parent refresh (rollcall.refresh_level, townships, counties,
 * provinces), inside the dry run's transaction, which the
 * caller rolls back.  What is ours is only the marshalling of a report into
 * a stage row, as the rollup's consumer would have written it. */
#include "replay.h"
#include "rc_rollup_sql.h"
#include "rc_sql.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The stage columns this file fills, by name (the order of the rollup's
 * binary COPY is its own business); `late` is derived after the COPY. */
static char *copy_sql(void)
{
    size_t cap = 4096, len = 0;
    char *s = malloc(cap);

    if (!s)
        return NULL;
    len += (size_t)snprintf(s + len, cap - len,
                            "COPY rollup_stage (report_id, unit_code, level, period, kind, "
                            "version, received_at, submitted_at, submitter, source_topic, "
                            "source_partition, source_offset, payload, late, zone_status, extra");
    for (size_t i = 0; i < rc_indicator_count() && len < cap; i++)
        len += (size_t)snprintf(s + len, cap - len, ", %s", rc_indicator_name(i));
    if (len < cap)
        len += (size_t)snprintf(s + len, cap - len, ") FROM STDIN");
    if (len >= cap) {
        free(s);
        return NULL;
    }
    return s;
}

int replay_apply_stage_begin(rc_pg *pg, char *errbuf, size_t errlen)
{
    static bool built;
    char *sql;
    int rc;

    if (!built && rc_rollup_sql_init(errbuf, errlen) < 0)
        return -1;
    built = true;
    if (rc_pg_command(pg, rc_rollup_sql_stage_create(), errbuf, errlen) < 0 ||
        rc_pg_command(pg, "TRUNCATE rollup_stage", errbuf, errlen) < 0)
        return -1;
    sql = copy_sql();
    if (!sql) {
        snprintf(errbuf, errlen, "out of memory");
        return -1;
    }
    rc = rc_pg_copy_begin(pg, sql, errbuf, errlen);
    free(sql);
    return rc;
}

/* Appends a COPY text field (escaped) and its separator. */
static void put(char *row, size_t *len, size_t cap, const char *s, char sep)
{
    if (!s) {
        *len += (size_t)snprintf(row + *len, cap - *len, "\\N");
    } else {
        size_t n = rc_pg_copy_escape(row + *len, cap - *len, s);
        if (n != (size_t)-1)
            *len += n;
    }
    row[(*len)++] = sep;
}

int replay_apply_stage_row(rc_pg *pg, const Rollcall__Report *r, const char *topic,
                           const uint8_t *payload, size_t paylen, char *errbuf, size_t errlen)
{
    uint8_t *packed = NULL;
    char *extra = NULL, *row = NULL, num[64];
    json_t *ej = json_object();
    size_t cap, len = 0;
    int rc = -1;

    if (!payload) {
        packed = rc_report_pack(r, &paylen);
        payload = packed;
    }
    for (size_t i = 0; ej && i < r->n_extra; i++)
        json_object_set_new(ej, r->extra[i]->key, json_integer(r->extra[i]->value));
    extra = ej ? json_dumps(ej, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    if (!payload || !extra)
        goto oom;
    cap = 2 * paylen + 2 * strlen(extra) + 4 * strlen(r->unit_code) + 2 * strlen(r->report_id) +
          2 * strlen(r->period) + 2 * (r->submitter ? strlen(r->submitter) : 0) + 1024 +
          rc_indicator_count() * 24;
    row = malloc(cap);
    if (!row)
        goto oom;
    put(row, &len, cap, r->report_id, '\t');
    put(row, &len, cap, r->unit_code, '\t');
    len += (size_t)snprintf(row + len, cap - len, "%d\t", (int)r->level);
    put(row, &len, cap, r->period, '\t');
    len += (size_t)snprintf(row + len, cap - len, "%d\t%lld\t", (int)r->kind, (long long)r->version);
    /* As the rollup's consumer: received_at, else the message's time (now). */
    rc_time_format_rfc3339(r->received_at > 0 ? r->received_at : rc_now_us(), num);
    put(row, &len, cap, num, '\t');
    if (r->submitted_at > 0)
        rc_time_format_rfc3339(r->submitted_at, num);
    put(row, &len, cap, r->submitted_at > 0 ? num : NULL, '\t');
    put(row, &len, cap, r->submitter && r->submitter[0] ? r->submitter : NULL, '\t');
    put(row, &len, cap, topic, '\t');
    /* A new message: no partition or offset of the archive's. */
    len += (size_t)snprintf(row + len, cap - len, "-1\t-1\t\\\\x");
    for (size_t i = 0; i < paylen; i++)
        len += (size_t)snprintf(row + len, cap - len, "%02x", payload[i]);
    len += (size_t)snprintf(row + len, cap - len, "\tf\t%d\t", (int)r->zone_status);
    put(row, &len, cap, extra, '\t');
    for (size_t i = 0; i < rc_indicator_count(); i++)
        len += (size_t)snprintf(row + len, cap - len, "%lld%c",
                                (long long)rc_indicator_get(r->indicators, i),
                                i + 1 < rc_indicator_count() ? '\t' : '\n');
    rc = rc_pg_copy_put(pg, row, len, errbuf, errlen);
    goto done;
oom:
    snprintf(errbuf, errlen, "out of memory");
done:
    json_decref(ej);
    free(extra);
    free(row);
    free(packed);
    return rc;
}

/* The parents the rollup refreshes for a batch, as array literals for
 * rollcall.refresh_level: live = the county (province) of every DAILY/ZERO
 * village row; filing = the county (province) of every filed township
 * (county) report; villages = the registry's villages beneath each. */
static const char parents_sql[] =
    "WITH d AS (SELECT DISTINCT level, unit_code, period FROM rollup_stage WHERE kind IN (1, 2)),\n"
    "live AS (SELECT DISTINCT left(unit_code, $1::int) AS code, period FROM d WHERE level = 1),\n"
    "filing AS (SELECT DISTINCT left(unit_code, $1::int) AS code, period FROM d\n"
    "            WHERE level = $2::int),\n"
    "alls AS (SELECT code, period FROM live UNION SELECT code, period FROM filing)\n"
    "SELECT coalesce(array_agg(a.code ORDER BY a.code, a.period), '{}'),\n"
    "       coalesce(array_agg(a.period ORDER BY a.code, a.period), '{}'),\n"
    "       coalesce(array_agg((SELECT count(*) FROM rollcall.unit w\n"
    "                           WHERE w.level = 1 AND w.code LIKE a.code || '%')\n"
    "                          ORDER BY a.code, a.period), '{}'),\n"
    "       (SELECT coalesce(array_agg(code ORDER BY code, period), '{}') FROM filing),\n"
    "       (SELECT coalesce(array_agg(period ORDER BY code, period), '{}') FROM filing)\n"
    "  FROM alls a";

static int refresh_level(rc_pg *pg, int level, char *errbuf, size_t errlen)
{
    char digits[4], child[4], lv[4];
    const char *p1[2] = {digits, child};
    PGresult *res;
    int rc = -1;

    snprintf(digits, sizeof digits, "%d", level == 2 ? 9 : level == 3 ? 6 : 2);
    snprintf(child, sizeof child, "%d", level == 2 ? 1 : level == 3 ? 2 : 3);
    snprintf(lv, sizeof lv, "%d", level);
    res = rc_pg_exec_params(pg, parents_sql, 2, p1, errbuf, errlen);
    if (!res)
        return -1;
    if (strcmp(PQgetvalue(res, 0, 0), "{}") != 0) {
        const char *p2[6] = {lv, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
                             PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3), PQgetvalue(res, 0, 4)};
        if (rc_sql_exec_count(pg,
                              "SELECT rollcall.refresh_level($1::smallint, $2::text[], $3::date[], "
                              "$4::int[], $5::text[], $6::date[])",
                              6, p2, errbuf, errlen) < 0)
            goto done;
    }
    rc = 0;
done:
    PQclear(res);
    return rc;
}

int replay_apply_staged(rc_pg *pg, char *errbuf, size_t errlen)
{
    long rows, archived, more, repeated;

    /* The stage's late flag, as the consumer sets it: a DAILY/ZERO report
     * received after its level's deadline on the period date. */
    if (rc_pg_command(pg,
                      "UPDATE rollup_stage s SET late = s.kind IN (1, 2) AND s.received_at > "
                      "  ((s.period + p.deadline) AT TIME ZONE 'Asia/Shanghai') "
                      "  FROM rollcall.level_policy p WHERE p.level = s.level",
                      errbuf, errlen) < 0)
        return -1;
    /* rows: those the archive insert takes (all but URGENT, archived apart
     * as the service does) */
    if ((rows = rc_sql_exec_count(pg, "SELECT count(*) FROM rollup_stage WHERE kind <> 3", 0, NULL,
                                  errbuf, errlen)) < 0)
        return -1;
    /* rep, as the consumer marks it: a DAILY/ZERO row whose (unit, period)
     * came earlier in the stage. */
    if ((repeated = rc_sql_exec_count(pg,
                                      "UPDATE rollup_stage s SET rep = true WHERE kind IN (1, 2) AND EXISTS "
                                      "(SELECT 1 FROM rollup_stage t WHERE t.kind IN (1, 2) "
                                      "AND t.unit_code = s.unit_code AND t.period = s.period "
                                      "AND t.ctid < s.ctid)",
                                      0, NULL, errbuf, errlen)) < 0)
        return -1;
    /* Every first revision archived before (a replay) or none: all rows
     * are checked or none; rollup_known is the service's economy for the
     * mixed case and a replay does without it (limit 0). */
    char firsts[24];
    snprintf(firsts, sizeof firsts, "%ld", rows - repeated);
    const char *params[] = {firsts, "0"};
    if ((archived = rc_sql_exec_count(pg, rc_rollup_sql_archive_insert(false), 2, params, errbuf,
                                      errlen)) < 0 ||
        (more = rc_sql_exec_count(pg, rc_rollup_sql_archive_insert(true), 0, NULL, errbuf, errlen)) < 0 ||
        rc_sql_exec_count(pg,
                          rc_rollup_sql_latest_upsert(false,
                                                      rc_rollup_sql_check_for(rows - repeated, archived, 0)),
                          0, NULL, errbuf, errlen) < 0 ||
        (repeated > 0 &&
         rc_sql_exec_count(pg,
                           rc_rollup_sql_latest_upsert(true,
                                                       rc_rollup_sql_check_for(rows, archived + more, 0)),
                           0, NULL, errbuf, errlen) < 0) ||
        rc_sql_exec_count(pg, rc_rollup_sql_urgent_archive(), 0, NULL, errbuf, errlen) < 0)
        return -1;
    if (refresh_level(pg, 2, errbuf, errlen) < 0 || refresh_level(pg, 3, errbuf, errlen) < 0 ||
        refresh_level(pg, 5, errbuf, errlen) < 0)
        return -1;
    return 0;
}
