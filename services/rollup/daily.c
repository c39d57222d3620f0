/* The daily pipeline: a consumer thread streams decoded reports into the
 * filling slot's staging table, a flusher thread commits closed slots in
 * order.  With two slots the next batch is decoded and copied while the
 * previous one is being committed, and batches grow by themselves when
 * there is a backlog (a slot closes when the flush interval has passed AND
 * the flusher is free, or when it is full), which keeps the number of
 * aggregate revisions per unit small exactly when the load is high. */
#include "rollup.h"
#include "rc_dlq.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int topic_index(const char *name)
{
    for (int i = 0; i < ROLLUP_NTOPICS; i++)
        if (strcmp(name, rollup_topics[i]) == 0)
            return i;
    return -1;
}

/* Drops a slot's batch: the COPY (if open) is aborted and the stage emptied. */
static void discard(slot *s)
{
    char err[256];
    if (s->copying) {
        rc_pg_copy_abort(s->pg, "rollup: batch discarded");
        s->copying = false;
    }
    if (rc_pg_in_transaction(s->pg))
        rc_pg_rollback(s->pg, NULL, 0);
    if (rc_pg_command(s->pg, "TRUNCATE rollup_stage", err, sizeof err) < 0)
        s->session_ready = false;   /* rebuilt (or the error seen again) before the next use */
    slot_reset(s);
}

static size_t items(const slot *s)
{
    return s->rows + s->ndlq;
}

/* ---------------------------------------------------------------- flusher */

/* The batch's only message, refused by PostgreSQL for a data reason: it goes
 * to the dead letters with PostgreSQL's reason and the offsets move past it,
 * in one transaction.  Returns 0 when that worked. */
static int dead_letter_first(pipeline *pl, slot *s, const char *reason)
{
    rollup *ru = pl->ru;
    char err[512], r[600];
    int64_t id = -1;

    snprintf(r, sizeof r, "rejected by PostgreSQL: %.500s", reason);
    rc_dead_letter dl = {rollup_topics[s->first_topic], s->first_partition, s->first_offset,
                         s->first_raw, s->first_len, s->first_key, r};
    if (rc_pg_begin(s->pg, err, sizeof err) < 0)
        goto failed;
    if ((id = rc_dlq_insert(s->pg, &dl, true, err, sizeof err)) < 0)
        goto failed;
    if (rollup_store_offset(s->pg, ru->cfg.group, rollup_topics[s->first_topic],
                            s->first_partition, s->first_offset + 1, err, sizeof err) < 0)
        goto failed;
    if (rc_pg_commit(s->pg, err, sizeof err) < 0)
        goto failed;
    rc_counter_inc(ru->m.dead_letters);
    rollup_dlq_log(ru, dl.topic, dl.partition, dl.offset, r);
    if (id > 0 && outbox_publish(ru, s->pg, id, id, err, sizeof err) < 0)
        rc_warn("dead letter stays in the outbox for now: %s", err);
    return 0;
failed:
    if (rc_pg_in_transaction(s->pg))
        rc_pg_rollback(s->pg, NULL, 0);
    rc_error("could not dead-letter the refused message topic=%s partition=%" PRId32
             " offset=%" PRId64 ": %s",
             rollup_topics[s->first_topic], s->first_partition, s->first_offset, err);
    return -1;
}

/* Adds the batch's partition ranges to the suspect ones (under mu). */
static void add_suspects(pipeline *pl, const slot *s)
{
    for (size_t i = 0; i < s->noffs; i++) {
        const part_off *o = &s->offs[i];
        size_t k = 0;
        while (k < pl->nsuspect && !(pl->suspect[k].topic == o->topic &&
                                     pl->suspect[k].partition == o->partition))
            k++;
        if (k < pl->nsuspect) {
            if (o->next > pl->suspect[k].next)
                pl->suspect[k].next = o->next;
            continue;
        }
        if (pl->nsuspect == pl->capsuspect) {
            size_t cap = pl->capsuspect ? pl->capsuspect * 2 : 8;
            part_off *n = realloc(pl->suspect, cap * sizeof *n);
            if (!n)
                return;     /* isolation then ends with its deadline */
            pl->suspect = n;
            pl->capsuspect = cap;
        }
        pl->suspect[pl->nsuspect++] = *o;
    }
}

