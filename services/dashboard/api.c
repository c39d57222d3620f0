/* The JSON API (API.md): routing, sign-in, sessions and keys, the scope
 * check, one scoped transaction per request, ETag/304 and CSV.
 *
 * The loop only routes: static files and the event stream stay on it, and
 * every /api/ request becomes a job (a copy of what its handler reads) run
 * by a worker on its own PostgreSQL connection (pool.c).  A slow query or a
 * password verification then holds one worker, never the loop, and the
 * requests of a busy county run side by side on both cores. */
#include "dashboard.h"
#include "pool.h"
#include "queries.h"
#include "rc_metrics.h"
#include "rc_probe.h"
#include "rc_report.h"
#include "rc_time.h"

#include <arpa/inet.h>
#include <sys/queue.h>
#include <ctype.h>
#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

typedef struct worker {
    dashboard *d;
    rc_pg *pg;
} worker;

struct dashboard {
    const dashboard_config *cfg;
    rc_service *svc;
    worker *workers;            /* cfg->workers of them */
    void **contexts;            /* &workers[i], for the pool */
    int nworkers;               /* connected */
    pool *pool;
    rc_probe *probe;
    stream *stream;
    char dummy_hash[crypto_pwhash_STRBYTES];  /* verified against for unknown users */
    /* One password verification at a time: each takes 19 MiB, and four
     * at once would be most of the service's memory budget. */
    pthread_mutex_t pwhash_lock;
    rc_counter *out_of_scope, *logins_failed, *logins_throttled, *busy;
    rc_histogram *query_seconds;
};

/* An /api/ request as its worker sees it: what the loop copied from the
 * request, and the reply the worker builds.  `req` itself is touched on the
 * loop only (libevent is not thread-safe here). */
typedef struct job {
    pool_job link;
    struct evhttp_request *req;
    enum evhttp_cmd_type cmd;
    char *path, *query;
    struct evkeyvalq in, out;   /* the request's headers (copied); the reply's */
    struct evbuffer *body;      /* the request's body (moved) */
    struct evbuffer *reply;
    char addr[64];
    int code;
    const char *reason;
    char stream_unit[16];       /* set: the loop hands the request to the stream */
} job;

/* ------------------------------------------------------------ replies */

static void reply_buffer(job *j, int code, const char *reason, struct evbuffer *b)
{
    j->code = code;
    j->reason = reason;
    if (b)
        evbuffer_add_buffer(j->reply, b);
}

static void reply_body(job *j, int code, const char *type, const char *body, size_t len)
{
    evhttp_add_header(&j->out, "Content-Type", type);
    evhttp_add_header(&j->out, "Cache-Control", "no-cache, private");
    evhttp_add_header(&j->out, "X-Content-Type-Options", "nosniff");
    if (len)
        evbuffer_add(j->reply, body, len);
    j->code = code;
    j->reason = NULL;
}

static void reply_error(job *j, int code, const char *msg)
{
    char buf[256];
    int n = snprintf(buf, sizeof buf, "{\"error\":\"%s\"}", msg);
    reply_body(j, code, "application/json", buf, (size_t)n);
}

/* ------------------------------------------------------------ helpers */

static void sha256_hex(const char *s, char out[65])
{
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, (const unsigned char *)s, strlen(s));
    sodium_bin2hex(out, 65, h, sizeof h);
}

static void client_address(struct evhttp_request *req, char *out, size_t len)
{
    struct evhttp_connection *c = evhttp_request_get_connection(req);
    char *addr = NULL;
    ev_uint16_t port = 0;
    if (c)
        evhttp_connection_get_peer(c, &addr, &port);
    snprintf(out, len, "%s", addr ? addr : "?");
}

/* A unit code: 2, 4, 6, 9 or 12 digits. */
static bool valid_code(const char *s)
{
    size_t n = strlen(s);
    if (n != 2 && n != 4 && n != 6 && n != 9 && n != 12)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return true;
}

/* Today in UTC+8 (the reporting day), YYYY-MM-DD. */
static void today(char out[11])
{
    rc_period_format(rc_period_of(rc_now_us()), out);
}

/* Runs one named query inside a transaction whose rollcall.scope is
 * `scope`.  Returns the result (caller PQclear()s) or NULL with errbuf. */
