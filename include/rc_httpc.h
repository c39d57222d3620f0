/* rc_httpc — a small blocking HTTP/1.1 client on libevent's evhttp, for the
 * command line (`rollcall submit`) and the tests: one request, or several
 * sent at once on separate connections. */
#ifndef RC_HTTPC_H
#define RC_HTTPC_H

#include <stddef.h>

typedef struct {
    const char *method;         /* "GET", "POST", "PUT", "DELETE"; NULL = GET */
    const char *url;            /* "http://host[:port]/path[?query]" */
    const char *content_type;   /* NULL: none */
    const char *authorization;  /* the whole header value ("Bearer ..."); NULL: none */
    const void *body;           /* NULL: no body */
    size_t body_len;
    int timeout_ms;             /* whole exchange; 0 = 30 s */
} rc_httpc_request;

typedef struct {
    int status;                 /* HTTP status; 0 when no answer came */
    char *body;                 /* malloc'ed and NUL terminated ("" when empty) */
    size_t body_len;
    char content_type[128];     /* "" when absent */
    char retry_after[32];       /* "" when absent */
} rc_httpc_response;

/* Sends one request and waits for its answer.  Returns 0 when an answer
 * came (whatever its status), or -1 with errbuf filled (bad URL, no
 * connection, timeout); resp is filled in both cases and must be cleared. */
int rc_httpc_do(const rc_httpc_request *req, rc_httpc_response *resp,
                char *errbuf, size_t errlen);

/* Sends n requests at once, each on its own connection, and waits for all.
 * Returns how many got an answer; resps[i].status is 0 for the others. */
size_t rc_httpc_do_many(const rc_httpc_request *reqs, rc_httpc_response *resps, size_t n);

/* Frees the body; the response may be reused.  NULL is a no-op. */
void rc_httpc_response_clear(rc_httpc_response *resp);

#endif
