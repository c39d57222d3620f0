/* rc_pg — one PostgreSQL connection that heals itself: reconnects with
 * backoff when (and only when) libpq reports CONNECTION_BAD, re-prepares the
 * registered statements, and tells the caller when a transaction was lost.
 *
 * Errors: every function that can fail returns -1 or NULL and writes the
 * server's primary message and SQLSTATE ("... (SQLSTATE 23505)") to errbuf.
 * A failed statement (PGRES_FATAL_ERROR) leaves the connection usable; a
 * lost connection is re-established by the next call.
 *
 * Transactions: use rc_pg_begin/commit/rollback (not "BEGIN" through
 * rc_pg_exec) so the wrapper knows a transaction is open.  If the connection
 * is lost inside one, every later call fails with "transaction lost" until
 * the caller calls rc_pg_rollback() — the work is never silently continued
 * in autocommit on the new connection.  The caller then redoes the whole
 * transaction.  Not thread-safe: one rc_pg per thread. */
#ifndef RC_PG_H
#define RC_PG_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rc_pg rc_pg;

/* Default bound on the total time one reconnection may wait (ms). */
#define RC_PG_RECONNECT_TIMEOUT_MS 30000

/* Connects to `dsn` (a libpq conninfo string or URI; "" uses the libpq
 * environment).  `application_name` is used unless the DSN names one.  The
 * first connection is tried once, without backoff: a bad DSN at start-up
 * should fail fast.  Returns NULL with errbuf filled on failure. */
rc_pg *rc_pg_connect(const char *dsn, const char *application_name,
                     char *errbuf, size_t errlen);

/* Closes the connection and frees everything.  NULL is a no-op. */
void rc_pg_free(rc_pg *pg);

/* Bounds the total wait of one reconnection (sum of the backoff sleeps,
 * 100 ms doubling to 5 s).  0 = a single attempt. */
void rc_pg_set_reconnect_timeout(rc_pg *pg, int timeout_ms);

/* Returns a live connection, reconnecting (and re-preparing) if libpq reports
 * CONNECTION_BAD, or NULL when the reconnection bound expired; the reason is
 * then in rc_pg_last_error().  The PGconn stays owned by `pg` and is only
 * valid until the next rc_pg_* call. */
PGconn *rc_pg_conn(rc_pg *pg);

/* The last connection-level error (never contains the password). */
const char *rc_pg_last_error(const rc_pg *pg);

/* The DSN with its password masked, for log lines. */
const char *rc_pg_describe(const rc_pg *pg);

/* Prepares `sql` as `name` now and after every reconnection.  Preparing the
 * same name with the same SQL again is a no-op; with different SQL an error.
 * Returns 0, or -1 with nothing registered. */
int rc_pg_prepare(rc_pg *pg, const char *name, const char *sql, int nparams,
                  char *errbuf, size_t errlen);

/* Executes a prepared statement.  `lengths`/`formats` may be NULL for text
 * parameters.  Returns a PGRES_COMMAND_OK or PGRES_TUPLES_OK result that the
 * caller PQclear()s, or NULL with errbuf filled. */
PGresult *rc_pg_exec_prepared(rc_pg *pg, const char *name, int nparams,
                              const char *const *values, const int *lengths,
                              const int *formats, int result_format,
                              char *errbuf, size_t errlen);

/* Executes `sql` (several statements allowed; the last one's result is
 * returned).  Same result contract as rc_pg_exec_prepared. */
PGresult *rc_pg_exec(rc_pg *pg, const char *sql, char *errbuf, size_t errlen);

/* Like rc_pg_exec with parameters (text format), no prepared statement. */
PGresult *rc_pg_exec_params(rc_pg *pg, const char *sql, int nparams,
                            const char *const *values, char *errbuf, size_t errlen);

/* Executes a statement whose rows, if any, are discarded.  Returns 0 or -1. */
int rc_pg_command(rc_pg *pg, const char *sql, char *errbuf, size_t errlen);

