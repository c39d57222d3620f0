/* rc_migrate — see rc_migrate.h.  Scanning and planning are pure functions;
 * rc_migrate() adds the database: advisory lock, tracking table, one
 * transaction per file. */
#include "rc_migrate.h"
#include "rc_buf.h"
#include "rc_log.h"
#include "rc_report.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

int rc_migrate_parse_filename(const char *file, int *version, char *name, size_t namelen,
                              char *errbuf, size_t errlen)
{
    size_t len = strlen(file), digits = 0, i;
    const char *nm;
    size_t nmlen;
    long v = 0;

    if (len < 4 || strcmp(file + len - 4, ".sql") != 0)
        return 0;
    while (isdigit((unsigned char)file[digits]))
        digits++;
    if (digits < 3 || digits > 6 || file[digits] != '_') {
        rc_errf(errbuf, errlen,
                "migration file %s: name must be NNN_name.sql (3-6 digits, underscore)", file);
        return -1;
    }
    for (i = 0; i < digits; i++)
        v = v * 10 + (file[i] - '0');
    nm = file + digits + 1;
    nmlen = len - 4 - digits - 1;
    if (nmlen == 0 || nmlen >= namelen) {
        rc_errf(errbuf, errlen, "migration file %s: name part empty or too long", file);
        return -1;
    }
    for (i = 0; i < nmlen; i++) {
        char c = nm[i];
        if (!(islower((unsigned char)c) || isdigit((unsigned char)c) || c == '_')) {
            rc_errf(errbuf, errlen,
                    "migration file %s: name part may hold only a-z, 0-9 and _", file);
            return -1;
        }
    }
    if (v == 0) {
        rc_errf(errbuf, errlen, "migration file %s: numbering starts at 001", file);
        return -1;
    }
    *version = (int)v;
    memcpy(name, nm, nmlen);
    name[nmlen] = '\0';
    return 1;
}

void rc_migrate_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    static const char hex[] = "0123456789abcdef";

    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    for (unsigned int i = 0; i < mdlen && i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
}

static int by_version(const void *a, const void *b)
{
    const rc_migration *x = a, *y = b;
    if (x->version != y->version)
        return x->version < y->version ? -1 : 1;
    return strcmp(x->file, y->file);
}

int rc_migrate_check_sequence(rc_migration_set *set, char *errbuf, size_t errlen)
{
    if (set->count > 1)
        qsort(set->items, set->count, sizeof *set->items, by_version);
    for (size_t i = 0; i < set->count; i++) {
        const rc_migration *m = &set->items[i];
        if (i > 0 && m->version == set->items[i - 1].version) {
            rc_errf(errbuf, errlen, "duplicate migration number %03d: %s and %s",
                    m->version, set->items[i - 1].file, m->file);
            return -1;
        }
        /* A baseline stands for the numbers it squashed: the next file may
         * skip them. */
        int expected = i == 0 ? 1 : set->items[i - 1].version + 1;
        bool after_baseline = i > 0 && strcmp(set->items[i - 1].name, "baseline") == 0;
        if (m->version != expected && !(after_baseline && m->version > expected)) {
            rc_errf(errbuf, errlen,
                    "gap in migration numbers: expected %03d, found %s", expected, m->file);
            return -1;
        }
    }
    return 0;
}

static int read_file(const char *path, char **out, size_t *outlen, char *errbuf, size_t errlen)
{
    FILE *f = NULL;
    char *buf = NULL;
    struct stat st;
    int rc = -1;

    f = fopen(path, "rb");
    if (!f || fstat(fileno(f), &st) < 0) {
        rc_errf(errbuf, errlen, "%s: %s", path, strerror(errno));
        goto done;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        rc_errf(errbuf, errlen, "%s: out of memory", path);
        goto done;
    }
    if (fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
        rc_errf(errbuf, errlen, "%s: short read", path);
        goto done;
    }
    buf[st.st_size] = '\0';
    *out = buf;
    *outlen = (size_t)st.st_size;
    buf = NULL;
    rc = 0;
done:
    free(buf);
    if (f)
        fclose(f);
    return rc;
}

