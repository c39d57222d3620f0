/* The intake proper: POST /v1/reports and POST /v1/reports:batch.  Each
 * report is authenticated, decoded, validated, given its identity and
 * version, produced to Kafka, and answered only from the delivery report:
 * 202 once Kafka holds it (acks=all), 503 with Retry-After if not within
 * produce_timeout — never 2xx for a report that is not durable.
 *
 * Everything runs on the loop's thread: the handlers, and librdkafka's
 * delivery reports, served from the producers' event fds. */
#include "village.h"
#include "rc_buf.h"
#include "rc_kafka.h"
#include "rc_metrics.h"
#include "rc_probe.h"
#include "rc_sched.h"
#include "rc_service.h"
#include "rc_token.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <uuid/uuid.h>

#define MAX_TOKEN 512

/* ------------------------------------------------------------------ types */

typedef struct http_ctx http_ctx;

/* One report's answer inside a request. */
typedef struct {
    int status;                 /* 0 while waiting for Kafka */
    char report_id[37];
    int64_t version;
    char *body;                 /* non-202: a JSON object (malloc'ed) */
} result;

/* One HTTP request: a single report (n = 1) or a batch. */
struct http_ctx {
    intake *in;
    struct evhttp_request *req;
    bool batch;
    size_t n, waiting;          /* results, and those not yet known */
    result *res;
    result one;
};

/* A report waiting for the archive's answer about its report_id. */
typedef struct {
    http_ctx *ctx;
    size_t idx;
    Rollcall__Report *r;
    int64_t now, t0;
} parked;

typedef struct waiter {
    http_ctx *ctx;
    size_t idx;
    struct waiter *next;
} waiter;

/* One report on its way to Kafka.  Concurrent duplicates (same report_id,
 * same content) wait on it instead of producing again. */
typedef struct job {
    intake *in;
    char report_id[37];
    int64_t version;
    int pending;                /* delivery reports still to come */
    bool fast;                  /* its reports.village copy went by in->single */
    rd_kafka_resp_err_t err;
    int64_t t0;                 /* monotonic µs, when produced */
    int64_t slot;               /* dedupe slot */
    waiter first;
    waiter *more;
} job;

struct intake {
    const village_config *cfg;
    struct event_base *base;
    const rc_registry *reg;
    auth *auth;
    connlimit *cl;              /* borrowed; NULL: none */
    dedupe *dd;
    rc_validate_opts vopts;
    /* prod: batches, and single reports while `single` is busy (linger.ms
     * 20, lz4); single: single reports (linger.ms 0, uncompressed); urgent:
     * the reports.urgent copy of URGENT reports, a connection of its own. */
    rc_producer *prod, *single, *urgent;
    struct event *prod_ev, *single_ev, *urgent_ev, *tick;
    int64_t last_version;
    uint8_t rand_pool[4096];
    size_t rand_left;
    size_t inflight;            /* jobs waiting for Kafka */
    size_t single_inflight;     /* of which on in->single */
    int64_t poll_us;            /* monotonic clock while serving delivery reports */
    EVP_MD_CTX *md_ctx;         /* fingerprints, reused */
    EVP_MD *sha256;
    bool stopping;

    /* Kafka health, kept by a thread: /healthz must not block the loop. */
    rc_probe *probe;            /* borrows prod's handle: freed before it */

    rc_counter *by_status[600];
    rc_counter *auth_missing, *auth_unknown, *auth_forbidden, *replays, *conflicts, *shed;
    archive *archive;           /* NULL: archive_check off, or stopping */
    rc_counter *archive_answers[3]; /* by ar_answer */
    rc_histogram *lat_village, *lat_urgent;
};

/* --------------------------------------------------------------- metrics */

static const double latency_bounds[] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.025,
                                        0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

static void count_status(intake *in, int status)
{
    if (status < 100 || status >= 600)
        return;
    if (!in->by_status[status]) {
        char labels[32];
        snprintf(labels, sizeof labels, "status=\"%d\"", status);
        in->by_status[status] = rc_metrics_counter(
            "rollcall_village_reports_total",
            "Reports answered (batch items one by one), by status.", labels);
    }
    rc_counter_inc(in->by_status[status]);
}

/* Counts each offending field once, by the field's first path element
 * ("indicators.confirmed" -> "indicators"), a bounded set of labels. */
static void count_invalid(const rc_errors *errs)
{
    size_t n = errs->n < RC_ERRORS_MAX ? errs->n : RC_ERRORS_MAX;
    for (size_t i = 0; i < n; i++) {
        char reason[64], labels[96];
        size_t k = strcspn(errs->e[i].field, ".[");
        if (k == 0)
            snprintf(reason, sizeof reason, "body");
        else
            snprintf(reason, sizeof reason, "%.*s", (int)(k < 60 ? k : 60), errs->e[i].field);
        for (char *p = reason; *p; p++)
            if (!((*p >= 'a' && *p <= 'z') || *p == '_' || (*p >= '0' && *p <= '9')))
                *p = '_';
        snprintf(labels, sizeof labels, "reason=\"%s\"", reason);
        rc_counter_inc(rc_metrics_counter("rollcall_village_validation_failures_total",
                                          "Invalid reports, by offending field.", labels));
    }
}

static double gauge_inflight(void *opaque)
{
    return (double)((intake *)opaque)->inflight;
}

static double gauge_dedupe(void *opaque)
{
    return (double)dedupe_size(((intake *)opaque)->dd);
}

static double gauge_tokens(void *opaque)
{
    return (double)auth_count(opaque);
}

static int64_t mono_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

/* ---------------------------------------------------------------- replies */

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200: return "OK";
    case 202: return "Accepted";
    case 207: return "Multi-Status";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

static void send_reply(intake *in, struct evhttp_request *req, int status, struct evbuffer *body)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);

    evhttp_add_header(h, "Content-Type", "application/json");
    if (status == 503) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", in->cfg->retry_after_s);
        evhttp_add_header(h, "Retry-After", ra);
    } else if (status == 401) {
        evhttp_add_header(h, "WWW-Authenticate", "Bearer realm=\"rollcall\"");
    }
    connlimit_replied(in->cl, req);
    evhttp_send_reply(req, status, reason_phrase(status), body);
}

