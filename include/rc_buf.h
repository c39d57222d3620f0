/* rc_buf — a growable text buffer for building SQL and messages.
 *
 * An allocation failure sets `oom` and every later append does nothing, so
 * a caller appends freely and checks once, at the end (rc_buf_str returns
 * NULL then).  The text is always NUL terminated once anything succeeded. */
#ifndef RC_BUF_H
#define RC_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rc_buf {
    char *p;         /* owned; NULL until the first append */
    size_t len, cap;
    bool oom;
} rc_buf;

#define RC_BUF_INIT {NULL, 0, 0, false}

/* Appends printf-formatted text. */
void rc_buf_add(rc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends n bytes of s (which need not be NUL terminated). */
void rc_buf_addn(rc_buf *b, const char *s, size_t n);
/* Makes room for `more` bytes beyond len (and the NUL); false on failure. */
bool rc_buf_reserve(rc_buf *b, size_t more);
/* The text ("" when nothing was appended), or NULL after a failure. */
const char *rc_buf_str(rc_buf *b);
/* Hands the text to the caller (free() it) and empties the buffer; NULL
 * after a failure (the buffer is released either way). */
char *rc_buf_take(rc_buf *b);
/* Empties the buffer, keeping its memory; clears oom. */
void rc_buf_clear(rc_buf *b);
/* Releases the memory; the buffer may be reused.  rc_buf_free(NULL) is a no-op. */
void rc_buf_free(rc_buf *b);

/* Writing into a buffer the caller sized, without allocating or checking
 * (the hot paths that build a line of known bound: the ledger, the intake's
 * replies).  Each writes at p and returns the end; no NUL is written. */
char *rc_put_str(char *p, const char *s);
/* v in decimal: at most 20 characters. */
char *rc_put_int(char *p, int64_t v);

#endif
