/* rc_sql — see rc_sql.h. */
#include "rc_sql.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rc_sqlarr_init(rc_sqlarr *a)
{
    memset(a, 0, sizeof *a);
}

void rc_sqlarr_free(rc_sqlarr *a)
{
    free(a->buf);
    memset(a, 0, sizeof *a);
}

void rc_sqlarr_reset(rc_sqlarr *a)
{
    a->len = 0;
    a->n = 0;
    a->oom = false;
}

static bool reserve(rc_sqlarr *a, size_t more)
{
    size_t want = a->len + more + 3;  /* room for '{', '}' and NUL */
    char *p;

    if (a->oom)
        return false;
    if (want <= a->cap)
        return true;
    size_t cap = a->cap ? a->cap : 256;
    while (cap < want)
        cap *= 2;
    p = realloc(a->buf, cap);
    if (!p) {
        a->oom = true;
        return false;
    }
    a->buf = p;
    a->cap = cap;
    return true;
}

static void sep(rc_sqlarr *a)
{
    if (a->len == 0)
        a->buf[a->len++] = '{';
    else
        a->buf[a->len++] = ',';
    a->n++;
}

void rc_sqlarr_text(rc_sqlarr *a, const char *s)
{
    size_t n;

    if (!s) {
        rc_sqlarr_null(a);
        return;
    }
    n = strlen(s);
    if (!reserve(a, 2 * n + 3))
        return;
    sep(a);
    a->buf[a->len++] = '"';
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            a->buf[a->len++] = '\\';
        a->buf[a->len++] = *s;
    }
    a->buf[a->len++] = '"';
}

void rc_sqlarr_null(rc_sqlarr *a)
{
    if (!reserve(a, 5))
        return;
    sep(a);
    memcpy(a->buf + a->len, "NULL", 4);
    a->len += 4;
}

void rc_sqlarr_int(rc_sqlarr *a, long long v)
{
    if (!reserve(a, 24))
        return;
    sep(a);
    a->len += (size_t)snprintf(a->buf + a->len, 24, "%lld", v);
}

void rc_sqlarr_bool(rc_sqlarr *a, bool v)
{
    if (!reserve(a, 2))
        return;
    sep(a);
    a->buf[a->len++] = v ? 't' : 'f';
}

void rc_sqlarr_bytea(rc_sqlarr *a, const uint8_t *p, size_t len)
{
    static const char hex[] = "0123456789abcdef";

    if (!reserve(a, 2 * len + 8))
        return;
    sep(a);
    /* "\\x..." inside the array literal is the bytea text \x... */
    memcpy(a->buf + a->len, "\"\\\\x", 4);
    a->len += 4;
    for (size_t i = 0; i < len; i++) {
        a->buf[a->len++] = hex[p[i] >> 4];
        a->buf[a->len++] = hex[p[i] & 15];
    }
    a->buf[a->len++] = '"';
}

const char *rc_sqlarr_get(rc_sqlarr *a)
{
    if (a->oom)
        return NULL;
    if (!reserve(a, 2))
        return NULL;
    if (a->len == 0) {
        memcpy(a->buf, "{}", 3);
        return a->buf;
    }
    a->buf[a->len] = '}';
    a->buf[a->len + 1] = '\0';
    return a->buf;
}

long rc_sql_exec_count(rc_pg *pg, const char *sql, int n, const char *const *params,
                       char *errbuf, size_t errlen)
{
    PGresult *res = n ? rc_pg_exec_params(pg, sql, n, params, errbuf, errlen)
                      : rc_pg_exec(pg, sql, errbuf, errlen);
    long count;

    if (!res)
        return -1;
    count = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && PQnfields(res) == 1
                ? atol(PQgetvalue(res, 0, 0))
                : atol(PQcmdTuples(res));
    PQclear(res);
    return count;
}
