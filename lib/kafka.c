/* rc_kafka — see rc_kafka.h.  Lifecycles follow librdkafka's examples/
 * producer.c and consumer.c: delivery reports decide success, QUEUE_FULL is
 * served by polling, flush with a bound at shutdown and say what was lost,
 * rd_kafka_consumer_close before rd_kafka_destroy. */
#include "rc_kafka.h"
#include "rc_log.h"
#include "rc_time.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct rc_producer {
    rd_kafka_t *rk;
    rc_delivery_fn *fn;
    void *fn_opaque;
    int evfd[2]; /* pipe: librdkafka writes [1], the event loop reads [0] */
};

struct rc_consumer {
    rd_kafka_t *rk;
    rc_consumer_hooks hooks;
    bool failed;
    /* Eager protocol: partitions the group gave us while on_assign failed,
     * assigned once a retry of the hook succeeds (rc_consumer_poll). */
    rd_kafka_topic_partition_list_t *pending;
    int64_t retry_at_us;
    int retry_ms, attempts;
};

#define ASSIGN_RETRY_FIRST_MS 250
#define ASSIGN_RETRY_MAX_MS 5000

/* ------------------------------------------------------------------ common */

/* librdkafka uses syslog levels; its threads call this directly, which is
 * safe because rc_log writes each line with one write(2). */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    rc_log_level l = level <= 3 ? RC_LOG_ERROR
                   : level == 4 ? RC_LOG_WARN
                   : level <= 6 ? RC_LOG_INFO
                                : RC_LOG_DEBUG;
    rc_log(l, "librdkafka client=%s facility=%s %s", rk ? rd_kafka_name(rk) : "-", fac, buf);
}

/* Errors that are not tied to a message: broker connections, fatal
 * idempotence errors.  The client retries on its own; a fatal one is also
 * returned to the caller (failed deliveries, __FATAL consumer message). */
static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    char fatal[512];

    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, fatal, sizeof fatal);
        rc_error("kafka fatal error client=%s err=%s reason=\"%s\"", rd_kafka_name(rk),
                 rd_kafka_err2name(orig), fatal);
        return;
    }
    rc_warn("kafka error client=%s err=%s reason=\"%s\"", rd_kafka_name(rk),
            rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

void rc_kafka_conf_set_logger(rd_kafka_conf_t *conf)
{
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
}

static int conf_set(rd_kafka_conf_t *conf, const char *key, const char *val,
                    char *errbuf, size_t errlen)
{
    char why[512];

    if (rd_kafka_conf_set(conf, key, val, why, sizeof why) != RD_KAFKA_CONF_OK) {
        snprintf(errbuf, errlen, "kafka property %s: %s", key, why);
        return -1;
    }
    return 0;
}

/* Applies "key=value" strings in order.  Returns 0, or -1 with the offending
 * entry named in errbuf (earlier entries stay applied). */
static int conf_set_props(rd_kafka_conf_t *conf, const char *const *props, size_t nprops,
                          char *errbuf, size_t errlen)
{
    for (size_t i = 0; i < nprops; i++) {
        const char *eq = props[i] ? strchr(props[i], '=') : NULL;
        char key[256];

        if (!eq || eq == props[i] || (size_t)(eq - props[i]) >= sizeof key) {
            snprintf(errbuf, errlen, "kafka property \"%s\": expected key=value",
                     props[i] ? props[i] : "(null)");
            return -1;
        }
        memcpy(key, props[i], (size_t)(eq - props[i]));
        key[eq - props[i]] = '\0';
        if (conf_set(conf, key, eq + 1, errbuf, errlen) < 0)
            return -1;
    }
    return 0;
}

/* A configuration in the order every handle here builds it: the brokers,
 * the group (NULL: none), the handle's defaults, then the operator's
 * properties (so they win), and the logger.  Returns NULL with errbuf. */
static rd_kafka_conf_t *conf_build(const char *brokers, const char *group,
                                   const char *const (*defaults)[2], size_t ndefaults,
                                   const char *const *props, size_t nprops, char *errbuf, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();

    if (conf_set(conf, "bootstrap.servers", brokers, errbuf, errlen) < 0 ||
        (group && conf_set(conf, "group.id", group, errbuf, errlen) < 0))
        goto failed;
    for (size_t i = 0; i < ndefaults; i++)
        if (conf_set(conf, defaults[i][0], defaults[i][1], errbuf, errlen) < 0)
            goto failed;
    if (conf_set_props(conf, props, nprops, errbuf, errlen) < 0)
        goto failed;
    rc_kafka_conf_set_logger(conf);
    return conf;
failed:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

rd_kafka_conf_t *rc_kafka_conf_new(const char *brokers, const char *const *props,
                                   size_t nprops, char *errbuf, size_t errlen)
{
    return conf_build(brokers, NULL, NULL, 0, props, nprops, errbuf, errlen);
}

int rc_kafka_ping(rd_kafka_t *rk, int timeout_ms, char *errbuf, size_t errlen)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err;
    int rc = -1;

    /* all_topics=0 and no topic: only the locally known topics, so the
     * answer stays small however many topics the cluster has. */
    err = rd_kafka_metadata(rk, 0, NULL, &md, timeout_ms);
    if (err) {
        snprintf(errbuf, errlen, "kafka metadata request failed: %s", rd_kafka_err2str(err));
        goto done;
    }
    if (md->broker_cnt <= 0) {
        snprintf(errbuf, errlen, "kafka metadata lists no brokers");
        goto done;
    }
    rc = 0;
done:
    if (md)
        rd_kafka_metadata_destroy(md);
    return rc;
}

/* ---------------------------------------------------------------- producer */

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    rc_producer *p = opaque;
    const char *topic = rd_kafka_topic_name(msg->rkt);

    if (p->fn) {
        p->fn(p->fn_opaque, msg->_private, msg->err, topic, msg->partition, msg->offset);
        return;
    }
    if (msg->err)
        rc_error("kafka message not delivered topic=%s partition=%d err=%s", topic,
                 (int)msg->partition, rd_kafka_err2name(msg->err));
}

