/* rollcall loadgen's HTTP driver: many keep-alive connections on one
 * libevent loop post the plan's reports (one per request or in batches) to
 * the village intake, retrying with backoff what the intake could not take. */
#include "loadgen.h"

static void http_pump(lgctx *g);
static void http_send(hconn *c);

/* The report as a client sends it: the service assigns version and
 * received_at and records the hops itself.  Client times are taken from the
 * run's start, not the clock, so that a retry is byte-for-byte the same
 * report (the intake refuses a reused report_id with other contents). */
static void client_report(const lgctx *g, rc_lg_report *rep)
{
    Rollcall__Report *r = &rep->report;

    if (r->incident) {
        r->incident->occurred_at = g->run_start_us - (r->received_at - r->incident->occurred_at);
        r->incident->n_hops = 0;
        r->incident->hops = NULL;
    }
    r->submitted_at = g->run_start_us - (r->received_at - r->submitted_at);
    r->version = 0;
    r->received_at = 0;
}

static int encode_item(lgctx *g, size_t idx, struct evbuffer *out, json_t *arr)
{
    const rc_lg_item *it = rc_loadgen_item(g->plan, idx);
    rc_lg_report rep;

    rc_loadgen_build(g->plan, it, &rep);
    client_report(g, &rep);
    if (g->json_body) {
        json_t *o = rc_report_to_json(&rep.report);

        if (!o)
            return -1;
        if (arr)
            return json_array_append_new(arr, o);
        {
            char *text = json_dumps(o, JSON_COMPACT);
            int rc = text ? evbuffer_add(out, text, strlen(text)) : -1;

            free(text);
            json_decref(o);
            return rc;
        }
    } else {
        uint8_t stackbuf[2048], *p = stackbuf;
        size_t len = rollcall__report__get_packed_size(&rep.report);
        int rc;

        if (len > sizeof stackbuf && !(p = malloc(len)))
            return -1;
        rollcall__report__pack(&rep.report, p);
        if (g->batch > 1) {
            uint8_t v[10];
            size_t k = 0, x = len;

            do {
                v[k++] = (uint8_t)((x & 0x7f) | (x > 0x7f ? 0x80 : 0));
                x >>= 7;
            } while (x);
            evbuffer_add(out, v, k);
        }
        rc = evbuffer_add(out, p, len);
        if (p != stackbuf)
            free(p);
        return rc;
    }
}

/* A short reason from an error answer: "error: field: reason; ...". */
static void answer_reason(const json_t *o, char *out, size_t len)
{
    const char *error = json_string_value(json_object_get(o, "error"));
    const char *reason = json_string_value(json_object_get(o, "reason"));
    const json_t *fields = json_object_get(o, "fields");
    size_t used;

    snprintf(out, len, "%s", error ? error : "error");
    if (reason) {
        used = strlen(out);
        snprintf(out + used, len - used, ": %s", reason);
    }
    for (size_t i = 0; i < json_array_size(fields) && i < 3; i++) {
        const json_t *f = json_array_get(fields, i);

        used = strlen(out);
        snprintf(out + used, len - used, "%s %s: %s", i ? ";" : ":",
                 json_string_value(json_object_get(f, "field")),
                 json_string_value(json_object_get(f, "reason")));
    }
}

/* Applies one item's answer; returns true when the item is finished. */
static bool item_answer(lgctx *g, size_t idx, int status, const json_t *o, bool last_attempt)
{
    const rc_lg_item *it = rc_loadgen_item(g->plan, idx);
    char reason[256];

    if (status >= 200 && status < 300) {
        json_int_t version = json_integer_value(json_object_get(o, "version"));

        lg_finish_item(g, it, RC_LEDGER_ACCEPTED, status, (int64_t)version, NULL);
        return true;
    }
    /* A token this run issued reaches the intake's cache by NOTIFY a moment
     * after its commit (one lookup per token): a 401 while they propagate is
     * worth a retry. */
    if (status == 401 && g->tokens_issued_at > 0 && !last_attempt &&
        cli_now() - g->tokens_issued_at < 10.0 + (double)g->tokens_issued / 5000)
        return false;
    if (status >= 400 && status < 500 && status != 408 && status != 429) {
        answer_reason(o, reason, sizeof reason);
        lg_finish_item(g, it, RC_LEDGER_REJECTED, status, 0, reason);
        return true;
    }
    if (!last_attempt)
        return false;
    if (o)
        answer_reason(o, reason, sizeof reason);
    else
        snprintf(reason, sizeof reason, "no answer");
    lg_finish_item(g, it, RC_LEDGER_FAILED, status, 0, reason);
    return true;
}

static void item_done(lgctx *g)
{
    g->phase_done++;
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    hconn *c = arg;

    (void)fd; (void)what;
    http_send(c);
}

