/* Integration test for rc_kafka against a real Kafka-protocol broker (the
 * development broker or Apache Kafka): delivery reports, consumer groups,
 * committed offsets, on_assign seeks, the auto.offset.reset=error contract
 * and — with ROLLCALL_BROKER_CONTROL — failed deliveries while the broker is
 * down.  ROLLCALL_KAFKA_BENCH=1 adds the national-day throughput measurement. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "rc_kafka.h"
#include "rc_log.h"

#define NPARTS 4
#define N1 2000 /* first batch */
#define N2 100  /* second batch, after the commit */
#define NALL (N1 + N2)

static const char *brokers, *control;
static char topic[128], group[128];

/* What the delivery reports said about message i (msg_opaque = i + 1). */
static struct {
    int reports;
    rd_kafka_resp_err_t err;
    int32_t partition;
    int64_t offset;
} dr[NALL];
static int64_t part_count[NPARTS]; /* messages per partition, from reports */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------- control API client */

typedef struct {
    struct event_base *base;
    int status;
} http_result;

static void http_done(struct evhttp_request *req, void *arg)
{
    http_result *r = arg;
    r->status = req ? evhttp_request_get_response_code(req) : -1;
    event_base_loopexit(r->base, NULL);
}

/* POSTs to ROLLCALL_BROKER_CONTROL + path_and_query.  Returns the HTTP
 * status, or -1 when the control API could not be reached. */
static int control_post(const char *path_and_query)
{
    char url[512];
    /* Accept "http://127.0.0.1:PORT" as well as a bare "127.0.0.1:PORT". */
    snprintf(url, sizeof url, "%s%s", strstr(control, "://") ? "" : "http://", control);
    struct evhttp_uri *uri = evhttp_uri_parse(url);
    http_result r = {.base = event_base_new(), .status = -1};
    struct evhttp_connection *conn = NULL;
    struct evhttp_request *req;

    if (!uri || !r.base || !evhttp_uri_get_host(uri))
        goto done;
    conn = evhttp_connection_base_new(r.base, NULL, evhttp_uri_get_host(uri),
                                      (ev_uint16_t)evhttp_uri_get_port(uri));
    req = conn ? evhttp_request_new(http_done, &r) : NULL;
    if (!req)
        goto done;
    evhttp_add_header(evhttp_request_get_output_headers(req), "Host", evhttp_uri_get_host(uri));
    if (evhttp_make_request(conn, req, EVHTTP_REQ_POST, path_and_query) < 0)
        goto done; /* the request is freed by libevent on failure */
    event_base_dispatch(r.base);
done:
    if (conn)
        evhttp_connection_free(conn);
    if (r.base)
        event_base_free(r.base);
    if (uri)
        evhttp_uri_free(uri);
    return r.status;
}

/* -------------------------------------------------------------- producing */

static void record_dr(void *fn_opaque, void *msg_opaque, rd_kafka_resp_err_t err,
                      const char *t, int32_t partition, int64_t offset)
{
    intptr_t i = (intptr_t)msg_opaque - 1;

    assert_true(i >= 0 && i < NALL);
    assert_string_equal(t, topic);
    dr[i].reports++;
    dr[i].err = err;
    dr[i].partition = partition;
    dr[i].offset = offset;
    if (!err && partition >= 0 && partition < NPARTS)
        part_count[partition]++;
}

/* Produces messages [from, to) with 50 distinct keys and checks that every
 * one got exactly one successful delivery report. */
static void produce_range(int from, int to)
{
    char err[512], key[16], val[32];
    rc_producer *p = rc_producer_new(brokers, NULL, 0, record_dr, NULL, err, sizeof err);

    assert_non_null(p);
    for (int i = from; i < to; i++) {
        int klen = snprintf(key, sizeof key, "k%02d", i % 50);
        int vlen = snprintf(val, sizeof val, "v%06d", i);
        assert_int_equal(rc_producer_send(p, topic, RD_KAFKA_PARTITION_UA, key, (size_t)klen, val,
                                          (size_t)vlen, (void *)(intptr_t)(i + 1), 5000),
                         0);
    }
    assert_int_equal(rc_producer_flush(p, 15000), 0);
    for (int i = from; i < to; i++) {
        assert_int_equal(dr[i].reports, 1);
        assert_int_equal(dr[i].err, RD_KAFKA_RESP_ERR_NO_ERROR);
        assert_true(dr[i].offset >= 0);
    }
    rc_producer_free(p);
}