rc_producer *rc_producer_new(const char *brokers, const char *const *props, size_t nprops,
                             rc_delivery_fn *fn, void *fn_opaque, char *errbuf, size_t errlen)
{
    static const char *const defaults[][2] = {
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"compression.type", "lz4"},
        {"linger.ms", "5"},
    };
    rc_producer *p = NULL;
    rd_kafka_conf_t *conf = NULL;
    rd_kafka_queue_t *mainq = NULL;
    char why[512];

    p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(errbuf, errlen, "out of memory");
        goto failed;
    }
    p->evfd[0] = p->evfd[1] = -1;
    p->fn = fn;
    p->fn_opaque = fn_opaque;

    if (!(conf = conf_build(brokers, NULL, defaults, sizeof defaults / sizeof defaults[0], props, nprops,
                            errbuf, errlen)))
        goto failed;
    rd_kafka_conf_set_opaque(conf, p);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);

    if (pipe2(p->evfd, O_NONBLOCK | O_CLOEXEC) < 0) {
        snprintf(errbuf, errlen, "pipe: %s", strerror(errno));
        goto failed;
    }

    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
    if (!p->rk) {
        snprintf(errbuf, errlen, "kafka producer: %s", why);
        goto failed;
    }
    conf = NULL; /* rd_kafka_new took ownership */

    mainq = rd_kafka_queue_get_main(p->rk);
    rd_kafka_queue_io_event_enable(mainq, p->evfd[1], "1", 1);
    rd_kafka_queue_destroy(mainq); /* drops our reference only */
    return p;

failed:
    if (conf)
        rd_kafka_conf_destroy(conf);
    if (p) {
        if (p->evfd[0] >= 0)
            close(p->evfd[0]);
        if (p->evfd[1] >= 0)
            close(p->evfd[1]);
        free(p);
    }
    return NULL;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int rc_producer_send(rc_producer *p, const char *topic, int32_t partition, const void *key,
                     size_t keylen, const void *value, size_t len, void *msg_opaque,
                     int queue_full_timeout_ms)
{
    int64_t deadline = now_ms() + queue_full_timeout_ms;
    rd_kafka_resp_err_t err;

    for (;;) {
        err = rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                                RD_KAFKA_V_KEY(key, keylen), RD_KAFKA_V_VALUE((void *)value, len),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_OPAQUE(msg_opaque), RD_KAFKA_V_END);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            break;
        int64_t left = deadline - now_ms();
        if (left <= 0)
            break;
        /* Serving delivery reports is what frees queue space. */
        rd_kafka_poll(p->rk, left < 100 ? (int)left : 100);
    }
    if (err) {
        rc_error("kafka produce failed topic=%s partition=%d err=%s", topic, (int)partition,
                 rd_kafka_err2name(err));
        return -1;
    }
    return 0;
}

