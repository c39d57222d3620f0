/* The token cache: every valid token's hash -> its unit, in memory, so a
 * request is authenticated without a round trip.  A thread with its own
 * connection LISTENs on rollcall_token (migration 002 notifies every change
 * with the token's hash, at commit) and applies each change at once, and
 * reloads everything at start, after a reconnection (notifications may have
 * been missed) and every reload_ms as a safety net.  Only hashes are held;
 * a clear token lives for the duration of one lookup. */
#include "village.h"
#include "rc_pg.h"
#include "rc_token.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define LISTEN_SQL "LISTEN rollcall_token"
#define RELOAD_SQL "COPY (SELECT token_hash, unit_code FROM rollcall.unit_token " \
                   "WHERE revoked_at IS NULL) TO STDOUT"
#define ONE_SQL "SELECT unit_code FROM rollcall.unit_token " \
                "WHERE token_hash = $1 AND revoked_at IS NULL"
#define BATCH 4096

struct auth {
    rc_pg *pg;
    rc_token_map *map;
    pthread_mutex_t lock;       /* guards map */
    pthread_t thread;
    bool thread_started;
    int wake_fd;                /* eventfd: stop the thread */
    atomic_bool stop;
    int reload_ms;
    int64_t last_reload_us;
};

/* Streams every valid token into the map (mark and sweep, in batches under
 * the lock, so lookups go on meanwhile and no second copy is built).
 * Returns 0, or -1 with errbuf (the map then keeps every entry it had plus
 * those read so far: a failed reload never drops a valid token). */
static int reload_all(auth *a, char *errbuf, size_t errlen)
{
    PGconn *conn = rc_pg_conn(a->pg);
    PGresult *res = NULL;
    char *row = NULL;
    int n, rc = -1, inbatch = 0;
    size_t rows = 0, removed;
    bool marked = false;

    if (!conn) {
        snprintf(errbuf, errlen, "%s", rc_pg_last_error(a->pg));
        return -1;
    }
    /* Room for them all first: growing by doubling would briefly hold two
     * tables (the national set: 12 + 24 MiB). */
    res = PQexec(conn, "SELECT count(*) FROM rollcall.unit_token WHERE revoked_at IS NULL");
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        size_t want = (size_t)strtoull(PQgetvalue(res, 0, 0), NULL, 10);
        pthread_mutex_lock(&a->lock);
        rc_token_map_reserve(a->map, want + want / 8);
        pthread_mutex_unlock(&a->lock);
    }
    PQclear(res);
    res = PQexec(conn, RELOAD_SQL);
    if (PQresultStatus(res) != PGRES_COPY_OUT) {
        snprintf(errbuf, errlen, "reading rollcall.unit_token: %s", PQerrorMessage(conn));
        goto done;
    }
    pthread_mutex_lock(&a->lock);
    rc_token_map_mark(a->map);
    marked = true;
    while ((n = PQgetCopyData(conn, &row, 0)) > 0) {
        uint8_t hash[RC_TOKEN_HASH_LEN];
        char *tab = memchr(row, '\t', (size_t)n);
        if (tab && n > 0 && row[n - 1] == '\n') {
            row[n - 1] = '\0';
            *tab = '\0';
            if (rc_token_hash_from_hex(row, hash) == 0 && rc_token_map_put(a->map, hash, tab + 1) == 0)
                rows++;
        }
        PQfreemem(row);
        row = NULL;
        if (++inbatch == BATCH) {
            inbatch = 0;
            pthread_mutex_unlock(&a->lock);
            pthread_mutex_lock(&a->lock);
        }
    }
    if (n == -2) {
        snprintf(errbuf, errlen, "reading rollcall.unit_token: %s", PQerrorMessage(conn));
        goto unlock;
    }
    PQclear(res);
    res = PQgetResult(conn);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        snprintf(errbuf, errlen, "reading rollcall.unit_token: %s", PQerrorMessage(conn));
        goto unlock;
    }
    removed = rc_token_map_sweep(a->map);
    marked = false;
    rc_info("tokens loaded count=%zu removed=%zu", rows, removed);
    a->last_reload_us = rc_now_us();
    rc = 0;
unlock:
    if (marked)
        rc_token_map_mark(a->map);      /* undo: nothing is swept */
    pthread_mutex_unlock(&a->lock);
done:
    PQclear(res);
    /* Drain whatever is left of a failed COPY so the connection stays usable. */
    while (conn && (res = PQgetResult(conn)) != NULL)
        PQclear(res);
    return rc;
}

/* Re-reads one token after a notification: present and valid -> put,
 * otherwise (revoked, deleted) -> removed. */
static int apply_change(auth *a, const char *hex)
{
    uint8_t hash[RC_TOKEN_HASH_LEN];
    const char *params[1] = {hex};
    char err[256];
    PGresult *res;

    if (rc_token_hash_from_hex(hex, hash) < 0)
        return 0;
    res = rc_pg_exec_prepared(a->pg, "token_one", 1, params, NULL, NULL, 0, err, sizeof err);
    if (!res) {
        rc_warn("token refresh failed error=\"%s\"", err);
        return -1;
    }
    pthread_mutex_lock(&a->lock);
    if (PQntuples(res) == 1) {
        rc_token_map_put(a->map, hash, PQgetvalue(res, 0, 0));
        rc_info("token valid unit=%s", PQgetvalue(res, 0, 0));
    } else if (rc_token_map_del(a->map, hash)) {
        rc_info("token revoked");
    }
    pthread_mutex_unlock(&a->lock);
    PQclear(res);
    return 0;
}

