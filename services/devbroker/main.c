/* rollcall-devbroker — the embedded development Kafka broker: librdkafka's
 * mock cluster on loopback with Rollcall's topics, plus an HTTP control API
 * (broker down/up, RTT, injected request errors) for fault-injection tests.
 *
 *   rollcall-devbroker [--brokers N] [--control-port P] [--bootstrap-file PATH]
 *                      [--topic NAME:PARTITIONS]...
 *
 * Prints exactly one line "bootstrap=127.0.0.1:PORT[,...]" on stdout.  The
 * mock cluster picks its own ports (librdkafka 2.0.2 binds 127.0.0.1:0 and has
 * no option for a fixed one), hence the line and --bootstrap-file.
 *
 * Control API (127.0.0.1:P, plain text replies, 400 with a reason on bad input):
 *   GET  /healthz                          200 "ok"
 *   POST /down, /up                        all brokers refuse / accept connections
 *   POST /rtt?ms=N                         added round-trip time, all brokers
 *   POST /errors?api=Produce&code=N&count=K   next K Produce requests fail with N
 *                                          (code: number or name, _TRANSPORT = disconnect)
 *   POST /errors/clear?api=Produce
 *   GET  /topics                           [{"name":..., "partitions":N}, ...]
 *   POST /topics?name=X&partitions=N       create a topic (tests use fresh ones)
 *
 * ROLLCALL_DEVBROKER_RTPRIO=N (1..99) runs the mock cluster's thread, which
 * serves every request, real-time (SCHED_RR): for latency measurements on a
 * machine shared with other work, where an ordinary thread waits its turn
 * behind everyone else's before each request (see rc_sched.h). */
#include "rc_kafka.h"
#include "rc_log.h"
#include "rc_sched.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <librdkafka/rdkafka_mock.h>

#define MAX_TOPICS 128

typedef struct {
    char name[250];
    int partitions;
} topic_spec;

typedef struct {
    rd_kafka_t *rk; /* exists only to own the mock cluster */
    rd_kafka_mock_cluster_t *mc;
    topic_spec topics[MAX_TOPICS];
    int ntopics;
    struct event_base *base;
} devbroker;

/* The topics every Rollcall component expects (PIPELINE.md, "Messages"). */
static const topic_spec default_topics[] = {
    {"reports.village", 32},  {"reports.urgent", 4},   {"reports.township", 8},
    {"reports.county", 4},    {"reports.province", 2}, {"rollups.township", 16},
    {"rollups.county", 8},    {"rollups.province", 4}, {"reports.dlq", 4},
    {"reminders", 4},         {"escalations", 4},
};

/* Kafka protocol ApiKeys the mock broker implements, by request name. */
static const struct {
    const char *name;
    int16_t key;
} api_keys[] = {
    {"Produce", 0},           {"Fetch", 1},              {"ListOffsets", 2},
    {"Metadata", 3},          {"OffsetCommit", 8},       {"OffsetFetch", 9},
    {"FindCoordinator", 10},  {"JoinGroup", 11},         {"Heartbeat", 12},
    {"LeaveGroup", 13},       {"SyncGroup", 14},         {"DescribeGroups", 15},
    {"ListGroups", 16},       {"SaslHandshake", 17},     {"ApiVersions", 18},
    {"CreateTopics", 19},     {"DeleteTopics", 20},      {"DeleteRecords", 21},
    {"InitProducerId", 22},   {"OffsetForLeaderEpoch", 23}, {"AddPartitionsToTxn", 24},
    {"AddOffsetsToTxn", 25},  {"EndTxn", 26},            {"TxnOffsetCommit", 28},
    {"SaslAuthenticate", 36},
};

/* ---------------------------------------------------------------- helpers */

/* Parses a whole decimal integer within [lo, hi].  Returns 0 or -1. */
static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v;

    if (!s || !*s)
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_api(const char *s, int16_t *out)
{
    long v;

    if (!s)
        return -1;
    for (size_t i = 0; i < sizeof api_keys / sizeof api_keys[0]; i++) {
        if (strcasecmp(s, api_keys[i].name) == 0) {
            *out = api_keys[i].key;
            return 0;
        }
    }
    if (parse_long(s, 0, 1000, &v) == 0) {
        *out = (int16_t)v;
        return 0;
    }
    return -1;
}

