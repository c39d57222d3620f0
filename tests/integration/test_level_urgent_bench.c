/* Urgent-report latency, village -> province, measured against the running
 * level services of the embedded stack (bench/urgent-latency.sh starts them
 * and the load).  Runs only when ROLLCALL_LEVEL_BENCH is set; a plain
 * `tests/run.sh integration` skips it.
 *
 * A probe is an URGENT report with its village hop stamped just before it
 * is produced to reports.urgent.  For each probe it records:
 *   - hop:      province hop time - village hop time (the levels' own stamps);
 *   - seen:     when this driver read the 4-hop message back - village time;
 *   - recorded: rollcall.urgent_hop.recorded_at of the province hop - village
 *               time, when the rollup service (which records hops) is running.
 * Environment:
 *   ROLLCALL_LEVEL_BENCH          set to run
 *   ROLLCALL_LEVEL_BENCH_SECONDS  how long to probe (default 20)
 *   ROLLCALL_LEVEL_BENCH_EVERY_MS one probe every N ms (default 100)
 *   ROLLCALL_LEVEL_BENCH_LOAD     "self": also generate a load of our own
 *                                 while probing (see self_load); anything
 *                                 else: the load is someone else's
 *   ROLLCALL_LEVEL_BENCH_RATE     the self load's village reports per second
 *                                 (default 40000; 0: as fast as it goes)
 *   ROLLCALL_LEVEL_BENCH_UNITS    comma-separated village codes to report from
 *                                 (default: villages of the sample county) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rc_kafka.h"
#include "rc_log.h"
#include "rc_pg.h"
#include "rc_report.h"
#include "rc_time.h"

#define MAX_PROBES 20000

typedef struct {
    char id[37];
    int64_t village_at;
    int64_t seen_at;          /* 0: not seen */
    int64_t province_at;
    int64_t township_at, county_at;
    int64_t recorded_at;      /* 0: not recorded / no rollup */
} probe;

static probe probes[MAX_PROBES];
static size_t nprobes;
static atomic_bool load_running;
static atomic_llong load_sent;

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void print_percentiles(const char *what, int64_t *v, size_t n)
{
    if (n == 0) {
        print_message("%-9s no samples\n", what);
        return;
    }
    qsort(v, n, sizeof *v, cmp_i64);
    print_message("%-9s n=%zu  p50=%.1f ms  p90=%.1f ms  p99=%.1f ms  max=%.1f ms\n", what, n,
                  (double)v[n / 2] / 1000.0, (double)v[(n * 9) / 10] / 1000.0,
                  (double)v[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1] / 1000.0,
                  (double)v[n - 1] / 1000.0);
}

/* The load when there is no national-day generator: what a national day
 * puts on the broker and the township desk — 620,573 village-sized reports
 * on reports.village (32 partitions, lz4) and 41,352 complete township
 * aggregates on rollups.township (which rollcall-township files, writing
 * PostgreSQL and producing reports.township) — at the intake's target pace
 * (ROLLCALL_LEVEL_BENCH_RATE village reports/s, default 40,000: a national
 * day in about 16 s), repeated while probing. */
