/* Acceptance tests of rollcall-village against the real development broker
 * and PostgreSQL (ROLLCALL_PG_DSN, ROLLCALL_KAFKA_BROKERS,
 * ROLLCALL_BROKER_CONTROL; skipped without them).  The test runs its own
 * intake on an ephemeral port over a scratch database (migrations, the
 * sample registry, fresh tokens), so the stack's intake is left alone.
 *
 * What reached Kafka is checked independently of our codec: for the
 * partitions that grew during a test, kcat fetches each new message and
 * `protoc --decode=rollcall.Report proto/rollcall.proto` decodes it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include "rc_httpc.h"
#include "rc_report.h"
#include "rc_time.h"

#define VILLAGE_PARTS 32
#define URGENT_PARTS 4
#define MAX_MSGS 256

typedef struct {
    char topic[32];
    int partition;
    long long offset;
    char key[32];
    char *text;                 /* protoc's decoding */
} kmsg;

typedef struct {
    int64_t village[VILLAGE_PARTS];
    int64_t urgent[URGENT_PARTS];
} marks;

static struct {
    bool ready;
    char build[256];
    char admin_dsn[512], dsn[600], dbname[64];
    char brokers[256], control[256];
    char base[64];
    char log[256];
    pid_t pid;
    char tok_a[64], tok_b[64], tok_c[64], tok_town[64];
    rd_kafka_t *rk;
    char today[11];
    char now[40];
} fx;

/* ------------------------------------------------------------- helpers */

static int run_capture(const char *cmd, char *out, size_t outlen)
{
    FILE *p = popen(cmd, "r");
    size_t n = 0;
    int st;

    if (!p)
        return -1;
    if (out) {
        n = fread(out, 1, outlen - 1, p);
        out[n] = '\0';
    } else {
        char sink[4096];
        while (fread(sink, 1, sizeof sink, p) > 0)
            ;
    }
    st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int pg_exec(const char *dsn, const char *sql)
{
    PGconn *c = PQconnectdb(dsn);
    PGresult *r;
    int ok;

    if (PQstatus(c) != CONNECTION_OK) {
        print_message("pg: %s", PQerrorMessage(c));
        PQfinish(c);
        return -1;
    }
    r = PQexec(c, sql);
    ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok)
        print_message("pg: %s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return ok ? 0 : -1;
}

static int http(const char *method, const char *path, const char *token, const char *ctype,
                const void *body, size_t len, rc_httpc_response *resp)
{
    char url[256], auth[128], err[256];
    rc_httpc_request q = {0};

    snprintf(url, sizeof url, "%s%s", fx.base, path);
    q.method = method;
    q.url = url;
    q.content_type = ctype;
    q.body = body;
    q.body_len = len;
    q.timeout_ms = 15000;
    if (token) {
        snprintf(auth, sizeof auth, "Bearer %s", token);
        q.authorization = auth;
    }
    if (rc_httpc_do(&q, resp, err, sizeof err) < 0)
        print_message("http: %s\n", err);
    return resp->status;
}

static int post_json(const char *path, const char *token, const char *json, rc_httpc_response *resp)
{
    return http("POST", path, token, "application/json", json, strlen(json), resp);
}

static int control(const char *what)
{
    char url[300];
    rc_httpc_request q = {.method = "POST", .url = url, .timeout_ms = 5000};
    rc_httpc_response r = {0};
    int st;

    snprintf(url, sizeof url, "%s%s%s", strncmp(fx.control, "http", 4) ? "http://" : "", fx.control, what);
    rc_httpc_do(&q, &r, NULL, 0);
    st = r.status;
    rc_httpc_response_clear(&r);
    return st;
}

/* A report as JSON; `more` (may be "") adds members. */
static void report(char *buf, size_t len, const char *id, const char *unit, const char *kind,
                   const char *more)
{
    int n = snprintf(buf, len, "{");
    if (id)
        n += snprintf(buf + n, len - (size_t)n, "\"report_id\":\"%s\",", id);
    snprintf(buf + n, len - (size_t)n,
             "\"unit_code\":\"%s\",\"period\":\"%s\",\"kind\":\"%s\",\"submitter\":\"test\"%s%s}", unit,
             fx.today, kind, *more ? "," : "", more);
}

static void urgent_more(char *buf, size_t len)
{
    snprintf(buf, len,
             "\"indicators\":{\"suspected\":2},\"incident\":{\"type\":\"fever_cluster\",\"severity\":3,"
             "\"description\":\"two fevers\",\"occurred_at\":\"%s\"}",
             fx.now);
}

static int64_t json_version(const char *body)
{
    const char *v = strstr(body, "\"version\":");
    return v ? strtoll(v + 10, NULL, 10) : -1;
}

/* ------------------------------------------------------- Kafka, checked */

static void snapshot(marks *m)
{
    int64_t lo, hi;
    for (int p = 0; p < VILLAGE_PARTS; p++) {
        assert_int_equal(rd_kafka_query_watermark_offsets(fx.rk, "reports.village", p, &lo, &hi, 5000), 0);
        m->village[p] = hi;
    }
    for (int p = 0; p < URGENT_PARTS; p++) {
        assert_int_equal(rd_kafka_query_watermark_offsets(fx.rk, "reports.urgent", p, &lo, &hi, 5000), 0);
        m->urgent[p] = hi;
    }
}

static size_t fetch_topic(const char *topic, int nparts, const int64_t *before, kmsg *out,
                          size_t n, size_t max)
{
    for (int p = 0; p < nparts; p++) {
        int64_t lo, hi;
        char cmd[1024], list[16384], *line, *save = NULL;
        assert_int_equal(rd_kafka_query_watermark_offsets(fx.rk, topic, p, &lo, &hi, 5000), 0);
        if (hi <= before[p])
            continue;
        snprintf(cmd, sizeof cmd, "kcat -C -q -b '%s' -t %s -p %d -o %lld -c %lld -e -f '%%o %%k\\n'",
                 fx.brokers, topic, p, (long long)before[p], (long long)(hi - before[p]));
        assert_int_equal(run_capture(cmd, list, sizeof list), 0);
        for (line = strtok_r(list, "\n", &save); line && n < max; line = strtok_r(NULL, "\n", &save)) {
            kmsg *m = &out[n];
            char text[8192];
            if (sscanf(line, "%lld %31s", &m->offset, m->key) != 2)
                continue;
            snprintf(m->topic, sizeof m->topic, "%s", topic);
            m->partition = p;
            /* The independent decoder: protoc and the .proto, not our codec. */
            snprintf(cmd, sizeof cmd,
                     "kcat -C -q -b '%s' -t %s -p %d -o %lld -c 1 -e -f '%%s' | "
                     "protoc --decode=rollcall.Report proto/rollcall.proto",
                     fx.brokers, topic, p, m->offset);
            assert_int_equal(run_capture(cmd, text, sizeof text), 0);
            m->text = strdup(text);
            n++;
        }
    }
    return n;
}

static size_t fetch_new(const marks *m, kmsg *out)
{
    size_t n = fetch_topic("reports.village", VILLAGE_PARTS, m->village, out, 0, MAX_MSGS);
    return fetch_topic("reports.urgent", URGENT_PARTS, m->urgent, out, n, MAX_MSGS);
}

static void free_msgs(kmsg *m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(m[i].text);
}

/* Messages on `topic` carrying report_id `id`; *last points at the last. */
static int count_id(const kmsg *m, size_t n, const char *topic, const char *id, const kmsg **last)
{
    char needle[80];
    int c = 0;
    snprintf(needle, sizeof needle, "report_id: \"%s\"", id);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(m[i].topic, topic) == 0 && strstr(m[i].text, needle)) {
            c++;
            if (last)
                *last = &m[i];
        }
    }
    return c;
}

