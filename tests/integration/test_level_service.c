/* Acceptance tests for rollcall-township / -county / -province against a
 * real PostgreSQL (a scratch database, migrated) and the development broker.
 * The test plays the rollup: it produces hand-made live aggregates on
 * rollups.township and drives time through the services' file clock, then
 * reads what the desk did from PostgreSQL (rollcall.filing_log, v_filing,
 * reminder, escalation) and from the topics.
 *
 * Needs ROLLCALL_PG_DSN and ROLLCALL_KAFKA_BROKERS (skips cleanly without);
 * the binaries come from $ROLLCALL_BUILD (default build).  Every run uses its
 * own database, consumer groups and reporting periods, so runs and the
 * embedded stack's own services never see each other's state. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rc_kafka.h"
#include "rc_level.h"
#include "rc_log.h"
#include "rc_migrate.h"
#include "rc_pg.h"
#include "rc_report.h"
#include "rc_time.h"

static const char *base_dsn, *brokers;
static char dbname[64], test_dsn[2048], clock_path[128], build_dir[512];
static PGconn *admin;
static rc_pg *pg;
static rc_producer *producer;
static pid_t township = -1;
static int township_port;
static int32_t base_day;           /* this run's first reporting period */
static char group[64];

/* ------------------------------------------------------------------ helpers */

static int make_test_dsn(void)
{
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(base_dsn, &err), *o;
    size_t n = 0;
    if (!opts) {
        PQfreemem(err);
        return -1;
    }
    for (o = opts; o->keyword; o++) {
        if (!o->val || !o->val[0] || strcmp(o->keyword, "dbname") == 0)
            continue;
        n += (size_t)snprintf(test_dsn + n, sizeof test_dsn - n, "%s='%s' ", o->keyword, o->val);
    }
    snprintf(test_dsn + n, sizeof test_dsn - n, "dbname=%s", dbname);
    PQconninfoFree(opts);
    return 0;
}

static void exec_sql(const char *sql)
{
    char err[512];
    PGresult *r = rc_pg_exec(pg, sql, err, sizeof err);
    if (!r)
        fail_msg("%s: %s", sql, err);
    PQclear(r);
}