static PGresult *scoped(worker *w, const char *scope, const char *name, int n,
                        const char *const *vals, char *errbuf, size_t errlen)
{
    rc_pg *pg = w->pg;
    PGresult *res = NULL, *s = NULL;
    const char *sv[1] = {scope};
    struct timespec t0, t1;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (rc_pg_begin(pg, errbuf, errlen) < 0)
        goto failed;
    if (!(s = rc_pg_exec_prepared(pg, "scope", 1, sv, NULL, NULL, 0, errbuf, errlen)))
        goto failed;
    PQclear(s);
    if (!(res = rc_pg_exec_prepared(pg, name, n, vals, NULL, NULL, 0, errbuf, errlen)))
        goto failed;
    if (rc_pg_commit(pg, errbuf, errlen) < 0)
        goto failed;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    rc_histogram_observe(w->d->query_seconds,
                         (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    return res;
failed:
    PQclear(res);
    if (rc_pg_in_transaction(pg)) {
        char e2[256];
        rc_pg_rollback(pg, e2, sizeof e2);
    }
    return NULL;
}

/* Unscoped statements (accounts, sessions): no report table is read. */
static PGresult *plain(worker *w, const char *name, int n, const char *const *vals,
                       char *errbuf, size_t errlen)
{
    return rc_pg_exec_prepared(w->pg, name, n, vals, NULL, NULL, 0, errbuf, errlen);
}

static const char *cookie_value(job *j, const char *name, char *out, size_t len)
{
    const char *c = evhttp_find_header(&j->in, "Cookie");
    size_t nl = strlen(name);
    while (c && *c) {
        while (*c == ' ' || *c == ';')
            c++;
        if (strncmp(c, name, nl) == 0 && c[nl] == '=') {
            const char *v = c + nl + 1, *e = strchr(v, ';');
            size_t vl = e ? (size_t)(e - v) : strlen(v);
            if (vl == 0 || vl >= len)
                return NULL;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return out;
        }
        c = strchr(c, ';');
    }
    return NULL;
}

/* The account of a request (cookie or bearer key).  Returns 0, or -1 (not
 * signed in), or -2 (database error, reply 503). */
static int authenticate(worker *w, job *j, account *a)
{
    char tok[128], hash[65], err[256];
    const char *authz = evhttp_find_header(&j->in, "Authorization");
    const char *stmt;
    PGresult *res;

    if (authz && strncasecmp(authz, "Bearer ", 7) == 0) {
        const char *k = authz + 7;
        if (strlen(k) < 16 || strlen(k) > 120)
            return -1;
        sha256_hex(k, hash);
        stmt = "auth_key";
    } else if (cookie_value(j, "rc_session", tok, sizeof tok)) {
        sha256_hex(tok, hash);
        stmt = "auth_session";
    } else {
        return -1;
    }
    const char *v[1] = {hash};
    if (!(res = plain(w, stmt, 1, v, err, sizeof err))) {
        rc_error("authentication query failed: %s", err);
        return -2;
    }
    if (PQntuples(res) != 1) {
        PQclear(res);
        return -1;
    }
    snprintf(a->name, sizeof a->name, "%s", PQgetvalue(res, 0, 0));
    snprintf(a->unit, sizeof a->unit, "%s", PQgetvalue(res, 0, 1));
    snprintf(a->role, sizeof a->role, "%s", PQgetvalue(res, 0, 2));
    PQclear(res);
    return 0;
}

static bool json_content(job *j)
{
    const char *ct = evhttp_find_header(&j->in, "Content-Type");
    return ct && strncasecmp(ct, "application/json", 16) == 0;
}

/* ------------------------------------------------------------ CSV */

static void csv_cell(struct evbuffer *b, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        evbuffer_add(b, s, strlen(s));
        return;
    }
    evbuffer_add(b, "\"", 1);
    for (; *s; s++) {
        if (*s == '"')
            evbuffer_add(b, "\"", 1);
        evbuffer_add(b, s, 1);
    }
    evbuffer_add(b, "\"", 1);
}

static void csv_value(struct evbuffer *b, json_t *v)
{
    char num[64];
    if (!v || json_is_null(v))
        return;
    if (json_is_string(v)) {
        csv_cell(b, json_string_value(v));
    } else if (json_is_integer(v)) {
        snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
        csv_cell(b, num);
    } else if (json_is_real(v)) {
        snprintf(num, sizeof num, "%.17g", json_real_value(v));
        csv_cell(b, num);
    } else if (json_is_boolean(v)) {
        csv_cell(b, json_is_true(v) ? "true" : "false");
    } else {
        char *s = json_dumps(v, JSON_COMPACT);
        if (s)
            csv_cell(b, s);
        free(s);
    }
}

/* {"rows":[{...}]} -> CSV, header = the first row's keys (or none). */
static struct evbuffer *rows_to_csv(const char *body)
{
    json_t *root = json_loads(body, 0, NULL), *rows, *row, *first;
    struct evbuffer *b = evbuffer_new();
    size_t i;
    if (!root || !b || !(rows = json_object_get(root, "rows")) || !json_is_array(rows)) {
        json_decref(root);
        if (b)
            evbuffer_free(b);
        return NULL;
    }
    if ((first = json_array_get(rows, 0))) {
        const char *k;
        json_t *v;
        bool comma = false;
        json_object_foreach(first, k, v) {
            if (comma)
                evbuffer_add(b, ",", 1);
            csv_cell(b, k);
            comma = true;
        }
        evbuffer_add(b, "\r\n", 2);
        json_array_foreach(rows, i, row) {
            comma = false;
            json_object_foreach(first, k, v) {
                if (comma)
                    evbuffer_add(b, ",", 1);
                csv_value(b, json_object_get(row, k));
                comma = true;
            }
            evbuffer_add(b, "\r\n", 2);
        }
    }
    json_decref(root);
    return b;
}

static bool wants_csv(job *j, struct evkeyvalq *q)
{
    const char *f = evhttp_find_header(q, "format");
    const char *acc = evhttp_find_header(&j->in, "Accept");
    return (f && strcmp(f, "csv") == 0) || (acc && strstr(acc, "text/csv"));
}

/* Replies with the JSON (or CSV) body and its ETag, or 304. */
static void reply_data(job *j, struct evkeyvalq *q, const char *body, bool csv_ok,
                       const char *unit, const char *what, const char *period)
{
    unsigned char h[crypto_hash_sha256_BYTES];
    char etag[48], hex[33];
    bool csv = csv_ok && wants_csv(j, q);
    struct evkeyvalq *out = &j->out;
    const char *inm = evhttp_find_header(&j->in, "If-None-Match");

    /* The body is a function of the data read (aggregate versions and
     * all): its digest is the version of the answer — except lag_seconds,
     * which grows with the clock and is left out, so that an unchanged day
     * still answers 304. */
    {
        crypto_hash_sha256_state st;
        const char *lag = strstr(body, "\"lag_seconds\" : "), *rest = body;
        crypto_hash_sha256_init(&st);
        if (lag) {
            lag += strlen("\"lag_seconds\" : ");
            crypto_hash_sha256_update(&st, (const unsigned char *)body, (size_t)(lag - body));
            rest = lag + strcspn(lag, ",}");
        }
        crypto_hash_sha256_update(&st, (const unsigned char *)rest, strlen(rest));
        crypto_hash_sha256_final(&st, h);
    }
    sodium_bin2hex(hex, sizeof hex, h, 16);
    snprintf(etag, sizeof etag, "\"%s%s\"", csv ? "c" : "j", hex);
    evhttp_add_header(out, "ETag", etag);
    evhttp_add_header(out, "Vary", "Accept, Cookie, Authorization");
    if (inm && strstr(inm, etag)) {
        evhttp_add_header(out, "Cache-Control", "no-cache, private");
        reply_buffer(j, 304, "Not Modified", NULL);
        return;
    }
    if (!csv) {
        reply_body(j, 200, "application/json", body, strlen(body));
        return;
    }
    struct evbuffer *b = rows_to_csv(body);
    if (!b) {
        reply_error(j, 500, "internal error");
        return;
    }
    char disp[160];
    snprintf(disp, sizeof disp, "attachment; filename=\"%s-%s-%s.csv\"", unit, what,
             period ? period : "all");
    evhttp_add_header(out, "Content-Type", "text/csv; charset=utf-8");
    evhttp_add_header(out, "Content-Disposition", disp);
    evhttp_add_header(out, "Cache-Control", "no-cache, private");
    reply_buffer(j, 200, NULL, b);
    evbuffer_free(b);
}

/* ------------------------------------------------------------ login */

static void do_login(worker *w, job *j)
{
    dashboard *d = w->d;
    char addr[64], err[256], window[16], tok[65], hash[65], ttl[16], cookie[256];
    unsigned char raw[32];
    struct evbuffer *in = j->body;
    size_t len = evbuffer_get_length(in);
    json_t *root = NULL;
    const char *user, *password;
    PGresult *res = NULL;
    bool ok = false;

    snprintf(addr, sizeof addr, "%s", j->addr);
    if (len == 0 || len > 4096 ||
        !(root = json_loadb((const char *)evbuffer_pullup(in, -1), len, 0, NULL)) ||
        !json_is_string(json_object_get(root, "user")) ||
        !json_is_string(json_object_get(root, "password"))) {
        reply_error(j, 400, "expected {\"user\":\"...\",\"password\":\"...\"}");
        goto done;
    }
    user = json_string_value(json_object_get(root, "user"));
    password = json_string_value(json_object_get(root, "password"));
    if (strlen(user) > 64 || strlen(password) > 1024) {
        reply_error(j, 401, "invalid user or password");
        goto done;
    }
    snprintf(window, sizeof window, "%d", d->cfg->login_window_ms);
    const char *fv[3] = {user, addr, window};
    if (!(res = plain(w, "login_failures", 3, fv, err, sizeof err)))
        goto db_failed;
    if (atoi(PQgetvalue(res, 0, 0)) >= d->cfg->login_max_account ||
        atoi(PQgetvalue(res, 0, 1)) >= d->cfg->login_max_address) {
        rc_warn("sign-in throttled user=%s addr=%s", user, addr);
        rc_counter_inc(d->logins_throttled);
        reply_error(j, 429, "too many attempts, try again later");
        goto done;
    }
    PQclear(res);
    const char *av[1] = {user};
    if (!(res = plain(w, "login_account", 1, av, err, sizeof err)))
        goto db_failed;
    pthread_mutex_lock(&d->pwhash_lock);
    if (PQntuples(res) == 1) {
        ok = crypto_pwhash_str_verify(PQgetvalue(res, 0, 3), password, strlen(password)) == 0 &&
             PQgetvalue(res, 0, 4)[0] != 't';
    } else {
        /* The same work for a name that does not exist. */
        if (crypto_pwhash_str_verify(d->dummy_hash, password, strlen(password)) == 0)
            rc_debug("the dummy password matched");
    }
    pthread_mutex_unlock(&d->pwhash_lock);
    if (!ok) {
        PQclear(res);
        const char *lv[2] = {user, addr};
        if (!(res = plain(w, "login_failed", 2, lv, err, sizeof err)))
            goto db_failed;
        rc_info("sign-in failed user=%s addr=%s", user, addr);
        rc_counter_inc(d->logins_failed);
        reply_error(j, 401, "invalid user or password");
        goto done;
    }
    account a;
    snprintf(a.name, sizeof a.name, "%s", PQgetvalue(res, 0, 0));
    snprintf(a.unit, sizeof a.unit, "%s", PQgetvalue(res, 0, 1));
    snprintf(a.role, sizeof a.role, "%s", PQgetvalue(res, 0, 2));
    PQclear(res);
    res = NULL;
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(tok, sizeof tok, raw, sizeof raw);
    sha256_hex(tok, hash);
    snprintf(ttl, sizeof ttl, "%d", d->cfg->session_ttl_ms);
    const char *sv[4] = {a.name, hash, ttl, addr};
    if (!(res = plain(w, "login_ok", 4, sv, err, sizeof err)))
        goto db_failed;
    PQclear(res);
    const char *mv[3] = {a.unit, a.name, a.role};
    if (!(res = scoped(w, a.unit, "me", 3, mv, err, sizeof err)))
        goto db_failed;
    snprintf(cookie, sizeof cookie, "rc_session=%s; HttpOnly; SameSite=Strict; Path=/; Max-Age=%d%s", tok,
             d->cfg->session_ttl_ms / 1000, d->cfg->secure_cookie ? "; Secure" : "");
    evhttp_add_header(&j->out, "Set-Cookie", cookie);
    rc_info("signed in user=%s unit=%s addr=%s", a.name, a.unit, addr);
    reply_body(j, 200, "application/json", PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
    goto done;
db_failed:
    rc_error("sign-in: %s", err);
    reply_error(j, 503, "database unavailable");
done:
    sodium_memzero(tok, sizeof tok);
    PQclear(res);
    json_decref(root);
}

static void do_logout(worker *w, job *j)
{
    char tok[128], hash[65], err[256];
    if (cookie_value(j, "rc_session", tok, sizeof tok)) {
        const char *v[1] = {hash};
        PGresult *res;
        sha256_hex(tok, hash);
        if (!(res = plain(w, "logout", 1, v, err, sizeof err))) {
            rc_error("logout: %s", err);
            reply_error(j, 503, "database unavailable");
            return;
        }
        PQclear(res);
    }
    evhttp_add_header(&j->out, "Set-Cookie", "rc_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    reply_buffer(j, 204, "No Content", NULL);
}

/* ------------------------------------------------------------ units */

/* Replies with the query's JSON; 404 when it is NULL (unknown unit). */
static void run_json(worker *w, job *j, struct evkeyvalq *q, const account *a, const char *name, int n, const char *const *vals, bool csv_ok,
                     const char *unit, const char *what, const char *period)
{
    char err[512];
    PGresult *res = scoped(w, a->unit, name, n, vals, err, sizeof err);
    if (!res) {
        rc_error("query %s unit=%s user=%s: %s", name, unit, a->name, err);
        reply_error(j, 503, "database unavailable");
        return;
    }
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
        PQclear(res);
        reply_error(j, 404, "not found");
        return;
    }
    if (strcmp(PQgetvalue(res, 0, 0), "{\"too_many\":true}") == 0)
        reply_error(j, 400, "too many villages: choose a county or township");
    else
        reply_data(j, q, PQgetvalue(res, 0, 0), csv_ok, unit, what, period);
    PQclear(res);
}

static int int_param(struct evkeyvalq *q, const char *name, int def, int lo, int hi, int *out)
{
    const char *v = evhttp_find_header(q, name);
    char *end;
    long x;
    if (!v) {
        *out = def;
        return 0;
    }
    x = strtol(v, &end, 10);
    if (*v == '\0' || *end != '\0' || x < lo || x > hi)
        return -1;
    *out = (int)x;
    return 0;
}

/* The history: the archive's revisions, their indicators decoded here. */
static void do_history(worker *w, job *j, struct evkeyvalq *q, const account *a, const char *code, const char *period, const char *days)
{
    char err[512];
    const char *v[3] = {code, period, days};
    PGresult *res = scoped(w, a->unit, "unit_exists", 1, v, err, sizeof err);
    json_t *root, *rows;
    char *body;

    if (res && PQntuples(res) == 0) {
        PQclear(res);
        reply_error(j, 404, "not found");
        return;
    }
    PQclear(res);
    res = res ? scoped(w, a->unit, "history", 3, v, err, sizeof err) : NULL;
    if (!res) {
        rc_error("query history unit=%s user=%s: %s", code, a->name, err);
        reply_error(j, 503, "database unavailable");
        return;
    }
    root = json_object();
    rows = json_array();
    json_object_set_new(root, "rows", rows);
    for (int i = 0; i < PQntuples(res); i++) {
        size_t blen = 0;
        unsigned char *bin = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 6), &blen);
        Rollcall__Report *r = bin ? rc_report_unpack(bin, blen, NULL) : NULL;
        json_t *row = json_object(), *ind = json_object();
        int kind = atoi(PQgetvalue(res, i, 2));
        json_object_set_new(row, "report_id", json_string(PQgetvalue(res, i, 0)));
        json_object_set_new(row, "version", json_integer(strtoll(PQgetvalue(res, i, 1), NULL, 10)));
        json_object_set_new(row, "kind", json_string(kind == 1 ? "daily" : kind == 2 ? "zero" : "urgent"));
        json_object_set_new(row, "period", json_string(PQgetvalue(res, i, 4)));
        json_object_set_new(row, "received_at", PQgetisnull(res, i, 3) ? json_null()
                                                    : json_string(PQgetvalue(res, i, 3)));
        json_object_set_new(row, "late", json_boolean(PQgetvalue(res, i, 5)[0] == 't'));
        if (r && r->indicators)
            for (size_t k = 0; k < rc_indicator_count(); k++)
                json_object_set_new(ind, rc_indicator_name(k),
                                    json_integer(rc_indicator_get(r->indicators, k)));
        if (r)
            for (size_t k = 0; k < r->n_extra; k++)
                json_object_set_new(ind, r->extra[k]->key, json_integer(r->extra[k]->value));
        json_object_set_new(row, "indicators", ind);
        json_array_append_new(rows, row);
        if (r)
            rollcall__report__free_unpacked(r, NULL);
        PQfreemem(bin);
    }
    PQclear(res);
    body = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!body) {
        reply_error(j, 500, "internal error");
        return;
    }
    reply_data(j, q, body, true, code, "history", NULL);
    free(body);
}

