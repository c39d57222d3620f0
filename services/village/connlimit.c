/* A cap on open client connections, which evhttp 2.1 does not have.  evhttp
 * asks us for each accepted connection's bufferevent (evhttp_set_bevcb): we
 * count it there and keep one extra reference to it, so that when evhttp
 * frees the connection (it shuts the socket down for writing, clears the
 * callbacks and drops its reference) the bufferevent stays until our sweep
 * sees the cleared callbacks, drops the last reference (closing the socket)
 * and uncounts it.  While `max` connections are open the listeners are
 * paused: new clients wait in the kernel's backlog instead of being refused. */
#include "village.h"

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define SWEEP_MS 100

/* One open connection: when it last finished reading a request (or was
 * opened), and its peer once its socket is known. */
typedef struct conn {
    struct bufferevent *bev;
    int64_t since_us;
    bool peer_known, closing;
    bool busy;                  /* a request read and not yet answered */
    struct sockaddr_storage peer;
} conn;

struct connlimit {
    struct event_base *base;
    struct evhttp *http;
    conn *bevs;
    size_t n, cap;
    size_t per_address;         /* 0: no cap */
    int64_t deadline_us;        /* 0: none */
    size_t refused, expired;    /* since the last log line */
    size_t max;
    bool paused;
    size_t pauses;              /* since the last log line */
    time_t logged;
    struct event *sweep;
};

static void set_listener(struct evhttp_bound_socket *bound, void *arg)
{
    struct evconnlistener *l = evhttp_bound_socket_get_listener(bound);
    if (!l)
        return;
    if (*(bool *)arg)
        evconnlistener_disable(l);
    else
        evconnlistener_enable(l);
}

static void pause_listeners(connlimit *cl, bool pause)
{
    if (cl->paused == pause)
        return;
    cl->paused = pause;
    evhttp_foreach_bound_socket(cl->http, set_listener, &pause);
    /* At most one line every 10 s: at the cap this flips with every close. */
    if (pause && ++cl->pauses && time(NULL) - cl->logged >= 10) {
        rc_warn("connection limit reached, accepting paused open=%zu max=%zu pauses=%zu",
                cl->n, cl->max, cl->pauses);
        cl->logged = time(NULL);
        cl->pauses = 0;
    }
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static bool same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    if (a->ss_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                      &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
    return false;
}

/* Ends a connection evhttp holds: the socket is shut down, evhttp sees the
 * end of it and frees the connection (the sweep then drops our reference). */
static void cut(conn *c)
{
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    if (fd >= 0)
        shutdown(fd, SHUT_RDWR);
    c->closing = true;
}

/* A new connection's peer, once evhttp has given the bufferevent its
 * socket: over per_address connections from the same host, it is cut. */
static void learn_peer(connlimit *cl, conn *c)
{
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    socklen_t len = sizeof c->peer;
    size_t same = 0;

    if (fd < 0 || getpeername(fd, (struct sockaddr *)&c->peer, &len) != 0)
        return;
    c->peer_known = true;
    if (!cl->per_address)
        return;
    for (size_t i = 0; i < cl->n; i++)
        if (&cl->bevs[i] != c && cl->bevs[i].peer_known && !cl->bevs[i].closing &&
            same_host(&cl->bevs[i].peer, &c->peer))
            same++;
    if (same >= cl->per_address) {
        cut(c);
        cl->refused++;
    }
}

static bool released(struct bufferevent *bev)
{
    bufferevent_data_cb r, w;
    bufferevent_event_cb e;
    void *arg;

    /* evhttp clears the read callback while it writes a reply, but the
     * event callback only when it frees the connection. */
    bufferevent_getcb(bev, &r, &w, &e, &arg);
    return r == NULL && w == NULL && e == NULL;
}

static void sweep(evutil_socket_t fd, short what, void *arg)
{
    connlimit *cl = arg;
    size_t i = 0;
    int64_t now = now_us();

    while (i < cl->n) {
        conn *c = &cl->bevs[i];
        if (released(c->bev)) {
            bufferevent_decref(c->bev);
            cl->bevs[i] = cl->bevs[--cl->n];
            continue;
        }
        if (!c->peer_known && !c->closing)
            learn_peer(cl, c);
        /* No request read in full for deadline: a client sending its
         * request a byte at a time (evhttp's timeout restarts with each
         * byte), or an idle one evhttp would soon close anyway. */
        if (cl->deadline_us && !c->closing && !c->busy && now - c->since_us > cl->deadline_us) {
            cut(c);
            cl->expired++;
        }
        i++;
    }
    if ((cl->refused || cl->expired) && time(NULL) - cl->logged >= 10) {
        rc_warn("connections cut: over max_connections_per_address=%zu, "
                "no whole request within request_deadline=%zu",
                cl->refused, cl->expired);
        cl->logged = time(NULL);
        cl->refused = cl->expired = 0;
    }
    if (cl->paused && cl->n < cl->max)
        pause_listeners(cl, false);
}

static struct bufferevent *new_connection(struct event_base *base, void *arg)
{
    connlimit *cl = arg;
    struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);

    if (!bev)
        return NULL;            /* evhttp then makes its own, uncounted */
    if (cl->n == cl->cap) {
        size_t ncap = cl->cap ? cl->cap * 2 : 256;
        conn *nb = realloc(cl->bevs, ncap * sizeof *nb);
        if (!nb)
            return bev;
        cl->bevs = nb;
        cl->cap = ncap;
    }
    bufferevent_incref(bev);
    cl->bevs[cl->n++] = (conn){.bev = bev, .since_us = now_us()};
    if (cl->n >= cl->max)
        pause_listeners(cl, true);
    return bev;
}

