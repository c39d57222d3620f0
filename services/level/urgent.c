/* The urgent relay: reads reports.urgent and forwards, one message at a
 * time and at once (linger.ms=0), every urgent report whose last hop is this
 * level's child level, with this level's hop appended.  Offsets advance only
 * past messages that are done — forwarded and acknowledged, or not ours —
 * and a forward that failed is sent again, so nothing is lost on a crash
 * (a re-forward after one is harmless: the rollup records a hop once per
 * (report_id, level)). */
#include "level.h"
#include "rc_kafka.h"
#include "rc_level.h"
#include "rc_log.h"
#include "rc_report.h"
#include "rc_sched.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define URGENT_TOPIC "reports.urgent"
#define MAX_PARTITIONS 256
#define STORE_EVERY_MS 200      /* offsets to PostgreSQL at most this often */

typedef struct inflight {
    struct inflight *next;
    int32_t partition;
    int64_t offset;
    bool done;
    bool failed;            /* delivery failed: send again */
    uint8_t *buf;           /* the forwarded report, kept until acknowledged */
    size_t len;
    char key[13];
    char report_id[40];
    int64_t received_us;    /* wall clock when we read it */
} inflight;

/* Offsets go to PostgreSQL from a thread of their own: a database slowed
 * down by a national day's writes (a checkpoint) must not hold up a
 * forward.  The relay only hands over the next offsets it reached. */
typedef struct offset_writer {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t next[MAX_PARTITIONS];
    bool dirty[MAX_PARTITIONS];
    bool stop;
    rc_pg *pg;
} offset_writer;

typedef struct relay {
    level_ctx *ctx;
    rc_pg *pg;              /* the relay thread's: offsets read at assignment */
    rc_consumer *consumer;
    rc_producer *producer;
    char group[160];
    inflight *head, *tail;
    size_t ninflight;
    size_t nfailed;
    offset_writer w;
} relay;

static void on_delivery(void *fn_opaque, void *msg_opaque, rd_kafka_resp_err_t err,
                        const char *topic, int32_t partition, int64_t offset)
{
    relay *r = fn_opaque;
    inflight *e = msg_opaque;

    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rc_warn("urgent forward not delivered, sending again report_id=%s unit=%s err=%s",
                e->report_id, e->key, rd_kafka_err2str(err));
        e->failed = true;
        r->nfailed++;
        rc_counter_inc(r->ctx->m.urgent_retries);
        return;
    }
    e->done = true;
    rc_counter_inc(r->ctx->m.urgent_forwarded);
    rc_histogram_observe(r->ctx->m.urgent_forward, (double)(rc_now_us() - e->received_us) / 1e6);
    rc_debug("urgent forwarded report_id=%s unit=%s topic=%s partition=%d offset=%lld",
             e->report_id, e->key, topic, (int)partition, (long long)offset);
}

static int on_assign(void *opaque, rd_kafka_topic_partition_list_t *parts)
{
    relay *r = opaque;
    char err[256];

    if (level_offsets_assign(r->pg, rc_consumer_handle(r->consumer), r->group, parts, r->ctx->cfg->start_from, err, sizeof err) < 0) {
        rc_error("urgent relay cannot read its offsets group=%s: %s", r->group, err);
        return -1;
    }
    rc_gauge_set(rc_metrics_gauge("rollcall_level_partitions", "Partitions assigned to this instance",
                                  "part=\"urgent\""),
                 parts->cnt);
    atomic_store(&r->ctx->urgent_parts, parts->cnt);
    return 0;
}

static void on_revoke(void *opaque, const rd_kafka_topic_partition_list_t *parts)
{
    relay *r = opaque;
    (void)parts;
    atomic_store(&r->ctx->urgent_parts, 0);
    rc_gauge_set(rc_metrics_gauge("rollcall_level_partitions", "Partitions assigned to this instance",
                                  "part=\"urgent\""),
                 0);
}