/* A Kafka error code as a number (7) or librdkafka's name for it
 * (REQUEST_TIMED_OUT, or _TRANSPORT for a disconnect). */
static int parse_err(const char *s, rd_kafka_resp_err_t *out)
{
    const struct rd_kafka_err_desc *descs;
    size_t n;
    long v;

    if (!s)
        return -1;
    if (parse_long(s, -200, 1000, &v) == 0) {
        *out = (rd_kafka_resp_err_t)v;
        return 0;
    }
    rd_kafka_get_err_descs(&descs, &n);
    for (size_t i = 0; i < n; i++) {
        if (descs[i].name && strcasecmp(s, descs[i].name) == 0) {
            *out = descs[i].code;
            return 0;
        }
    }
    return -1;
}

static int add_topic(devbroker *d, const char *name, int partitions, char *errbuf,
                     size_t errlen)
{
    rd_kafka_resp_err_t err;

    for (int i = 0; i < d->ntopics; i++) {
        if (strcmp(d->topics[i].name, name) == 0) {
            snprintf(errbuf, errlen, "topic %s already exists", name);
            return -1;
        }
    }
    if (d->ntopics == MAX_TOPICS || strlen(name) >= sizeof d->topics[0].name || !*name) {
        snprintf(errbuf, errlen, "topic %s: bad name or too many topics", name);
        return -1;
    }
    err = rd_kafka_mock_topic_create(d->mc, name, partitions, 1);
    if (err) {
        snprintf(errbuf, errlen, "topic %s: %s", name, rd_kafka_err2str(err));
        return -1;
    }
    snprintf(d->topics[d->ntopics].name, sizeof d->topics[0].name, "%s", name);
    d->topics[d->ntopics].partitions = partitions;
    d->ntopics++;
    return 0;
}

/* "name:partitions" → add_topic. */
static int add_topic_spec(devbroker *d, const char *spec, char *errbuf, size_t errlen)
{
    const char *colon = strrchr(spec, ':');
    char name[250];
    long parts;

    if (!colon || colon == spec || (size_t)(colon - spec) >= sizeof name ||
        parse_long(colon + 1, 1, 10000, &parts) < 0) {
        snprintf(errbuf, errlen, "--topic %s: expected NAME:PARTITIONS (1..10000)", spec);
        return -1;
    }
    memcpy(name, spec, (size_t)(colon - spec));
    name[colon - spec] = '\0';
    return add_topic(d, name, (int)parts, errbuf, errlen);
}

/* -------------------------------------------------------------- control API */

/* A handler fills `out` and returns the HTTP status; on 4xx/5xx it writes
 * the reason into `out` too.  The dispatcher sends the one reply. */
typedef int handler_fn(devbroker *d, struct evkeyvalq *q, struct evbuffer *out);

static int h_healthz(devbroker *d, struct evkeyvalq *q, struct evbuffer *out)
{
    evbuffer_add_printf(out, "ok\n");
    return 200;
}

static int h_down(devbroker *d, struct evkeyvalq *q, struct evbuffer *out)
{
    rd_kafka_resp_err_t err = rd_kafka_mock_broker_set_down(d->mc, -1);
    if (err) {
        evbuffer_add_printf(out, "set_down: %s\n", rd_kafka_err2str(err));
        return 500;
    }
    rc_warn("control: all brokers DOWN");
    evbuffer_add_printf(out, "down\n");
    return 200;
}

static int h_up(devbroker *d, struct evkeyvalq *q, struct evbuffer *out)
{
    rd_kafka_resp_err_t err = rd_kafka_mock_broker_set_up(d->mc, -1);
    if (err) {
        evbuffer_add_printf(out, "set_up: %s\n", rd_kafka_err2str(err));
        return 500;
    }
    rc_warn("control: all brokers UP");
    evbuffer_add_printf(out, "up\n");
    return 200;
}