/* A committed batch: the suspect ranges it has moved past are cleared;
 * isolation ends with the last of them (under mu). */
static void passed_suspects(pipeline *pl, const slot *s)
{
    for (size_t i = 0; i < s->noffs; i++) {
        const part_off *o = &s->offs[i];
        for (size_t k = 0; k < pl->nsuspect; k++) {
            if (pl->suspect[k].topic == o->topic && pl->suspect[k].partition == o->partition &&
                o->next >= pl->suspect[k].next) {
                pl->suspect[k] = pl->suspect[--pl->nsuspect];
                break;
            }
        }
    }
    if (pl->isolate_limit && !pl->nsuspect) {
        rc_info("lane %d: past the failed batch, batches back to normal", pl->lane);
        pl->isolate_limit = 0;
    } else if (pl->isolate_limit && pl->isolate_limit < (size_t)pl->ru->cfg.max_batch) {
        pl->isolate_limit *= 2;
    }
}

static void flush_one(pipeline *pl, slot *s)
{
    rollup *ru = pl->ru;
    char err[1024];
    int rc = -1;
    rc_pg_error_class cls = RC_PG_ERR_TRANSIENT;

    if (s->stage_failed) {
        snprintf(err, sizeof err, "batch could not be staged: %s", s->stage_error);
        cls = s->stage_class;
        rc_counter_inc(ru->m.batch_failures);
    } else {
        /* A transient failure (deadlock, serialization, lock timeout) is
         * retried as is; the staged rows survive while the session does. */
        for (int attempt = 0; attempt < 5; attempt++) {
            rc = flush_slot(ru, s, ru->cfg.group, &cls, err, sizeof err);
            if (rc == 0)
                break;
            rc_counter_inc(ru->m.batch_failures);
            rc_warn("batch failed slot=%d rows=%zu attempt=%d class=%s: %s", s->id, s->rows,
                    attempt + 1, rc_pg_error_class_name(cls), err);
            if (cls != RC_PG_ERR_TRANSIENT || rc_pg_was_disconnected(s->pg)) {
                /* A new connection has lost the staged rows: only a re-read helps. */
                if (cls == RC_PG_ERR_TRANSIENT)
                    s->session_ready = false;
                break;
            }
            struct timespec ts = {0, 100 * 1000000L * (attempt + 1)};
            nanosleep(&ts, NULL);
        }
    }
    /* Alone in its batch and refused for a data reason: the message's fault. */
    bool dead_lettered = false;
    if (rc != 0 && cls == RC_PG_ERR_DATA && items(s) == 1 && s->first_topic >= 0 &&
        dead_letter_first(pl, s, err) == 0) {
        rc = 0;
        dead_lettered = true;
    }

    pthread_mutex_lock(&pl->mu);
    if (rc == 0) {
        pl->consecutive_failures = 0;
        pl->failing_since_us = 0;
        passed_suspects(pl, s);
    } else {
        pl->consecutive_failures++;
        if (!pl->failing_since_us)
            pl->failing_since_us = rc_now_us();
        snprintf(pl->last_error, sizeof pl->last_error, "%.290s", err);
        pl->rewind = true;
        if (cls == RC_PG_ERR_DATA) {
            /* Bisect: the next batches hold half as many messages, until
             * the one PostgreSQL refuses is alone in its batch. */
            size_t half = items(s) / 2;
            pl->isolate_limit = half ? half : 1;
            pl->isolate_deadline_us = rc_now_us() + 120LL * 1000000;
            add_suspects(pl, s);
            rc_warn("lane %d: a batch of %zu was refused for a data reason; next batches hold "
                    "at most %zu",
                    pl->lane, items(s), pl->isolate_limit);
        }
        /* Later batches were read past the failed one: drop them too. */
        for (int i = 0; i < pl->nqueue; i++) {
            slot *q = &pl->slots[pl->queue[i]];
            discard(q);
            pl->free_mask |= 1 << (q->id % ROLLUP_NSLOTS);
        }
        pl->nqueue = 0;
    }
    pthread_mutex_unlock(&pl->mu);

    if (rc == 0 && s->rows && !dead_lettered &&
        rc_pg_command(s->pg, "TRUNCATE rollup_stage", err, sizeof err) < 0) {
        rc_warn("emptying the stage failed: %s", err);
        s->session_ready = false;
    }
    if (rc != 0 || dead_lettered)
        discard(s);
    slot_reset(s);
}

