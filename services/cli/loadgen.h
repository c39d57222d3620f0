/* rollcall loadgen, private to services/cli: the run's context and the
 * functions its files share — the command (cmd_loadgen.c: options, the
 * registry, direct delivery, the ledger, waiting for the totals), the HTTP
 * driver (loadgen_http.c) and the token set-up (loadgen_tokens.c). */
#ifndef ROLLCALL_CLI_LOADGEN_H
#define ROLLCALL_CLI_LOADGEN_H

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

/* Token scopes by level (index = Rollcall__Level): name and code length. */
extern const char *const lg_scope_names[6];
extern const int lg_scope_len[6];

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

/* Set by SIGINT: every loop stops at its next turn. */
extern volatile sig_atomic_t lg_interrupted;

/* ---- cmd_loadgen.c ---- */

uint64_t lg_scope_of(const lgctx *g, uint64_t village);

/* Records one finished item: ledger line, counters, expectations. */
void lg_finish_item(lgctx *g, const rc_lg_item *it, int status, int http, int64_t version,
                    const char *reason);

void lg_progress(lgctx *g, bool final);

/* ---- loadgen_tokens.c ---- */

const token_entry *lg_token_find(const lgctx *g, uint64_t scope_unit);

/* Makes sure every scope unit of the plan has a valid token: reuses those of
 * --tokens FILE that PostgreSQL still holds, issues the others (hash into
 * rollcall.unit_token with COPY, one transaction) and appends them to FILE. */
int lg_prepare_tokens(lgctx *g);

/* ---- loadgen_http.c ---- */

int lg_send_http(lgctx *g);

#endif