/* -------------------------------------------------------------- consuming */

typedef struct {
    int64_t start[NPARTS]; /* offset on_assign sets; RD_KAFKA_OFFSET_INVALID = committed */
    int assigned, revoked;
} hook_state;

static int seek_on_assign(void *opaque, rd_kafka_topic_partition_list_t *parts)
{
    hook_state *h = opaque;
    for (int i = 0; i < parts->cnt; i++)
        if (parts->elems[i].partition < NPARTS)
            parts->elems[i].offset = h->start[parts->elems[i].partition];
    h->assigned += parts->cnt;
    return 0;
}

static void count_revoke(void *opaque, const rd_kafka_topic_partition_list_t *parts)
{
    hook_state *h = opaque;
    h->revoked += parts->cnt;
}

/* Consumes until `want` messages arrived (or timeout), checking each is one
 * of ours, seen once, and in per-partition order.  Returns the count and
 * fills next[p] with the offset after the last one seen on p. */
static int consume(rc_consumer *c, int want, int timeout_s, int seen[NALL], int64_t next[NPARTS])
{
    int got = 0;
    double deadline = now_s() + timeout_s;

    while (got < want && now_s() < deadline) {
        rd_kafka_message_t *m = rc_consumer_poll(c, 200);
        if (!m)
            continue;
        if (m->err) {
            fail_msg("consumer error: %s", rd_kafka_message_errstr(m));
        }
        assert_true(m->partition >= 0 && m->partition < NPARTS);
        assert_true(m->len > 1 && m->len < 16);
        char val[16];
        memcpy(val, m->payload, m->len);
        val[m->len] = '\0';
        int i = atoi(val + 1);
        assert_true(i >= 0 && i < NALL);
        assert_int_equal(dr[i].partition, m->partition);
        assert_int_equal(dr[i].offset, m->offset);
        /* Per-partition order: offsets only grow within a partition. */
        if (next[m->partition] != RD_KAFKA_OFFSET_INVALID)
            assert_true(m->offset >= next[m->partition]);
        next[m->partition] = m->offset + 1;
        seen[i]++;
        got++;
        rd_kafka_message_destroy(m);
    }
    return got;
}

static void commit_next(rc_consumer *c, const int64_t next[NPARTS])
{
    rd_kafka_topic_partition_list_t *offs = rd_kafka_topic_partition_list_new(NPARTS);
    for (int p = 0; p < NPARTS; p++)
        if (next[p] != RD_KAFKA_OFFSET_INVALID)
            rd_kafka_topic_partition_list_add(offs, topic, p)->offset = next[p];
    assert_int_equal(rc_consumer_commit(c, offs, false), 0);
    rd_kafka_topic_partition_list_destroy(offs);
}

static int setup(void **state)
{
    char err[512];
    brokers = getenv("ROLLCALL_KAFKA_BROKERS");
    control = getenv("ROLLCALL_BROKER_CONTROL");
    if (!brokers || !*brokers)
        return 0;
    /* A fresh topic and group per run: the broker may be shared and is not
     * cleaned between runs. */
    snprintf(topic, sizeof topic, "test.kafka.%ld.%d", (long)time(NULL), (int)getpid());
    snprintf(group, sizeof group, "test-kafka-%ld-%d", (long)time(NULL), (int)getpid());
    if (control && *control) {
        snprintf(err, sizeof err, "/topics?name=%s&partitions=%d", topic, NPARTS);
        if (control_post(err) != 200) {
            fprintf(stderr, "cannot create topic %s through %s\n", topic, control);
            return -1;
        }
    }
    return 0;
}

#define NEED_BROKER()                                                              \
    do {                                                                           \
        if (!brokers || !*brokers) {                                               \
            fprintf(stderr, "ROLLCALL_KAFKA_BROKERS is not set: skipping\n");     \
            skip();                                                                \
        }                                                                          \
    } while (0)