static void *flusher_main(void *arg)
{
    pipeline *pl = arg;
    rollup *ru = pl->ru;
    char err[512];

    pthread_mutex_lock(&pl->mu);
    for (;;) {
        while (pl->nqueue == 0 && !pl->stopping) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 200 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            if (pthread_cond_timedwait(&pl->cv, &pl->mu, &ts) != 0 && pl->nqueue == 0) {
                /* Idle: delete what was delivered, re-send what failed.  Use a
                 * free slot's connection (the consumer only touches the
                 * filling one). */
                int idle = -1;
                for (int i = 0; i < ROLLUP_NSLOTS; i++)
                    if (pl->free_mask & (1 << i))
                        idle = i;
                if (idle >= 0) {
                    pl->free_mask &= ~(1 << idle);
                    pthread_mutex_unlock(&pl->mu);
                    if (flush_housekeeping(ru, pl->slots[idle].pg, err, sizeof err) < 0)
                        rc_warn("outbox housekeeping failed: %s", err);
                    pthread_mutex_lock(&pl->mu);
                    pl->free_mask |= 1 << idle;
                    pthread_cond_broadcast(&pl->cv);
                } else {
                    pthread_mutex_unlock(&pl->mu);
                    rc_producer_poll(ru->producer, 0);
                    pthread_mutex_lock(&pl->mu);
                }
            }
        }
        if (pl->nqueue == 0 && pl->stopping)
            break;
        int idx = pl->queue[0];
        memmove(pl->queue, pl->queue + 1, (size_t)(pl->nqueue - 1) * sizeof *pl->queue);
        pl->nqueue--;
        pl->flushing = true;
        pthread_mutex_unlock(&pl->mu);

        atomic_store(&pl->flush_started_us, rc_now_us());
        flush_one(pl, &pl->slots[idx]);
        atomic_store(&pl->flush_started_us, 0);

        pthread_mutex_lock(&pl->mu);
        pl->free_mask |= 1 << idx;
        pl->flushing = false;
        pthread_cond_broadcast(&pl->cv);
    }
    pthread_mutex_unlock(&pl->mu);
    return NULL;
}

/* ---------------------------------------------------------------- consumer */

/* Waits for a free slot and makes its session ready.  -1 when stopping. */
static int acquire(pipeline *pl)
{
    char err[512];
    for (;;) {
        pthread_mutex_lock(&pl->mu);
        while (!pl->free_mask && !atomic_load(&pl->ru->stop))
            pthread_cond_wait(&pl->cv, &pl->mu);
        if (!pl->free_mask) {
            pthread_mutex_unlock(&pl->mu);
            return -1;
        }
        int idx = __builtin_ctz((unsigned)pl->free_mask);
        pl->free_mask &= ~(1 << idx);
        pthread_mutex_unlock(&pl->mu);
        if (slot_session(pl->ru, &pl->slots[idx], err, sizeof err) == 0)
            return idx;
        rc_warn("batch session not ready slot=%d: %s", idx, err);
        rollup_set_health(pl->ru, "postgresql", err);
        pthread_mutex_lock(&pl->mu);
        pl->free_mask |= 1 << idx;
        pthread_mutex_unlock(&pl->mu);
        struct timespec ts = {1, 0};
        nanosleep(&ts, NULL);
        if (atomic_load(&pl->ru->stop))
            return -1;
    }
}

