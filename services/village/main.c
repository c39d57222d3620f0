/* rollcall-village — the intake where every village and community files its
 * report: the configuration table, start-up (registry, tokens, producers,
 * HTTP server) and an orderly stop.  The intake itself is in intake.c. */
#include "village.h"
#include "rc_config.h"
#include "rc_metrics.h"
#include "rc_pg.h"
#include "rc_service.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

static village_config cfg;

static const rc_cfg_item items[] = {
    RC_CFG_PG_DSN(&cfg.pg_dsn, "PostgreSQL (libpq conninfo), as rollcall_intake: the unit registry and "
                               "the tokens are read at start"),
    RC_CFG_KAFKA_BROKERS(&cfg.kafka_brokers, NULL),
    RC_CFG_LISTEN_ADDR(&cfg.listen_addr),
    RC_CFG_HTTP_PORT(&cfg.http_port, "8080"),
    {"max_body", RC_CFG_INT, &cfg.max_body, "65536", 512, 16 << 20,
     "largest body of POST /v1/reports, bytes (larger: 413)", 0},
    {"max_batch_body", RC_CFG_INT, &cfg.max_batch_body, "8388608", 1024, 1 << 30,
     "largest body of POST /v1/reports:batch, bytes (larger: 413)", 0},
    {"max_batch_items", RC_CFG_INT, &cfg.max_batch_items, "20000", 1, 1000000,
     "most reports in one batch (more: 413)", 0},
    {"max_headers", RC_CFG_INT, &cfg.max_headers, "8192", 512, 1 << 20,
     "largest request head (request line and headers), bytes", 0},
    {"timeout", RC_CFG_MS, &cfg.timeout_ms, "30s", 1000, 3600000,
     "read/write timeout of a request, and idle keep-alive timeout (whole seconds)", 0},
    {"max_connections_per_address", RC_CFG_INT, &cfg.max_connections_per_address, "2000", 0,
     1000000, "open connections from one host at most; more are cut (0: no cap)", 0},
    {"request_deadline", RC_CFG_MS, &cfg.request_deadline_ms, "30s", 0, 3600000,
     "a connection that has not sent a whole request this long after it opened or after its "
     "previous one is cut: evhttp's timeout restarts with every byte, so a client sending a "
     "byte every few seconds would hold its slot for ever (0: never)", 0},
    {"max_connections", RC_CFG_INT, &cfg.max_connections, "10000", 1, 1000000,
     "open client connections; beyond it new clients wait in the listen backlog", 0},
    {"max_inflight", RC_CFG_INT, &cfg.max_inflight, "50000", 1, 10000000,
     "reports waiting for Kafka; beyond it new reports get 503 at once", 0},
    {"window", RC_CFG_INT, &cfg.window_days, "7", 0, 3660,
     "a report's period may be at most this many days before today (Asia/Shanghai)", 0},
    {"future_days", RC_CFG_INT, &cfg.future_days, "0", 0, 31,
     "... and at most this many days after today", 0},
    {"bounds", RC_CFG_STRING, &cfg.bounds, "", 0, 4096,
     "indicator bounds overriding the codec's: \"masks=500000000,extra=1000000\"", 0},
    {"fast_inflight", RC_CFG_INT, &cfg.fast_inflight, "64", 0, 1000000,
     "single reports go to Kafka at once (linger.ms=0) while fewer than this many wait there; "
     "beyond, they join the lingering batches (0: always batch)", 0},
    {"urgent_rtprio", RC_CFG_INT, &cfg.urgent_rtprio, "10", 0, 99,
     "real-time (SCHED_RR) priority of the reports.urgent producer's threads; needs "
     "CAP_SYS_NICE (0: off)", 0},
    {"produce_timeout", RC_CFG_MS, &cfg.produce_timeout_ms, "5s", 100, 300000,
     "a report not acknowledged by Kafka within this gets 503 (message.timeout.ms)", 0},
    {"retry_after", RC_CFG_INT, &cfg.retry_after_s, "1", 0, 3600,
     "Retry-After seconds sent with 503", 0},
    {"auth", RC_CFG_BOOL, &cfg.auth, "on", 0, 0,
     "require a unit token (Authorization: Bearer); off only for benchmarks", 0},
    {"registry_reload", RC_CFG_MS, &cfg.registry_reload_ms, "5s", 0, 3600000,
     "how often rollcall.unit is checked and, when it changed (rollcall registry import), "
     "loaded again off the request path (0: only at start)", 0},
    {"token_reload", RC_CFG_MS, &cfg.token_reload_ms, "5m", 0, 86400000,
     "full reload of the token cache (changes also arrive at once by LISTEN/NOTIFY); 0 = only on reconnect", 0},
    {"dedupe_entries", RC_CFG_INT, &cfg.dedupe_entries, "100000", 16, 50000000,
     "report_ids remembered for idempotent retries (64 bytes each)", 0},
    {"dedupe_window", RC_CFG_MS, &cfg.dedupe_window_ms, "15m", 1000, 86400000,
     "how long a report_id is remembered (if not pushed out by dedupe_entries newer ones)", 0},
    {"archive_check", RC_CFG_BOOL, &cfg.archive_check, "on", 0, 0,
     "a report_id chosen by the client and not in the idempotency window is looked up in the "
     "archive (rollcall.intake_archived): reused with other content, 409; the same report, its "
     "first answer.  While PostgreSQL does not answer, reports are accepted unchecked", 0},
    RC_CFG_LOG_LEVEL(&cfg.log_level),
    {NULL},
};

