/* rc_probe — see rc_probe.h.  One thread, one PostgreSQL connection of its
 * own; the health check only copies what the last round found. */
#include "rc_probe.h"
#include "rc_kafka.h"
#include "rc_log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EVERY_OK_MS 2000
#define EVERY_FAILING_MS 250
#define KAFKA_TIMEOUT_MS 1000

struct rc_probe {
    char *dsn;                  /* NULL: PostgreSQL not probed */
    char *app;
    rc_pg *pg;                  /* used by the thread only */
    rd_kafka_t *rk;             /* borrowed; NULL: Kafka not probed */
    rc_probe_round_fn *round;
    void *opaque;

    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* on CLOCK_MONOTONIC */
    bool stop;                  /* under mu */
    char msg[256];              /* under mu: "" when healthy */
    atomic_bool pg_ok, kafka_ok;
};

/* Logs a dependency going away or coming back, once per change. */
static void note(const char *what, atomic_bool *flag, bool ok, const char *err)
{
    bool was = atomic_exchange(flag, ok);
    if (was && !ok)
        rc_warn("%s not answering (/healthz 503 until it does) error=\"%s\"", what, err);
    else if (!was && ok)
        rc_info("%s answering again", what);
}

static bool probe_pg(rc_probe *p, char *err, size_t len)
{
    PGresult *res;

    /* A connection that failed is dropped and opened afresh next round:
     * rc_pg_connect tries once and quietly, where a kept rc_pg would log
     * its loss and its failed reconnection every round of an outage. */
    if (!p->pg) {
        if (!(p->pg = rc_pg_connect(p->dsn, p->app, err, len))) {
            /* "connect to <dsn>: <libpq's reason>": the reason alone, so
             * that the 256 bytes of a /healthz line reach it. */
            const char *why = strncmp(err, "connect to ", 11) == 0 ? strstr(err, ": ") : NULL;
            if (why)
                memmove(err, why + 2, strlen(why + 2) + 1);
            return false;
        }
        rc_pg_set_reconnect_timeout(p->pg, 0);
    }
    if (!(res = rc_pg_exec(p->pg, "SELECT 1", err, len))) {
        rc_pg_free(p->pg);
        p->pg = NULL;
        return false;
    }
    PQclear(res);
    return true;
}

static void probe_round(rc_probe *p)
{
    char msg[256] = "", err[256] = "";
    bool pg_ok = true, kafka_ok = true;

    if (p->dsn && !(pg_ok = probe_pg(p, err, sizeof err)))
        snprintf(msg, sizeof msg, "postgresql: %s", err);
    note("postgresql", &p->pg_ok, pg_ok, err);
    if (p->rk && rc_kafka_ping(p->rk, KAFKA_TIMEOUT_MS, err, sizeof err) < 0) {
        kafka_ok = false;
        if (!msg[0])
            snprintf(msg, sizeof msg, "kafka: %s", err);
    }
    note("kafka", &p->kafka_ok, kafka_ok, err);
    if (pg_ok && kafka_ok && p->round) {
        err[0] = '\0';
        if (p->round(p->opaque, p->pg, err, sizeof err) != 0)
            snprintf(msg, sizeof msg, "%s", err[0] ? err : "failing");
    }
    pthread_mutex_lock(&p->mu);
    memcpy(p->msg, msg, sizeof msg);
    pthread_mutex_unlock(&p->mu);
}

static void *probe_main(void *arg)
{
    rc_probe *p = arg;

    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        struct timespec until;
        long ms = p->msg[0] ? EVERY_FAILING_MS : EVERY_OK_MS;

        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += ms / 1000;
        until.tv_nsec += (ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&p->cv, &p->mu, &until);
        if (p->stop)
            break;
        pthread_mutex_unlock(&p->mu);
        probe_round(p);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

rc_probe *rc_probe_new(const char *pg_dsn, const char *application_name, rd_kafka_t *rk,
                       rc_probe_round_fn *round, void *opaque, char *errbuf, size_t errlen)
{
    rc_probe *p = calloc(1, sizeof *p);
    pthread_condattr_t attr;

    if (!p || (pg_dsn && !(p->dsn = strdup(pg_dsn))) ||
        !(p->app = strdup(application_name ? application_name : "rollcall-probe"))) {
        snprintf(errbuf, errlen, "probe: out of memory");
        goto failed;
    }
    p->rk = rk;
    p->round = round;
    p->opaque = opaque;
    atomic_init(&p->pg_ok, true);
    atomic_init(&p->kafka_ok, true);
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &attr);
    pthread_condattr_destroy(&attr);
    probe_round(p);
    if (pthread_create(&p->thread, NULL, probe_main, p) != 0) {
        snprintf(errbuf, errlen, "probe: cannot start the health thread");
        goto failed;
    }
    p->started = true;
    return p;
failed:
    rc_probe_free(p);
    return NULL;
}

void rc_probe_free(rc_probe *p)
{
    if (!p)
        return;
    if (p->started) {
        pthread_mutex_lock(&p->mu);
        p->stop = true;
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->mu);
        pthread_join(p->thread, NULL);
    }
    if (p->app) {               /* the lock and condition exist from here on */
        pthread_cond_destroy(&p->cv);
        pthread_mutex_destroy(&p->mu);
    }
    rc_pg_free(p->pg);
    free(p->dsn);
    free(p->app);
    free(p);
}

int rc_probe_check(void *probe, char *msg, size_t len)
{
    rc_probe *p = probe;
    int bad;

    pthread_mutex_lock(&p->mu);
    bad = p->msg[0] != '\0';
    if (bad)
        snprintf(msg, len, "%s", p->msg);
    pthread_mutex_unlock(&p->mu);
    return bad;
}

bool rc_probe_pg_ok(const rc_probe *p)
{
    return atomic_load(&p->pg_ok);
}

bool rc_probe_kafka_ok(const rc_probe *p)
{
    return atomic_load(&p->kafka_ok);
}