static int h_rtt(devbroker *d, struct evkeyvalq *q, struct evbuffer *out)
{
    long ms;
    rd_kafka_resp_err_t err;

    if (parse_long(evhttp_find_header(q, "ms"), 0, 600000, &ms) < 0) {
        evbuffer_add_printf(out, "rtt: ms=N (0..600000) required\n");
        return 400;
    }
    err = rd_kafka_mock_broker_set_rtt(d->mc, -1, (int)ms);
    if (err) {
        evbuffer_add_printf(out, "set_rtt: %s\n", rd_kafka_err2str(err));
        return 500;
    }
    rc_warn("control: broker rtt_ms=%ld", ms);
    evbuffer_add_printf(out, "rtt_ms=%ld\n", ms);
    return 200;
}

static int h_errors(devbroker *d, struct evkeyvalq *q, struct evbuffer *out)
{
    const char *api_s = evhttp_find_header(q, "api");
    const char *code_s = evhttp_find_header(q, "code");
    rd_kafka_resp_err_t code;
    rd_kafka_resp_err_t *errs = NULL;
    int16_t api;
    long count = 1;

    if (parse_api(api_s, &api) < 0) {
        evbuffer_add_printf(out, "errors: api=NAME required (Produce, Fetch, OffsetCommit, ...)\n");
        return 400;
    }
    if (parse_err(code_s, &code) < 0) {
        evbuffer_add_printf(out, "errors: code=N or code=ERROR_NAME required\n");
        return 400;
    }
    if (evhttp_find_header(q, "count") &&
        parse_long(evhttp_find_header(q, "count"), 1, 100000, &count) < 0) {
        evbuffer_add_printf(out, "errors: count must be 1..100000\n");
        return 400;
    }
    errs = malloc((size_t)count * sizeof *errs);
    if (!errs) {
        evbuffer_add_printf(out, "errors: out of memory\n");
        return 500;
    }
    for (long i = 0; i < count; i++)
        errs[i] = code;
    rd_kafka_mock_push_request_errors_array(d->mc, api, (size_t)count, errs);
    free(errs);
    rc_warn("control: injected errors api=%s api_key=%d code=%s count=%ld", api_s, (int)api,
            rd_kafka_err2name(code), count);
    evbuffer_add_printf(out, "api_key=%d code=%d count=%ld\n", (int)api, (int)code, count);
    return 200;
}

static int h_errors_clear(devbroker *d, struct evkeyvalq *q, struct evbuffer *out)
{
    int16_t api;

    if (parse_api(evhttp_find_header(q, "api"), &api) < 0) {
        evbuffer_add_printf(out, "errors/clear: api=NAME required\n");
        return 400;
    }
    rd_kafka_mock_clear_request_errors(d->mc, api);
    evbuffer_add_printf(out, "cleared api_key=%d\n", (int)api);
    return 200;
}

static int h_topics(devbroker *d, struct evkeyvalq *q, struct evbuffer *out)
{
    json_t *arr = json_array();
    char *text = NULL;

    for (int i = 0; i < d->ntopics; i++)
        json_array_append_new(arr, json_pack("{s:s, s:i}", "name", d->topics[i].name,
                                             "partitions", d->topics[i].partitions));
    text = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    if (!text) {
        evbuffer_add_printf(out, "topics: out of memory\n");
        return 500;
    }
    evbuffer_add_printf(out, "%s\n", text);
    free(text);
    return 200;
}

/* POST /topics?name=X&partitions=N — lets a test own a fresh topic. */
static int h_topic_create(devbroker *d, struct evkeyvalq *q, struct evbuffer *out)
{
    const char *name = evhttp_find_header(q, "name");
    char err[512];
    long parts;

    if (!name || parse_long(evhttp_find_header(q, "partitions"), 1, 10000, &parts) < 0) {
        evbuffer_add_printf(out, "topics: name=X&partitions=N (1..10000) required\n");
        return 400;
    }
    if (add_topic(d, name, (int)parts, err, sizeof err) < 0) {
        evbuffer_add_printf(out, "%s\n", err);
        return 400;
    }
    rc_info("control: created topic=%s partitions=%ld", name, parts);
    evbuffer_add_printf(out, "created %s\n", name);
    return 200;
}