/* Produce, consume everything once in order, commit, close; a second
 * consumer in the same group resumes exactly after the committed offsets. */
static void produce_consume_commit_resume(void **state)
{
    static int seen[NALL];
    hook_state h;
    int64_t next[NPARTS];
    char err[512];
    const char *topics[] = {topic};
    const char *props[] = {"session.timeout.ms=6000"};

    NEED_BROKER();
    produce_range(0, N1);
    /* 50 keys over 4 partitions must reach each of them: otherwise the
     * resume check below would meet a partition without a commit. */
    for (int p = 0; p < NPARTS; p++)
        assert_true(part_count[p] > 0);

    /* A fresh group has nothing committed, and auto.offset.reset=error: the
     * owner supplies the start (here: the beginning). */
    for (int p = 0; p < NPARTS; p++) {
        h.start[p] = RD_KAFKA_OFFSET_BEGINNING;
        next[p] = RD_KAFKA_OFFSET_INVALID;
    }
    h.assigned = h.revoked = 0;
    rc_consumer_hooks hooks = {seek_on_assign, count_revoke, &h};
    rc_consumer *c = rc_consumer_new(brokers, group, topics, 1, props, 1, &hooks, err, sizeof err);
    assert_non_null(c);
    assert_int_equal(consume(c, N1, 30, seen, next), N1);
    for (int i = 0; i < N1; i++)
        assert_int_equal(seen[i], 1);
    assert_int_equal(h.assigned, NPARTS);
    commit_next(c, next);
    assert_false(rc_consumer_failed(c));
    rc_consumer_free(c);
    assert_int_equal(h.revoked, NPARTS); /* on_revoke ran during close */

    produce_range(N1, NALL);

    /* Same group, on_assign leaves the offsets alone: committed ones apply. */
    for (int p = 0; p < NPARTS; p++)
        h.start[p] = RD_KAFKA_OFFSET_INVALID;
    c = rc_consumer_new(brokers, group, topics, 1, props, 1, &hooks, err, sizeof err);
    assert_non_null(c);
    assert_int_equal(consume(c, N2, 30, seen, next), N2);
    /* Nothing more arrives: nothing from the first batch is re-read. */
    assert_int_equal(consume(c, 1, 2, seen, next), 0);
    for (int i = 0; i < NALL; i++)
        assert_int_equal(seen[i], 1);
    rc_consumer_free(c);
}

/* on_assign can position each partition at an offset it supplies (as the
 * rollup service does from PostgreSQL). */
static void on_assign_seeks(void **state)
{
    static int seen[NALL];
    hook_state h = {.assigned = 0};
    int64_t next[NPARTS];
    int64_t want = 0;
    char err[512], g[160];
    const char *topics[] = {topic};

    NEED_BROKER();
    if (dr[0].reports == 0)
        skip(); /* needs the messages of the previous test */
    for (int p = 0; p < NPARTS; p++) {
        h.start[p] = part_count[p] / 2;
        want += part_count[p] - part_count[p] / 2;
        next[p] = RD_KAFKA_OFFSET_INVALID;
    }
    snprintf(g, sizeof g, "%s-seek", group);
    rc_consumer_hooks hooks = {seek_on_assign, NULL, &h};
    rc_consumer *c = rc_consumer_new(brokers, g, topics, 1, NULL, 0, &hooks, err, sizeof err);
    assert_non_null(c);
    int64_t first[NPARTS];
    for (int p = 0; p < NPARTS; p++)
        first[p] = -1;
    for (int got = 0; got < want;) {
        int64_t before[NPARTS];
        memcpy(before, next, sizeof before);
        int n = consume(c, 1, 30, seen, next);
        assert_int_equal(n, 1);
        for (int p = 0; p < NPARTS; p++)
            if (before[p] == RD_KAFKA_OFFSET_INVALID && next[p] != RD_KAFKA_OFFSET_INVALID)
                first[p] = next[p] - 1;
        got += n;
    }
    for (int p = 0; p < NPARTS; p++) {
        assert_int_equal(first[p], part_count[p] / 2);
        assert_int_equal(next[p], part_count[p]);
    }
    rc_consumer_free(c);
}