/* Replies with a JSON text; for errors that end a request early. */
static void reply_text(intake *in, struct evhttp_request *req, int status, const char *json)
{
    struct evbuffer *out = evhttp_request_get_output_buffer(req);
    evbuffer_add(out, json, strlen(json));
    send_reply(in, req, status, NULL);
}

static char *json_text(json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s ? s : strdup("{\"error\":\"out of memory\"}");
}

static char *error_body(const char *error, const char *reason, const char *report_id)
{
    json_t *o = json_object();
    json_object_set_new(o, "error", json_string(error));
    if (reason)
        json_object_set_new(o, "reason", json_string(reason));
    if (report_id && *report_id)
        json_object_set_new(o, "report_id", json_string(report_id));
    return json_text(o);
}

/* Appends one result as a JSON object; `index` < 0 leaves it out.  The
 * accepted answer, the one nearly every report gets, is put together by
 * hand: through evbuffer_add_printf it cost a tenth of a single report's
 * instructions. */
static void add_result(struct evbuffer *out, const result *r, long index)
{
    char head[64] = "{";

    if (r->status == 202) {
        char buf[160], *p = buf;
        if (index >= 0) {
            p = rc_put_int(rc_put_str(p, "{\"index\":"), index);
            p = rc_put_int(rc_put_str(p, ",\"status\":"), r->status);
            p = rc_put_str(p, ",\"report_id\":\"");
        } else {
            p = rc_put_str(p, "{\"report_id\":\"");
        }
        p = rc_put_str(p, r->report_id);                      /* 36 characters at most */
        p = rc_put_int(rc_put_str(p, "\",\"version\":"), r->version);
        *p++ = '}';
        evbuffer_add(out, buf, (size_t)(p - buf));
        return;
    }
    if (index >= 0)
        snprintf(head, sizeof head, "{\"index\":%ld,\"status\":%d,", index, r->status);
    {
        /* r->body is an object: splice its members after the head. */
        const char *b = r->body ? r->body : "{\"error\":\"unknown\"}";
        if (index >= 0)
            evbuffer_add_printf(out, "%s%s", head, b + 1);
        else
            evbuffer_add(out, b, strlen(b));
    }
}

static void ctx_free(http_ctx *ctx)
{
    for (size_t i = 0; i < ctx->n; i++)
        free(ctx->res[i].body);
    if (ctx->res != &ctx->one)
        free(ctx->res);
    free(ctx);
}

static void ctx_reply(http_ctx *ctx)
{
    intake *in = ctx->in;
    struct evbuffer *out = evhttp_request_get_output_buffer(ctx->req);
    int status;

    if (!ctx->batch) {
        status = ctx->res[0].status;
        add_result(out, &ctx->res[0], -1);
    } else {
        size_t accepted = 0, unavailable = 0;
        int same = ctx->n ? ctx->res[0].status : 400;
        for (size_t i = 0; i < ctx->n; i++) {
            accepted += ctx->res[i].status == 202;
            unavailable += ctx->res[i].status == 503;
            if (ctx->res[i].status != same)
                same = 400;
        }
        /* 200 only when every report is durable; any report Kafka did not
         * take makes the whole answer 503 (accepted items are listed and a
         * retry of the same batch is idempotent). */
        if (unavailable)
            status = 503;
        else if (accepted == ctx->n)
            status = 200;
        else if (accepted)
            status = 207;
        else
            status = same == 503 || same == 202 ? 400 : same;
        evbuffer_add_printf(out, "{\"accepted\":%zu,\"rejected\":%zu,\"results\":[", accepted,
                            ctx->n - accepted);
        for (size_t i = 0; i < ctx->n; i++) {
            if (i)
                evbuffer_add(out, ",", 1);
            add_result(out, &ctx->res[i], (long)i);
        }
        evbuffer_add(out, "]}", 2);
    }
    send_reply(in, ctx->req, status, NULL);
    ctx_free(ctx);
}

/* Records a report's answer; the request is answered with its last one. */
static void set_result(http_ctx *ctx, size_t idx, int status, const char *report_id,
                       int64_t version, char *body)
{
    result *r = &ctx->res[idx];

    count_status(ctx->in, status);
    r->status = status;
    snprintf(r->report_id, sizeof r->report_id, "%s", report_id ? report_id : "");
    r->version = version;
    free(r->body);
    r->body = body;
    if (--ctx->waiting == 0)
        ctx_reply(ctx);
}

static http_ctx *ctx_new(intake *in, struct evhttp_request *req, bool batch, size_t n)
{
    http_ctx *ctx = calloc(1, sizeof *ctx);

    if (!ctx)
        return NULL;
    ctx->in = in;
    ctx->req = req;
    ctx->batch = batch;
    ctx->n = ctx->waiting = n;
    if (n <= 1) {
        ctx->res = &ctx->one;
    } else if (!(ctx->res = calloc(n, sizeof *ctx->res))) {
        free(ctx);
        return NULL;
    }
    return ctx;
}

/* ------------------------------------------------------------ Kafka path */

static void job_finish(job *j)
{
    intake *in = j->in;
    bool ok = j->err == RD_KAFKA_RESP_ERR_NO_ERROR;
    waiter *w, *next;

    dedupe_set(in->dd, (uint32_t)j->slot, ok ? DD_DONE : DD_FAILED, NULL);
    in->inflight--;
    if (j->fast)
        in->single_inflight--;
    if (!ok)
        rc_warn("report not durable report_id=%s error=\"%s\"", j->report_id, rd_kafka_err2str(j->err));
    j->first.next = j->more;
    for (w = &j->first; w; w = next) {
        char *body = NULL;
        next = w->next;
        if (!ok) {
            char reason[160];
            snprintf(reason, sizeof reason,
                     "Kafka did not acknowledge the report within %d ms (%s); retry with the same report_id",
                     in->cfg->produce_timeout_ms, rd_kafka_err2name(j->err));
            body = error_body("not durable", reason, j->report_id);
        }
        set_result(w->ctx, w->idx, ok ? 202 : 503, j->report_id, j->version, body);
        if (w != &j->first)
            free(w);
    }
    free(j);
}