/* The first cell of a query as text ("" when no row; NULL is "<null>"). */
static const char *value(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *value(const char *fmt, ...)
{
    static char out[4096];
    char sql[4096], err[512];
    va_list ap;
    PGresult *r;

    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    r = rc_pg_exec(pg, sql, err, sizeof err);
    if (!r)
        fail_msg("%s: %s", sql, err);
    if (PQntuples(r) == 0)
        out[0] = '\0';
    else if (PQgetisnull(r, 0, 0))
        snprintf(out, sizeof out, "<null>");
    else
        snprintf(out, sizeof out, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return out;
}

/* Polls a query until its first cell equals `want`; fails after timeout_ms
 * with the last value seen. */
#define wait_value(timeout_ms, want, ...) wait_value_at(__LINE__, timeout_ms, want, __VA_ARGS__)
static void wait_value_at(int line, int timeout_ms, const char *want, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void wait_value_at(int line, int timeout_ms, const char *want, const char *fmt, ...)
{
    char sql[4096];
    const char *got = "";
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    for (int waited = 0; waited <= timeout_ms; waited += 50) {
        got = value("%s", sql);
        if (strcmp(got, want) == 0)
            return;
        usleep(50000);
    }
    fail_msg("line %d: waited %d ms for '%s', last got '%s': %s", line, timeout_ms, want, got, sql);
}

static void period_of(int k, char out[11])
{
    rc_period_format(base_day + k, out);
}

/* Sets the services' clock to HH:MM:SS (Asia/Shanghai) on period k. */
static void set_clock(int k, const char *hms)
{
    char period[11], path[160];
    FILE *f;

    period_of(k, period);
    snprintf(path, sizeof path, "%s.tmp", clock_path);
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "%sT%s+08:00\n", period, hms);
    fclose(f);
    assert_int_equal(rename(path, clock_path), 0);
    usleep(400000);   /* the clock file's cache (250 ms) plus a sweep (100 ms) */
}

typedef struct {
    const char *unit;
    int k;                          /* period index */
    int expected, reported, zero;
    const char *missing[8];
    int64_t ind[32];                /* by rc_indicator index; 0 default */
    int64_t version;                /* 0: now */
    const char *report_id;          /* NULL: a new one */
} agg_spec;

static int64_t produce_agg(const agg_spec *s)
{
    Rollcall__Report r = ROLLCALL__REPORT__INIT;
    Rollcall__Indicators ind = ROLLCALL__INDICATORS__INIT;
    Rollcall__Completeness c = ROLLCALL__COMPLETENESS__INIT;
    char id[37], period[11], *missing[8];
    uint8_t *buf;
    size_t len, nmissing = 0;

    if (s->report_id)
        snprintf(id, sizeof id, "%s", s->report_id);
    else
        rc_uuid_new(id);
    period_of(s->k, period);
    r.report_id = id;
    r.unit_code = (char *)s->unit;
    r.level = (Rollcall__Level)rc_code_level(s->unit);
    r.period = period;
    r.kind = ROLLCALL__KIND__KIND_DAILY;
    r.version = s->version ? s->version : rc_now_us();
    r.submitter = (char *)"test-rollup";
    r.indicators = &ind;
    for (size_t i = 0; i < 32; i++)
        rc_indicator_set(&ind, i, s->ind[i]);
    r.completeness = &c;
    c.expected = s->expected;
    c.reported = s->reported;
    c.zero = s->zero;
    while (nmissing < 8 && s->missing[nmissing]) {
        missing[nmissing] = (char *)s->missing[nmissing];
        nmissing++;
    }
    c.missing = missing;
    c.n_missing = nmissing;
    buf = rc_report_pack(&r, &len);
    assert_non_null(buf);
    assert_int_equal(rc_producer_send(producer, "rollups.township", RD_KAFKA_PARTITION_UA, s->unit,
                                      strlen(s->unit), buf, len, NULL, 5000),
                     0);
    free(buf);
    assert_int_equal(rc_producer_flush(producer, 10000), 0);
    return r.version;
}

static pid_t spawn_level(const char *level, int port, const char *const *extra)
{
    char bin[600], a_dsn[2100], a_brokers[512], a_port[32], a_clock[200], a_group[128];
    const char *argv[24];
    int n = 0;
    pid_t pid;

    snprintf(bin, sizeof bin, "%s/rollcall-%s", build_dir, level);
    /* The desks' own role when the stack has one (var/stack.env). */
    const char *role = getenv("ROLLCALL_PG_DSN_LEVEL");
    if (role && *role)
        snprintf(a_dsn, sizeof a_dsn, "--pg_dsn=%s dbname=%s", role, dbname);
    else
        snprintf(a_dsn, sizeof a_dsn, "--pg_dsn=%s", test_dsn);
    snprintf(a_brokers, sizeof a_brokers, "--kafka_brokers=%s", brokers);
    snprintf(a_port, sizeof a_port, "--http_port=%d", port);
    snprintf(a_clock, sizeof a_clock, "--clock=file:%s", clock_path);
    snprintf(a_group, sizeof a_group, "--group=%s-%s", group, level);
    argv[n++] = bin;
    argv[n++] = a_dsn;
    argv[n++] = a_brokers;
    argv[n++] = a_port;
    argv[n++] = a_clock;
    argv[n++] = a_group;
    argv[n++] = "--tick=100ms";
    argv[n++] = "--listen_addr=127.0.0.1";
    while (extra && *extra && n < 22)
        argv[n++] = *extra++;
    argv[n] = NULL;
    pid = fork();
    if (pid == 0) {
        char log[256];
        snprintf(log, sizeof log, "/tmp/rollcall-test-%s-%d.log", level, (int)getppid());
        if (!freopen(log, "a", stderr))
            _exit(127);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

static void stop_pid(pid_t *pid, int sig)
{
    int status;
    if (*pid <= 0)
        return;
    kill(*pid, sig);
    waitpid(*pid, &status, 0);
    *pid = -1;
}

/* GET /v1/status of a service; the caller json_decref()s.  NULL when down. */
static json_t *status_of(int port)
{
    char cmd[128], buf[4096];
    FILE *p;
    size_t n;

    snprintf(cmd, sizeof cmd, "curl -fsS --max-time 2 http://127.0.0.1:%d/v1/status 2>/dev/null", port);
    p = popen(cmd, "r");
    if (!p)
        return NULL;
    n = fread(buf, 1, sizeof buf - 1, p);
    pclose(p);
    buf[n] = '\0';
    return n ? json_loads(buf, 0, NULL) : NULL;
}

/* Waits until the service holds partitions for `part` ("daily"/"urgent"). */
static void wait_assigned(int port, const char *part, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 100) {
        json_t *s = status_of(port);
        int n = 0;
        if (s) {
            json_unpack(s, "{s:{s:i}}", part, "partitions", &n);
            json_decref(s);
        }
        if (n > 0)
            return;
        usleep(100000);
    }
    fail_msg("service on port %d got no %s partitions within %d ms", port, part, timeout_ms);
}

/* A port nobody listens on right now (the kernel's pick): fixed ports may
 * be taken as ephemeral ports by other clients on a shared machine. */
static int free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    assert_true(port > 0);
    return port;
}

/* A counter's value from a service's /metrics, -1 when unreadable. */
static double metric(int port, const char *name)
{
    char cmd[256], line[512];
    FILE *p;
    double v = -1;

    snprintf(cmd, sizeof cmd, "curl -fsS --max-time 2 http://127.0.0.1:%d/metrics 2>/dev/null", port);
    p = popen(cmd, "r");
    if (!p)
        return -1;
    while (fgets(line, sizeof line, p))
        if (strncmp(line, name, strlen(name)) == 0 && line[strlen(name)] == ' ')
            v = strtod(line + strlen(name) + 1, NULL);
    pclose(p);
    return v;
}

/* ------------------------------------------------------------- fixtures */

/* The desk under test: daily part only, starting at the topic's end (the
 * broker still holds other runs' aggregates), and a short session timeout so
 * that a SIGKILLed member leaves the group quickly in test_restart. */
static const char *const desk_args[] = {"--urgent=no", "--start_from=end",
                                        "--kafka.session.timeout.ms=6000",
                                        "--kafka.heartbeat.interval.ms=500", NULL};

static int group_setup(void **state)
{
    char sql[128], err[512];
    const char *b;
    (void)state;

    base_dsn = getenv("ROLLCALL_PG_DSN");
    brokers = getenv("ROLLCALL_KAFKA_BROKERS");
    if (!base_dsn || !*base_dsn || !brokers || !*brokers) {
        base_dsn = NULL;
        return 0;
    }
    rc_log_init("test_level", RC_LOG_WARN);
    b = getenv("ROLLCALL_BUILD");
    snprintf(build_dir, sizeof build_dir, "%s", b && *b ? b : "build");
    admin = PQconnectdb(base_dsn);
    if (PQstatus(admin) != CONNECTION_OK) {
        fprintf(stderr, "cannot connect to ROLLCALL_PG_DSN: %s", PQerrorMessage(admin));
        return -1;
    }
    snprintf(dbname, sizeof dbname, "rollcall_level_test_%ld", (long)getpid());
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", dbname);
    PQclear(PQexec(admin, sql));
    if (make_test_dsn() < 0)
        return -1;
    pg = rc_pg_connect(test_dsn, "test_level", err, sizeof err);
    if (!pg) {
        fprintf(stderr, "scratch database: %s\n", err);
        return -1;
    }
    if (rc_migrate(pg, getenv("ROLLCALL_MIGRATIONS") ? getenv("ROLLCALL_MIGRATIONS") : "migrations",
                   false, err, sizeof err) < 0) {
        fprintf(stderr, "migrations: %s\n", err);
        return -1;
    }
    producer = rc_producer_new(brokers, NULL, 0, NULL, NULL, err, sizeof err);
    if (!producer) {
        fprintf(stderr, "producer: %s\n", err);
        return -1;
    }
    /* Periods of this run: a random stretch of the 1990s, 64 days apart
     * from any other run with overwhelming likelihood. */
    srand((unsigned)(time(NULL) ^ getpid()));
    base_day = 7305 + (rand() % 56) * 64;
    snprintf(group, sizeof group, "test-level-%ld-%d", (long)getpid(), rand() % 100000);
    snprintf(clock_path, sizeof clock_path, "/tmp/rollcall-test-clock-%ld", (long)getpid());
    set_clock(0, "08:00:00");

    township_port = free_port();
    township = spawn_level("township", township_port, desk_args);
    wait_assigned(township_port, "daily", 30000);
    usleep(1000000);    /* "end" is resolved to an offset just after the assignment */
    return 0;
}

static int group_teardown(void **state)
{
    char sql[128];
    (void)state;
    if (!base_dsn)
        return 0;
    stop_pid(&township, SIGTERM);
    rc_producer_free(producer);
    rc_pg_free(pg);
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", dbname);
    PQclear(PQexec(admin, sql));
    PQfinish(admin);
    unlink(clock_path);
    return 0;
}

#define NEED_STACK()                                                                       \
    do {                                                                                   \
        if (!base_dsn) {                                                                   \
            print_message("ROLLCALL_PG_DSN or ROLLCALL_KAFKA_BROKERS unset: skipped\n");   \
            skip();                                                                        \
        }                                                                                  \
    } while (0)

#define IND(name) rc_indicator_index(name)

/* ------------------------------------------------------------------ tests */

/* Period 0: a township whose three villages are all in files at once. */
static void test_files_early_when_complete(void **state)
{
    char period[11], id[37];
    int64_t v;
    (void)state;
    NEED_STACK();

    set_clock(0, "08:30:00");
    period_of(0, period);
    agg_spec s = {"130102001", 0, 3, 3, 0, {NULL}, {0}, 0, NULL};
    s.ind[IND("persons_screened")] = 120;
    v = produce_agg(&s);
    wait_value(10000, "complete",
               "SELECT reason FROM rollcall.filing_log WHERE unit_code = '130102001' AND period = '%s'", period);
    rc_level_filed_id("130102001", period, v, id);
    assert_string_equal(value("SELECT report_id FROM rollcall.filing_log WHERE unit_code = '130102001'"
                              " AND period = '%s'", period), id);
    assert_string_equal(value("SELECT version FROM rollcall.filing_log WHERE report_id = '%s'", id),
                        value("SELECT %lld", (long long)v));
    assert_string_equal(value("SELECT revised FROM rollcall.filing_log WHERE report_id = '%s'", id), "f");
    assert_string_equal(value("SELECT submitter FROM rollcall.filing_log WHERE report_id = '%s'", id),
                        "rollcall-township");
    /* filed before the deadline, at the clock's 08:30 */
    assert_string_equal(value("SELECT to_char(filed_at AT TIME ZONE INTERVAL '+08:00', 'HH24:MI')"
                              "  FROM rollcall.filing_log WHERE report_id = '%s'", id), "08:30");
    assert_string_equal(value("SELECT status FROM rollcall.v_filing WHERE unit_code = '130102001'"
                              " AND period = '%s'", period), "filed");
    assert_string_equal(value("SELECT topic FROM rollcall.filing_log WHERE report_id = '%s'", id),
                        "reports.township");
    /* exactly one filing, and nothing escalated for a complete quiet unit */
    assert_string_equal(value("SELECT count(*) FROM rollcall.filing_log WHERE unit_code = '130102001'"), "1");
}

/* Period 1: incomplete → nothing before the deadline, filed at it with the
 * missing list; missing_after_deadline fires then (not before); a late
 * village makes a revision marked revised. */
static void test_deadline_and_revision(void **state)
{
    char period[11];
    int64_t v1, v2, v3;
    (void)state;
    NEED_STACK();

    set_clock(1, "09:00:00");
    period_of(1, period);
    agg_spec s = {"130102002", 1, 3, 1, 0, {"130102002002", "130102002003"}, {0}, 0, NULL};
    s.ind[IND("persons_screened")] = 40;
    v1 = produce_agg(&s);
    wait_value(10000, "collecting",
               "SELECT status FROM rollcall.v_filing WHERE unit_code = '130102002' AND period = '%s'", period);
    set_clock(1, "10:59:59");
    assert_string_equal(value("SELECT count(*) FROM rollcall.filing_log WHERE unit_code = '130102002'"), "0");
    assert_string_equal(value("SELECT count(*) FROM rollcall.escalation WHERE unit_code = '130102002'"), "0");

    set_clock(1, "11:00:00");
    wait_value(10000, "deadline",
               "SELECT reason FROM rollcall.filing_log WHERE unit_code = '130102002' AND period = '%s'", period);
    assert_string_equal(value("SELECT missing::text FROM rollcall.filing_log WHERE unit_code = '130102002'"
                              " AND version = %lld", (long long)v1),
                        "{130102002002,130102002003}");
    assert_string_equal(value("SELECT expected || '/' || reported || '/' || revised FROM rollcall.filing_log"
                              " WHERE unit_code = '130102002' AND version = %lld", (long long)v1), "3/1/false");
    wait_value(5000, "2",
               "SELECT value FROM rollcall.escalation WHERE unit_code = '130102002' AND period = '%s'"
               " AND rule = 'missing_after_deadline'", period);
    assert_string_equal(value("SELECT raised_to_level FROM rollcall.escalation WHERE unit_code = '130102002'"
                              " AND rule = 'missing_after_deadline'"), "3");

    /* the late villages arrive at 11:40 */
    set_clock(1, "11:40:00");
    agg_spec late = {"130102002", 1, 3, 3, 0, {NULL}, {0}, 0, NULL};
    late.ind[IND("persons_screened")] = 130;
    v2 = produce_agg(&late);
    wait_value(10000, "revision",
               "SELECT reason FROM rollcall.filing_log WHERE unit_code = '130102002' AND version = %lld",
               (long long)v2);
    assert_string_equal(value("SELECT revised FROM rollcall.filing_log WHERE unit_code = '130102002'"
                              " AND version = %lld", (long long)v2), "t");
    assert_string_equal(value("SELECT missing::text FROM rollcall.filing_log WHERE unit_code = '130102002'"
                              " AND version = %lld", (long long)v2), "{}");
    assert_string_equal(value("SELECT filings || ' ' || filed_revised FROM rollcall.filing"
                              " WHERE unit_code = '130102002' AND period = '%s'", period), "2 true");

    /* Two more changes within revise_every (30 s) of that filing wait, and
     * the next filing carries the newer one. */
    set_clock(1, "11:40:10");
    late.ind[IND("persons_screened")] = 140;
    produce_agg(&late);
    late.ind[IND("persons_screened")] = 150;
    v3 = produce_agg(&late);
    wait_value(10000, "t",
               "SELECT live_version = %lld FROM rollcall.filing WHERE unit_code = '130102002'"
               " AND period = '%s'", (long long)v3, period);
    usleep(1500000);   /* 15 ticks of the desk */
    assert_string_equal(value("SELECT count(*) FROM rollcall.filing_log WHERE unit_code = '130102002'"), "2");
    set_clock(1, "11:40:30");
    wait_value(10000, "revision",
               "SELECT reason FROM rollcall.filing_log WHERE unit_code = '130102002' AND version = %lld",
               (long long)v3);
    assert_string_equal(value("SELECT count(*) FROM rollcall.filing_log WHERE unit_code = '130102002'"), "3");
    /* still one escalation per (unit, period, rule) */
    assert_string_equal(value("SELECT count(*) FROM rollcall.escalation WHERE unit_code = '130102002'"), "1");
}

/* Period 2: reminders at 60 and 30 minutes before 11:00 name exactly the
 * missing villages, once per round; a complete unit gets none. */
static void test_reminders(void **state)
{
    char period[11];
    (void)state;
    NEED_STACK();

    set_clock(2, "09:30:00");
    period_of(2, period);
    agg_spec s = {"130102003", 2, 4, 2, 0, {"130102003002", "130102003004"}, {0}, 0, NULL};
    s.ind[IND("households_visited")] = 12;
    produce_agg(&s);
    agg_spec done = {"130102004", 2, 2, 2, 0, {NULL}, {0}, 0, NULL};
    done.ind[IND("households_visited")] = 7;
    produce_agg(&done);
    wait_value(10000, "collecting",
               "SELECT status FROM rollcall.v_filing WHERE unit_code = '130102003' AND period = '%s'", period);
    assert_string_equal(value("SELECT count(*) FROM rollcall.reminder WHERE period = '%s'", period), "0");

    set_clock(2, "10:00:01");
    wait_value(10000, "130102003002,130102003004",
               "SELECT string_agg(unit_code, ',' ORDER BY unit_code) FROM rollcall.reminder"
               " WHERE period = '%s' AND minutes_before = 60", period);
    assert_string_equal(value("SELECT string_agg(DISTINCT asked_by_unit || '/' || asked_by_level, ',')"
                              "  FROM rollcall.reminder WHERE period = '%s'", period), "130102003/2");
    wait_value(5000, "0", "SELECT count(*) FROM rollcall.reminder WHERE period = '%s'"
                          " AND published_at IS NULL", period);
    usleep(500000);
    assert_string_equal(value("SELECT count(*) FROM rollcall.reminder WHERE period = '%s'", period), "2");

    set_clock(2, "10:30:01");
    wait_value(10000, "130102003002,130102003004",
               "SELECT string_agg(unit_code, ',' ORDER BY unit_code) FROM rollcall.reminder"
               " WHERE period = '%s' AND minutes_before = 30", period);
    assert_string_equal(value("SELECT count(*) FROM rollcall.reminder WHERE period = '%s'", period), "4");
}

/* Periods 3..5: each rule on its case and on its near miss. */
static void test_escalation_rules(void **state)
{
    char p5[11];
    (void)state;
    NEED_STACK();

    set_clock(5, "08:00:00");
    period_of(5, p5);

    /* confirmed > 0: 130102011 yes, 130102012 (0) no */
    agg_spec a = {"130102011", 5, 2, 1, 0, {"130102011002"}, {0}, 0, NULL};
    a.ind[IND("confirmed")] = 1;
    produce_agg(&a);
    agg_spec b = {"130102012", 5, 2, 1, 0, {"130102012002"}, {0}, 0, NULL};
    b.ind[IND("suspected")] = 3;
    produce_agg(&b);
    /* fever_referred >= 10: 130102013 (10) yes, 130102014 (9) no */
    agg_spec c = {"130102013", 5, 2, 1, 0, {"130102013002"}, {0}, 0, NULL};
    c.ind[IND("fever_referred")] = 10;
    produce_agg(&c);
    agg_spec d = {"130102014", 5, 2, 1, 0, {"130102014002"}, {0}, 0, NULL};
    d.ind[IND("fever_referred")] = 9;
    produce_agg(&d);

    /* zero after home observation: 130102015 had 4 yesterday, zero today → yes;
     * 130102016 had 0 yesterday, zero today → no */
    agg_spec e4 = {"130102015", 4, 2, 2, 0, {NULL}, {0}, 0, NULL};
    e4.ind[IND("home_observation")] = 4;
    e4.ind[IND("persons_screened")] = 50;
    produce_agg(&e4);
    agg_spec f4 = {"130102016", 4, 2, 2, 0, {NULL}, {0}, 0, NULL};
    f4.ind[IND("persons_screened")] = 50;
    produce_agg(&f4);

    /* copied: 130102017 the same numbers on days 3, 4, 5 → yes; 130102018
     * one number differs on day 3 → no */
    for (int k = 3; k <= 5; k++) {
        agg_spec g = {"130102017", k, 2, 2, 0, {NULL}, {0}, 0, NULL};
        g.ind[IND("persons_screened")] = 88;
        g.ind[IND("masks")] = 300;
        agg_spec h = {"130102018", k, 2, 2, 0, {NULL}, {0}, 0, NULL};
        h.ind[IND("persons_screened")] = k == 3 ? 87 : 88;
        h.ind[IND("masks")] = 300;
        if (k == 5) {
            /* today's rows come after yesterday's are stored */
            wait_value(10000, "6", "SELECT count(*) FROM rollcall.filing WHERE unit_code IN"
                                   " ('130102015', '130102016', '130102017', '130102018')");
            agg_spec e5 = {"130102015", 5, 2, 2, 2, {NULL}, {0}, 0, NULL};
            agg_spec f5 = {"130102016", 5, 2, 2, 2, {NULL}, {0}, 0, NULL};
            produce_agg(&e5);
            produce_agg(&f5);
        }
        produce_agg(&g);
        produce_agg(&h);
    }

    wait_value(10000, "1", "SELECT value FROM rollcall.escalation WHERE unit_code = '130102011' AND rule = 'confirmed'");
    wait_value(10000, "10", "SELECT value FROM rollcall.escalation WHERE unit_code = '130102013' AND rule = 'fever_referred'");
    wait_value(10000, "4", "SELECT value FROM rollcall.escalation WHERE unit_code = '130102015'"
                           " AND rule = 'zero_after_home_observation' AND period = '%s'", p5);
    wait_value(10000, "3", "SELECT value FROM rollcall.escalation WHERE unit_code = '130102017'"
                           " AND rule = 'copied_3_days' AND period = '%s'", p5);
    /* every one published to the escalations topic */
    wait_value(5000, "0", "SELECT count(*) FROM rollcall.escalation WHERE published_at IS NULL");
    /* near misses: give the desk time to have decided them too */
    wait_value(10000, "filed", "SELECT status FROM rollcall.v_filing WHERE unit_code = '130102018' AND period = '%s'", p5);
    wait_value(10000, "filed", "SELECT status FROM rollcall.v_filing WHERE unit_code = '130102016' AND period = '%s'", p5);
    usleep(300000);
    assert_string_equal(value("SELECT count(*) FROM rollcall.escalation WHERE unit_code IN"
                              " ('130102012', '130102014', '130102016', '130102018')"), "0");
    assert_string_equal(value("SELECT string_agg(rule, ',') FROM rollcall.escalation WHERE unit_code = '130102011'"),
                        "confirmed");
    assert_string_equal(value("SELECT count(*) FROM rollcall.escalation WHERE unit_code = '130102015'"), "1");

    /* a rule added while the service runs applies without a restart */
    exec_sql("INSERT INTO rollcall.escalation_rule (rule, kind, indicator, op, threshold)"
             " VALUES ('asymptomatic', 'threshold', 'asymptomatic', '>', 0)");
    usleep(500000);
    agg_spec z = {"130102019", 5, 2, 1, 0, {"130102019002"}, {0}, 0, NULL};
    z.ind[IND("asymptomatic")] = 2;
    produce_agg(&z);
    wait_value(10000, "2", "SELECT value FROM rollcall.escalation WHERE unit_code = '130102019' AND rule = 'asymptomatic'");
}

/* Period 6: a level that requires a sign-off waits, visibly, until
 * `rollcall signoff`; the filed report names the official. */
static void test_manual_signoff(void **state)
{
    char period[11], cmd[4096];
    (void)state;
    NEED_STACK();

    exec_sql("UPDATE rollcall.level_policy SET signoff_required = true WHERE level = 2");
    usleep(500000);
    set_clock(6, "08:00:00");
    period_of(6, period);
    agg_spec s = {"130102021", 6, 2, 2, 0, {NULL}, {0}, 0, NULL};
    s.ind[IND("persons_screened")] = 9;
    produce_agg(&s);
    wait_value(10000, "awaiting_signoff",
               "SELECT status FROM rollcall.v_filing WHERE unit_code = '130102021' AND period = '%s'", period);
    assert_string_equal(value("SELECT count(*) FROM rollcall.v_pending_signoff WHERE unit_code = '130102021'"), "1");
    /* the desk's gauge counts it too (refreshed every 10 s) */
    double waiting = 0;
    for (int i = 0; i < 150 && (waiting = metric(township_port, "rollcall_level_awaiting_signoff")) < 1; i++)
        usleep(100000);
    assert_true(waiting >= 1);
    assert_true(waiting == atof(value("SELECT count(*) FROM rollcall.v_pending_signoff WHERE level = 'township'")));
    assert_string_equal(value("SELECT count(*) FROM rollcall.filing_log WHERE unit_code = '130102021'"), "0");

    snprintf(cmd, sizeof cmd, "%s/rollcall signoff 130102021 %s --by 'Zhang Wei' --dsn \"%s\" >/dev/null",
             build_dir, period, test_dsn);
    assert_int_equal(system(cmd), 0);
    wait_value(10000, "signoff",
               "SELECT reason FROM rollcall.filing_log WHERE unit_code = '130102021' AND period = '%s'", period);
    assert_string_equal(value("SELECT submitter FROM rollcall.filing_log WHERE unit_code = '130102021'"),
                        "Zhang Wei");
    assert_string_equal(value("SELECT status FROM rollcall.v_filing WHERE unit_code = '130102021'"), "filed");
    snprintf(cmd, sizeof cmd, "%s/rollcall signoff 130102999 %s --dsn \"%s\" 2>/dev/null", build_dir,
             period, test_dsn);
    assert_int_not_equal(system(cmd), 0);   /* nothing on the desk for that unit */
    exec_sql("UPDATE rollcall.level_policy SET signoff_required = false WHERE level = 2");
    usleep(500000);
}

/* Period 8: an aggregate that comes again with its version and id but
 * other numbers breaks PIPELINE.md's version rule; the desk says so (log,
 * metric) and keeps the report it filed under that id. */
static void test_version_conflict(void **state)
{
    char period[11];
    int64_t v;
    double before;
    (void)state;
    NEED_STACK();

    set_clock(8, "08:00:00");
    period_of(8, period);
    before = metric(township_port, "rollcall_level_aggregate_version_conflicts_total");
    agg_spec s = {"130102041", 8, 2, 2, 0, {NULL}, {0}, 0, "5d7b0b9e-1c1e-4c55-9d0e-3f1e2a4b5c6d"};
    s.ind[IND("persons_screened")] = 10;
    v = produce_agg(&s);
    wait_value(10000, "complete",
               "SELECT reason FROM rollcall.filing_log WHERE unit_code = '130102041' AND period = '%s'", period);
    s.version = v;
    s.ind[IND("persons_screened")] = 11;
    produce_agg(&s);
    for (int waited = 0; waited < 10000; waited += 100) {
        if (metric(township_port, "rollcall_level_aggregate_version_conflicts_total") >= before + 1)
            break;
        usleep(100000);
    }
    assert_true(metric(township_port, "rollcall_level_aggregate_version_conflicts_total") >= before + 1);
    assert_string_equal(value("SELECT count(*) FROM rollcall.filing_log WHERE unit_code = '130102041'"
                              " AND period = '%s'", period), "1");
}

/* Period 7: killed before the deadline, restarted from PostgreSQL: the unit
 * is filed once at the deadline, and the offsets were not lost or replayed
 * into a second filing. */
static void test_restart(void **state)
{
    char period[11];
    (void)state;
    NEED_STACK();

    set_clock(7, "09:00:00");
    period_of(7, period);
    agg_spec s = {"130102031", 7, 3, 2, 0, {"130102031003"}, {0}, 0, NULL};
    s.ind[IND("persons_screened")] = 5;
    produce_agg(&s);
    wait_value(10000, "collecting",
               "SELECT status FROM rollcall.v_filing WHERE unit_code = '130102031' AND period = '%s'", period);
    stop_pid(&township, SIGKILL);
    set_clock(7, "11:00:05");
    township = spawn_level("township", township_port, desk_args);
    wait_value(30000, "deadline",
               "SELECT reason FROM rollcall.filing_log WHERE unit_code = '130102031' AND period = '%s'", period);
    usleep(1000000);
    assert_string_equal(value("SELECT count(*) FROM rollcall.filing_log WHERE unit_code = '130102031'"), "1");
    assert_string_equal(value("SELECT count(*) FROM rollcall.filing_log WHERE unit_code = '130102001'"), "1");
    /* the desk's offsets are in PostgreSQL */
    assert_string_not_equal(value("SELECT count(*) FROM rollcall.consumer_offset"
                                  " WHERE consumer_group = '%s-township' AND topic = 'rollups.township'",
                                  group), "0");
}

/* ---- urgent: village -> township -> county -> province, four hops ---- */

static void test_urgent_four_hops(void **state)
{
    const char *levels[3] = {"township", "county", "province"};
    const char *extra[] = {"--daily=no", "--start_from=end", NULL};
    pid_t relays[3] = {-1, -1, -1};
    rd_kafka_t *rk = NULL;
    rd_kafka_conf_t *conf;
    rd_kafka_topic_partition_list_t *list;
    char id[37], period[11], errstr[256];
    int64_t lo, hi, sent_at;
    Rollcall__Report r = ROLLCALL__REPORT__INIT;
    Rollcall__Incident inc = ROLLCALL__INCIDENT__INIT;
    Rollcall__Hop h = ROLLCALL__HOP__INIT, *hops[1] = {&h};
    uint8_t *buf;
    size_t len;
    bool found = false;
    (void)state;
    NEED_STACK();

    int ports[3];
    for (int i = 0; i < 3; i++) {
        ports[i] = free_port();
        relays[i] = spawn_level(levels[i], ports[i], extra);
    }
    for (int i = 0; i < 3; i++)
        wait_assigned(ports[i], "urgent", 30000);

    /* read reports.urgent from its current end */
    conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof errstr);
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    assert_non_null(rk);
    list = rd_kafka_topic_partition_list_new(4);
    for (int p = 0; p < 4; p++) {
        assert_int_equal(rd_kafka_query_watermark_offsets(rk, "reports.urgent", p, &lo, &hi, 5000), 0);
        rd_kafka_topic_partition_list_add(list, "reports.urgent", p)->offset = hi;
    }
    assert_int_equal(rd_kafka_assign(rk, list), 0);
    rd_kafka_topic_partition_list_destroy(list);

    rc_uuid_new(id);
    sent_at = rc_now_us();
    rc_period_format(rc_period_of(sent_at), period);
    r.report_id = id;
    r.unit_code = (char *)"130102001001";
    r.level = ROLLCALL__LEVEL__LEVEL_VILLAGE;
    r.period = period;
    r.kind = ROLLCALL__KIND__KIND_URGENT;
    r.version = sent_at;
    r.received_at = sent_at;
    r.incident = &inc;
    inc.type = (char *)"confirmed_case";
    inc.severity = 4;
    inc.occurred_at = sent_at - 60000000;
    inc.hops = hops;
    inc.n_hops = 1;
    h.level = ROLLCALL__LEVEL__LEVEL_VILLAGE;
    h.unit_code = (char *)"130102001001";
    h.at = sent_at;
    buf = rc_report_pack(&r, &len);
    assert_int_equal(rc_producer_send(producer, "reports.urgent", RD_KAFKA_PARTITION_UA, r.unit_code,
                                      strlen(r.unit_code), buf, len, NULL, 5000), 0);
    free(buf);
    assert_int_equal(rc_producer_flush(producer, 5000), 0);

    for (int waited = 0; waited < 15000 && !found; waited += 100) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        rc_errors errs = {0};
        Rollcall__Report *got;
        if (!m)
            continue;
        got = m->err ? NULL : rc_report_unpack(m->payload, m->len, &errs);
        if (got && strcmp(got->report_id, id) == 0 && got->incident && got->incident->n_hops == 4) {
            Rollcall__Hop **hh = got->incident->hops;
            found = true;
            assert_int_equal(hh[0]->level, 1);
            assert_int_equal(hh[1]->level, 2);
            assert_string_equal(hh[1]->unit_code, "130102001");
            assert_int_equal(hh[2]->level, 3);
            assert_string_equal(hh[2]->unit_code, "130102");
            assert_int_equal(hh[3]->level, 5);
            assert_string_equal(hh[3]->unit_code, "13");
            assert_true(hh[1]->at >= hh[0]->at && hh[2]->at >= hh[1]->at && hh[3]->at >= hh[2]->at);
            assert_non_null(m->key);
            assert_int_equal((int)m->key_len, 12);
            assert_memory_equal(m->key, "130102001001", 12);
            /* A first message right after the relays start pays for their
             * fetchers starting up; bench/urgent-latency.sh measures the
             * steady state. */
            print_message("urgent village->province hop: %.1f ms (township %.1f, county %.1f, province %.1f)\n",
                          (double)(hh[3]->at - hh[0]->at) / 1000.0, (double)(hh[1]->at - hh[0]->at) / 1000.0,
                          (double)(hh[2]->at - hh[1]->at) / 1000.0, (double)(hh[3]->at - hh[2]->at) / 1000.0);
        }
        rc_report_free(got);
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    /* our three relays did the forwarding (the embedded stack's own may
     * have forwarded the same report too: harmless, and not what is tested) */
    for (int i = 0; i < 3; i++) {
        double fwd = metric(ports[i], "rollcall_level_urgent_forwarded_total");
        for (int waited = 0; fwd < 1 && waited < 10000; waited += 100) {
            usleep(100000);
            fwd = metric(ports[i], "rollcall_level_urgent_forwarded_total");
        }
        if (fwd < 1)
            print_message("%s relay forwarded %.0f urgent reports\n", levels[i], fwd);
        assert_true(fwd >= 1);
    }
    for (int i = 0; i < 3; i++)
        stop_pid(&relays[i], SIGTERM);
    assert_true(found);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_files_early_when_complete),
        cmocka_unit_test(test_deadline_and_revision),
        cmocka_unit_test(test_reminders),
        cmocka_unit_test(test_escalation_rules),
        cmocka_unit_test(test_manual_signoff),
        cmocka_unit_test(test_version_conflict),
        cmocka_unit_test(test_restart),
        cmocka_unit_test(test_urgent_four_hops),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
