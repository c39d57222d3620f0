/* rc_service — the skeleton every Rollcall service runs in: one libevent
 * loop, an evhttp server with GET /healthz and GET /metrics, and a graceful
 * stop on SIGTERM/SIGINT.
 *
 * Everything here runs on the loop's thread (the thread that calls
 * rc_service_run), including health checks, stop hooks and route callbacks;
 * libevent is used without its thread support.  Services call rc_log_init
 * and rc_config_load themselves before rc_service_new.
 *
 * HTTP behaviour worth knowing (libevent 2.1.12, verified by
 * tests/unit/test_service.c):
 *   - a body over max_body is answered by evhttp itself with
 *     "413 Request Entity Too Large" (an HTML body) and "Connection: close";
 *     the route callback never runs and the reply is not counted in
 *     rc_http_requests_total.  rc_service_new turns on
 *     EVHTTP_SERVER_LINGERING_CLOSE: evhttp then reads (and discards) the
 *     announced body before answering.  Without it evhttp answers as soon as
 *     Content-Length is over the limit and closes, and a client that already
 *     sent a large body (1 MB in the test) gets EPIPE/ECONNRESET, never the
 *     413.  The discarded read is bounded by the timeout.  With
 *     "Expect: 100-continue" no 100 is sent; the 413 comes once the client
 *     sends the body anyway (curl waits 1 s).  A chunked body gets its 413
 *     as soon as a chunk size passes the limit;
 *   - headers over max_headers: evhttp answers 400 (not 431 or 413);
 *   - a method outside GET/POST/HEAD/PUT/DELETE: evhttp answers 501;
 *   - replies without a Content-Type get "text/html; charset=ISO-8859-1"
 *     from evhttp; rc_service_new makes the default "text/plain;
 *     charset=utf-8" instead;
 *   - the timeout covers reading a request and writing a reply, and idle
 *     keep-alive connections; evhttp closes the connection without a reply. */
#ifndef RC_SERVICE_H
#define RC_SERVICE_H

#include <stddef.h>

struct event_base;
struct evhttp;
struct evhttp_request;

typedef struct rc_service rc_service;

/* Call first in main, before any thread starts: at most two malloc arenas,
 * and blocks of 128 KiB or more always from mmap.  glibc gives each thread
 * that meets contention an arena of its own (up to 8 per core) and keeps
 * what each arena once held; in a service with a consumer, a flusher and
 * librdkafka's threads that retained memory was a third of the rollup's
 * peak RSS.  glibc also raises its mmap threshold to the largest block
 * freed (up to 32 MiB), after which a batch's big buffers (key sets, fetch
 * and COPY buffers, results) come from the arenas and stay there; a fixed
 * threshold gives them back when freed (figures in bench/RESULTS.md). */
void rc_service_limit_arenas(void);

/* Creates the loop and the HTTP server bound to listen_addr:port (NULL =
 * "0.0.0.0"; port 0 = an ephemeral port, see rc_service_port), with the
 * /healthz and /metrics routes, a 404 for every other path, the signal
 * events, and SIGPIPE ignored for the whole process.  Default limits: 1 MiB
 * body, 64 KiB headers, 30 s timeout.  `name` is copied.  Returns NULL with
 * errbuf on failure; nothing is left behind. */
rc_service *rc_service_new(const char *name, const char *listen_addr, int port,
                           char *errbuf, size_t errlen);

struct event_base *rc_service_base(rc_service *svc);
/* Routes added with evhttp_set_cb directly work but are counted as
 * path="other"; prefer rc_service_route. */
struct evhttp *rc_service_http(rc_service *svc);
int rc_service_port(rc_service *svc);

/* Registers `cb` for exactly `path` (NULL: every path without a route,
 * replacing the built-in 404).  Each completed reply is counted in
 * rc_http_requests_total{path,code} (a reply whose connection died before
 * it was written is not).  `path` is copied; `arg` borrowed.  Returns 0, or
 * -1 if the path already has a route (nothing changed). */
int rc_service_route(rc_service *svc, const char *path,
                     void (*cb)(struct evhttp_request *req, void *arg), void *arg);

/* Adds a check run by every GET /healthz, in the order added.  `check`
 * returns 0 when healthy, or non-zero with a reason written into msg (NUL
 * terminated, at most len bytes).  It runs on the loop: keep it cheap (read a
 * state flag, not a round trip).  `name` is copied; `opaque` borrowed. */
void rc_service_add_health_check(rc_service *svc, const char *name,
                                 int (*check)(void *opaque, char *msg, size_t len),
                                 void *opaque);

/* Adds a hook run once, in reverse order of addition, when the service
 * stops (signal or rc_service_stop) — after the listener is closed and
 * before the loop exits. */
void rc_service_on_stop(rc_service *svc, void (*fn)(void *opaque), void *opaque);

/* evhttp limits: max body bytes, max header bytes, read/write timeout in
 * seconds; 0 leaves a value unchanged. */
void rc_service_set_limits(rc_service *svc, size_t max_body, size_t max_headers, int timeout_s);

/* How long the loop keeps running after the stop hooks so that replies
 * already queued reach their clients (default 100 ms; 0 = exit at once). */
void rc_service_set_grace(rc_service *svc, int grace_ms);

/* Runs the loop until the service stops.  Returns 0 on a clean stop, -1 if
 * the loop failed. */
int rc_service_run(rc_service *svc);

/* Starts the stop path: closes the listener, runs the stop hooks, then exits
 * the loop after the grace period.  A second call (a second SIGTERM) exits
 * the loop at once.  Loop thread only (signals are fine from anywhere). */
void rc_service_stop(rc_service *svc);

/* Frees the server (closing its connections; pending requests are gone) and
 * the loop.  NULL is a no-op. */
void rc_service_free(rc_service *svc);

#endif