static void on_delivery(void *opaque, void *msg_opaque, rd_kafka_resp_err_t err, const char *topic,
                        int32_t partition, int64_t offset)
{
    intake *in = opaque;
    job *j = msg_opaque;

    /* One clock reading per poll (in->poll_us), not per message. */
    rc_histogram_observe(strcmp(topic, TOPIC_URGENT) == 0 ? in->lat_urgent : in->lat_village,
                         (double)((in->poll_us ? in->poll_us : mono_us()) - j->t0) / 1e6);
    if (err) {
        j->err = err;
    } else {
        rc_debug("report durable report_id=%s topic=%s partition=%d offset=%lld", j->report_id,
                 topic, partition, (long long)offset);
    }
    if (--j->pending == 0)
        job_finish(j);
}

static void drain_fd(int fd)
{
    char buf[256];
    while (read(fd, buf, sizeof buf) > 0)
        ;
}

static void poll_producer(intake *in, rc_producer *p)
{
    in->poll_us = mono_us();
    rc_producer_poll(p, 0);
    in->poll_us = 0;
}

static void on_producer_event(evutil_socket_t fd, short what, void *arg)
{
    intake *in = arg;
    drain_fd(fd);
    poll_producer(in, fd == rc_producer_event_fd(in->prod)     ? in->prod
                      : in->single && fd == rc_producer_event_fd(in->single) ? in->single
                                                               : in->urgent);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    intake *in = arg;
    /* A safety net for a wake-up lost between drain and poll. */
    if (in->prod)
        poll_producer(in, in->prod);
    if (in->single)
        poll_producer(in, in->single);
    if (in->urgent)
        poll_producer(in, in->urgent);
}

/* Produces a packed report; the job then waits for 1 (DAILY, ZERO) or 2
 * (URGENT: reports.village and reports.urgent) delivery reports.  A send
 * refused locally counts as a failed delivery.
 *
 * The answer waits only for durability: a single report goes out at once
 * (in->single, linger.ms=0) unless fast_inflight reports already wait there;
 * then the queue is busy and it joins the lingering batches of in->prod,
 * where under load a partition's reports travel together (see README.md).
 * An URGENT report never lingers. */
static void job_produce(job *j, const uint8_t *buf, size_t len, const char *unit, bool urgent,
                        bool single, int64_t t0)
{
    intake *in = j->in;
    int sends = urgent ? 2 : 1;
    rc_producer *p = in->prod;

    j->t0 = t0;
    j->pending = sends;
    in->inflight++;
    if (in->single && (urgent || (single && in->single_inflight < (size_t)in->cfg->fast_inflight))) {
        p = in->single;
        j->fast = true;
        in->single_inflight++;
    }
    /* Village reports are keyed by their township: one township's villages
     * share a partition. */
    if (rc_producer_send(p, TOPIC_VILLAGE, RD_KAFKA_PARTITION_UA, unit, 9, buf, len, j, 0) < 0) {
        j->err = RD_KAFKA_RESP_ERR__QUEUE_FULL;
        j->pending--;
    }
    /* The fast path is keyed by the village, like the level services'
     * forwards on reports.urgent: all hops of one report share a partition. */
    if (urgent && rc_producer_send(in->urgent, TOPIC_URGENT, RD_KAFKA_PARTITION_UA, unit,
                                   strlen(unit), buf, len, j, 0) < 0) {
        j->err = RD_KAFKA_RESP_ERR__QUEUE_FULL;
        j->pending--;
    }
    if (j->pending == 0)
        job_finish(j);
}

/* ------------------------------------------------------------ validation */

static void handle_report(intake *in, http_ctx *ctx, size_t idx, Rollcall__Report *r,
                          const char *scope, int64_t now, int64_t t0, const archive_ask *asked);

/* The archive's answer about a parked report's id (archive.c, on the loop). */
static void on_archived(void *arg, archive_ask *a)
{
    intake *in = arg;
    parked *p = a->opaque;

    handle_report(in, p->ctx, p->idx, p->r, NULL, p->now, p->t0, a);
    free(p);
    archive_ask_free(a);
}

int intake_parse_bounds(const char *spec, rc_validate_opts *opts, char *errbuf, size_t errlen)
{
    rc_validate_opts tmp = *opts;
    char *copy, *save = NULL, *tok;
    int rc = -1;

    if (!spec || !*spec)
        return 0;
    if (!(copy = strdup(spec))) {
        snprintf(errbuf, errlen, "out of memory");
        return -1;
    }
    for (tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        char *eq = strchr(tok, '='), *end;
        long long v;
        int idx;
        if (!eq) {
            snprintf(errbuf, errlen, "bounds: \"%s\" is not name=max", tok);
            goto done;
        }
        *eq = '\0';
        errno = 0;
        v = strtoll(eq + 1, &end, 10);
        if (errno || end == eq + 1 || *end || v < 0) {
            snprintf(errbuf, errlen, "bounds: %s = \"%s\" is not a non-negative integer", tok, eq + 1);
            goto done;
        }
        if (strcmp(tok, "extra") == 0) {
            tmp.max_extra_value = v;
        } else if ((idx = rc_indicator_index(tok)) >= 0) {
            tmp.max_value[idx] = v;
        } else {
            snprintf(errbuf, errlen, "bounds: unknown indicator \"%s\" (a core indicator or \"extra\")", tok);
            goto done;
        }
    }
    *opts = tmp;
    rc = 0;
done:
    free(copy);
    return rc;
}

/* ------------------------------------------------------- one report's path */

/* The first 8 bytes of the SHA-256 of a packed report. */
static uint64_t fingerprint(intake *in, const uint8_t *buf, size_t len)
{
    uint8_t h[EVP_MAX_MD_SIZE];
    unsigned int hl = 0;
    uint64_t fp;

    /* One context and one fetched algorithm for every report: OpenSSL 3's
     * one-shot SHA256() fetches and allocates on each call. */
    if (!EVP_DigestInit_ex2(in->md_ctx, in->sha256, NULL) || !EVP_DigestUpdate(in->md_ctx, buf, len)
        || !EVP_DigestFinal_ex(in->md_ctx, h, &hl) || hl < sizeof fp)
        rc_token_hash((const char *)buf, len, h);
    memcpy(&fp, h, sizeof fp);
    return fp;
}

/* A version 4 UUID from OpenSSL's user-space DRBG (libuuid's
 * uuid_generate_random costs six system calls an id). */
