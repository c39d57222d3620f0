/* The dashboard's named queries.  Each answers one endpoint with one row,
 * one column: the endpoint's JSON, built by PostgreSQL.  Parameters only;
 * the one name a client chooses (the trends' indicator) is checked against
 * the proto's list in C and then used as a jsonb key, never as SQL.
 *
 * The trends' and the calendar's bounds are written on every join as well
 * as in the list of days, so that the planner reads one index range of
 * periods and not the subtree's whole history.
 *
 * Every query runs with rollcall.scope set to the account's unit, so the
 * row-level security policies hold whatever the query says; the ranges
 * written here (unit_code >= $1 AND unit_code < $1 || '~') are what lets
 * the planner use the (period, unit_code) and unit_code indexes. */
#include "queries.h"
#include "rc_report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "'name', X.name, ..." for every indicator, for jsonb_build_object. */
static char *indicator_pairs(const char *alias)
{
    size_t n = rc_indicator_count(), cap = 64 * n + 1, used = 0;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    s[0] = '\0';
    for (size_t i = 0; i < n; i++)
        used += (size_t)snprintf(s + used, cap - used, "%s'%s', %s.%s", i ? ", " : "",
                                 rc_indicator_name(i), alias, rc_indicator_name(i));
    return s;
}

/* "X.a, X.b, ..." every indicator column, then extra. */
static char *indicator_tuple(const char *alias)
{
    size_t n = rc_indicator_count(), cap = 40 * n + 64, used = 0;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    s[0] = '\0';
    for (size_t i = 0; i < n; i++)
        used += (size_t)snprintf(s + used, cap - used, "%s%s.%s", i ? ", " : "", alias,
                                 rc_indicator_name(i));
    snprintf(s + used, cap - used, ", %s.extra", alias);
    return s;
}

#define LEVEL_NAME(x) "CASE " x " WHEN 1 THEN 'village' WHEN 2 THEN 'township' WHEN 3 THEN 'county' " \
                      "WHEN 4 THEN 'prefecture' WHEN 5 THEN 'province' END"
#define DEADLINE(lvl, day) "(SELECT (" day " + p.deadline) AT TIME ZONE INTERVAL '+08:00' " \
                           "FROM rollcall.level_policy p WHERE p.level = " lvl ")"

static const char q_auth_session[] =
    "SELECT a.name, a.unit_code, a.role FROM rollcall.account_session s"
    "  JOIN rollcall.account a ON a.name = s.account"
    " WHERE s.token_hash = $1 AND s.expires_at > now() AND a.disabled_at IS NULL";

static const char q_auth_key[] =
    "SELECT a.name, a.unit_code, a.role FROM rollcall.account_apikey k"
    "  JOIN rollcall.account a ON a.name = k.account"
    " WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND a.disabled_at IS NULL";

static const char q_login_account[] =
    "SELECT name, unit_code, role, password_hash, disabled_at IS NOT NULL FROM rollcall.account"
    " WHERE name = $1";

/* Failures in the window: per account name, per address. */
static const char q_login_failures[] =
    "SELECT (SELECT count(*) FROM rollcall.login_attempt WHERE account = $1"
    "         AND at > now() - $3::int * interval '1 millisecond'),"
    "       (SELECT count(*) FROM rollcall.login_attempt WHERE address = $2"
    "         AND at > now() - $3::int * interval '1 millisecond')";

/* Also forgets failures older than a day (the window is shorter). */
static const char q_login_failed[] =
    "WITH old AS (DELETE FROM rollcall.login_attempt WHERE at < now() - interval '1 day')"
    " INSERT INTO rollcall.login_attempt (account, address) VALUES ($1, $2)";

/* Also clears the name's failures and the sessions expired a day ago. */
static const char q_login_ok[] =
    "WITH d AS (DELETE FROM rollcall.login_attempt WHERE account = $1),"
    " x AS (DELETE FROM rollcall.account_session WHERE expires_at < now() - interval '1 day')"
    " INSERT INTO rollcall.account_session (token_hash, account, expires_at, address)"
    " VALUES ($2, $1, now() + $3::int * interval '1 millisecond', $4)";

static const char q_logout[] = "DELETE FROM rollcall.account_session WHERE token_hash = $1";