static void send_forward(relay *r, inflight *e)
{
    if (rc_producer_send(r->producer, URGENT_TOPIC, RD_KAFKA_PARTITION_UA, e->key, strlen(e->key),
                         e->buf, e->len, e, 1000) < 0) {
        e->failed = true;
        r->nfailed++;
    }
}

static void handle(relay *r, rd_kafka_message_t *msg)
{
    level_ctx *ctx = r->ctx;
    Rollcall__Report *rep = NULL;
    inflight *e = NULL;
    rc_errors errs = {0};
    char err[256];
    int64_t prev_at = 0, now;
    int fwd;

    if (msg->partition < 0 || msg->partition >= MAX_PARTITIONS) {
        rc_error("urgent partition out of range partition=%d", (int)msg->partition);
        return;
    }
    e = calloc(1, sizeof *e);
    if (!e) {
        rc_error("out of memory: urgent report left for the next start partition=%d offset=%lld",
                 (int)msg->partition, (long long)msg->offset);
        atomic_store(&ctx->running, false);
        return;
    }
    e->partition = msg->partition;
    e->offset = msg->offset;
    e->received_us = rc_now_us();
    rc_counter_inc(ctx->m.urgent_seen);

    rep = rc_report_unpack(msg->payload, msg->len, &errs);
    if (!rep) {
        rc_warn("undecodable message on %s skipped (the rollup dead-letters it) partition=%d offset=%lld",
                URGENT_TOPIC, (int)msg->partition, (long long)msg->offset);
        rc_counter_inc(ctx->m.urgent_invalid);
        e->done = true;
        goto queue;
    }
    snprintf(e->report_id, sizeof e->report_id, "%s", rep->report_id ? rep->report_id : "");
    /* The hop time is a measurement: the wall clock, never the test clock. */
    now = rc_now_us();
    fwd = rc_level_urgent_forward(rep, ctx->level, now, &e->buf, &e->len, &prev_at, err, sizeof err);
    if (fwd < 0) {
        rc_warn("urgent report not forwarded report_id=%s partition=%d offset=%lld: %s", e->report_id,
                (int)msg->partition, (long long)msg->offset, err);
        rc_counter_inc(ctx->m.urgent_invalid);
        e->done = true;
    } else if (fwd == 0) {
        e->done = true;
    } else {
        snprintf(e->key, sizeof e->key, "%s", rep->unit_code);
        rc_histogram_observe(ctx->m.urgent_hop_lag, (double)(now - prev_at) / 1e6);
        send_forward(r, e);
    }
queue:
    rc_report_free(rep);
    if (r->tail)
        r->tail->next = e;
    else
        r->head = e;
    r->tail = e;
    r->ninflight++;
}

/* Pops the done prefix (consume order), advancing the offsets to store. */
static void advance(relay *r)
{
    while (r->head && r->head->done) {
        inflight *e = r->head;
        r->head = e->next;
        if (!r->head)
            r->tail = NULL;
        r->ninflight--;
        pthread_mutex_lock(&r->w.mu);
        r->w.next[e->partition] = e->offset + 1;
        r->w.dirty[e->partition] = true;
        pthread_mutex_unlock(&r->w.mu);
        free(e->buf);
        free(e);
    }
}

static void resend_failed(relay *r)
{
    if (r->nfailed == 0)
        return;
    r->nfailed = 0;
    for (inflight *e = r->head; e; e = e->next) {
        if (e->failed && !e->done) {
            e->failed = false;
            send_forward(r, e);
        }
    }
}

/* Writes the offsets handed over, then tells the broker too (for lag
 * monitoring only: PostgreSQL's copy decides where a restart resumes).
 * Called with w->mu held; drops it while talking to the servers. */