/* ------------------------------------------------------ the service */

static int wait_healthy(int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 100) {
        rc_httpc_response r = {0};
        int st = http("GET", "/healthz", NULL, NULL, NULL, 0, &r);
        rc_httpc_response_clear(&r);
        if (st == 200)
            return 0;
        usleep(100 * 1000);
    }
    return -1;
}

static int start_service(void)
{
    char arg_dsn[700], arg_brokers[300];
    FILE *f;

    /* The intake's own role when the stack has one (var/stack.env). */
    const char *role = getenv("ROLLCALL_PG_DSN_INTAKE");
    if (role && *role)
        snprintf(arg_dsn, sizeof arg_dsn, "--pg_dsn=%s dbname=%s", role, fx.dbname);
    else
        snprintf(arg_dsn, sizeof arg_dsn, "--pg_dsn=%s", fx.dsn);
    snprintf(arg_brokers, sizeof arg_brokers, "--kafka_brokers=%s", fx.brokers);
    fx.pid = fork();
    if (fx.pid == 0) {
        char bin[300];
        FILE *log = fopen(fx.log, "w");
        /* Never outlive the test, even if it crashes. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (log) {
            dup2(fileno(log), 1);
            dup2(fileno(log), 2);
        }
        snprintf(bin, sizeof bin, "%s/rollcall-village", fx.build);
        execl(bin, bin, "--http_port=0", arg_dsn, arg_brokers, "--produce_timeout=2s",
              "--max_batch_body=262144", "--max_batch_items=500", "--token_reload=0",
              "--retry_after=2", "--log_level=info", "--registry_reload=1s",
              "--request_deadline=4s", "--max_connections_per_address=40", (char *)NULL);
        _exit(127);
    }
    /* The port is in the start-up line: "... village intake listening ... port=N". */
    for (int i = 0; i < 100; i++) {
        char line[1024];
        usleep(100 * 1000);
        if (!(f = fopen(fx.log, "r")))
            continue;
        while (fgets(line, sizeof line, f)) {
            char *p = strstr(line, "village intake listening");
            if (p && (p = strstr(p, " port="))) {
                snprintf(fx.base, sizeof fx.base, "http://127.0.0.1:%d", atoi(p + 6));
                fclose(f);
                return wait_healthy(10000);
            }
        }
        fclose(f);
        if (waitpid(fx.pid, NULL, WNOHANG) == fx.pid) {
            fx.pid = 0;
            return -1;
        }
    }
    return -1;
}

static void stop_service(void)
{
    if (fx.pid > 0) {
        kill(fx.pid, SIGTERM);
        waitpid(fx.pid, NULL, 0);
        fx.pid = 0;
    }
}

/* Issues a token with the real CLI; returns 0 with the token in out. */
static int issue(const char *unit, char *out, size_t len)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "'%s/rollcall' token issue %s --dsn '%s' 2>/dev/null", fx.build, unit, fx.dsn);
    if (run_capture(cmd, out, len) != 0)
        return -1;
    out[strcspn(out, "\n")] = '\0';
    return strlen(out) == 43 ? 0 : -1;
}

static int group_setup(void **state)
{
    const char *dsn = getenv("ROLLCALL_PG_DSN"), *brokers = getenv("ROLLCALL_KAFKA_BROKERS");
    const char *ctl = getenv("ROLLCALL_BROKER_CONTROL"), *build = getenv("ROLLCALL_BUILD");
    char sql[256], cmd[2048], err[512];
    rd_kafka_conf_t *conf;

    if (!dsn || !*dsn || !brokers || !*brokers || !ctl || !*ctl) {
        print_message("ROLLCALL_PG_DSN, ROLLCALL_KAFKA_BROKERS or ROLLCALL_BROKER_CONTROL not set: "
                      "village acceptance tests skipped\n");
        return 0;
    }
    snprintf(fx.build, sizeof fx.build, "%s", build && *build ? build : "build");
    snprintf(fx.admin_dsn, sizeof fx.admin_dsn, "%s", dsn);
    snprintf(fx.brokers, sizeof fx.brokers, "%s", brokers);
    snprintf(fx.control, sizeof fx.control, "%s", ctl);
    snprintf(fx.dbname, sizeof fx.dbname, "rollcall_village_test_%d", (int)getpid());
    /* libpq: the last dbname given wins. */
    snprintf(fx.dsn, sizeof fx.dsn, "%s dbname=%s", dsn, fx.dbname);
    /* The intake's log: beside the stack's logs when there are any. */
    if (access("var/log", W_OK) == 0)
        snprintf(fx.log, sizeof fx.log, "var/log/test_village.log");
    else
        snprintf(fx.log, sizeof fx.log, "/tmp/test_village_%d.log", (int)getpid());
    rc_period_format(rc_period_of(rc_now_us()), fx.today);
    rc_time_format_rfc3339(rc_now_us() - 60 * 1000000LL, fx.now);

    snprintf(sql, sizeof sql, "CREATE DATABASE %s", fx.dbname);
    if (pg_exec(dsn, sql) < 0)
        return -1;
    snprintf(cmd, sizeof cmd,
             "('%s/rollcall' migrate --dsn '%s' && '%s/rollcall' registry import --csv tests/data/registry-130102.csv --dsn '%s') 2>&1",
             fx.build, fx.dsn, fx.build, fx.dsn);
    if (run_capture(cmd, NULL, 0) != 0) {
        print_message("migrate/registry import failed: %s\n", cmd);
        return -1;
    }
    if (issue("130102001001", fx.tok_a, sizeof fx.tok_a) < 0 || issue("130102001002", fx.tok_b, sizeof fx.tok_b) < 0
        || issue("130102002010", fx.tok_c, sizeof fx.tok_c) < 0
        || issue("130102001", fx.tok_town, sizeof fx.tok_town) < 0) {
        print_message("rollcall token issue failed\n");
        return -1;
    }
    conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof err);
    /* Quiet while test_broker_down has the broker down on purpose. */
    rd_kafka_conf_set(conf, "log_level", "2", err, sizeof err);
    if (!(fx.rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err))) {
        print_message("kafka: %s\n", err);
        return -1;
    }
    if (start_service() < 0) {
        print_message("rollcall-village did not start; its log: %s\n", fx.log);
        return -1;
    }
    fx.ready = true;
    return 0;
}

static int group_teardown(void **state)
{
    char sql[256];

    stop_service();
    if (fx.rk)
        rd_kafka_destroy(fx.rk);
    if (fx.dbname[0] && getenv("ROLLCALL_PG_DSN")) {
        snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", fx.dbname);
        pg_exec(getenv("ROLLCALL_PG_DSN"), sql);
    }
    return 0;
}

#define NEED_STACK() do { if (!fx.ready) skip(); } while (0)

/* --------------------------------------------------------------- tests */

/* A valid DAILY, ZERO and URGENT report each arrive exactly once, as the
 * .proto describes them, with the version the client was told. */