static const char q_me[] =
    "SELECT json_build_object('user', $2::text, 'role', $3::text, 'unit',"
    "       json_build_object('code', u.code, 'name', u.name, 'level', " LEVEL_NAME("u.level") "))"
    "  FROM rollcall.unit u WHERE u.code = $1";

static const char q_select1[] = "SELECT '{\"ok\":1}'";

/* $1 code, $2 the account's unit */
static const char q_unit[] =
    "SELECT json_build_object('code', u.code, 'name', u.name, 'level', " LEVEL_NAME("u.level") ","
    "  'parent', CASE WHEN u.code = $2 THEN NULL ELSE"
    "    (SELECT json_build_object('code', p.code, 'name', p.name) FROM rollcall.unit p"
    "      WHERE p.code = u.parent_code) END,"
    "  'path', (SELECT json_agg(json_build_object('code', a.code, 'name', a.name,"
    "                  'level', " LEVEL_NAME("a.level") ") ORDER BY length(a.code))"
    "             FROM rollcall.unit a"
    "            WHERE a.code IN (left($1, 2), left($1, 4), left($1, 6), left($1, 9), $1)"
    "              AND length(a.code) >= length($2)))"
    "  FROM rollcall.unit u WHERE u.code = $1";

/* $1 code, $2 period, $3 the account's unit, $4 the account's role */
static const char q_day_fmt[] =
    "WITH u AS (SELECT code, name, level FROM rollcall.unit WHERE code = $1),"
    " a AS (SELECT * FROM rollcall.aggregate WHERE unit_code = $1 AND period = $2::date),"
    " l AS (SELECT * FROM rollcall.latest_report WHERE period = $2::date AND unit_code = $1),"
    " f AS (SELECT * FROM rollcall.v_filing WHERE unit_code = $1 AND period = $2::date)"
    " SELECT json_build_object("
    "  'unit', json_build_object('code', u.code, 'name', u.name, 'level', " LEVEL_NAME("u.level") "),"
    "  'period', $2::date,"
    "  'deadline', " DEADLINE("u.level", "$2::date") ","
    "  'as_of', CASE WHEN u.level = 1 THEN (SELECT received_at FROM l) ELSE (SELECT updated_at FROM a) END,"
    "  'lag_seconds', (SELECT round(extract(epoch FROM now() - max(x.received_at)))::bigint"
    "                    FROM rollcall.latest_report x WHERE x.period = $2::date"
    "                     AND x.unit_code >= $1 AND x.unit_code < $1 || '~' AND x.level = 1),"
    "  'totals', CASE WHEN u.level = 1 THEN"
    "     (SELECT json_build_object('version', l.version, 'expected_children', NULL,"
    "        'reported_children', NULL, 'zero_children', NULL, 'late_children', NULL,"
    "        'missing_children_count', NULL, 'villages_expected', 1, 'villages_reported', 1,"
    "        'villages_zero', (l.kind = 2)::int, 'villages_late', l.late::int, 'villages_missing', 0,"
    "        'indicators', jsonb_build_object(%s) || l.extra) FROM l)"
    "   ELSE"
    "     (SELECT json_build_object('version', a.version, 'expected_children', a.expected_children,"
    "        'reported_children', a.reported_children, 'zero_children', a.zero_children,"
    "        'late_children', a.late_children, 'missing_children_count', cardinality(a.missing_children),"
    "        'villages_expected', a.villages_expected, 'villages_reported', a.villages_reported,"
    "        'villages_zero', a.villages_zero, 'villages_late', a.villages_late,"
    "        'villages_missing', a.villages_expected - a.villages_reported,"
    "        'indicators', jsonb_build_object(%s) || a.extra) FROM a) END,"
    "  'filing', (SELECT json_build_object('status', f.status, 'revised', f.revised,"
    "        'filed_version', f.filed_version, 'filed_at', f.filed_at, 'filed_by', f.filed_by,"
    "        'signoff_required', f.signoff_required, 'signoff_by', f.signoff_by,"
    "        'signoff_at', f.signoff_at, 'live_version', f.live_version) FROM f),"
    "  'can_sign', coalesce($4::text = 'signer' AND $1 = $3::text"
    "                      AND (SELECT status FROM f) = 'awaiting_signoff', false),"
    "  'children', CASE WHEN u.level = 1 THEN '[]'::json ELSE"
    "    (SELECT coalesce(json_agg(c ORDER BY c.code), '[]') FROM ("
    "      SELECT ch.code, ch.name, " LEVEL_NAME("ch.level") " AS level,"
    "        CASE WHEN cl.unit_code IS NULL THEN 'missing' WHEN cl.late THEN 'late'"
    "             WHEN cl.kind = 2 THEN 'zero' ELSE 'reported' END AS status,"
    "        CASE WHEN cl.late THEN ceil(extract(epoch FROM cl.first_received_at - "
    DEADLINE("ch.level", "$2::date") ") / 60)::int END AS minutes_late,"
    "        cl.first_received_at,"
    "        CASE WHEN ch.level = 1 THEN NULL ELSE cl.unit_code IS NOT NULL END AS filed,"
    "        CASE WHEN ch.level = 1 THEN 1 ELSE coalesce(ca.villages_expected,"
    "          (SELECT count(*) FROM rollcall.unit v WHERE v.code >= ch.code"
    "              AND v.code < ch.code || '~' AND v.level = 1)::int) END AS villages_expected,"
    "        CASE WHEN ch.level = 1 THEN (cl.unit_code IS NOT NULL)::int"
    "             ELSE coalesce(ca.villages_reported, 0) END AS villages_reported,"
    "        CASE WHEN ch.level = 1 THEN coalesce((cl.kind = 2)::int, 0)"
    "             ELSE coalesce(ca.villages_zero, 0) END AS villages_zero,"
    "        CASE WHEN ch.level = 1 THEN coalesce(cl.late::int, 0)"
    "             ELSE coalesce(ca.villages_late, 0) END AS villages_late"
    "        FROM rollcall.unit ch"
    "        LEFT JOIN rollcall.latest_report cl ON cl.period = $2::date AND cl.unit_code = ch.code"
    "        LEFT JOIN rollcall.aggregate ca ON ca.unit_code = ch.code AND ca.period = $2::date"
    "       WHERE (u.level <> 4 AND ch.rollup_parent = u.code)"
    "          OR (u.level = 4 AND ch.parent_code = u.code AND ch.level = 3)) c) END)"
    "  FROM u";

