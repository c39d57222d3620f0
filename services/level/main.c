/* rollcall-level — one program for the township, county and province desks
 * (run as rollcall-township / rollcall-county / rollcall-province, or with
 * --level).  Starts the daily desk and the urgent relay in threads of their
 * own and serves /healthz, /metrics, /v1/status and /v1/clock.  /healthz
 * reads an rc_probe of PostgreSQL and Kafka beside the workers' own state:
 * a worker waiting out an outage in rc_pg's reconnect backoff cannot say so. */
#include "level.h"
#include "rc_config.h"
#include "rc_kafka.h"
#include "rc_level.h"
#include "rc_log.h"
#include "rc_probe.h"
#include "rc_service.h"
#include "rc_time.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static level_cfg cfg;
static rc_log_level log_level;

static const rc_cfg_item items[] = {
    {"level", RC_CFG_STRING, &cfg.level_name, NULL, 0, 16,
     "township, county or province (default: from the program name rollcall-<level>)", 0},
    RC_CFG_PG_DSN(&cfg.pg_dsn, "PostgreSQL (libpq conninfo), as rollcall_level"),
    RC_CFG_KAFKA_BROKERS(&cfg.kafka_brokers, NULL),
    {"group", RC_CFG_STRING, &cfg.group, "", 0, 100,
     "consumer group of the desk (default rollcall-<level>); the urgent relay uses <group>-urgent", 0},
    {"clock", RC_CFG_STRING, &cfg.clock, "real", 1, 4096,
     "decision clock: real, offset:SECONDS, file:PATH (RFC 3339 instant inside), manual[:RFC3339]", 0},
    {"start_from", RC_CFG_STRING, &cfg.start_from, "beginning", 3, 9,
     "where a partition never consumed starts: beginning or end", 0},
    RC_CFG_LISTEN_ADDR(&cfg.listen_addr),
    RC_CFG_HTTP_PORT(&cfg.http_port, "0"),
    {"tick", RC_CFG_MS, &cfg.tick_ms, "500ms", 10, 60000,
     "how often deadlines, sign-offs and reminders are checked", 0},
    {"max_batch", RC_CFG_INT, &cfg.max_batch, "5000", 1, 1000000, "aggregates per batch", 0},
    {"batch_wait", RC_CFG_MS, &cfg.batch_ms, "50ms", 0, 10000,
     "longest wait to fill a batch once its first aggregate is in", 0},
    {"flush_timeout", RC_CFG_MS, &cfg.flush_timeout_ms, "30s", 100, 600000,
     "longest wait for filed reports to be acknowledged", 0},
    {"reload", RC_CFG_MS, &cfg.reload_ms, "30s", 1000, 3600000,
     "policy and escalation rules re-read at least this often (and on NOTIFY)", 0},
    {"revise_every", RC_CFG_MS, &cfg.revise_every_ms, "30s", 0, 3600000,
     "shortest time between two filings of one unit's report: changes after a filing wait "
     "and go out together in the next (0: file every change at once)", 0},
    {"daily", RC_CFG_BOOL, &cfg.daily, "yes", 0, 0, "run the daily desk", 0},
    {"urgent", RC_CFG_BOOL, &cfg.urgent, "yes", 0, 0, "run the urgent relay", 0},
    {"urgent_nice", RC_CFG_INT, &cfg.urgent_nice, "-10", -20, 19,
     "nice value of the urgent relay's threads (lowering it needs CAP_SYS_NICE; 0: leave it)", 0},
    {"urgent_rtprio", RC_CFG_INT, &cfg.urgent_rtprio, "10", 0, 99,
     "real-time (SCHED_RR) priority of the urgent relay's threads, ahead of every ordinary "
     "thread on the machine; needs CAP_SYS_NICE, else urgent_nice alone (0: off)", 0},
    {"urgent_fetch_wait", RC_CFG_MS, &cfg.urgent_fetch_wait_ms, "2ms", 0, 500,
     "the relay consumer's fetch.wait.max.ms (the development broker holds an empty fetch that long)", 0},
    RC_CFG_LOG_LEVEL(&log_level),
    {NULL},
};

static level_ctx ctx;
static rc_service *svc;
/* The probe's Kafka handle: its own, so a metadata request never queues
 * behind the workers' traffic and its lifetime is main's.  Never sends. */
static rc_producer *probe_kafka;

