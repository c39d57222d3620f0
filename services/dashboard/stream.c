/* The event stream (GET /api/stream?unit=CODE).  One connection LISTENs on
 * rollcall_aggregate, which migration 007's trigger notifies at the commit
 * of every changed live aggregate ("unit parent period version"); each
 * notification goes to the clients watching that unit or its parent.
 * Notifications need no scope: a client only ever receives codes inside the
 * unit it was allowed to watch (api.c checked it against the account).  A
 * comment line every 15 s keeps proxies from closing an idle stream. */
#include "dashboard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

typedef struct client {
    struct client *next;
    stream *s;
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    char unit[16];
} client;

struct stream {
    struct event_base *base;
    char *dsn;
    PGconn *conn;
    struct event *readable, *ping, *retry;
    client *clients;
    size_t nclients;
};

static void send_chunk(client *c, const char *text)
{
    struct evbuffer *b = evbuffer_new();
    if (!b)
        return;
    evbuffer_add(b, text, strlen(text));
    evhttp_send_reply_chunk(c->req, b);
    evbuffer_free(b);
}

static void drop(stream *s, client *gone)
{
    for (client **p = &s->clients; *p; p = &(*p)->next)
        if (*p == gone) {
            *p = gone->next;
            s->nclients--;
            free(gone);
            return;
        }
}

/* The connection closed (the client went away, or a write failed).  When
 * it fails in the middle of a reply that was not ended, libevent detaches
 * the request from the connection and leaves it to us: ending it then only
 * frees it (evhttp_send_reply_end without a connection). */
static void on_close(struct evhttp_connection *evcon, void *arg)
{
    client *c = arg;
    struct evhttp_request *req = c->req;
    drop(c->s, c);
    if (!evhttp_request_get_connection(req))
        evhttp_send_reply_end(req);
}

static void on_ping(evutil_socket_t fd, short what, void *arg)
{
    stream *s = arg;
    for (client *c = s->clients; c; c = c->next)
        send_chunk(c, ": ping\n\n");
}

static void listen_close(stream *s)
{
    if (s->readable) {
        event_free(s->readable);
        s->readable = NULL;
    }
    if (s->conn) {
        PQfinish(s->conn);
        s->conn = NULL;
    }
}

static void on_readable(evutil_socket_t fd, short what, void *arg);

static int listen_open(stream *s, char *errbuf, size_t errlen)
{
    PGresult *res;
    s->conn = PQconnectdb(s->dsn);
    if (PQstatus(s->conn) != CONNECTION_OK) {
        snprintf(errbuf, errlen, "LISTEN connection: %s", PQerrorMessage(s->conn));
        goto failed;
    }
    res = PQexec(s->conn, "LISTEN rollcall_aggregate");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        snprintf(errbuf, errlen, "LISTEN: %s", PQerrorMessage(s->conn));
        PQclear(res);
        goto failed;
    }
    PQclear(res);
    if (PQsetnonblocking(s->conn, 1) != 0)
        goto failed;
    s->readable = event_new(s->base, PQsocket(s->conn), EV_READ | EV_PERSIST, on_readable, s);
    if (!s->readable || event_add(s->readable, NULL) < 0) {
        snprintf(errbuf, errlen, "out of memory");
        goto failed;
    }
    return 0;
failed:
    listen_close(s);
    return -1;
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    stream *s = arg;
    char err[256];
    struct timeval one = {1, 0};
    if (listen_open(s, err, sizeof err) < 0) {
        rc_warn("stream: %s (retrying)", err);
        evtimer_add(s->retry, &one);
    } else {
        rc_info("stream: listening again");
    }
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    stream *s = arg;
    PGnotify *n;
    char unit[16], parent[16], period[16], data[160];
    long long version;

    if (!PQconsumeInput(s->conn) || PQstatus(s->conn) != CONNECTION_OK) {
        struct timeval one = {1, 0};
        rc_warn("stream: LISTEN connection lost: %s", PQerrorMessage(s->conn));
        listen_close(s);
        evtimer_add(s->retry, &one);
        return;
    }
    while ((n = PQnotifies(s->conn))) {
        if (sscanf(n->extra, "%15s %15s %15s %lld", unit, parent, period, &version) == 4) {
            snprintf(data, sizeof data,
                     "event: aggregate\ndata: {\"unit_code\":\"%s\",\"period\":\"%s\",\"version\":%lld}\n\n",
                     unit, period, version);
            for (client *c = s->clients; c; c = c->next)
                if (strcmp(c->unit, unit) == 0 || strcmp(c->unit, parent) == 0)
                    send_chunk(c, data);
        }
        PQfreemem(n);
    }
}

stream *stream_new(struct event_base *base, const char *dsn, char *errbuf, size_t errlen)
{
    stream *s = calloc(1, sizeof *s);
    struct timeval fifteen = {15, 0};
    if (!s || !(s->dsn = strdup(dsn))) {
        free(s);
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    s->base = base;
    s->ping = event_new(base, -1, EV_PERSIST, on_ping, s);
    s->retry = evtimer_new(base, on_retry, s);
    if (!s->ping || !s->retry || event_add(s->ping, &fifteen) < 0) {
        snprintf(errbuf, errlen, "out of memory");
        stream_free(s);
        return NULL;
    }
    if (listen_open(s, errbuf, errlen) < 0) {
        stream_free(s);
        return NULL;
    }
    return s;
}

void stream_add(stream *s, struct evhttp_request *req, const char *unit)
{
    client *c = calloc(1, sizeof *c);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    if (!c) {
        evhttp_send_error(req, 503, NULL);
        return;
    }
    c->s = s;
    c->req = req;
    c->evcon = evhttp_request_get_connection(req);
    snprintf(c->unit, sizeof c->unit, "%s", unit);
    c->next = s->clients;
    s->clients = c;
    s->nclients++;
    /* The stream outlives the service's request timeout. */
    evhttp_connection_set_timeout(c->evcon, 24 * 3600);
    evhttp_connection_set_closecb(c->evcon, on_close, c);
    evhttp_add_header(h, "Content-Type", "text/event-stream");
    evhttp_add_header(h, "Cache-Control", "no-cache");
    evhttp_add_header(h, "X-Accel-Buffering", "no");
    evhttp_send_reply_start(req, 200, "OK");
    send_chunk(c, ": connected\n\n");
}

size_t stream_clients(const stream *s)
{
    return s ? s->nclients : 0;
}

void stream_free(stream *s)
{
    if (!s)
        return;
    while (s->clients) {
        client *c = s->clients;
        s->clients = c->next;
        evhttp_connection_set_closecb(c->evcon, NULL, NULL);
        evhttp_send_reply_end(c->req);
        free(c);
    }
    listen_close(s);
    if (s->ping)
        event_free(s->ping);
    if (s->retry)
        event_free(s->retry);
    free(s->dsn);
    free(s);
}