/* $1 code, $2 period */
static const char q_missing[] =
    "SELECT json_build_object('rows', coalesce(json_agg(r ORDER BY r.code), '[]')) FROM ("
    " SELECT v.code, v.name, t.code AS township_code, t.name AS township_name,"
    "   (SELECT count(*) FROM rollcall.reminder m WHERE m.unit_code = v.code"
    "       AND m.period = $2::date) AS reminders,"
    "   (SELECT max(m.reminded_at) FROM rollcall.reminder m WHERE m.unit_code = v.code"
    "       AND m.period = $2::date) AS last_reminded_at,"
    /* One primary-key probe per day back, newest first, until a report:
     * a scalar sublink, which the planner cannot turn into a join that
     * walks the village's whole history across every period. */
    "   coalesce((SELECT g.n FROM generate_series(1, 30) g(n)"
    "     WHERE (SELECT true FROM rollcall.latest_report x"
    "             WHERE x.period = $2::date - g.n AND x.unit_code = v.code)"
    "     ORDER BY g.n LIMIT 1), 31) AS days_missed"
    "   FROM rollcall.unit v LEFT JOIN rollcall.unit t ON t.code = v.rollup_parent"
    "  WHERE v.level = 1 AND v.code >= $1 AND v.code < $1 || '~'"
    "    AND NOT EXISTS (SELECT 1 FROM rollcall.latest_report l"
    "                     WHERE l.period = $2::date AND l.unit_code = v.code)) r";

/* $1 code, $2 period */
static const char q_late[] =
    "SELECT json_build_object('rows', coalesce(json_agg(r ORDER BY r.minutes_late DESC, r.code), '[]')) FROM ("
    " SELECT v.code, v.name, t.code AS township_code, t.name AS township_name, l.first_received_at,"
    "   ceil(extract(epoch FROM l.first_received_at - " DEADLINE("1", "$2::date") ") / 60)::int"
    "     AS minutes_late"
    "   FROM rollcall.latest_report l JOIN rollcall.unit v ON v.code = l.unit_code"
    "   LEFT JOIN rollcall.unit t ON t.code = v.rollup_parent"
    "  WHERE l.period = $2::date AND l.unit_code >= $1 AND l.unit_code < $1 || '~'"
    "    AND l.level = 1 AND l.late) r";

