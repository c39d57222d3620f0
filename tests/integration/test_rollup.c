/* Acceptance tests of rollcall-rollup against the real development broker and
 * PostgreSQL (ROLLCALL_PG_DSN, ROLLCALL_KAFKA_BROKERS; skipped without them).
 * The test runs its own rollup over a scratch database (migrations, the
 * sample registry 130102) with its own consumer group, positioned at the
 * end of every topic, and gives each test its own period far in the past,
 * so nothing else on the stack disturbs it or is disturbed by it.
 *
 * Expected values are computed here from what was sent, never read back
 * from the rollup's own arithmetic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include "rc_httpc.h"
#include "rc_report.h"
#include "rc_time.h"

#define WAIT_MS 30000

static struct {
    bool ready;
    char build[256];
    char dsn[600], dbname[64];
    char brokers[256];
    char group[64];
    char log[256];
    pid_t pid;
    rd_kafka_t *rk;
    PGconn *pg;
    int32_t base_day;
    int next_day;
} fx;

/* ------------------------------------------------------------- helpers */

static int run_quiet(const char *cmd)
{
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int pg_exec_on(const char *dsn, const char *sql)
{
    PGconn *c = PQconnectdb(dsn);
    int ok = PQstatus(c) == CONNECTION_OK;
    if (ok) {
        PGresult *r = PQexec(c, sql);
        ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
        if (!ok)
            print_message("pg: %s: %s", sql, PQerrorMessage(c));
        PQclear(r);
    } else {
        print_message("pg: %s", PQerrorMessage(c));
    }
    PQfinish(c);
    return ok ? 0 : -1;
}

/* First column of the first row as a number (-1 on NULL/no row/error). */
static long long q_ll(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static long long q_ll(const char *fmt, ...)
{
    char sql[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    PGresult *r = PQexec(fx.pg, sql);
    long long v = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
        v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    else if (PQresultStatus(r) != PGRES_TUPLES_OK)
        print_message("pg: %s: %s", sql, PQerrorMessage(fx.pg));
    PQclear(r);
    return v;
}

static void q_str(char *out, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void q_str(char *out, size_t len, const char *fmt, ...)
{
    char sql[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    PGresult *r = PQexec(fx.pg, sql);
    out[0] = '\0';
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
        snprintf(out, len, "%s", PQgetvalue(r, 0, 0));
    else if (PQresultStatus(r) != PGRES_TUPLES_OK)
        print_message("pg: %s: %s", sql, PQerrorMessage(fx.pg));
    PQclear(r);
}

/* Polls a numeric query until it returns `want` (or the time is up);
 * returns the last value seen. */
static long long wait_ll(long long want, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static long long wait_ll(long long want, const char *fmt, ...)
{
    char sql[4096];
    va_list ap;
    long long v = -1;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    for (int waited = 0; waited < WAIT_MS; waited += 50) {
        if ((v = q_ll("%s", sql)) == want)
            return v;
        usleep(50 * 1000);
    }
    return v;
}

static int64_t hi_watermark(const char *topic, int partition)
{
    int64_t lo = 0, hi = 0;
    if (rd_kafka_query_watermark_offsets(fx.rk, topic, partition, &lo, &hi, 5000) != 0)
        return -1;
    return hi;
}

static int partitions_of(const char *topic)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *t = rd_kafka_topic_new(fx.rk, topic, NULL);
    int n = -1;
    if (rd_kafka_metadata(fx.rk, 0, t, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1)
        n = md->topics[0].partition_cnt;
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(t);
    return n;
}

/* Positions a group at the end of a topic, in PostgreSQL (where the rollup
 * reads its offsets from). */
static int seed_offsets(const char *group, const char *topic)
{
    int n = partitions_of(topic);
    if (n <= 0)
        return -1;
    for (int p = 0; p < n; p++) {
        int64_t hi = hi_watermark(topic, p);
        char sql[512];
        if (hi < 0)
            return -1;
        snprintf(sql, sizeof sql,
                 "INSERT INTO rollcall.consumer_offset (consumer_group, topic, partition, next_offset) "
                 "VALUES ('%s', '%s', %d, %" PRId64 ") ON CONFLICT (consumer_group, topic, partition) "
                 "DO UPDATE SET next_offset = excluded.next_offset",
                 group, topic, p, hi);
        if (pg_exec_on(fx.dsn, sql) < 0)
            return -1;
    }
    return 0;
}

static void next_period(char out[11], int32_t *day)
{
    *day = fx.base_day + fx.next_day++;
    rc_period_format(*day, out);
}

/* ------------------------------------------------------------- reports */

typedef struct {
    const char *id;             /* NULL: a new one */
    const char *unit;
    const char *period;
    Rollcall__Kind kind;
    int64_t version;            /* also received_at unless received is set */
    int64_t received;
    int64_t value;              /* every indicator = value * (index + 1) */
    Rollcall__Level level;      /* 0: village */
    Rollcall__ZoneStatus zone;
    const char *submitter;      /* NULL: "test" */
} rep;

static bool hold_flush;         /* send_to leaves the flush to the caller */

static char last_id[37];

/* Produces one report (protobuf, key = the township as the intake does)
 * and waits for the broker to have it. */
static void send_to(const char *topic, const rep *x)
{
    Rollcall__Report r = ROLLCALL__REPORT__INIT;
    Rollcall__Indicators ind = ROLLCALL__INDICATORS__INIT;
    char id[37], key[13];
    size_t len;

    if (x->id)
        snprintf(id, sizeof id, "%s", x->id);
    else
        rc_uuid_new(id);
    snprintf(last_id, sizeof last_id, "%s", id);
    r.report_id = id;
    r.unit_code = (char *)x->unit;
    r.level = x->level ? x->level : ROLLCALL__LEVEL__LEVEL_VILLAGE;
    r.period = (char *)x->period;
    r.kind = x->kind ? x->kind : ROLLCALL__KIND__KIND_DAILY;
    r.version = x->version;
    r.received_at = x->received ? x->received : x->version;
    r.submitted_at = r.received_at - 1000;
    r.submitter = (char *)(x->submitter ? x->submitter : "test");
    r.zone_status = x->zone ? x->zone : ROLLCALL__ZONE_STATUS__ZONE_STATUS_NORMAL;
    if (r.kind != ROLLCALL__KIND__KIND_ZERO)
        for (size_t i = 0; i < rc_indicator_count(); i++)
            rc_indicator_set(&ind, i, x->value * (int64_t)(i + 1));
    r.indicators = &ind;
    uint8_t *buf = rc_report_pack(&r, &len);
    assert_non_null(buf);
    snprintf(key, sizeof key, "%.9s", x->unit);
    assert_int_equal(rd_kafka_producev(fx.rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
                                       RD_KAFKA_V_VALUE(buf, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                       RD_KAFKA_V_END),
                     0);
    free(buf);
    if (!hold_flush)
        assert_int_equal(rd_kafka_flush(fx.rk, 10000), 0);
}

static void send_village(const rep *x)
{
    send_to("reports.village", x);
}

static void send_raw(const char *topic, const char *key, const void *buf, size_t len)
{
    assert_int_equal(rd_kafka_producev(fx.rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
                                       RD_KAFKA_V_VALUE((void *)buf, len),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                     0);
    assert_int_equal(rd_kafka_flush(fx.rk, 10000), 0);
}

/* Microseconds of HH:MM Asia/Shanghai on `day`. */
static int64_t at(int32_t day, int hh, int mm)
{
    return (int64_t)day * RC_DAY_US + ((int64_t)hh * 3600 + mm * 60) * 1000000 - RC_TZ_OFFSET_US;
}

/* ------------------------------------------------------------ the service */

static int start_rollup(void)
{
    char a_dsn[700], a_brokers[300], a_group[100], bin[300];

    /* The rollup's own role when the stack has one (var/stack.env). */
    const char *role = getenv("ROLLCALL_PG_DSN_ROLLUP");
    if (role && *role)
        snprintf(a_dsn, sizeof a_dsn, "--pg_dsn=%s dbname=%s", role, fx.dbname);
    else
        snprintf(a_dsn, sizeof a_dsn, "--pg_dsn=%s", fx.dsn);
    snprintf(a_brokers, sizeof a_brokers, "--kafka_brokers=%s", fx.brokers);
    snprintf(a_group, sizeof a_group, "--group=%s", fx.group);
    snprintf(bin, sizeof bin, "%s/rollcall-rollup", fx.build);
    fx.pid = fork();
    if (fx.pid == 0) {
        FILE *log = fopen(fx.log, "a");
        prctl(PR_SET_PDEATHSIG, SIGKILL);   /* never outlive the test */
        if (log) {
            dup2(fileno(log), 1);
            dup2(fileno(log), 2);
        }
        execl(bin, bin, a_dsn, a_brokers, a_group, "--http_port=0", "--flush_interval=50ms",
              "--max_past_days=36500", "--lanes=2", "--stall_after=3s", (char *)NULL);
        _exit(127);
    }
    return fx.pid > 0 ? 0 : -1;
}

static void stop_rollup(int sig)
{
    if (fx.pid > 0) {
        kill(fx.pid, sig);
        waitpid(fx.pid, NULL, 0);
        fx.pid = 0;
    }
}

static int group_setup(void **state)
{
    const char *dsn = getenv("ROLLCALL_PG_DSN"), *brokers = getenv("ROLLCALL_KAFKA_BROKERS");
    const char *build = getenv("ROLLCALL_BUILD");
    char sql[256], cmd[2048], err[512];
    (void)state;

    if (!dsn || !*dsn || !brokers || !*brokers) {
        print_message("ROLLCALL_PG_DSN or ROLLCALL_KAFKA_BROKERS not set: rollup acceptance tests "
                      "skipped\n");
        return 0;
    }
    snprintf(fx.build, sizeof fx.build, "%s", build && *build ? build : "build");
    snprintf(fx.brokers, sizeof fx.brokers, "%s", brokers);
    snprintf(fx.dbname, sizeof fx.dbname, "rollcall_rollup_test_%d", (int)getpid());
    snprintf(fx.dsn, sizeof fx.dsn, "%s dbname=%s", dsn, fx.dbname);
    snprintf(fx.group, sizeof fx.group, "rollup-test-%d-%ld", (int)getpid(), (long)time(NULL));
    if (access("var/log", W_OK) == 0)
        snprintf(fx.log, sizeof fx.log, "var/log/test_rollup.log");
    else
        snprintf(fx.log, sizeof fx.log, "/tmp/test_rollup_%d.log", (int)getpid());
    unlink(fx.log);
    /* Periods of their own: years back, different on every run, and after
     * 1970 — a period before it gives the reports a version below 0, which
     * the rollup rightly dead-letters (20,000 days back reached 1966 about
     * one run in sixteen). */
    srand((unsigned)(getpid() ^ time(NULL)));
    fx.base_day = rc_period_of(rc_now_us()) - 2000 - (rand() % 15000);

    snprintf(sql, sizeof sql, "CREATE DATABASE %s", fx.dbname);
    if (pg_exec_on(dsn, sql) < 0)
        return -1;
    snprintf(cmd, sizeof cmd,
             "('%s/rollcall' migrate --dsn '%s' && '%s/rollcall' registry import --csv "
             "tests/data/registry-130102.csv --dsn '%s') >/dev/null 2>&1",
             fx.build, fx.dsn, fx.build, fx.dsn);
    if (run_quiet(cmd) != 0) {
        print_message("migrate/registry import failed: %s\n", cmd);
        return -1;
    }
    fx.pg = PQconnectdb(fx.dsn);
    if (PQstatus(fx.pg) != CONNECTION_OK)
        return -1;

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof err);
    rd_kafka_conf_set(conf, "compression.type", "lz4", err, sizeof err);
    rd_kafka_conf_set(conf, "linger.ms", "1", err, sizeof err);
    if (!(fx.rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err))) {
        print_message("kafka: %s\n", err);
        return -1;
    }
    static const char *const daily[] = {"reports.village", "reports.township", "reports.county",
                                        "reports.province"};
    char urgent_group[80];
    snprintf(urgent_group, sizeof urgent_group, "%s.urgent", fx.group);
    for (size_t i = 0; i < 4; i++)
        if (seed_offsets(fx.group, daily[i]) < 0)
            return -1;
    if (seed_offsets(urgent_group, "reports.urgent") < 0)
        return -1;
    if (start_rollup() < 0)
        return -1;
    fx.ready = true;
    return 0;
}

static int group_teardown(void **state)
{
    char sql[256];
    (void)state;
    stop_rollup(SIGTERM);
    if (fx.rk)
        rd_kafka_destroy(fx.rk);
    if (fx.pg)
        PQfinish(fx.pg);
    if (fx.dbname[0] && getenv("ROLLCALL_PG_DSN")) {
        snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", fx.dbname);
        pg_exec_on(getenv("ROLLCALL_PG_DSN"), sql);
    }
    return 0;
}

#define NEED_STACK() do { if (!fx.ready) skip(); } while (0)

/* ---------------------------------------------------------------- tests */

/* Out-of-order revisions: the largest version wins, an older one arriving
 * later changes nothing, an equal version goes to the larger report_id. */
static void test_latest_wins_out_of_order(void **state)
{
    char p[11], id[40];
    int32_t d;
    (void)state;
    NEED_STACK();
    next_period(p, &d);
    const char *v = "130102001001";
    int64_t t = at(d, 8, 0);

    send_village(&(rep){.unit = v, .period = p, .version = t + 300, .value = 3});
    assert_int_equal(wait_ll(3, "SELECT households_visited FROM rollcall.latest_report "
                                "WHERE unit_code = '%s' AND period = '%s'", v, p), 3);
    send_village(&(rep){.unit = v, .period = p, .version = t + 100, .value = 1});
    /* and a marker after it, so we know the older one has been consumed */
    send_village(&(rep){.unit = "130102001002", .period = p, .version = t + 100, .value = 7});
    assert_int_equal(wait_ll(7, "SELECT households_visited FROM rollcall.latest_report "
                                "WHERE unit_code = '130102001002' AND period = '%s'", p), 7);
    assert_int_equal(q_ll("SELECT count(*) FROM rollcall.report_archive WHERE period = '%s' AND level = 1", p), 3);
    assert_int_equal(q_ll("SELECT households_visited FROM rollcall.latest_report "
                          "WHERE unit_code = '%s' AND period = '%s'", v, p), 3);
    assert_int_equal(q_ll("SELECT version FROM rollcall.latest_report WHERE unit_code = '%s' "
                          "AND period = '%s'", v, p), t + 300);

    /* Equal versions: the byte-wise larger report_id wins, in either order. */
    send_village(&(rep){.id = "ffffffff-0000-4000-8000-000000000000", .unit = v, .period = p,
                        .version = t + 300, .value = 9});
    send_village(&(rep){.id = "00000000-0000-4000-8000-000000000000", .unit = v, .period = p,
                        .version = t + 300, .value = 5});
    assert_int_equal(wait_ll(5, "SELECT count(*) FROM rollcall.report_archive WHERE period = '%s' AND level = 1", p),
                     5);
    q_str(id, sizeof id, "SELECT report_id FROM rollcall.latest_report WHERE unit_code = '%s' "
                         "AND period = '%s'", v, p);
    assert_string_equal(id, "ffffffff-0000-4000-8000-000000000000");
    assert_int_equal(q_ll("SELECT households_visited FROM rollcall.latest_report "
                          "WHERE unit_code = '%s' AND period = '%s'", v, p), 9);
    /* The township follows the latest of each village: 9 + 7. */
    assert_int_equal(wait_ll(16, "SELECT households_visited FROM rollcall.v_unit_day "
                                 "WHERE unit_code = '130102001' AND period = '%s'", p), 16);
    /* Its version: period start + the sum of its villages' (version - period
     * start), so that any change of any village raises it. */
    long long start = q_ll("SELECT rollcall.period_start_us('%s')", p);
    assert_int_equal(q_ll("SELECT version FROM rollcall.aggregate WHERE unit_code = '130102001' "
                          "AND period = '%s'", p), (t + 300) + (t + 100) - start);
}

/* The same report_id delivered again — even with a larger version — is a
 * no-op everywhere. */
static void test_redelivery_changes_nothing(void **state)
{
    char p[11], id[37];
    int32_t d;
    (void)state;
    NEED_STACK();
    next_period(p, &d);
    const char *v = "130102002010";
    int64_t t = at(d, 8, 0);

    send_village(&(rep){.unit = v, .period = p, .version = t, .value = 4});
    snprintf(id, sizeof id, "%s", last_id);
    assert_int_equal(wait_ll(4, "SELECT households_visited FROM rollcall.v_unit_day "
                                "WHERE unit_code = '130102002' AND period = '%s'", p), 4);
    send_village(&(rep){.id = id, .unit = v, .period = p, .version = t, .value = 4});
    send_village(&(rep){.id = id, .unit = v, .period = p, .version = t + 5000, .value = 40});
    send_village(&(rep){.unit = "130102002019", .period = p, .version = t, .value = 1});  /* marker */
    assert_int_equal(wait_ll(2, "SELECT count(*) FROM rollcall.latest_report WHERE period = '%s' AND level = 1", p), 2);
    assert_int_equal(q_ll("SELECT count(*) FROM rollcall.report_archive WHERE period = '%s' "
                          "AND unit_code = '%s'", p, v), 1);
    assert_int_equal(q_ll("SELECT households_visited FROM rollcall.latest_report "
                          "WHERE unit_code = '%s' AND period = '%s'", v, p), 4);
    assert_int_equal(q_ll("SELECT version FROM rollcall.latest_report WHERE unit_code = '%s' "
                          "AND period = '%s'", v, p), t);
    assert_int_equal(wait_ll(5, "SELECT households_visited FROM rollcall.aggregate "
                                "WHERE unit_code = '130102002' AND period = '%s'", p), 5);
    long long start = q_ll("SELECT rollcall.period_start_us('%s')", p);
    assert_int_equal(q_ll("SELECT version FROM rollcall.aggregate WHERE unit_code = '130102002' "
                          "AND period = '%s'", p), 2 * t - start);
}

/* A batch of new reports with a few report_ids archived before among them
 * (the rollup checks just those): a report_id reused for another village
 * changes nothing, a true redelivery changes nothing, the new reports all
 * count.  The rollup is stopped while they are produced, so that they come
 * as one batch. */
static void test_reused_id_among_new_reports(void **state)
{
    char p[11], id[37];
    int32_t d;
    (void)state;
    NEED_STACK();
    next_period(p, &d);
    int64_t t = at(d, 8, 0);

    send_village(&(rep){.unit = "130102003008", .period = p, .version = t, .value = 4});
    snprintf(id, sizeof id, "%s", last_id);
    assert_int_equal(wait_ll(4, "SELECT households_visited FROM rollcall.v_unit_day "
                                "WHERE unit_code = '130102003' AND period = '%s'", p), 4);
    stop_rollup(SIGTERM);
    send_village(&(rep){.unit = "130102003009", .period = p, .version = t + 10, .value = 1});
    send_village(&(rep){.id = id, .unit = "130102003010", .period = p, .version = t, .value = 50});
    send_village(&(rep){.id = id, .unit = "130102003008", .period = p, .version = t, .value = 4});
    send_village(&(rep){.unit = "130102003011", .period = p, .version = t + 20, .value = 2});
    assert_int_equal(start_rollup(), 0);
    assert_int_equal(wait_ll(3, "SELECT count(*) FROM rollcall.latest_report WHERE period = '%s' "
                                "AND level = 1", p), 3);
    assert_int_equal(q_ll("SELECT count(*) FROM rollcall.latest_report WHERE period = '%s' "
                          "AND unit_code = '130102003010'", p), 0);
    assert_int_equal(q_ll("SELECT count(*) FROM rollcall.report_archive WHERE period = '%s' "
                          "AND level = 1", p), 3);
    assert_int_equal(wait_ll(7, "SELECT households_visited FROM rollcall.v_unit_day "
                                "WHERE unit_code = '130102003' AND period = '%s'", p), 7);
    assert_int_equal(q_ll("SELECT reported_children FROM rollcall.aggregate "
                          "WHERE unit_code = '130102003' AND period = '%s'", p), 3);
}

/* The running rollup's HTTP port, from its log; 0 if not found. */
static int rollup_port(void)
{
    FILE *f = fopen(fx.log, "r");
    char line[1024];
    int port = 0;
    while (f && fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "listening port=");
        if (p)
            port = atoi(p + strlen("listening port="));
    }
    if (f)
        fclose(f);
    return port;
}

/* Waits up to ms for /healthz to answer with (or without) status 200;
 * returns the last status, its body in body. */
static int wait_healthz(int port, bool ok, int ms, char *body, size_t len)
{
    char url[64], err[256];
    int status = 0;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/healthz", port);
    for (int waited = 0; waited <= ms; waited += 200) {
        rc_httpc_request req = {.url = url, .timeout_ms = 2000};
        rc_httpc_response resp = {0};
        if (rc_httpc_do(&req, &resp, err, sizeof err) == 0) {
            status = resp.status;
            snprintf(body, len, "%s", resp.body);
        }
        free(resp.body);
        if ((status == 200) == ok)
            break;
        usleep(200 * 1000);
    }
    return status;
}

/* A batch that cannot finish (here: latest_report locked by someone else)
 * shows in /healthz once it has run for stall_after (3 s in these tests),
 * and /healthz recovers when the batch gets through. */
static void test_stalled_batch_in_healthz(void **state)
{
    char p[11], body[512] = "";
    int32_t d;
    (void)state;
    NEED_STACK();
    next_period(p, &d);
    int port = rollup_port();
    assert_true(port > 0);
    assert_int_equal(wait_healthz(port, true, 10000, body, sizeof body), 200);

    PGconn *locker = PQconnectdb(fx.dsn);
    assert_int_equal(PQstatus(locker), CONNECTION_OK);
    PGresult *r = PQexec(locker, "BEGIN; LOCK TABLE rollcall.latest_report IN ACCESS EXCLUSIVE MODE");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    send_village(&(rep){.unit = "130102003012", .period = p, .version = at(d, 8, 0), .value = 3});
    int status = wait_healthz(port, false, 20000, body, sizeof body);
    r = PQexec(locker, "ROLLBACK");
    PQclear(r);
    PQfinish(locker);
    assert_int_equal(status, 503);
    assert_non_null(strstr(body, "stalled"));
    assert_int_equal(wait_healthz(port, true, 20000, body, sizeof body), 200);
    assert_int_equal(wait_ll(3, "SELECT households_visited FROM rollcall.latest_report "
                                "WHERE unit_code = '130102003012' AND period = '%s'", p), 3);
}

/* A ZERO report counts as reported and as zero; a missing village is
 * listed, in order, in its township's missing_children. */
static void test_zero_and_missing(void **state)
{
    char p[11], missing[512], want[512] = "{";
    int32_t d;
    (void)state;
    NEED_STACK();
    next_period(p, &d);
    int64_t t = at(d, 9, 0);

    /* township 130102012 has 6 villages; 001 files ZERO, 002 DAILY, the rest nothing */
    send_village(&(rep){.unit = "130102012001", .period = p, .version = t,
                        .kind = ROLLCALL__KIND__KIND_ZERO});
    send_village(&(rep){.unit = "130102012002", .period = p, .version = t + 1, .value = 2});
    assert_int_equal(wait_ll(2, "SELECT reported_children FROM rollcall.v_unit_day "
                                "WHERE unit_code = '130102012' AND period = '%s'", p), 2);
    assert_int_equal(q_ll("SELECT zero_children FROM rollcall.v_unit_day WHERE unit_code = '130102012' "
                          "AND period = '%s'", p), 1);
    assert_int_equal(q_ll("SELECT expected_children FROM rollcall.v_unit_day "
                          "WHERE unit_code = '130102012' AND period = '%s'", p), 6);
    assert_int_equal(q_ll("SELECT households_visited FROM rollcall.v_unit_day "
                          "WHERE unit_code = '130102012' AND period = '%s'", p), 2);
    assert_int_equal(q_ll("SELECT households_visited FROM rollcall.v_unit_day "
                          "WHERE unit_code = '130102012001' AND period = '%s'", p), 0);
    PGresult *r = PQexec(fx.pg, "SELECT code FROM rollcall.unit WHERE rollup_parent = '130102012' "
                                "AND code NOT IN ('130102012001', '130102012002') ORDER BY code");
    for (int i = 0; i < PQntuples(r); i++) {
        strcat(want, i ? "," : "");
        strcat(want, PQgetvalue(r, i, 0));
    }
    strcat(want, "}");
    PQclear(r);
    q_str(missing, sizeof missing, "SELECT missing_children FROM rollcall.v_unit_day "
                                   "WHERE unit_code = '130102012' AND period = '%s'", p);
    assert_string_equal(missing, want);
    /* The county lists the township as missing (not complete), with its coverage. */
    assert_int_equal(q_ll("SELECT villages_reported FROM rollcall.v_unit_day "
                          "WHERE unit_code = '130102' AND period = '%s'", p), 2);
    assert_int_equal(q_ll("SELECT villages_expected FROM rollcall.v_unit_day "
                          "WHERE unit_code = '130102' AND period = '%s'", p), 174);
    assert_int_equal(q_ll("SELECT reported_children FROM rollcall.v_unit_day "
                          "WHERE unit_code = '130102' AND period = '%s'", p), 0);
    assert_int_equal(q_ll("SELECT cardinality(missing_children) FROM rollcall.v_unit_day "
                          "WHERE unit_code = '130102' AND period = '%s'", p), 16);
}

/* Late = the first accepted report came after 10:00; a timely report
 * corrected after the deadline is not late. */
static void test_late(void **state)
{
    char p[11];
    int32_t d;
    (void)state;
    NEED_STACK();
    next_period(p, &d);

    send_village(&(rep){.unit = "130102013001", .period = p, .version = at(d, 10, 30), .value = 1});
    send_village(&(rep){.unit = "130102013002", .period = p, .version = at(d, 9, 30), .value = 1});
    send_village(&(rep){.unit = "130102013002", .period = p, .version = at(d, 11, 0), .value = 2});
    assert_int_equal(wait_ll(3, "SELECT count(*) FROM rollcall.report_archive WHERE period = '%s' AND level = 1", p), 3);
    assert_int_equal(wait_ll(3, "SELECT households_visited FROM rollcall.aggregate "
                                "WHERE unit_code = '130102013' AND period = '%s'", p), 3);
    assert_int_equal(q_ll("SELECT late_children FROM rollcall.aggregate WHERE unit_code = '130102013' "
                          "AND period = '%s'", p), 1);
    assert_int_equal(q_ll("SELECT late::int FROM rollcall.latest_report WHERE unit_code = '130102013001' "
                          "AND period = '%s'", p), 1);
    assert_int_equal(q_ll("SELECT late::int FROM rollcall.latest_report WHERE unit_code = '130102013002' "
                          "AND period = '%s'", p), 0);
    /* An earlier-received revision arriving last (replay order) makes 001 timely. */
    send_village(&(rep){.unit = "130102013001", .period = p, .version = at(d, 9, 0), .value = 5});
    assert_int_equal(wait_ll(0, "SELECT late_children FROM rollcall.aggregate "
                                "WHERE unit_code = '130102013' AND period = '%s'", p), 0);
    assert_int_equal(q_ll("SELECT households_visited FROM rollcall.aggregate WHERE unit_code = '130102013' "
                          "AND period = '%s'", p), 3);
}

/* A report for a unit the registry does not know goes to rollcall.dead_letter
 * and reports.dlq with its reason; the good reports around it are committed. */
static void test_unknown_unit_dead_lettered(void **state)
{
    char p[11], reason[512];
    int32_t d;
    (void)state;
    NEED_STACK();
    next_period(p, &d);
    int64_t t = at(d, 8, 0);
    int dlq_parts = partitions_of("reports.dlq");
    int64_t dlq_before = 0, dlq_after = 0;
    for (int i = 0; i < dlq_parts; i++)
        dlq_before += hi_watermark("reports.dlq", i);
    long long dl_before = q_ll("SELECT count(*) FROM rollcall.dead_letter");

    send_village(&(rep){.unit = "130102014001", .period = p, .version = t, .value = 1});
    send_village(&(rep){.unit = "130102014999", .period = p, .version = t + 1, .value = 1});
    send_raw("reports.village", "130102014", "\x0a\xff\xff", 3);     /* undecodable */
    send_village(&(rep){.unit = "130102014002", .period = p, .version = t + 2, .value = 1});
    assert_int_equal(wait_ll(2, "SELECT reported_children FROM rollcall.aggregate "
                                "WHERE unit_code = '130102014' AND period = '%s'", p), 2);
    /* (other traffic on a shared stack may add dead letters of its own) */
    assert_int_equal(wait_ll(1, "SELECT count(*) FROM rollcall.dead_letter WHERE raw = '\\x0affff'"), 1);
    assert_int_equal(wait_ll(1, "SELECT count(*) FROM rollcall.dead_letter "
                                "WHERE position(convert_to('130102014999', 'UTF8') in raw) > 0"), 1);
    assert_true(q_ll("SELECT count(*) FROM rollcall.dead_letter") >= dl_before + 2);
    q_str(reason, sizeof reason, "SELECT reason FROM rollcall.dead_letter WHERE raw IS NOT NULL "
                                 "AND position(convert_to('130102014999', 'UTF8') in raw) > 0");
    assert_non_null(strstr(reason, "unit_code"));
    q_str(reason, sizeof reason, "SELECT reason FROM rollcall.dead_letter WHERE raw = '\\x0affff'");
    assert_non_null(strstr(reason, "undecodable"));
    assert_int_equal(q_ll("SELECT count(*) FROM rollcall.report_archive WHERE period = '%s' AND level = 1", p), 2);
    /* ... and both reached reports.dlq, and the outbox is empty again */
    for (int waited = 0; waited < WAIT_MS && dlq_after < dlq_before + 2; waited += 100) {
        dlq_after = 0;
        for (int i = 0; i < dlq_parts; i++)
            dlq_after += hi_watermark("reports.dlq", i);
        usleep(100 * 1000);
    }
    assert_true(dlq_after >= dlq_before + 2);
    assert_int_equal(wait_ll(0, "SELECT count(*) FROM rollcall.outbox WHERE topic = 'reports.dlq'"), 0);
}

/* A whole county day (174 villages, revisions, zeros, lockdown zones):
 * township, county and province equal the sums computed here; the outbox is
 * published and cleared; an independent recompute (rollcall.rebuild_day)
 * gives the same rows. */
static void test_conservation_and_outbox(void **state)
{
    char p[11];
    int32_t d;
    long long total = 0, reported = 0, zero = 0, lock = 0, sent = 0;
    (void)state;
    NEED_STACK();
    next_period(p, &d);
    int64_t t = at(d, 7, 0);

    int64_t rollups_before = 0;
    int rparts = partitions_of("rollups.province");
    for (int i = 0; i < rparts; i++)
        rollups_before += hi_watermark("rollups.province", i);
    PGresult *r = PQexec(fx.pg, "SELECT code FROM rollcall.unit WHERE level = 1 ORDER BY code");
    int n = PQntuples(r);
    for (int i = 0; i < n; i++) {
        const char *v = PQgetvalue(r, i, 0);
        if (i % 17 == 3)
            continue;   /* missing */
        rep x = {.unit = v, .period = p, .version = t + i, .value = i % 5 + 1,
                 .zone = (Rollcall__ZoneStatus)(1 + i % 4)};
        if (i % 7 == 0) {
            x.kind = ROLLCALL__KIND__KIND_ZERO;
            x.value = 0;
            zero++;
        }
        if (i % 11 == 0) {
            /* first an older value, then the revision that counts */
            rep old = x;
            old.value = 100;
            old.kind = ROLLCALL__KIND__KIND_DAILY;
            send_village(&old);
            sent++;
            x.version += 1000000;
        }
        send_village(&x);
        sent++;
        total += x.value;
        reported++;
        if (x.zone == ROLLCALL__ZONE_STATUS__ZONE_STATUS_LOCKDOWN)
            lock++;
    }
    PQclear(r);
    assert_int_equal(wait_ll(reported, "SELECT villages_reported FROM rollcall.aggregate "
                                       "WHERE unit_code = '13' AND period = '%s'", p), reported);
    /* every indicator i sums to total * (i + 1), at every level */
    for (int i = 0; i < (int)rc_indicator_count(); i++) {
        const char *name = rc_indicator_name((size_t)i);
        assert_int_equal(q_ll("SELECT %s FROM rollcall.aggregate WHERE unit_code = '13' AND period = '%s'",
                              name, p), total * (i + 1));
        assert_int_equal(q_ll("SELECT %s FROM rollcall.aggregate WHERE unit_code = '130102' "
                              "AND period = '%s'", name, p), total * (i + 1));
        assert_int_equal(q_ll("SELECT sum(%s) FROM rollcall.aggregate WHERE level = 2 AND period = '%s'",
                              name, p), total * (i + 1));
    }
    assert_int_equal(q_ll("SELECT villages_zero FROM rollcall.aggregate WHERE unit_code = '13' "
                          "AND period = '%s'", p), zero);
    assert_int_equal(q_ll("SELECT zone_lockdown FROM rollcall.aggregate WHERE unit_code = '13' "
                          "AND period = '%s'", p), lock);
    assert_int_equal(q_ll("SELECT sum(reported_children) FROM rollcall.aggregate WHERE level = 2 "
                          "AND period = '%s'", p), reported);
    assert_int_equal(q_ll("SELECT sum(cardinality(missing_children)) FROM rollcall.aggregate "
                          "WHERE level = 2 AND period = '%s'", p), 174 - reported);
    assert_int_equal(q_ll("SELECT count(*) FROM rollcall.report_archive WHERE period = '%s' AND level = 1", p),
                     sent);
    /* the incremental rows equal a recompute from scratch */
    assert_int_equal(pg_exec_on(fx.dsn, "SELECT 1"), 0);
    PQclear(PQexec(fx.pg, "BEGIN"));
    char sql[1024];
    snprintf(sql, sizeof sql,
             "CREATE TEMP TABLE before_rebuild ON COMMIT DROP AS SELECT * FROM rollcall.aggregate "
             "WHERE period = '%s'; SELECT rollcall.rebuild_day('%s')", p, p);
    PQclear(PQexec(fx.pg, sql));
    long long diff = q_ll(
        "SELECT count(*) FROM ((SELECT unit_code, version, expected_children, reported_children, "
        "zero_children, late_children, missing_children, zone_normal, zone_prevention, zone_control, "
        "zone_lockdown, villages_expected, villages_reported, villages_zero, villages_late, "
        "households_visited, disinfectant_kg, extra FROM before_rebuild EXCEPT SELECT unit_code, version, "
        "expected_children, reported_children, zero_children, late_children, missing_children, "
        "zone_normal, zone_prevention, zone_control, zone_lockdown, villages_expected, villages_reported, "
        "villages_zero, villages_late, households_visited, disinfectant_kg, extra "
        "FROM rollcall.aggregate WHERE period = '%s') UNION ALL (SELECT unit_code, version, "
        "expected_children, reported_children, zero_children, late_children, missing_children, "
        "zone_normal, zone_prevention, zone_control, zone_lockdown, villages_expected, villages_reported, "
        "villages_zero, villages_late, households_visited, disinfectant_kg, extra "
        "FROM rollcall.aggregate WHERE period = '%s' EXCEPT SELECT unit_code, version, "
        "expected_children, reported_children, zero_children, late_children, missing_children, "
        "zone_normal, zone_prevention, zone_control, zone_lockdown, villages_expected, villages_reported, "
        "villages_zero, villages_late, households_visited, disinfectant_kg, extra FROM before_rebuild)) x",
        p, p);
    PQclear(PQexec(fx.pg, "ROLLBACK"));
    assert_int_equal(diff, 0);
    /* the outbox went out (rollups.province grew) and was emptied */
    assert_int_equal(wait_ll(0, "SELECT count(*) FROM rollcall.outbox"), 0);
    int64_t rollups_after = 0;
    for (int i = 0; i < rparts; i++)
        rollups_after += hi_watermark("rollups.province", i);
    assert_true(rollups_after > rollups_before);
}

/* SIGKILL at any moment, restart: the stored offsets resume exactly, nothing
 * is counted twice and nothing is lost. */
static void test_restart_resumes_from_stored_offsets(void **state)
{
    char p[11];
    int32_t d;
    long long total = 0;
    (void)state;
    NEED_STACK();
    next_period(p, &d);
    int64_t t = at(d, 8, 0);
    PGresult *r = PQexec(fx.pg, "SELECT code FROM rollcall.unit WHERE level = 1 ORDER BY code");
    int n = PQntuples(r);
    for (int round = 0; round < 3; round++) {
        for (int i = round; i < n; i += 3) {
            send_village(&(rep){.unit = PQgetvalue(r, i, 0), .period = p, .version = t + i, .value = i});
            total += i;
        }
        usleep((useconds_t)(rand() % 200) * 1000);
        stop_rollup(SIGKILL);
        assert_int_equal(start_rollup(), 0);
    }
    PQclear(r);
    assert_int_equal(wait_ll(n, "SELECT villages_reported FROM rollcall.aggregate WHERE unit_code = '13' "
                                "AND period = '%s'", p), n);
    assert_int_equal(q_ll("SELECT households_visited FROM rollcall.aggregate WHERE unit_code = '13' "
                          "AND period = '%s'", p), total);
    assert_int_equal(q_ll("SELECT count(*) FROM rollcall.report_archive WHERE period = '%s' AND level = 1", p), n);
    assert_int_equal(q_ll("SELECT count(*) FROM rollcall.latest_report WHERE period = '%s' AND level = 1", p), n);
}

/* Urgent reports: every hop recorded once, in v_urgent within moments. */
static void test_urgent_hops(void **state)
{
    char p[11];
    int32_t d;
    (void)state;
    NEED_STACK();
    next_period(p, &d);
    Rollcall__Report r = ROLLCALL__REPORT__INIT;
    Rollcall__Incident inc = ROLLCALL__INCIDENT__INIT;
    Rollcall__Hop h1 = ROLLCALL__HOP__INIT, h2 = ROLLCALL__HOP__INIT;
    Rollcall__Hop *hops[2] = {&h1, &h2};
    char id[37];
    size_t len;
    int64_t now = rc_now_us();

    rc_uuid_new(id);
    r.report_id = id;
    r.unit_code = "130102015003";
    r.level = ROLLCALL__LEVEL__LEVEL_VILLAGE;
    r.period = p;
    r.kind = ROLLCALL__KIND__KIND_URGENT;
    r.version = r.received_at = at(d, 9, 0);
    inc.type = "fever_cluster";
    inc.severity = 3;
    inc.occurred_at = at(d, 8, 0);
    h1.level = ROLLCALL__LEVEL__LEVEL_VILLAGE;
    h1.unit_code = "130102015003";
    h1.at = now;
    inc.hops = hops;
    inc.n_hops = 1;
    r.incident = &inc;
    uint8_t *buf = rc_report_pack(&r, &len);
    send_raw("reports.urgent", "130102015003", buf, len);
    free(buf);
    assert_int_equal(wait_ll(1, "SELECT count(*) FROM rollcall.v_urgent WHERE report_id = '%s' "
                                "AND village_at IS NOT NULL", id), 1);
    /* the township forwards it with its hop */
    h2.level = ROLLCALL__LEVEL__LEVEL_TOWNSHIP;
    h2.unit_code = "130102015";
    h2.at = now + 1000;
    inc.n_hops = 2;
    buf = rc_report_pack(&r, &len);
    send_raw("reports.urgent", "130102015003", buf, len);
    free(buf);
    assert_int_equal(wait_ll(1, "SELECT count(*) FROM rollcall.v_urgent WHERE report_id = '%s' "
                                "AND township_at IS NOT NULL", id), 1);
    /* once per level (the level services running beside may add theirs) */
    assert_int_equal(q_ll("SELECT count(*) FROM rollcall.urgent_hop WHERE report_id = '%s' "
                          "AND level IN (1, 2)", id), 2);
    assert_int_equal(q_ll("SELECT count(*) - count(DISTINCT level) FROM rollcall.urgent_hop "
                          "WHERE report_id = '%s'", id), 0);
    assert_int_equal(q_ll("SELECT count(*) FROM rollcall.report_archive WHERE report_id = '%s'", id), 1);
    /* urgent reports are not the day's report */
    assert_int_equal(q_ll("SELECT count(*) FROM rollcall.latest_report WHERE period = '%s' AND level = 1", p), 0);
}

/* The reported bug: a protobuf report whose submitter is not UTF-8 used to
 * be staged, refused by PostgreSQL (22021) and then stall the rollup for
 * good.  Now it is a dead letter (the validation names the field) and the
 * reports around it, in the same batch, are counted. */
static void test_poison_submitter_dead_lettered(void **state)
{
    char p[11], reason[512];
    int32_t d;
    (void)state;
    NEED_STACK();
    next_period(p, &d);
    int64_t t = at(d, 8, 0);

    hold_flush = true;
    send_village(&(rep){.unit = "130102011002", .period = p, .version = t, .value = 1});
    send_village(&(rep){.unit = "130102011003", .period = p, .version = t, .value = 1,
                        .submitter = "bad \xff\xfe bytes"});
    send_village(&(rep){.unit = "130102011004", .period = p, .version = t, .value = 1});
    hold_flush = false;
    assert_int_equal(rd_kafka_flush(fx.rk, 10000), 0);
    /* and a good report sent after it */
    send_village(&(rep){.unit = "130102011007", .period = p, .version = t, .value = 1});
    assert_int_equal(wait_ll(3, "SELECT count(*) FROM rollcall.report_archive WHERE period = '%s' "
                                "AND level = 1", p), 3);
    assert_int_equal(wait_ll(1, "SELECT count(*) FROM rollcall.dead_letter WHERE "
                                "position(convert_to('130102011003', 'UTF8') in raw) > 0"), 1);
    q_str(reason, sizeof reason, "SELECT reason FROM rollcall.dead_letter WHERE "
                                 "position(convert_to('130102011003', 'UTF8') in raw) > 0");
    assert_non_null(strstr(reason, "submitter"));
    assert_int_equal(wait_ll(3, "SELECT reported_children FROM rollcall.aggregate "
                                "WHERE unit_code = '130102011' AND period = '%s'", p), 3);
}

/* What the validation cannot foresee and PostgreSQL refuses for a data
 * reason (here a trigger raising SQLSTATE 22023 for submitter 'poison') is
 * bisected out of its batch and dead-lettered with PostgreSQL's reason —
 * daily and urgent — and everything around it is stored.  A transient
 * error (40001) is retried, never dead-lettered, and shows on /healthz
 * once it has lasted stall_after. */
static void test_refused_by_postgresql(void **state)
{
    char p[11], reason[512], body[512];
    int32_t d;
    (void)state;
    NEED_STACK();
    next_period(p, &d);
    int64_t t = at(d, 8, 0);
    int port = rollup_port();
    assert_true(port > 0);

    assert_int_equal(pg_exec_on(fx.dsn,
        "CREATE TABLE IF NOT EXISTS public.test_fault (on_ boolean); "
        "CREATE OR REPLACE FUNCTION public.test_refuse() RETURNS trigger LANGUAGE plpgsql "
        /* the rollup runs as its own role: the trigger reads test_fault as its owner */
        "SECURITY DEFINER AS $$ "
        "BEGIN IF NEW.submitter = 'poison' THEN "
        "  RAISE EXCEPTION 'refused for the test' USING ERRCODE = '22023'; END IF; "
        "IF EXISTS (SELECT 1 FROM public.test_fault) THEN "
        "  RAISE EXCEPTION 'transient for the test' USING ERRCODE = '40001'; END IF; "
        "RETURN NEW; END $$; "
        "DROP TRIGGER IF EXISTS test_refuse ON rollcall.report_archive; "
        "CREATE TRIGGER test_refuse BEFORE INSERT ON rollcall.report_archive "
        "FOR EACH ROW EXECUTE FUNCTION public.test_refuse()"), 0);
    long long dl_before = q_ll("SELECT count(*) FROM rollcall.dead_letter");

    /* 30 reports of township 017 in one go, two of them refused */
    hold_flush = true;
    int sent = 0;
    for (int v = 1; v <= 17; v++) {
        char unit[13];
        snprintf(unit, sizeof unit, "130102010%03d", v);
        send_village(&(rep){.unit = unit, .period = p, .version = t + v, .value = 1,
                            .submitter = (v == 5 || v == 11) ? "poison" : NULL});
        sent++;
    }
    hold_flush = false;
    assert_int_equal(rd_kafka_flush(fx.rk, 10000), 0);
    long long expect = q_ll("SELECT count(*) FROM rollcall.unit WHERE rollup_parent = '130102010'");
    long long good = (expect < 17 ? expect : 17) - 2;
    (void)sent;
    assert_int_equal(wait_ll(good, "SELECT count(*) FROM rollcall.report_archive WHERE period = '%s' "
                                   "AND level = 1", p), good);
    assert_int_equal(wait_ll(dl_before + 2, "SELECT count(*) FROM rollcall.dead_letter"), dl_before + 2);
    q_str(reason, sizeof reason, "SELECT reason FROM rollcall.dead_letter ORDER BY id DESC LIMIT 1");
    assert_non_null(strstr(reason, "rejected by PostgreSQL"));
    assert_non_null(strstr(reason, "22023"));
    assert_int_equal(wait_ll(good, "SELECT reported_children FROM rollcall.aggregate "
                                   "WHERE unit_code = '130102010' AND period = '%s'", p), good);

    /* urgent: the refused one is a dead letter of reports.urgent, the next one stored */
    for (int k = 0; k < 2; k++) {
        Rollcall__Report r = ROLLCALL__REPORT__INIT;
        Rollcall__Incident inc = ROLLCALL__INCIDENT__INIT;
        char id[37];
        size_t len;
        rc_uuid_new(id);
        r.report_id = id;
        r.unit_code = "130102010001";
        r.level = ROLLCALL__LEVEL__LEVEL_VILLAGE;
        r.period = p;
        r.kind = ROLLCALL__KIND__KIND_URGENT;
        r.version = r.received_at = at(d, 9, k);
        r.submitter = k == 0 ? "poison" : "clerk";
        inc.type = "fever_cluster";
        inc.severity = 2;
        inc.occurred_at = at(d, 8, 0);
        r.incident = &inc;
        uint8_t *buf = rc_report_pack(&r, &len);
        send_raw("reports.urgent", "130102010001", buf, len);
        free(buf);
        if (k == 1)
            assert_int_equal(wait_ll(1, "SELECT count(*) FROM rollcall.urgent_report "
                                        "WHERE report_id = '%s'", id), 1);
    }
    assert_int_equal(wait_ll(1, "SELECT count(*) FROM rollcall.dead_letter WHERE topic = "
                                "'reports.urgent' AND reason LIKE '%%22023%%'"), 1);
    assert_true(q_ll("SELECT count(*) FROM rollcall.dead_letter") == dl_before + 3);

    /* transient: retried, /healthz 503 naming it after stall_after, then stored */
    assert_int_equal(wait_healthz(port, true, 10000, body, sizeof body), 200);
    assert_int_equal(pg_exec_on(fx.dsn, "INSERT INTO public.test_fault VALUES (true)"), 0);
    send_village(&(rep){.unit = "130102010001", .period = p, .version = t + 100, .value = 7});
    int status = wait_healthz(port, false, 15000, body, sizeof body);
    assert_int_equal(status, 503);
    assert_non_null(strstr(body, "40001"));
    assert_int_equal(q_ll("SELECT count(*) FROM rollcall.dead_letter"), dl_before + 3);
    assert_int_equal(pg_exec_on(fx.dsn, "DELETE FROM public.test_fault; "
                                        "DROP TRIGGER test_refuse ON rollcall.report_archive"), 0);
    assert_int_equal(wait_ll(7, "SELECT households_visited FROM rollcall.latest_report "
                                "WHERE unit_code = '130102010001' AND period = '%s'", p), 7);
    assert_int_equal(wait_healthz(port, true, 15000, body, sizeof body), 200);
    assert_int_equal(q_ll("SELECT count(*) FROM rollcall.dead_letter"), dl_before + 3);
}

/* A unit added to the registry while the service runs is known to it
 * within seconds (rollcall registry import does not need a restart). */
static void test_registry_reload(void **state)
{
    char p[11];
    int32_t d;
    (void)state;
    NEED_STACK();
    next_period(p, &d);
    assert_int_equal(pg_exec_on(fx.dsn, "INSERT INTO rollcall.unit (code, name, level, parent_code, "
                                        "rollup_parent) VALUES ('130102001099', 'new village', 1, "
                                        "'130102001', '130102001') ON CONFLICT DO NOTHING"),
                     0);
    assert_int_equal(pg_exec_on(fx.dsn, "UPDATE rollcall.unit SET expected_children = 11 "
                                        "WHERE code = '130102001'"),
                     0);
    /* the reload is checked every few seconds */
    for (int i = 0; i < 150; i++) {
        FILE *f = fopen(fx.log, "r");
        char line[1024];
        bool seen = false;
        while (f && fgets(line, sizeof line, f))
            seen |= strstr(line, "registry reloaded") != NULL;
        if (f)
            fclose(f);
        if (seen)
            break;
        usleep(100 * 1000);
    }
    send_village(&(rep){.unit = "130102001099", .period = p, .version = at(d, 8, 0), .value = 2});
    assert_int_equal(wait_ll(2, "SELECT households_visited FROM rollcall.aggregate "
                                "WHERE unit_code = '130102001' AND period = '%s'", p), 2);
    assert_int_equal(q_ll("SELECT expected_children FROM rollcall.aggregate WHERE unit_code = '130102001' "
                          "AND period = '%s'", p), 11);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_latest_wins_out_of_order),
        cmocka_unit_test(test_redelivery_changes_nothing),
        cmocka_unit_test(test_reused_id_among_new_reports),
        cmocka_unit_test(test_stalled_batch_in_healthz),
        cmocka_unit_test(test_zero_and_missing),
        cmocka_unit_test(test_late),
        cmocka_unit_test(test_unknown_unit_dead_lettered),
        cmocka_unit_test(test_conservation_and_outbox),
        cmocka_unit_test(test_urgent_hops),
        cmocka_unit_test(test_restart_resumes_from_stored_offsets),
        cmocka_unit_test(test_registry_reload),
        cmocka_unit_test(test_poison_submitter_dead_lettered),
        cmocka_unit_test(test_refused_by_postgresql),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
