/* A batch slot: one PostgreSQL session whose temporary rollup_stage table
 * receives the batch's decoded reports by binary COPY while they are
 * consumed (so the batch never sits in this process's memory), plus what the
 * flush needs to know about the batch: the parents to refresh, the offsets,
 * the dead letters and the (rare) urgent reports seen on the daily topics. */
#include "rollup.h"

#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#define SEND_THRESHOLD (256 * 1024)

int slot_session(rollup *ru, slot *s, char *errbuf, size_t errlen)
{
    (void)ru;
    /* The count of reconnections, not rc_pg_was_disconnected (whose flag
     * another caller may have taken): a new connection has no stage. */
    if (s->session_ready && rc_pg_reconnects(s->pg) == s->session_conn)
        return 0;
    s->session_ready = false;
    /* temp_buffers must be set before the session's first temporary table. */
    if (rc_pg_command(s->pg, "SET temp_buffers = '256MB'", errbuf, errlen) < 0)
        return -1;
    /* Every statement of a batch joins the batch (the stage, arrays) to big
     * tables through their keys: index lookups, whatever the statistics
     * (taken while a table was still empty, they would choose scans). */
    if (rc_pg_command(s->pg, "SET enable_seqscan = off", errbuf, errlen) < 0 ||
        rc_pg_command(s->pg, "SET enable_hashjoin = off", errbuf, errlen) < 0 ||
        rc_pg_command(s->pg, "SET enable_mergejoin = off", errbuf, errlen) < 0)
        return -1;
    if (rc_pg_command(s->pg, rc_rollup_sql_stage_create(), errbuf, errlen) < 0)
        return -1;
    if (rc_pg_command(s->pg, "TRUNCATE rollup_stage", errbuf, errlen) < 0)
        return -1;
    s->session_ready = true;
    s->session_conn = rc_pg_reconnects(s->pg);
    return 0;
}

int slot_open(rollup *ru, slot *s, char *errbuf, size_t errlen)
{
    char app[64];

    memset(s, 0, sizeof *s);
    rc_pgcopy_init(&s->buf);
    keyset_init(&s->keys);
    keyset_init(&s->townships);
    keyset_init(&s->counties);
    keyset_init(&s->provinces);
    keyset_init(&s->filing_counties);
    keyset_init(&s->filing_provinces);
    snprintf(app, sizeof app, "rollcall-rollup-batch");
    s->first_topic = -1;
    s->pg = rollup_pg_connect(ru, app, errbuf, errlen);
    if (!s->pg)
        return -1;
    return slot_session(ru, s, errbuf, errlen);
}

void slot_reset(slot *s)
{
    rc_pgcopy_clear(&s->buf);
    s->copying = false;
    s->rows = s->latest_rows = 0;
    s->repeated_keys = false;
    s->rep_rows = 0;
    keyset_clear(&s->keys);
    keyset_clear(&s->townships);
    keyset_clear(&s->counties);
    keyset_clear(&s->provinces);
    keyset_clear(&s->filing_counties);
    keyset_clear(&s->filing_provinces);
    s->noffs = 0;
    for (size_t i = 0; i < s->ndlq; i++) {
        free(s->dlq[i].topic);
        free(s->dlq[i].raw);
        free(s->dlq[i].key);
    }
    /* A batch of dead letters is thousands of small blocks freed at once
     * among the consumer's and the producer's, and glibc keeps such freed
     * pages resident: a storm of them would hold the heap at its peak
     * (bench/dlq-storm.sh), so hand them back now. */
    if (s->ndlq >= ROLLUP_DLQ_MAX / 5)
        malloc_trim(0);
    s->ndlq = 0;
    for (size_t i = 0; i < s->nurgent; i++)
        rc_report_free(s->urgent[i]);
    s->nurgent = 0;
    s->opened_us = 0;
    s->decode_s = 0;
    free(s->first_raw);
    free(s->first_key);
    s->first_raw = NULL;
    s->first_key = NULL;
    s->first_len = 0;
    s->first_topic = -1;
    s->stage_failed = false;
    s->stage_error[0] = '\0';
}

void slot_free(slot *s)
{
    slot_reset(s);
    rc_pgcopy_release(&s->buf);
    keyset_free(&s->keys);
    keyset_free(&s->townships);
    keyset_free(&s->counties);
    keyset_free(&s->provinces);
    keyset_free(&s->filing_counties);
    keyset_free(&s->filing_provinces);
    free(s->offs);
    free(s->dlq);
    free(s->urgent);
    rc_pg_free(s->pg);
    s->pg = NULL;
}

