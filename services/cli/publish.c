/* The CLI's producer for operator re-publishing (replay, dlq replay): an
 * idempotent rc_producer that counts delivery reports, remembers the last
 * acknowledged offset per partition (so a caller can wait for a consumer to
 * pass them) and prints a progress line. */
#include "cli.h"
#include "rc_log.h"
#include "rc_registry.h"
#include "rc_report.h"
#include "rollcall.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_POSITIONS 256   /* every pipeline topic's partitions fit many times over */

struct cli_publisher {
    rc_producer *p;
    const char *label;
    cli_delivered_fn *fn;
    void *fn_opaque;
    uint64_t sent, delivered, failed;
    char first_error[256];
    cli_position pos[MAX_POSITIONS];
    size_t npos;
    double t0, last_progress;
    uint64_t final_sent;    /* sent when the last final line was printed */
    bool tty;
};

const char *cli_brokers(const char *opt)
{
    const char *env;
    if (opt)
        return opt;
    env = getenv("ROLLCALL_KAFKA_BROKERS");
    return env && env[0] ? env : NULL;
}

static void note_position(cli_publisher *pub, const char *topic, int32_t partition,
                          int64_t offset)
{
    for (size_t i = 0; i < pub->npos; i++) {
        if (pub->pos[i].partition == partition && strcmp(pub->pos[i].topic, topic) == 0) {
            if (offset > pub->pos[i].last_offset)
                pub->pos[i].last_offset = offset;
            return;
        }
    }
    if (pub->npos == MAX_POSITIONS) {
        rc_warn("publisher: too many partitions to track topic=%s partition=%d", topic,
                (int)partition);
        return;
    }
    snprintf(pub->pos[pub->npos].topic, sizeof pub->pos[pub->npos].topic, "%s", topic);
    pub->pos[pub->npos].partition = partition;
    pub->pos[pub->npos].last_offset = offset;
    pub->npos++;
}

static void on_delivery(void *opaque, void *msg_opaque, rd_kafka_resp_err_t err,
                        const char *topic, int32_t partition, int64_t offset)
{
    cli_publisher *pub = opaque;

    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        pub->delivered++;
        note_position(pub, topic, partition, offset);
    } else {
        pub->failed++;
        if (!pub->first_error[0])
            snprintf(pub->first_error, sizeof pub->first_error, "%s: %s", topic,
                     rd_kafka_err2str(err));
    }
    if (pub->fn)
        pub->fn(pub->fn_opaque, msg_opaque, err == RD_KAFKA_RESP_ERR_NO_ERROR,
                err ? rd_kafka_err2str(err) : NULL);
}

cli_publisher *cli_publisher_new(const char *brokers, const char *label, cli_delivered_fn *fn,
                                 void *fn_opaque, char *errbuf, size_t errlen)
{
    /* A replay is a bulk load: larger batches, a deep local queue, and a
     * delivery timeout that outlasts a short broker outage. */
    static const char *const props[] = {
        "linger.ms=20",
        "batch.num.messages=10000",
        "queue.buffering.max.messages=500000",
        "queue.buffering.max.kbytes=262144",
        "message.timeout.ms=120000",
        "client.id=rollcall-cli",
    };
    cli_publisher *pub;

    if (!brokers) {
        snprintf(errbuf, errlen, "no Kafka brokers: give --brokers or set ROLLCALL_KAFKA_BROKERS");
        return NULL;
    }
    pub = calloc(1, sizeof *pub);
    if (!pub) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    pub->label = label;
    pub->fn = fn;
    pub->fn_opaque = fn_opaque;
    pub->t0 = pub->last_progress = cli_now();
    pub->tty = isatty(STDERR_FILENO);
    /* The operator's settings (security, SASL) after the bulk-load ones,
     * so they override. */
    const char *all[sizeof props / sizeof props[0] + 64];
    size_t n = 0, nops;
    const char *const *ops = cli_kafka_props(&nops, errbuf, errlen);
    if (!ops) {
        free(pub);
        return NULL;
    }
    for (size_t i = 0; i < sizeof props / sizeof props[0]; i++)
        all[n++] = props[i];
    for (size_t i = 0; i < nops && n < sizeof all / sizeof all[0]; i++)
        all[n++] = ops[i];
    pub->p = rc_producer_new(brokers, all, n, on_delivery, pub, errbuf, errlen);
    if (!pub->p) {
        free(pub);
        return NULL;
    }
    return pub;
}