static double gauge_connections(void *opaque)
{
    return (double)connlimit_open(opaque);
}

/* Loads the registry without names (about 8 bytes a unit: the national
 * registry fits in a few MB).  Dies on failure: start-up only. */
static rc_registry *load_registry(void)
{
    char err[512];
    rc_pg *pg = rc_pg_connect(cfg.pg_dsn, "rollcall-village", err, sizeof err);
    rc_registry *reg;

    if (!pg)
        rc_die("cannot connect to PostgreSQL: %s", err);
    if (!(reg = rc_registry_new(false)))
        rc_die("out of memory");
    if (rc_registry_load_pg(reg, rc_pg_conn(pg), err, sizeof err) < 0)
        rc_die("cannot load the unit registry: %s", err);
    rc_pg_free(pg);
    if (rc_registry_count(reg, ROLLCALL__LEVEL__LEVEL_VILLAGE) == 0)
        rc_warn("the registry holds no village: every report will be refused (run rollcall registry import)");
    return reg;
}

int main(int argc, char **argv)
{
    char err[512];
    rc_config *conf;
    rc_registry *reg;
    auth *a = NULL;
    rc_service *svc;
    intake *in;
    connlimit *cl;
    regwatch *rw;
    const char *const *props;
    size_t nprops, body_cap;
    int rc;

    /* Two settings measured under load (bench/village.sh): glibc otherwise
     * trims librdkafka's thread arena back with madvise after nearly every
     * batch, and libevent's epoll changelist folds the "stop reading, start
     * writing" changes evhttp makes for each reply into one epoll_ctl. */
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    mallopt(M_TOP_PAD, 16 << 20);
    setenv("EVENT_EPOLL_USE_CHANGELIST", "1", 0);

    rc_log_init("village", RC_LOG_INFO);
    if (!(conf = rc_config_load(items, argc, argv, err, sizeof err)))
        rc_die("%s", err);
    if (rc_config_help_requested(conf)) {
        printf("usage: rollcall-village [--config FILE] [--key=value ...]\n\n");
        rc_config_usage(items, stdout);
        rc_config_free(conf);
        return 0;
    }
    rc_log_init("village", cfg.log_level);
    if (!cfg.kafka_brokers || !*cfg.kafka_brokers)
        rc_die("config: kafka_brokers is required (ROLLCALL_KAFKA_BROKERS or --kafka_brokers)");
    props = rc_config_kafka_props(conf, &nprops);

    reg = load_registry();
    if (cfg.auth) {
        if (!(a = auth_new(cfg.pg_dsn, cfg.token_reload_ms, err, sizeof err)))
            rc_die("%s", err);
    } else {
        rc_warn("authentication is OFF (auth = off): any client may submit for any village");
    }

    if (!(svc = rc_service_new("village", cfg.listen_addr, cfg.http_port, err, sizeof err)))
        rc_die("%s", err);
    /* evhttp's own cap is the larger one; the single-report cap is checked
     * by the handler so that its 413 has a JSON body. */
    body_cap = (size_t)(cfg.max_batch_body > cfg.max_body ? cfg.max_batch_body : cfg.max_body);
    rc_service_set_limits(svc, body_cap, (size_t)cfg.max_headers, (cfg.timeout_ms + 999) / 1000);
    rc_service_set_grace(svc, 500);
    if (!(in = intake_new(&cfg, rc_service_base(svc), reg, a, props, nprops, err, sizeof err)))
        rc_die("%s", err);
    if (intake_attach(in, svc) < 0)
        rc_die("cannot register the routes");
    /* from here the watch owns reg */
    if (!(rw = regwatch_new(cfg.pg_dsn, cfg.registry_reload_ms, rc_service_base(svc), in, reg,
                            err, sizeof err)))
        rc_die("%s", err);
    if (!(cl = connlimit_new(rc_service_base(svc), rc_service_http(svc), cfg.max_connections,
                             cfg.max_connections_per_address, cfg.request_deadline_ms)))
        rc_die("out of memory");
    intake_set_connlimit(in, cl);
    connlimit_set_head_check(cl, (size_t)cfg.max_headers, intake_head_check, in);
    rc_metrics_gauge_fn("rollcall_village_connections", "Open client connections.", NULL,
                        gauge_connections, cl);
    rc_service_on_stop(svc, intake_stop, in);
    size_t nvillages = rc_registry_count(reg, ROLLCALL__LEVEL__LEVEL_VILLAGE);

    rc_info("village intake listening addr=%s port=%d villages=%zu tokens=%s max_body=%d "
            "max_batch_body=%d produce_timeout_ms=%d",
            cfg.listen_addr, rc_service_port(svc),
            nvillages, a ? "on" : "off", cfg.max_body,
            cfg.max_batch_body, cfg.produce_timeout_ms);
    rc = rc_service_run(svc);

    connlimit_free(cl);
    intake_free(in);
    regwatch_free(rw);          /* before the service: its tick lives on the loop */
    rc_service_free(svc);
    auth_free(a);
    rc_config_free(conf);
    return rc == 0 ? 0 : 1;
}
