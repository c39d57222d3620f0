/* A cap on open client connections, which evhttp 2.1 does not have, and a
 * look at each request head before evhttp reads the body (see on_input).  evhttp
 * asks us for each accepted connection's bufferevent (evhttp_set_bevcb): we
 * count it there and keep one extra reference to it, so that when evhttp
 * frees the connection (it shuts the socket down for writing, clears the
 * callbacks and drops its reference) the bufferevent stays until our sweep
 * sees the cleared callbacks, drops the last reference (closing the socket)
 * and uncounts it.  While `max` connections are open the listeners are
 * paused: new clients wait in the kernel's backlog instead of being refused. */
#include "village.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <strings.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define SWEEP_MS 100

/* Where a connection's input stands, for the head check. */
typedef enum {
    AT_HEAD,        /* the input starts with a request head not yet checked */
    IN_BODY,        /* a head passed: its body follows, evhttp reads it */
    REFUSED,        /* a head refused: what the client still sends is dropped */
} head_state;

/* Per connection, at a fixed address (the conn array moves): the input
 * buffer's callback argument. */
typedef struct watch {
    connlimit *cl;
    struct bufferevent *bev;
    struct evbuffer_cb_entry *cb;
    head_state state;
    bool busy;                  /* inside our own change of the buffer */
    long long left;             /* REFUSED: body bytes still to come, -1: unknown */
} watch;

/* One open connection: when it last finished reading a request (or was
 * opened), and its peer once its socket is known. */