static void on_response(struct evhttp_request *req, void *arg)
{
    hconn *c = arg;
    lgctx *g = c->g;
    int status = req ? evhttp_request_get_response_code(req) : 0;
    json_t *o = NULL;
    size_t keep = 0;
    bool last = c->attempts >= MAX_ATTEMPTS;

    if (req && status) {
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        size_t len = evbuffer_get_length(in);

        if (len)
            o = json_loadb((const char *)evbuffer_pullup(in, -1), len, 0, NULL);
    }
    if (g->batch > 1 && status) {
        /* Per-item results: {"results":[{"index":i,"status":s,...}]} */
        const json_t *results = json_object_get(o, "results");

        for (size_t k = 0; k < c->nitems; k++) {
            const json_t *r = json_array_get(results, k);
            int st = r ? (int)json_integer_value(json_object_get(r, "status")) : status;

            if (item_answer(g, c->items[k], st, r ? r : o, last))
                item_done(g);
            else
                c->items[keep++] = c->items[k];
        }
    } else {
        for (size_t k = 0; k < c->nitems; k++) {
            if (item_answer(g, c->items[k], status, o, last))
                item_done(g);
            else
                c->items[keep++] = c->items[k];
        }
    }
    json_decref(o);
    c->nitems = keep;
    if (keep) {
        /* Back off and resend what was not taken (503, lost connection). */
        struct timeval tv = {0, 50000 << (c->attempts < 5 ? c->attempts : 5)};

        if (!c->retry_ev)
            c->retry_ev = evtimer_new(g->base, retry_cb, c);
        evtimer_add(c->retry_ev, &tv);
        return;
    }
    c->busy = false;
    http_pump(g);
}

static void http_send(hconn *c)
{
    lgctx *g = c->g;
    struct evhttp_request *req = evhttp_request_new(on_response, c);
    struct evkeyvalq *h;
    struct evbuffer *out;
    json_t *arr = NULL;
    const token_entry *tok;
    char auth[80];

    c->attempts++;
    if (!req)
        goto fail;
    h = evhttp_request_get_output_headers(req);
    out = evhttp_request_get_output_buffer(req);
    evhttp_add_header(h, "Host", g->host_header);
    evhttp_add_header(h, "Content-Type", g->json_body ? "application/json" : "application/x-protobuf");
    tok = g->ntokens ? lg_token_find(g, lg_scope_of(g, rc_loadgen_item(g->plan, c->items[0])->unit)) : NULL;
    if (tok) {
        snprintf(auth, sizeof auth, "Bearer %s", tok->token);
        evhttp_add_header(h, "Authorization", auth);
    }
    if (g->batch > 1 && g->json_body && !(arr = json_array()))
        goto fail;
    for (size_t k = 0; k < c->nitems; k++)
        if (encode_item(g, c->items[k], out, arr) < 0)
            goto fail;
    if (arr) {
        char *text = json_dumps(arr, JSON_COMPACT);

        json_decref(arr);
        arr = NULL;
        if (!text)
            goto fail;
        evbuffer_add(out, text, strlen(text));
        free(text);
    }
    if (evhttp_make_request(c->evcon, req, EVHTTP_REQ_POST,
                            g->batch > 1 ? g->path_batch : g->path_one) < 0) {
        req = NULL;   /* freed by libevent on failure */
        goto fail;
    }
    g->requests++;
    if (c->attempts == 1)
        g->sent += c->nitems;
    return;
fail:
    json_decref(arr);
    if (req)
        evhttp_request_free(req);
    for (size_t k = 0; k < c->nitems; k++) {
        lg_finish_item(g, rc_loadgen_item(g->plan, c->items[k]), RC_LEDGER_FAILED, 0, 0,
                       "request could not be made");
        item_done(g);
    }
    c->nitems = 0;
    c->busy = false;
}

/* Opens phase 1 (corrections, retries) once every phase-0 report has its
 * answer, so that the intake's clock gives them the later versions. */
static void http_next_phase(lgctx *g)
{
    if (g->next == g->phase_end && g->phase_done == g->phase_end)
        g->phase_end = rc_loadgen_count(g->plan);
}