static void write_offsets(relay *r)
{
    offset_writer *w = &r->w;
    int32_t parts[MAX_PARTITIONS];
    int64_t next[MAX_PARTITIONS];
    rd_kafka_topic_partition_list_t *list;
    size_t n = 0;
    char err[256];
    int rc;

    for (int p = 0; p < MAX_PARTITIONS; p++)
        if (w->dirty[p]) {
            parts[n] = p;
            next[n++] = w->next[p];
            w->dirty[p] = false;
        }
    if (n == 0)
        return;
    pthread_mutex_unlock(&w->mu);
    rc = level_offsets_store(w->pg, r->group, URGENT_TOPIC, parts, next, n, err, sizeof err);
    if (rc == 0) {
        list = rd_kafka_topic_partition_list_new((int)n);
        for (size_t i = 0; i < n; i++)
            rd_kafka_topic_partition_list_add(list, URGENT_TOPIC, parts[i])->offset = next[i];
        rc_consumer_commit(r->consumer, list, true);
        rd_kafka_topic_partition_list_destroy(list);
    } else {
        rc_warn("urgent offsets not stored (kept for the next try) group=%s: %s", r->group, err);
    }
    atomic_store(&r->ctx->urgent_ok, rc == 0);
    pthread_mutex_lock(&w->mu);
    if (rc < 0)
        for (size_t i = 0; i < n; i++)
            w->dirty[parts[i]] = true;   /* a newer offset handed over meanwhile is as good */
}

static void *offset_writer_main(void *arg)
{
    relay *r = arg;
    offset_writer *w = &r->w;

    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += STORE_EVERY_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&w->cv, &w->mu, &until);
        write_offsets(r);
    }
    write_offsets(r);
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