static const struct {
    enum evhttp_cmd_type method;
    const char *path;
    handler_fn *fn;
} routes[] = {
    {EVHTTP_REQ_GET, "/healthz", h_healthz},
    {EVHTTP_REQ_POST, "/down", h_down},
    {EVHTTP_REQ_POST, "/up", h_up},
    {EVHTTP_REQ_POST, "/rtt", h_rtt},
    {EVHTTP_REQ_POST, "/errors", h_errors},
    {EVHTTP_REQ_POST, "/errors/clear", h_errors_clear},
    {EVHTTP_REQ_GET, "/topics", h_topics},
    {EVHTTP_REQ_POST, "/topics", h_topic_create},
};

static void on_request(struct evhttp_request *req, void *arg)
{
    devbroker *d = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = evhttp_uri_get_path(uri);
    const char *query = evhttp_uri_get_query(uri);
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    struct evbuffer *out = evbuffer_new();
    struct evkeyvalq params;
    bool path_known = false;
    int status = 404;

    if (!out) {
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    if (evhttp_parse_query_str(query ? query : "", &params) < 0) {
        evbuffer_add_printf(out, "malformed query string\n");
        status = 400;
        goto reply;
    }
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (!path || strcmp(path, routes[i].path) != 0)
            continue;
        path_known = true;
        if (routes[i].method == method) {
            status = routes[i].fn(d, &params, out);
            goto reply;
        }
    }
    if (path_known) {
        evbuffer_add_printf(out, "method not allowed\n");
        status = 405;
    } else {
        evbuffer_add_printf(out, "no such path\n");
    }
reply:
    evhttp_clear_headers(&params);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      status == 200 && path && strcmp(path, "/topics") == 0 &&
                              method == EVHTTP_REQ_GET
                          ? "application/json"
                          : "text/plain");
    evhttp_send_reply(req, status, status == 200 ? "OK" : "Error", out);
    evbuffer_free(out);
}

/* ------------------------------------------------------------------- main */

static void on_signal(evutil_socket_t sig, short events, void *arg)
{
    struct event_base *base = arg;
    rc_info("signal=%d: shutting down", (int)sig);
    event_base_loopexit(base, NULL);
}

/* The owner handle is never used to produce, but its main queue still
 * collects error events; serving them keeps it from growing. */
static void on_tick(evutil_socket_t fd, short events, void *arg)
{
    devbroker *d = arg;
    rd_kafka_poll(d->rk, 0);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: rollcall-devbroker [--brokers N (1)] [--control-port P (0 = none)]\n"
               "                          [--bootstrap-file PATH] [--topic NAME:PARTITIONS]...\n");
}