static void do_signoff(worker *w, job *j, const account *a, const char *code, const char *period)
{
    char err[512], by[128];
    PGresult *res;
    if (strcmp(a->role, "signer") != 0 || strcmp(code, a->unit) != 0) {
        rc_warn("sign-off refused user=%s role=%s unit=%s", a->name, a->role, code);
        reply_error(j, 403, "forbidden");
        return;
    }
    snprintf(by, sizeof by, "%s", a->name);
    const char *v[3] = {code, period, by};
    if (!(res = scoped(w, a->unit, "signoff", 3, v, err, sizeof err))) {
        rc_error("sign-off unit=%s user=%s: %s", code, a->name, err);
        reply_error(j, 503, "database unavailable");
        return;
    }
    bool signed_one = !PQgetisnull(res, 0, 0);
    PQclear(res);
    if (!signed_one) {
        reply_error(j, 404, "not found");
        return;
    }
    rc_info("signed off user=%s unit=%s period=%s", a->name, code, period);
    const char *dv[4] = {code, period, a->unit, a->role};
    if (!(res = scoped(w, a->unit, "day", 4, dv, err, sizeof err))) {
        reply_error(j, 503, "database unavailable");
        return;
    }
    json_t *day = json_loads(PQgetvalue(res, 0, 0), 0, NULL), *out = json_object();
    PQclear(res);
    json_object_set(out, "filing", day ? json_object_get(day, "filing") : json_null());
    char *body = json_dumps(out, JSON_COMPACT);
    json_decref(out);
    json_decref(day);
    reply_body(j, 200, "application/json", body ? body : "{}", body ? strlen(body) : 2);
    free(body);
}