static void new_uuid(intake *in, uint8_t bin[16], char str[37])
{
    /* Drawn 4 KiB at a time: each RAND_bytes call still costs a getpid. */
    if (in->rand_left < 16) {
        if (RAND_bytes(in->rand_pool, sizeof in->rand_pool) != 1) {
            uuid_generate_random(bin);
            uuid_unparse_lower(bin, str);
            return;
        }
        in->rand_left = sizeof in->rand_pool;
    }
    in->rand_left -= 16;
    memcpy(bin, in->rand_pool + in->rand_left, 16);
    OPENSSL_cleanse(in->rand_pool + in->rand_left, 16);
    bin[6] = (uint8_t)((bin[6] & 0x0f) | 0x40);
    bin[8] = (uint8_t)((bin[8] & 0x3f) | 0x80);
    uuid_unparse_lower(bin, str);
}

static int64_t next_version(intake *in, int64_t now)
{
    /* Receive time in µs, strictly increasing within this process. */
    if (now <= in->last_version)
        now = in->last_version + 1;
    in->last_version = now;
    return now;
}

/* True when the archived payload is the report r, but for what the intake
 * assigns or takes as informative: version, received_at, submitted_at (a
 * retry may stamp a new one) and the urgent hop.  r is left as it was. */
static bool same_report(const Rollcall__Report *r_in, const uint8_t *payload, size_t len)
{
    Rollcall__Report *r = (Rollcall__Report *)r_in, *a;
    rc_errors errs;
    uint8_t *pa = NULL, *pr = NULL;
    size_t la = 0, lr = 0, hops = 0;
    int64_t submitted = r->submitted_at;
    bool same;

    errs.n = 0;
    if (!payload || !(a = rc_report_unpack(payload, len, &errs)))
        return false;
    a->version = a->received_at = a->submitted_at = 0;
    if (a->incident) {
        hops = a->incident->n_hops;
        a->incident->n_hops = 0;
    }
    r->submitted_at = 0;
    pa = rc_report_pack(a, &la);
    pr = rc_report_pack(r, &lr);
    r->submitted_at = submitted;
    same = pa && pr && la == lr && memcmp(pa, pr, la) == 0;
    if (a->incident)
        a->incident->n_hops = hops;     /* freed with the message */
    free(pa);
    free(pr);
    rc_report_free(a);
    return same;
}

/* Takes one decoded report (ownership passes here: it is freed before
 * returning, or parked until the archive answers) and either answers it at
 * once or leaves it waiting for Kafka.  `scope` is the token's unit, NULL
 * when authentication is off.  `asked`: the archive's answer about its
 * report_id when the report comes back from there (already checked then),
 * NULL on its first pass. */