int rc_producer_poll(rc_producer *p, int timeout_ms)
{
    return rd_kafka_poll(p->rk, timeout_ms);
}

int rc_producer_event_fd(rc_producer *p)
{
    return p->evfd[0];
}

int rc_producer_flush(rc_producer *p, int timeout_ms)
{
    if (rd_kafka_flush(p->rk, timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rc_error("kafka flush timed out client=%s not_delivered=%d timeout_ms=%d",
                 rd_kafka_name(p->rk), rd_kafka_outq_len(p->rk), timeout_ms);
        return -1;
    }
    return 0;
}

void rc_producer_free(rc_producer *p)
{
    if (!p)
        return;
    if (rc_producer_flush(p, RC_PRODUCER_CLOSE_TIMEOUT_MS) < 0) {
        rc_error("kafka producer closing: purging undelivered messages client=%s count=%d",
                 rd_kafka_name(p->rk), rd_kafka_outq_len(p->rk));
        /* Purged messages get a failed delivery report, so every accepted
         * send still ends in exactly one callback. */
        rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_flush(p->rk, 1000);
        rd_kafka_poll(p->rk, 0);
    }
    rd_kafka_destroy(p->rk);
    close(p->evfd[0]);
    close(p->evfd[1]);
    free(p);
}

int64_t rc_producer_outq_len(rc_producer *p)
{
    return rd_kafka_outq_len(p->rk);
}

rd_kafka_t *rc_producer_handle(rc_producer *p)
{
    return p->rk;
}

/* ---------------------------------------------------------------- consumer */

static void run_on_revoke(rc_consumer *c, const rd_kafka_topic_partition_list_t *parts)
{
    if (c->hooks.on_revoke && parts && parts->cnt > 0)
        c->hooks.on_revoke(c->hooks.opaque, parts);
}

/* "topic:0,1,2 other:3" for a log line, so that which instance owned which
 * partition when can be read back (tests/integration/scale_out.sh does);
 * cut with "..." when it does not fit. */
static void format_parts(const rd_kafka_topic_partition_list_t *parts, char *buf, size_t len)
{
    size_t n = 0;
    const char *topic = NULL;

    buf[0] = '\0';
    for (int i = 0; parts && i < parts->cnt && n < len; i++) {
        const rd_kafka_topic_partition_t *p = &parts->elems[i];
        bool same = topic && strcmp(topic, p->topic) == 0;
        int w = same ? snprintf(buf + n, len - n, ",%d", (int)p->partition)
                     : snprintf(buf + n, len - n, "%s%s:%d", n ? " " : "", p->topic,
                                (int)p->partition);
        topic = p->topic;
        if (w < 0 || (size_t)w >= len - n) {
            if (len > 4)
                memcpy(buf + len - 4, "...", 4);
            return;
        }
        n += (size_t)w;
    }
}

/* Replaces the partitions waiting for a successful on_assign (NULL: none). */
static void set_pending(rc_consumer *c, const rd_kafka_topic_partition_list_t *parts)
{
    if (c->pending)
        rd_kafka_topic_partition_list_destroy(c->pending);
    c->pending = parts ? rd_kafka_topic_partition_list_copy(parts) : NULL;
    c->retry_ms = ASSIGN_RETRY_FIRST_MS;
    c->retry_at_us = rc_now_us() + (int64_t)c->retry_ms * 1000;
    c->attempts = 1;
}

/* From rc_consumer_poll, on the consumer's thread: on_assign again for the
 * waiting partitions, every 250 ms doubling to 5 s. */
static void retry_pending(rc_consumer *c)
{
    rd_kafka_resp_err_t err;

    if (rc_now_us() < c->retry_at_us)
        return;
    c->attempts++;
    if (c->hooks.on_assign(c->hooks.opaque, c->pending) != 0) {
        c->retry_ms = c->retry_ms * 2 > ASSIGN_RETRY_MAX_MS ? ASSIGN_RETRY_MAX_MS : c->retry_ms * 2;
        c->retry_at_us = rc_now_us() + (int64_t)c->retry_ms * 1000;
        return;
    }
    err = rd_kafka_assign(c->rk, c->pending);
    if (err)
        rc_error("kafka assign failed client=%s err=%s", rd_kafka_name(c->rk), rd_kafka_err2name(err));
    else
        rc_info("kafka partitions assigned after %d attempts of on_assign client=%s count=%d",
                c->attempts, rd_kafka_name(c->rk), c->pending->cnt);
    set_pending(c, NULL);
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    rc_consumer *c = opaque;
    bool coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    rd_kafka_error_t *error = NULL;
    rd_kafka_resp_err_t aerr = RD_KAFKA_RESP_ERR_NO_ERROR;
    char list[2048];

    format_parts(parts, list, sizeof list);
    switch (err) {
    case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
        rc_info("kafka partitions assigned client=%s count=%d parts=\"%s\"", rd_kafka_name(rk),
                parts->cnt, list);
        if (c->hooks.on_assign && c->hooks.on_assign(c->hooks.opaque, parts) != 0) {
            if (coop) {
                rc_error("kafka on_assign hook failed: assigning nothing client=%s count=%d",
                         rd_kafka_name(rk), parts->cnt);
                c->failed = true;
                break;
            }
            /* Typically the database holding the offsets is down: consume
             * nothing until it answers, rather than stop the service. */
            rc_warn("kafka on_assign hook failed: nothing consumed until a retry succeeds client=%s "
                    "count=%d",
                    rd_kafka_name(rk), parts->cnt);
            set_pending(c, parts);
            aerr = rd_kafka_assign(rk, NULL);
            break;
        }
        set_pending(c, NULL);
        if (coop)
            error = rd_kafka_incremental_assign(rk, parts);
        else
            aerr = rd_kafka_assign(rk, parts);
        break;

    case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
        rc_info("kafka partitions revoked client=%s count=%d lost=%s", rd_kafka_name(rk),
                parts->cnt, rd_kafka_assignment_lost(rk) ? "yes" : "no");
        if (!coop)
            set_pending(c, NULL);
        run_on_revoke(c, parts);
        if (coop)
            error = rd_kafka_incremental_unassign(rk, parts);
        else
            aerr = rd_kafka_assign(rk, NULL);
        /* Logged once the work for them is flushed and they are given up:
         * from here on another member may own them. */
        rc_info("kafka partitions released client=%s count=%d parts=\"%s\"", rd_kafka_name(rk),
                parts->cnt, list);
        break;

    default: {
        /* Group error: drop the assignment to stay in sync with the
         * coordinator, but let the owner flush first. */
        rd_kafka_topic_partition_list_t *cur = NULL;
        rc_error("kafka rebalance failed client=%s err=%s", rd_kafka_name(rk),
                 rd_kafka_err2name(err));
        set_pending(c, NULL);
        if (rd_kafka_assignment(rk, &cur) == RD_KAFKA_RESP_ERR_NO_ERROR && cur)
            run_on_revoke(c, cur);
        aerr = rd_kafka_assign(rk, NULL);
        if (cur) {
            format_parts(cur, list, sizeof list);
            rc_info("kafka partitions released client=%s count=%d parts=\"%s\"",
                    rd_kafka_name(rk), cur->cnt, list);
            rd_kafka_topic_partition_list_destroy(cur);
        }
        break;
    }
    }

    if (error) {
        rc_error("kafka incremental (un)assign failed client=%s err=%s", rd_kafka_name(rk),
                 rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    } else if (aerr) {
        rc_error("kafka assign failed client=%s err=%s", rd_kafka_name(rk),
                 rd_kafka_err2name(aerr));
    }
}

/* Async commits report here; without it their failures would go unseen. */
static void offset_commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                             rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR__NO_OFFSET)
        return;
    rc_error("kafka offset commit failed client=%s err=%s", rd_kafka_name(rk),
             rd_kafka_err2name(err));
    for (int i = 0; offsets && i < offsets->cnt; i++)
        if (offsets->elems[i].err)
            rc_error("kafka offset commit failed topic=%s partition=%d offset=%lld err=%s",
                     offsets->elems[i].topic, (int)offsets->elems[i].partition,
                     (long long)offsets->elems[i].offset,
                     rd_kafka_err2name(offsets->elems[i].err));
}