/* An on_assign that fails (the offsets' database is down) is tried again
 * from the poll until it succeeds; the partitions are then assigned at the
 * offsets it supplies, and the consumer is not "failed". */
typedef struct {
    hook_state h;
    int failures_left, calls;
} flaky_state;

static int flaky_on_assign(void *opaque, rd_kafka_topic_partition_list_t *parts)
{
    flaky_state *f = opaque;
    f->calls++;
    if (f->failures_left > 0) {
        f->failures_left--;
        return -1;
    }
    return seek_on_assign(&f->h, parts);
}

static void on_assign_failure_is_retried(void **state)
{
    static int seen[NALL];
    flaky_state f = {.failures_left = 2};
    int64_t next[NPARTS];
    int want = 0;
    char err[512], g[160];
    const char *topics[] = {topic};

    NEED_BROKER();
    if (dr[0].reports == 0)
        skip(); /* needs the messages of the first test */
    for (int p = 0; p < NPARTS; p++) {
        f.h.start[p] = part_count[p] - 1;   /* the last message of each partition */
        want += part_count[p] > 0;
        next[p] = RD_KAFKA_OFFSET_INVALID;
    }
    snprintf(g, sizeof g, "%s-flaky", group);
    rc_consumer_hooks hooks = {flaky_on_assign, NULL, &f};
    rc_consumer *c = rc_consumer_new(brokers, g, topics, 1, NULL, 0, &hooks, err, sizeof err);
    assert_non_null(c);
    assert_int_equal(consume(c, want, 30, seen, next), want);
    assert_int_equal(f.calls, 3);
    assert_false(rc_consumer_failed(c));
    for (int p = 0; p < NPARTS; p++)
        if (part_count[p] > 0)
            assert_int_equal(next[p], part_count[p]);
    rc_consumer_free(c);
}

/* A group with no committed offset and no offset from on_assign gets a loud,
 * fatal error — never a silent jump to the end or the beginning. */
static void no_offset_is_a_fatal_error(void **state)
{
    char err[512], g[160];
    const char *topics[] = {topic};
    rd_kafka_message_t *m = NULL;

    NEED_BROKER();
    if (dr[0].reports == 0)
        skip();
    snprintf(g, sizeof g, "%s-nooffset", group);
    rc_consumer *c = rc_consumer_new(brokers, g, topics, 1, NULL, 0, NULL, err, sizeof err);
    assert_non_null(c);
    for (double deadline = now_s() + 20; !m && now_s() < deadline;)
        m = rc_consumer_poll(c, 200);
    assert_non_null(m);
    assert_int_not_equal(m->err, RD_KAFKA_RESP_ERR_NO_ERROR); /* never a message */
    if (!rc_consumer_fatal(m))
        fail_msg("not fatal: %s %s", rd_kafka_err2name(m->err), rd_kafka_message_errstr(m));
    fprintf(stderr, "as expected: %s: %s\n", rd_kafka_err2name(m->err), rd_kafka_message_errstr(m));
    rd_kafka_message_destroy(m);
    rc_consumer_free(c);
}

/* ------------------------------------------------------- broker down / up */

static struct {
    int reports;
    rd_kafka_resp_err_t err;
} down_dr;

static void record_down_dr(void *fn_opaque, void *msg_opaque, rd_kafka_resp_err_t err,
                           const char *t, int32_t partition, int64_t offset)
{
    down_dr.reports++;
    down_dr.err = err;
}

static void wait_report(rc_producer *p, int timeout_s)
{
    for (double deadline = now_s() + timeout_s; down_dr.reports == 0 && now_s() < deadline;)
        rc_producer_poll(p, 100);
}