static void handle_report(intake *in, http_ctx *ctx, size_t idx, Rollcall__Report *r,
                          const char *scope, int64_t now, int64_t t0, const archive_ask *asked)
{
    rc_errors errs;
    rc_validate_opts opts;
    uint8_t idbin[16];
    char idstr[37] = "";
    char *saved_id = NULL;
    uint8_t *packed = NULL;
    size_t len = 0;
    uint64_t fp;
    int64_t version;
    dd_entry hit;
    bool have_hit = false;
    job *j = NULL;
    Rollcall__Hop hop = ROLLCALL__HOP__INIT, *hops[1] = {&hop};
    const char *unit = r->unit_code ? r->unit_code : "";

    errs.n = 0;        /* the 8 KiB of entries are written before they are read */
    if (asked)
        goto checked;
    /* A token answers for its own subtree only; checked before anything
     * else is said about the report. */
    if (scope && *unit && !rc_token_covers(scope, unit)) {
        char reason[128];
        rc_counter_inc(in->auth_forbidden);
        snprintf(reason, sizeof reason, "this token may not submit for unit %.12s", unit);
        set_result(ctx, idx, 403, r->report_id, 0, error_body("forbidden", reason, NULL));
        goto done;
    }
    if (r->level == ROLLCALL__LEVEL__LEVEL_UNSPECIFIED)
        r->level = ROLLCALL__LEVEL__LEVEL_VILLAGE;
    opts = in->vopts;
    opts.now_us = now;
    (void)rc_report_validate(r, &opts, in->reg, &errs);     /* errs says it all */
    rc_report_check_submission(r, in->reg, &errs);
    if (errs.n > 0) {
        count_invalid(&errs);
        set_result(ctx, idx, 400, NULL, 0, json_text(rc_errors_to_json(&errs)));
        goto done;
    }
    if (scope == NULL && !*unit) {
        set_result(ctx, idx, 400, NULL, 0, error_body("invalid report", "unit_code is required", NULL));
        goto done;
    }

checked:
    if (r->report_id && *r->report_id) {
        snprintf(idstr, sizeof idstr, "%s", r->report_id);
        if (uuid_parse(idstr, idbin) < 0) {     /* validate said it is a UUID */
            set_result(ctx, idx, 400, NULL, 0, error_body("invalid report", "report_id is not a UUID", NULL));
            goto done;
        }
        have_hit = dedupe_find(in->dd, idbin, now, &hit);
        /* The window forgets (dedupe_entries, dedupe_window, a restart);
         * the archive does not.  An id the client chose and the window does
         * not know is asked of the archive before anything is produced: the
         * ids the intake makes up itself are new by construction, and ask
         * nothing. */
        if (!have_hit && !asked && in->archive) {
            parked *p = malloc(sizeof *p);
            if (p && archive_ask_id(in->archive, idbin, p) == 0) {
                *p = (parked){ctx, idx, r, now, t0};
                return;                         /* on_archived resumes it */
            }
            free(p);
            set_result(ctx, idx, 503, idstr, 0, error_body("out of memory", NULL, idstr));
            goto done;
        }
        if (!have_hit && asked) {
            rc_counter_inc(in->archive_answers[asked->answer]);
            if (asked->answer == AR_FOUND && same_report(r, asked->payload, asked->len)) {
                rc_counter_inc(in->replays);
                set_result(ctx, idx, 202, idstr, asked->version, NULL);
                goto done;
            }
            if (asked->answer == AR_FOUND) {
                rc_counter_inc(in->conflicts);
                set_result(ctx, idx, 409, idstr, 0,
                           error_body("conflict", "report_id was already used for a different report (archived)",
                                      idstr));
                goto done;
            }
            /* AR_UNKNOWN: PostgreSQL did not answer.  The intake keeps
             * taking reports from its caches while PostgreSQL is away; a
             * reused id is then caught only by the window (counted). */
        }
    } else {
        new_uuid(in, idbin, idstr);
        saved_id = r->report_id;
        r->report_id = idstr;
    }

    /* The message as it goes to Kafka: a retry is packed with the version
     * first given to its report_id, so the fingerprint (over the whole
     * message) matches exactly when the retry is the same report.  One pack
     * per report. */
    if (in->stopping || !in->prod) {
        rc_counter_inc(in->shed);
        set_result(ctx, idx, 503, idstr, 0, error_body("unavailable", "the intake is shutting down", idstr));
        goto done;
    }
    version = have_hit ? hit.version : next_version(in, now);
    /* submitted_at is the client's clock, informative: a retry that stamps
     * a new one is still the same report, and keeps the first. */
    if (have_hit)
        r->submitted_at = hit.submitted_at;
    r->version = version;
    r->received_at = version;
    if (r->kind == ROLLCALL__KIND__KIND_URGENT && r->incident) {
        hop.level = ROLLCALL__LEVEL__LEVEL_VILLAGE;
        hop.unit_code = (char *)unit;
        hop.at = version;
        r->incident->n_hops = 1;
        r->incident->hops = hops;
    }
    packed = rc_report_pack(r, &len);
    if (r->incident && r->incident->hops == hops) {
        r->incident->n_hops = 0;
        r->incident->hops = NULL;
    }
    if (!packed) {
        set_result(ctx, idx, 503, idstr, 0, error_body("out of memory", NULL, idstr));
        goto done;
    }
    /* A JSON item may pack larger than its text: the same cap, and 413. */
    if (len > (size_t)in->cfg->max_body) {
        char reason[128];
        snprintf(reason, sizeof reason, "the report packs to %zu bytes, the limit is %d", len,
                 in->cfg->max_body);
        set_result(ctx, idx, 413, idstr, 0, error_body("payload too large", reason, idstr));
        goto done;
    }
    fp = fingerprint(in, packed, len);

    if (have_hit && hit.fingerprint != fp) {
        rc_counter_inc(in->conflicts);
        set_result(ctx, idx, 409, idstr, 0,
                   error_body("conflict", "report_id was already used for a different report", idstr));
        goto done;
    }
    if (have_hit && hit.state == DD_DONE) {
        rc_counter_inc(in->replays);
        set_result(ctx, idx, 202, idstr, hit.version, NULL);
        goto done;
    }
    if (have_hit && hit.state == DD_INFLIGHT) {
        job *first = hit.job;
        waiter *w = malloc(sizeof *w);
        if (!w) {
            set_result(ctx, idx, 503, idstr, 0, error_body("out of memory", NULL, idstr));
            goto done;
        }
        rc_counter_inc(in->replays);
        *w = (waiter){ctx, idx, first->more};
        first->more = w;
        goto done;
    }
    if (in->inflight >= (size_t)in->cfg->max_inflight || !(j = calloc(1, sizeof *j))) {
        rc_counter_inc(in->shed);
        set_result(ctx, idx, 503, idstr, 0, error_body("unavailable", "too many reports waiting for Kafka", idstr));
        goto done;
    }
    j->in = in;
    memcpy(j->report_id, idstr, sizeof j->report_id);
    j->first = (waiter){ctx, idx, NULL};
    j->version = version;
    if (have_hit) {
        /* A retry after a 503: the same version again, so both copies that
         * may now be in Kafka are the same revision. */
        j->slot = hit.slot;
        dedupe_set(in->dd, hit.slot, DD_INFLIGHT, j);
    } else if ((j->slot = dedupe_add(in->dd, idbin, version, r->submitted_at, fp, j)) < 0) {
        free(j);
        rc_counter_inc(in->shed);
        set_result(ctx, idx, 503, idstr, 0, error_body("unavailable", "too many reports in flight", idstr));
        goto done;
    }
    rc_debug("report received report_id=%s unit=%s version=%lld", idstr, unit, (long long)version);
    job_produce(j, packed, len, unit, r->kind == ROLLCALL__KIND__KIND_URGENT, !ctx->batch, t0);
done:
    free(packed);
    if (saved_id)
        r->report_id = saved_id;
    rc_report_free(r);
}

/* --------------------------------------------------------------- handlers */

typedef enum { TOKEN_OK, TOKEN_MISSING, TOKEN_UNKNOWN } token_check;

/* Looks the Authorization value h[0..hlen) up; fills scope on TOKEN_OK. */
static token_check check_token(intake *in, const char *h, size_t hlen, char scope[13])
{
    const char *tok;
    size_t len;

    if (!h || hlen < 7 || strncasecmp(h, "Bearer ", 7) != 0)
        return TOKEN_MISSING;
    for (tok = h + 7, len = hlen - 7; len && *tok == ' '; tok++, len--)
        ;
    while (len && tok[len - 1] == ' ')
        len--;
    if (len == 0 || len > MAX_TOKEN || !auth_lookup(in->auth, tok, len, scope))
        return TOKEN_UNKNOWN;
    return TOKEN_OK;
}

static void reply_unauthorized(intake *in, struct evhttp_request *req, token_check why)
{
    rc_counter_inc(why == TOKEN_MISSING ? in->auth_missing : in->auth_unknown);
    count_status(in, 401);
    reply_text(in, req, 401, why == TOKEN_MISSING
               ? "{\"error\":\"unauthorized\",\"reason\":\"an Authorization: Bearer <token> header is required\"}"
               : "{\"error\":\"unauthorized\",\"reason\":\"unknown or revoked token\"}");
}

/* Returns 0 with the token's unit in scope (or scope "" when auth is off),
 * or -1 after answering 401. */
static int authenticate(intake *in, struct evhttp_request *req, char scope[13])
{
    const char *h;
    token_check why;

    scope[0] = '\0';
    if (!in->auth)
        return 0;
    h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    why = check_token(in, h, h ? strlen(h) : 0, scope);
    if (why != TOKEN_OK) {
        reply_unauthorized(in, req, why);
        return -1;
    }
    return 0;
}

static void reply_too_large(intake *in, struct evhttp_request *req, long long len, size_t max_body)
{
    char msg[200];
    snprintf(msg, sizeof msg,
             "{\"error\":\"payload too large\",\"reason\":\"the body is %lld bytes, the limit is %zu\",\"limit\":%zu}",
             len, max_body, max_body);
    count_status(in, 413);
    reply_text(in, req, 413, msg);
}

