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
#include <stdlib.h>
#include <time.h>

#define SWEEP_MS 100

struct connlimit {
    struct event_base *base;
    struct evhttp *http;
    struct bufferevent **bevs;
    size_t n, cap;
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

    while (i < cl->n) {
        if (released(cl->bevs[i])) {
            bufferevent_decref(cl->bevs[i]);
            cl->bevs[i] = cl->bevs[--cl->n];
            continue;
        }
        i++;
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
        struct bufferevent **nb = realloc(cl->bevs, ncap * sizeof *nb);
        if (!nb)
            return bev;
        cl->bevs = nb;
        cl->cap = ncap;
    }
    bufferevent_incref(bev);
    cl->bevs[cl->n++] = bev;
    if (cl->n >= cl->max)
        pause_listeners(cl, true);
    return bev;
}

connlimit *connlimit_new(struct event_base *base, struct evhttp *http, int max)
{
    connlimit *cl = calloc(1, sizeof *cl);
    struct timeval tv = {0, SWEEP_MS * 1000};

    if (!cl)
        return NULL;
    cl->base = base;
    cl->http = http;
    cl->max = max > 0 ? (size_t)max : SIZE_MAX;
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
        bufferevent_decref(cl->bevs[i]);
    if (cl->sweep)
        event_free(cl->sweep);
    free(cl->bevs);
    free(cl);
}

size_t connlimit_open(const connlimit *cl)
{
    return cl->n;
}