static void broker_down_fails_delivery(void **state)
{
    /* socket.timeout.ms too: a request sent just before /down took effect
     * would otherwise wait out the default 60 s. */
    const char *props[] = {"message.timeout.ms=2000", "socket.timeout.ms=2000"};
    char err[512];

    NEED_BROKER();
    if (!control || !*control) {
        fprintf(stderr, "ROLLCALL_BROKER_CONTROL is not set: skipping\n");
        skip();
    }
    rc_producer *p = rc_producer_new(brokers, props, 1, record_down_dr, NULL, err, sizeof err);
    assert_non_null(p);
    *state = p;
    if (rc_kafka_ping(rc_producer_handle(p), 5000, err, sizeof err) != 0)
        fail_msg("ping before /down: %s", err);

    assert_int_equal(control_post("/down"), 200);
    assert_int_equal(rc_producer_send(p, topic, 0, "k", 1, "down", 4, NULL, 0), 0);
    wait_report(p, 30); /* 2 s timeout; generous for a loaded machine */
    assert_int_equal(down_dr.reports, 1);
    assert_int_not_equal(down_dr.err, RD_KAFKA_RESP_ERR_NO_ERROR);
    fprintf(stderr, "as expected, while down: %s\n", rd_kafka_err2name(down_dr.err));
    if (rc_kafka_ping(rc_producer_handle(p), 1000, err, sizeof err) != -1)
        fail_msg("ping succeeded while the broker is down");

    assert_int_equal(control_post("/up"), 200);
    down_dr.reports = 0;
    /* message.timeout.ms=2000 is shorter than librdkafka's reconnect backoff
     * can be after a failure, so retry until one gets through. */
    double deadline = now_s() + 30;
    do {
        down_dr.reports = 0;
        assert_int_equal(rc_producer_send(p, topic, 0, "k", 1, "up", 2, NULL, 0), 0);
        wait_report(p, 10);
        assert_int_equal(down_dr.reports, 1);
    } while (down_dr.err != RD_KAFKA_RESP_ERR_NO_ERROR && now_s() < deadline);
    if (down_dr.err)
        fail_msg("no delivery within 30 s of /up: %s", rd_kafka_err2name(down_dr.err));
    if (rc_kafka_ping(rc_producer_handle(p), 5000, err, sizeof err) != 0)
        fail_msg("ping after /up: %s", err);
}

static int teardown_up(void **state)
{
    if (control && *control)
        control_post("/up"); /* whatever happened, leave the broker up */
    rc_producer_free(*state);
    *state = NULL;
    return 0;
}

/* ------------------------------------------------------------- throughput */

#define BENCH_N 620573

static int64_t bench_start[64];

static void bench_dr(void *fn_opaque, void *msg_opaque, rd_kafka_resp_err_t err,
                     const char *t, int32_t partition, int64_t offset)
{
    if (err)
        (*(int *)fn_opaque)++;
}

static int bench_on_assign(void *opaque, rd_kafka_topic_partition_list_t *parts)
{
    for (int i = 0; i < parts->cnt; i++)
        parts->elems[i].offset = bench_start[parts->elems[i].partition];
    return 0;
}

/* ~120-byte protobuf-like payload: a village code, a random report id, a
 * timestamp and 40 small varint indicators, as a national day would look. */
static size_t bench_payload(int i, unsigned char *buf, unsigned *seed)
{
    size_t n = 0;
    buf[n++] = 0x0a;
    buf[n++] = 12;
    n += (size_t)sprintf((char *)buf + n, "%012lld", 110101001001LL + i);
    buf[n++] = 0x12;
    buf[n++] = 16;
    for (int k = 0; k < 16; k++)
        buf[n++] = (unsigned char)rand_r(seed);
    buf[n++] = 0x18; /* submitted_at, microseconds: a 8-byte varint */
    for (int k = 0; k < 7; k++)
        buf[n++] = (unsigned char)(0x80 | rand_r(seed));
    buf[n++] = 0x03;
    for (int f = 1; f <= 40; f++) {
        buf[n++] = (unsigned char)(f << 3);
        buf[n++] = (unsigned char)(rand_r(seed) % (f < 8 ? 120 : 8));
    }
    return n;
}

