/* rc_pgcopy — PostgreSQL binary COPY rows (COPY ... FROM STDIN (FORMAT
 * binary)) built in a growing buffer, for the hot paths where text COPY's
 * parsing would cost the server more than the data itself.
 *
 * Usage: rc_pgcopy_header() once per COPY, then per row rc_pgcopy_row(n)
 * followed by exactly n field calls, rc_pgcopy_trailer() at the end; hand
 * buf/len to rc_pg_copy_put() whenever convenient and rc_pgcopy_clear() it.
 * An allocation failure sets `failed` and later calls do nothing: check it
 * before sending. */
#ifndef RC_PGCOPY_H
#define RC_PGCOPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rc_pgcopy {
    char *buf;
    size_t len, cap;
    bool failed;
} rc_pgcopy;

/* Microseconds between the Unix epoch and PostgreSQL's (2000-01-01). */
#define RC_PGCOPY_EPOCH_US 946684800000000LL
#define RC_PGCOPY_EPOCH_DAYS 10957

void rc_pgcopy_init(rc_pgcopy *c);
/* Frees the buffer; the struct may be reused after rc_pgcopy_init. */
void rc_pgcopy_release(rc_pgcopy *c);
/* Empties the buffer, keeping its memory (failed is cleared too). */
void rc_pgcopy_clear(rc_pgcopy *c);

void rc_pgcopy_header(rc_pgcopy *c);
void rc_pgcopy_trailer(rc_pgcopy *c);
void rc_pgcopy_row(rc_pgcopy *c, int nfields);

void rc_pgcopy_null(rc_pgcopy *c);
void rc_pgcopy_bool(rc_pgcopy *c, bool v);
void rc_pgcopy_int2(rc_pgcopy *c, int16_t v);
void rc_pgcopy_int4(rc_pgcopy *c, int32_t v);
void rc_pgcopy_int8(rc_pgcopy *c, int64_t v);
/* text/varchar, and bytea: the bytes as they are. */
void rc_pgcopy_bytes(rc_pgcopy *c, const void *p, size_t n);
/* A NUL-terminated string as text; NULL writes SQL NULL. */
void rc_pgcopy_text(rc_pgcopy *c, const char *s);
/* 16 raw bytes. */
void rc_pgcopy_uuid(rc_pgcopy *c, const uint8_t uuid[16]);
/* days since 1970-01-01 */
void rc_pgcopy_date(rc_pgcopy *c, int32_t unix_days);
/* microseconds since the Unix epoch */
void rc_pgcopy_timestamptz(rc_pgcopy *c, int64_t unix_us);
/* jsonb from JSON text (the binary jsonb input is version 1 + the text). */
void rc_pgcopy_jsonb(rc_pgcopy *c, const char *json, size_t n);

#endif