typedef struct conn {
    struct bufferevent *bev;
    int64_t since_us;
    bool peer_known, closing;
    bool busy;                  /* a request read and not yet answered */
    struct sockaddr_storage peer;
    watch *w;                   /* NULL: no head check */
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
    connlimit_head_fn *head_fn;
    void *head_arg;
    size_t max_head;
    size_t refused_heads;       /* since the last log line */
    char secret[17];            /* in refusal heads: a client cannot forge one */
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

/* ------------------------------------------------------------ head check
 *
 * evhttp 2.1 reads a whole body (up to its one max_body_size, the batch
 * cap) before any handler sees the request, and has no public hook between
 * the head and the body for a server's requests.  So we watch each
 * connection's input buffer: its callback runs as bytes arrive from the
 * socket, before evhttp's read callback parses them.  When the buffer starts
 * with a complete head, the intake's check decides on the route, the token
 * and Content-Length.  A refused request is replaced, in the buffer, by a
 * body-less head naming the refusal (with a per-process secret, so that a
 * client cannot forge one): evhttp routes it to the intake, which answers
 * 401 or 413 as usual.  What the client still sends of its body is dropped
 * as it arrives, never buffered, and once it has all come (or at
 * request_deadline) the connection is closed: closed earlier, with the
 * client still sending, the kernel would answer with a reset and the
 * client might never read its 401 or 413.  A client without a valid token
 * gets LINGER_UNAUTHORIZED bytes of that courtesy, not megabytes. */

#define REFUSED_HEADER "X-Rollcall-Refused"
/* What a client refused for its token may still send before it is cut: an
 * honest client with a bad token and a small body reads its 401; a hostile
 * one uploading megabytes costs this much reading, not all of it. */
#define LINGER_UNAUTHORIZED (256 * 1024)

/* One header's value: a pointer into the head, or (folded over lines) a
 * copy joined with spaces like evhttp does. */
typedef struct {
    const char *v;
    size_t len;
    char buf[768];
    bool seen;
} hval;

static bool name_is(const char *p, size_t n, const char *name)
{
    return strlen(name) == n && strncasecmp(p, name, n) == 0;
}

static void hval_append(hval *h, const char *p, size_t n)
{
    size_t have = h->len;
    if (h->v != h->buf) {
        have = h->len < sizeof h->buf ? h->len : sizeof h->buf - 1;
        memcpy(h->buf, h->v, have);
        h->v = h->buf;
    }
    if (have + 1 + n >= sizeof h->buf)
        n = have + 1 < sizeof h->buf ? sizeof h->buf - have - 1 : 0;
    if (n) {
        h->buf[have++] = ' ';
        memcpy(h->buf + have, p, n);
        have += n;
    }
    h->len = have;
}

/* Parses the head at p[0..n).  Returns its length, 0 while it is
 * incomplete, or -1 when it is not one we can read (evhttp then refuses or
 * answers it as it would anyway, and the handler checks again). */
static ssize_t parse_head(const char *p, size_t n, conn_head *h, hval *authz, hval *clen,
                          hval *te, char *path, size_t pathlen)
{
    const char *line = p, *end = p + n, *nl;
    hval *last = NULL;
    bool first = true;

    while ((nl = memchr(line, '\n', (size_t)(end - line)))) {
        const char *e = nl > line && nl[-1] == '\r' ? nl - 1 : nl;
        size_t len = (size_t)(e - line);
        if (first) {
            /* METHOD SP target SP version; the target's path, decoded as
             * evhttp decodes it to find the route. */
            const char *sp1 = memchr(line, ' ', len), *sp2, *t;
            char *dec;
            size_t tl;
            if (!sp1 || !(sp2 = memchr(sp1 + 1, ' ', (size_t)(e - sp1 - 1))))
                return -1;
            t = sp1 + 1;
            tl = (size_t)(sp2 - t);
            {
                const char *scheme = memmem(t, tl, "://", 3);
                if (scheme) {
                    const char *slash = memchr(scheme + 3, '/', (size_t)(sp2 - scheme - 3));
                    tl = slash ? (size_t)(sp2 - slash) : 0;
                    t = slash ? slash : sp2;
                }
            }
            for (size_t i = 0; i < tl; i++)
                if (t[i] == '?' || t[i] == '#') {
                    tl = i;
                    break;
                }
            if (tl >= pathlen)
                return -1;
            memcpy(path, t, tl);
            path[tl] = '\0';
            if ((dec = evhttp_uridecode(path, 0, NULL))) {
                snprintf(path, pathlen, "%s", dec);
                free(dec);
            }
            h->path = path;
            first = false;
        } else if (len == 0) {
            return (ssize_t)(nl + 1 - p);
        } else if (*line == ' ' || *line == '\t') {
            while (len && (*line == ' ' || *line == '\t'))
                line++, len--;
            if (last)
                hval_append(last, line, len);
        } else {
            const char *colon = memchr(line, ':', len), *v;
            size_t vl;
            hval *dst = NULL;
            if (!colon)
                return -1;
            v = colon + 1;
            while (v < e && (*v == ' ' || *v == '\t'))
                v++;
            vl = (size_t)(e - v);
            while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
                vl--;
            /* evhttp reads the first of repeated headers: so do we. */
            if (name_is(line, (size_t)(colon - line), "Authorization"))
                dst = authz;
            else if (name_is(line, (size_t)(colon - line), "Content-Length"))
                dst = clen;
            else if (name_is(line, (size_t)(colon - line), "Transfer-Encoding"))
                dst = te;
            last = NULL;
            if (dst && !dst->seen) {
                dst->seen = true;
                dst->v = v;
                dst->len = vl;
                last = dst;
            }
        }
        line = nl + 1;
    }
    return 0;
}

/* Replaces the buffer's content by a body-less head carrying the refusal. */
static void refuse(watch *w, struct evbuffer *in, size_t head, long long content_length,
                   const char *path, const conn_refusal *why)
{
    connlimit *cl = w->cl;
    size_t n = evbuffer_get_length(in);

    /* The body that came with the head is dropped with it. */
    w->left = content_length < 0 ? -1 : content_length - (long long)(n - head);
    if (w->left < -1)
        w->left = 0;
    if (why->status == 401 && (w->left < 0 || w->left > LINGER_UNAUTHORIZED))
        w->left = LINGER_UNAUTHORIZED;
    w->busy = true;
    evbuffer_drain(in, n);
    evbuffer_add_printf(in, "POST %s HTTP/1.1\r\nHost: refused\r\n%s"
                            REFUSED_HEADER ": %s %d %lld %lld\r\n\r\n",
                        path, w->left == 0 ? "Connection: close\r\n" : "",
                        cl->secret, why->status, why->detail, why->limit);
    w->busy = false;
    w->state = REFUSED;
    cl->refused_heads++;
}

static void on_input(struct evbuffer *in, const struct evbuffer_cb_info *info, void *arg)
{
    watch *w = arg;
    connlimit *cl = w->cl;
    size_t n = evbuffer_get_length(in), take;
    conn_head h = {.content_length = -1};
    hval authz = {0}, clen = {0}, te = {0};
    char path[256], cl_text[32];
    long long declared = 0;
    ssize_t head;
    conn_refusal why = {0};
    const char *p;

    if (w->busy || info->n_added == 0)
        return;
    if (w->state == REFUSED) {
        /* Dropped as it arrives: a refused upload costs no memory. */
        if (n > info->n_added)
            return;     /* our refusal head is still to be read: next time */
        w->busy = true;
        evbuffer_drain(in, n);
        w->busy = false;
        if (w->left > 0)
            w->left = (long long)n >= w->left ? 0 : w->left - (long long)n;
        /* All come (or the budget spent) and the answer out: cut now
         * rather than at the next sweep, so as to read no more. */
        if (w->left == 0 && evbuffer_get_length(bufferevent_get_output(w->bev)) == 0) {
            evutil_socket_t fd = bufferevent_getfd(w->bev);
            if (fd >= 0)
                shutdown(fd, SHUT_RDWR);
        }
        return;
    }
    if (w->state != AT_HEAD || !cl->head_fn)
        return;
    take = n < cl->max_head + 4 ? n : cl->max_head + 4;
    if (!(p = (const char *)evbuffer_pullup(in, (ev_ssize_t)take)))
        return;
    head = parse_head(p, take, &h, &authz, &clen, &te, path, sizeof path);
    if (head <= 0)
        return;         /* incomplete (evhttp bounds it by max_headers), or not ours to judge */
    h.auth = authz.seen ? authz.v : NULL;
    h.auth_len = authz.len;
    h.chunked = te.seen && te.len == 7 && strncasecmp(te.v, "chunked", 7) == 0;
    if (clen.seen && !h.chunked) {
        char *endp;
        snprintf(cl_text, sizeof cl_text, "%.*s", (int)(clen.len < 31 ? clen.len : 31), clen.v);
        declared = strtoll(cl_text, &endp, 10);
        if (*cl_text && !*endp && declared >= 0)
            h.content_length = declared;
        else
            return;     /* evhttp refuses a malformed Content-Length itself */
    }
    if (cl->head_fn(cl->head_arg, &h, &why)) {
        /* To the intake's own route (the path a client sent is only ever
         * passed on when it is one of them). */
        refuse(w, in, (size_t)head, h.content_length,
               strcmp(path, "/v1/reports:batch") == 0 ? "/v1/reports:batch" : "/v1/reports", &why);
        return;
    }
    if (h.chunked || h.content_length > 0)
        w->state = IN_BODY;
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

static void unwatch(conn *c)
{
    if (!c->w)
        return;
    evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->w->cb);
    free(c->w);
    c->w = NULL;
}

static void sweep(evutil_socket_t fd, short what, void *arg)
{
    connlimit *cl = arg;
    size_t i = 0;
    int64_t now = now_us();

    while (i < cl->n) {
        conn *c = &cl->bevs[i];
        if (released(c->bev)) {
            unwatch(c);
            bufferevent_decref(c->bev);
            cl->bevs[i] = cl->bevs[--cl->n];
            continue;
        }
        if (!c->peer_known && !c->closing)
            learn_peer(cl, c);
        /* A refused request's body has all come and its answer is out. */
        if (c->w && c->w->state == REFUSED && c->w->left == 0 && !c->closing
            && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
            cut(c);
        }
        /* No request read in full for deadline: a client sending its
         * request a byte at a time (evhttp's timeout restarts with each
         * byte), or an idle one evhttp would soon close anyway. */
        if (cl->deadline_us && !c->closing && !c->busy && now - c->since_us > cl->deadline_us) {
            cut(c);
            cl->expired++;
        }
        i++;
    }
    if ((cl->refused || cl->expired || cl->refused_heads) && time(NULL) - cl->logged >= 10) {
        rc_warn("connections cut: over max_connections_per_address=%zu, "
                "no whole request within request_deadline=%zu, refused at the head=%zu",
                cl->refused, cl->expired, cl->refused_heads);
        cl->logged = time(NULL);
        cl->refused = cl->expired = cl->refused_heads = 0;
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
    cl->bevs[cl->n] = (conn){.bev = bev, .since_us = now_us()};
    if (cl->head_fn && (cl->bevs[cl->n].w = calloc(1, sizeof(watch)))) {
        watch *w = cl->bevs[cl->n].w;
        *w = (watch){.cl = cl, .bev = bev, .state = AT_HEAD};
        if (!(w->cb = evbuffer_add_cb(bufferevent_get_input(bev), on_input, w))) {
            free(w);
            cl->bevs[cl->n].w = NULL;
        }
    }
    cl->n++;
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
            /* Answered: the next bytes are the next request's head. */
            if (!busy && cl->bevs[i].w && cl->bevs[i].w->state == IN_BODY)
                cl->bevs[i].w->state = AT_HEAD;
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
    for (size_t i = 0; i < cl->n; i++) {
        unwatch(&cl->bevs[i]);
        bufferevent_decref(cl->bevs[i].bev);
    }
    if (cl->sweep)
        event_free(cl->sweep);
    free(cl->bevs);
    free(cl);
}

void connlimit_set_head_check(connlimit *cl, size_t max_head, connlimit_head_fn *fn, void *arg)
{
    uint8_t r[8];

    cl->max_head = max_head;
    cl->head_fn = fn;
    cl->head_arg = arg;
    if (RAND_bytes(r, sizeof r) != 1)
        for (size_t i = 0; i < sizeof r; i++)
            r[i] = (uint8_t)(rand() ^ (int)now_us());
    for (size_t i = 0; i < sizeof r; i++)
        snprintf(cl->secret + 2 * i, 3, "%02x", r[i]);
}

int connlimit_refusal(const connlimit *cl, struct evhttp_request *req, conn_refusal *why)
{
    const char *v;
    size_t sl;

    if (!cl || !cl->head_fn
        || !(v = evhttp_find_header(evhttp_request_get_input_headers(req), REFUSED_HEADER)))
        return 0;
    sl = strlen(cl->secret);
    if (strncmp(v, cl->secret, sl) != 0 || v[sl] != ' '
        || sscanf(v + sl + 1, "%d %lld %lld", &why->status, &why->detail, &why->limit) != 3)
        return 0;
    return why->status;
}

size_t connlimit_open(const connlimit *cl)
{
    return cl->n;
}