/* The routes' body caps; 0 for a path that takes no body. */
static size_t route_cap(const intake *in, const char *path)
{
    if (strcmp(path, "/v1/reports") == 0)
        return (size_t)in->cfg->max_body;
    if (strcmp(path, "/v1/reports:batch") == 0)
        return (size_t)in->cfg->max_batch_body;
    return 0;
}

/* Before a byte of the body is read: a client without a valid token, or
 * announcing a body over the route's cap, costs a head's parsing, not up to
 * max_batch_body of memory and reading.  Encoded with CHUNKED there is no
 * length to judge: the handler checks the body it was given (evhttp caps
 * it at max_batch_body). */
int intake_head_check(void *arg, const conn_head *h, conn_refusal *why)
{
    intake *in = arg;
    size_t cap = route_cap(in, h->path);
    char scope[13];
    token_check tc;

    if (cap == 0) {     /* /healthz, /metrics take no body: any would be a waste to read */
        if (!h->chunked && h->content_length <= 0)
            return 0;
        *why = (conn_refusal){413, h->content_length, 0};
        return 413;
    }
    if (in->auth && (tc = check_token(in, h->auth, h->auth ? h->auth_len : 0, scope)) != TOKEN_OK) {
        *why = (conn_refusal){401, tc, 0};
        return 401;
    }
    if (h->content_length > 0 && (size_t)h->content_length > cap) {
        *why = (conn_refusal){413, h->content_length, (long long)cap};
        return 413;
    }
    return 0;
}

/* A request the head check refused arrives without its body: answers it
 * as the checks below would have, after reading it.  Returns false for any
 * other request. */
static bool answer_refusal(intake *in, struct evhttp_request *req)
{
    conn_refusal why;
    int status = connlimit_refusal(in->cl, req, &why);

    if (status == 0)
        return false;
    if (status == 401)
        reply_unauthorized(in, req, why.detail == TOKEN_MISSING ? TOKEN_MISSING : TOKEN_UNKNOWN);
    else
        reply_too_large(in, req, why.detail, (size_t)why.limit);
    return true;
}

typedef enum { BODY_JSON, BODY_PROTOBUF, BODY_OTHER } body_type;

static body_type content_type(struct evhttp_request *req)
{
    const char *ct = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
    if (!ct || strncasecmp(ct, "application/json", 16) == 0)
        return BODY_JSON;
    if (strncasecmp(ct, "application/x-protobuf", 22) == 0
        || strncasecmp(ct, "application/protobuf", 20) == 0
        || strncasecmp(ct, "application/vnd.google.protobuf", 31) == 0)
        return BODY_PROTOBUF;
    return BODY_OTHER;
}

/* The checks common to both routes.  Returns the body type, or -1 after
 * answering. */
static int precheck(intake *in, struct evhttp_request *req, size_t max_body, char scope[13],
                    size_t *len)
{
    body_type t;

    if (answer_refusal(in, req))
        return -1;
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
        count_status(in, 405);
        reply_text(in, req, 405, "{\"error\":\"method not allowed\",\"reason\":\"use POST\"}");
        return -1;
    }
    if (authenticate(in, req, scope) < 0)
        return -1;
    *len = evbuffer_get_length(evhttp_request_get_input_buffer(req));
    if (*len > max_body) {
        reply_too_large(in, req, (long long)*len, max_body);
        return -1;
    }
    t = content_type(req);
    if (t == BODY_OTHER) {
        count_status(in, 415);
        reply_text(in, req, 415, "{\"error\":\"unsupported media type\",\"reason\":\"send application/json or application/x-protobuf\"}");
        return -1;
    }
    return (int)t;
}

static void on_report(struct evhttp_request *req, void *arg)
{
    intake *in = arg;
    char scope[13];
    size_t len;
    connlimit_request(in->cl, req);
    int t = precheck(in, req, (size_t)in->cfg->max_body, scope, &len);
    rc_errors errs;
    Rollcall__Report *r;
    http_ctx *ctx;
    const uint8_t *body;

    if (t < 0)
        return;
    errs.n = 0;
    if (!(ctx = ctx_new(in, req, false, 1))) {
        reply_text(in, req, 503, "{\"error\":\"out of memory\"}");
        return;
    }
    body = len ? evbuffer_pullup(evhttp_request_get_input_buffer(req), -1) : (const uint8_t *)"";
    r = t == BODY_PROTOBUF ? rc_report_unpack(body, len, &errs)
                           : rc_report_from_json_text((const char *)body, len, &errs);
    if (!r) {
        if (errs.n == 0)
            rc_errors_add(&errs, "", "the body is not a report");
        count_invalid(&errs);
        set_result(ctx, 0, 400, NULL, 0, json_text(rc_errors_to_json(&errs)));
        return;
    }
    handle_report(in, ctx, 0, r, in->auth ? scope : NULL, rc_now_us(), mono_us(), NULL);
}

static void reply_batch_error(intake *in, struct evhttp_request *req, int status, const char *reason)
{
    char *body = error_body(status == 413 ? "payload too large" : "invalid batch", reason, NULL);
    count_status(in, status);
    reply_text(in, req, status, body);
    free(body);
}