static void update_lag(pipeline *pl, const slot *s)
{
    rd_kafka_t *rk = rc_consumer_handle(pl->consumer);
    long long lag = 0;
    for (size_t i = 0; i < s->noffs; i++) {
        int64_t lo, hi;
        if (rd_kafka_get_watermark_offsets(rk, rollup_topics[s->offs[i].topic],
                                           s->offs[i].partition, &lo, &hi) == 0 &&
            hi > s->offs[i].next)
            lag += hi - s->offs[i].next;
    }
    atomic_store(&pl->ru->lag, lag);
    rc_gauge_set(pl->ru->m.lag, (double)lag);
}

/* Hands the filling slot to the flusher (also when its COPY failed: the
 * flusher then counts it as a failed batch).  Returns 0, or -1 when a
 * failed batch is waiting for the rewind (the slot is discarded). */
static int close_slot(pipeline *pl, int idx)
{
    char err[512];
    slot *s = &pl->slots[idx];

    if (slot_close(pl->ru, s, err, sizeof err) < 0) {
        /* The flusher decides, as for a batch that fails to commit: retry,
         * or bisect down to the message PostgreSQL refuses. */
        rc_warn("batch could not be staged slot=%d: %s", idx, err);
        s->stage_failed = true;
        s->stage_class = rc_pg_last_error_class(s->pg);
        snprintf(s->stage_error, sizeof s->stage_error, "%s", err);
    } else {
        update_lag(pl, s);
    }
    pthread_mutex_lock(&pl->mu);
    if (pl->rewind) {
        /* A batch before this one failed after this one was read: these
         * messages are read again from the stored offsets.  Committed, the
         * batch would move the offsets past the failed one's messages. */
        pthread_mutex_unlock(&pl->mu);
        discard(s);
        pthread_mutex_lock(&pl->mu);
        pl->free_mask |= 1 << idx;
        pthread_cond_broadcast(&pl->cv);
        pthread_mutex_unlock(&pl->mu);
        return -1;
    }
    pl->queue[pl->nqueue++] = idx;
    pthread_cond_broadcast(&pl->cv);
    pthread_mutex_unlock(&pl->mu);
    return 0;
}

/* Waits until every closed slot has been flushed. */
static void wait_flushed(pipeline *pl)
{
    pthread_mutex_lock(&pl->mu);
    while (pl->nqueue > 0 || pl->flushing)
        pthread_cond_wait(&pl->cv, &pl->mu);
    pthread_mutex_unlock(&pl->mu);
}

/* Commits everything consumed so far (rebalance, stop). */
static void drain(pipeline *pl)
{
    if (pl->cur_slot >= 0 && items(&pl->slots[pl->cur_slot])) {
        close_slot(pl, pl->cur_slot);   /* queued, or discarded (a rewind is due) */
        pl->cur_slot = -1;
    }
    wait_flushed(pl);
}

static int on_assign(void *opaque, rd_kafka_topic_partition_list_t *parts)
{
    pipeline *pl = opaque;
    return rollup_load_offsets(pl->control, pl->ru->cfg.group, parts);
}

static void on_revoke(void *opaque, const rd_kafka_topic_partition_list_t *parts)
{
    pipeline *pl = opaque;
    rc_info("partitions revoked count=%d: committing what was consumed", parts->cnt);
    drain(pl);
}

/* A rewind that did not happen: counted as one more failure, tried again. */
static void again(pipeline *pl, const char *why)
{
    pthread_mutex_lock(&pl->mu);
    pl->rewind = true;
    pl->consecutive_failures++;
    if (!pl->failing_since_us)
        pl->failing_since_us = rc_now_us();
    snprintf(pl->last_error, sizeof pl->last_error, "%s", why);
    pthread_mutex_unlock(&pl->mu);
}