/* $1 code, $2 period, $3 days, $4 indicator */
static const char q_trends[] =
    "WITH days AS (SELECT ($2::date - g) AS d FROM generate_series($3::int - 1, 0, -1) g),"
    " m AS (SELECT code, name, level, 0 AS ord FROM rollcall.unit WHERE code = $1"
    "       UNION ALL"
    "       SELECT c.code, c.name, c.level, 1 FROM rollcall.unit c, rollcall.unit p"
    "        WHERE p.code = $1 AND ((p.level <> 4 AND c.rollup_parent = p.code)"
    "           OR (p.level = 4 AND c.parent_code = p.code AND c.level = 3))),"
    /* A unit none of whose villages has reported that day has no aggregate
     * row: its day is all missing (the registry's villages beneath it), not
     * a gap in the series. */
    " mv AS (SELECT m.*, (SELECT count(*) FROM rollcall.unit u WHERE u.level = 1"
    "          AND u.code >= m.code AND u.code < m.code || '~')::int AS villages FROM m),"
    " v AS (SELECT m.code, days.d,"
    "   CASE WHEN m.level = 1 THEN 1 ELSE coalesce(a.villages_expected, m.villages) END AS expected,"
    "   CASE WHEN m.level = 1 THEN (l.unit_code IS NOT NULL)::int ELSE coalesce(a.villages_reported, 0) END AS reported,"
    "   CASE WHEN m.level = 1 THEN coalesce((l.kind = 2)::int, 0) ELSE coalesce(a.villages_zero, 0) END AS zero,"
    "   CASE WHEN m.level = 1 THEN coalesce(l.late::int, 0) ELSE coalesce(a.villages_late, 0) END AS late,"
    "   CASE WHEN m.level = 1 THEN 1 - (l.unit_code IS NOT NULL)::int"
    "        ELSE coalesce(a.villages_expected - a.villages_reported, m.villages) END AS missing,"
    "   CASE WHEN m.level = 1 THEN coalesce(to_jsonb(l) ->> $4, l.extra ->> $4)"
    "        ELSE coalesce(to_jsonb(a) ->> $4, a.extra ->> $4) END::bigint AS ind"
    /* A primary-key probe per member and day (OFFSET 0 keeps each a
     * parameterised probe): the alternative plan reads the whole nation's
     * rows of every day in the window. */
    "   FROM mv m CROSS JOIN days"
    "   LEFT JOIN LATERAL (SELECT * FROM rollcall.aggregate a"
    "         WHERE m.level <> 1 AND a.unit_code = m.code AND a.period = days.d OFFSET 0) a ON true"
    "   LEFT JOIN LATERAL (SELECT * FROM rollcall.latest_report l"
    "         WHERE m.level = 1 AND l.period = days.d AND l.unit_code = m.code OFFSET 0) l ON true)"
    " SELECT json_build_object('days', (SELECT json_agg(d ORDER BY d) FROM days),"
    "  'series', (SELECT json_agg(json_build_object('code', s.code, 'name', s.name, 'level', s.level,"
    "     'expected', s.expected, 'reported', s.reported, 'zero', s.zero, 'late', s.late,"
    "     'missing', s.missing, 'indicator', s.ind) ORDER BY s.ord, s.code) FROM ("
    "    SELECT m.code, m.name, " LEVEL_NAME("m.level") " AS level, m.ord,"
    "      json_agg(v.expected ORDER BY v.d) AS expected, json_agg(v.reported ORDER BY v.d) AS reported,"
    "      json_agg(v.zero ORDER BY v.d) AS zero, json_agg(v.late ORDER BY v.d) AS late,"
    "      json_agg(v.missing ORDER BY v.d) AS missing, json_agg(v.ind ORDER BY v.d) AS ind"
    "      FROM m JOIN v ON v.code = m.code GROUP BY m.code, m.name, m.level, m.ord) s))";