/* Transactions (see the header comment).  rc_pg_rollback after a lost
 * transaction succeeds and clears the "transaction lost" state.  A
 * transaction is over once rc_pg_commit returns, whether it failed or not:
 * a rollback after a failed commit is allowed and does nothing. */
int rc_pg_begin(rc_pg *pg, char *errbuf, size_t errlen);
int rc_pg_commit(rc_pg *pg, char *errbuf, size_t errlen);
int rc_pg_rollback(rc_pg *pg, char *errbuf, size_t errlen);
bool rc_pg_in_transaction(const rc_pg *pg);

/* True once the connection has been lost (and re-established) since the
 * previous call; the flag is cleared by the call.  Callers that cache
 * session state (temp tables, SET) rebuild it when this is true. */
bool rc_pg_was_disconnected(rc_pg *pg);

/* How many times the connection has been re-established since rc_pg_connect. */
uint64_t rc_pg_reconnects(const rc_pg *pg);

/* COPY ... FROM STDIN.  rc_pg_copy_begin runs `copy_sql`; rc_pg_copy_put
 * queues data (libpq buffers it; any row split across calls is fine);
 * rc_pg_copy_end finishes the COPY and reads its final result, storing the
 * number of rows copied in *rows when rows is not NULL.  On any failure the
 * COPY is over (nothing copied unless in an outer transaction that commits)
 * and -1 is returned.  rc_pg_copy_abort cancels a COPY in progress. */
int rc_pg_copy_begin(rc_pg *pg, const char *copy_sql, char *errbuf, size_t errlen);
int rc_pg_copy_put(rc_pg *pg, const char *buf, size_t len, char *errbuf, size_t errlen);
int rc_pg_copy_end(rc_pg *pg, uint64_t *rows, char *errbuf, size_t errlen);
void rc_pg_copy_abort(rc_pg *pg, const char *reason);

/* What a failed statement's error means for the message that caused it.
 * Every service decides retry versus dead letter through this one function. */
typedef enum {
    RC_PG_ERR_TRANSIENT,  /* retry as is, never dead-letter: the connection
                           * (08, no SQLSTATE), serialization or deadlock (40),
                           * lock not available (55P03), shutdown or cancel (57),
                           * insufficient resources (53), system error (58) */
    RC_PG_ERR_DATA,       /* the data's fault: dead-letter it with the reason:
                           * data exception (22), integrity (23), a syntax or
                           * datatype error a value caused (42601, 42804, 42846,
                           * 42622), program limit (54) */
    RC_PG_ERR_OTHER,      /* the program's or the set-up's fault (a missing
                           * table, a privilege): retry, never dead-letter,
                           * and let /healthz say it is stuck */
} rc_pg_error_class;

/* The class of the last failed statement on pg (the SQLSTATE the server
 * sent, never parsed from a message text, which may quote hostile data).
 * No SQLSTATE (a lost connection) is transient.  The SQLSTATE itself, ""
 * when there was none. */
rc_pg_error_class rc_pg_last_error_class(const rc_pg *pg);
const char *rc_pg_last_sqlstate(const rc_pg *pg);
/* Classifies an error text as written by this module ("message (SQLSTATE
 * 22021...").  For texts from elsewhere (another process's log line); the
 * first SQLSTATE is taken, the one the module wrote after the primary
 * message.  No SQLSTATE: transient. */
rc_pg_error_class rc_pg_error_classify(const char *errtext);
/* The same from a five-character SQLSTATE (NULL: transient). */
rc_pg_error_class rc_pg_sqlstate_class(const char *sqlstate);
/* "transient", "data" or "other". */
const char *rc_pg_error_class_name(rc_pg_error_class c);

/* Escapes `src` for a COPY text-format field (backslash, tab, newline,
 * carriage return) into dst.  Returns the length written (dst is NUL
 * terminated), or (size_t)-1 when dst is too small (dst then unspecified).
 * dstlen >= 2 * strlen(src) + 1 always suffices. */
size_t rc_pg_copy_escape(char *dst, size_t dstlen, const char *src);

#endif
