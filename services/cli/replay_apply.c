/* The dry run's apply step: the staged reports go through the statements the
 * rollup runs for a batch, inside the dry run's transaction (rolled back by
 * the caller).  The aggregates are the rollup's own SQL (migration 003's
 * triggers on latest_report and its lock_parents / refresh_parents /
 * refresh_filing functions), so the dry run cannot drift from the service. */
#include "replay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Latest wins per (unit, period) over DAILY/ZERO reports (PIPELINE.md):
 * larger version, then larger report_id; first_received_at keeps the
 * earliest receive time, and late is derived from it and the level's
 * deadline.  Built once with the indicator columns of the proto. */
static char *latest_upsert_sql(void)
{
    size_t cap = 32768, len = 0;
    char *s = malloc(cap);
    size_t n = rc_indicator_count();

    if (!s)
        return NULL;
#define ADD(...) (len += (size_t)snprintf(s + len, cap - len, __VA_ARGS__))
    ADD("WITH w AS (\n"
        "  SELECT DISTINCT ON (unit_code, period) s.*,\n"
        "         min(received_at) OVER (PARTITION BY unit_code, period) AS first_rx\n"
        "    FROM replay_stage s\n"
        "   WHERE s.kind IN (1, 2) AND s.level IN (1, 2, 3, 5)\n"
        "   ORDER BY unit_code, period, version DESC, report_id DESC)\n"
        "INSERT INTO rollcall.latest_report AS l\n"
        "  (unit_code, period, level, kind, version, report_id, received_at, late, zone_status,\n"
        "   first_received_at, extra");
    for (size_t i = 0; i < n; i++)
        ADD(", %s", rc_indicator_name(i));
    ADD(")\n"
        "SELECT w.unit_code, w.period, w.level, w.kind, w.version, w.report_id, w.received_at,\n"
        "       coalesce(w.first_rx > ((w.period + p.deadline) AT TIME ZONE 'Asia/Shanghai'), false),\n"
        "       w.zone_status, w.first_rx, w.extra");
    for (size_t i = 0; i < n; i++)
        ADD(", w.ind[%zu]", i + 1);
    ADD("\n  FROM w LEFT JOIN rollcall.level_policy p ON p.level = w.level\n"
        "    ORDER BY w.unit_code, w.period\n"
        "ON CONFLICT (unit_code, period) DO UPDATE SET\n");
    static const char *const own[] = {"level", "kind", "version", "report_id", "received_at",
                                      "zone_status", "extra"};
#define NEWER "(excluded.version, excluded.report_id) > (l.version, l.report_id)"
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
        ADD("  %s = CASE WHEN " NEWER " THEN excluded.%s ELSE l.%s END,\n", own[i], own[i],
            own[i]);
    for (size_t i = 0; i < n; i++)
        ADD("  %s = CASE WHEN " NEWER " THEN excluded.%s ELSE l.%s END,\n", rc_indicator_name(i),
            rc_indicator_name(i), rc_indicator_name(i));
    ADD("  first_received_at = least(l.first_received_at, excluded.first_received_at),\n"
        "  late = coalesce(least(l.first_received_at, excluded.first_received_at)\n"
        "                  > ((l.period + (SELECT deadline FROM rollcall.level_policy\n"
        "                                   WHERE level = l.level)) AT TIME ZONE 'Asia/Shanghai'),\n"
        "                  false)\n"
        "WHERE " NEWER "\n"
        "   OR excluded.first_received_at < l.first_received_at\n"
        "   OR (l.first_received_at IS NULL AND excluded.first_received_at IS NOT NULL)");
#undef NEWER
#undef ADD
    if (len >= cap) {
        free(s);
        return NULL;
    }
    return s;
}

/* The parents of what changed, as the rollup refreshes them: counties of
 * the townships with village reports, then provinces of those counties;
 * filing completeness for the parents of filed reports. */
static const char parents_sql[] =
    "WITH c AS (\n"
    "  SELECT DISTINCT left(unit_code, 6) AS code, period FROM replay_stage\n"
    "   WHERE level IN (1, 2)),\n"
    "c2 AS (SELECT c.code, c.period,\n"
    "              (SELECT count(*) FROM rollcall.unit w\n"
    "                WHERE w.level = 1 AND w.code LIKE c.code || '%')::int AS villages\n"
    "         FROM c\n"
    "        WHERE EXISTS (SELECT 1 FROM rollcall.aggregate t\n"
    "                       WHERE t.level = 2 AND t.period = c.period\n"
    "                         AND t.unit_code LIKE c.code || '%')\n"
    "        ORDER BY 1, 2)\n"
    "SELECT array_agg(code), array_agg(period), array_agg(villages) FROM c2";

static const char provinces_sql[] =
    "WITH c AS (\n"
    "  SELECT DISTINCT left(unit_code, 2) AS code, period FROM replay_stage\n"
    "   WHERE level IN (1, 2, 3)),\n"
    "c2 AS (SELECT c.code, c.period,\n"
    "              (SELECT count(*) FROM rollcall.unit w\n"
    "                WHERE w.level = 1 AND w.code LIKE c.code || '%')::int AS villages\n"
    "         FROM c\n"
    "        WHERE EXISTS (SELECT 1 FROM rollcall.aggregate t\n"
    "                       WHERE t.level = 3 AND t.period = c.period\n"
    "                         AND t.unit_code LIKE c.code || '%')\n"
    "        ORDER BY 1, 2)\n"
    "SELECT array_agg(code), array_agg(period), array_agg(villages) FROM c2";

static int refresh_level(rc_pg *pg, int level, const char *select_sql, char *errbuf,
                         size_t errlen)
{
    PGresult *res = rc_pg_exec(pg, select_sql, errbuf, errlen), *r2;
    char lv[4];
    const char *params[4];
    int rc = -1;

    if (!res)
        return -1;
    if (PQgetisnull(res, 0, 0)) {
        PQclear(res);
        return 0;
    }
    snprintf(lv, sizeof lv, "%d", level);
    params[0] = lv;
    params[1] = PQgetvalue(res, 0, 0);
    params[2] = PQgetvalue(res, 0, 1);
    params[3] = PQgetvalue(res, 0, 2);
    r2 = rc_pg_exec_params(pg,
                           "SELECT count(*) FROM rollcall.lock_parents($1::smallint, $2::text[], "
                           "$3::date[]);"
                           , 3, params, errbuf, errlen);
    if (!r2)
        goto done;
    PQclear(r2);
    r2 = rc_pg_exec_params(pg,
                           "SELECT rollcall.refresh_parents($1::smallint, $2::text[], $3::date[], "
                           "$4::int[]), rollcall.refresh_filing($1::smallint, $2::text[], "
                           "$3::date[])",
                           4, params, errbuf, errlen);
    if (!r2)
        goto done;
    PQclear(r2);
    rc = 0;
done:
    PQclear(res);
    return rc;
}

int replay_apply_staged(rc_pg *pg, char *errbuf, size_t errlen)
{
    char *sql = latest_upsert_sql();
    int rc = -1;

    if (!sql) {
        snprintf(errbuf, errlen, "out of memory");
        return -1;
    }
    if (rc_pg_command(pg, sql, errbuf, errlen) < 0)
        goto done;
    if (refresh_level(pg, 3, parents_sql, errbuf, errlen) < 0 ||
        refresh_level(pg, 5, provinces_sql, errbuf, errlen) < 0)
        goto done;
    rc = 0;
done:
    free(sql);
    return rc;
}