/* LISTENs and reloads on a (re)established connection.  Returns 0 or -1. */
static int resync(auth *a)
{
    char err[512];

    if (rc_pg_command(a->pg, LISTEN_SQL, err, sizeof err) < 0 || reload_all(a, err, sizeof err) < 0) {
        rc_warn("token cache not refreshed error=\"%s\"", err);
        return -1;
    }
    return 0;
}

static void *refresh_thread(void *arg)
{
    auth *a = arg;
    bool synced = true;

    while (!atomic_load(&a->stop)) {
        PGconn *conn = rc_pg_conn(a->pg);
        struct pollfd fds[2];
        PGnotify *nfy;
        int wait_ms = 1000;

        if (!conn) {
            rc_warn("token cache cannot reach PostgreSQL, revocations wait error=\"%s\"",
                    rc_pg_last_error(a->pg));
            synced = false;
            poll(&(struct pollfd){.fd = a->wake_fd, .events = POLLIN}, 1, 1000);
            continue;
        }
        if (rc_pg_was_disconnected(a->pg) || !synced
            || (a->reload_ms > 0 && rc_now_us() - a->last_reload_us > (int64_t)a->reload_ms * 1000)) {
            synced = resync(a) == 0;
            if (!synced)
                poll(&(struct pollfd){.fd = a->wake_fd, .events = POLLIN}, 1, 1000);
            continue;
        }
        /* rc_pg_conn's liveness probe may already have read notifications
         * (they stay queued): apply those before waiting for more. */
        while ((nfy = PQnotifies(conn)) != NULL) {
            char hex[RC_TOKEN_HEX_LEN + 1];
            snprintf(hex, sizeof hex, "%s", nfy->extra);
            PQfreemem(nfy);
            if (apply_change(a, hex) < 0)
                synced = false;
        }
        if (!synced)
            continue;
        fds[0] = (struct pollfd){.fd = PQsocket(conn), .events = POLLIN};
        fds[1] = (struct pollfd){.fd = a->wake_fd, .events = POLLIN};
        if (poll(fds, 2, wait_ms) < 0 && errno != EINTR)
            break;
        if (fds[1].revents)
            break;
        if (fds[0].revents && PQconsumeInput(conn) == 0) {
            /* The next rc_pg_conn sees CONNECTION_BAD, reconnects, and we reload. */
            char msg[256], *p;
            snprintf(msg, sizeof msg, "%s", PQerrorMessage(conn));
            for (p = msg; *p; p++)
                if (*p == '\n' || *p == '\t')
                    *p = ' ';
            rc_warn("token listener lost its connection error=\"%s\"", msg);
        }
    }
    return NULL;
}

auth *auth_new(const char *dsn, int reload_ms, char *errbuf, size_t errlen)
{
    auth *a = calloc(1, sizeof *a);
    char err[512];

    if (!a) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&a->lock, NULL);
    a->wake_fd = -1;
    a->reload_ms = reload_ms;
    if (!(a->map = rc_token_map_new()) || (a->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
        snprintf(errbuf, errlen, "out of memory");
        goto err;
    }
    if (!(a->pg = rc_pg_connect(dsn, "rollcall-village-tokens", err, sizeof err))) {
        snprintf(errbuf, errlen, "tokens: %s", err);
        goto err;
    }
    /* Reconnections happen on this thread only; keep each attempt short so
     * the stop flag is seen. */
    rc_pg_set_reconnect_timeout(a->pg, 2000);
    if (rc_pg_prepare(a->pg, "token_one", ONE_SQL, 1, err, sizeof err) < 0
        || rc_pg_command(a->pg, LISTEN_SQL, err, sizeof err) < 0
        || reload_all(a, err, sizeof err) < 0) {
        snprintf(errbuf, errlen, "tokens: %s (is migration 002 applied?)", err);
        goto err;
    }
    (void)rc_pg_was_disconnected(a->pg);
    if (pthread_create(&a->thread, NULL, refresh_thread, a) != 0) {
        snprintf(errbuf, errlen, "tokens: cannot start the refresh thread");
        goto err;
    }
    a->thread_started = true;
    return a;
err:
    auth_free(a);
    return NULL;
}

void auth_free(auth *a)
{
    if (!a)
        return;
    if (a->thread_started) {
        uint64_t one = 1;
        atomic_store(&a->stop, true);
        (void)!write(a->wake_fd, &one, sizeof one);
        pthread_join(a->thread, NULL);
    }
    if (a->wake_fd >= 0)
        close(a->wake_fd);
    rc_pg_free(a->pg);
    rc_token_map_free(a->map);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

bool auth_lookup(auth *a, const char *token, size_t len, char scope[13])
{
    uint8_t hash[RC_TOKEN_HASH_LEN];
    bool ok;

    rc_token_hash(token, len, hash);
    pthread_mutex_lock(&a->lock);
    ok = rc_token_map_get(a->map, hash, scope);
    pthread_mutex_unlock(&a->lock);
    return ok;
}

size_t auth_count(auth *a)
{
    size_t n;
    pthread_mutex_lock(&a->lock);
    n = rc_token_map_size(a->map);
    pthread_mutex_unlock(&a->lock);
    return n;
}