static void on_batch(struct evhttp_request *req, void *arg)
{
    intake *in = arg;
    char scope[13], reason[256];
    size_t len, n = 0, max = (size_t)in->cfg->max_batch_items;
    connlimit_request(in->cl, req);
    int t = precheck(in, req, (size_t)in->cfg->max_batch_body, scope, &len);
    const uint8_t *body;
    json_t *arr = NULL;
    json_error_t jerr;
    http_ctx *ctx;
    int64_t now, t0;

    if (t < 0)
        return;
    body = len ? evbuffer_pullup(evhttp_request_get_input_buffer(req), -1) : (const uint8_t *)"";

    /* Count the items first: the answer has one result per item. */
    if (t == BODY_JSON) {
        arr = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!arr || !json_is_array(arr)) {
            snprintf(reason, sizeof reason, arr ? "the body must be a JSON array of reports"
                                                : "JSON syntax error at line %d column %d: %s",
                     jerr.line, jerr.column, jerr.text);
            json_decref(arr);
            reply_batch_error(in, req, 400, reason);
            return;
        }
        n = json_array_size(arr);
    } else {
        size_t off = 0, ilen;
        const uint8_t *item;
        int more;
        while ((more = rc_report_stream_next(body, len, &off, &item, &ilen)) > 0)
            n++;
        if (more < 0) {
            snprintf(reason, sizeof reason,
                     "malformed length-delimited stream at byte %zu (item %zu)", off, n);
            reply_batch_error(in, req, 400, reason);
            return;
        }
    }
    if (n == 0 || n > max) {
        snprintf(reason, sizeof reason, n ? "%zu reports, the limit is %zu" : "the batch is empty", n, max);
        json_decref(arr);
        reply_batch_error(in, req, n ? 413 : 400, reason);
        return;
    }
    if (!(ctx = ctx_new(in, req, true, n))) {
        json_decref(arr);
        reply_text(in, req, 503, "{\"error\":\"out of memory\"}");
        return;
    }
    /* The last item's answer may send the reply and free ctx: keep one
     * reference of our own until every item is handed over.  The clocks are
     * read once per request (versions still grow by at least 1 µs). */
    ctx->waiting++;
    now = rc_now_us();
    t0 = mono_us();
    for (size_t i = 0, off = 0; i < n; i++) {
        rc_errors errs;
        Rollcall__Report *r;
        errs.n = 0;
        if (arr) {
            r = rc_report_from_json(json_array_get(arr, i), &errs);
        } else {
            const uint8_t *item = NULL;
            size_t ilen = 0;
            rc_report_stream_next(body, len, &off, &item, &ilen);   /* checked above */
            /* An item has the single report's cap: its own 413, for good
             * (over Kafka's message size it would be refused there and
             * answered 503, retried for ever). */
            if (ilen > (size_t)in->cfg->max_body) {
                snprintf(reason, sizeof reason, "the report is %zu bytes, the limit is %d", ilen,
                         in->cfg->max_body);
                set_result(ctx, i, 413, NULL, 0, error_body("payload too large", reason, NULL));
                continue;
            }
            r = rc_report_unpack(item, ilen, &errs);
        }
        if (!r) {
            if (errs.n == 0)
                rc_errors_add(&errs, "", "not a report");
            count_invalid(&errs);
            set_result(ctx, i, 400, NULL, 0, json_text(rc_errors_to_json(&errs)));
            continue;
        }
        handle_report(in, ctx, i, r, in->auth ? scope : NULL, now, t0, NULL);
    }
    json_decref(arr);
    if (--ctx->waiting == 0)
        ctx_reply(ctx);
}

/* --------------------------------------------------------------- lifetime */

static int hook_producer(intake *in, rc_producer *p, struct event **ev, char *errbuf, size_t errlen)
{
    *ev = event_new(in->base, rc_producer_event_fd(p), EV_READ | EV_PERSIST, on_producer_event, in);
    if (!*ev || event_add(*ev, NULL) < 0) {
        snprintf(errbuf, errlen, "cannot watch the producer's event fd");
        return -1;
    }
    return 0;
}

void intake_set_registry(intake *in, const rc_registry *reg)
{
    in->reg = reg;
}

void intake_set_connlimit(intake *in, connlimit *cl)
{
    in->cl = cl;
}