static void test_valid_reports_arrive_once(void **state)
{
    char id[3][37], body[2048], more[512];
    int64_t version[3];
    const char *kinds[3] = {"daily", "zero", "urgent"};
    const char *proto_kinds[3] = {"kind: KIND_DAILY", "kind: KIND_ZERO", "kind: KIND_URGENT"};
    kmsg msgs[MAX_MSGS];
    marks m;
    size_t n;

    NEED_STACK();
    snapshot(&m);
    for (int i = 0; i < 3; i++) {
        rc_httpc_response r = {0};
        rc_uuid_new(id[i]);
        if (i == 0)
            snprintf(more, sizeof more, "\"indicators\":{\"households_visited\":40,\"confirmed\":1},"
                                        "\"extra\":{\"hebei_check\":7},\"zone_status\":\"control\"");
        else if (i == 1)
            snprintf(more, sizeof more, "\"zone_status\":\"normal\"");
        else
            urgent_more(more, sizeof more);
        report(body, sizeof body, id[i], "130102001001", kinds[i], more);
        assert_int_equal(post_json("/v1/reports", fx.tok_a, body, &r), 202);
        assert_non_null(strstr(r.body, id[i]));
        version[i] = json_version(r.body);
        assert_true(version[i] > 1700000000000000LL);
        rc_httpc_response_clear(&r);
    }
    assert_true(version[0] < version[1] && version[1] < version[2]);

    n = fetch_new(&m, msgs);
    for (int i = 0; i < 3; i++) {
        const kmsg *k = NULL;
        char want[64];
        assert_int_equal(count_id(msgs, n, "reports.village", id[i], &k), 1);
        assert_non_null(strstr(k->text, proto_kinds[i]));
        assert_non_null(strstr(k->text, "level: LEVEL_VILLAGE"));
        assert_non_null(strstr(k->text, "unit_code: \"130102001001\""));
        snprintf(want, sizeof want, "version: %lld\n", (long long)version[i]);
        assert_non_null(strstr(k->text, want));
        snprintf(want, sizeof want, "received_at: %lld\n", (long long)version[i]);
        assert_non_null(strstr(k->text, want));
        assert_string_equal(k->key, "130102001");       /* keyed by the township */
    }
    {
        const kmsg *k = NULL;
        assert_int_equal(count_id(msgs, n, "reports.village", id[0], &k), 1);
        assert_non_null(strstr(k->text, "confirmed: 1"));
        assert_non_null(strstr(k->text, "key: \"hebei_check\""));
        assert_non_null(strstr(k->text, "zone_status: ZONE_STATUS_CONTROL"));
        /* URGENT also took the fast path, with its first hop: exactly one
         * message carries the village hop alone (the level services, when
         * they run, forward it with their own hops appended). */
        int from_intake = 0;
        for (size_t i = 0; i < n; i++) {
            if (strcmp(msgs[i].topic, "reports.urgent") != 0 || !strstr(msgs[i].text, id[2]))
                continue;
            if (!strstr(msgs[i].text, "LEVEL_TOWNSHIP")) {
                from_intake++;
                k = &msgs[i];
            }
        }
        assert_int_equal(from_intake, 1);
        assert_non_null(strstr(k->text, "type: \"fever_cluster\""));
        assert_non_null(strstr(k->text, "hops {\n    level: LEVEL_VILLAGE\n    unit_code: \"130102001001\""));
        assert_int_equal(count_id(msgs, n, "reports.urgent", id[0], NULL), 0);
        assert_int_equal(count_id(msgs, n, "reports.urgent", id[1], NULL), 0);
    }
    free_msgs(msgs, n);
}

/* The same report as application/x-protobuf. */
static void test_protobuf_body(void **state)
{
    char id[37], body[1024];
    rc_errors errs = {0};
    Rollcall__Report *r;
    uint8_t *pb;
    size_t len;
    rc_httpc_response resp = {0};
    kmsg msgs[MAX_MSGS];
    marks m;
    size_t n;

    NEED_STACK();
    snapshot(&m);
    rc_uuid_new(id);
    report(body, sizeof body, id, "130102001002", "daily", "\"indicators\":{\"vaccinated\":33}");
    r = rc_report_from_json_text(body, strlen(body), &errs);
    assert_non_null(r);
    r->level = ROLLCALL__LEVEL__LEVEL_VILLAGE;
    pb = rc_report_pack(r, &len);
    rc_report_free(r);
    assert_int_equal(http("POST", "/v1/reports", fx.tok_b, "application/x-protobuf", pb, len, &resp), 202);
    free(pb);
    rc_httpc_response_clear(&resp);
    n = fetch_new(&m, msgs);
    {
        const kmsg *k = NULL;
        assert_int_equal(count_id(msgs, n, "reports.village", id, &k), 1);
        assert_non_null(strstr(k->text, "vaccinated: 33"));
    }
    free_msgs(msgs, n);
}

/* What PostgreSQL would refuse further down is refused here, so a 202
 * means "will be counted": a protobuf submitter, note or extra name that is
 * not UTF-8, a time PostgreSQL cannot store — 400 naming the field, nothing
 * produced. */
static void test_unstorable_protobuf(void **state)
{
    static const struct { const char *what, *field; } cases[] = {
        {"submitter", "submitter"}, {"note", "note"}, {"extra", "extra."},
        {"submitted_at", "submitted_at"}, {"long_submitter", "submitter"},
    };
    char body[1024];
    rc_errors errs = {0};
    kmsg msgs[MAX_MSGS];
    marks m;

    NEED_STACK();
    snapshot(&m);
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        char id[37], bad[8] = "a\xff\xfe" "b", longs[400];
        Rollcall__Report__ExtraEntry e = ROLLCALL__REPORT__EXTRA_ENTRY__INIT, *ep = &e;
        rc_httpc_response resp = {0};
        size_t len;

        rc_uuid_new(id);
        report(body, sizeof body, id, "130102001002", "daily", "\"indicators\":{\"vaccinated\":3}");
        Rollcall__Report *r = rc_report_from_json_text(body, strlen(body), &errs);
        assert_non_null(r);
        r->level = ROLLCALL__LEVEL__LEVEL_VILLAGE;
        char *keep_sub = r->submitter, *keep_note = r->note;
        if (strcmp(cases[c].what, "submitter") == 0) {
            r->submitter = bad;
        } else if (strcmp(cases[c].what, "note") == 0) {
            r->note = bad;
        } else if (strcmp(cases[c].what, "extra") == 0) {
            e.key = bad;
            e.value = 1;
            r->n_extra = 1;
            r->extra = &ep;
        } else if (strcmp(cases[c].what, "submitted_at") == 0) {
            r->submitted_at = INT64_MAX;
        } else {
            memset(longs, 'x', sizeof longs - 1);
            longs[sizeof longs - 1] = '\0';
            r->submitter = longs;
        }
        uint8_t *pb = rc_report_pack(r, &len);
        r->submitter = keep_sub;
        r->note = keep_note;
        r->n_extra = 0;
        r->extra = NULL;
        rc_report_free(r);
        assert_int_equal(http("POST", "/v1/reports", fx.tok_b, "application/x-protobuf", pb, len,
                              &resp), 400);
        free(pb);
        if (!strstr(resp.body, cases[c].field))
            print_message("case %s: %s\n", cases[c].what, resp.body);
        assert_non_null(strstr(resp.body, cases[c].field));
        rc_httpc_response_clear(&resp);
    }
    size_t n = fetch_new(&m, msgs);
    for (size_t i = 0; i < n; i++)
        assert_null(strstr(msgs[i].text, "130102001002"));
    free_msgs(msgs, n);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The registry and the tokens change under the running intake: a village
 * imported (rollcall registry import) and a token issued for it while it
 * runs.  The token is usable within a second (NOTIFY), the village is known
 * within registry_reload (1 s here) plus its load, without a restart. */
