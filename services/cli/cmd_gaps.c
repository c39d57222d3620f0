/* rollcall gaps — what is missing for one period, per level: units the
 * registry expects that have no report, and reports archived below a unit
 * that its aggregate does not reflect.  The check an operator runs before
 * deciding to replay; it ends with the replay commands that would repair
 * what a replay can repair. */
#include "cli.h"
#include "rc_registry.h"
#include "rc_time.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const level_names[] = {"", "village", "township", "county", "prefecture",
                                          "province"};

/* Each finding: a title and a query over ($1 period, $2 unit prefix)
 * returning (level, unit_code, detail) ordered for display; `repair` says
 * whether replaying the unit's subtree from the archive can fix it. */
typedef struct {
    const char *title;
    const char *sql;
    bool repair;
} finding;

static const finding findings[] = {
    {"expected but missing: units the registry expects without a report",
     "SELECT u.level, u.code, 'no ' || CASE WHEN u.level = 1 THEN 'report' ELSE 'filed report' END\n"
     "       || CASE WHEN EXISTS (SELECT 1 FROM rollcall.report_archive r\n"
     "                             WHERE r.period = $1::date AND r.unit_code = u.code\n"
     "                               AND r.kind IN (1, 2))\n"
     "               THEN ' (but archived: see below)' ELSE '' END\n"
     "  FROM rollcall.unit u\n"
     " WHERE u.level IN (1, 2, 3, 5) AND u.code LIKE $2 || '%'\n"
     "   AND NOT EXISTS (SELECT 1 FROM rollcall.latest_report l\n"
     "                    WHERE l.unit_code = u.code AND l.period = $1::date)\n"
     " ORDER BY u.level DESC, u.code",
     false},
    {"archived but not in latest_report: the archive holds a revision that wins over what "
     "latest_report has (or it has none)",
     "SELECT a.level, a.unit_code,\n"
     "       'archive version ' || a.version || ', latest_report '\n"
     "       || coalesce('version ' || l.version, 'missing')\n"
     "  FROM (SELECT DISTINCT ON (unit_code) unit_code, level, version, report_id\n"
     "          FROM rollcall.report_archive\n"
     "         WHERE period = $1::date AND kind IN (1, 2) AND unit_code LIKE $2 || '%'\n"
     "         ORDER BY unit_code, version DESC, report_id DESC) a\n"
     "  LEFT JOIN rollcall.latest_report l ON l.unit_code = a.unit_code AND l.period = $1::date\n"
     " WHERE l.unit_code IS NULL OR (a.version, a.report_id) > (l.version, l.report_id)\n"
     " ORDER BY a.level DESC, a.unit_code",
     true},
    {"not reflected in the township aggregate: village reports newer than it, or counted "
     "differently",
     "SELECT 2, v.t,\n"
     "       CASE WHEN a.unit_code IS NULL THEN 'no aggregate, ' || v.n || ' village report(s)'\n"
     "            WHEN v.version > a.version THEN 'village version ' || v.version\n"
     "                 || ' > aggregate version ' || a.version\n"
     "            ELSE v.n || ' village report(s), aggregate counts ' || a.reported_children END\n"
     "  FROM (SELECT left(unit_code, 9) AS t, max(version) AS version, count(*) AS n\n"
     "          FROM rollcall.latest_report\n"
     "         WHERE period = $1::date AND level = 1 AND unit_code LIKE $2 || '%'\n"
     "         GROUP BY 1) v\n"
     "  LEFT JOIN rollcall.aggregate a ON a.unit_code = v.t AND a.period = $1::date\n"
     " WHERE a.unit_code IS NULL OR v.version > a.version OR v.n <> a.reported_children\n"
     " ORDER BY 2",
     true},
    {"not reflected in the parent aggregate: a township or county aggregate newer than its "
     "parent's, or counted differently",
     "SELECT p.level, p.code,\n"
     "       CASE WHEN a.unit_code IS NULL THEN 'no aggregate, ' || p.n || ' child aggregate(s)'\n"
     "            WHEN p.version > a.version THEN 'child version ' || p.version\n"
     "                 || ' > aggregate version ' || a.version\n"
     "            ELSE p.villages || ' village report(s) beneath, aggregate counts '\n"
     "                 || a.villages_reported END\n"
     "  FROM (SELECT CASE c.level WHEN 2 THEN 3 ELSE 5 END AS level,\n"
     "               left(c.unit_code, CASE c.level WHEN 2 THEN 6 ELSE 2 END) AS code,\n"
     "               max(c.version) AS version, count(*) AS n,\n"
     "               sum(c.villages_reported) AS villages\n"
     "          FROM rollcall.aggregate c\n"
     "         WHERE c.period = $1::date AND c.level IN (2, 3)\n"
     "           AND (c.unit_code LIKE $2 || '%' OR $2 LIKE c.unit_code || '%')\n"
     "         GROUP BY 1, 2) p\n"
     "  LEFT JOIN rollcall.aggregate a ON a.unit_code = p.code AND a.period = $1::date\n"
     " WHERE a.unit_code IS NULL OR p.version > a.version OR p.villages <> a.villages_reported\n"
     " ORDER BY 1, 2",
     true},
};

/* Codes to replay: the findings' units, widened to their township, county,
 * then province until at most `max` remain (and never above `unit`). */
typedef struct {
    char (*codes)[13];
    size_t n, cap;
} code_set;

static void code_add(code_set *s, const char *code)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->codes[i], code) == 0)
            return;
    if (s->n == s->cap) {
        size_t ncap = s->cap ? 2 * s->cap : 64;
        char (*n)[13] = realloc(s->codes, ncap * sizeof *n);
        if (!n)
            return;
        s->codes = n;
        s->cap = ncap;
    }
    snprintf(s->codes[s->n++], 13, "%s", code);
}

