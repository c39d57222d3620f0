/* What a replay changes in rollcall.v_unit_day: the (unit, period) rows it
 * can touch (each report's unit and rollup ancestors), their state before,
 * and the change — after the real run, or in a dry run computed by applying
 * the staged reports in a transaction that is rolled back.  Dry and real
 * runs print the change with the same code, so their output compares. */
#include "replay.h"
#include "rc_buf.h"
#include "rc_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEYBUF_FLUSH (1 << 20)

struct replay_diff {
    rc_pg *pg;
    rc_buf keys;           /* COPY text rows "unit\tperiod\n" not yet in replay_keys */
    bool staging;          /* COPY into the rollup's stage open */
    bool in_dry_tx;
    char *cols;            /* v_unit_day's compared columns, "unit_code, level, ..." */
    char scope[512];       /* WHERE clause over v_unit_day selecting the rows a replay can touch */
    bool subtree;          /* scope is a subtree and periods; no key table */
};

/* Columns of v_unit_day that are not compared: when a row was last written
 * says nothing about its content (a dry run's rows are "written" at the
 * dry run's time). */
static const char *const volatile_cols[] = {"updated_at", NULL};

static int load_columns(replay_diff *d, char *errbuf, size_t errlen)
{
    PGresult *res = rc_pg_exec(d->pg,
                               "SELECT attname FROM pg_attribute "
                               " WHERE attrelid = 'rollcall.v_unit_day'::regclass "
                               "   AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                               errbuf, errlen);
    rc_buf cols = RC_BUF_INIT;

    if (!res)
        return -1;
    for (int i = 0; i < PQntuples(res); i++) {
        const char *name = PQgetvalue(res, i, 0);
        bool skip = false;
        for (size_t j = 0; volatile_cols[j]; j++)
            skip = skip || strcmp(name, volatile_cols[j]) == 0;
        if (!skip)
            rc_buf_add(&cols, "%s%s", cols.len ? ", " : "", name);
    }
    PQclear(res);
    if (!(d->cols = rc_buf_take(&cols))) {
        snprintf(errbuf, errlen, "out of memory");
        return -1;
    }
    return 0;
}

replay_diff *replay_diff_new(rc_pg *pg, char *errbuf, size_t errlen)
{
    replay_diff *d = calloc(1, sizeof *d);
    char sql[8192];

    if (!d) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    d->pg = pg;
    snprintf(d->scope, sizeof d->scope,
             "(unit_code, period) IN (SELECT unit_code, period FROM replay_keys)");
    if (load_columns(d, errbuf, errlen) < 0)
        goto failed;
    /* Session tables: the snapshot must survive the dry run's rollback. */
    /* Times print in the periods' zone; the diff is text, compared as text. */
    snprintf(sql, sizeof sql,
             "SET TimeZone = 'Asia/Shanghai';"
             "CREATE TEMP TABLE IF NOT EXISTS replay_keys "
             "  (unit_code text, period date, PRIMARY KEY (unit_code, period));"
             "CREATE TEMP TABLE IF NOT EXISTS replay_keys_in (unit_code text, period date);"
             "DROP TABLE IF EXISTS replay_before;"
             "CREATE TEMP TABLE replay_before AS SELECT %s FROM rollcall.v_unit_day WITH NO DATA;"
             "TRUNCATE replay_keys, replay_keys_in",
             d->cols);
    if (rc_pg_command(pg, sql, errbuf, errlen) < 0)
        goto failed;
    return d;
failed:
    replay_diff_free(d);
    return NULL;
}

void replay_diff_free(replay_diff *d)
{
    if (!d)
        return;
    if (d->staging)
        rc_pg_copy_abort(d->pg, "replay stopped");
    if (rc_pg_in_transaction(d->pg))
        rc_pg_rollback(d->pg, NULL, 0);
    rc_buf_free(&d->keys);
    free(d->cols);
    free(d);
}

/* ------------------------------------------------------------------ keys */

int replay_diff_scope_subtree(replay_diff *d, const char *unit, const char *from, const char *to,
                              char *errbuf, size_t errlen)
{
    static const size_t lens[] = {2, 6, 9};
    size_t len = 0, ulen = strlen(unit);

    /* The values were checked by the caller (digits, real dates); they go
     * into the SQL text because the same clause serves several statements. */
    for (const char *p = unit; *p; p++)
        if (*p < '0' || *p > '9') {
            snprintf(errbuf, errlen, "bad unit code %s", unit);
            return -1;
        }
    len += (size_t)snprintf(d->scope + len, sizeof d->scope - len,
                            "period BETWEEN '%s' AND '%s' AND (unit_code LIKE '%s%%'", from, to,
                            unit);
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
        if (lens[i] < ulen)
            len += (size_t)snprintf(d->scope + len, sizeof d->scope - len,
                                    " OR unit_code = '%.*s'", (int)lens[i], unit);
    snprintf(d->scope + len, sizeof d->scope - len, ")");
    d->subtree = true;
    return 0;
}

int replay_diff_add_key(replay_diff *d, const char *unit_code, const char *period,
                        char *errbuf, size_t errlen)
{
    static const int lens[] = {12, 9, 6, 2};
    size_t ulen = strlen(unit_code);

    if (d->subtree)
        return 0;   /* the scope already covers it */

    if (ulen > 12 || strlen(period) != 10) {
        snprintf(errbuf, errlen, "bad key %s %s", unit_code, period);
        return -1;
    }
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
        if ((size_t)lens[i] <= ulen)
            rc_buf_add(&d->keys, "%.*s\t%s\n", lens[i], unit_code, period);
    if (d->keys.oom) {
        snprintf(errbuf, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static int flush_keys(replay_diff *d, char *errbuf, size_t errlen)
{
    if (d->keys.len == 0)
        return 0;
    if (rc_pg_copy_begin(d->pg, "COPY replay_keys_in FROM STDIN", errbuf, errlen) < 0)
        return -1;
    if (rc_pg_copy_put(d->pg, d->keys.p, d->keys.len, errbuf, errlen) < 0 ||
        rc_pg_copy_end(d->pg, NULL, errbuf, errlen) < 0)
        return -1;
    rc_buf_clear(&d->keys);
    return rc_pg_command(d->pg,
                         "INSERT INTO replay_keys SELECT DISTINCT unit_code, period "
                         "FROM replay_keys_in ON CONFLICT DO NOTHING; TRUNCATE replay_keys_in",
                         errbuf, errlen);
}

/* --------------------------------------------------------------- staging */

int replay_diff_stage_begin(replay_diff *d, char *errbuf, size_t errlen)
{
    if (rc_pg_begin(d->pg, errbuf, errlen) < 0)
        return -1;
    d->in_dry_tx = true;
    if (replay_apply_stage_begin(d->pg, errbuf, errlen) < 0)
        return -1;
    d->staging = true;
    return 0;
}

int replay_diff_stage(replay_diff *d, const Rollcall__Report *r, const char *topic,
                      const uint8_t *payload, size_t len, char *errbuf, size_t errlen)
{
    if (!d->staging) {
        snprintf(errbuf, errlen, "replay_diff_stage outside staging");
        return -1;
    }
    if (replay_apply_stage_row(d->pg, r, topic, payload, len, errbuf, errlen) < 0) {
        d->staging = false;     /* the COPY is over */
        return -1;
    }
    return replay_diff_add_key(d, r->unit_code, r->period, errbuf, errlen);
}

int replay_diff_stage_end(replay_diff *d, char *errbuf, size_t errlen)
{
    if (!d->staging)
        return 0;
    d->staging = false;
    return rc_pg_copy_end(d->pg, NULL, errbuf, errlen);
}

/* -------------------------------------------------------------- snapshot */

int replay_diff_snapshot(replay_diff *d, char *errbuf, size_t errlen)
{
    char sql[8192];
    double t0 = cli_now();
    int rc;

    if (replay_diff_stage_end(d, errbuf, errlen) < 0 || flush_keys(d, errbuf, errlen) < 0)
        return -1;
    snprintf(sql, sizeof sql,
             "TRUNCATE replay_before;"
             "ANALYZE replay_keys;"
             "INSERT INTO replay_before SELECT %s FROM rollcall.v_unit_day WHERE %s;"
             "ANALYZE replay_before",
             d->cols, d->scope);
    rc = rc_pg_command(d->pg, sql, errbuf, errlen);
    if (rc == 0)
        fprintf(stderr, "replay: state before taken (%.1f s)\n", cli_now() - t0);
    return rc;
}

/* ------------------------------------------------------------------ diff */

static bool is_empty_value(const char *v)
{
    return strcmp(v, "0") == 0 || strcmp(v, "{}") == 0 || strcmp(v, "") == 0 ||
           strcmp(v, "f") == 0;
}

/* Prints one unit-period's change: columns that differ, or for a row that
 * appears or disappears, its columns that are set.  The result row holds
 * the row before in columns [0, n) and the row after in [n, 2n); a side
 * whose unit_code is NULL did not exist. */
static void print_change(FILE *out, const PGresult *res, int row, int n)
{
    bool had = !PQgetisnull(res, row, 0), has = !PQgetisnull(res, row, n);
    int base = had ? 0 : n;
    bool first = true;

    fprintf(out, "%-8s %-12s %s:", PQgetvalue(res, row, base + 1), PQgetvalue(res, row, base),
            PQgetvalue(res, row, base + 2));
    if (!had)
        fprintf(out, " (none) ->");
    for (int f = 3; f < n; f++) {
        const char *name = PQfname(res, f);
        bool bnull = !had || PQgetisnull(res, row, f);
        bool anull = !has || PQgetisnull(res, row, n + f);
        const char *bv = bnull ? "" : PQgetvalue(res, row, f);
        const char *av = anull ? "" : PQgetvalue(res, row, n + f);

        if (had && has) {
            if (bnull == anull && strcmp(bv, av) == 0)
                continue;
            fprintf(out, "%s %s %s -> %s", first ? "" : ",", name, bnull ? "null" : bv,
                    anull ? "null" : av);
        } else {
            const char *v = had ? bv : av;
            if ((had ? bnull : anull) || is_empty_value(v))
                continue;
            fprintf(out, "%s %s %s", first ? "" : ",", name, v);
        }
        first = false;
    }
    if (!has)
        fprintf(out, " -> (none)");
    fprintf(out, "\n");
}

static long long print_diff(replay_diff *d, FILE *out, long limit, char *errbuf, size_t errlen)
{
    char *sql;
    size_t cap = 4 * strlen(d->cols) + sizeof d->scope + 2048;
    PGresult *res;
    long long units;
    long per_level[6] = {0};
    double t0 = cli_now();
    int n, ncols;

    sql = malloc(cap);
    if (!sql) {
        snprintf(errbuf, errlen, "out of memory");
        return -1;
    }
    /* Joined on the key, compared as whole rows (NULLs equal): the rows
     * that changed, appeared or disappeared, before and after side by side.
     * The view's first three columns are unit_code, level, period. */
    snprintf(sql, cap,
             "WITH cur AS (SELECT %s FROM rollcall.v_unit_day WHERE %s)"
             "SELECT b.*, c.* FROM replay_before b"
             "  FULL JOIN cur c ON c.unit_code = b.unit_code AND c.period = b.period"
             " WHERE ROW(b.*) IS DISTINCT FROM ROW(c.*)"
             " ORDER BY coalesce(b.level, c.level) = 'village',"
             "          coalesce(b.level, c.level) = 'township',"
             "          coalesce(b.level, c.level) = 'county',"
             "          coalesce(b.unit_code, c.unit_code), coalesce(b.period, c.period)",
             d->cols, d->scope);
    res = rc_pg_exec(d->pg, sql, errbuf, errlen);
    free(sql);
    if (!res)
        return -1;
    fprintf(stderr, "replay: change computed (%.1f s)\n", cli_now() - t0);
    ncols = PQnfields(res) / 2;
    n = PQntuples(res);
    for (int i = 0; i < n; i++) {
        int base = PQgetisnull(res, i, 0) ? ncols : 0;
        const char *lv = PQgetvalue(res, i, base + 1);
        per_level[strcmp(lv, "village") == 0    ? 1
                  : strcmp(lv, "township") == 0 ? 2
                  : strcmp(lv, "county") == 0   ? 3
                  : strcmp(lv, "province") == 0 ? 5
                                                : 0]++;
        if (limit == 0 || i < limit)
            print_change(out, res, i, ncols);
    }
    units = n;
    PQclear(res);
    if (limit > 0 && units > limit)
        fprintf(out, "... and %lld more\n", units - limit);
    fprintf(out, "%lld row(s) of rollcall.v_unit_day changed: %ld province, %ld county, "
                 "%ld township, %ld village\n",
            units, per_level[5], per_level[3], per_level[2], per_level[1]);
    return units;
}

long long replay_diff_dry_run(replay_diff *d, FILE *out, long limit, char *errbuf, size_t errlen)
{
    long long n = -1;

    if (!d->in_dry_tx) {
        snprintf(errbuf, errlen, "dry run without staged reports");
        return -1;
    }
    if (replay_apply_staged(d->pg, errbuf, errlen) < 0)
        goto done;
    n = print_diff(d, out, limit, errbuf, errlen);
done:
    /* Everything the dry run did goes: the staged rows, the applied
     * reports, the aggregates the rollup's functions recomputed. */
    rc_pg_rollback(d->pg, NULL, 0);
    d->in_dry_tx = false;
    return n;
}

long long replay_diff_print(replay_diff *d, FILE *out, long limit, char *errbuf, size_t errlen)
{
    return print_diff(d, out, limit, errbuf, errlen);
}