static void test_registry_and_token_mid_run(void **state)
{
    char cmd[2048], tok[64], body[1024], csv[256];
    rc_httpc_response r = {0};
    const char *unit = "130102001888";
    int64_t t0, token_ms = -1, known_ms = -1;
    int st = 0;

    NEED_STACK();
    snprintf(csv, sizeof csv, "/tmp/test_village_registry_%d.csv", (int)getpid());
    snprintf(cmd, sizeof cmd, "cp tests/data/registry-130102.csv %s && echo '%s,New village,130102001,village' >> %s "
             "&& '%s/rollcall' registry import --csv %s --dsn '%s' >/dev/null 2>&1",
             csv, unit, csv, fx.build, csv, fx.dsn);
    assert_int_equal(system(cmd), 0);
    unlink(csv);
    t0 = mono_ms();
    assert_int_equal(issue(unit, tok, sizeof tok), 0);
    int64_t issued = mono_ms();
    while (mono_ms() - t0 < 10000) {
        report(body, sizeof body, NULL, unit, "daily", "\"indicators\":{\"confirmed\":1}");
        st = post_json("/v1/reports", tok, body, &r);
        rc_httpc_response_clear(&r);
        if (st != 401 && token_ms < 0)
            token_ms = mono_ms() - issued;
        if (st == 202) {
            known_ms = mono_ms() - t0;
            break;
        }
        usleep(50 * 1000);
    }
    print_message("token usable after %lld ms, new village known after %lld ms (last status %d)\n",
                  (long long)token_ms, (long long)known_ms, st);
    assert_int_equal(st, 202);
    assert_true(token_ms >= 0 && token_ms <= 1000);
    assert_true(known_ms >= 0 && known_ms <= 5000);
}