static void *grow_array(void *p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return p;
    size_t cap2 = *cap ? *cap * 2 : 16;
    while (cap2 < need)
        cap2 *= 2;
    void *np = realloc(p, cap2 * elem);
    if (np)
        *cap = cap2;
    return np;
}

static int note_offset(slot *s, int topic, int32_t partition, int64_t offset)
{
    for (size_t i = 0; i < s->noffs; i++) {
        part_off *o = &s->offs[i];
        if (o->topic == topic && o->partition == partition) {
            if (offset + 1 > o->next)
                o->next = offset + 1;
            if (offset < o->first)
                o->first = offset;
            return 0;
        }
    }
    part_off *offs = grow_array(s->offs, &s->capoffs, s->noffs + 1, sizeof *offs);
    if (!offs)
        return -1;
    s->offs = offs;
    s->offs[s->noffs++] = (part_off){topic, partition, offset, offset + 1};
    return 0;
}

/* Keeps the message for reports.dlq and rollcall.dead_letter. */
static int add_dead_letter(rollup *ru, slot *s, const rd_kafka_message_t *msg, int topic,
                           const char *what, const char *detail)
{
    dead_letter *d = grow_array(s->dlq, &s->capdlq, s->ndlq + 1, sizeof *d);
    if (!d)
        return -1;
    s->dlq = d;
    d = &s->dlq[s->ndlq];
    memset(d, 0, sizeof *d);
    d->topic = strdup(rollup_topics[topic]);
    d->partition = msg->partition;
    d->offset = msg->offset;
    d->rawlen = msg->len;
    d->raw = malloc(msg->len ? msg->len : 1);
    if (d->raw && msg->len)
        memcpy(d->raw, msg->payload, msg->len);
    if (msg->key_len) {
        d->key = malloc(msg->key_len + 1);
        if (d->key) {
            memcpy(d->key, msg->key, msg->key_len);
            d->key[msg->key_len] = '\0';
        }
    }
    snprintf(d->reason, sizeof d->reason, "%s: %s", what, detail);
    if (!d->topic || !d->raw) {
        free(d->topic);
        free(d->raw);
        free(d->key);
        return -1;
    }
    s->ndlq++;
    rc_counter_inc(ru->m.dead_letters);
    rollup_dlq_log(ru, d->topic, d->partition, d->offset, d->reason);
    return 0;
}

/* Sends what is buffered to libpq once enough has accumulated (or always
 * when force).  Returns 0 or -1. */
static int send_buffered(slot *s, bool force)
{
    char err[256];
    if (s->buf.failed) {
        rc_error("batch slot=%d: out of memory building COPY data", s->id);
        return -1;
    }
    if (!s->buf.len || (!force && s->buf.len < SEND_THRESHOLD))
        return 0;
    if (rc_pg_copy_put(s->pg, s->buf.buf, s->buf.len, err, sizeof err) < 0) {
        rc_error("batch slot=%d: COPY into the stage failed: %s", s->id, err);
        return -1;
    }
    rc_pgcopy_clear(&s->buf);
    return 0;
}