intake *intake_new(const village_config *cfg, struct event_base *base, const rc_registry *reg,
                   auth *a, const char *const *kafka_props, size_t nprops,
                   char *errbuf, size_t errlen)
{
    intake *in = calloc(1, sizeof *in);
    const char **props = NULL;
    char timeout[64], why[256];
    size_t np = 0;
    struct timeval tick = {0, 100 * 1000};

    if (!in || !(props = calloc(nprops + 5, sizeof *props))) {
        snprintf(errbuf, errlen, "out of memory");
        free(in);
        return NULL;
    }
    in->cfg = cfg;
    in->base = base;
    in->reg = reg;
    in->auth = a;

    rc_validate_opts_default(&in->vopts);
    in->vopts.max_past_days = cfg->window_days;
    in->vopts.max_future_days = cfg->future_days;
    in->vopts.require_report_id = false;
    if (intake_parse_bounds(cfg->bounds, &in->vopts, errbuf, errlen) < 0)
        goto err;
    in->md_ctx = EVP_MD_CTX_new();
    in->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (!in->md_ctx || !in->sha256) {
        snprintf(errbuf, errlen, "OpenSSL: SHA-256 unavailable");
        goto err;
    }
    if (!(in->dd = dedupe_new((size_t)cfg->dedupe_entries, (int64_t)cfg->dedupe_window_ms * 1000))) {
        snprintf(errbuf, errlen, "out of memory (dedupe_entries=%d)", cfg->dedupe_entries);
        goto err;
    }

    /* Our defaults first; kafka.* from the configuration override them.
     * message.timeout.ms bounds how long a report may wait for Kafka. */
    snprintf(timeout, sizeof timeout, "message.timeout.ms=%d", cfg->produce_timeout_ms);
    /* 20 ms: under load a partition's reports go out as one batch instead
     * of one each (the development broker scans its list of batches on every
     * fetch; see README.md), at 20 ms more before a village's answer. */
    props[np++] = "linger.ms=20";
    props[np++] = "socket.nagle.disable=true";
    props[np++] = timeout;
    for (size_t i = 0; i < nprops; i++)
        props[np++] = kafka_props[i];
    if (!(in->prod = rc_producer_new(cfg->kafka_brokers, props, np, on_delivery, in, errbuf, errlen)))
        goto err;
    /* The fast paths: nothing waits for a batch to fill.  Uncompressed: a
     * batch of one or two reports does not shrink, and lz4 set-up (a zeroed
     * 16 KiB table a batch) cost more than the rest of librdkafka's work
     * for a single report. */
    props[np++] = "linger.ms=0";
    props[np++] = "compression.type=none";
    /* The urgent producer's threads send the moment a report is handed
     * over, ahead of everything else on a busy machine (see rc_sched.h):
     * started real-time, they keep it; this thread goes back. */
    if (cfg->urgent_rtprio > 0 && rc_sched_realtime(cfg->urgent_rtprio, why, sizeof why) < 0)
        rc_warn("the urgent producer stays in the ordinary scheduling class: %s", why);
    in->urgent = rc_producer_new(cfg->kafka_brokers, props, np, on_delivery, in, errbuf, errlen);
    if (cfg->urgent_rtprio > 0)
        rc_sched_realtime(0, why, sizeof why);
    if (!in->urgent)
        goto err;
    if (cfg->fast_inflight > 0
        && !(in->single = rc_producer_new(cfg->kafka_brokers, props, np, on_delivery, in, errbuf, errlen)))
        goto err;
    if (hook_producer(in, in->prod, &in->prod_ev, errbuf, errlen) < 0
        || (in->single && hook_producer(in, in->single, &in->single_ev, errbuf, errlen) < 0)
        || hook_producer(in, in->urgent, &in->urgent_ev, errbuf, errlen) < 0)
        goto err;
    in->tick = event_new(base, -1, EV_PERSIST, on_tick, in);
    if (!in->tick || event_add(in->tick, &tick) < 0) {
        snprintf(errbuf, errlen, "cannot add the producer timer");
        goto err;
    }

    in->auth_missing = rc_metrics_counter("rollcall_village_auth_failures_total",
                                          "Requests refused by authentication or authorisation.",
                                          "reason=\"missing\"");
    in->auth_unknown = rc_metrics_counter("rollcall_village_auth_failures_total", NULL,
                                          "reason=\"unknown_or_revoked\"");
    in->auth_forbidden = rc_metrics_counter("rollcall_village_auth_failures_total", NULL,
                                            "reason=\"wrong_unit\"");
    in->replays = rc_metrics_counter("rollcall_village_replays_total",
                                     "Retries of a known report_id answered without producing again.", NULL);
    in->conflicts = rc_metrics_counter("rollcall_village_conflicts_total",
                                       "A known report_id sent with different content (409).", NULL);
    in->archive_answers[AR_UNKNOWN] = rc_metrics_counter(
        "rollcall_village_archive_checks_total",
        "Client report_ids unknown to the window, asked of the archive, by answer "
        "(unknown: PostgreSQL did not answer and the report went on unchecked).",
        "answer=\"unknown\"");
    in->archive_answers[AR_ABSENT] = rc_metrics_counter("rollcall_village_archive_checks_total", NULL,
                                                        "answer=\"absent\"");
    in->archive_answers[AR_FOUND] = rc_metrics_counter("rollcall_village_archive_checks_total", NULL,
                                                       "answer=\"found\"");
    if (cfg->archive_check
        && !(in->archive = archive_new(cfg->pg_dsn, base, on_archived, in, errbuf, errlen)))
        goto err;
    in->shed = rc_metrics_counter("rollcall_village_shed_total",
                                  "Reports refused at once (503): too many in flight, or stopping.", NULL);
    in->lat_village = rc_metrics_histogram("rollcall_village_produce_seconds",
                                           "From produce to Kafka's acknowledgement (acks=all).",
                                           "topic=\"" TOPIC_VILLAGE "\"", latency_bounds,
                                           sizeof latency_bounds / sizeof latency_bounds[0]);
    in->lat_urgent = rc_metrics_histogram("rollcall_village_produce_seconds", NULL,
                                          "topic=\"" TOPIC_URGENT "\"", latency_bounds,
                                          sizeof latency_bounds / sizeof latency_bounds[0]);
    rc_metrics_gauge_fn("rollcall_village_in_flight", "Reports waiting for Kafka's acknowledgement.",
                        NULL, gauge_inflight, in);
    rc_metrics_gauge_fn("rollcall_village_dedupe_entries",
                        "report_ids remembered for idempotent retries.", NULL, gauge_dedupe, in);
    if (a)
        rc_metrics_gauge_fn("rollcall_village_tokens", "Valid tokens in the cache.", NULL,
                            gauge_tokens, a);

    /* An unreachable Kafka is not fatal: reports get 503 until it is back. */
    if (!(in->probe = rc_probe_new(NULL, NULL, rc_producer_handle(in->prod), NULL, NULL, errbuf,
                                   errlen)))
        goto err;
    free(props);
    return in;
err:
    free(props);
    intake_free(in);
    return NULL;
}

int intake_attach(intake *in, rc_service *svc)
{
    if (rc_service_route(svc, "/v1/reports", on_report, in) < 0
        || rc_service_route(svc, "/v1/reports:batch", on_batch, in) < 0)
        return -1;
    rc_service_add_health_check(svc, "intake", rc_probe_check, in->probe);
    return 0;
}

void intake_stop(void *arg)
{
    intake *in = arg;
    int64_t left;

    if (in->stopping)
        return;
    in->stopping = true;
    rc_probe_free(in->probe);
    in->probe = NULL;
    /* Reports still waiting for the archive are answered 503 (stopping). */
    archive_free(in->archive);
    in->archive = NULL;
    /* Every report in flight gets its real answer: delivered, or 503 once
     * message.timeout.ms passes.  What is still queued after that is purged
     * by rc_producer_free, whose delivery reports answer 503. */
    if (in->prod && rc_producer_flush(in->prod, in->cfg->produce_timeout_ms + 1000) < 0)
        rc_warn("stopping with reports not acknowledged in_flight=%zu", in->inflight);
    if (in->single && rc_producer_flush(in->single, in->cfg->produce_timeout_ms + 1000) < 0)
        rc_warn("stopping with single reports not acknowledged in_flight=%zu", in->single_inflight);
    if (in->urgent)
        rc_producer_flush(in->urgent, 1000);
    left = (int64_t)in->inflight;
    if (in->prod_ev)
        event_free(in->prod_ev);
    if (in->urgent_ev)
        event_free(in->urgent_ev);
    if (in->single_ev)
        event_free(in->single_ev);
    if (in->tick)
        event_free(in->tick);
    in->prod_ev = in->single_ev = in->urgent_ev = in->tick = NULL;
    rc_producer_free(in->prod);
    rc_producer_free(in->single);
    rc_producer_free(in->urgent);
    in->prod = in->single = in->urgent = NULL;
    rc_info("intake stopped unanswered=%lld", (long long)left);
}

void intake_free(intake *in)
{
    if (!in)
        return;
    archive_free(in->archive);
    in->archive = NULL;
    rc_probe_free(in->probe);
    if (in->prod_ev)
        event_free(in->prod_ev);
    if (in->urgent_ev)
        event_free(in->urgent_ev);
    if (in->single_ev)
        event_free(in->single_ev);
    if (in->tick)
        event_free(in->tick);
    rc_producer_free(in->prod);
    rc_producer_free(in->single);
    rc_producer_free(in->urgent);
    dedupe_free(in->dd);
    EVP_MD_CTX_free(in->md_ctx);
    EVP_MD_free(in->sha256);
    free(in);
}
