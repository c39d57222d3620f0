/* The registry under a running intake: a thread with its own connection
 * checks rollcall.unit's fingerprint every `registry_reload` and, when it
 * changed (`rollcall registry import`), loads the new registry there, off
 * the request path; the loop picks it up on its next tick (every 250 ms)
 * and swaps it in.  Only the loop reads the registry, so the old one is
 * freed right there.  PostgreSQL away only delays the next load: the loaded
 * registry stays. */
#include "village.h"
#include "rc_pg.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TICK_MS 250

struct regwatch {
    char *dsn;
    int every_ms;
    intake *in;
    rc_registry *current;           /* owned; the intake borrows it */
    _Atomic(rc_registry *) pending; /* loaded by the thread, not yet swapped in */
    char signature[64];
    atomic_bool stop;
    pthread_t thread;
    bool started;
    struct event *tick;
};

static void sleep_ms(regwatch *w, int ms)
{
    for (int slept = 0; slept < ms && !atomic_load(&w->stop); slept += 50) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static void *watch_main(void *arg)
{
    regwatch *w = arg;
    char err[512], sig[64];
    rc_pg *pg = NULL;

    while (!atomic_load(&w->stop)) {
        sleep_ms(w, w->every_ms);
        if (atomic_load(&w->stop))
            break;
        if (!pg && !(pg = rc_pg_connect(w->dsn, "rollcall-village-registry", err, sizeof err))) {
            rc_warn("registry watch: %s (the loaded registry stays)", err);
            continue;
        }
        rc_pg_set_reconnect_timeout(pg, 0);
        PGconn *conn = rc_pg_conn(pg);
        if (!conn || rc_registry_pg_signature(conn, sig, sizeof sig, err, sizeof err) < 0) {
            rc_warn("registry watch: %s (the loaded registry stays)",
                    conn ? err : rc_pg_last_error(pg));
            continue;
        }
        if (strcmp(sig, w->signature) == 0 || atomic_load(&w->pending))
            continue;
        rc_registry *reg = rc_registry_new(false);
        if (!reg || rc_registry_load_pg(reg, conn, err, sizeof err) < 0) {
            rc_warn("registry watch: reload failed (the loaded registry stays): %s",
                    reg ? err : "out of memory");
            rc_registry_free(reg);
            continue;
        }
        snprintf(w->signature, sizeof w->signature, "%s", sig);
        atomic_store(&w->pending, reg);     /* the loop takes ownership */
    }
    rc_pg_free(pg);
    return NULL;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    regwatch *w = arg;
    rc_registry *reg = atomic_exchange(&w->pending, NULL);
    (void)fd;
    (void)what;
    if (!reg)
        return;
    intake_set_registry(w->in, reg);
    rc_registry_free(w->current);
    w->current = reg;
    rc_info("registry reloaded (rollcall.unit changed) villages=%zu",
            rc_registry_count(reg, ROLLCALL__LEVEL__LEVEL_VILLAGE));
}

regwatch *regwatch_new(const char *dsn, int every_ms, struct event_base *base, intake *in,
                       rc_registry *reg, char *errbuf, size_t errlen)
{
    regwatch *w = calloc(1, sizeof *w);
    char err[256];
    struct timeval tv = {0, TICK_MS * 1000};

    if (!w || !(w->dsn = strdup(dsn ? dsn : "")))
        goto oom;
    w->every_ms = every_ms;
    w->in = in;
    w->current = reg;
    atomic_init(&w->pending, NULL);
    atomic_init(&w->stop, false);
    /* The fingerprint of the registry loaded at start, so the first check
     * does not load it again (a failure here only costs one reload). */
    rc_pg *pg = rc_pg_connect(w->dsn, "rollcall-village-registry", err, sizeof err);
    PGconn *conn = pg ? rc_pg_conn(pg) : NULL;
    if (conn)
        rc_registry_pg_signature(conn, w->signature, sizeof w->signature, err, sizeof err);
    rc_pg_free(pg);
    if (every_ms <= 0)
        return w;
    if (!(w->tick = event_new(base, -1, EV_PERSIST, on_tick, w)) || event_add(w->tick, &tv) < 0)
        goto oom;
    if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
        snprintf(errbuf, errlen, "cannot start the registry watch thread");
        regwatch_free(w);
        return NULL;
    }
    w->started = true;
    return w;
oom:
    snprintf(errbuf, errlen, "out of memory");
    regwatch_free(w);
    return NULL;
}

void regwatch_free(regwatch *w)
{
    if (!w)
        return;
    atomic_store(&w->stop, true);
    if (w->started)
        pthread_join(w->thread, NULL);
    if (w->tick)
        event_free(w->tick);
    rc_registry_free(atomic_exchange(&w->pending, NULL));
    rc_registry_free(w->current);
    free(w->dsn);
    free(w);
}