static void units(worker *w, job *j, const account *a, const char *rest, struct evkeyvalq *q)
{
    char code[16], what[16] = "", period[11], days_s[8];
    const char *slash = strchr(rest, '/'), *p;
    size_t cl = slash ? (size_t)(slash - rest) : strlen(rest);
    enum evhttp_cmd_type cmd = j->cmd;
    int days;
    int32_t day;

    if (cl == 0 || cl >= sizeof code) {
        reply_error(j, 404, "not found");
        return;
    }
    memcpy(code, rest, cl);
    code[cl] = '\0';
    if (slash && snprintf(what, sizeof what, "%s", slash + 1) >= (int)sizeof what) {
        reply_error(j, 404, "not found");
        return;
    }
    /* The scope, in C: the account's subtree is its code's prefix.  Out of
     * scope and unknown answer alike; the attempt is logged. */
    if (!valid_code(code) || strncmp(code, a->unit, strlen(a->unit)) != 0) {
        if (valid_code(code)) {
            rc_warn("out-of-scope request user=%s unit=%s asked=%s", a->name, a->unit, code);
            rc_counter_inc(w->d->out_of_scope);
        }
        reply_error(j, 404, "not found");
        return;
    }
    p = evhttp_find_header(q, "period");
    if (p) {
        if (rc_period_parse(p, &day) < 0) {
            reply_error(j, 400, "period must be YYYY-MM-DD");
            return;
        }
        snprintf(period, sizeof period, "%s", p);
    } else {
        today(period);
    }
    if (strcmp(what, "signoff") == 0) {
        if (cmd != EVHTTP_REQ_POST) {
            reply_error(j, 405, "method not allowed");
            return;
        }
        if (!json_content(j)) {
            reply_error(j, 415, "Content-Type must be application/json");
            return;
        }
        do_signoff(w, j, a, code, period);
        return;
    }
    if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
        reply_error(j, 405, "method not allowed");
        return;
    }
    int def_days = strcmp(what, "urgent") == 0 ? 7 : strcmp(what, "history") == 0 ? 90 : 30;
    if (int_param(q, "days", def_days, 1, strcmp(what, "history") == 0 ? 3660 : 92, &days) < 0) {
        reply_error(j, 400, "days out of range");
        return;
    }
    snprintf(days_s, sizeof days_s, "%d", days);
    if (what[0] == '\0') {
        const char *v[2] = {code, a->unit};
        run_json(w, j, q, a, "unit", 2, v, false, code, "unit", NULL);
    } else if (strcmp(what, "day") == 0) {
        const char *v[4] = {code, period, a->unit, a->role};
        run_json(w, j, q, a, "day", 4, v, false, code, "day", period);
    } else if (strcmp(what, "missing") == 0 || strcmp(what, "late") == 0) {
        const char *v[2] = {code, period};
        run_json(w, j, q, a, what, 2, v, true, code, what, period);
    } else if (strcmp(what, "alerts") == 0 || strcmp(what, "urgent") == 0) {
        const char *v[3] = {code, period, days_s};
        run_json(w, j, q, a, what, 3, v, true, code, what, period);
    } else if (strcmp(what, "calendar") == 0) {
        const char *v[3] = {code, period, days_s};
        run_json(w, j, q, a, what, 3, v, false, code, what, period);
    } else if (strcmp(what, "trends") == 0) {
        const char *ind = evhttp_find_header(q, "indicator");
        if (!ind)
            ind = "confirmed";
        if (rc_indicator_index(ind) < 0) {
            reply_error(j, 400, "unknown indicator");
            return;
        }
        const char *v[4] = {code, period, days_s, ind};
        run_json(w, j, q, a, what, 4, v, false, code, what, period);
    } else if (strcmp(what, "signoffs") == 0) {
        const char *v[1] = {code};
        run_json(w, j, q, a, what, 1, v, true, code, what, NULL);
    } else if (strcmp(what, "history") == 0) {
        do_history(w, j, q, a, code, period, days_s);
    } else {
        reply_error(j, 404, "not found");
    }
}