static int write_file(const char *path, const char *text)
{
    char tmp[PATH_MAX];
    FILE *f;

    /* Rename into place so a reader never sees half a line. */
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return -1;
    f = fopen(tmp, "w");
    if (!f)
        return -1;
    if (fprintf(f, "%s\n", text) < 0 || fclose(f) != 0) {
        unlink(tmp);
        return -1;
    }
    return rename(tmp, path);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"brokers", required_argument, NULL, 'b'},
        {"control-port", required_argument, NULL, 'c'},
        {"bootstrap-file", required_argument, NULL, 'f'},
        {"topic", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static devbroker d;
    const char *extra[MAX_TOPICS];
    int nextra = 0;
    long brokers = 1, control_port = 0;
    const char *bootstrap_file = NULL, *lvl = getenv("ROLLCALL_LOG_LEVEL");
    rc_log_level level = RC_LOG_INFO;
    struct event *sigterm = NULL, *sigint = NULL, *tick = NULL;
    struct evhttp *http = NULL;
    rd_kafka_conf_t *conf = NULL;
    char err[512];
    int opt, rc = 1;

    if (lvl && rc_log_level_parse(lvl, &level) < 0)
        rc_die("ROLLCALL_LOG_LEVEL=%s: expected debug, info, warn or error", lvl);
    rc_log_init("devbroker", level);

    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'b':
            if (parse_long(optarg, 1, 16, &brokers) < 0)
                rc_die("--brokers %s: expected 1..16", optarg);
            break;
        case 'c':
            if (parse_long(optarg, 0, 65535, &control_port) < 0)
                rc_die("--control-port %s: expected 0..65535", optarg);
            break;
        case 'f':
            bootstrap_file = optarg;
            break;
        case 't':
            if (nextra == MAX_TOPICS)
                rc_die("--topic: at most %d", MAX_TOPICS);
            extra[nextra++] = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }

    conf = rd_kafka_conf_new();
    rc_kafka_conf_set_logger(conf);
    d.rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!d.rk) {
        rd_kafka_conf_destroy(conf);
        rc_die("cannot create the mock cluster's owner handle: %s", err);
    }
    conf = NULL; /* rd_kafka_new took ownership */

    {
        const char *rt = getenv("ROLLCALL_DEVBROKER_RTPRIO");
        long prio = 0;
        if (rt && *rt && parse_long(rt, 0, 99, &prio) < 0)
            rc_die("ROLLCALL_DEVBROKER_RTPRIO=%s: expected 0..99", rt);
        /* only the cluster's thread, started now, keeps it */
        if (prio > 0 && rc_sched_realtime((int)prio, err, sizeof err) < 0)
            rc_warn("ROLLCALL_DEVBROKER_RTPRIO: %s", err);
        d.mc = rd_kafka_mock_cluster_new(d.rk, (int)brokers);
        if (prio > 0)
            rc_sched_realtime(0, err, sizeof err);
    }
    if (!d.mc) {
        rc_error("cannot create the mock cluster brokers=%ld", brokers);
        goto done;
    }
    for (size_t i = 0; i < sizeof default_topics / sizeof default_topics[0]; i++) {
        if (add_topic(&d, default_topics[i].name, default_topics[i].partitions, err,
                      sizeof err) < 0) {
            rc_error("%s", err);
            goto done;
        }
    }
    for (int i = 0; i < nextra; i++) {
        if (add_topic_spec(&d, extra[i], err, sizeof err) < 0) {
            rc_error("%s", err);
            goto done;
        }
    }

    d.base = event_base_new();
    if (!d.base) {
        rc_error("event_base_new failed");
        goto done;
    }
    sigterm = evsignal_new(d.base, SIGTERM, on_signal, d.base);
    sigint = evsignal_new(d.base, SIGINT, on_signal, d.base);
    tick = event_new(d.base, -1, EV_PERSIST, on_tick, &d);
    if (!sigterm || !sigint || !tick || evsignal_add(sigterm, NULL) < 0 ||
        evsignal_add(sigint, NULL) < 0 ||
        event_add(tick, &(struct timeval){.tv_sec = 1}) < 0) {
        rc_error("cannot install signal and timer events");
        goto done;
    }
    if (control_port) {
        http = evhttp_new(d.base);
        if (!http || evhttp_bind_socket(http, "127.0.0.1", (ev_uint16_t)control_port) < 0) {
            rc_error("control API cannot listen addr=127.0.0.1:%ld", control_port);
            goto done;
        }
        evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
        evhttp_set_gencb(http, on_request, &d);
    }

    const char *bootstrap = rd_kafka_mock_cluster_bootstraps(d.mc);
    if (bootstrap_file && write_file(bootstrap_file, bootstrap) < 0) {
        rc_error("cannot write bootstrap file path=%s: %s", bootstrap_file, strerror(errno));
        goto done;
    }
    printf("bootstrap=%s\n", bootstrap);
    fflush(stdout);

    rc_warn("DEVELOPMENT BROKER: in-memory only, nothing survives a restart; each partition "
            "keeps only its newest ~5 MiB / 100,000 batches and SILENTLY DROPS older data "
            "(consumers that fall behind get offset-out-of-range)");
    rc_info("devbroker ready bootstrap=%s brokers=%ld topics=%d control=%s%ld", bootstrap,
            brokers, d.ntopics, control_port ? "127.0.0.1:" : "none", control_port);

    event_base_dispatch(d.base);
    rc = 0;

done:
    if (http)
        evhttp_free(http);
    if (tick)
        event_free(tick);
    if (sigint)
        event_free(sigint);
    if (sigterm)
        event_free(sigterm);
    if (d.base)
        event_base_free(d.base);
    if (d.mc)
        rd_kafka_mock_cluster_destroy(d.mc);
    rd_kafka_destroy(d.rk);
    if (rc == 0 && bootstrap_file)
        unlink(bootstrap_file);
    rc_info("devbroker stopped");
    return rc;
}