/* A raw connection to the intake; -1 on failure. */
static int raw_connect(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    int port = atoi(strrchr(fx.base, ':') + 1);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* True once the server has closed fd (EOF or reset), without blocking. */
static bool closed_by_server(int fd)
{
    char b[256];
    ssize_t n = recv(fd, b, sizeof b, MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* Hostile clients cost little: a client sending its request a byte at a
 * time (each byte restarts evhttp's timeout) is cut at request_deadline (4 s
 * here), while an honest request goes through at once; one host opening
 * more than max_connections_per_address (40 here) has the extra ones cut. */
static void test_slowloris_and_per_address_cap(void **state)
{
    static const char head[] = "POST /v1/reports HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n";
    rc_httpc_response r = {0};
    int fds[60];

    NEED_STACK();
    int slow = raw_connect();
    assert_true(slow >= 0);
    int64_t t0 = mono_ms(), cut_ms = -1;
    size_t sent = 0;
    while (mono_ms() - t0 < 10000) {
        if (sent < sizeof head - 1 && send(slow, head + sent, 1, MSG_NOSIGNAL) == 1)
            sent++;
        if (closed_by_server(slow)) {
            cut_ms = mono_ms() - t0;
            break;
        }
        if (sent == 5)  /* meanwhile an honest client is served at once */
            assert_int_equal(http("GET", "/healthz", NULL, NULL, NULL, 0, &r), 200);
        rc_httpc_response_clear(&r);
        usleep(500 * 1000);
    }
    close(slow);
    print_message("slow client cut after %lld ms\n", (long long)cut_ms);
    assert_true(cut_ms >= 3500 && cut_ms <= 6000);

    for (int i = 0; i < 60; i++)
        fds[i] = raw_connect();
    usleep(600 * 1000);
    int cut = 0;
    for (int i = 0; i < 60; i++) {
        if (fds[i] < 0 || closed_by_server(fds[i]))
            cut++;
        if (fds[i] >= 0)
            close(fds[i]);
    }
    print_message("%d of 60 connections from one host cut (cap 40)\n", cut);
    assert_true(cut >= 20);
    usleep(300 * 1000);
    assert_int_equal(http("GET", "/healthz", NULL, NULL, NULL, 0, &r), 200);
    rc_httpc_response_clear(&r);
}

/* Sends `head` alone on a fresh connection and reads the answer for up to
 * 3 s; returns its status (0: none) with the text in out. */
static int head_only(const char *head, char *out, size_t outlen)
{
    int fd = raw_connect(), status = 0;
    size_t got = 0;
    int64_t t0 = mono_ms();

    out[0] = '\0';
    if (fd < 0)
        return -1;
    if (send(fd, head, strlen(head), MSG_NOSIGNAL) != (ssize_t)strlen(head)) {
        close(fd);
        return -1;
    }
    while (mono_ms() - t0 < 3000 && got < outlen - 1) {
        ssize_t n = recv(fd, out + got, outlen - 1 - got, MSG_DONTWAIT);
        if (n > 0) {
            got += (size_t)n;
            out[got] = '\0';
            if (strstr(out, "\r\n\r\n") && strchr(strstr(out, "\r\n\r\n"), '}'))
                break;
        } else if (n == 0) {
            break;
        } else {
            usleep(20 * 1000);
        }
    }
    close(fd);
    if (strncmp(out, "HTTP/1.1 ", 9) == 0)
        status = atoi(out + 9);
    return status;
}

/* A hostile client is refused on its head, before the intake reads a byte
 * of its body: the heads below announce bodies that are never sent, and an
 * intake that waited for them would answer nothing within 3 s. */
static void test_refused_before_body(void **state)
{
    char head[1024], out[4096];
    rc_httpc_response r = {0};

    NEED_STACK();
    /* No token, 8 MB announced: 401 at once. */
    snprintf(head, sizeof head, "POST /v1/reports:batch HTTP/1.1\r\nHost: x\r\n"
             "Content-Type: application/json\r\nContent-Length: 8388608\r\n\r\n");
    assert_int_equal(head_only(head, out, sizeof out), 401);
    assert_non_null(strstr(out, "\"error\":\"unauthorized\""));
    /* A bad token, the route spelled with a percent-escape (evhttp decodes
     * it to find the route, and so does the check). */
    snprintf(head, sizeof head, "POST /v1/report%%73:batch HTTP/1.1\r\nHost: x\r\n"
             "Authorization: Bearer nope\r\nContent-Length: 100000\r\n\r\n");
    assert_int_equal(head_only(head, out, sizeof out), 401);
    assert_non_null(strstr(out, "unknown or revoked token"));
    /* A valid token, over each route's own cap: 413 naming the cap. */
    snprintf(head, sizeof head, "POST /v1/reports HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
             "Content-Type: application/json\r\nContent-Length: 70000\r\n\r\n", fx.tok_a);
    assert_int_equal(head_only(head, out, sizeof out), 413);
    assert_non_null(strstr(out, "\"limit\":65536"));
    snprintf(head, sizeof head, "POST /v1/reports:batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
             "Content-Type: application/json\r\nContent-Length: 300000\r\n\r\n", fx.tok_town);
    assert_int_equal(head_only(head, out, sizeof out), 413);
    assert_non_null(strstr(out, "\"limit\":262144"));
    /* A body where none is taken. */
    snprintf(head, sizeof head, "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n");
    assert_int_equal(head_only(head, out, sizeof out), 413);
    /* Under the cap with a valid token, the intake waits for the body. */
    snprintf(head, sizeof head, "POST /v1/reports HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
             "Content-Type: application/json\r\nContent-Length: 60000\r\n\r\n", fx.tok_a);
    assert_int_equal(head_only(head, out, sizeof out), 0);
    /* A client cannot forge the refusal the check hands the handler: a
     * valid report carrying the header is accepted. */
    {
        char body[1024], id[37], req[2048];
        rc_uuid_new(id);
        report(body, sizeof body, id, "130102001001", "zero", "");
        snprintf(req, sizeof req, "POST /v1/reports HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                 "X-Rollcall-Refused: 0000000000000000 401 1 0\r\nContent-Type: application/json\r\n"
                 "Content-Length: %zu\r\n\r\n%s", fx.tok_a, strlen(body), body);
        assert_int_equal(head_only(req, out, sizeof out), 202);
    }
    /* Keep-alive: an honest request, then a hostile one on the same
     * connection, is refused on its head too. */
    {
        char body[1024], id[37], req[4096];
        int fd = raw_connect();
        size_t got = 0;
        int64_t t0 = mono_ms();
        rc_uuid_new(id);
        report(body, sizeof body, id, "130102001001", "zero", "");
        snprintf(req, sizeof req, "POST /v1/reports HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                 "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                 fx.tok_a, strlen(body), body);
        out[0] = '\0';
        assert_true(fd >= 0);
        assert_true(send(fd, req, strlen(req), MSG_NOSIGNAL) > 0);
        while (mono_ms() - t0 < 3000 && !strstr(out, "\"version\"")) {
            ssize_t n = recv(fd, out + got, sizeof out - 1 - got, MSG_DONTWAIT);
            if (n > 0)
                out[got += (size_t)n] = '\0';
            else
                usleep(20 * 1000);
        }
        assert_non_null(strstr(out, "HTTP/1.1 202"));
        snprintf(req, sizeof req, "POST /v1/reports:batch HTTP/1.1\r\nHost: x\r\nContent-Length: 8000000\r\n\r\n");
        assert_true(send(fd, req, strlen(req), MSG_NOSIGNAL) > 0);
        got = 0;
        out[0] = '\0';
        t0 = mono_ms();
        while (mono_ms() - t0 < 3000 && !strstr(out, "}")) {
            ssize_t n = recv(fd, out + got, sizeof out - 1 - got, MSG_DONTWAIT);
            if (n > 0)
                out[got += (size_t)n] = '\0';
            else if (n == 0)
                break;
            else
                usleep(20 * 1000);
        }
        close(fd);
        assert_non_null(strstr(out, "HTTP/1.1 401"));
    }
    assert_int_equal(http("GET", "/healthz", NULL, NULL, NULL, 0, &r), 200);
    rc_httpc_response_clear(&r);
}

static size_t put_varint(uint8_t *p, size_t v)
{
    size_t n = 0;
    for (; v > 0x7f; v >>= 7)
        p[n++] = (uint8_t)(v | 0x80);
    p[n++] = (uint8_t)v;
    return n;
}

/* Appends to a length-delimited stream a zero report of unit under id,
 * followed by `pad` bytes of field 1000, which the schema does not have
 * (none when pad is 0).  Returns the new length. */
static size_t put_item(uint8_t *stream, size_t slen, const char *id, const char *unit, size_t pad)
{
    char js[1024];
    rc_errors errs = {0};
    Rollcall__Report *rep;
    uint8_t *pb, hdr[16];
    size_t len, hl = 0;

    report(js, sizeof js, id, unit, "zero", "");
    rep = rc_report_from_json_text(js, strlen(js), &errs);
    assert_non_null(rep);
    pb = rc_report_pack(rep, &len);
    rc_report_free(rep);
    if (pad) {
        hl = put_varint(hdr, 1000 << 3 | 2);
        hl += put_varint(hdr + hl, pad);
    }
    slen += put_varint(stream + slen, len + hl + pad);
    memcpy(stream + slen, pb, len);
    slen += len;
    memcpy(stream + slen, hdr, hl);
    slen += hl;
    memset(stream + slen, 'x', pad);
    free(pb);
    return slen + pad;
}

/* A batch item over the single report's cap gets its own 413 (never a 503
 * that a client would retry for ever), and the other items go through.  A
 * protobuf item carrying a field the schema does not have is refused: it
 * would travel to Kafka and the archive unchecked. */
static void test_batch_item_too_large(void **state)
{
    char ids[3][37];
    uint8_t *stream = malloc(200000);
    size_t slen = 0;
    rc_httpc_response r = {0};

    NEED_STACK();
    for (int i = 0; i < 3; i++)
        rc_uuid_new(ids[i]);
    slen = put_item(stream, slen, ids[0], "130102001011", 0);
    slen = put_item(stream, slen, ids[1], "130102001011", 100000);
    slen = put_item(stream, slen, ids[2], "130102001012", 10);
    assert_int_equal(http("POST", "/v1/reports:batch", fx.tok_town, "application/x-protobuf", stream,
                          slen, &r), 207);
    print_message("%s\n", r.body);
    assert_non_null(strstr(r.body, "{\"index\":0,\"status\":202,"));
    assert_non_null(strstr(r.body, "{\"index\":1,\"status\":413,"));
    assert_non_null(strstr(r.body, "{\"index\":2,\"status\":400,"));
    assert_non_null(strstr(r.body, "unknown field number 1000"));
    rc_httpc_response_clear(&r);
    free(stream);
}

/* Every kind of invalid input: 400 naming the field, nothing produced. */
static void test_invalid_reports(void **state)
{
    struct { const char *unit, *kind, *more, *field; const char *period; } cases[] = {
        {"130102001999", "daily", "", "unit_code", NULL},                 /* unknown unit */
        {"130102001", "daily", "", "unit_code", NULL},                    /* not a village */
        {"130102001001", "daily", "\"level\":\"township\"", "level", NULL},
        {"130102001001", "daily", "", "period", "2099-01-01"},           /* future */
        {"130102001001", "daily", "", "period", "2001-01-01"},           /* too old */
        {"130102001001", "daily", "", "period", "2021-02-30"},           /* not a date */
        {"130102001001", "daily", "\"indicators\":{\"confirmed\":-1}", "indicators.confirmed", NULL},
        {"130102001001", "daily", "\"indicators\":{\"persons_screened\":999999999999}",
         "indicators.persons_screened", NULL},
        {"130102001001", "daily", "\"extra\":{\"Bad-Name\":1}", "extra.Bad-Name", NULL},
        {"130102001001", "zero", "\"indicators\":{\"suspected\":1}", "indicators.suspected", NULL},
        {"130102001001", "urgent", "", "incident", NULL},               /* urgent without incident */
        {"130102001001", "daily", "\"incident\":{\"type\":\"x\",\"severity\":1}", "incident", NULL},
        {"130102001001", "urgent", "\"incident\":{\"type\":\"x\",\"severity\":9,\"occurred_at\":\"2020-01-01T00:00:00Z\"}",
         "incident.severity", NULL},
        {"130102001001", "daily", "\"version\":5", "version", NULL},
        {"130102001001", "daily", "\"received_at\":\"2021-08-01T09:30:00+08:00\"", "received_at", NULL},
        {"130102001001", "daily", "\"bogus\":1", "bogus", NULL},
        {"130102001001", "daily", "\"indicators\":{\"confirmed\":\"many\"}", "indicators.confirmed", NULL},
        {"130102001001", "lockdown", "", "kind", NULL},
    };
    char ids[sizeof cases / sizeof cases[0]][37];
    kmsg msgs[MAX_MSGS];
    marks m;
    size_t n;

    NEED_STACK();
    snapshot(&m);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[2048], want[128];
        rc_httpc_response r = {0};
        rc_uuid_new(ids[i]);
        report(body, sizeof body, ids[i], cases[i].unit, cases[i].kind, cases[i].more);
        if (cases[i].period) {
            char *p = strstr(body, fx.today);
            memcpy(p, cases[i].period, 10);
        }
        assert_int_equal(post_json("/v1/reports", fx.tok_town, body, &r), 400);
        snprintf(want, sizeof want, "\"field\":\"%s\"", cases[i].field);
        if (!strstr(r.body, want))
            fail_msg("case %zu: %s not named in %s", i, cases[i].field, r.body);
        assert_non_null(strstr(r.body, "\"reason\":"));
        rc_httpc_response_clear(&r);
    }
    /* Not JSON at all, and a missing period and kind. */
    {
        rc_httpc_response r = {0};
        assert_int_equal(post_json("/v1/reports", fx.tok_a, "{\"unit_code\":", &r), 400);
        assert_non_null(strstr(r.body, "\"field\":\"\""));
        rc_httpc_response_clear(&r);
        assert_int_equal(post_json("/v1/reports", fx.tok_a, "{\"unit_code\":\"130102001001\"}", &r), 400);
        assert_non_null(strstr(r.body, "\"field\":\"period\""));
        assert_non_null(strstr(r.body, "\"field\":\"kind\""));
        rc_httpc_response_clear(&r);
        assert_int_equal(http("POST", "/v1/reports", fx.tok_a, "application/x-protobuf", "\xff\xff\xff", 3, &r), 400);
        rc_httpc_response_clear(&r);
        assert_int_equal(http("POST", "/v1/reports", fx.tok_a, "text/plain", "x", 1, &r), 415);
        rc_httpc_response_clear(&r);
        assert_int_equal(http("GET", "/v1/reports", fx.tok_a, NULL, NULL, 0, &r), 405);
        rc_httpc_response_clear(&r);
    }
    n = fetch_new(&m, msgs);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_int_equal(count_id(msgs, n, "reports.village", ids[i], NULL), 0);
    free_msgs(msgs, n);
}

/* Missing, bad and revoked tokens get 401, another unit's token 403, and
 * none of them produces anything. */
static void test_auth(void **state)
{
    char ids[6][37], body[6][1024], cmd[1200];
    const char *bad_tokens[3] = {NULL, "not-a-token", "aXZzzwTMumusXSxyuxmRDldmQPuGmJHLbXgxBj05hbQ"};
    rc_httpc_response r = {0};
    kmsg msgs[MAX_MSGS];
    marks m;
    size_t n;
    int st = 0;

    NEED_STACK();
    snapshot(&m);
    for (int i = 0; i < 6; i++) {
        rc_uuid_new(ids[i]);
        report(body[i], sizeof body[i], ids[i], i == 4 ? "130102002010" : "130102001001", "daily", "");
    }
    for (int i = 0; i < 3; i++) {
        assert_int_equal(post_json("/v1/reports", bad_tokens[i], body[i], &r), 401);
        assert_non_null(strstr(r.body, "\"error\":\"unauthorized\""));
        assert_non_null(strstr(r.body, "\"reason\":"));
        rc_httpc_response_clear(&r);
    }
    /* Village B's token for village A; township 001's token for a village of 002. */
    assert_int_equal(post_json("/v1/reports", fx.tok_b, body[3], &r), 403);
    assert_non_null(strstr(r.body, "\"error\":\"forbidden\""));
    rc_httpc_response_clear(&r);
    assert_int_equal(post_json("/v1/reports", fx.tok_town, body[4], &r), 403);
    rc_httpc_response_clear(&r);

    /* Revocation reaches the running intake through NOTIFY, within moments. */
    report(body[5], sizeof body[5], NULL, "130102002010", "daily", "");
    assert_int_equal(post_json("/v1/reports", fx.tok_c, body[5], &r), 202);
    rc_httpc_response_clear(&r);
    snprintf(cmd, sizeof cmd, "'%s/rollcall' token revoke 130102002010 --dsn '%s'", fx.build, fx.dsn);
    assert_int_equal(run_capture(cmd, NULL, 0), 0);
    report(body[5], sizeof body[5], ids[5], "130102002010", "daily", "");
    for (int waited = 0; waited < 3000; waited += 50) {
        st = post_json("/v1/reports", fx.tok_c, body[5], &r);
        rc_httpc_response_clear(&r);
        if (st != 202)
            break;
        /* Accepted before the revocation arrived: use a fresh id for the next try. */
        rc_uuid_new(ids[5]);
        report(body[5], sizeof body[5], ids[5], "130102002010", "daily", "");
        usleep(50 * 1000);
    }
    assert_int_equal(st, 401);

    n = fetch_new(&m, msgs);
    for (int i = 0; i < 6; i++)
        assert_int_equal(count_id(msgs, n, "reports.village", ids[i], NULL), 0);
    free_msgs(msgs, n);
}

static void test_oversize(void **state)
{
    size_t big = 70 * 1024, huge = 300 * 1024;
    char *body = malloc(huge + 1);
    rc_httpc_response r = {0};

    NEED_STACK();
    memset(body, ' ', huge);
    body[0] = '{';
    body[huge - 1] = '}';
    /* Over max_body (64 KiB): our 413, with a JSON body. */
    assert_int_equal(http("POST", "/v1/reports", fx.tok_a, "application/json", body, big, &r), 413);
    assert_non_null(strstr(r.body, "\"error\":\"payload too large\""));
    assert_non_null(strstr(r.body, "\"limit\":65536"));
    rc_httpc_response_clear(&r);
    /* Over max_batch_body (256 KiB in this test): refused on its head, the
     * body read and dropped so that the client reads the 413. */
    assert_int_equal(http("POST", "/v1/reports:batch", fx.tok_a, "application/json", body, huge, &r), 413);
    assert_non_null(strstr(r.body, "\"limit\":262144"));
    rc_httpc_response_clear(&r);
    /* The service is still fine. */
    assert_int_equal(http("GET", "/healthz", NULL, NULL, NULL, 0, &r), 200);
    rc_httpc_response_clear(&r);
    free(body);
}

/* Puts a report into rollcall.report_archive as the rollup does: the
 * message the intake produced (version = received_at = `version`). */
static int archive_insert(const char *json, int64_t version)
{
    rc_errors errs = {0};
    Rollcall__Report *r = rc_report_from_json_text(json, strlen(json), &errs);
    uint8_t *pb;
    size_t len;
    char ver[24], lvl[4];
    PGconn *c;
    PGresult *res;
    int ok;

    if (!r)
        return -1;
    r->level = ROLLCALL__LEVEL__LEVEL_VILLAGE;
    r->version = r->received_at = version;
    pb = rc_report_pack(r, &len);
    snprintf(ver, sizeof ver, "%lld", (long long)version);
    snprintf(lvl, sizeof lvl, "%d", (int)r->level);
    {
        const char *vals[7] = {r->report_id, r->unit_code, lvl, fx.today, "0", ver, (const char *)pb};
        int lens[7] = {0, 0, 0, 0, 0, 0, (int)len}, fmts[7] = {0, 0, 0, 0, 0, 0, 1};
        c = PQconnectdb(fx.dsn);
        res = PQexecParams(c, "INSERT INTO rollcall.report_archive (report_id, unit_code, level, period, kind, "
                              "version, payload) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                           7, NULL, vals, lens, fmts, 0);
        ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        if (!ok)
            print_message("archive insert: %s", PQerrorMessage(c));
        PQclear(res);
        PQfinish(c);
    }
    free(pb);
    rc_report_free(r);
    return ok ? 0 : -1;
}

/* A report_id means one report, forever: beyond the idempotency window
 * (here: an id this intake never saw, as after a restart or 15 minutes and
 * 100,000 reports), the archive still knows it.  The same report again gets
 * its first answer and produces nothing; other content under it gets 409,
 * not a 202 the rollup would then ignore as a second delivery. */
static void test_report_id_forever(void **state)
{
    char id[37], body[1024], other[1024];
    rc_httpc_response r = {0};
    kmsg msgs[MAX_MSGS];
    marks m;
    size_t n;
    const int64_t archived_version = 1700000000123456;

    NEED_STACK();
    snapshot(&m);
    rc_uuid_new(id);
    report(body, sizeof body, id, "130102001013", "daily", "\"indicators\":{\"confirmed\":2}");
    report(other, sizeof other, id, "130102001013", "daily", "\"indicators\":{\"confirmed\":5}");
    assert_int_equal(archive_insert(body, archived_version), 0);

    assert_int_equal(post_json("/v1/reports", fx.tok_town, body, &r), 202);
    assert_int_equal(json_version(r.body), archived_version);
    rc_httpc_response_clear(&r);
    assert_int_equal(post_json("/v1/reports", fx.tok_town, other, &r), 409);
    assert_non_null(strstr(r.body, "\"error\":\"conflict\""));
    rc_httpc_response_clear(&r);
    /* In a batch too, beside a new report that goes through. */
    {
        char id2[37], fresh[1024], batch[2200];
        rc_uuid_new(id2);
        report(fresh, sizeof fresh, id2, "130102001013", "zero", "");
        snprintf(batch, sizeof batch, "[%s,%s]", other, fresh);
        assert_int_equal(post_json("/v1/reports:batch", fx.tok_town, batch, &r), 207);
        assert_non_null(strstr(r.body, "{\"index\":0,\"status\":409,"));
        assert_non_null(strstr(r.body, "{\"index\":1,\"status\":202,"));
        rc_httpc_response_clear(&r);
        n = fetch_new(&m, msgs);
        assert_int_equal(count_id(msgs, n, "reports.village", id, NULL), 0);
        assert_int_equal(count_id(msgs, n, "reports.village", id2, NULL), 1);
        free_msgs(msgs, n);
    }
    assert_int_equal(http("GET", "/metrics", NULL, NULL, NULL, 0, &r), 200);
    assert_non_null(strstr(r.body, "rollcall_village_archive_checks_total{answer=\"found\"} 3"));
    rc_httpc_response_clear(&r);
}

/* A retried report_id gets the same answer and produces nothing new, also
 * when the duplicates arrive together; another report under a used id: 409. */
static void test_idempotent_retry(void **state)
{
    char id[37], id2[37], body[1024], other[1024], first[256];
    rc_httpc_response r = {0};
    rc_httpc_request q[6];
    rc_httpc_response rs[6];
    char url[256], auth[128];
    kmsg msgs[MAX_MSGS];
    marks m;
    size_t n;

    NEED_STACK();
    snapshot(&m);
    rc_uuid_new(id);
    report(body, sizeof body, id, "130102001001", "daily", "\"indicators\":{\"volunteers\":5}");
    assert_int_equal(post_json("/v1/reports", fx.tok_a, body, &r), 202);
    snprintf(first, sizeof first, "%s", r.body);
    rc_httpc_response_clear(&r);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(post_json("/v1/reports", fx.tok_a, body, &r), 202);
        assert_string_equal(r.body, first);
        rc_httpc_response_clear(&r);
    }
    /* A retry that stamps a new submitted_at (client clock) is the same report. */
    report(other, sizeof other, id, "130102001001", "daily",
           "\"indicators\":{\"volunteers\":5},\"submitted_at\":\"2026-01-01T08:00:00+08:00\"");
    assert_int_equal(post_json("/v1/reports", fx.tok_a, other, &r), 202);
    assert_string_equal(r.body, first);
    rc_httpc_response_clear(&r);
    report(other, sizeof other, id, "130102001001", "daily", "\"indicators\":{\"volunteers\":6}");
    assert_int_equal(post_json("/v1/reports", fx.tok_a, other, &r), 409);
    assert_non_null(strstr(r.body, "\"error\":\"conflict\""));
    rc_httpc_response_clear(&r);

    /* Six copies at once, on six connections. */
    rc_uuid_new(id2);
    report(body, sizeof body, id2, "130102001001", "zero", "");
    snprintf(url, sizeof url, "%s/v1/reports", fx.base);
    snprintf(auth, sizeof auth, "Bearer %s", fx.tok_a);
    for (int i = 0; i < 6; i++)
        q[i] = (rc_httpc_request){.method = "POST", .url = url, .content_type = "application/json",
                                  .authorization = auth, .body = body, .body_len = strlen(body),
                                  .timeout_ms = 10000};
    assert_int_equal(rc_httpc_do_many(q, rs, 6), 6);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(rs[i].status, 202);
        assert_string_equal(rs[i].body, rs[0].body);
    }
    for (int i = 0; i < 6; i++)
        rc_httpc_response_clear(&rs[i]);

    n = fetch_new(&m, msgs);
    assert_int_equal(count_id(msgs, n, "reports.village", id, NULL), 1);
    assert_int_equal(count_id(msgs, n, "reports.village", id2, NULL), 1);
    free_msgs(msgs, n);
}

/* A JSON batch with one bad item (207, per-item results) and a
 * length-delimited protobuf batch (200). */
static void test_batch(void **state)
{
    char ids[4][37], item[4][1024], body[8192], pids[3][37];
    rc_httpc_response r = {0};
    uint8_t stream[4096];
    size_t slen = 0;
    kmsg msgs[MAX_MSGS];
    marks m;
    size_t n;

    NEED_STACK();
    snapshot(&m);
    for (int i = 0; i < 4; i++) {
        rc_uuid_new(ids[i]);
        report(item[i], sizeof item[i], ids[i], i == 2 ? "130102001999" : i == 3 ? "130102001004" : "130102001003",
               "daily", "\"indicators\":{\"staff_on_duty\":3}");
    }
    snprintf(body, sizeof body, "[%s,%s,%s,%s]", item[0], item[1], item[2], item[3]);
    assert_int_equal(post_json("/v1/reports:batch", fx.tok_town, body, &r), 207);
    assert_non_null(strstr(r.body, "\"accepted\":3"));
    assert_non_null(strstr(r.body, "\"rejected\":1"));
    assert_non_null(strstr(r.body, "{\"index\":2,\"status\":400,"));
    assert_non_null(strstr(r.body, "\"field\":\"unit_code\""));
    assert_non_null(strstr(r.body, ids[3]));
    rc_httpc_response_clear(&r);
    /* A village token in a batch: only its own village. */
    snprintf(body, sizeof body, "[%s,%s]", item[0], item[3]);
    assert_int_equal(post_json("/v1/reports:batch", fx.tok_a, body, &r), 403);
    rc_httpc_response_clear(&r);
    assert_int_equal(post_json("/v1/reports:batch", fx.tok_town, "{}", &r), 400);
    rc_httpc_response_clear(&r);

    for (int i = 0; i < 3; i++) {
        char js[1024];
        rc_errors errs = {0};
        Rollcall__Report *rep;
        uint8_t *pb;
        size_t len, v;
        rc_uuid_new(pids[i]);
        report(js, sizeof js, pids[i], "130102001010", "zero", "");
        rep = rc_report_from_json_text(js, strlen(js), &errs);
        assert_non_null(rep);
        pb = rc_report_pack(rep, &len);
        rc_report_free(rep);
        for (v = len; v > 0x7f; v >>= 7)
            stream[slen++] = (uint8_t)(v | 0x80);
        stream[slen++] = (uint8_t)v;
        memcpy(stream + slen, pb, len);
        slen += len;
        free(pb);
    }
    assert_int_equal(http("POST", "/v1/reports:batch", fx.tok_town, "application/x-protobuf", stream, slen, &r), 200);
    assert_non_null(strstr(r.body, "\"accepted\":3"));
    rc_httpc_response_clear(&r);

    n = fetch_new(&m, msgs);
    assert_int_equal(count_id(msgs, n, "reports.village", ids[0], NULL), 1);
    assert_int_equal(count_id(msgs, n, "reports.village", ids[1], NULL), 1);
    assert_int_equal(count_id(msgs, n, "reports.village", ids[2], NULL), 0);
    assert_int_equal(count_id(msgs, n, "reports.village", ids[3], NULL), 1);
    for (int i = 0; i < 3; i++)
        assert_int_equal(count_id(msgs, n, "reports.village", pids[i], NULL), 1);
    free_msgs(msgs, n);
}

/* With the broker down nothing gets 2xx (503 + Retry-After); once it is
 * back the same reports go through, each exactly once. */
static void test_broker_down(void **state)
{
    enum { N = 5 };
    char ids[N][37], bodies[N][1024], url[256], auth[128], more[512];
    rc_httpc_request q[N];
    rc_httpc_response rs[N];
    kmsg msgs[MAX_MSGS];
    marks m;
    size_t n;

    NEED_STACK();
    snapshot(&m);
    snprintf(url, sizeof url, "%s/v1/reports", fx.base);
    snprintf(auth, sizeof auth, "Bearer %s", fx.tok_town);
    for (int i = 0; i < N; i++) {
        rc_uuid_new(ids[i]);
        if (i == N - 1)
            urgent_more(more, sizeof more);
        report(bodies[i], sizeof bodies[i], ids[i], "130102001011", i == N - 1 ? "urgent" : "daily",
               i == N - 1 ? more : "");
        q[i] = (rc_httpc_request){.method = "POST", .url = url, .content_type = "application/json",
                                  .authorization = auth, .body = bodies[i],
                                  .body_len = strlen(bodies[i]), .timeout_ms = 15000};
    }
    assert_int_equal(control("/down"), 200);
    rc_httpc_do_many(q, rs, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(rs[i].status, 503);
        assert_string_equal(rs[i].retry_after, "2");
        assert_non_null(strstr(rs[i].body, ids[i]));
        rc_httpc_response_clear(&rs[i]);
    }
    /* /healthz tells the truth too. */
    {
        rc_httpc_response r = {0};
        int st = 200;
        for (int waited = 0; waited < 6000 && st == 200; waited += 200) {
            st = http("GET", "/healthz", NULL, NULL, NULL, 0, &r);
            rc_httpc_response_clear(&r);
            if (st == 200)
                usleep(200 * 1000);
        }
        assert_int_equal(st, 503);
    }
    assert_int_equal(control("/up"), 200);
    assert_int_equal(wait_healthy(15000), 0);
    /* A client retries a 503 with the same report_id, as the answer says:
     * each producer reconnects on its own backoff, so the first attempt
     * after /up may still time out. */
    bool accepted[N] = {false}, retried[N] = {false};
    for (int round = 0; round < 10; round++) {
        rc_httpc_do_many(q, rs, N);
        bool all = true;
        for (int i = 0; i < N; i++) {
            if (rs[i].status == 202)
                accepted[i] = true;
            else if (!accepted[i]) {
                assert_int_equal(rs[i].status, 503);
                retried[i] = true;
                all = false;
            }
            rc_httpc_response_clear(&rs[i]);
        }
        if (all)
            break;
        sleep(2);
    }
    for (int i = 0; i < N; i++)
        if (!accepted[i])
            fail_msg("after /up report %d was never accepted", i);
    n = fetch_new(&m, msgs);
    /* Once, unless a 503 was retried: a message that timed out may still
     * have landed, and the rollup drops the second copy by report_id. */
    for (int i = 0; i < N; i++) {
        int c = count_id(msgs, n, "reports.village", ids[i], NULL);
        if (retried[i])
            assert_in_range(c, 1, 2);
        else
            assert_int_equal(c, 1);
    }
    assert_true(count_id(msgs, n, "reports.urgent", ids[N - 1], NULL) >= 1);
    free_msgs(msgs, n);
    /* The broker is shared: leave the stack's own services healthy again. */
    if (getenv("ROLLCALL_HTTP") && *getenv("ROLLCALL_HTTP")) {
        char saved[64];
        snprintf(saved, sizeof saved, "%s", fx.base);
        snprintf(fx.base, sizeof fx.base, "%s", getenv("ROLLCALL_HTTP"));
        if (wait_healthy(10000) < 0)
            print_message("the stack's intake at %s is not healthy again\n", fx.base);
        snprintf(fx.base, sizeof fx.base, "%s", saved);
    }
}

/* `rollcall submit` files a report and exits 0 only for a 2xx answer. */
static void test_cli_submit(void **state)
{
    char cmd[1200], out[1024], id[37];
    kmsg msgs[MAX_MSGS];
    marks m;
    size_t n;

    NEED_STACK();
    snapshot(&m);
    rc_uuid_new(id);
    snprintf(cmd, sizeof cmd,
             "ROLLCALL_TOKEN=%s '%s/rollcall' submit --url %s --unit 130102001002 --kind daily "
             "--report-id %s --indicator home_observation=3 --indicator hebei_check=1 --zone prevention 2>/dev/null",
             fx.tok_b, fx.build, fx.base, id);
    assert_int_equal(run_capture(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, id));
    assert_true(json_version(out) > 0);
    /* The wrong token: the server's 403 is printed and the exit status is 1. */
    snprintf(cmd, sizeof cmd,
             "'%s/rollcall' submit --url %s --token %s --unit 130102001002 --kind zero 2>/dev/null",
             fx.build, fx.base, fx.tok_a);
    assert_int_equal(run_capture(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "\"error\":\"forbidden\""));
    n = fetch_new(&m, msgs);
    {
        const kmsg *k = NULL;
        assert_int_equal(count_id(msgs, n, "reports.village", id, &k), 1);
        assert_non_null(strstr(k->text, "home_observation: 3"));
        assert_non_null(strstr(k->text, "zone_status: ZONE_STATUS_PREVENTION"));
    }
    free_msgs(msgs, n);
}

static void test_metrics(void **state)
{
    rc_httpc_response r = {0};

    NEED_STACK();
    assert_int_equal(http("GET", "/metrics", NULL, NULL, NULL, 0, &r), 200);
    assert_non_null(strstr(r.body, "rollcall_village_reports_total{status=\"202\"}"));
    assert_non_null(strstr(r.body, "rollcall_village_reports_total{status=\"400\"}"));
    assert_non_null(strstr(r.body, "rollcall_village_validation_failures_total{reason=\"period\"}"));
    assert_non_null(strstr(r.body, "rollcall_village_auth_failures_total{reason=\"wrong_unit\"}"));
    assert_non_null(strstr(r.body, "rollcall_village_produce_seconds_bucket{topic=\"reports.village\""));
    assert_non_null(strstr(r.body, "rollcall_village_in_flight 0"));
    assert_non_null(strstr(r.body, "rc_http_requests_total{path=\"/v1/reports\",code=\"202\"}"));
    rc_httpc_response_clear(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_reports_arrive_once),
        cmocka_unit_test(test_protobuf_body),
        cmocka_unit_test(test_invalid_reports),
        cmocka_unit_test(test_unstorable_protobuf),
        cmocka_unit_test(test_registry_and_token_mid_run),
        cmocka_unit_test(test_slowloris_and_per_address_cap),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_oversize),
        cmocka_unit_test(test_refused_before_body),
        cmocka_unit_test(test_batch_item_too_large),
        cmocka_unit_test(test_idempotent_retry),
        cmocka_unit_test(test_report_id_forever),
        cmocka_unit_test(test_batch),
        cmocka_unit_test(test_broker_down),
        cmocka_unit_test(test_cli_submit),
        cmocka_unit_test(test_metrics),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