/* ------------------------------------------------------------ routing */

/* On a worker: the request's whole answer, into j. */
static void handle(void *context, pool_job *pj)
{
    worker *w = context;
    job *j = (job *)pj;
    const char *path = j->path;
    struct evkeyvalq q;
    account a;
    int rc;

    TAILQ_INIT(&q);
    if (j->query && evhttp_parse_query_str(j->query, &q) < 0) {
        reply_error(j, 400, "bad query string");
        return;
    }
    if (strcmp(path, "/api/login") == 0) {
        if (j->cmd != EVHTTP_REQ_POST)
            reply_error(j, 405, "method not allowed");
        else
            do_login(w, j);
        goto done;
    }
    if ((rc = authenticate(w, j, &a)) == -2) {
        reply_error(j, 503, "database unavailable");
        goto done;
    }
    if (rc < 0) {
        reply_error(j, 401, "not signed in");
        goto done;
    }
    if (strcmp(path, "/api/logout") == 0) {
        if (j->cmd != EVHTTP_REQ_POST)
            reply_error(j, 405, "method not allowed");
        else if (!json_content(j))
            reply_error(j, 415, "Content-Type must be application/json");
        else
            do_logout(w, j);
    } else if (strcmp(path, "/api/me") == 0) {
        const char *v[3] = {a.unit, a.name, a.role};
        run_json(w, j, &q, &a, "me", 3, v, false, a.unit, "me", NULL);
    } else if (strcmp(path, "/api/select1") == 0) {
        run_json(w, j, &q, &a, "select1", 0, NULL, false, a.unit, "select1", NULL);
    } else if (strcmp(path, "/api/stream") == 0) {
        const char *u = evhttp_find_header(&q, "unit");
        if (!u || !valid_code(u) || strncmp(u, a.unit, strlen(a.unit)) != 0) {
            if (u && valid_code(u))
                rc_warn("out-of-scope stream user=%s unit=%s asked=%s", a.name, a.unit, u);
            reply_error(j, 404, "not found");
        } else {
            snprintf(j->stream_unit, sizeof j->stream_unit, "%s", u);
        }
    } else if (strncmp(path, "/api/units/", 11) == 0) {
        units(w, j, &a, path + 11, &q);
    } else {
        reply_error(j, 404, "not found");
    }
done:
    evhttp_clear_headers(&q);
}

