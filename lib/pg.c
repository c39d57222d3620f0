/* rc_pg — see rc_pg.h.  The connection is checked before each statement
 * (a non-blocking read notices a backend that died while we were idle), and
 * re-established with exponential backoff only when libpq says CONNECTION_BAD. */
#include "rc_pg.h"
#include "rc_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 5000

typedef struct {
    char *name;
    char *sql;
    int nparams;
    bool live;      /* prepared on the current connection */
} prepared;

struct rc_pg {
    PGconn *conn;
    char *dsn;
    char *app;
    char *describe;       /* DSN with the password masked */
    int reconnect_timeout_ms;
    prepared *stmts;
    size_t nstmts, capstmts;
    bool in_tx;
    bool tx_lost;         /* the connection died inside rc_pg_begin..commit */
    bool disconnected;    /* for rc_pg_was_disconnected */
    bool in_copy;
    uint64_t reconnects;
    char last_error[512];
    char last_sqlstate[6];  /* of the last failed statement; "" when none or no result */
};

/* libpq messages end with a newline and may span lines; keep one line. */
static void one_line(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = '\0';
    char *w = s;
    for (const char *p = s; *p; p++) {
        char c = (*p == '\n' || *p == '\t') ? ' ' : *p;
        if (c == ' ' && w > s && w[-1] == ' ')
            continue;
        *w++ = c;
    }
    *w = '\0';
}

static void conn_error(rc_pg *pg, char *errbuf, size_t errlen, const char *what)
{
    char msg[512];
    pg->last_sqlstate[0] = '\0';
    snprintf(msg, sizeof msg, "%s", pg->conn ? PQerrorMessage(pg->conn) : "no connection");
    one_line(msg);
    rc_errf(errbuf, errlen, "%s: %s", what, msg[0] ? msg : "connection lost");
}

/* Fills errbuf from a failed result: severity, primary message, SQLSTATE,
 * and the detail when the server gave one. */
static void result_error(rc_pg *pg, const PGresult *res, char *errbuf, size_t errlen)
{
    const char *msg, *state, *detail;
    char buf[512];

    if (!res) {
        conn_error(pg, errbuf, errlen, "query failed");
        return;
    }
    msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
    snprintf(pg->last_sqlstate, sizeof pg->last_sqlstate, "%s", state ? state : "");
    if (!msg) {
        snprintf(buf, sizeof buf, "%s", PQresultErrorMessage(res));
        one_line(buf);
        if (!buf[0])
            conn_error(pg, errbuf, errlen, "query failed");
        else
            rc_errf(errbuf, errlen, "%s", buf);
        return;
    }
    if (detail)
        rc_errf(errbuf, errlen, "%s (SQLSTATE %s; %s)", msg, state ? state : "?????", detail);
    else
        rc_errf(errbuf, errlen, "%s (SQLSTATE %s)", msg, state ? state : "?????");
}

/* Builds "host=... port=... dbname=... user=... password=***" from the DSN. */
static char *describe_dsn(const char *dsn)
{
    PQconninfoOption *opts = NULL, *o;
    char *err = NULL;
    char buf[1024];
    size_t n = 0;

    opts = PQconninfoParse(dsn, &err);
    if (!opts) {
        PQfreemem(err);
        return strdup("(unparsable DSN)");
    }
    buf[0] = '\0';
    for (o = opts; o->keyword; o++) {
        if (!o->val || !o->val[0])
            continue;
        const char *v = strcmp(o->keyword, "password") == 0 ? "***" : o->val;
        int w = snprintf(buf + n, sizeof buf - n, "%s%s=%s", n ? " " : "", o->keyword, v);
        if (w < 0 || (size_t)w >= sizeof buf - n)
            break;
        n += (size_t)w;
    }
    PQconninfoFree(opts);
    return strdup(n ? buf : "(libpq defaults)");
}

/* Server notices ("relation already exists, skipping") go to the logger:
 * WARNING at warn level, the rest at debug, never to a bare stderr. */
static void notice_receiver(void *arg, const PGresult *res)
{
    const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    (void)arg;
    if (sev && strcmp(sev, "WARNING") == 0)
        rc_warn("pg server warning: %s", msg ? msg : "?");
    else
        rc_debug("pg server %s: %s", sev ? sev : "notice", msg ? msg : "?");
}

