/* rollcall-village internals: the configuration, the intake state shared by
 * the HTTP handlers and the Kafka delivery path, and the helpers (token
 * cache, idempotency window, connection limit) each in its own file. */
#ifndef VILLAGE_H
#define VILLAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rc_log.h"
#include "rc_report.h"

struct event_base;
struct evhttp;
struct evhttp_request;
typedef struct rc_service rc_service;
typedef struct rc_producer rc_producer;

#define TOPIC_VILLAGE "reports.village"
#define TOPIC_URGENT "reports.urgent"

/* The configuration table's destinations (main.c). */
typedef struct {
    char *pg_dsn;
    char *kafka_brokers;
    char *listen_addr;
    int http_port;
    int max_body;           /* bytes of one report (POST /v1/reports) */
    int max_batch_body;     /* bytes of a batch (POST /v1/reports:batch) */
    int max_batch_items;
    int max_headers;
    int timeout_ms;         /* evhttp read/write/idle timeout */
    int max_connections;
    int max_connections_per_address;
    int request_deadline_ms;
    int max_inflight;       /* reports awaiting their delivery report */
    int window_days;        /* a period may be this many days in the past */
    int future_days;
    char *bounds;           /* "name=max,..."; "extra=max" for extra indicators */
    int fast_inflight;      /* single reports produced at once while fewer wait */
    int urgent_rtprio;      /* SCHED_RR priority of the urgent producer's threads */
    int produce_timeout_ms; /* message.timeout.ms: after it, 503 */
    int retry_after_s;
    bool auth;
    int token_reload_ms;    /* full token reload, beside LISTEN/NOTIFY */
    int registry_reload_ms; /* how often rollcall.unit is checked for changes */
    int dedupe_entries;
    int dedupe_window_ms;
    bool archive_check;     /* client report_ids beyond the window asked of the archive */
    rc_log_level log_level;
} village_config;

/* ---- auth.c: the token cache (token hash -> unit), refreshed by a thread
 * that LISTENs on rollcall_token and reloads everything after a reconnect. */
typedef struct auth auth;

/* Connects, LISTENs, loads every valid token, then starts the refresh
 * thread.  Returns NULL with errbuf filled (no thread left running). */
auth *auth_new(const char *dsn, int reload_ms, char *errbuf, size_t errlen);
void auth_free(auth *a);
/* Looks a clear token up (hashed here, never stored or logged).  Returns
 * true with the token's unit code in scope, false for an unknown or revoked
 * token. */
bool auth_lookup(auth *a, const char *token, size_t len, char scope[13]);
size_t auth_count(auth *a);

/* ---- dedupe.c: the idempotency window, report_id -> outcome ----
 *
 * A fixed ring of `entries` slots, newest overwriting oldest (never one
 * still in flight), each valid for `window_us` after its version. */
typedef struct dedupe dedupe;

typedef enum { DD_INFLIGHT = 1, DD_DONE = 2, DD_FAILED = 3 } dd_state;

typedef struct {
    uint32_t slot;
    dd_state state;
    int64_t version;
    int64_t submitted_at;   /* the first submission's client time */
    uint64_t fingerprint;
    void *job;          /* DD_INFLIGHT: the job waiting for Kafka */
} dd_entry;

dedupe *dedupe_new(size_t entries, int64_t window_us);
void dedupe_free(dedupe *d);
/* Finds a live entry for id (16 bytes).  Returns true and fills out. */
bool dedupe_find(dedupe *d, const uint8_t id[16], int64_t now_us, dd_entry *out);
/* Adds an in-flight entry; returns its slot, or -1 when every slot is in
 * flight (the caller sheds load). */
int64_t dedupe_add(dedupe *d, const uint8_t id[16], int64_t version, int64_t submitted_at,
                   uint64_t fingerprint, void *job);
/* Changes a slot's state (and job: NULL unless DD_INFLIGHT). */
void dedupe_set(dedupe *d, uint32_t slot, dd_state state, void *job);
size_t dedupe_size(const dedupe *d);

/* ---- connlimit.c: a cap on open client connections ---- */
typedef struct connlimit connlimit;
/* Counts the connections evhttp accepts and pauses its listeners while
 * `max` are open.  Returns NULL on out of memory. */
/* max: open connections at most (the listeners pause beyond it);
 * per_address: at most this many from one host (more are cut; 0: no cap);
 * deadline_ms: a connection that has not finished reading a request this
 * long after it opened or after its previous request is cut — a slowloris
 * client restarts evhttp's read timeout with every byte (0: none). */
connlimit *connlimit_new(struct event_base *base, struct evhttp *http, int max,
                         int per_address, int deadline_ms);
/* Notes that a request on req's connection has been read in full (the
 * deadline does not run while it is being answered), and that it has been
 * answered (the deadline runs again from now). */
struct evhttp_request;
void connlimit_request(connlimit *cl, struct evhttp_request *req);
void connlimit_replied(connlimit *cl, struct evhttp_request *req);
void connlimit_free(connlimit *cl);

