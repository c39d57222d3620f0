/* rollcall-dashboard — the configuration table, start-up and an orderly
 * stop.  The API is in api.c, the stream in stream.c, the files in static.c. */
#include "dashboard.h"
#include "rc_config.h"
#include "rc_log.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>

static dashboard_config cfg;

static const rc_cfg_item items[] = {
    RC_CFG_PG_DSN(&cfg.pg_dsn, "PostgreSQL (libpq conninfo), as rollcall_dashboard"),
    RC_CFG_LISTEN_ADDR(&cfg.listen_addr),
    RC_CFG_HTTP_PORT(&cfg.http_port, "8086"),
    {"web_root", RC_CFG_STRING, &cfg.web_root, "build/web", 1, 4096,
     "directory of the front end's files (index.html for every other path)", 0},
    {"session_ttl", RC_CFG_MS, &cfg.session_ttl_ms, "12h", 60000, 2000000000,
     "a session's lifetime from sign-in", 0},
    {"secure_cookie", RC_CFG_BOOL, &cfg.secure_cookie, "off", 0, 0,
     "mark the session cookie Secure (on behind TLS)", 0},
    {"login_window", RC_CFG_MS, &cfg.login_window_ms, "15m", 1000, 86400000,
     "window of the sign-in rate limit", 0},
    {"login_max_account", RC_CFG_INT, &cfg.login_max_account, "10", 1, 1000000,
     "failed sign-ins per account name in the window before 429", 0},
    {"login_max_address", RC_CFG_INT, &cfg.login_max_address, "50", 1, 1000000,
     "failed sign-ins per client address in the window before 429", 0},
    {"timeout", RC_CFG_MS, &cfg.timeout_ms, "30s", 1000, 3600000,
     "read/write timeout of a request (whole seconds); the stream is exempt", 0},
    {"workers", RC_CFG_INT, &cfg.workers, "4", 1, 64,
     "threads answering API requests, each with its own PostgreSQL connection", 0},
    {"queue_max", RC_CFG_INT, &cfg.queue_max, "256", 1, 100000,
     "API requests that may wait for a worker; beyond, 503 with Retry-After", 0},
    RC_CFG_LOG_LEVEL(&cfg.log_level),
    {NULL},
};

int main(int argc, char **argv)
{
    char err[512];
    rc_config *conf;
    rc_service *svc;
    dashboard *d;
    int rc;

    rc_service_limit_arenas();
    rc_log_init("dashboard", RC_LOG_INFO);
    if (!(conf = rc_config_load(items, argc, argv, err, sizeof err)))
        rc_die("%s", err);
    if (rc_config_help_requested(conf)) {
        printf("usage: rollcall-dashboard [--config FILE] [--key=value ...]\n\n");
        rc_config_usage(items, stdout);
        rc_config_free(conf);
        return 0;
    }
    rc_log_init("dashboard", cfg.log_level);
    if (sodium_init() < 0)
        rc_die("libsodium did not initialise");
    if (!(svc = rc_service_new("dashboard", cfg.listen_addr, cfg.http_port, err, sizeof err)))
        rc_die("%s", err);
    rc_service_set_limits(svc, 64 << 10, 16 << 10, (cfg.timeout_ms + 999) / 1000);
    if (!(d = dashboard_new(&cfg, svc, err, sizeof err)))
        rc_die("%s", err);
    rc_service_on_stop(svc, dashboard_stop, d);
    rc_info("dashboard listening addr=%s port=%d web_root=%s", cfg.listen_addr,
            rc_service_port(svc), cfg.web_root);
    rc = rc_service_run(svc);
    dashboard_free(d);
    rc_service_free(svc);
    rc_config_free(conf);
    return rc == 0 ? 0 : 1;
}