rc_consumer *rc_consumer_new(const char *brokers, const char *group, const char *const *topics,
                             size_t ntopics, const char *const *props, size_t nprops,
                             const rc_consumer_hooks *hooks, char *errbuf, size_t errlen)
{
    static const char *const defaults[][2] = {
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"auto.offset.reset", "error"},
    };
    rc_consumer *c = NULL;
    rd_kafka_conf_t *conf = NULL;
    rd_kafka_topic_partition_list_t *sub = NULL;
    rd_kafka_resp_err_t err;
    char why[512];

    c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(errbuf, errlen, "out of memory");
        goto failed;
    }
    if (hooks)
        c->hooks = *hooks;

    if (!(conf = conf_build(brokers, group, defaults, sizeof defaults / sizeof defaults[0], props, nprops,
                            errbuf, errlen)))
        goto failed;
    rd_kafka_conf_set_opaque(conf, c);
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_offset_commit_cb(conf, offset_commit_cb);

    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof why);
    if (!c->rk) {
        snprintf(errbuf, errlen, "kafka consumer: %s", why);
        goto failed;
    }
    conf = NULL; /* rd_kafka_new took ownership */

    /* One queue for messages, rebalances and errors: rc_consumer_poll. */
    rd_kafka_poll_set_consumer(c->rk);

    sub = rd_kafka_topic_partition_list_new((int)ntopics);
    for (size_t i = 0; i < ntopics; i++)
        rd_kafka_topic_partition_list_add(sub, topics[i], RD_KAFKA_PARTITION_UA);
    err = rd_kafka_subscribe(c->rk, sub);
    if (err) {
        snprintf(errbuf, errlen, "kafka subscribe: %s", rd_kafka_err2str(err));
        goto failed;
    }
    rd_kafka_topic_partition_list_destroy(sub);
    return c;