static void reply_json(struct evhttp_request *req, int code, json_t *body)
{
    struct evbuffer *out = evbuffer_new();
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;

    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    if (out && text)
        evbuffer_add_printf(out, "%s\n", text);
    evhttp_send_reply(req, code, code < 300 ? "OK" : code == 405 ? "Method Not Allowed" : "Error", out);
    if (out)
        evbuffer_free(out);
    free(text);
    json_decref(body);
}

static json_t *clock_json(void)
{
    char now[40];
    rc_time_format_rfc3339(rc_clock_now(ctx.clock), now);
    return json_pack("{s:s, s:s}", "now", now, "mode", rc_clock_mode(ctx.clock));
}

/* GET /v1/clock: the decision clock.  POST /v1/clock {"now": RFC3339} moves
 * a manual clock (409 for any other mode). */
static void clock_route(struct evhttp_request *req, void *arg)
{
    (void)arg;
    if (evhttp_request_get_command(req) == EVHTTP_REQ_GET) {
        reply_json(req, 200, clock_json());
        return;
    }
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        reply_json(req, 405, json_pack("{s:s}", "error", "GET or POST"));
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    char *body = malloc(len + 1);
    json_t *doc = NULL;
    const char *now = NULL;
    int64_t us;

    if (!body) {
        reply_json(req, 500, json_pack("{s:s}", "error", "out of memory"));
        return;
    }
    evbuffer_remove(in, body, len);
    body[len] = '\0';
    doc = json_loads(body, 0, NULL);
    free(body);
    if (!doc || json_unpack(doc, "{s:s}", "now", &now) < 0 || rc_time_parse_rfc3339(now, &us) < 0) {
        json_decref(doc);
        reply_json(req, 400, json_pack("{s:s}", "error", "body must be {\"now\": \"RFC 3339 instant\"}"));
        return;
    }
    json_decref(doc);
    if (rc_clock_set(ctx.clock, us) < 0) {
        reply_json(req, 409, json_pack("{s:s}", "error", "the clock is not manual (config clock=manual)"));
        return;
    }
    rc_info("clock set now=%s", now);
    reply_json(req, 200, clock_json());
}

static void status_route(struct evhttp_request *req, void *arg)
{
    char now[40];
    (void)arg;
    rc_time_format_rfc3339(rc_clock_now(ctx.clock), now);
    reply_json(req, 200,
               json_pack("{s:s, s:s, s:s, s:{s:b, s:b, s:i}, s:{s:b, s:b, s:i}}", "level", ctx.name,
                         "group", ctx.group, "clock", now,
                         "daily", "enabled", cfg.daily, "ok", atomic_load(&ctx.daily_ok),
                         "partitions", atomic_load(&ctx.daily_parts),
                         "urgent", "enabled", cfg.urgent, "ok", atomic_load(&ctx.urgent_ok),
                         "partitions", atomic_load(&ctx.urgent_parts)));
}

static int check_part(bool enabled, bool ok, int64_t beat, const char *what, char *msg, size_t len)
{
    int64_t age;

    if (!enabled)
        return 0;
    age = rc_now_us() - beat;
    if (!ok) {
        snprintf(msg, len, "%s: last PostgreSQL or Kafka operation failed", what);
        return 1;
    }
    if (age > 60LL * 1000000) {
        snprintf(msg, len, "%s: loop stalled for %lld s", what, (long long)(age / 1000000));
        return 1;
    }
    return 0;
}

static int check_daily(void *opaque, char *msg, size_t len)
{
    (void)opaque;
    return check_part(cfg.daily, atomic_load(&ctx.daily_ok), atomic_load(&ctx.daily_beat), "desk", msg, len);
}

static int check_urgent(void *opaque, char *msg, size_t len)
{
    (void)opaque;
    return check_part(cfg.urgent, atomic_load(&ctx.urgent_ok), atomic_load(&ctx.urgent_beat),
                      "urgent relay", msg, len);
}

static void on_stop(void *opaque)
{
    (void)opaque;
    atomic_store(&ctx.running, false);
}

/* A worker that failed clears `running`: the whole process then stops so
 * that its supervisor restarts it, rather than limp on half-working. */
static void watchdog(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    /* Serves the probe handle's error events, which nothing else reads. */
    rc_producer_poll(probe_kafka, 0);
    if (!atomic_load(&ctx.running))
        rc_service_stop(svc);
}

/* The probe's handle: the desk's Kafka settings, without idempotence (it
 * never produces, so it need not ask the broker for a producer id).
 * Returns NULL with errbuf filled. */