void *level_urgent_main(void *arg)
{
    level_ctx *ctx = arg;
    relay r;
    char err[512];
    const char *topics[] = {URGENT_TOPIC};
    /* Latency over throughput on this path: short fetch waits, send at
     * once, no Nagle.  Extra kafka.* settings from the config come after
     * and win. */
    char fetch_wait[48];
    const char *cprops[64] = {fetch_wait, "fetch.error.backoff.ms=5", "socket.nagle.disable=true"};
    const char *pprops[64] = {"linger.ms=0", "socket.nagle.disable=true"};
    size_t ncp = 3, npp = 2;
    rc_consumer_hooks hooks;
    pthread_t writer;
    bool writer_started = false;

    memset(&r, 0, sizeof r);
    r.ctx = ctx;
    /* A broker answers an empty fetch after this long at most; Apache Kafka
     * answers as soon as data arrives, the development broker only then:
     * there it is the price of every hop. */
    snprintf(fetch_wait, sizeof fetch_wait, "fetch.wait.max.ms=%d", ctx->cfg->urgent_fetch_wait_ms);
    snprintf(r.group, sizeof r.group, "%s-urgent", ctx->group);
    /* Ahead of the daily work on a busy machine too: a thread's nice value
     * is its own on Linux, and the threads librdkafka starts for the
     * producer and consumer below inherit it. */
    if (ctx->cfg->urgent_nice != 0 &&
        setpriority(PRIO_PROCESS, (id_t)gettid(), ctx->cfg->urgent_nice) < 0)
        rc_warn("urgent relay keeps the default priority (urgent_nice=%d: %s)", ctx->cfg->urgent_nice,
                strerror(errno));
    /* nice counts only inside this session's autogroup: on a machine busy
     * with other work the relay still waited its turn behind it, 200-400 ms
     * a hop.  Real-time, it runs when its socket is readable. */
    if (ctx->cfg->urgent_rtprio > 0 && rc_sched_realtime(ctx->cfg->urgent_rtprio, err, sizeof err) < 0)
        rc_warn("urgent relay stays in the ordinary scheduling class (urgent_rtprio=%d): %s",
                ctx->cfg->urgent_rtprio, err);
    for (size_t i = 0; i < ctx->nkafka_props && ncp < 64 && npp < 64; i++) {
        cprops[ncp++] = ctx->kafka_props[i];
        pprops[npp++] = ctx->kafka_props[i];
    }
    pthread_mutex_init(&r.w.mu, NULL);
    pthread_cond_init(&r.w.cv, NULL);
    r.pg = rc_pg_connect(ctx->cfg->pg_dsn, "rollcall-level-urgent", err, sizeof err);
    r.w.pg = r.pg ? rc_pg_connect(ctx->cfg->pg_dsn, "rollcall-level-urgent-offsets", err, sizeof err) : NULL;
    if (!r.pg || !r.w.pg) {
        rc_error("urgent relay: PostgreSQL: %s", err);
        goto failed;
    }
    r.producer = rc_producer_new(ctx->cfg->kafka_brokers, pprops, npp, on_delivery, &r, err, sizeof err);
    if (!r.producer) {
        rc_error("urgent relay: producer: %s", err);
        goto failed;
    }
    hooks.on_assign = on_assign;
    hooks.on_revoke = on_revoke;
    hooks.opaque = &r;
    r.consumer = rc_consumer_new(ctx->cfg->kafka_brokers, r.group, topics, 1, cprops, ncp, &hooks,
                                 err, sizeof err);
    if (!r.consumer) {
        rc_error("urgent relay: consumer: %s", err);
        goto failed;
    }
    if (pthread_create(&writer, NULL, offset_writer_main, &r) != 0) {
        rc_error("urgent relay: offset writer thread not started");
        goto failed;
    }
    writer_started = true;
    atomic_store(&ctx->urgent_ok, true);
    rc_info("urgent relay started group=%s forwards=%s->%s", r.group,
            rc_level_name(rc_level_child(ctx->level)), ctx->name);

    while (atomic_load(&ctx->running)) {
        rd_kafka_message_t *msg;
        int budget = 256;

        atomic_store(&ctx->urgent_beat, rc_now_us());
        /* Short waits while forwards are in flight so their reports are
         * served promptly; otherwise block on the consumer. */
        msg = rc_consumer_poll(r.consumer, r.ninflight ? 1 : 100);
        while (msg) {
            if (msg->err) {
                if (rc_consumer_fatal(msg)) {
                    rc_error("urgent relay: fatal consumer error, stopping: %s",
                             rd_kafka_message_errstr(msg));
                    rd_kafka_message_destroy(msg);
                    goto failed;
                }
                if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                    rc_warn("urgent relay: consumer: %s", rd_kafka_message_errstr(msg));
            } else {
                handle(&r, msg);
            }
            rd_kafka_message_destroy(msg);
            msg = --budget > 0 ? rc_consumer_poll(r.consumer, 0) : NULL;
        }
        if (rc_consumer_failed(r.consumer))
            goto failed;
        rc_producer_poll(r.producer, 0);
        resend_failed(&r);
        advance(&r);
    }
    goto done;

failed:
    /* The relay is half of this service's duty: without it the process
     * must not look healthy, so it stops and lets the supervisor restart. */
    atomic_store(&ctx->urgent_ok, false);
    atomic_store(&ctx->running, false);
done:
    if (r.producer) {
        rc_producer_flush(r.producer, 5000);
        advance(&r);
    }
    if (writer_started) {
        pthread_mutex_lock(&r.w.mu);
        r.w.stop = true;
        pthread_cond_signal(&r.w.cv);
        pthread_mutex_unlock(&r.w.mu);
        pthread_join(writer, NULL);   /* it writes what was handed over last */
    }
    rc_consumer_free(r.consumer);
    rc_producer_free(r.producer);   /* purged leftovers still call on_delivery */
    while (r.head) {
        inflight *e = r.head;
        r.head = e->next;
        free(e->buf);
        free(e);
    }
    rc_pg_free(r.pg);
    rc_pg_free(r.w.pg);
    pthread_cond_destroy(&r.w.cv);
    pthread_mutex_destroy(&r.w.mu);
    rc_info("urgent relay stopped");
    return NULL;
}
