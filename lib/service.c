/* rc_service — see rc_service.h.  libevent sample/ style: one loop, signal
 * events whose callbacks only start the stop path, one reply per request. */
#include "rc_service.h"
#include "rc_log.h"
#include "rc_metrics.h"

#include <arpa/inet.h>
#include <malloc.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#define SEEN_CODES 8

struct route {
    rc_service *svc;
    char *path;                 /* NULL for the generic route */
    const char *label;          /* path label: the path, or "other" */
    void (*cb)(struct evhttp_request *, void *);
    void *arg;
    struct { int code; rc_counter *counter; } seen[SEEN_CODES];
};

struct check {
    char *name;
    int (*fn)(void *, char *, size_t);
    void *opaque;
    /* The log says when a check starts failing, at most once a minute
     * while it goes on failing, and when it recovers: a probe polling
     * /healthz every second must not write a line a second. */
    bool failing;
    time_t logged;
    unsigned long quiet;        /* failed requests not logged since */
};

#define HEALTH_LOG_EVERY_S 60

struct hook {
    void (*fn)(void *);
    void *opaque;
};

struct rc_service {
    char *name;
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *listener;
    int port;
    struct event *sigterm, *sigint;
    struct route **routes;
    size_t nroutes;
    struct check *checks;
    size_t nchecks;
    struct hook *hooks;
    size_t nhooks;
    int grace_ms;
    bool stopping;
};

/* ---- request counting ---- */

static rc_counter *route_counter(struct route *r, int code)
{
    size_t i;
    char labels[160];
    for (i = 0; i < SEEN_CODES && r->seen[i].counter; i++)
        if (r->seen[i].code == code)
            return r->seen[i].counter;
    snprintf(labels, sizeof labels, "path=\"%s\",code=\"%d\"", r->label, code);
    rc_counter *c = rc_metrics_counter("rc_http_requests_total",
                                       "HTTP requests answered, by route and status code.", labels);
    if (i < SEEN_CODES) {
        r->seen[i].code = code;
        r->seen[i].counter = c;
    }
    return c;
}

static void on_complete(struct evhttp_request *req, void *arg)
{
    rc_counter_inc(route_counter(arg, evhttp_request_get_response_code(req)));
}

static void dispatch(struct evhttp_request *req, void *arg)
{
    struct route *r = arg;
    evhttp_request_set_on_complete_cb(req, on_complete, r);
    r->cb(req, r->arg);
}

int rc_service_route(rc_service *svc, const char *path,
                     void (*cb)(struct evhttp_request *req, void *arg), void *arg)
{
    struct route *r = NULL, **rs;

    for (size_t i = 0; i < svc->nroutes; i++) {
        struct route *o = svc->routes[i];
        if ((!path && !o->path) || (path && o->path && strcmp(path, o->path) == 0)) {
            if (!path) {        /* the generic route may be replaced */
                o->cb = cb;
                o->arg = arg;
                return 0;
            }
            return -1;
        }
    }
    if (!(rs = realloc(svc->routes, (svc->nroutes + 1) * sizeof *rs)))
        return -1;
    svc->routes = rs;
    if (!(r = calloc(1, sizeof *r)) || (path && !(r->path = strdup(path))))
        goto err;
    r->svc = svc;
    r->label = path ? r->path : "other";
    r->cb = cb;
    r->arg = arg;
    if (path) {
        if (evhttp_set_cb(svc->http, path, dispatch, r) != 0)
            goto err;
    } else {
        evhttp_set_gencb(svc->http, dispatch, r);
    }
    svc->routes[svc->nroutes++] = r;
    return 0;
err:
    if (r)
        free(r->path);
    free(r);
    return -1;
}

/* ---- built-in routes ---- */

static void reply_text(struct evhttp_request *req, int code, const char *reason, const char *text)
{
    struct evbuffer *body = evbuffer_new();
    if (body)
        evbuffer_add(body, text, strlen(text));
    evhttp_send_reply(req, code, reason, body);
    if (body)
        evbuffer_free(body);
}

/* Returns true when the method is GET or HEAD; otherwise replies 405. */
static bool get_only(struct evhttp_request *req)
{
    if (evhttp_request_get_command(req) & (EVHTTP_REQ_GET | EVHTTP_REQ_HEAD))
        return true;
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
    reply_text(req, 405, "Method Not Allowed", "method not allowed\n");
    return false;
}