/* After a failed batch: drop what was read since the last commit and read
 * it again from the offsets stored in PostgreSQL. */
static void rewind_consumer(pipeline *pl)
{
    rd_kafka_t *rk = rc_consumer_handle(pl->consumer);
    rd_kafka_topic_partition_list_t *parts = NULL;

    if (pl->cur_slot >= 0)
        discard(&pl->slots[pl->cur_slot]);
    wait_flushed(pl);
    pthread_mutex_lock(&pl->mu);
    pl->rewind = false;
    int failures = pl->consecutive_failures;
    bool isolating = pl->isolate_limit > 0;
    pthread_mutex_unlock(&pl->mu);
    /* Bisecting goes on at once; anything else (PostgreSQL down, a lock
     * held, a bug) waits longer each time, up to 5 s, so a failure that
     * lasts costs little and the position is kept (nothing is committed). */
    long ms = 100;
    if (!isolating)
        for (int i = 1; i < failures && ms < 5000; i++)
            ms *= 2;
    if (ms > 5000)
        ms = 5000;
    for (long slept = 0; slept < ms && !atomic_load(&pl->ru->stop); slept += 100) {
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (rd_kafka_assignment(rk, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR || !parts)
        return;
    if (parts->cnt > 0) {
        /* Neither failure is fatal (PostgreSQL down, the broker away): the
         * rewind is tried again after the backoff, and nothing is committed
         * meanwhile, so the position stays the one stored. */
        rd_kafka_error_t *e = NULL;
        if (rollup_load_offsets(pl->control, pl->ru->cfg.group, parts) < 0) {
            rc_warn("rewind: offsets unreadable; trying again");
            again(pl, "rewind: the stored offsets are unreadable (PostgreSQL)");
        } else if ((e = rd_kafka_seek_partitions(rk, parts, 10000)) != NULL) {
            rc_warn("rewind: seek failed: %s; trying again", rd_kafka_error_string(e));
            again(pl, "rewind: seek failed (Kafka)");
            rd_kafka_error_destroy(e);
        } else {
            rc_info("rewound partitions=%d to the offsets stored in PostgreSQL", parts->cnt);
        }
    }
    rd_kafka_topic_partition_list_destroy(parts);
}

static void *consumer_main(void *arg)
{
    pipeline *pl = arg;
    rollup *ru = pl->ru;
    const double interval = ru->cfg.flush_interval_ms / 1000.0;

    /* cur_slot may be -1 at the top of a pass: a rebalance inside the poll
     * drained the filling slot.  The loop then acquires another; it ends
     * only when the service stops (before, a partition loss with a slot
     * half filled ended the consumer thread for good). */
    pl->cur_slot = acquire(pl);
    while (!atomic_load(&ru->stop)) {
        if (pl->rewind)
            rewind_consumer(pl);
        if (pl->cur_slot < 0 && (pl->cur_slot = acquire(pl)) < 0)
            break;
        slot *s = &pl->slots[pl->cur_slot];
        atomic_store(&pl->polled_us, rc_now_us());
        rd_kafka_message_t *msg = rc_consumer_poll(pl->consumer, items(s) ? 5 : 100);
        if (msg) {
            if (msg->err) {
                if (rc_consumer_fatal(msg)) {
                    rc_error("consumer failed: %s (topic=%s partition=%" PRId32 ")",
                             rd_kafka_message_errstr(msg),
                             msg->rkt ? rd_kafka_topic_name(msg->rkt) : "-", msg->partition);
                    atomic_store(&ru->failed, true);
                    atomic_store(&ru->stop, true);
                } else if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                    rc_warn("consumer: %s", rd_kafka_message_errstr(msg));
                }
            } else {
                int t = topic_index(rd_kafka_topic_name(msg->rkt));
                double t0 = mono();
                /* A rebalance inside the poll may have handed the slot over. */
                if (pl->cur_slot < 0 && (pl->cur_slot = acquire(pl)) < 0) {
                    rd_kafka_message_destroy(msg);
                    break;
                }
                s = &pl->slots[pl->cur_slot];
                rc_counter_inc(ru->m.messages);
                if (t < 0 || slot_add(ru, s, msg, t) < 0) {
                    discard(s);
                    pthread_mutex_lock(&pl->mu);
                    pl->rewind = true;
                    pl->consecutive_failures++;
                    if (!pl->failing_since_us)
                        pl->failing_since_us = rc_now_us();
                    snprintf(pl->last_error, sizeof pl->last_error,
                             "a message could not be staged (see the log)");
                    pthread_mutex_unlock(&pl->mu);
                    rc_counter_inc(ru->m.batch_failures);
                }
                s->decode_s += mono() - t0;
            }
            rd_kafka_message_destroy(msg);
        } else if (rc_consumer_failed(pl->consumer)) {
            rc_error("partition assignment failed; stopping");
            atomic_store(&ru->failed, true);
            atomic_store(&ru->stop, true);
        }
        if (pl->cur_slot < 0 || !items(s))
            continue;
        size_t max = (size_t)ru->cfg.max_batch;
        pthread_mutex_lock(&pl->mu);
        bool flusher_free = pl->nqueue == 0 && !pl->flushing;
        if (pl->isolate_limit && rc_now_us() > pl->isolate_deadline_us) {
            /* the suspect partitions went elsewhere (a rebalance) */
            pl->isolate_limit = 0;
            pl->nsuspect = 0;
        }
        if (pl->isolate_limit && pl->isolate_limit < max)
            max = pl->isolate_limit;
        pthread_mutex_unlock(&pl->mu);
        bool full = items(s) >= max || s->ndlq >= ROLLUP_DLQ_MAX;
        bool due = (double)(rc_now_us() - s->opened_us) / 1e6 >= interval;
        if (full || (due && flusher_free)) {
            int idx = pl->cur_slot;
            pl->cur_slot = -1;
            close_slot(pl, idx);    /* on -1 the loop's next pass rewinds */
            pl->cur_slot = acquire(pl);
        }
    }
    drain(pl);
    return NULL;
}

bool rollup_stalled(rollup *ru, char *msg, size_t len)
{
    const int64_t now = rc_now_us(), limit = ru->cfg.stall_after_ms * 1000LL;
    if (limit <= 0)
        return false;
    pthread_mutex_lock(&ru->health_mu);
    int64_t ufail = ru->urgent_failing_us;
    char uerr[sizeof ru->urgent_error];
    snprintf(uerr, sizeof uerr, "%s", ru->urgent_error);
    pthread_mutex_unlock(&ru->health_mu);
    if (ufail && now - ufail >= limit) {
        snprintf(msg, len, "urgent: failing for %lld s: %s", (long long)((now - ufail) / 1000000),
                 uerr);
        return true;
    }
    for (int i = 0; i < atomic_load(&ru->nlanes); i++) {
        const pipeline *pl = &ru->lanes[i];
        int64_t started = atomic_load(&pl->flush_started_us);
        int64_t polled = atomic_load(&pl->polled_us);
        if (started && now - started >= limit) {
            snprintf(msg, len, "lane %d: a batch has been running for %lld s", i,
                     (long long)((now - started) / 1000000));
            return true;
        }
        pthread_mutex_lock((pthread_mutex_t *)&pl->mu);
        int64_t failing = pl->failing_since_us;
        char last[sizeof pl->last_error];
        snprintf(last, sizeof last, "%s", pl->last_error);
        pthread_mutex_unlock((pthread_mutex_t *)&pl->mu);
        if (failing && now - failing >= limit) {
            snprintf(msg, len, "lane %d: batches failing for %lld s: %s", i,
                     (long long)((now - failing) / 1000000), last);
            return true;
        }
        if (!started && polled && now - polled >= limit) {
            snprintf(msg, len, "lane %d: the consumer has not polled Kafka for %lld s", i,
                     (long long)((now - polled) / 1000000));
            return true;
        }
    }
    return false;
}

int pipeline_start(pipeline *pl, rollup *ru, int lane, char *errbuf, size_t errlen)
{
    static const char *const props[] = {
        /* Once the queue holds this much librdkafka 2.0 stops fetching and
         * looks again only when its broker thread next wakes, up to a
         * second later, so the prefetch caps how fast a backlog is staged
         * (4 MB: ~35k reports a second, ahead of a national day's flush).
         * Each MB of it costs several MB of RSS; the measured trade against
         * a replay's speed is in README.md. */
        "queued.max.messages.kbytes=4096",
        /* a backlog batch may keep the consumer from polling for minutes on a
         * slow machine; that is not a dead consumer */
        "max.poll.interval.ms=3600000",
        "fetch.max.bytes=4194304",
        "max.partition.fetch.bytes=1048576",
    };
    memset(pl, 0, sizeof *pl);
    pl->ru = ru;
    pl->lane = lane;
    pl->cur_slot = -1;
    pthread_mutex_init(&pl->mu, NULL);
    pthread_cond_init(&pl->cv, NULL);
    for (int i = 0; i < ROLLUP_NSLOTS; i++) {
        if (slot_open(ru, &pl->slots[i], errbuf, errlen) < 0)
            return -1;
        pl->slots[i].id = lane * ROLLUP_NSLOTS + i;
        pl->free_mask |= 1 << i;
    }
    pl->control = rollup_pg_connect(ru, "rollcall-rollup-control", errbuf, errlen);
    if (!pl->control)
        return -1;
    rc_consumer_hooks hooks = {on_assign, on_revoke, pl};
    const char *own[8];
    size_t nown = 0;
    char inst[300], lane_name[16];
    for (size_t i = 0; i < sizeof props / sizeof *props; i++)
        own[nown++] = props[i];
    snprintf(lane_name, sizeof lane_name, "lane%d", lane);
    if (rollup_instance_prop(ru, lane_name, inst, sizeof inst))
        own[nown++] = inst;
    const char *all[64];
    size_t nall = rollup_consumer_props(ru, own, nown, all, 64);
    pl->consumer = rc_consumer_new(ru->cfg.kafka_brokers, ru->cfg.group, rollup_topics,
                                   ROLLUP_NTOPICS, all, nall, &hooks, errbuf, errlen);
    if (!pl->consumer)
        return -1;
    if (pthread_create(&pl->flusher_thread, NULL, flusher_main, pl) != 0 ||
        pthread_create(&pl->consumer_thread, NULL, consumer_main, pl) != 0) {
        snprintf(errbuf, errlen, "cannot start the pipeline threads");
        return -1;
    }
    return 0;
}

void pipeline_stop(pipeline *pl)
{
    pthread_mutex_lock(&pl->mu);
    pthread_cond_broadcast(&pl->cv);
    pthread_mutex_unlock(&pl->mu);
    pthread_join(pl->consumer_thread, NULL);
    /* Leaving the group runs on_revoke, which flushes what is left. */
    rc_consumer_free(pl->consumer);
    pthread_mutex_lock(&pl->mu);
    pl->stopping = true;
    pthread_cond_broadcast(&pl->cv);
    pthread_mutex_unlock(&pl->mu);
    pthread_join(pl->flusher_thread, NULL);
    for (int i = 0; i < ROLLUP_NSLOTS; i++)
        slot_free(&pl->slots[i]);
    free(pl->suspect);
    rc_pg_free(pl->control);
    pthread_mutex_destroy(&pl->mu);
    pthread_cond_destroy(&pl->cv);
}