/* ---- the indicator list and @indicators(TEMPLATE) ---- */

/* Copies src to dst without its comments (// to the end of the line and
 * / * ... * /), so the field scan below sees declarations only. */
static void strip_comments(const char *src, char *dst)
{
    while (*src) {
        if (src[0] == '/' && src[1] == '/') {
            while (*src && *src != '\n')
                src++;
        } else if (src[0] == '/' && src[1] == '*') {
            src += 2;
            while (*src && !(src[0] == '*' && src[1] == '/'))
                src++;
            if (*src)
                src += 2;
            *dst++ = ' ';
        } else {
            *dst++ = *src++;
        }
    }
    *dst = '\0';
}

typedef struct numbered {
    long number;
    char name[64];
} numbered;

static int by_number(const void *a, const void *b)
{
    const numbered *x = a, *y = b;
    return x->number < y->number ? -1 : x->number > y->number;
}

int rc_migrate_read_proto(const char *path, rc_indicator_list *out, char *errbuf, size_t errlen)
{
    char *text = NULL, *clean = NULL, *p, *end;
    numbered fields[RC_MIGRATE_MAX_INDICATORS];
    size_t len = 0, n = 0;
    int rc = -1;

    if (read_file(path, &text, &len, errbuf, errlen) < 0)
        return -1;
    clean = malloc(len + 1);
    if (!clean) {
        rc_errf(errbuf, errlen, "%s: out of memory", path);
        goto done;
    }
    strip_comments(text, clean);
    p = strstr(clean, "message Indicators");
    if (!p || !(p = strchr(p, '{')) || !(end = strchr(p, '}'))) {
        rc_errf(errbuf, errlen, "%s: no message Indicators { ... }", path);
        goto done;
    }
    *end = '\0';
    /* One declaration per ';': "int64 name = number". */
    for (char *stmt = p + 1, *semi; (semi = strchr(stmt, ';')) != NULL; stmt = semi + 1) {
        char type[32], name[64], eq[2];
        long number;
        *semi = '\0';
        if (sscanf(stmt, " %31s %63[a-z0-9_] %1[=] %ld", type, name, eq, &number) != 4) {
            if (strspn(stmt, " \t\r\n") == strlen(stmt))
                continue;
            rc_errf(errbuf, errlen, "%s: Indicators: cannot read the declaration '%.60s'", path,
                    stmt + strspn(stmt, " \t\r\n"));
            goto done;
        }
        if (strcmp(type, "reserved") == 0 || strcmp(type, "option") == 0)
            continue;
        if (strcmp(type, "int64") != 0) {
            rc_errf(errbuf, errlen, "%s: indicator %s is %s; indicators are int64 (bigint columns)",
                    path, name, type);
            goto done;
        }
        if (n == RC_MIGRATE_MAX_INDICATORS) {
            rc_errf(errbuf, errlen, "%s: more than %d indicators", path, RC_MIGRATE_MAX_INDICATORS);
            goto done;
        }
        fields[n].number = number;
        snprintf(fields[n].name, sizeof fields[n].name, "%s", name);
        n++;
    }
    if (n == 0) {
        rc_errf(errbuf, errlen, "%s: message Indicators has no fields", path);
        goto done;
    }
    /* Field-number order, as in the compiled descriptor and the columns. */
    qsort(fields, n, sizeof *fields, by_number);
    out->count = n;
    for (size_t i = 0; i < n; i++)
        memcpy(out->name[i], fields[i].name, sizeof out->name[i]);
    rc = 0;
done:
    free(text);
    free(clean);
    return rc;
}

void rc_migrate_built_indicators(rc_indicator_list *out)
{
    out->count = 0;
    for (size_t i = 0; i < rc_indicator_count() && i < RC_MIGRATE_MAX_INDICATORS; i++)
        snprintf(out->name[out->count++], sizeof out->name[0], "%s", rc_indicator_name(i));
}