static PGconn *open_conn(const rc_pg *pg)
{
    /* Earlier keywords are overridden by the DSN's own settings: a DSN may
     * choose its own connect_timeout and application_name. */
    const char *keys[] = {"connect_timeout", "fallback_application_name", "dbname", NULL};
    const char *vals[] = {"5", pg->app, pg->dsn, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (c)
        PQsetNoticeReceiver(c, notice_receiver, NULL);
    return c;
}

static int prepare_one(rc_pg *pg, const prepared *p, char *errbuf, size_t errlen)
{
    PGresult *res = PQprepare(pg->conn, p->name, p->sql, p->nparams, NULL);
    int rc = 0;
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
        char msg[400];
        result_error(pg, res, msg, sizeof msg);
        rc_errf(errbuf, errlen, "prepare %s: %s", p->name, msg);
        rc = -1;
    }
    PQclear(res);
    return rc;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* Replaces a dead connection.  Returns 0 with every statement re-prepared,
 * or -1 when the bound expired (pg->conn then stays a dead PGconn). */
static int reconnect(rc_pg *pg)
{
    int waited = 0, delay = BACKOFF_FIRST_MS;

    if (pg->in_tx)
        pg->tx_lost = true;
    pg->in_copy = false;
    for (int attempt = 1;; attempt++) {
        PGconn *c = open_conn(pg);
        if (PQstatus(c) == CONNECTION_OK) {
            size_t ok = 0;
            PQfinish(pg->conn);
            pg->conn = c;
            pg->reconnects++;
            pg->disconnected = true;
            for (size_t i = 0; i < pg->nstmts; i++) {
                char msg[400];
                prepared *p = &pg->stmts[i];
                /* A statement that no longer prepares (its table was
                 * dropped) is not a connection problem: the connection is
                 * kept and the statement retried, and its error returned,
                 * when it is next executed. */
                p->live = prepare_one(pg, p, msg, sizeof msg) == 0;
                if (p->live)
                    ok++;
                else
                    rc_warn("pg re-prepare failed statement=%s db=\"%s\" error=\"%s\"",
                            p->name, pg->describe, msg);
            }
            rc_info("pg reconnected attempt=%d waited_ms=%d statements=%zu/%zu db=\"%s\"",
                    attempt, waited, ok, pg->nstmts, pg->describe);
            return 0;
        }
        snprintf(pg->last_error, sizeof pg->last_error, "%s", PQerrorMessage(c));
        one_line(pg->last_error);
        PQfinish(c);
        if (waited + delay > pg->reconnect_timeout_ms) {
            rc_error("pg reconnect gave up attempt=%d waited_ms=%d db=\"%s\" error=\"%s\"",
                     attempt, waited, pg->describe, pg->last_error);
            return -1;
        }
        rc_warn("pg reconnect failed attempt=%d retry_in_ms=%d db=\"%s\" error=\"%s\"",
                attempt, delay, pg->describe, pg->last_error);
        sleep_ms(delay);
        waited += delay;
        delay = delay * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : delay * 2;
    }
}

PGconn *rc_pg_conn(rc_pg *pg)
{
    /* An idle connection whose backend was terminated still says
     * CONNECTION_OK until libpq reads the EOF: look before using it.  Not
     * during COPY, when input belongs to the COPY protocol. */
    if (!pg->in_copy && PQstatus(pg->conn) == CONNECTION_OK && !PQisBusy(pg->conn)) {
        /* Twice: the backend's FATAL message and the EOF may arrive in
         * separate reads.  NOTIFYs read here stay queued for PQnotifies. */
        for (int i = 0; i < 2 && PQconsumeInput(pg->conn); i++) {
        }
    }
    if (PQstatus(pg->conn) != CONNECTION_BAD)
        return pg->conn;
    snprintf(pg->last_error, sizeof pg->last_error, "%s", PQerrorMessage(pg->conn));
    one_line(pg->last_error);
    rc_warn("pg connection lost db=\"%s\" in_transaction=%s error=\"%s\"",
            pg->describe, pg->in_tx ? "yes" : "no", pg->last_error);
    return reconnect(pg) == 0 ? pg->conn : NULL;
}

/* Every statement goes through here: a live connection and no lost
 * transaction, or -1 with errbuf filled. */
static int ready(rc_pg *pg, char *errbuf, size_t errlen)
{
    pg->last_sqlstate[0] = '\0';
    if (!rc_pg_conn(pg)) {
        rc_errf(errbuf, errlen, "no database connection: %s", pg->last_error);
        return -1;
    }
    if (pg->tx_lost) {
        rc_errf(errbuf, errlen,
                "transaction lost (connection was reset); roll back and retry");
        return -1;
    }
    return 0;
}

/* Accepts a result, or clears it and returns NULL with errbuf filled. */
static PGresult *check_result(rc_pg *pg, PGresult *res, char *errbuf, size_t errlen)
{
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return res;
    if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT) {
        rc_errf(errbuf, errlen, "unexpected COPY from a plain statement; use rc_pg_copy_begin");
        PQclear(res);
        /* Leave COPY mode so the connection stays usable. */
        if (st == PGRES_COPY_IN)
            PQputCopyEnd(pg->conn, "not expected");
        while ((res = PQgetResult(pg->conn)) != NULL)
            PQclear(res);
        return NULL;
    }
    result_error(pg, res, errbuf, errlen);
    PQclear(res);
    if (PQstatus(pg->conn) == CONNECTION_BAD && pg->in_tx)
        pg->tx_lost = true;
    return NULL;
}