/* $1 code, $2 period, $3 days */
static const char q_calendar_fmt[] =
    "WITH days AS (SELECT ($2::date - g) AS d FROM generate_series($3::int - 1, 0, -1) g),"
    " vs AS (SELECT code, name, rollup_parent FROM rollcall.unit"
    "         WHERE level = 1 AND code >= $1 AND code < $1 || '~' LIMIT 5001),"
    /* The subtree's reports of each day and of the day before the first:
     * one range of the primary key (period, unit_code) per day, where one
     * scan over the window would read every village of the nation. */
    " lr AS MATERIALIZED (SELECT l.* FROM generate_series($3::int, 0, -1) g"
    "   CROSS JOIN LATERAL (SELECT * FROM rollcall.latest_report l"
    "     WHERE l.period = $2::date - g AND l.unit_code >= $1 AND l.unit_code < $1 || '~'"
    "       AND l.level = 1 OFFSET 0) l)"
    " SELECT CASE WHEN (SELECT count(*) FROM vs) > 5000 THEN '{\"too_many\":true}'::json ELSE"
    "  json_build_object('days', (SELECT json_agg(d ORDER BY d) FROM days),"
    "   'villages', (SELECT coalesce(json_agg(json_build_object('code', x.code, 'name', x.name,"
    "        'township_code', x.rollup_parent, 'days', x.days, 'same_as_previous', x.same)"
    "        ORDER BY x.code), '[]') FROM ("
    "     SELECT vs.code, min(vs.name) AS name, min(vs.rollup_parent) AS rollup_parent,"
    /* A zero report stays "zero" when late: the zero counter counts it, and
     * a run of zero reports must show in the strip after the deadline too. */
    "       json_agg(CASE WHEN l.unit_code IS NULL THEN 'missing' WHEN l.kind = 2 THEN 'zero'"
    "                     WHEN l.late THEN 'late' ELSE 'reported' END ORDER BY days.d) AS days,"
    "       json_agg(coalesce(l.unit_code IS NOT NULL AND p.unit_code IS NOT NULL"
    "                         AND (%s) = (%s), false) ORDER BY days.d) AS same"
    "       FROM vs CROSS JOIN days"
    "       LEFT JOIN lr l ON l.period = days.d AND l.unit_code = vs.code"
    "       LEFT JOIN lr p ON p.period = days.d - 1 AND p.unit_code = vs.code"
    "      GROUP BY vs.code) x)) END";

/* $1 code, $2 period, $3 days */
static const char q_alerts[] =
    "SELECT json_build_object('rows', coalesce(json_agg(r ORDER BY r.raised_at DESC, r.unit_code), '[]')) FROM ("
    " SELECT e.unit_code, u.name AS unit_name, e.period, e.rule, r.indicator, e.value, r.threshold,"
    "        e.raised_at"
    /* One range of (period, unit_code) per day, as in the calendar: a
     * single scan over the window reads the whole nation's escalations. */
    "   FROM generate_series(0, $3::int - 1) g"
    "   CROSS JOIN LATERAL (SELECT * FROM rollcall.escalation e WHERE e.period = $2::date - g"
    "       AND e.unit_code >= $1 AND e.unit_code < $1 || '~' OFFSET 0) e"
    "   LEFT JOIN rollcall.unit u ON u.code = e.unit_code"
    "   LEFT JOIN rollcall.escalation_rule r ON r.rule = e.rule) r";

/* $1 code, $2 period, $3 days */
static const char q_urgent[] =
    "SELECT json_build_object('rows', coalesce(json_agg(r ORDER BY r.occurred_at DESC NULLS LAST,"
    "                                                   r.report_id), '[]')) FROM ("
    " SELECT v.report_id, v.unit_code, u.name AS unit_name, v.incident_type, v.severity, v.occurred_at,"
    "        v.village_at, v.township_at, v.county_at, v.province_at"
    "   FROM rollcall.v_urgent v LEFT JOIN rollcall.unit u ON u.code = v.unit_code"
    "  WHERE v.period > $2::date - $3::int AND v.period <= $2::date"
    "    AND v.unit_code >= $1 AND v.unit_code < $1 || '~') r";

/* $1 code */
static const char q_signoffs[] =
    "SELECT json_build_object('rows', coalesce(json_agg(r ORDER BY r.period DESC, r.unit_code), '[]')) FROM ("
    " SELECT p.unit_code, u.name AS unit_name, p.level, p.period, p.deadline, p.live_version,"
    "        p.expected_children, p.reported_children, p.missing_count, p.ready_at"
    "   FROM rollcall.v_pending_signoff p LEFT JOIN rollcall.unit u ON u.code = p.unit_code"
    "  WHERE p.unit_code >= $1 AND p.unit_code < $1 || '~') r";