static void handle_healthz(struct evhttp_request *req, void *arg)
{
    rc_service *svc = arg;
    struct evbuffer *body = NULL;
    bool healthy = true;

    if (!get_only(req))
        return;
    if (!(body = evbuffer_new())) {
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
        return;
    }
    for (size_t i = 0; i < svc->nchecks; i++) {
        struct check *c = &svc->checks[i];
        char msg[256] = "";
        time_t now = time(NULL);
        if (c->fn(c->opaque, msg, sizeof msg) != 0) {
            msg[sizeof msg - 1] = '\0';
            healthy = false;
            evbuffer_add_printf(body, "fail %s: %s\n", c->name, msg);
            if (!c->failing) {
                rc_warn("health check failed check=%s reason=\"%s\"", c->name, msg);
                c->failing = true;
                c->logged = now;
                c->quiet = 0;
            } else if (now - c->logged >= HEALTH_LOG_EVERY_S) {
                rc_warn("health check still failing check=%s reason=\"%s\" failed_requests=%lu",
                        c->name, msg, c->quiet + 1);
                c->logged = now;
                c->quiet = 0;
            } else {
                c->quiet++;
            }
        } else if (c->failing) {
            rc_info("health check recovered check=%s failed_requests_unlogged=%lu", c->name, c->quiet);
            c->failing = false;
        }
    }
    if (healthy)
        evbuffer_add(body, "ok\n", 3);
    evhttp_send_reply(req, healthy ? HTTP_OK : 503, healthy ? "OK" : "Service Unavailable", body);
    evbuffer_free(body);
}