static void http_pump(lgctx *g)
{
    size_t n = rc_loadgen_count(g->plan);

    http_next_phase(g);
    if (g->phase_done == n || lg_interrupted) {
        bool idle = true;

        for (int i = 0; i < g->connections; i++)
            idle &= !g->conns[i].busy;
        if (idle)
            event_base_loopexit(g->base, NULL);
        return;
    }
    for (int i = 0; i < g->connections && g->next < g->phase_end; i++) {
        hconn *c = &g->conns[i];
        uint64_t scope;

        if (c->busy)
            continue;
        if (g->rate > 0 && g->allowance < 1)
            break;
        c->busy = true;
        c->attempts = 0;
        c->nitems = 0;
        scope = lg_scope_of(g, rc_loadgen_item(g->plan, g->order[g->next])->unit);
        /* A batch holds items of one token scope (the order groups them). */
        do {
            c->items[c->nitems++] = g->order[g->next++];
        } while ((int)c->nitems < g->batch && g->next < g->phase_end &&
                 lg_scope_of(g, rc_loadgen_item(g->plan, g->order[g->next])->unit) == scope);
        if (g->rate > 0)
            g->allowance -= (double)c->nitems;
        http_send(c);
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    lgctx *g = arg;
    double now = cli_now();

    (void)fd; (void)what;
    if (g->rate > 0) {
        g->allowance += (now - g->last_refill) * g->rate;
        if (g->allowance > g->rate / 10 + g->batch)
            g->allowance = g->rate / 10 + g->batch;
    }
    g->last_refill = now;
    lg_progress(g, false);
    http_pump(g);
}

/* Phase, then token scope, then plan order. */
static int cmp_order(const void *a, const void *b, void *arg)
{
    const lgctx *g = arg;
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    const rc_lg_item *ix = rc_loadgen_item(g->plan, x), *iy = rc_loadgen_item(g->plan, y);
    uint64_t sx, sy;

    if (ix->phase != iy->phase)
        return ix->phase < iy->phase ? -1 : 1;
    sx = lg_scope_of(g, ix->unit);
    sy = lg_scope_of(g, iy->unit);
    if (sx != sy)
        return sx < sy ? -1 : 1;
    return x < y ? -1 : x > y;
}

int lg_send_http(lgctx *g)
{
    size_t n = rc_loadgen_count(g->plan);
    const char *host, *path;
    int port;
    struct timeval tick = {0, 10000};
    struct event_config *cfg;
    int rc = -1;

    if (!(g->uri = evhttp_uri_parse(g->http_url)) || !(host = evhttp_uri_get_host(g->uri))) {
        fprintf(stderr, "rollcall loadgen: bad URL '%s'\n", g->http_url);
        return -1;
    }
    port = evhttp_uri_get_port(g->uri);
    if (port < 0)
        port = 80;
    path = evhttp_uri_get_path(g->uri);
    if (!path || strcmp(path, "/") == 0)
        path = "";
    snprintf(g->host_header, sizeof g->host_header, "%s:%d", host, port);
    snprintf(g->path_one, sizeof g->path_one, "%s/v1/reports", path);
    snprintf(g->path_batch, sizeof g->path_batch, "%s/v1/reports:batch", path);

    g->order = malloc((n ? n : 1) * sizeof *g->order);
    g->conns = calloc((size_t)g->connections, sizeof *g->conns);
    /* One thread; the epoll changelist folds evhttp's per-request enable/
     * disable of read and write interest into one epoll_ctl per loop. */
    if ((cfg = event_config_new()) != NULL) {
        event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
        event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
        g->base = event_base_new_with_config(cfg);
        event_config_free(cfg);
    }
    if (!g->order || !g->conns || !g->base) {
        fprintf(stderr, "rollcall loadgen: out of memory\n");
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        g->order[i] = i;
    if (g->batch > 1) {
        /* Batches carry one scope's reports; the order inside a phase does
         * not matter to the intake, whose clock sets the versions. */
        qsort_r(g->order, n, sizeof *g->order, cmp_order, g);
    }
    for (int i = 0; i < g->connections; i++) {
        hconn *c = &g->conns[i];

        c->g = g;
        c->evcon = evhttp_connection_base_new(g->base, NULL, host, (uint16_t)port);
        if (!c->evcon) {
            fprintf(stderr, "rollcall loadgen: cannot create a connection to %s\n", g->host_header);
            goto done;
        }
        evhttp_connection_set_timeout(c->evcon, 30);
    }
    g->phase_end = rc_loadgen_phase_start(g->plan, 1);
    if (g->phase_end == 0)
        g->phase_end = n;
    g->tick_ev = event_new(g->base, -1, EV_PERSIST, on_tick, g);
    event_add(g->tick_ev, &tick);
    g->t0 = g->t_last = g->last_refill = cli_now();
    g->run_start_us = rc_now_us();
    g->allowance = g->rate > 0 ? g->batch : 0;
    http_pump(g);
    event_base_dispatch(g->base);
    rc = lg_interrupted ? -1 : 0;
done:
    g->t_sent = cli_now();
    if (g->tick_ev)
        event_free(g->tick_ev);
    for (int i = 0; g->conns && i < g->connections; i++) {
        if (g->conns[i].retry_ev)
            event_free(g->conns[i].retry_ev);
        if (g->conns[i].evcon)
            evhttp_connection_free(g->conns[i].evcon);
    }
    free(g->conns);
    free(g->order);
    if (g->base)
        event_base_free(g->base);
    if (g->uri)
        evhttp_uri_free(g->uri);
    return rc;
}