/* $1 code, $2 period (the last day), $3 days: rows, decoded in C */
static const char q_history[] =
    "SELECT a.report_id, a.version, a.kind, to_json(a.received_at) #>> '{}', a.period,"
    "       a.kind IN (1, 2) AND a.received_at > " DEADLINE("1", "a.period") " AS late,"
    "       a.payload"
    "  FROM rollcall.report_archive a"
    " WHERE a.period > $2::date - $3::int AND a.period <= $2::date"
    "   AND a.unit_code = $1 AND a.level = 1"
    " ORDER BY a.period DESC, a.version DESC, a.report_id DESC";

static const char q_signoff[] =
    "SELECT rollcall.dashboard_signoff($1, $2::date, $3)";

static const char q_scope[] = "SELECT set_config('rollcall.scope', $1, true)";

static const char q_unit_exists[] = "SELECT 1 FROM rollcall.unit WHERE code = $1";

/* The query's answer when $1 is a unit the account can see, else NULL (404,
 * as for a unit outside the scope: the registry is scoped too). */
static char *known_unit(const char *sql)
{
    static const char fmt[] = "SELECT CASE WHEN EXISTS (SELECT 1 FROM rollcall.unit WHERE code = $1) "
                              "THEN (%s) END";
    char *s = malloc(sizeof fmt + strlen(sql));
    if (s)
        sprintf(s, fmt, sql);
    return s;
}

int queries_prepare(rc_pg *pg, char *errbuf, size_t errlen)
{
    char *li = indicator_pairs("l"), *ai = indicator_pairs("a");
    char *lt = indicator_tuple("l"), *pt = indicator_tuple("p");
    char *day = NULL, *cal = NULL, *missing = NULL, *late = NULL, *trends = NULL, *calendar = NULL;
    char *alerts = NULL, *urgent = NULL, *signoffs = NULL;
    int rc = -1;

    if (!li || !ai || !lt || !pt)
        goto done;
    if (!(day = malloc(sizeof q_day_fmt + strlen(li) + strlen(ai))) ||
        !(cal = malloc(sizeof q_calendar_fmt + strlen(lt) + strlen(pt))))
        goto done;
    sprintf(day, q_day_fmt, li, ai);
    sprintf(cal, q_calendar_fmt, lt, pt);
    if (!(missing = known_unit(q_missing)) || !(late = known_unit(q_late)) ||
        !(trends = known_unit(q_trends)) || !(calendar = known_unit(cal)) ||
        !(alerts = known_unit(q_alerts)) || !(urgent = known_unit(q_urgent)) ||
        !(signoffs = known_unit(q_signoffs)))
        goto done;
    struct { const char *name, *sql; int n; } qs[] = {
        {"auth_session", q_auth_session, 1}, {"auth_key", q_auth_key, 1},
        {"login_account", q_login_account, 1}, {"login_failures", q_login_failures, 3},
        {"login_failed", q_login_failed, 2}, {"login_ok", q_login_ok, 4},
        {"logout", q_logout, 1}, {"me", q_me, 3}, {"select1", q_select1, 0},
        {"unit", q_unit, 2}, {"day", day, 4}, {"missing", missing, 2}, {"late", late, 2},
        {"trends", trends, 4}, {"calendar", calendar, 3}, {"alerts", alerts, 3},
        {"urgent", urgent, 3}, {"signoffs", signoffs, 1}, {"history", q_history, 3},
        {"unit_exists", q_unit_exists, 1},
        {"signoff", q_signoff, 3}, {"scope", q_scope, 1},
    };
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++)
        if (rc_pg_prepare(pg, qs[i].name, qs[i].sql, qs[i].n, errbuf, errlen) < 0) {
            size_t l = strlen(errbuf);
            snprintf(errbuf + l, errlen - l, " (query %s)", qs[i].name);
            goto done;
        }
    rc = 0;
done:
    if (rc < 0 && (!li || !ai || !lt || !pt || !day || !cal || !missing || !late || !trends ||
                   !calendar || !alerts || !urgent || !signoffs))
        snprintf(errbuf, errlen, "out of memory");
    free(li); free(ai); free(lt); free(pt); free(day); free(cal);
    free(missing); free(late); free(trends); free(calendar); free(alerts); free(urgent); free(signoffs);
    return rc;
}