static void job_free(job *j)
{
    evhttp_clear_headers(&j->in);
    evhttp_clear_headers(&j->out);
    if (j->body)
        evbuffer_free(j->body);
    if (j->reply)
        evbuffer_free(j->reply);
    free(j->path);
    free(j->query);
    free(j);
}

/* On the loop: sends what the worker built.  A request whose client went
 * away meanwhile has been detached from its connection by libevent and is
 * ours: replying then only frees it. */
static void deliver(void *arg, pool_job *pj)
{
    dashboard *d = arg;
    job *j = (job *)pj;
    struct evhttp_request *req = j->req;

    if (!pj->ran) {
        evhttp_send_reply(req, 503, "Service Unavailable", NULL);
    } else if (j->stream_unit[0]) {
        if (d->stream && evhttp_request_get_connection(req))
            stream_add(d->stream, req, j->stream_unit);
        else
            evhttp_send_reply(req, 503, "Service Unavailable", NULL);
    } else {
        struct evkeyvalq *out = evhttp_request_get_output_headers(req);
        struct evkeyval *h;
        TAILQ_FOREACH(h, &j->out, next)
            evhttp_add_header(out, h->key, h->value);
        evhttp_send_reply(req, j->code ? j->code : 500, j->reason, j->reply);
    }
    job_free(j);
}