static void *self_load(void *arg)
{
    const char *brokers = arg;
    char err[256], period[11];
    rc_producer *p = rc_producer_new(brokers, NULL, 0, NULL, NULL, err, sizeof err);
    Rollcall__Report r = ROLLCALL__REPORT__INIT;
    Rollcall__Indicators ind = ROLLCALL__INDICATORS__INIT;
    Rollcall__Completeness c = ROLLCALL__COMPLETENESS__INIT;
    uint8_t buf[1024];
    char unit[16], id[37];
    int64_t version = rc_now_us(), t0 = rc_now_us();
    const char *rate_env = getenv("ROLLCALL_LEVEL_BENCH_RATE");
    double rate = rate_env ? atof(rate_env) : 40000;
    long long sent = 0;

    if (!p) {
        fprintf(stderr, "load producer: %s\n", err);
        return NULL;
    }
    rc_period_format(rc_period_of(rc_now_us()) - 3650, period);   /* a period of its own */
    r.period = period;
    r.report_id = id;
    r.unit_code = unit;
    r.indicators = &ind;
    while (atomic_load(&load_running)) {
        r.level = ROLLCALL__LEVEL__LEVEL_VILLAGE;
        r.kind = ROLLCALL__KIND__KIND_DAILY;
        r.completeness = NULL;
        for (long i = 0; i < 620573 && atomic_load(&load_running); i++) {
            size_t len;
            snprintf(unit, sizeof unit, "99%07ld%03ld", i / 15, i % 15);
            rc_uuid_new(id);
            r.version = r.received_at = ++version;
            ind.persons_screened = i % 500;
            ind.households_visited = i % 70;
            len = rollcall__report__pack(&r, buf);
            if (rc_producer_send(p, "reports.village", RD_KAFKA_PARTITION_UA, unit, 9, buf, len, NULL,
                                 10000) == 0)
                atomic_fetch_add(&load_sent, 1);
            if (i % 15 == 14) {
                /* that township is complete: its aggregate */
                Rollcall__Report a = r;
                char tid[37], town[10];
                snprintf(town, sizeof town, "%.9s", unit);
                rc_uuid_new(tid);
                a.report_id = tid;
                a.unit_code = town;
                a.level = ROLLCALL__LEVEL__LEVEL_TOWNSHIP;
                a.completeness = &c;
                c.expected = c.reported = 15;
                len = rollcall__report__pack(&a, buf);
                if (rc_producer_send(p, "rollups.township", RD_KAFKA_PARTITION_UA, town, 9, buf, len,
                                     NULL, 10000) == 0)
                    atomic_fetch_add(&load_sent, 1);
            }
            if (i % 1000 == 0) {
                rc_producer_poll(p, 0);
                /* hold the pace: sleep while ahead of rate */
                int64_t due = t0 + (int64_t)((double)sent * 1e6 / rate);
                while (rate > 0 && rc_now_us() < due && atomic_load(&load_running))
                    usleep(1000);
            }
            sent++;
        }
    }
    rc_producer_free(p);
    return NULL;
}

/* Produces one probe from `unit`; fills id and the village hop time.
 * Returns 0, or -1 when it could not be queued. */
static int send_probe(rc_producer *p, const char *unit, char id[37], int64_t *village_at)
{
    Rollcall__Report r = ROLLCALL__REPORT__INIT;
    Rollcall__Incident inc = ROLLCALL__INCIDENT__INIT;
    Rollcall__Hop h = ROLLCALL__HOP__INIT, *hops[1] = {&h};
    char period[11];
    uint8_t *buf;
    size_t len;
    int64_t now = rc_now_us();
    int rc;

    rc_uuid_new(id);
    rc_period_format(rc_period_of(now), period);
    r.report_id = id;
    r.unit_code = (char *)unit;
    r.level = ROLLCALL__LEVEL__LEVEL_VILLAGE;
    r.period = period;
    r.kind = ROLLCALL__KIND__KIND_URGENT;
    r.submitter = (char *)"urgent-bench";
    r.incident = &inc;
    inc.type = (char *)"fever_cluster";
    inc.severity = 2;
    inc.description = (char *)"latency probe";
    inc.occurred_at = now - 1000000;
    inc.hops = hops;
    inc.n_hops = 1;
    h.level = ROLLCALL__LEVEL__LEVEL_VILLAGE;
    h.unit_code = (char *)unit;
    *village_at = h.at = r.version = r.received_at = r.submitted_at = rc_now_us();
    buf = rc_report_pack(&r, &len);
    if (!buf)
        return -1;
    rc = rc_producer_send(p, "reports.urgent", RD_KAFKA_PARTITION_UA, unit, strlen(unit), buf, len, NULL,
                          1000);
    free(buf);
    return rc;
}

/* The report_id of a 4-hop (province) message, or false. */
static bool province_hop(const rd_kafka_message_t *m, char id[37], int64_t at[4])
{
    rc_errors errs = {0};
    Rollcall__Report *got;
    bool yes = false;

    if (m->err)
        return false;
    got = rc_report_unpack(m->payload, m->len, &errs);
    if (got && got->incident && got->incident->n_hops == 4 &&
        got->incident->hops[3]->level == ROLLCALL__LEVEL__LEVEL_PROVINCE) {
        snprintf(id, 37, "%s", got->report_id);
        for (int i = 0; i < 4; i++)
            at[i] = got->incident->hops[i]->at;
        yes = true;
    }
    rc_report_free(got);
    return yes;
}

/* Until the three relays forward promptly (just restarted, they first
 * join their groups and catch up): probes not counted, until two in a row
 * come back within 100 ms.  Returns false after 60 s. */
