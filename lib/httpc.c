/* rc_httpc — see rc_httpc.h.  Every call runs its own event_base, so it is
 * safe anywhere outside an event loop and never touches a caller's loop. */
#include "rc_httpc.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    struct event_base *base;
    struct evhttp_connection *conn;
    rc_httpc_response *resp;
    size_t *left;
    char err[128];
    int done;
} call;

static void copy_header(struct evhttp_request *req, const char *name, char *out, size_t len)
{
    const char *v = evhttp_find_header(evhttp_request_get_input_headers(req), name);
    snprintf(out, len, "%s", v ? v : "");
}

static void on_error(enum evhttp_request_error e, void *arg)
{
    call *c = arg;
    const char *what = "request failed";

    switch (e) {
    case EVREQ_HTTP_TIMEOUT: what = "timed out"; break;
    case EVREQ_HTTP_EOF: what = "connection closed before an answer"; break;
    case EVREQ_HTTP_INVALID_HEADER: what = "invalid answer"; break;
    case EVREQ_HTTP_BUFFER_ERROR: what = "connection refused or broken"; break;
    case EVREQ_HTTP_REQUEST_CANCEL: what = "cancelled"; break;
    case EVREQ_HTTP_DATA_TOO_LONG: what = "answer too long"; break;
    }
    snprintf(c->err, sizeof c->err, "%s", what);
}

static void on_done(struct evhttp_request *req, void *arg)
{
    call *c = arg;
    rc_httpc_response *r = c->resp;

    if (c->done)
        return;
    c->done = 1;
    if (req && evhttp_request_get_response_code(req) > 0) {
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        size_t n = evbuffer_get_length(in);
        r->status = evhttp_request_get_response_code(req);
        free(r->body);
        r->body = malloc(n + 1);
        if (r->body) {
            evbuffer_remove(in, r->body, n);
            r->body[n] = '\0';
            r->body_len = n;
        }
        copy_header(req, "Content-Type", r->content_type, sizeof r->content_type);
        copy_header(req, "Retry-After", r->retry_after, sizeof r->retry_after);
    } else if (!c->err[0]) {
        snprintf(c->err, sizeof c->err, "no answer");
    }
    if (--*c->left == 0)
        event_base_loopbreak(c->base);
}

/* Starts one request on base.  Returns 0, or -1 with c->err filled and
 * nothing pending. */
static int start(struct event_base *base, const rc_httpc_request *q, call *c)
{
    struct evhttp_uri *uri = NULL;
    struct evhttp_request *req = NULL;
    struct evkeyvalq *h;
    const char *host, *path, *query;
    char target[2048], hostport[300];
    int port, rc = -1;
    struct timeval tv;
    enum evhttp_cmd_type cmd = EVHTTP_REQ_GET;

    uri = evhttp_uri_parse(q->url);
    if (!uri || !(host = evhttp_uri_get_host(uri)) || !evhttp_uri_get_scheme(uri)
        || strcmp(evhttp_uri_get_scheme(uri), "http") != 0) {
        snprintf(c->err, sizeof c->err, "bad URL (want http://host:port/path)");
        goto done;
    }
    port = evhttp_uri_get_port(uri);
    if (port < 0)
        port = 80;
    path = evhttp_uri_get_path(uri);
    query = evhttp_uri_get_query(uri);
    snprintf(target, sizeof target, "%s%s%s", path && *path ? path : "/", query ? "?" : "",
             query ? query : "");
    snprintf(hostport, sizeof hostport, "%s:%d", host, port);

    if (q->method) {
        if (strcmp(q->method, "POST") == 0) cmd = EVHTTP_REQ_POST;
        else if (strcmp(q->method, "PUT") == 0) cmd = EVHTTP_REQ_PUT;
        else if (strcmp(q->method, "DELETE") == 0) cmd = EVHTTP_REQ_DELETE;
        else if (strcmp(q->method, "GET") != 0) {
            snprintf(c->err, sizeof c->err, "unsupported method %s", q->method);
            goto done;
        }
    }

    c->conn = evhttp_connection_base_new(base, NULL, host, (unsigned short)port);
    if (!c->conn) {
        snprintf(c->err, sizeof c->err, "cannot create a connection");
        goto done;
    }
    tv.tv_sec = (q->timeout_ms > 0 ? q->timeout_ms : 30000) / 1000;
    tv.tv_usec = (q->timeout_ms > 0 ? q->timeout_ms : 30000) % 1000 * 1000;
    evhttp_connection_set_timeout_tv(c->conn, &tv);
    evhttp_connection_set_retries(c->conn, 0);

    req = evhttp_request_new(on_done, c);
    if (!req) {
        snprintf(c->err, sizeof c->err, "out of memory");
        goto done;
    }
    evhttp_request_set_error_cb(req, on_error);
    h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", hostport);
    evhttp_add_header(h, "Connection", "close");
    if (q->content_type)
        evhttp_add_header(h, "Content-Type", q->content_type);
    if (q->authorization)
        evhttp_add_header(h, "Authorization", q->authorization);
    if (q->body && q->body_len)
        evbuffer_add(evhttp_request_get_output_buffer(req), q->body, q->body_len);
    /* evhttp_make_request takes the request, even when it fails. */
    if (evhttp_make_request(c->conn, req, cmd, target) < 0) {
        snprintf(c->err, sizeof c->err, "cannot send the request");
        goto done;
    }
    rc = 0;
done:
    evhttp_uri_free(uri);
    return rc;
}

static size_t run(const rc_httpc_request *reqs, rc_httpc_response *resps, size_t n,
                  char *errbuf, size_t errlen)
{
    struct event_base *base = event_base_new();
    call *calls = calloc(n ? n : 1, sizeof *calls);
    size_t left = 0, answered = 0;

    for (size_t i = 0; i < n; i++)
        memset(&resps[i], 0, sizeof resps[i]);
    if (!base || !calls) {
        if (errbuf)
            snprintf(errbuf, errlen, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        calls[i].base = base;
        calls[i].resp = &resps[i];
        calls[i].left = &left;
        left++;
        if (start(base, &reqs[i], &calls[i]) < 0) {
            calls[i].done = 1;
            left--;
        }
    }
    if (left > 0)
        event_base_dispatch(base);
    for (size_t i = 0; i < n; i++) {
        if (resps[i].status > 0)
            answered++;
        if (!resps[i].body)
            resps[i].body = calloc(1, 1);
        if (errbuf && resps[i].status == 0 && n == 1)
            snprintf(errbuf, errlen, "%s: %s", reqs[i].url,
                     calls[i].err[0] ? calls[i].err : "no answer (connection refused or closed)");
        if (calls[i].conn)
            evhttp_connection_free(calls[i].conn);
    }
done:
    free(calls);
    if (base)
        event_base_free(base);
    return answered;
}

int rc_httpc_do(const rc_httpc_request *req, rc_httpc_response *resp, char *errbuf, size_t errlen)
{
    return run(req, resp, 1, errbuf, errlen) == 1 ? 0 : -1;
}

size_t rc_httpc_do_many(const rc_httpc_request *reqs, rc_httpc_response *resps, size_t n)
{
    return run(reqs, resps, n, NULL, 0);
}

void rc_httpc_response_clear(rc_httpc_response *resp)
{
    if (!resp)
        return;
    free(resp->body);
    memset(resp, 0, sizeof *resp);
}