static rc_producer *probe_handle_new(char *errbuf, size_t errlen)
{
    const char **props = calloc(ctx.nkafka_props + 1, sizeof *props);
    rc_producer *p = NULL;

    if (!props) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < ctx.nkafka_props; i++)
        props[i] = ctx.kafka_props[i];
    props[ctx.nkafka_props] = "enable.idempotence=false";
    p = rc_producer_new(cfg.kafka_brokers, props, ctx.nkafka_props + 1, NULL, NULL, errbuf, errlen);
    free(props);
    return p;
}

static void create_metrics(void)
{
    static const double latency[] = {0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5};
    static const double batch[] = {0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30};
    level_metrics *m = &ctx.m;

    m->consumed = rc_metrics_counter("rollcall_level_aggregates_consumed_total",
                                     "Live aggregates consumed from rollups.<level>", NULL);
    m->invalid = rc_metrics_counter("rollcall_level_dead_letters_total",
                                    "Consumed aggregates refused (recorded in rollcall.dead_letter)", NULL);
    m->version_conflicts = rc_metrics_counter(
        "rollcall_level_aggregate_version_conflicts_total",
        "Aggregates received again with their version and id but other numbers (not filed)", NULL);
    for (int r = 0; r < 4; r++) {
        char labels[64];
        snprintf(labels, sizeof labels, "reason=\"%s\"", rc_level_reason_name((rc_file_reason)r));
        m->filed[r] = rc_metrics_counter("rollcall_level_filed_total",
                                         "Filed reports acknowledged by Kafka, by reason", labels);
    }
    m->filing_failed = rc_metrics_counter("rollcall_level_filing_failures_total",
                                          "Filed reports not acknowledged (filed again by the sweep)", NULL);
    m->reminders = rc_metrics_counter("rollcall_level_reminders_total",
                                      "Reminders published for missing children", NULL);
    m->escalations = rc_metrics_counter("rollcall_level_escalations_total", "Escalations raised", NULL);
    m->urgent_seen = rc_metrics_counter("rollcall_level_urgent_seen_total",
                                        "Messages read from reports.urgent", NULL);
    m->urgent_forwarded = rc_metrics_counter("rollcall_level_urgent_forwarded_total",
                                             "Urgent reports forwarded one level up (acknowledged)", NULL);
    m->urgent_invalid = rc_metrics_counter("rollcall_level_urgent_invalid_total",
                                           "Urgent messages that could not be forwarded", NULL);
    m->urgent_retries = rc_metrics_counter("rollcall_level_urgent_retries_total",
                                           "Urgent forwards sent again after a failed delivery", NULL);
    m->urgent_forward = rc_metrics_histogram("rollcall_level_urgent_forward_seconds",
                                             "Urgent report read -> forward acknowledged", NULL, latency,
                                             sizeof latency / sizeof latency[0]);
    m->urgent_hop_lag = rc_metrics_histogram("rollcall_level_urgent_hop_lag_seconds",
                                             "Previous hop's time -> this level's hop time", NULL, latency,
                                             sizeof latency / sizeof latency[0]);
    m->batch_seconds = rc_metrics_histogram("rollcall_level_batch_seconds",
                                            "One batch of aggregates: stored, filed, offsets stored", NULL,
                                            batch, sizeof batch / sizeof batch[0]);
    m->awaiting_signoff = rc_metrics_gauge("rollcall_level_awaiting_signoff",
                                           "Reports of this level waiting for a manual sign-off", NULL);
    m->missing_after_deadline = rc_metrics_gauge("rollcall_level_missing_after_deadline",
                                                 "Children missing from this level's units for the "
                                                 "newest period past its deadline", NULL);
    m->incomplete_after_deadline = rc_metrics_gauge("rollcall_level_incomplete_after_deadline",
                                                    "Units of this level with children missing for "
                                                    "the newest period past its deadline", NULL);
}

/* The level: --level on the command line, else the program name
 * (rollcall-township ...), else the `level` setting from file or
 * environment.  The program name beats the environment so that three
 * services started with one environment (deploy/stack.sh) stay distinct. */
static int pick_level(int argc, char **argv)
{
    char *copy = strdup(argv[0]);
    const char *base = copy ? basename(copy) : "";
    int level = 0;
    bool on_command_line = false;

    for (int i = 1; i < argc; i++)
        if (strncmp(argv[i], "--level", 7) == 0 && (argv[i][7] == '=' || argv[i][7] == '\0'))
            on_command_line = true;
    if (!on_command_line && strncmp(base, "rollcall-", 9) == 0)
        level = rc_level_parse(base + 9);
    if (!level && cfg.level_name)
        level = rc_level_parse(cfg.level_name);
    free(copy);
    return level;
}

