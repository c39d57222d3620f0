/* rc_sql — see rc_sql.h. */
#include "rc_sql.h"
#include "rc_buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rc_sqlarr_init(rc_sqlarr *a)
{
    memset(a, 0, sizeof *a);
}

void rc_sqlarr_free(rc_sqlarr *a)
{
    rc_buf_free(&a->b);
    a->n = 0;
}

void rc_sqlarr_reset(rc_sqlarr *a)
{
    rc_buf_clear(&a->b);
    a->n = 0;
}

/* Room for `more` bytes of element and the closing '}'. */
static bool reserve(rc_sqlarr *a, size_t more)
{
    return rc_buf_reserve(&a->b, more + 2);
}

static void sep(rc_sqlarr *a)
{
    char c = a->b.len == 0 ? '{' : ',';

    a->b.p[a->b.len++] = c;
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
    a->b.p[a->b.len++] = '"';
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            a->b.p[a->b.len++] = '\\';
        a->b.p[a->b.len++] = *s;
    }
    a->b.p[a->b.len++] = '"';
}

void rc_sqlarr_null(rc_sqlarr *a)
{
    if (!reserve(a, 5))
        return;
    sep(a);
    memcpy(a->b.p + a->b.len, "NULL", 4);
    a->b.len += 4;
}

void rc_sqlarr_int(rc_sqlarr *a, long long v)
{
    if (!reserve(a, 24))
        return;
    sep(a);
    a->b.len += (size_t)snprintf(a->b.p + a->b.len, 24, "%lld", v);
}

void rc_sqlarr_bool(rc_sqlarr *a, bool v)
{
    if (!reserve(a, 2))
        return;
    sep(a);
    a->b.p[a->b.len++] = v ? 't' : 'f';
}

void rc_sqlarr_bytea(rc_sqlarr *a, const uint8_t *p, size_t len)
{
    static const char hex[] = "0123456789abcdef";

    if (!reserve(a, 2 * len + 8))
        return;
    sep(a);
    /* "\\x..." inside the array literal is the bytea text \x... */
    memcpy(a->b.p + a->b.len, "\"\\\\x", 4);
    a->b.len += 4;
    for (size_t i = 0; i < len; i++) {
        a->b.p[a->b.len++] = hex[p[i] >> 4];
        a->b.p[a->b.len++] = hex[p[i] & 15];
    }
    a->b.p[a->b.len++] = '"';
}

const char *rc_sqlarr_get(rc_sqlarr *a)
{
    if (!reserve(a, 0))
        return NULL;
    if (a->b.len == 0) {
        memcpy(a->b.p, "{}", 3);
        return a->b.p;
    }
    /* Closed past len, so that more elements may still be appended. */
    a->b.p[a->b.len] = '}';
    a->b.p[a->b.len + 1] = '\0';
    return a->b.p;
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