rc_pg *rc_pg_connect(const char *dsn, const char *application_name,
                     char *errbuf, size_t errlen)
{
    rc_pg *pg = calloc(1, sizeof *pg);
    if (!pg) {
        rc_errf(errbuf, errlen, "out of memory");
        return NULL;
    }
    pg->reconnect_timeout_ms = RC_PG_RECONNECT_TIMEOUT_MS;
    pg->dsn = strdup(dsn ? dsn : "");
    pg->app = strdup(application_name ? application_name : "rollcall");
    pg->describe = describe_dsn(pg->dsn);
    if (!pg->dsn || !pg->app || !pg->describe) {
        rc_errf(errbuf, errlen, "out of memory");
        goto failed;
    }
    pg->conn = open_conn(pg);
    if (PQstatus(pg->conn) != CONNECTION_OK) {
        char msg[400];
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(pg->conn));
        one_line(msg);
        rc_errf(errbuf, errlen, "connect to %s: %s", pg->describe, msg);
        goto failed;
    }
    return pg;
failed:
    rc_pg_free(pg);
    return NULL;
}

void rc_pg_free(rc_pg *pg)
{
    if (!pg)
        return;
    PQfinish(pg->conn);
    for (size_t i = 0; i < pg->nstmts; i++) {
        free(pg->stmts[i].name);
        free(pg->stmts[i].sql);
    }
    free(pg->stmts);
    free(pg->dsn);
    free(pg->app);
    free(pg->describe);
    free(pg);
}

void rc_pg_set_reconnect_timeout(rc_pg *pg, int timeout_ms)
{
    pg->reconnect_timeout_ms = timeout_ms < 0 ? 0 : timeout_ms;
}

const char *rc_pg_last_error(const rc_pg *pg)
{
    return pg->last_error;
}

const char *rc_pg_describe(const rc_pg *pg)
{
    return pg->describe;
}

int rc_pg_prepare(rc_pg *pg, const char *name, const char *sql, int nparams,
                  char *errbuf, size_t errlen)
{
    prepared p = {NULL, NULL, nparams, false};

    for (size_t i = 0; i < pg->nstmts; i++) {
        if (strcmp(pg->stmts[i].name, name) != 0)
            continue;
        if (strcmp(pg->stmts[i].sql, sql) == 0 && pg->stmts[i].nparams == nparams)
            return 0;
        rc_errf(errbuf, errlen, "prepare %s: name already used for another statement", name);
        return -1;
    }
    if (ready(pg, errbuf, errlen) < 0)
        return -1;
    if (pg->nstmts == pg->capstmts) {
        size_t cap = pg->capstmts ? pg->capstmts * 2 : 16;
        prepared *s = realloc(pg->stmts, cap * sizeof *s);
        if (!s) {
            rc_errf(errbuf, errlen, "out of memory");
            return -1;
        }
        pg->stmts = s;
        pg->capstmts = cap;
    }
    p.name = strdup(name);
    p.sql = strdup(sql);
    if (!p.name || !p.sql) {
        rc_errf(errbuf, errlen, "out of memory");
        goto failed;
    }
    if (prepare_one(pg, &p, errbuf, errlen) < 0)
        goto failed;
    p.live = true;
    pg->stmts[pg->nstmts++] = p;
    return 0;
failed:
    free(p.name);
    free(p.sql);
    return -1;
}

PGresult *rc_pg_exec_prepared(rc_pg *pg, const char *name, int nparams,
                              const char *const *values, const int *lengths,
                              const int *formats, int result_format,
                              char *errbuf, size_t errlen)
{
    if (ready(pg, errbuf, errlen) < 0)
        return NULL;
    for (size_t i = 0; i < pg->nstmts; i++) {
        prepared *p = &pg->stmts[i];
        if (strcmp(p->name, name) != 0)
            continue;
        if (!p->live) {
            if (prepare_one(pg, p, errbuf, errlen) < 0)
                return NULL;
            p->live = true;
        }
        break;
    }
    return check_result(pg, PQexecPrepared(pg->conn, name, nparams, values, lengths,
                                           formats, result_format),
                        errbuf, errlen);
}

