/* rc_dlq — see rc_dlq.h. */
#include "rc_dlq.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Length of the well-formed UTF-8 sequence at s (n bytes left), 0 when the
 * bytes there are not one (RFC 3629, table 3-7 of the Unicode standard). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c >= 0x01 && c <= 0x7f)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return n >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
            return 0;
        if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f))
            return 0;   /* overlong, surrogate */
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
            return 0;
        if ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] > 0x8f))
            return 0;   /* overlong, above U+10FFFF */
        return 4;
    }
    return 0;
}

bool rc_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        if (p[i] < 0x80 && p[i]) {      /* the common case, ASCII */
            i++;
            continue;
        }
        size_t k = utf8_seq(p + i, n - i);
        if (!k)
            return false;
        i += k;
    }
    return true;
}

char *rc_utf8_sanitize(char *dst, size_t cap, const char *src)
{
    const unsigned char *p = (const unsigned char *)(src ? src : "");
    size_t n = strlen((const char *)p), i = 0, o = 0;
    while (i < n) {
        size_t k = utf8_seq(p + i, n - i);
        size_t w = k ? k : 1;
        if (o + w + 1 > cap)
            break;
        if (k)
            memcpy(dst + o, p + i, k);
        else
            dst[o] = '?';
        o += w;
        i += k ? k : 1;
    }
    dst[o] = '\0';
    return dst;
}

#define DLQ_SQL                                                                               \
    "INSERT INTO rollcall.dead_letter (topic, partition, \"offset\", raw, reason) "           \
    "VALUES ($1::text, $2::int, $3::bigint, $4::bytea, $5::text) "                             \
    "ON CONFLICT (topic, partition, \"offset\") DO NOTHING"

int64_t rc_dlq_insert(rc_pg *pg, const rc_dead_letter *d, bool to_outbox, char *errbuf,
                      size_t errlen)
{
    char part[16], off[24], reason[1001], key[256];
    const char *name = to_outbox ? "rc_dlq_insert_outbox" : "rc_dlq_insert";
    const char *sql =
        to_outbox
            ? "WITH d AS (" DLQ_SQL " RETURNING 1) "
              "INSERT INTO rollcall.outbox (topic, key, payload, headers) "
              "SELECT 'reports.dlq', $6::text, $4::bytea, jsonb_build_object('topic', "
              "$1::text, 'partition', $2::int::text, 'offset', $3::bigint::text, 'reason', "
              "$5::text) FROM d RETURNING id"
            : DLQ_SQL " RETURNING 0";
    int64_t id = 0;

    if (rc_pg_prepare(pg, name, sql, to_outbox ? 6 : 5, errbuf, errlen) < 0)
        return -1;
    snprintf(part, sizeof part, "%" PRId32, d->partition);
    snprintf(off, sizeof off, "%" PRId64, d->offset);
    rc_utf8_sanitize(reason, sizeof reason, d->reason);
    if (d->key)
        rc_utf8_sanitize(key, sizeof key, d->key);
    const char *values[] = {d->topic, part, off, d->raw ? d->raw : "", reason,
                            d->key ? key : NULL};
    int lengths[] = {0, 0, 0, (int)d->rawlen, 0, 0};
    int formats[] = {0, 0, 0, 1, 0, 0};
    PGresult *res = rc_pg_exec_prepared(pg, name, to_outbox ? 6 : 5, values, lengths, formats, 0,
                                        errbuf, errlen);
    if (!res)
        return -1;
    if (to_outbox && PQntuples(res) == 1)
        id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return id;
}