failed:
    if (sub)
        rd_kafka_topic_partition_list_destroy(sub);
    if (conf)
        rd_kafka_conf_destroy(conf);
    if (c) {
        if (c->rk)
            rd_kafka_destroy(c->rk);
        free(c);
    }
    return NULL;
}

rd_kafka_message_t *rc_consumer_poll(rc_consumer *c, int timeout_ms)
{
    if (c->pending)
        retry_pending(c);
    return rd_kafka_consumer_poll(c->rk, timeout_ms);
}

bool rc_consumer_fatal(const rd_kafka_message_t *msg)
{
    switch (msg->err) {
    case RD_KAFKA_RESP_ERR__FATAL:
    case RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET:
    case RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
        return true;
    default:
        return false;
    }
}

bool rc_consumer_failed(const rc_consumer *c)
{
    return c->failed;
}

int rc_consumer_commit(rc_consumer *c, const rd_kafka_topic_partition_list_t *offsets,
                       bool async)
{
    rd_kafka_resp_err_t err = rd_kafka_commit(c->rk, offsets, async ? 1 : 0);

    if (err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR__NO_OFFSET)
        return 0;
    rc_error("kafka offset commit failed client=%s err=%s", rd_kafka_name(c->rk),
             rd_kafka_err2name(err));
    return -1;
}

void rc_consumer_free(rc_consumer *c)
{
    rd_kafka_resp_err_t err;

    if (!c)
        return;
    err = rd_kafka_consumer_close(c->rk);
    if (err)
        rc_warn("kafka consumer close client=%s err=%s", rd_kafka_name(c->rk),
                rd_kafka_err2name(err));
    rd_kafka_destroy(c->rk);
    set_pending(c, NULL);
    free(c);
}

rd_kafka_t *rc_consumer_handle(rc_consumer *c)
{
    return c->rk;
}
