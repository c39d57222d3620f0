/* rollcall-dashboard — the read side's JSON API (services/dashboard/API.md),
 * its sign-in, the Server-Sent Events stream and the static front end.
 *
 * One libevent loop for HTTP, the static files and the stream; `workers`
 * threads, each with a PostgreSQL connection as rollcall_dashboard, for the
 * API requests (each request: BEGIN; set_config('rollcall.scope', the
 * account's unit, true); one named, parameterised query; COMMIT); one more
 * connection that LISTENs for rollcall_aggregate and one for /healthz. */
#ifndef DASHBOARD_H
#define DASHBOARD_H

#include "rc_pg.h"
#include "rc_log.h"
#include "rc_service.h"

#include <stdbool.h>
#include <stddef.h>

struct evhttp_request;
struct evbuffer;

typedef struct dashboard_config {
    char *pg_dsn;
    char *listen_addr;
    int http_port;
    char *web_root;
    int session_ttl_ms;
    bool secure_cookie;
    int login_window_ms;
    int login_max_account;
    int login_max_address;
    int timeout_ms;
    int workers;
    int queue_max;
    rc_log_level log_level;
} dashboard_config;

typedef struct dashboard dashboard;

/* The account a request is made for. */
typedef struct account {
    char name[80];
    char unit[16];
    char role[8];
} account;

dashboard *dashboard_new(const dashboard_config *cfg, rc_service *svc, char *errbuf, size_t errlen);
void dashboard_free(dashboard *d);
void dashboard_stop(void *d);

/* static.c: serves web_root (GET/HEAD); any path that is not a file gets
 * index.html (client routing).  Exactly one reply. */
void static_serve(const char *web_root, struct evhttp_request *req, const char *path);

/* stream.c: the SSE clients and the LISTEN connection. */
typedef struct stream stream;
stream *stream_new(struct event_base *base, const char *dsn, char *errbuf, size_t errlen);
/* Takes the request over: the reply is a text/event-stream that lives until
 * the client goes away or the service stops. */
void stream_add(stream *s, struct evhttp_request *req, const char *unit);
void stream_free(stream *s);
size_t stream_clients(const stream *s);

#endif