int slot_add(rollup *ru, slot *s, const rd_kafka_message_t *msg, int topic)
{
    rc_errors errs = {0};
    char detail[400];
    uuid_t id;
    int32_t day;
    int rc = 0;
    Rollcall__Report *r = NULL;

    if (!s->opened_us)
        s->opened_us = rc_now_us();
    if (note_offset(s, topic, msg->partition, msg->offset) < 0)
        return -1;
    if (s->first_topic < 0) {
        s->first_raw = malloc(msg->len ? msg->len : 1);
        if (!s->first_raw)
            return -1;
        memcpy(s->first_raw, msg->payload ? msg->payload : "", msg->len);
        s->first_len = msg->len;
        if (msg->key_len) {
            s->first_key = strndup(msg->key, msg->key_len);
            if (!s->first_key)
                return -1;
        }
        s->first_topic = topic;
        s->first_partition = msg->partition;
        s->first_offset = msg->offset;
    }

    r = rc_report_unpack(msg->payload, msg->len, &errs);
    if (!r) {
        rc_errors_format(&errs, detail, sizeof detail);
        return add_dead_letter(ru, s, msg, topic, "undecodable", detail);
    }
    const int level = rollup_topic_level[topic];
    rc_validate_opts opts = level == ROLLCALL__LEVEL__LEVEL_VILLAGE ? ru->vopts_village
                                                                     : ru->vopts_filed;
    opts.now_us = rc_now_us();
    if (rollup_validate(ru, r, &opts, &errs) < 0) {
        rc_errors_format(&errs, detail, sizeof detail);
        rc = add_dead_letter(ru, s, msg, topic, "invalid", detail);
        goto done;
    }
    if (stage_check(r, level, rollup_topics[topic], id, &day, detail, sizeof detail) < 0) {
        rc = add_dead_letter(ru, s, msg, topic, "invalid", detail);
        goto done;
    }

    /* The accepting service stamps received_at; a filed report may leave it
     * to the broker's timestamp. */
    int64_t received = r->received_at;
    if (received <= 0) {
        rd_kafka_timestamp_type_t tstype;
        int64_t ts = rd_kafka_message_timestamp(msg, &tstype);
        received = ts > 0 ? ts * 1000 : rc_now_us();
    }
    const bool daily = r->kind == ROLLCALL__KIND__KIND_DAILY || r->kind == ROLLCALL__KIND__KIND_ZERO;
    const bool late = daily && received > rollup_deadline_us(ru, level, day);
    const uint64_t code = strtoull(r->unit_code, NULL, 10);

    bool repeat = false;
    if (daily) {
        int added = keyset_add(&s->keys, rollup_key(code, day));
        if (added < 0)
            goto oom;
        if (added == 0)
            s->repeated_keys = repeat = true;
        s->latest_rows++;
        switch (level) {
        case ROLLCALL__LEVEL__LEVEL_VILLAGE:
            if (keyset_add(&s->townships, rollup_key(code / 1000, day)) < 0 ||
                keyset_add(&s->counties, rollup_key(code / 1000000, day)) < 0 ||
                keyset_add(&s->provinces, rollup_key(code / 10000000000ULL, day)) < 0)
                goto oom;
            break;
        case ROLLCALL__LEVEL__LEVEL_TOWNSHIP:
            if (keyset_add(&s->filing_counties, rollup_key(code / 1000, day)) < 0)
                goto oom;
            break;
        case ROLLCALL__LEVEL__LEVEL_COUNTY:
            if (keyset_add(&s->filing_provinces, rollup_key(code / 10000, day)) < 0)
                goto oom;
            break;
        default:
            break;
        }
    }

    if (!s->copying) {
        char err[256];
        /* A reconnection since the slot was acquired took the session's
         * temporary stage with it. */
        if (slot_session(ru, s, err, sizeof err) < 0) {
            rc_error("batch slot=%d: session not ready: %s", s->id, err);
            rc = -1;
            goto done;
        }
        if (rc_pg_copy_begin(s->pg, rc_rollup_sql_stage_copy(), err, sizeof err) < 0) {
            rc_error("batch slot=%d: COPY into the stage did not start: %s", s->id, err);
            rc = -1;
            goto done;
        }
        s->copying = true;
        rc_pgcopy_header(&s->buf);
    }

    /* repeat: a later revision of a (unit, period) already in this batch,
     * upserted apart, so the bulk of the batch needs no sort (see flush.c). */
    stage_source src = {rollup_topics[topic], msg->partition, msg->offset, msg->payload,
                        msg->len, received, late, repeat};
    stage_row(&s->buf, r, id, day, &src);
    s->rows++;
    s->rep_rows += repeat;

    if (r->kind == ROLLCALL__KIND__KIND_URGENT) {
        Rollcall__Report **u = grow_array(s->urgent, &s->capurgent, s->nurgent + 1, sizeof *u);
        if (!u)
            goto oom;
        s->urgent = u;
        s->urgent[s->nurgent++] = r;    /* the slot owns it now */
        r = NULL;
    }
    rc = send_buffered(s, false);
    goto done;
oom:
    rc_error("batch slot=%d: out of memory", s->id);
    rc = -1;
done:
    rc_report_free(r);
    return rc;
}

int slot_close(rollup *ru, slot *s, char *errbuf, size_t errlen)
{
    uint64_t rows = 0;
    (void)ru;
    if (!s->copying)
        return 0;
    rc_pgcopy_trailer(&s->buf);
    if (send_buffered(s, true) < 0) {
        rc_pg_copy_abort(s->pg, "rollup: batch discarded");
        s->copying = false;
        snprintf(errbuf, errlen, "COPY into the stage failed");
        return -1;
    }
    s->copying = false;
    if (rc_pg_copy_end(s->pg, &rows, errbuf, errlen) < 0)
        return -1;
    if (rows != s->rows) {
        snprintf(errbuf, errlen, "stage holds %llu rows, %zu sent", (unsigned long long)rows,
                 s->rows);
        return -1;
    }
    /* The keys only mark repeats while rows come in (8-16 MB for a
     * national batch): not kept while the batch waits and flushes. */
    keyset_free(&s->keys);
    return 0;
}