/* On the loop: static files here; an /api/ request is copied into a job. */
static void on_request(struct evhttp_request *req, void *arg)
{
    dashboard *d = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
    struct evkeyval *h;
    job *j;

    if (!path || !*path)
        path = "/";
    if (strncmp(path, "/api/", 5) != 0) {
        static_serve(d->cfg->web_root, req, path);
        return;
    }
    if (!(j = calloc(1, sizeof *j)) || !(j->path = strdup(path)) ||
        (query && !(j->query = strdup(query))) || !(j->body = evbuffer_new()) ||
        !(j->reply = evbuffer_new())) {
        if (j)
            job_free(j);
        evhttp_send_reply(req, 503, "Service Unavailable", NULL);
        return;
    }
    TAILQ_INIT(&j->in);
    TAILQ_INIT(&j->out);
    j->req = req;
    j->cmd = evhttp_request_get_command(req);
    TAILQ_FOREACH(h, evhttp_request_get_input_headers(req), next)
        evhttp_add_header(&j->in, h->key, h->value);
    evbuffer_add_buffer(j->body, evhttp_request_get_input_buffer(req));
    client_address(req, j->addr, sizeof j->addr);
    if (pool_submit(d->pool, &j->link) < 0) {
        /* Every worker busy and the queue full: refuse now rather than
         * let requests wait past any client's patience. */
        rc_counter_inc(d->busy);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
        evhttp_send_reply(req, 503, "Service Unavailable", NULL);
        job_free(j);
    }
}