PGresult *rc_pg_exec(rc_pg *pg, const char *sql, char *errbuf, size_t errlen)
{
    if (ready(pg, errbuf, errlen) < 0)
        return NULL;
    return check_result(pg, PQexec(pg->conn, sql), errbuf, errlen);
}

PGresult *rc_pg_exec_params(rc_pg *pg, const char *sql, int nparams,
                            const char *const *values, char *errbuf, size_t errlen)
{
    if (ready(pg, errbuf, errlen) < 0)
        return NULL;
    return check_result(pg, PQexecParams(pg->conn, sql, nparams, NULL, values, NULL, NULL, 0),
                        errbuf, errlen);
}

int rc_pg_command(rc_pg *pg, const char *sql, char *errbuf, size_t errlen)
{
    PGresult *res = rc_pg_exec(pg, sql, errbuf, errlen);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}

int rc_pg_begin(rc_pg *pg, char *errbuf, size_t errlen)
{
    if (pg->in_tx) {
        rc_errf(errbuf, errlen, "begin: a transaction is already open");
        return -1;
    }
    if (rc_pg_command(pg, "BEGIN", errbuf, errlen) < 0)
        return -1;
    pg->in_tx = true;
    return 0;
}

int rc_pg_commit(rc_pg *pg, char *errbuf, size_t errlen)
{
    int rc;
    if (!pg->in_tx) {
        rc_errf(errbuf, errlen, "commit: no transaction open");
        return -1;
    }
    rc = rc_pg_command(pg, "COMMIT", errbuf, errlen);
    /* Whatever the outcome the transaction is over: committed, rolled back
     * by the server, or gone with its connection.  The caller learns it
     * from rc < 0; nothing is left to roll back, and the next rc_pg_begin
     * must not find a transaction still "open" (a caller that went
     * straight from a failed COMMIT to its next batch was refused by every
     * later BEGIN). */
    pg->in_tx = false;
    pg->tx_lost = false;
    return rc;
}

int rc_pg_rollback(rc_pg *pg, char *errbuf, size_t errlen)
{
    int rc = 0;
    if (pg->tx_lost) {
        /* The server already discarded it with the old connection. */
        pg->tx_lost = false;
        pg->in_tx = false;
        return 0;
    }
    if (PQstatus(pg->conn) == CONNECTION_OK)
        rc = rc_pg_command(pg, "ROLLBACK", errbuf, errlen);
    pg->in_tx = false;
    pg->tx_lost = false;
    return rc;
}

bool rc_pg_in_transaction(const rc_pg *pg)
{
    return pg->in_tx;
}

bool rc_pg_was_disconnected(rc_pg *pg)
{
    bool d = pg->disconnected;
    pg->disconnected = false;
    return d;
}

uint64_t rc_pg_reconnects(const rc_pg *pg)
{
    return pg->reconnects;
}

int rc_pg_copy_begin(rc_pg *pg, const char *copy_sql, char *errbuf, size_t errlen)
{
    PGresult *res;
    if (pg->in_copy) {
        rc_errf(errbuf, errlen, "copy: a COPY is already in progress");
        return -1;
    }
    if (ready(pg, errbuf, errlen) < 0)
        return -1;
    res = PQexec(pg->conn, copy_sql);
    if (!res || PQresultStatus(res) != PGRES_COPY_IN) {
        if (res && PQresultStatus(res) == PGRES_COMMAND_OK)
            rc_errf(errbuf, errlen, "copy: statement is not COPY ... FROM STDIN");
        else
            result_error(pg, res, errbuf, errlen);
        PQclear(res);
        return -1;
    }
    PQclear(res);
    pg->in_copy = true;
    return 0;
}

int rc_pg_copy_put(rc_pg *pg, const char *buf, size_t len, char *errbuf, size_t errlen)
{
    if (!pg->in_copy) {
        rc_errf(errbuf, errlen, "copy: no COPY in progress");
        return -1;
    }
    while (len > 0) {
        int chunk = len > (1u << 30) ? (1 << 30) : (int)len;
        if (PQputCopyData(pg->conn, buf, chunk) != 1) {
            conn_error(pg, errbuf, errlen, "copy");
            rc_pg_copy_abort(pg, "send failed");
            return -1;
        }
        buf += chunk;
        len -= (size_t)chunk;
    }
    return 0;
}