void cli_publisher_progress(cli_publisher *pub, bool final)
{
    double now = cli_now();

    if (!final && now - pub->last_progress < 1.0)
        return;
    if (final) {
        if (pub->sent == pub->final_sent && pub->sent > 0)
            return;     /* nothing new since the last summary */
        pub->final_sent = pub->sent;
    }
    pub->last_progress = now;
    fprintf(stderr, "%s%s: %llu sent, %llu delivered, %llu failed (%.1f s)%s",
            pub->tty ? "\r" : "", pub->label, (unsigned long long)pub->sent,
            (unsigned long long)pub->delivered, (unsigned long long)pub->failed,
            now - pub->t0, pub->tty && !final ? "" : "\n");
}

int cli_publisher_send(cli_publisher *pub, const char *topic, const char *key,
                       const void *value, size_t len, void *msg_opaque)
{
    if (rc_producer_send(pub->p, topic, RD_KAFKA_PARTITION_UA, key, key ? strlen(key) : 0,
                         value, len, msg_opaque, 60000) < 0) {
        pub->failed++;
        if (!pub->first_error[0])
            snprintf(pub->first_error, sizeof pub->first_error, "%s: could not queue", topic);
        return -1;
    }
    pub->sent++;
    rc_producer_poll(pub->p, 0);
    cli_publisher_progress(pub, false);
    return 0;
}

int cli_publisher_flush(cli_publisher *pub, int timeout_ms)
{
    double deadline = cli_now() + timeout_ms / 1000.0;

    /* Flush in slices so the progress line keeps moving. */
    while (rc_producer_outq_len(pub->p) > 0 && cli_now() < deadline) {
        rd_kafka_flush(rc_producer_handle(pub->p), 500);
        cli_publisher_progress(pub, false);
    }
    rc_producer_poll(pub->p, 0);
    cli_publisher_progress(pub, true);
    return pub->delivered + pub->failed == pub->sent && pub->failed == 0 ? 0 : -1;
}

uint64_t cli_publisher_sent(const cli_publisher *pub) { return pub->sent; }
uint64_t cli_publisher_delivered(const cli_publisher *pub) { return pub->delivered; }
uint64_t cli_publisher_failed(const cli_publisher *pub) { return pub->failed; }

const char *cli_publisher_error(const cli_publisher *pub)
{
    return pub->first_error[0] ? pub->first_error : NULL;
}

const cli_position *cli_publisher_positions(const cli_publisher *pub, size_t *n)
{
    *n = pub->npos;
    return pub->pos;
}

void cli_publisher_free(cli_publisher *pub)
{
    if (!pub)
        return;
    rc_producer_free(pub->p);   /* flushes, purges and reports what was lost */
    free(pub);
}

int cli_report_route(const char *unit_code, int level, char topic[32], char key[13])
{
    char parent[13];

    switch (level) {
    case ROLLCALL__LEVEL__LEVEL_VILLAGE:
        snprintf(topic, 32, "reports.village");
        snprintf(key, 13, "%.9s", unit_code);
        return strlen(unit_code) == 12 ? 0 : -1;
    case ROLLCALL__LEVEL__LEVEL_TOWNSHIP:
        snprintf(topic, 32, "reports.township");
        break;
    case ROLLCALL__LEVEL__LEVEL_COUNTY:
        snprintf(topic, 32, "reports.county");
        break;
    case ROLLCALL__LEVEL__LEVEL_PROVINCE:
        snprintf(topic, 32, "reports.province");
        break;
    default:
        return -1;
    }
    /* Filed reports are keyed by the rollup parent; a province, the top,
     * by itself. */
    if (rc_code_rollup_parent(unit_code, parent) < 0)
        snprintf(parent, sizeof parent, "%s", unit_code);
    snprintf(key, 13, "%s", parent);
    return 0;
}

void cli_pipeline_validate_opts(int level, int max_past_days, rc_validate_opts *o)
{
    /* As rollcall-rollup sets them up (services/rollup/main.c). */
    rc_validate_opts_default(o);
    o->max_past_days = max_past_days;
    o->max_future_days = 1;
    o->require_report_id = true;
    if (level != ROLLCALL__LEVEL__LEVEL_VILLAGE) {
        for (size_t i = 0; i < RC_INDICATORS_MAX; i++)
            o->max_value[i] = INT64_MAX / 4;
        o->max_extra_value = INT64_MAX / 4;
    }
}
