/* rc_migrate — see rc_migrate.h.  Scanning and planning are pure functions;
 * rc_migrate() adds the database: advisory lock, tracking table, one
 * transaction per file. */
#include "rc_migrate.h"
#include "rc_log.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static void set_err(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *errbuf, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!errbuf || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

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
        set_err(errbuf, errlen,
                "migration file %s: name must be NNN_name.sql (3-6 digits, underscore)", file);
        return -1;
    }
    for (i = 0; i < digits; i++)
        v = v * 10 + (file[i] - '0');
    nm = file + digits + 1;
    nmlen = len - 4 - digits - 1;
    if (nmlen == 0 || nmlen >= namelen) {
        set_err(errbuf, errlen, "migration file %s: name part empty or too long", file);
        return -1;
    }
    for (i = 0; i < nmlen; i++) {
        char c = nm[i];
        if (!(islower((unsigned char)c) || isdigit((unsigned char)c) || c == '_')) {
            set_err(errbuf, errlen,
                    "migration file %s: name part may hold only a-z, 0-9 and _", file);
            return -1;
        }
    }
    if (v == 0) {
        set_err(errbuf, errlen, "migration file %s: numbering starts at 001", file);
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
            set_err(errbuf, errlen, "duplicate migration number %03d: %s and %s",
                    m->version, set->items[i - 1].file, m->file);
            return -1;
        }
        if (m->version != (int)i + 1) {
            set_err(errbuf, errlen,
                    "gap in migration numbers: expected %03zu, found %s", i + 1, m->file);
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
        set_err(errbuf, errlen, "%s: %s", path, strerror(errno));
        goto done;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        set_err(errbuf, errlen, "%s: out of memory", path);
        goto done;
    }
    if (fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
        set_err(errbuf, errlen, "%s: short read", path);
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

int rc_migrate_load_dir(const char *dir, rc_migration_set *out, char *errbuf, size_t errlen)
{
    DIR *d = NULL;
    struct dirent *de;
    rc_migration_set set = {NULL, 0};
    size_t cap = 0;
    int rc = -1;

    d = opendir(dir);
    if (!d) {
        set_err(errbuf, errlen, "migrations directory %s: %s", dir, strerror(errno));
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
            set_err(errbuf, errlen, "migration file name too long: %s", de->d_name);
            goto done;
        }
        strcpy(m.file, de->d_name);
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (read_file(path, &m.sql, &m.sql_len, errbuf, errlen) < 0)
            goto done;
        rc_migrate_sha256_hex(m.sql, m.sql_len, m.checksum);
        if (set.count == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            rc_migration *items = realloc(set.items, ncap * sizeof *items);
            if (!items) {
                free(m.sql);
                set_err(errbuf, errlen, "out of memory");
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

int rc_migrate_plan(const rc_migration_set *set, const rc_migration_applied *applied,
                    size_t napplied, size_t *first_pending, char *errbuf, size_t errlen)
{
    size_t next = 0;

    /* Check every applied row before deciding anything: one changed file
     * refuses the whole run. */
    for (size_t i = 0; i < napplied; i++) {
        const rc_migration_applied *a = &applied[i];
        const rc_migration *m = NULL;
        if (a->version >= 1 && (size_t)a->version <= set->count)
            m = &set->items[a->version - 1];
        if (!m) {
            set_err(errbuf, errlen,
                    "database has migration %03d_%s applied but no such file exists "
                    "(is this an older rollcall than the database?)",
                    a->version, a->name ? a->name : "?");
            return -1;
        }
        if (!a->checksum || strcmp(a->checksum, m->checksum) != 0) {
            set_err(errbuf, errlen,
                    "migration %s was changed after it was applied: applied checksum %s, "
                    "file checksum %s; write a new migration instead of editing an applied one",
                    m->file, a->checksum ? a->checksum : "(none)", m->checksum);
            return -1;
        }
        if ((size_t)a->version > next)
            next = (size_t)a->version;
    }
    /* Applied versions are a prefix 1..next (each is applied with its row in
     * one transaction, in order); anything else means a hand-edited table. */
    if (napplied != next) {
        set_err(errbuf, errlen,
                "rollcall.schema_migration holds %zu rows but its highest version is %zu",
                napplied, next);
        return -1;
    }
    *first_pending = next;
    return 0;
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
        set_err(errbuf, errlen, "out of memory");
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
        set_err(errbuf, errlen, "migration %s failed: %s", m->file, msg);
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
        set_err(errbuf, errlen, "migration %s: recording it failed: %s", m->file, msg);
        goto failed;
    }
    PQclear(res);
    if (rc_pg_commit(pg, msg, sizeof msg) < 0) {
        set_err(errbuf, errlen, "migration %s: commit failed: %s", m->file, msg);
        goto failed;
    }
    return 0;
failed:
    if (rc_pg_in_transaction(pg))
        rc_pg_rollback(pg, NULL, 0);
    return -1;
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
    if (rc_migrate_plan(&set, applied, napplied, &first, errbuf, errlen) < 0)
        goto done;
    if (first == set.count) {
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