static void handle_metrics(struct evhttp_request *req, void *arg)
{
    struct evbuffer *body = NULL;

    if (!get_only(req))
        return;
    if (!(body = evbuffer_new()) || rc_metrics_render(body) < 0) {
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
        goto done;
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4");
    evhttp_send_reply(req, HTTP_OK, "OK", body);
done:
    if (body)
        evbuffer_free(body);
}

static void handle_not_found(struct evhttp_request *req, void *arg)
{
    reply_text(req, HTTP_NOTFOUND, "Not Found", "not found\n");
}

/* ---- stop path ---- */

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    rc_service *svc = arg;
    rc_info("signal received signal=%s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    rc_service_stop(svc);
}

void rc_service_stop(rc_service *svc)
{
    struct timeval grace;

    if (svc->stopping) {
        rc_info("stopping now");
        event_base_loopbreak(svc->base);
        return;
    }
    svc->stopping = true;
    rc_info("stopping port=%d", svc->port);
    if (svc->listener) {
        evhttp_del_accept_socket(svc->http, svc->listener);
        svc->listener = NULL;
    }
    for (size_t i = svc->nhooks; i-- > 0;)
        svc->hooks[i].fn(svc->hooks[i].opaque);
    grace.tv_sec = svc->grace_ms / 1000;
    grace.tv_usec = (svc->grace_ms % 1000) * 1000;
    event_base_loopexit(svc->base, svc->grace_ms > 0 ? &grace : NULL);
}

/* ---- lifecycle ---- */

void rc_service_limit_arenas(void)
{
    mallopt(M_ARENA_MAX, 2);
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
}

rc_service *rc_service_new(const char *name, const char *listen_addr, int port,
                           char *errbuf, size_t errlen)
{
    rc_service *svc = NULL;
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof ss;

    if (!listen_addr)
        listen_addr = "0.0.0.0";
    /* A client that hangs up must cost us an EPIPE, not the process. */
    signal(SIGPIPE, SIG_IGN);
    if (!(svc = calloc(1, sizeof *svc)) || !(svc->name = strdup(name ? name : "rollcall")))
        goto oom;
    svc->grace_ms = 100;
    if (!(svc->base = event_base_new())) {
        rc_errf(errbuf, errlen, "service: event_base_new failed");
        goto err;
    }
    if (!(svc->http = evhttp_new(svc->base)))
        goto oom;
    rc_service_set_limits(svc, 1 << 20, 64 << 10, 30);
    evhttp_set_default_content_type(svc->http, "text/plain; charset=utf-8");
    /* Read an oversize body before the 413, so that the client can read it. */
    evhttp_set_flags(svc->http, EVHTTP_SERVER_LINGERING_CLOSE);
    svc->listener = evhttp_bind_socket_with_handle(svc->http, listen_addr, (ev_uint16_t)port);
    if (!svc->listener) {
        rc_errf(errbuf, errlen, "service: cannot listen on %s:%d", listen_addr, port);
        goto err;
    }
    if (getsockname(evhttp_bound_socket_get_fd(svc->listener), (struct sockaddr *)&ss, &sslen) < 0) {
        rc_errf(errbuf, errlen, "service: getsockname failed");
        goto err;
    }
    svc->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
    if (rc_service_route(svc, "/healthz", handle_healthz, svc) < 0 ||
        rc_service_route(svc, "/metrics", handle_metrics, svc) < 0 ||
        rc_service_route(svc, NULL, handle_not_found, svc) < 0)
        goto oom;
    if (!(svc->sigterm = evsignal_new(svc->base, SIGTERM, on_signal, svc)) ||
        !(svc->sigint = evsignal_new(svc->base, SIGINT, on_signal, svc)) ||
        evsignal_add(svc->sigterm, NULL) < 0 || evsignal_add(svc->sigint, NULL) < 0) {
        rc_errf(errbuf, errlen, "service: cannot install signal events");
        goto err;
    }
    return svc;
oom:
    rc_errf(errbuf, errlen, "service: out of memory");
err:
    rc_service_free(svc);
    return NULL;
}

struct event_base *rc_service_base(rc_service *svc)
{
    return svc->base;
}

struct evhttp *rc_service_http(rc_service *svc)
{
    return svc->http;
}

int rc_service_port(rc_service *svc)
{
    return svc->port;
}

void rc_service_add_health_check(rc_service *svc, const char *name,
                                 int (*check)(void *opaque, char *msg, size_t len), void *opaque)
{
    struct check *c = realloc(svc->checks, (svc->nchecks + 1) * sizeof *c);
    char *copy = strdup(name);
    if (!c || !copy) {
        /* At start-up only; a check that cannot be added is a fatal bug. */
        rc_die("service: out of memory adding health check %s", name);
    }
    svc->checks = c;
    c[svc->nchecks++] = (struct check){.name = copy, .fn = check, .opaque = opaque};
}

void rc_service_on_stop(rc_service *svc, void (*fn)(void *opaque), void *opaque)
{
    struct hook *h = realloc(svc->hooks, (svc->nhooks + 1) * sizeof *h);
    if (!h)
        rc_die("service: out of memory adding a stop hook");
    svc->hooks = h;
    h[svc->nhooks++] = (struct hook){fn, opaque};
}

void rc_service_set_limits(rc_service *svc, size_t max_body, size_t max_headers, int timeout_s)
{
    if (max_body)
        evhttp_set_max_body_size(svc->http, (ev_ssize_t)max_body);
    if (max_headers)
        evhttp_set_max_headers_size(svc->http, (ev_ssize_t)max_headers);
    if (timeout_s > 0)
        evhttp_set_timeout(svc->http, timeout_s);
}

void rc_service_set_grace(rc_service *svc, int grace_ms)
{
    svc->grace_ms = grace_ms > 0 ? grace_ms : 0;
}

int rc_service_run(rc_service *svc)
{
    rc_info("listening port=%d", svc->port);
    if (event_base_dispatch(svc->base) < 0) {
        rc_error("event loop failed");
        return -1;
    }
    rc_info("stopped");
    return 0;
}

void rc_service_free(rc_service *svc)
{
    if (!svc)
        return;
    if (svc->sigterm)
        event_free(svc->sigterm);
    if (svc->sigint)
        event_free(svc->sigint);
    if (svc->http)
        evhttp_free(svc->http);
    if (svc->base)
        event_base_free(svc->base);
    for (size_t i = 0; i < svc->nroutes; i++) {
        free(svc->routes[i]->path);
        free(svc->routes[i]);
    }
    for (size_t i = 0; i < svc->nchecks; i++)
        free(svc->checks[i].name);
    free(svc->routes);
    free(svc->checks);
    free(svc->hooks);
    free(svc->name);
    free(svc);
}