/* A request head, as the head check sees it before evhttp reads the body. */
typedef struct {
    const char *path;           /* decoded, without the query */
    const char *auth;           /* the Authorization value, NULL: none */
    size_t auth_len;
    long long content_length;   /* -1: none */
    bool chunked;
} conn_head;
/* Why a head was refused: status 401 (detail: the reason, the intake's
 * own code) or 413 (detail: the declared length, limit: the route's cap). */
typedef struct {
    int status;
    long long detail, limit;
} conn_refusal;
/* Returns 0 to let the request be read, or fills *why and returns its
 * status to refuse it before its body is read. */
typedef int connlimit_head_fn(void *arg, const conn_head *h, conn_refusal *why);
/* Checks every request head that reaches the buffer complete (max_head:
 * evhttp's max_headers, the most we look at).  A refused request reaches
 * the handler with no body: connlimit_refusal tells it so. */
void connlimit_set_head_check(connlimit *cl, size_t max_head, connlimit_head_fn *fn, void *arg);
/* Returns the status the head check refused req with (filling *why); 0 for
 * a request that was not refused. */
int connlimit_refusal(const connlimit *cl, struct evhttp_request *req, conn_refusal *why);
size_t connlimit_open(const connlimit *cl);

/* ---- archive.c: report_ids asked of the archive, off the loop ---- */
typedef struct archive archive;

typedef enum { AR_UNKNOWN = 0, AR_ABSENT, AR_FOUND } ar_answer;

/* One question, and its answer once it comes back. */
typedef struct archive_ask {
    uint8_t id[16];
    void *opaque;               /* the asker's */
    ar_answer answer;           /* AR_UNKNOWN: PostgreSQL did not answer */
    int64_t version;            /* AR_FOUND: the archived revision's */
    uint8_t *payload;           /* AR_FOUND: its Report, NULL if not a village's */
    size_t len;
    struct archive_ask *next;
} archive_ask;

/* Called on the loop with each answer; takes ownership (archive_ask_free). */
typedef void archive_done_fn(void *arg, archive_ask *a);

/* Starts the thread (its connection is made at the first question).
 * Returns NULL with errbuf filled. */
archive *archive_new(const char *dsn, struct event_base *base, archive_done_fn *fn, void *arg,
                     char *errbuf, size_t errlen);
/* Queues a question (loop thread).  Returns 0, or -1 on out of memory. */
int archive_ask_id(archive *ar, const uint8_t id[16], void *opaque);
void archive_ask_free(archive_ask *a);
/* Stops the thread and answers what is still queued AR_UNKNOWN, on the
 * calling thread (the askers must still exist).  NULL is a no-op. */
void archive_free(archive *ar);

/* ---- intake.c: the HTTP handlers and the Kafka path ---- */
typedef struct intake intake;

/* ---- regwatch.c: the registry reloaded under the running intake ---- */
typedef struct regwatch regwatch;
/* Takes ownership of reg (the one loaded at start, already given to the
 * intake) and watches rollcall.unit every every_ms (0: never).  Returns
 * NULL with errbuf filled. */
regwatch *regwatch_new(const char *dsn, int every_ms, struct event_base *base, intake *in,
                       rc_registry *reg, char *errbuf, size_t errlen);
/* Stops the thread and frees the registries.  NULL is a no-op.  Call after
 * the intake is done with the registry. */
void regwatch_free(regwatch *w);

/* Builds the intake: parses the bounds, creates both producers and hooks
 * their delivery reports into the loop.  `reg` and `a` (NULL when auth is
 * off) are borrowed.  Returns NULL with errbuf filled. */
intake *intake_new(const village_config *cfg, struct event_base *base, const rc_registry *reg,
                   auth *a, const char *const *kafka_props, size_t nprops,
                   char *errbuf, size_t errlen);
/* Replaces the registry the handlers validate against (loop thread only);
 * the old one stays the caller's. */
void intake_set_registry(intake *in, const rc_registry *reg);
/* The connection records that learn when a request was read in full. */
void intake_set_connlimit(intake *in, connlimit *cl);
/* The head check (connlimit_head_fn) of the intake's routes: the token
 * (401), Content-Length over the route's cap (413), a body on a route that
 * takes none (413). */
int intake_head_check(void *in, const conn_head *h, conn_refusal *why);
/* Registers POST /v1/reports and POST /v1/reports:batch and the health check. */
int intake_attach(intake *in, rc_service *svc);
/* Stop hook: refuses new reports, waits up to the produce timeout for the
 * reports in flight (each still gets its answer), then closes the producers. */
void intake_stop(void *in);
void intake_free(intake *in);

/* Parses "name=max,name=max" (core indicator names, or "extra") into opts.
 * Returns 0, or -1 with errbuf naming the bad entry and opts unchanged. */
int intake_parse_bounds(const char *spec, rc_validate_opts *opts, char *errbuf, size_t errlen);

#endif