static double gauge_clients(void *opaque)
{
    return (double)stream_clients(opaque);
}

static double gauge_queued(void *opaque)
{
    dashboard *d = opaque;
    return d->pool ? (double)pool_queued(d->pool) : 0;
}

dashboard *dashboard_new(const dashboard_config *cfg, rc_service *svc, char *errbuf, size_t errlen)
{
    dashboard *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    d->cfg = cfg;
    d->svc = svc;
    pthread_mutex_init(&d->pwhash_lock, NULL);
    if (!(d->workers = calloc((size_t)cfg->workers, sizeof *d->workers)) ||
        !(d->contexts = calloc((size_t)cfg->workers, sizeof *d->contexts))) {
        snprintf(errbuf, errlen, "out of memory");
        goto failed;
    }
    for (; d->nworkers < cfg->workers; d->nworkers++) {
        worker *w = &d->workers[d->nworkers];
        w->d = d;
        if (!(w->pg = rc_pg_connect(cfg->pg_dsn, "rollcall-dashboard", errbuf, errlen)))
            goto failed;
        /* A request waits at most a few seconds for a reconnection. */
        rc_pg_set_reconnect_timeout(w->pg, 2000);
        if (queries_prepare(w->pg, errbuf, errlen) < 0)
            goto failed;
        d->contexts[d->nworkers] = w;
    }
    /* /healthz from a probe of its own: the workers' connections are busy,
     * and one of them may sit in a reconnection for seconds. */
    if (!(d->probe = rc_probe_new(cfg->pg_dsn, "rollcall-dashboard health", NULL, NULL, NULL, errbuf,
                                  errlen)))
        goto failed;
    if (!(d->stream = stream_new(rc_service_base(svc), cfg->pg_dsn, errbuf, errlen)))
        goto failed;
    /* Hashed once: unknown names cost a verification too. */
    if (crypto_pwhash_str(d->dummy_hash, "not a password", 14, 2, 19u << 20) != 0) {
        snprintf(errbuf, errlen, "crypto_pwhash_str: out of memory");
        goto failed;
    }
    d->out_of_scope = rc_metrics_counter("rollcall_dashboard_out_of_scope_total",
                                         "Requests for a unit outside the account's subtree.", NULL);
    d->logins_failed = rc_metrics_counter("rollcall_dashboard_logins_failed_total",
                                          "Failed sign-ins.", NULL);
    d->logins_throttled = rc_metrics_counter("rollcall_dashboard_logins_throttled_total",
                                             "Sign-ins refused by the rate limit.", NULL);
    d->busy = rc_metrics_counter("rollcall_dashboard_busy_total",
                                 "API requests refused with 503 because every worker was busy and "
                                 "the queue full.", NULL);
    static const double buckets[] = {0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1};
    d->query_seconds = rc_metrics_histogram("rollcall_dashboard_query_seconds",
                                            "Scoped transactions (scope, query, commit).", NULL,
                                            buckets, sizeof buckets / sizeof buckets[0]);
    rc_metrics_gauge_fn("rollcall_dashboard_stream_clients", "Open event streams.", NULL,
                        gauge_clients, d->stream);
    rc_metrics_gauge_fn("rollcall_dashboard_queued", "API requests waiting for a worker.", NULL,
                        gauge_queued, d);
    rc_service_add_health_check(svc, "postgresql", rc_probe_check, d->probe);
    if (!(d->pool = pool_new(rc_service_base(svc), d->nworkers, (size_t)cfg->queue_max, d->contexts,
                             handle, deliver, d, errbuf, errlen)))
        goto failed;
    if (rc_service_route(svc, NULL, on_request, d) < 0) {
        snprintf(errbuf, errlen, "cannot register the routes");
        goto failed;
    }
    return d;
failed:
    dashboard_free(d);
    return NULL;
}

/* The stop hook: the workers finish what they run and every waiting
 * request is answered before the loop ends. */
void dashboard_stop(void *arg)
{
    dashboard *d = arg;
    pool_stop(d->pool);
    stream_free(d->stream);
    d->stream = NULL;
}

void dashboard_free(dashboard *d)
{
    if (!d)
        return;
    pool_free(d->pool);
    stream_free(d->stream);
    rc_probe_free(d->probe);
    for (int i = 0; d->workers && i < d->cfg->workers; i++)
        rc_pg_free(d->workers[i].pg);
    free(d->workers);
    free(d->contexts);
    pthread_mutex_destroy(&d->pwhash_lock);
    free(d);
}