int rc_pg_copy_end(rc_pg *pg, uint64_t *rows, char *errbuf, size_t errlen)
{
    PGresult *res;
    int rc = 0;
    bool got = false;

    if (!pg->in_copy) {
        rc_errf(errbuf, errlen, "copy: no COPY in progress");
        return -1;
    }
    pg->in_copy = false;
    if (PQputCopyEnd(pg->conn, NULL) != 1) {
        conn_error(pg, errbuf, errlen, "copy end");
        rc = -1;
    }
    while ((res = PQgetResult(pg->conn)) != NULL) {
        if (!got) {
            got = true;
            if (PQresultStatus(res) != PGRES_COMMAND_OK) {
                if (rc == 0)
                    result_error(pg, res, errbuf, errlen);
                rc = -1;
            } else if (rows) {
                *rows = strtoull(PQcmdTuples(res), NULL, 10);
            }
        }
        PQclear(res);
    }
    if (!got && rc == 0) {
        conn_error(pg, errbuf, errlen, "copy end");
        rc = -1;
    }
    if (PQstatus(pg->conn) == CONNECTION_BAD && pg->in_tx)
        pg->tx_lost = true;
    return rc;
}

void rc_pg_copy_abort(rc_pg *pg, const char *reason)
{
    PGresult *res;
    if (!pg->in_copy)
        return;
    pg->in_copy = false;
    PQputCopyEnd(pg->conn, reason ? reason : "aborted");
    while ((res = PQgetResult(pg->conn)) != NULL)
        PQclear(res);
}

size_t rc_pg_copy_escape(char *dst, size_t dstlen, const char *src)
{
    size_t n = 0;
    for (; *src; src++) {
        char c = *src, e = 0;
        switch (c) {
        case '\\': e = '\\'; break;
        case '\t': e = 't'; break;
        case '\n': e = 'n'; break;
        case '\r': e = 'r'; break;
        default: break;
        }
        if (n + (e ? 2 : 1) >= dstlen)
            return (size_t)-1;
        if (e) {
            dst[n++] = '\\';
            dst[n++] = e;
        } else {
            dst[n++] = c;
        }
    }
    if (n >= dstlen)
        return (size_t)-1;
    dst[n] = '\0';
    return n;
}

/* ---------------------------------------------------------- error classes */

rc_pg_error_class rc_pg_sqlstate_class(const char *st)
{
    /* 42 is mostly the program's fault (undefined table, column, function,
     * privilege), except for the few codes a value can cause. */
    static const char *const data_42[] = {"42601", "42804", "42846", "42622", NULL};

    if (!st || strlen(st) != 5)
        return RC_PG_ERR_TRANSIENT;
    if (strncmp(st, "22", 2) == 0 || strncmp(st, "23", 2) == 0 || strncmp(st, "54", 2) == 0)
        return RC_PG_ERR_DATA;
    if (strncmp(st, "42", 2) == 0) {
        for (size_t i = 0; data_42[i]; i++)
            if (strcmp(st, data_42[i]) == 0)
                return RC_PG_ERR_DATA;
        return RC_PG_ERR_OTHER;
    }
    if (strncmp(st, "08", 2) == 0 || strncmp(st, "40", 2) == 0 || strcmp(st, "55P03") == 0 ||
        strncmp(st, "57", 2) == 0 || strncmp(st, "53", 2) == 0 || strncmp(st, "58", 2) == 0)
        return RC_PG_ERR_TRANSIENT;
    return RC_PG_ERR_OTHER;
}

rc_pg_error_class rc_pg_last_error_class(const rc_pg *pg)
{
    /* "transaction lost", "query failed: server closed the connection" */
    if (!pg || !pg->last_sqlstate[0])
        return RC_PG_ERR_TRANSIENT;
    return rc_pg_sqlstate_class(pg->last_sqlstate);
}

const char *rc_pg_last_sqlstate(const rc_pg *pg)
{
    return pg ? pg->last_sqlstate : "";
}

rc_pg_error_class rc_pg_error_classify(const char *errtext)
{
    const char *p = errtext ? strstr(errtext, "(SQLSTATE ") : NULL;
    char st[6];

    if (!p)
        return RC_PG_ERR_TRANSIENT;
    p += strlen("(SQLSTATE ");
    for (size_t i = 0; i < 5; i++) {
        if (!p[i])
            return RC_PG_ERR_TRANSIENT;
        st[i] = p[i];
    }
    st[5] = '\0';
    return rc_pg_sqlstate_class(st);
}

const char *rc_pg_error_class_name(rc_pg_error_class c)
{
    return c == RC_PG_ERR_DATA ? "data" : c == RC_PG_ERR_OTHER ? "other" : "transient";
}