static bool warm_up(rc_producer *p, rd_kafka_t *rk, const char *unit)
{
    int good = 0;
    int64_t give_up = rc_now_us() + 60LL * 1000000;

    while (good < 2 && rc_now_us() < give_up) {
        char id[37], got[37];
        int64_t sent, at[4], wait_until;
        bool back = false;
        if (send_probe(p, unit, id, &sent) < 0)
            return false;
        wait_until = sent + 2000000;
        while (!back && rc_now_us() < wait_until) {
            rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 5);
            rc_producer_poll(p, 0);
            if (m && province_hop(m, got, at) && strcmp(got, id) == 0)
                back = true;
            if (m)
                rd_kafka_message_destroy(m);
        }
        good = back && rc_now_us() - sent < 100000 ? good + 1 : 0;
    }
    return good >= 2;
}

static void test_urgent_latency(void **state)
{
    const char *brokers = getenv("ROLLCALL_KAFKA_BROKERS"), *dsn = getenv("ROLLCALL_PG_DSN");
    const char *secs_env = getenv("ROLLCALL_LEVEL_BENCH_SECONDS");
    const char *every_env = getenv("ROLLCALL_LEVEL_BENCH_EVERY_MS");
    const char *load_env = getenv("ROLLCALL_LEVEL_BENCH_LOAD");
    const char *units_env = getenv("ROLLCALL_LEVEL_BENCH_UNITS");
    int seconds = secs_env ? atoi(secs_env) : 20, every_ms = every_env ? atoi(every_env) : 100;
    char units[64][13];
    size_t nunits = 0;
    rc_producer *p;
    rd_kafka_t *rk;
    rd_kafka_conf_t *conf;
    rd_kafka_topic_partition_list_t *list;
    pthread_t loader;
    bool self = load_env && strcmp(load_env, "self") == 0;
    char err[256];
    int64_t start, next, lo, hi, end;
    size_t seen = 0;
    (void)state;

    if (!getenv("ROLLCALL_LEVEL_BENCH") || !brokers) {
        print_message("ROLLCALL_LEVEL_BENCH or ROLLCALL_KAFKA_BROKERS unset: skipped (bench/urgent-latency.sh runs it)\n");
        skip();
    }
    rc_log_init("urgent-bench", RC_LOG_WARN);
    if (units_env) {
        char *copy = strdup(units_env), *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t && nunits < 64; t = strtok_r(NULL, ",", &save))
            snprintf(units[nunits++], 13, "%s", t);
        free(copy);
    }
    for (; nunits < 8; nunits++)
        snprintf(units[nunits], 13, "130102%03zu%03d", nunits + 1, 1);
    if (seconds < 1)
        seconds = 1;
    if (every_ms < 1)
        every_ms = 1;

    const char *pprops[] = {"linger.ms=0", "socket.nagle.disable=true"};
    p = rc_producer_new(brokers, pprops, 2, NULL, NULL, err, sizeof err);
    assert_non_null(p);
    conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof err);
    rd_kafka_conf_set(conf, "group.id", "urgent-bench", err, sizeof err);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err);
    rd_kafka_conf_set(conf, "fetch.wait.max.ms", "5", err, sizeof err);
    rd_kafka_conf_set(conf, "socket.nagle.disable", "true", err, sizeof err);
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    assert_non_null(rk);
    list = rd_kafka_topic_partition_list_new(4);
    for (int part = 0; part < 4; part++) {
        assert_int_equal(rd_kafka_query_watermark_offsets(rk, "reports.urgent", part, &lo, &hi, 5000), 0);
        rd_kafka_topic_partition_list_add(list, "reports.urgent", part)->offset = hi;
    }
    assert_int_equal(rd_kafka_assign(rk, list), 0);
    rd_kafka_topic_partition_list_destroy(list);
    /* let the fetcher settle on the assigned offsets */
    for (int i = 0; i < 20; i++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 50);
        if (m)
            rd_kafka_message_destroy(m);
    }

    if (self) {
        atomic_store(&load_running, true);
        assert_int_equal(pthread_create(&loader, NULL, self_load, (void *)brokers), 0);
        usleep(500000);   /* the load is running before the first probe */
    }
    assert_true(warm_up(p, rk, units[0]));
    start = next = rc_now_us();
    end = start + (int64_t)seconds * 1000000;
    while (rc_now_us() < end + 3000000 && (rc_now_us() < end || seen < nprobes)) {
        int64_t now = rc_now_us(), at[4];
        char got[37];
        if (now >= next && now < end && nprobes < MAX_PROBES) {
            probe *pr = &probes[nprobes];
            if (send_probe(p, units[nprobes % nunits], pr->id, &pr->village_at) == 0)
                nprobes++;
            next += (int64_t)every_ms * 1000;
        }
        rc_producer_poll(p, 0);
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 1);
        if (!m)
            continue;
        if (province_hop(m, got, at)) {
            int64_t when = rc_now_us();
            for (size_t i = nprobes; i-- > 0;) {
                if (strcmp(probes[i].id, got) == 0) {
                    if (!probes[i].seen_at) {
                        probes[i].seen_at = when;
                        probes[i].township_at = at[1];
                        probes[i].county_at = at[2];
                        probes[i].province_at = at[3];
                        seen++;
                    }
                    break;
                }
            }
        }
        rd_kafka_message_destroy(m);
    }
    if (self) {
        atomic_store(&load_running, false);
        pthread_join(loader, NULL);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    rc_producer_free(p);

    /* the rollup's record of the province hop, when there is a rollup */
    if (dsn && *dsn) {
        rc_pg *pg = rc_pg_connect(dsn, "urgent-bench", err, sizeof err);
        PGresult *res = pg ? rc_pg_exec(pg, "SELECT to_regclass('rollcall.urgent_hop') IS NOT NULL", err,
                                        sizeof err)
                           : NULL;
        bool have = res && PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
        PQclear(res);
        for (int wait = 0; have && wait < 50; wait++) {
            size_t missing = 0;
            for (size_t i = 0; i < nprobes; i++) {
                if (probes[i].recorded_at)
                    continue;
                const char *prm[1] = {probes[i].id};
                res = rc_pg_exec_params(pg,
                                        "SELECT (extract(epoch FROM recorded_at) * 1000000)::bigint"
                                        "  FROM rollcall.urgent_hop WHERE report_id = $1::uuid AND level = 5",
                                        1, prm, err, sizeof err);
                if (res && PQntuples(res) == 1)
                    probes[i].recorded_at = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
                else
                    missing++;
                PQclear(res);
            }
            if (!missing)
                break;
            usleep(100000);
        }
        rc_pg_free(pg);
    }

    /* every probe, for a closer look: var/bench/urgent-latency-probes.csv */
    const char *csv = getenv("ROLLCALL_LEVEL_BENCH_CSV");
    FILE *out = csv ? fopen(csv, "w") : NULL;
    if (out) {
        fprintf(out, "report_id,sent_ms,township_ms,county_ms,province_ms,seen_ms,recorded_ms\n");
        for (size_t i = 0; i < nprobes; i++) {
            const probe *q = &probes[i];
            double v = (double)q->village_at;
            fprintf(out, "%s,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f\n", q->id, (v - (double)start) / 1000.0,
                    q->seen_at ? ((double)q->township_at - v) / 1000.0 : -1,
                    q->seen_at ? ((double)q->county_at - v) / 1000.0 : -1,
                    q->seen_at ? ((double)q->province_at - v) / 1000.0 : -1,
                    q->seen_at ? ((double)q->seen_at - v) / 1000.0 : -1,
                    q->recorded_at ? ((double)q->recorded_at - v) / 1000.0 : -1);
        }
        fclose(out);
    }

    int64_t *hop = calloc(nprobes + 1, sizeof *hop), *seen_v = calloc(nprobes + 1, sizeof *seen_v),
            *rec = calloc(nprobes + 1, sizeof *rec);
    size_t nh = 0, ns = 0, nr = 0;
    for (size_t i = 0; i < nprobes; i++) {
        if (probes[i].seen_at) {
            hop[nh++] = probes[i].province_at - probes[i].village_at;
            seen_v[ns++] = probes[i].seen_at - probes[i].village_at;
        }
        if (probes[i].recorded_at)
            rec[nr++] = probes[i].recorded_at - probes[i].village_at;
    }
    print_message("urgent village -> province: %zu probes every %d ms over %d s, %zu reached the province;"
                  " load: %s (%lld messages produced by the self load)\n",
                  nprobes, every_ms, seconds, ns, self ? "self" : (load_env ? load_env : "none"),
                  (long long)atomic_load(&load_sent));
    print_percentiles("hop", hop, nh);
    print_percentiles("seen", seen_v, ns);
    if (nr)
        print_percentiles("recorded", rec, nr);
    else
        print_message("recorded  (no rollcall.urgent_hop rows: the rollup is not running or not merged)\n");
    free(hop);
    free(seen_v);
    free(rec);
    assert_int_equal(ns, nprobes);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_urgent_latency),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