static void mark(connlimit *cl, struct evhttp_request *req, bool busy)
{
    struct evhttp_connection *evcon = req ? evhttp_request_get_connection(req) : NULL;
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    if (!cl || !bev)
        return;
    /* O(open connections) per request: a linear scan of a few thousand
     * pointers costs less than the request's parsing. */
    for (size_t i = 0; i < cl->n; i++)
        if (cl->bevs[i].bev == bev) {
            cl->bevs[i].since_us = now_us();
            cl->bevs[i].busy = busy;
            return;
        }
}

void connlimit_request(connlimit *cl, struct evhttp_request *req)
{
    mark(cl, req, true);
}

void connlimit_replied(connlimit *cl, struct evhttp_request *req)
{
    mark(cl, req, false);
}

connlimit *connlimit_new(struct event_base *base, struct evhttp *http, int max,
                         int per_address, int deadline_ms)
{
    connlimit *cl = calloc(1, sizeof *cl);
    struct timeval tv = {0, SWEEP_MS * 1000};

    if (!cl)
        return NULL;
    cl->base = base;
    cl->http = http;
    cl->max = max > 0 ? (size_t)max : SIZE_MAX;
    cl->per_address = per_address > 0 ? (size_t)per_address : 0;
    cl->deadline_us = deadline_ms > 0 ? (int64_t)deadline_ms * 1000 : 0;
    cl->sweep = event_new(base, -1, EV_PERSIST, sweep, cl);
    if (!cl->sweep) {
        free(cl);
        return NULL;
    }
    event_add(cl->sweep, &tv);
    evhttp_set_bevcb(http, new_connection, cl);
    return cl;
}

/* Drops our references: connections evhttp still holds live on (evhttp
 * frees them), the others are closed now.  Call while the base and the
 * evhttp still exist, i.e. before rc_service_free. */
void connlimit_free(connlimit *cl)
{
    if (!cl)
        return;
    evhttp_set_bevcb(cl->http, NULL, NULL);
    for (size_t i = 0; i < cl->n; i++)
        bufferevent_decref(cl->bevs[i].bev);
    if (cl->sweep)
        event_free(cl->sweep);
    free(cl->bevs);
    free(cl);
}

size_t connlimit_open(const connlimit *cl)
{
    return cl->n;
}
