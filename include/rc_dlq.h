/* rc_dlq — the one way a message becomes a dead letter: a row in
 * rollcall.dead_letter (once per topic, partition and offset) and, for the
 * services that publish them, an outbox row that carries it to reports.dlq
 * with headers topic, partition, offset and reason.  Plus the UTF-8 rules
 * both the validators and the dead letters need (PostgreSQL refuses text
 * that is not UTF-8, and a reason may quote the bad bytes). */
#ifndef RC_DLQ_H
#define RC_DLQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rc_pg.h"

typedef struct rc_dead_letter {
    const char *topic;      /* where the message was consumed */
    int32_t partition;
    int64_t offset;
    const void *raw;        /* the message as consumed (may be NULL) */
    size_t rawlen;
    const char *key;        /* the message key, NULL when none */
    const char *reason;     /* why; made valid UTF-8 and cut to 1000 bytes here */
} rc_dead_letter;

/* Records d inside the caller's transaction (or alone in autocommit).  With
 * to_outbox an outbox row for reports.dlq is written too.  Returns the
 * outbox id (> 0), 0 when nothing new went to the outbox (recorded before,
 * or to_outbox false), -1 with errbuf filled (nothing recorded). */
int64_t rc_dlq_insert(rc_pg *pg, const rc_dead_letter *d, bool to_outbox, char *errbuf,
                      size_t errlen);

/* True when s[0..n) is well-formed UTF-8 (no overlong forms, surrogates or
 * code points above U+10FFFF) without NUL bytes. */
bool rc_utf8_valid(const char *s, size_t n);

/* Copies src into dst (cap >= 1) replacing every byte that is not part of
 * well-formed UTF-8 by '?' and cutting at a character boundary to fit.
 * Returns dst. */
char *rc_utf8_sanitize(char *dst, size_t cap, const char *src);

#endif