int main(int argc, char **argv)
{
    rc_config *conf = NULL;
    rc_probe *probe = NULL;
    struct event *wd = NULL;
    pthread_t daily_thread, urgent_thread;
    bool daily_started = false, urgent_started = false;
    char err[512], appname[64];
    int status = 1;

    rc_service_limit_arenas();
    rc_log_init("level", RC_LOG_INFO);
    conf = rc_config_load(items, argc, argv, err, sizeof err);
    if (!conf)
        rc_die("%s", err);
    if (rc_config_help_requested(conf)) {
        printf("usage: %s [--key=value ...]\n\n", argv[0]);
        rc_config_usage(items, stdout);
        rc_config_free(conf);
        return 0;
    }
    ctx.level = pick_level(argc, argv);
    if (ctx.level != 2 && ctx.level != 3 && ctx.level != 5)
        rc_die("config: level must be township, county or province (--level, or run as "
               "rollcall-<level>)");
    ctx.name = rc_level_name(ctx.level);
    rc_log_init(ctx.name, log_level);
    if (strcmp(cfg.start_from, "beginning") != 0 && strcmp(cfg.start_from, "end") != 0)
        rc_die("config: start_from = %s must be beginning or end", cfg.start_from);
    snprintf(ctx.submitter, sizeof ctx.submitter, "rollcall-%s", ctx.name);
    snprintf(ctx.group, sizeof ctx.group, "%s", cfg.group[0] ? cfg.group : ctx.submitter);
    ctx.cfg = &cfg;
    ctx.kafka_props = rc_config_kafka_props(conf, &ctx.nkafka_props);
    ctx.clock = rc_clock_new(cfg.clock, err, sizeof err);
    if (!ctx.clock)
        rc_die("config: %s", err);
    atomic_store(&ctx.running, true);
    create_metrics();

    svc = rc_service_new(ctx.submitter, cfg.listen_addr, cfg.http_port, err, sizeof err);
    if (!svc)
        rc_die("%s", err);
    rc_service_route(svc, "/v1/clock", clock_route, NULL);
    rc_service_route(svc, "/v1/status", status_route, NULL);
    if (!(probe_kafka = probe_handle_new(err, sizeof err)))
        rc_die("kafka: %s", err);
    snprintf(appname, sizeof appname, "%s-health", ctx.submitter);
    if (!(probe = rc_probe_new(cfg.pg_dsn, appname, rc_producer_handle(probe_kafka), NULL, NULL, err,
                               sizeof err)))
        rc_die("%s", err);
    rc_service_add_health_check(svc, ctx.name, rc_probe_check, probe);
    rc_service_add_health_check(svc, "desk", check_daily, NULL);
    rc_service_add_health_check(svc, "urgent", check_urgent, NULL);
    rc_service_on_stop(svc, on_stop, NULL);
    wd = event_new(rc_service_base(svc), -1, EV_PERSIST, watchdog, NULL);
    struct timeval every = {0, 200000};
    if (!wd || event_add(wd, &every) < 0)
        rc_die("watchdog timer not created");

    atomic_store(&ctx.daily_beat, rc_now_us());
    atomic_store(&ctx.urgent_beat, rc_now_us());
    if (cfg.urgent) {
        if (pthread_create(&urgent_thread, NULL, level_urgent_main, &ctx) != 0)
            rc_die("urgent relay thread not started");
        urgent_started = true;
    }
    if (cfg.daily) {
        if (pthread_create(&daily_thread, NULL, level_daily_main, &ctx) != 0)
            rc_die("desk thread not started");
        daily_started = true;
    }
    rc_info("rollcall-%s listening port=%d clock=%s group=%s", ctx.name, rc_service_port(svc),
            rc_clock_mode(ctx.clock), ctx.group);

    status = rc_service_run(svc) == 0 ? 0 : 1;
    atomic_store(&ctx.running, false);
    if (urgent_started)
        pthread_join(urgent_thread, NULL);
    if (daily_started)
        pthread_join(daily_thread, NULL);
    /* A worker that stopped on its own is a failure even if the stop was clean. */
    if ((cfg.daily && !atomic_load(&ctx.daily_ok)) || (cfg.urgent && !atomic_load(&ctx.urgent_ok)))
        status = 1;
    event_free(wd);
    rc_probe_free(probe);
    rc_producer_free(probe_kafka);
    rc_service_free(svc);
    rc_clock_free(ctx.clock);
    rc_config_free(conf);
    rc_info("stopped status=%d", status);
    return status;
}
