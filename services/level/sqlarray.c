/* PostgreSQL array literals, so that a whole batch goes to the server as one
 * statement over unnest($1::text[], $2::date[], ...) instead of one round
 * trip per row. */
#include "level.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sqlarr_init(sqlarr *a)
{
    memset(a, 0, sizeof *a);
}

void sqlarr_free(sqlarr *a)
{
    free(a->buf);
    memset(a, 0, sizeof *a);
}

void sqlarr_reset(sqlarr *a)
{
    a->len = 0;
    a->n = 0;
    a->oom = false;
}

static bool reserve(sqlarr *a, size_t more)
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

static void sep(sqlarr *a)
{
    if (a->len == 0)
        a->buf[a->len++] = '{';
    else
        a->buf[a->len++] = ',';
    a->n++;
}

void sqlarr_text(sqlarr *a, const char *s)
{
    size_t n;

    if (!s) {
        sqlarr_null(a);
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

void sqlarr_null(sqlarr *a)
{
    if (!reserve(a, 5))
        return;
    sep(a);
    memcpy(a->buf + a->len, "NULL", 4);
    a->len += 4;
}

void sqlarr_int(sqlarr *a, long long v)
{
    if (!reserve(a, 24))
        return;
    sep(a);
    a->len += (size_t)snprintf(a->buf + a->len, 24, "%lld", v);
}

void sqlarr_bool(sqlarr *a, bool v)
{
    if (!reserve(a, 2))
        return;
    sep(a);
    a->buf[a->len++] = v ? 't' : 'f';
}

void sqlarr_bytea(sqlarr *a, const uint8_t *p, size_t len)
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

const char *sqlarr_get(sqlarr *a)
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