static void widen(code_set *s, size_t len, size_t floor_len)
{
    code_set w = {0};
    if (len < floor_len)
        len = floor_len;
    for (size_t i = 0; i < s->n; i++) {
        char c[13];
        snprintf(c, sizeof c, "%.*s", (int)(strlen(s->codes[i]) < len ? strlen(s->codes[i]) : len),
                 s->codes[i]);
        code_add(&w, c);
    }
    free(s->codes);
    *s = w;
}

static int cmp_code(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* What the findings add up to: how many in all, how many a replay from the
 * archive repairs, and the units to replay. */
typedef struct {
    size_t total, repairable;
    code_set repair;
} gap_totals;

/* Runs finding f for the period (under unit) and prints it by level, at
 * most limit units per level (0: all).  Returns 0, or -1 after saying why. */
static int print_finding(rc_pg *pg, size_t f, const char *period, const char *unit, long limit,
                         gap_totals *t)
{
    const char *params[2] = {period, unit};
    char err[1024];
    PGresult *res = rc_pg_exec_params(pg, findings[f].sql, 2, params, err, sizeof err);
    int n, shown = 0, lv_prev = -1, lv_count = 0;

    if (!res) {
        fprintf(stderr, "rollcall gaps: %s\n", err);
        return -1;
    }
    n = PQntuples(res);
    t->total += (size_t)n;
    printf("\n%s: %d\n", findings[f].title, n);
    for (int i = 0; i < n; i++) {
        int lv = atoi(PQgetvalue(res, i, 0));
        if (lv != lv_prev) {
            lv_count = 0;
            for (int j = i; j < n && atoi(PQgetvalue(res, j, 0)) == lv; j++)
                lv_count++;
            printf("  %s: %d\n", lv >= 1 && lv <= 5 ? level_names[lv] : "?", lv_count);
            lv_prev = lv;
            shown = 0;
        }
        if (limit == 0 || shown < limit)
            printf("    %-12s %s\n", PQgetvalue(res, i, 1), PQgetvalue(res, i, 2));
        else if (shown == limit)
            printf("    ... %d more\n", lv_count - (int)limit);
        shown++;
        if (findings[f].repair) {
            t->repairable++;
            code_add(&t->repair, PQgetvalue(res, i, 1));
        }
    }
    PQclear(res);
    return 0;
}

/* The closing advice: no gaps, nothing to repair, or the replays to run. */
static void print_repairs(gap_totals *t, const char *period, const char *unit)
{
    printf("\n");
    if (t->total == 0) {
        printf("no gaps\n");
    } else if (t->repair.n == 0) {
        printf("nothing a replay can repair: the missing units have no archived report "
               "(ask them to report, or import with `rollcall replay --file`)\n");
    } else {
        /* A replay of a subtree re-sends every revision beneath it, so a few
         * wide units are cheaper to type and no slower to apply than many. */
        size_t floor_len = strlen(unit);
        if (t->repair.n > 10)
            widen(&t->repair, 9, floor_len);
        if (t->repair.n > 10)
            widen(&t->repair, 6, floor_len);
        if (t->repair.n > 10)
            widen(&t->repair, 2, floor_len);
        qsort(t->repair.codes, t->repair.n, sizeof t->repair.codes[0], cmp_code);
        printf("%zu finding(s) a replay from the archive can repair; check with --dry-run, then:\n",
               t->repairable);
        for (size_t i = 0; i < t->repair.n; i++)
            printf("  rollcall replay --unit %s --from %s --to %s\n", t->repair.codes[i], period,
                   period);
    }
}

int cmd_gaps(int argc, char **argv)
{
    static const struct option opts[] = {
        {"period", required_argument, NULL, 'p'},
        {"unit", required_argument, NULL, 'u'},
        {"limit", required_argument, NULL, 'l'},
        {"dsn", required_argument, NULL, 'D'},
        {NULL, 0, NULL, 0},
    };
    const char *period = NULL, *unit = "", *dsn = NULL;
    long limit = 20;
    int32_t day;
    int c, rc = CLI_FAILED;
    gap_totals t;
    char *end;
    rc_pg *pg;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'p': period = optarg; break;
        case 'u': unit = optarg; break;
        case 'l':
            limit = strtol(optarg, &end, 10);
            if (*end || limit < 0)
                return cli_usage_error("gaps", "--limit needs a number >= 0");
            break;
        case 'D': dsn = optarg; break;
        default: return cli_usage_error("gaps", "bad option");
        }
    }
    if (optind < argc)
        return cli_usage_error("gaps", "unexpected argument '%s'", argv[optind]);
    if (!period || rc_period_parse(period, &day) < 0)
        return cli_usage_error("gaps", "--period needs a date YYYY-MM-DD");
    if (unit[0] && rc_code_level(unit) == 0)
        return cli_usage_error("gaps", "--unit needs a unit code (2, 4, 6, 9 or 12 digits)");
    pg = cli_connect(dsn, "gaps");
    if (!pg)
        return CLI_FAILED;

    memset(&t, 0, sizeof t);
    printf("gaps for %s%s%s\n", period, unit[0] ? " under " : "", unit);
    for (size_t f = 0; f < sizeof findings / sizeof findings[0]; f++)
        if (print_finding(pg, f, period, unit, limit, &t) < 0)
            goto done;
    print_repairs(&t, period, unit);
    rc = t.total == 0 ? CLI_OK : 3;   /* 3: gaps found (scripts tell it from a failure) */
done:
    free(t.repair.codes);
    rc_pg_free(pg);
    return rc;
}