static void bench_national_day(void **state)
{
    const char *bt = getenv("ROLLCALL_KAFKA_BENCH_TOPIC");
    const char *topics[1];
    char err[512], key[16], g[160];
    unsigned char buf[160];
    unsigned seed = 42;
    int failed = 0, nparts = 0;
    size_t bytes = 0;

    NEED_BROKER();
    if (!getenv("ROLLCALL_KAFKA_BENCH")) {
        fprintf(stderr, "ROLLCALL_KAFKA_BENCH is not set: skipping the throughput run\n");
        skip();
    }
    topics[0] = bt ? bt : "reports.village";

    rc_producer *p = rc_producer_new(brokers, NULL, 0, bench_dr, &failed, err, sizeof err);
    assert_non_null(p);
    /* Start after what is already there, so a shared topic still counts. */
    const struct rd_kafka_metadata *md;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rc_producer_handle(p), topics[0], NULL);
    assert_int_equal(rd_kafka_metadata(rc_producer_handle(p), 0, rkt, &md, 5000), 0);
    nparts = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    assert_true(nparts > 0 && nparts <= 64);
    for (int q = 0; q < nparts; q++) {
        int64_t lo, hi;
        assert_int_equal(rd_kafka_query_watermark_offsets(rc_producer_handle(p), topics[0], q,
                                                          &lo, &hi, 5000), 0);
        bench_start[q] = hi;
    }

    double t0 = now_s();
    for (int i = 0; i < BENCH_N; i++) {
        size_t len = bench_payload(i, buf, &seed);
        int klen = snprintf(key, sizeof key, "%09d", 110101001 + i / 15);
        bytes += len;
        assert_int_equal(rc_producer_send(p, topics[0], RD_KAFKA_PARTITION_UA, key, (size_t)klen,
                                          buf, len, NULL, 10000), 0);
        if ((i & 1023) == 0)
            rc_producer_poll(p, 0);
    }
    assert_int_equal(rc_producer_flush(p, 60000), 0);
    double t_produce = now_s() - t0;
    assert_int_equal(failed, 0);

    snprintf(g, sizeof g, "%s-bench", group);
    rc_consumer_hooks hooks = {bench_on_assign, NULL, NULL};
    const char *props[] = {"fetch.message.max.bytes=4194304"};
    rc_consumer *c = rc_consumer_new(brokers, g, topics, 1, props, 1, &hooks, err, sizeof err);
    assert_non_null(c);
    int got = 0;
    double t1 = now_s(), t_first = 0;
    for (double deadline = t1 + 120; got < BENCH_N && now_s() < deadline;) {
        rd_kafka_message_t *m = rc_consumer_poll(c, 500);
        if (!m)
            continue;
        if (m->err)
            fail_msg("bench consumer error: %s", rd_kafka_message_errstr(m));
        if (got++ == 0)
            t_first = now_s();
        rd_kafka_message_destroy(m);
    }
    double t_consume = now_s() - t1;
    assert_int_equal(got, BENCH_N);
    /* Every partition still starts where we began: nothing was evicted. */
    for (int q = 0; q < nparts; q++) {
        int64_t lo, hi;
        assert_int_equal(rd_kafka_query_watermark_offsets(rc_consumer_handle(c), topics[0], q,
                                                          &lo, &hi, 5000), 0);
        assert_true(lo <= bench_start[q]);
    }
    printf("bench topic=%s partitions=%d messages=%d payload_bytes=%zu avg=%zu\n", topics[0],
           nparts, BENCH_N, bytes, bytes / BENCH_N);
    printf("bench produce_s=%.2f (%.0f msg/s)  consume_s=%.2f (%.0f msg/s, first message after "
           "%.2f s of group join)\n",
           t_produce, BENCH_N / t_produce, t_consume, BENCH_N / t_consume, t_first - t1);
    rc_consumer_free(c);
    rc_producer_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(produce_consume_commit_resume),
        cmocka_unit_test(on_assign_seeks),
        cmocka_unit_test(on_assign_failure_is_retried),
        cmocka_unit_test(no_offset_is_a_fatal_error),
        cmocka_unit_test_teardown(broker_down_fails_delivery, teardown_up),
        cmocka_unit_test(bench_national_day),
    };
    const char *lvl = getenv("ROLLCALL_LOG_LEVEL");
    rc_log_level level = RC_LOG_ERROR;
    if (lvl)
        rc_log_level_parse(lvl, &level);
    rc_log_init("test_kafka", level);
    return cmocka_run_group_tests(tests, setup, NULL);
}
