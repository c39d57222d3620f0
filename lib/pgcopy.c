/* rc_pgcopy — binary COPY encoding (see rc_pgcopy.h).  Every value is a
 * 4-byte big-endian length followed by the value in network byte order. */
#include "rc_pgcopy.h"

#include <stdlib.h>
#include <string.h>

static const char signature[11] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', '\377', '\r', '\n', '\0'};

void rc_pgcopy_init(rc_pgcopy *c)
{
    c->buf = NULL;
    c->len = c->cap = 0;
    c->failed = false;
}

void rc_pgcopy_release(rc_pgcopy *c)
{
    free(c->buf);
    rc_pgcopy_init(c);
}

void rc_pgcopy_clear(rc_pgcopy *c)
{
    c->len = 0;
    c->failed = false;
}

/* Makes room for n more bytes; false (and failed set) when memory ran out. */
static bool reserve(rc_pgcopy *c, size_t n)
{
    if (c->failed)
        return false;
    if (c->len + n <= c->cap)
        return true;
    size_t cap = c->cap ? c->cap : 65536;
    while (cap < c->len + n)
        cap *= 2;
    char *b = realloc(c->buf, cap);
    if (!b) {
        c->failed = true;
        return false;
    }
    c->buf = b;
    c->cap = cap;
    return true;
}

static inline void put16(char *p, uint16_t v)
{
    p[0] = (char)(v >> 8);
    p[1] = (char)v;
}

static inline void put32(char *p, uint32_t v)
{
    p[0] = (char)(v >> 24);
    p[1] = (char)(v >> 16);
    p[2] = (char)(v >> 8);
    p[3] = (char)v;
}

static inline void put64(char *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

void rc_pgcopy_header(rc_pgcopy *c)
{
    if (!reserve(c, 19))
        return;
    memcpy(c->buf + c->len, signature, sizeof signature);
    put32(c->buf + c->len + 11, 0);     /* flags */
    put32(c->buf + c->len + 15, 0);     /* header extension length */
    c->len += 19;
}

void rc_pgcopy_trailer(rc_pgcopy *c)
{
    if (!reserve(c, 2))
        return;
    put16(c->buf + c->len, 0xffff);
    c->len += 2;
}

void rc_pgcopy_row(rc_pgcopy *c, int nfields)
{
    if (!reserve(c, 2))
        return;
    put16(c->buf + c->len, (uint16_t)nfields);
    c->len += 2;
}

void rc_pgcopy_null(rc_pgcopy *c)
{
    if (!reserve(c, 4))
        return;
    put32(c->buf + c->len, 0xffffffffu);
    c->len += 4;
}

void rc_pgcopy_bool(rc_pgcopy *c, bool v)
{
    if (!reserve(c, 5))
        return;
    put32(c->buf + c->len, 1);
    c->buf[c->len + 4] = v ? 1 : 0;
    c->len += 5;
}

void rc_pgcopy_int2(rc_pgcopy *c, int16_t v)
{
    if (!reserve(c, 6))
        return;
    put32(c->buf + c->len, 2);
    put16(c->buf + c->len + 4, (uint16_t)v);
    c->len += 6;
}

void rc_pgcopy_int4(rc_pgcopy *c, int32_t v)
{
    if (!reserve(c, 8))
        return;
    put32(c->buf + c->len, 4);
    put32(c->buf + c->len + 4, (uint32_t)v);
    c->len += 8;
}

void rc_pgcopy_int8(rc_pgcopy *c, int64_t v)
{
    if (!reserve(c, 12))
        return;
    put32(c->buf + c->len, 8);
    put64(c->buf + c->len + 4, (uint64_t)v);
    c->len += 12;
}

void rc_pgcopy_bytes(rc_pgcopy *c, const void *p, size_t n)
{
    if (!reserve(c, 4 + n))
        return;
    put32(c->buf + c->len, (uint32_t)n);
    if (n)
        memcpy(c->buf + c->len + 4, p, n);
    c->len += 4 + n;
}

void rc_pgcopy_text(rc_pgcopy *c, const char *s)
{
    if (!s)
        rc_pgcopy_null(c);
    else
        rc_pgcopy_bytes(c, s, strlen(s));
}

void rc_pgcopy_uuid(rc_pgcopy *c, const uint8_t uuid[16])
{
    rc_pgcopy_bytes(c, uuid, 16);
}

void rc_pgcopy_date(rc_pgcopy *c, int32_t unix_days)
{
    rc_pgcopy_int4(c, unix_days - RC_PGCOPY_EPOCH_DAYS);
}

void rc_pgcopy_timestamptz(rc_pgcopy *c, int64_t unix_us)
{
    rc_pgcopy_int8(c, unix_us - RC_PGCOPY_EPOCH_US);
}

void rc_pgcopy_jsonb(rc_pgcopy *c, const char *json, size_t n)
{
    if (!reserve(c, 5 + n))
        return;
    put32(c->buf + c->len, (uint32_t)(n + 1));
    c->buf[c->len + 4] = 1;     /* jsonb binary format version */
    memcpy(c->buf + c->len + 5, json, n);
    c->len += 5 + n;
}