static const char macro[] = "@indicators(";

int rc_migrate_expand(const char *sql, const rc_indicator_list *ind, char **out,
                      char *errbuf, size_t errlen)
{
    rc_buf b = RC_BUF_INIT;
    const char *s = sql, *at;

    while ((at = strstr(s, macro)) != NULL) {
        const char *tpl = at + sizeof macro - 1, *close = tpl;
        int depth = 1;

        for (; *close; close++) {
            if (*close == '(')
                depth++;
            else if (*close == ')' && --depth == 0)
                break;
        }
        if (!*close) {
            int line = 1;
            for (const char *q = sql; q < at; q++)
                line += *q == '\n';
            rc_errf(errbuf, errlen, "line %d: @indicators( without its closing parenthesis", line);
            rc_buf_free(&b);
            return -1;
        }
        rc_buf_addn(&b, s, (size_t)(at - s));
        for (size_t i = 0; i < ind->count; i++) {
            if (i > 0)
                rc_buf_addn(&b, ", ", 2);
            for (const char *q = tpl; q < close; q++) {
                if (q[0] == '{' && q[1] == '}') {
                    rc_buf_add(&b, "%s", ind->name[i]);
                    q++;
                } else {
                    rc_buf_addn(&b, q, 1);
                }
            }
        }
        s = close + 1;
    }
    rc_buf_add(&b, "%s", s);
    *out = rc_buf_take(&b);
    if (!*out) {
        rc_errf(errbuf, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* The indicator list for the migrations of `dir`: the .proto beside them
 * ($ROLLCALL_PROTO, else DIR/../proto/rollcall.proto: the source tree, and
 * share/rollcall/ when installed), which must agree with the list this
 * rollcall was built with; without a .proto, the built-in list. */
static int resolve_indicators(const char *dir, rc_indicator_list *ind, char *errbuf, size_t errlen)
{
    const char *env = getenv("ROLLCALL_PROTO");
    rc_indicator_list built;
    char path[4096];
    struct stat st;

    rc_migrate_built_indicators(&built);
    if (env && env[0])
        snprintf(path, sizeof path, "%s", env);
    else
        snprintf(path, sizeof path, "%s/../proto/rollcall.proto", dir);
    if (stat(path, &st) != 0) {
        if (env && env[0]) {
            rc_errf(errbuf, errlen, "ROLLCALL_PROTO=%s: %s", env, strerror(errno));
            return -1;
        }
        *ind = built;
        return 0;
    }
    if (rc_migrate_read_proto(path, ind, errbuf, errlen) < 0)
        return -1;
    for (size_t i = 0; i < ind->count || i < built.count; i++) {
        const char *f = i < ind->count ? ind->name[i] : "(none)";
        const char *b = i < built.count ? built.name[i] : "(none)";
        if (strcmp(f, b) != 0) {
            rc_errf(errbuf, errlen,
                    "%s lists indicator %zu as %s but this rollcall was built with %s: "
                    "rebuild (make) so the services and the schema agree", path, i + 1, f, b);
            return -1;
        }
    }
    return 0;
}

int rc_migrate_load_dir(const char *dir, rc_migration_set *out, char *errbuf, size_t errlen)
{
    DIR *d = NULL;
    struct dirent *de;
    rc_migration_set set = {NULL, 0};
    rc_indicator_list ind;
    bool have_ind = false;
    size_t cap = 0;
    int rc = -1;

    d = opendir(dir);
    if (!d) {
        rc_errf(errbuf, errlen, "migrations directory %s: %s", dir, strerror(errno));
        goto done;
    }
    while ((de = readdir(d)) != NULL) {
        rc_migration m;
        char path[4096];
        int r;

        memset(&m, 0, sizeof m);
        r = rc_migrate_parse_filename(de->d_name, &m.version, m.name, sizeof m.name,
                                      errbuf, errlen);
        if (r < 0)
            goto done;
        if (r == 0)
            continue;
        if (strlen(de->d_name) >= sizeof m.file) {
            rc_errf(errbuf, errlen, "migration file name too long: %s", de->d_name);
            goto done;
        }
        strcpy(m.file, de->d_name);
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (read_file(path, &m.sql, &m.sql_len, errbuf, errlen) < 0)
            goto done;
        /* The checksum is the file's as written; the expansion follows the
         * .proto, and rc_migrate checks the columns against it. */
        rc_migrate_sha256_hex(m.sql, m.sql_len, m.checksum);
        if (strstr(m.sql, macro)) {
            char *expanded = NULL, msg[512];
            if (!have_ind && resolve_indicators(dir, &ind, errbuf, errlen) < 0) {
                free(m.sql);
                goto done;
            }
            have_ind = true;
            if (rc_migrate_expand(m.sql, &ind, &expanded, msg, sizeof msg) < 0) {
                rc_errf(errbuf, errlen, "%s: %s", m.file, msg);
                free(m.sql);
                goto done;
            }
            free(m.sql);
            m.sql = expanded;
            m.sql_len = strlen(expanded);
        }
        if (set.count == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            rc_migration *items = realloc(set.items, ncap * sizeof *items);
            if (!items) {
                free(m.sql);
                rc_errf(errbuf, errlen, "out of memory");
                goto done;
            }
            set.items = items;
            cap = ncap;
        }
        set.items[set.count++] = m;
    }
    if (rc_migrate_check_sequence(&set, errbuf, errlen) < 0)
        goto done;
    *out = set;
    set.items = NULL;
    set.count = 0;
    rc = 0;
done:
    rc_migrate_set_clear(&set);
    if (d)
        closedir(d);
    return rc;
}

void rc_migrate_set_clear(rc_migration_set *set)
{
    for (size_t i = 0; i < set->count; i++)
        free(set->items[i].sql);
    free(set->items);
    set->items = NULL;
    set->count = 0;
}

static const rc_migration *find_version(const rc_migration_set *set, int version)
{
    for (size_t i = 0; i < set->count; i++)
        if (set->items[i].version == version)
            return &set->items[i];
    return NULL;
}

int rc_migrate_plan(const rc_migration_set *set, const rc_migration_applied *applied,
                    size_t napplied, size_t *first_pending, char *errbuf, size_t errlen)
{
    /* Check every applied row before deciding anything: one changed file
     * refuses the whole run. */
    for (size_t i = 0; i < napplied; i++) {
        const rc_migration_applied *a = &applied[i];
        const rc_migration *m = find_version(set, a->version);
        if (!m) {
            rc_errf(errbuf, errlen,
                    "database has migration %03d_%s applied but no such file exists "
                    "(is this an older rollcall than the database?)",
                    a->version, a->name ? a->name : "?");
            return -1;
        }
        if (!a->checksum || strcmp(a->checksum, m->checksum) != 0) {
            rc_errf(errbuf, errlen,
                    "migration %s was changed after it was applied: applied checksum %s, "
                    "file checksum %s; write a new migration instead of editing an applied one",
                    m->file, a->checksum ? a->checksum : "(none)", m->checksum);
            return -1;
        }
    }
    /* Applied versions are the first files in order (each is applied with
     * its row in one transaction, in order); anything else means a
     * hand-edited table. */
    for (size_t i = 0; i < napplied; i++) {
        if (i >= set->count || applied[i].version != set->items[i].version) {
            rc_errf(errbuf, errlen,
                    "rollcall.schema_migration holds %zu rows that are not the first %zu "
                    "migration files in order (row %zu is version %03d)",
                    napplied, napplied, i + 1, applied[i].version);
            return -1;
        }
    }
    *first_pending = napplied;
    return 0;
}

/* The migrations 001_baseline.sql squashed, as a database migrated before
 * it has them recorded: their schema is the baseline's, so such a database
 * is recorded as having the baseline applied and goes on from there. */
static const struct {
    int version;
    const char *name, *checksum;
} squashed[] = {
    {1, "init", "cf079af99d6944f2015d1018c381a0963c72d09a1bc0df68576ee22a62507a7f"},
    {2, "village", "0e8822294330a91cd71d5a827233ea6c93b9b58496b7668517fc8b26081ccd66"},
    {3, "rollup", "813987d2908e8f473c7a03c3633ffc919045b0f2b7c14e2ab2bb8a36131c82bc"},
    {4, "levels", "3c4a364f99e7c27b7d4c186491107b3f0b183e9d29ba7f2c72fec0ea5803904b"},
    {5, "sweep", "efa1e4f6ac368f12672cf4bf98618d57fb08e4c6149a2ba831950ce15952ae78"},
    {6, "township_refresh", "0877e7daa68eca045f2c56931d3f273f0424de2d46f2cd649f72668eef2588ac"},
};
#define NSQUASHED (sizeof squashed / sizeof squashed[0])

int rc_migrate_squashed_chain(const rc_migration_applied *applied, size_t napplied)
{
    size_t i;

    if (napplied == 0 || !applied[0].name || strcmp(applied[0].name, squashed[0].name) != 0)
        return 0;
    for (i = 0; i < NSQUASHED; i++) {
        if (i >= napplied || applied[i].version != squashed[i].version ||
            !applied[i].name || strcmp(applied[i].name, squashed[i].name) != 0 ||
            !applied[i].checksum || strcmp(applied[i].checksum, squashed[i].checksum) != 0)
            return -1;
    }
    return 1;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static const char tracking_sql[] =
    "CREATE SCHEMA IF NOT EXISTS rollcall;\n"
    "CREATE TABLE IF NOT EXISTS rollcall.schema_migration (\n"
    "  version int PRIMARY KEY,\n"
    "  name text NOT NULL,\n"
    "  checksum text NOT NULL,\n"
    "  applied_at timestamptz NOT NULL DEFAULT now())";

/* Reads schema_migration into *res (the caller clears it).  A missing table
 * (dry run on an empty database) yields no rows. */
static int read_applied(rc_pg *pg, bool table_may_be_missing, PGresult **res,
                        rc_migration_applied **applied, size_t *napplied,
                        char *errbuf, size_t errlen)
{
    const char *sql = "SELECT version, name, checksum FROM rollcall.schema_migration "
                      "ORDER BY version";
    *res = NULL;
    *applied = NULL;
    *napplied = 0;
    if (table_may_be_missing) {
        PGresult *r = rc_pg_exec(pg, "SELECT to_regclass('rollcall.schema_migration') IS NULL",
                                 errbuf, errlen);
        if (!r)
            return -1;
        bool missing = PQgetvalue(r, 0, 0)[0] == 't';
        PQclear(r);
        if (missing)
            return 0;
    }
    *res = rc_pg_exec(pg, sql, errbuf, errlen);
    if (!*res)
        return -1;
    int n = PQntuples(*res);
    if (n == 0)
        return 0;
    *applied = calloc((size_t)n, sizeof **applied);
    if (!*applied) {
        rc_errf(errbuf, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        (*applied)[i].version = atoi(PQgetvalue(*res, i, 0));
        (*applied)[i].name = PQgetvalue(*res, i, 1);
        (*applied)[i].checksum = PQgetvalue(*res, i, 2);
    }
    *napplied = (size_t)n;
    return 0;
}

static int apply_one(rc_pg *pg, const rc_migration *m, char *errbuf, size_t errlen)
{
    char msg[768], vbuf[16];
    const char *params[3];
    PGresult *res;

    if (rc_pg_begin(pg, errbuf, errlen) < 0)
        return -1;
    if (rc_pg_command(pg, m->sql, msg, sizeof msg) < 0) {
        rc_errf(errbuf, errlen, "migration %s failed: %s", m->file, msg);
        goto failed;
    }
    snprintf(vbuf, sizeof vbuf, "%d", m->version);
    params[0] = vbuf;
    params[1] = m->name;
    params[2] = m->checksum;
    res = rc_pg_exec_params(pg,
                            "INSERT INTO rollcall.schema_migration (version, name, checksum) "
                            "VALUES ($1, $2, $3)",
                            3, params, msg, sizeof msg);
    if (!res) {
        rc_errf(errbuf, errlen, "migration %s: recording it failed: %s", m->file, msg);
        goto failed;
    }
    PQclear(res);
    if (rc_pg_commit(pg, msg, sizeof msg) < 0) {
        rc_errf(errbuf, errlen, "migration %s: commit failed: %s", m->file, msg);
        goto failed;
    }
    return 0;
failed:
    if (rc_pg_in_transaction(pg))
        rc_pg_rollback(pg, NULL, 0);
    return -1;
}

/* Records a database migrated with the squashed chain as having the
 * baseline applied (the rows of 001-006 give way to one row of 001). */
static int adopt_baseline(rc_pg *pg, const rc_migration *base, char *errbuf, size_t errlen)
{
    char sql[512], msg[512];

    snprintf(sql, sizeof sql,
             "DELETE FROM rollcall.schema_migration WHERE version BETWEEN 1 AND %zu;"
             "INSERT INTO rollcall.schema_migration (version, name, checksum) "
             "VALUES (%d, '%s', '%s')",
             NSQUASHED, base->version, base->name, base->checksum);
    if (rc_pg_begin(pg, errbuf, errlen) < 0)
        return -1;
    if (rc_pg_command(pg, sql, msg, sizeof msg) < 0 || rc_pg_commit(pg, msg, sizeof msg) < 0) {
        rc_errf(errbuf, errlen, "recording %s in place of 001-%03zu: %s", base->file, NSQUASHED,
                msg);
        if (rc_pg_in_transaction(pg))
            rc_pg_rollback(pg, NULL, 0);
        return -1;
    }
    printf("recorded %s in place of 001_init .. 006_township_refresh (the same schema)\n",
           base->file);
    rc_info("migrations 001-006 recorded as %s", base->file);
    return 0;
}

/* Every indicator of the list has its column in rollcall.latest_report: a
 * database created before an indicator was added lacks it, and the services
 * would fail on it at their first statement. */
static int check_indicator_columns(rc_pg *pg, const char *dir, char *errbuf, size_t errlen)
{
    rc_indicator_list ind;
    PGresult *res;
    int rc = -1;

    if (resolve_indicators(dir, &ind, errbuf, errlen) < 0)
        return -1;
    res = rc_pg_exec(pg, "SELECT column_name::text FROM information_schema.columns "
                         "WHERE table_schema = 'rollcall' AND table_name = 'latest_report'",
                     errbuf, errlen);
    if (!res)
        return -1;
    if (PQntuples(res) == 0) {  /* no schema of ours yet */
        rc = 0;
        goto done;
    }
    for (size_t i = 0; i < ind.count; i++) {
        bool found = false;
        for (int r = 0; r < PQntuples(res) && !found; r++)
            found = strcmp(PQgetvalue(res, r, 0), ind.name[i]) == 0;
        if (!found) {
            rc_errf(errbuf, errlen,
                    "indicator %s has no column in rollcall.latest_report: this database was "
                    "created before it was added; add it with a new migration (ALTER TABLE ... "
                    "ADD COLUMN, and the views and functions that list the indicators) or "
                    "recreate the database", ind.name[i]);
            goto done;
        }
    }
    rc = 0;
done:
    PQclear(res);
    return rc;
}

int rc_migrate(rc_pg *pg, const char *dir, bool dry_run, char *errbuf, size_t errlen)
{
    rc_migration_set set = {NULL, 0};
    rc_migration_applied *applied = NULL;
    PGresult *applied_res = NULL;
    size_t napplied = 0, first = 0;
    bool locked = false;
    char lock_sql[96];
    int rc = -1;

    if (rc_migrate_load_dir(dir, &set, errbuf, errlen) < 0)
        goto done;
    snprintf(lock_sql, sizeof lock_sql, "SELECT pg_advisory_lock(%lld)", RC_MIGRATE_LOCK_KEY);
    if (rc_pg_command(pg, lock_sql, errbuf, errlen) < 0)
        goto done;
    locked = true;
    if (!dry_run && rc_pg_command(pg, tracking_sql, errbuf, errlen) < 0)
        goto done;
    if (read_applied(pg, dry_run, &applied_res, &applied, &napplied, errbuf, errlen) < 0)
        goto done;
    if (set.count > 0 && strcmp(set.items[0].name, "baseline") == 0) {
        int chain = rc_migrate_squashed_chain(applied, napplied);
        if (chain < 0) {
            rc_errf(errbuf, errlen,
                    "the database has migration 001_%s recorded, from before the migrations "
                    "were squashed into %s, but not exactly the chain that was squashed; "
                    "recreate the database (make down; rm -rf var/pg; make up)",
                    applied[0].name, set.items[0].file);
            goto done;
        }
        if (chain > 0 && dry_run) {
            printf("would record %s in place of 001_init .. 006_township_refresh\n",
                   set.items[0].file);
            /* Plan as if it were done: the rows after 006 stay. */
            applied[NSQUASHED - 1].version = set.items[0].version;
            applied[NSQUASHED - 1].name = set.items[0].name;
            applied[NSQUASHED - 1].checksum = set.items[0].checksum;
            memmove(applied, applied + NSQUASHED - 1,
                    (napplied - NSQUASHED + 1) * sizeof *applied);
            napplied -= NSQUASHED - 1;
        } else if (chain > 0) {
            free(applied);
            applied = NULL;
            PQclear(applied_res);
            applied_res = NULL;
            if (adopt_baseline(pg, &set.items[0], errbuf, errlen) < 0 ||
                read_applied(pg, false, &applied_res, &applied, &napplied, errbuf, errlen) < 0)
                goto done;
        }
    }
    if (rc_migrate_plan(&set, applied, napplied, &first, errbuf, errlen) < 0)
        goto done;
    if (first == set.count) {
        if (!dry_run && check_indicator_columns(pg, dir, errbuf, errlen) < 0)
            goto done;
        printf("up to date: %zu migration%s applied, latest %s\n", napplied,
               napplied == 1 ? "" : "s",
               set.count ? set.items[set.count - 1].file : "(none)");
        rc = 0;
        goto done;
    }
    for (size_t i = first; i < set.count; i++) {
        const rc_migration *m = &set.items[i];
        if (dry_run) {
            printf("would apply %s (sha256 %s)\n", m->file, m->checksum);
            continue;
        }
        double t0 = now_ms();
        if (apply_one(pg, m, errbuf, errlen) < 0)
            goto done;
        printf("applied %s (%.0f ms)\n", m->file, now_ms() - t0);
        fflush(stdout);
        rc_info("migration applied file=%s version=%d sha256=%s", m->file, m->version,
                m->checksum);
    }
    if (!dry_run && check_indicator_columns(pg, dir, errbuf, errlen) < 0)
        goto done;
    rc = 0;
done:
    if (locked) {
        char unlock_sql[96];
        snprintf(unlock_sql, sizeof unlock_sql, "SELECT pg_advisory_unlock(%lld)",
                 RC_MIGRATE_LOCK_KEY);
        /* If the connection died the lock died with it. */
        rc_pg_command(pg, unlock_sql, NULL, 0);
    }
    free(applied);
    PQclear(applied_res);
    rc_migrate_set_clear(&set);
    return rc;
}
