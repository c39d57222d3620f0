/* rc_sql — small helpers for building and running SQL.
 *
 * Array literals: a whole batch goes to the server as one statement over
 * unnest($1::text[], $2::date[], ...) instead of one round trip per row.
 * Build one rc_sqlarr per column; an allocation failure sets b.oom, later
 * appends do nothing and rc_sqlarr_get returns NULL, so a caller appends
 * freely and checks once. */
#ifndef RC_SQL_H
#define RC_SQL_H

#include "rc_buf.h"
#include "rc_pg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rc_sqlarr {
    rc_buf b;           /* the literal so far, without its closing '}' */
    size_t n;           /* elements appended */
} rc_sqlarr;

void rc_sqlarr_init(rc_sqlarr *a);
/* Releases the memory; the array may be reused after rc_sqlarr_init. */
void rc_sqlarr_free(rc_sqlarr *a);
/* Empties the array, keeping its memory (oom is cleared too). */
void rc_sqlarr_reset(rc_sqlarr *a);
/* Appends a text element (quoted and escaped), or NULL when s is NULL. */
void rc_sqlarr_text(rc_sqlarr *a, const char *s);
void rc_sqlarr_null(rc_sqlarr *a);
void rc_sqlarr_int(rc_sqlarr *a, long long v);
void rc_sqlarr_bool(rc_sqlarr *a, bool v);
/* Appends a bytea element in hex form. */
void rc_sqlarr_bytea(rc_sqlarr *a, const uint8_t *p, size_t len);
/* The literal "{...}" ("{}" when empty), owned by the array; NULL after an
 * allocation failure. */
const char *rc_sqlarr_get(rc_sqlarr *a);

/* Runs sql (with n text parameters, or none) and returns how many rows it
 * counted: the value of a one-row, one-column result (SELECT count(*), a
 * function returning a count), else the command's row count (INSERT,
 * UPDATE, DELETE).  Returns -1 with errbuf filled on error. */
long rc_sql_exec_count(rc_pg *pg, const char *sql, int n, const char *const *params,
                       char *errbuf, size_t errlen);

#endif
