/* The urgent fast path: reports.urgent through its own consumer (group
 * "<group>.urgent"), its own connection and small transactions, so an
 * urgent hop is in PostgreSQL milliseconds after it arrives and never waits
 * behind a daily batch.  Every hop is recorded once per (report, level). */
#include "rollup.h"
#include "rc_rollup_sql.h"
#include "rc_dlq.h"
#include "rc_sched.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uuid/uuid.h>

#define US_TO_TS(n) "(timestamptz 'epoch' + $" #n "::bigint * interval '1 microsecond')"

int urgent_prepare(rc_pg *pg, char *errbuf, size_t errlen)
{
    if (rc_pg_prepare(pg, "rollup_urgent_report",
                      "INSERT INTO rollcall.urgent_report (report_id, unit_code, period, "
                      "incident_type, severity, description, occurred_at, received_at) "
                      "VALUES ($1::uuid, $2, $3::date, $4, $5::smallint, $6, "
                      "CASE WHEN $7::bigint > 0 THEN " US_TO_TS(7) " END, "
                      "CASE WHEN $8::bigint > 0 THEN " US_TO_TS(8) " END) "
                      "ON CONFLICT (report_id) DO NOTHING",
                      8, errbuf, errlen) < 0)
        return -1;
    if (rc_pg_prepare(pg, "rollup_urgent_hops",
                      "INSERT INTO rollcall.urgent_hop (report_id, level, unit_code, at) "
                      "SELECT $1::uuid, l, u, timestamptz 'epoch' + a * interval '1 microsecond' "
                      "FROM unnest($2::smallint[], $3::text[], $4::bigint[]) AS h(l, u, a) "
                      "ON CONFLICT (report_id, level) DO NOTHING",
                      4, errbuf, errlen) < 0)
        return -1;
    /* The fast path: one valid urgent message = one statement in autocommit
     * (archive, report, hops and the consumed offset in one transaction,
     * one round trip). */
    if (rc_pg_prepare(pg, "rollup_urgent_one",
                      /* every insert reads lk: none runs before the lock */
                      "WITH lk AS (SELECT " RC_URGENT_LOCK("$1") "), "
                      "a AS (INSERT INTO rollcall.report_archive (report_id, unit_code, level, "
                      "period, kind, version, received_at, submitted_at, submitter, source_topic, "
                      "source_partition, source_offset, payload) "
                      "SELECT $1::uuid, $2, $3::smallint, $4::date, $5::smallint, $6::bigint, "
                      "CASE WHEN $7::bigint > 0 THEN " US_TO_TS(7) " END, "
                      "CASE WHEN $8::bigint > 0 THEN " US_TO_TS(8) " END, "
                      "NULLIF($9, ''), 'reports.urgent', $10::int, $11::bigint, $12::bytea FROM lk "
                      "ON CONFLICT (report_id) DO NOTHING), "
                      "r AS (INSERT INTO rollcall.urgent_report (report_id, unit_code, period, "
                      "incident_type, severity, description, occurred_at, received_at) "
                      "SELECT $1::uuid, $2, $4::date, $13, $14::smallint, NULLIF($15, ''), "
                      "CASE WHEN $16::bigint > 0 THEN " US_TO_TS(16) " END, "
                      "CASE WHEN $8::bigint > 0 THEN " US_TO_TS(8) " END FROM lk "
                      "ON CONFLICT (report_id) DO NOTHING), "
                      "o AS (INSERT INTO rollcall.consumer_offset AS o (consumer_group, topic, "
                      "partition, next_offset, updated_at) SELECT $20, 'reports.urgent', $10::int, "
                      "$11::bigint + 1, now() FROM lk ON CONFLICT (consumer_group, topic, partition) "
                      "DO UPDATE SET next_offset = greatest(o.next_offset, excluded.next_offset), "
                      "updated_at = now()), "
                      "h AS (INSERT INTO rollcall.urgent_hop (report_id, level, unit_code, at) "
                      "SELECT $1::uuid, l, u, timestamptz 'epoch' + t * interval '1 microsecond' "
                      "FROM lk, unnest($17::smallint[], $18::text[], $19::bigint[]) AS x(l, u, t) "
                      "ON CONFLICT (report_id, level) DO NOTHING RETURNING 1) "
                      "SELECT count(*) FROM h",
                      20, errbuf, errlen) < 0)
        return -1;
    if (rc_pg_prepare(pg, "rollup_urgent_lock", "SELECT " RC_URGENT_LOCK("$1"), 1, errbuf,
                      errlen) < 0)
        return -1;
    if (rc_pg_prepare(pg, "rollup_archive_one",
                      "INSERT INTO rollcall.report_archive (report_id, unit_code, level, period, "
                      "kind, version, received_at, submitted_at, submitter, source_topic, "
                      "source_partition, source_offset, payload) "
                      "VALUES ($1::uuid, $2, $3::smallint, $4::date, $5::smallint, $6::bigint, "
                      "CASE WHEN $7::bigint > 0 THEN " US_TO_TS(7) " END, "
                      "CASE WHEN $8::bigint > 0 THEN " US_TO_TS(8) " END, "
                      "NULLIF($9, ''), $10, $11::int, $12::bigint, $13::bytea) "
                      "ON CONFLICT (report_id) DO NOTHING",
                      13, errbuf, errlen) < 0)
        return -1;
    return 0;
}

/* The hops of an incident as three array literals (levels, unit codes,
 * times); malloc'ed, the caller frees them.  Returns 0 or -1. */
static int hop_arrays(const Rollcall__Incident *inc, char **levels_out, char **units_out,
                      char **ats_out)
{
    size_t cap = inc->n_hops * 24 + 3;
    char *levels = malloc(cap), *units = malloc(cap), *ats = malloc(cap);
    if (!levels || !units || !ats) {
        free(levels);
        free(units);
        free(ats);
        return -1;
    }
    size_t nl = 0, nu = 0, na = 0;
    levels[nl++] = units[nu++] = ats[na++] = '{';
    for (size_t i = 0; i < inc->n_hops; i++) {
        const Rollcall__Hop *h = inc->hops[i];
        const char *unit = h->unit_code ? h->unit_code : "";
        bool digits = unit[0] != '\0' && strspn(unit, "0123456789") == strlen(unit) &&
                      strlen(unit) <= 12;
        nl += (size_t)snprintf(levels + nl, cap - nl, "%s%d", i ? "," : "", (int)h->level);
        nu += (size_t)snprintf(units + nu, cap - nu, "%s%s", i ? "," : "",
                               digits ? unit : "\"\"");
        na += (size_t)snprintf(ats + na, cap - na, "%s%" PRId64, i ? "," : "", h->at);
    }
    snprintf(levels + nl, cap - nl, "}");
    snprintf(units + nu, cap - nu, "}");
    snprintf(ats + na, cap - na, "}");
    *levels_out = levels;
    *units_out = units;
    *ats_out = ats;
    return 0;
}

int urgent_record(rc_pg *pg, const Rollcall__Report *r, char *errbuf, size_t errlen)
{
    const Rollcall__Incident *inc = r->incident;
    char sev[16], occ[24], rec[24];
    char *levels = NULL, *units = NULL, *ats = NULL;
    int hops = -1;

    if (!inc)
        return 0;
    snprintf(sev, sizeof sev, "%d", inc->severity);
    snprintf(occ, sizeof occ, "%" PRId64, inc->occurred_at);
    snprintf(rec, sizeof rec, "%" PRId64, r->received_at);
    const char *v1[] = {r->report_id, r->unit_code, r->period, inc->type ? inc->type : "",
                        sev, inc->description && inc->description[0] ? inc->description : NULL,
                        occ, rec};
    PGresult *res = rc_pg_exec_prepared(pg, "rollup_urgent_report", 8, v1, NULL, NULL, 0, errbuf,
                                        errlen);
    if (!res)
        return -1;
    PQclear(res);
    if (!inc->n_hops)
        return 0;

    if (hop_arrays(inc, &levels, &units, &ats) < 0) {
        snprintf(errbuf, errlen, "out of memory");
        goto done;
    }
    const char *v2[] = {r->report_id, levels, units, ats};
    res = rc_pg_exec_prepared(pg, "rollup_urgent_hops", 4, v2, NULL, NULL, 0, errbuf, errlen);
    if (!res)
        goto done;
    hops = atoi(PQcmdTuples(res));
    PQclear(res);
done:
    free(levels);
    free(units);
    free(ats);
    return hops;
}

/* ------------------------------------------------------------- the thread */

static int on_assign(void *opaque, rd_kafka_topic_partition_list_t *parts)
{
    urgent_path *u = opaque;
    return rollup_load_offsets(u->pg, u->group, parts);
}

static int store_offset(rc_pg *pg, const char *group, int32_t partition, int64_t next,
                        char *errbuf, size_t errlen)
{
    return rollup_store_offset(pg, group, "reports.urgent", partition, next, errbuf, errlen);
}

static int urgent_dead_letter(urgent_path *u, const rd_kafka_message_t *m, const char *reason,
                              int64_t *lo, int64_t *hi, char *errbuf, size_t errlen)
{
    char key[64] = "";
    if (m->key_len && m->key_len < sizeof key) {
        memcpy(key, m->key, m->key_len);
        key[m->key_len] = '\0';
    }
    rc_dead_letter dl = {"reports.urgent", m->partition, m->offset, m->payload, m->len,
                         key[0] ? key : NULL, reason};
    int64_t id = rc_dlq_insert(u->pg, &dl, true, errbuf, errlen);
    if (id < 0)
        return -1;
    if (id > 0) {
        if (*lo < 0 || id < *lo)
            *lo = id;
        if (id > *hi)
            *hi = id;
    }
    rc_counter_inc(u->ru->m.dead_letters);
    rollup_dlq_log(u->ru, "reports.urgent", m->partition, m->offset, reason);
    return 0;
}

/* The text parameters both archive statements take from a report and
 * its message. */
typedef struct report_params {
    char level[8], kind[8], version[24], received[24], submitted[24], part[16], off[24];
} report_params;

static void report_params_fill(report_params *q, const Rollcall__Report *r,
                               const rd_kafka_message_t *m)
{
    snprintf(q->level, sizeof q->level, "%d", (int)r->level);
    snprintf(q->kind, sizeof q->kind, "%d", (int)r->kind);
    snprintf(q->version, sizeof q->version, "%" PRId64, r->version);
    snprintf(q->received, sizeof q->received, "%" PRId64, r->received_at);
    snprintf(q->submitted, sizeof q->submitted, "%" PRId64, r->submitted_at);
    snprintf(q->part, sizeof q->part, "%" PRId32, m->partition);
    snprintf(q->off, sizeof q->off, "%" PRId64, m->offset);
}

/* One message inside the open transaction.  *last_hop_at is set for the
 * latency histogram.  Returns 0 or -1 (SQL failure). */
static int handle(urgent_path *u, const rd_kafka_message_t *m, int64_t *lo, int64_t *hi,
                  int64_t *last_hop_at, char *errbuf, size_t errlen)
{
    rollup *ru = u->ru;
    rc_errors errs = {0};
    char detail[400], reason[512];
    int rc = 0;

    Rollcall__Report *r = rc_report_unpack(m->payload, m->len, &errs);
    if (!r) {
        rc_errors_format(&errs, detail, sizeof detail);
        snprintf(reason, sizeof reason, "undecodable: %s", detail);
        return urgent_dead_letter(u, m, reason, lo, hi, errbuf, errlen);
    }
    rc_validate_opts opts = ru->vopts_village;
    opts.now_us = rc_now_us();
    if (rollup_validate(ru, r, &opts, &errs) < 0 ||
        r->kind != ROLLCALL__KIND__KIND_URGENT || r->version <= 0) {
        if (errs.n)
            rc_errors_format(&errs, detail, sizeof detail);
        else
            snprintf(detail, sizeof detail, "kind: reports.urgent carries URGENT reports with a "
                                            "version");
        snprintf(reason, sizeof reason, "invalid: %s", detail);
        rc = urgent_dead_letter(u, m, reason, lo, hi, errbuf, errlen);
        goto done;
    }
    report_params q;
    report_params_fill(&q, r, m);
    const char *values[] = {r->report_id, r->unit_code, q.level, r->period, q.kind, q.version,
                            q.received, q.submitted, r->submitter ? r->submitter : "",
                            "reports.urgent", q.part, q.off, m->payload};
    int lengths[13] = {0};
    int formats[13] = {0};
    lengths[12] = (int)m->len;
    formats[12] = 1;
    const char *lock[] = {r->report_id};
    PGresult *res = rc_pg_exec_prepared(u->pg, "rollup_urgent_lock", 1, lock, NULL, NULL, 0,
                                        errbuf, errlen);
    if (!res) {
        rc = -1;
        goto done;
    }
    PQclear(res);
    res = rc_pg_exec_prepared(u->pg, "rollup_archive_one", 13, values, lengths, formats, 0, errbuf,
                              errlen);
    if (!res) {
        rc = -1;
        goto done;
    }
    PQclear(res);
    int hops = urgent_record(u->pg, r, errbuf, errlen);
    if (hops < 0) {
        rc = -1;
        goto done;
    }
    rc_counter_add(ru->m.urgent_hops, hops);
    if (r->incident && r->incident->n_hops)
        *last_hop_at = r->incident->hops[r->incident->n_hops - 1]->at;
done:
    rc_report_free(r);
    return rc;
}

/* The fast path for one message: a valid URGENT report is stored with its
 * offset in a single autocommitted statement.  Returns 1 when stored, 0
 * when the message needs the general path (undecodable, invalid: a dead
 * letter), -1 when PostgreSQL failed (nothing stored). */
static int fast_one(urgent_path *u, const rd_kafka_message_t *m, int64_t *hop_at, char *errbuf,
                    size_t errlen)
{
    rollup *ru = u->ru;
    rc_errors errs = {0};
    char *levels = NULL, *units = NULL, *ats = NULL;
    int rc = 0;

    Rollcall__Report *r = rc_report_unpack(m->payload, m->len, &errs);
    if (!r)
        return 0;
    rc_validate_opts opts = ru->vopts_village;
    opts.now_us = rc_now_us();
    if (rollup_validate(ru, r, &opts, &errs) < 0 || r->kind != ROLLCALL__KIND__KIND_URGENT ||
        r->version <= 0 || !r->incident)
        goto done;
    if (hop_arrays(r->incident, &levels, &units, &ats) < 0) {
        snprintf(errbuf, errlen, "out of memory");
        rc = -1;
        goto done;
    }
    const Rollcall__Incident *inc = r->incident;
    report_params q;
    char sev[8], occ[24];
    report_params_fill(&q, r, m);
    snprintf(sev, sizeof sev, "%d", inc->severity);
    snprintf(occ, sizeof occ, "%" PRId64, inc->occurred_at);
    const char *values[20] = {r->report_id, r->unit_code, q.level, r->period, q.kind, q.version,
                              q.received, q.submitted, r->submitter ? r->submitter : "", q.part,
                              q.off, m->payload, inc->type ? inc->type : "", sev,
                              inc->description ? inc->description : "", occ, levels, units, ats,
                              u->group};
    int lengths[20] = {0}, formats[20] = {0};
    lengths[11] = (int)m->len;
    formats[11] = 1;
    PGresult *res = rc_pg_exec_prepared(u->pg, "rollup_urgent_one", 20, values, lengths, formats,
                                        0, errbuf, errlen);
    if (!res) {
        rc = -1;
        goto done;
    }
    rc_counter_add(ru->m.urgent_hops, atof(PQgetvalue(res, 0, 0)));
    PQclear(res);
    if (inc->n_hops)
        *hop_at = inc->hops[inc->n_hops - 1]->at;
    rc = 1;
done:
    free(levels);
    free(units);
    free(ats);
    rc_report_free(r);
    return rc;
}

/* Processes msgs[0..n) in one transaction.  Returns 0, or -1 with *cls
 * (nothing committed). */
static int process(urgent_path *u, rd_kafka_message_t **msgs, size_t n, rc_pg_error_class *cls,
                   char *errbuf, size_t errlen)
{
    int64_t lo = -1, hi = -1;
    int64_t *hop_at = calloc(n, sizeof *hop_at);
    int32_t parts[64];
    int64_t nexts[64];
    size_t nparts = 0;

    *cls = RC_PG_ERR_TRANSIENT;
    if (!hop_at) {
        snprintf(errbuf, errlen, "out of memory");
        return -1;
    }
    if (rc_pg_begin(u->pg, errbuf, errlen) < 0)
        goto failed;
    for (size_t i = 0; i < n; i++) {
        if (handle(u, msgs[i], &lo, &hi, &hop_at[i], errbuf, errlen) < 0)
            goto failed;
        size_t j = 0;
        while (j < nparts && parts[j] != msgs[i]->partition)
            j++;
        if (j == nparts && nparts < 64) {
            parts[nparts] = msgs[i]->partition;
            nexts[nparts++] = msgs[i]->offset + 1;
        } else if (j < nparts && msgs[i]->offset + 1 > nexts[j]) {
            nexts[j] = msgs[i]->offset + 1;
        }
    }
    for (size_t j = 0; j < nparts; j++)
        if (store_offset(u->pg, u->group, parts[j], nexts[j], errbuf, errlen) < 0)
            goto failed;
    if (rc_pg_commit(u->pg, errbuf, errlen) < 0)
        goto failed;

    int64_t now = rc_now_us();
    for (size_t i = 0; i < n; i++)
        if (hop_at[i] > 0)
            rc_histogram_observe(u->ru->m.urgent_seconds, (double)(now - hop_at[i]) / 1e6);
    rc_counter_add(u->ru->m.urgent_messages, (double)n);
    free(hop_at);
    if (lo >= 0) {
        char err[256];
        if (outbox_publish(u->ru, u->pg, lo, hi, err, sizeof err) < 0)
            rc_warn("urgent: dead letters stay in the outbox for now: %s", err);
    }
    return 0;
failed:
    *cls = rc_pg_last_error_class(u->pg);   /* before the rollback's own statement */
    if (rc_pg_in_transaction(u->pg))
        rc_pg_rollback(u->pg, NULL, 0);
    free(hop_at);
    return -1;
}

/* Notes that the urgent path cannot store (for /healthz after stall_after);
 * NULL: it can again. */
static void urgent_failing(rollup *ru, const char *err)
{
    pthread_mutex_lock(&ru->health_mu);
    if (!err)
        ru->urgent_failing_us = 0;
    else if (!ru->urgent_failing_us)
        ru->urgent_failing_us = rc_now_us();
    if (err)
        snprintf(ru->urgent_error, sizeof ru->urgent_error, "%.290s", err);
    pthread_mutex_unlock(&ru->health_mu);
}

/* Sleeps ms (in slices, so a stop is seen); false when stopping. */
static bool pause_ms(rollup *ru, long ms)
{
    for (long slept = 0; slept < ms; slept += 100) {
        if (atomic_load(&ru->stop))
            return false;
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return !atomic_load(&ru->stop);
}

/* One message whose batch failed for a data reason: stored alone, or — when
 * PostgreSQL refuses it for a data reason — dead-lettered with that reason.
 * A transient failure is retried (with backoff) until it passes or the
 * service stops; nothing here is ever dead-lettered for one.  Returns 0, or
 * -1 when stopping. */
static int process_alone(urgent_path *u, rd_kafka_message_t *m)
{
    rollup *ru = u->ru;
    char err[512], reason[600];
    rc_pg_error_class cls;
    long backoff = 100;

    for (;;) {
        if (process(u, &m, 1, &cls, err, sizeof err) == 0) {
            urgent_failing(ru, NULL);
            return 0;
        }
        if (cls == RC_PG_ERR_DATA) {
            int64_t lo = -1, hi = -1;
            snprintf(reason, sizeof reason, "rejected by PostgreSQL: %.500s", err);
            if (rc_pg_begin(u->pg, err, sizeof err) == 0 &&
                urgent_dead_letter(u, m, reason, &lo, &hi, err, sizeof err) == 0 &&
                store_offset(u->pg, u->group, m->partition, m->offset + 1, err, sizeof err) == 0 &&
                rc_pg_commit(u->pg, err, sizeof err) == 0) {
                if (lo >= 0 && outbox_publish(ru, u->pg, lo, hi, err, sizeof err) < 0)
                    rc_warn("urgent: dead letter stays in the outbox for now: %s", err);
                return 0;
            }
            if (rc_pg_in_transaction(u->pg))
                rc_pg_rollback(u->pg, NULL, 0);
        }
        rc_counter_inc(ru->m.batch_failures);
        rc_warn("urgent: partition=%" PRId32 " offset=%" PRId64 " not stored (retrying in %ld ms): %s",
                m->partition, m->offset, backoff, err);
        urgent_failing(ru, err);
        if (!pause_ms(ru, backoff))
            return -1;
        if (backoff < 5000)
            backoff *= 2;
    }
}

static void *urgent_main(void *arg)
{
    urgent_path *u = arg;
    rollup *ru = u->ru;
    size_t cap = (size_t)ru->cfg.urgent_max_batch;
    rd_kafka_message_t **msgs = calloc(cap, sizeof *msgs);
    char err[512];

    if (!msgs) {
        rc_error("urgent: out of memory");
        atomic_store(&ru->failed, true);
        return NULL;
    }
    while (!atomic_load(&ru->stop)) {
        size_t n = 0;
        rd_kafka_message_t *m = rc_consumer_poll(u->consumer, 100);
        while (m) {
            if (m->err) {
                if (rc_consumer_fatal(m)) {
                    rc_error("urgent: consumer failed: %s", rd_kafka_message_errstr(m));
                    atomic_store(&ru->failed, true);
                    atomic_store(&ru->stop, true);
                }
                rd_kafka_message_destroy(m);
            } else {
                msgs[n++] = m;
            }
            if (n == cap)
                break;
            m = rc_consumer_poll(u->consumer, 0);
        }
        if (!n) {
            if (rc_consumer_failed(u->consumer)) {
                rc_error("urgent: partition assignment failed");
                atomic_store(&ru->failed, true);
                atomic_store(&ru->stop, true);
            }
            continue;
        }
        /* Each valid message alone, at once; the rest (and everything after a
         * failure) through the general path below. */
        size_t done = 0;
        while (done < n) {
            int64_t hop_at = 0;
            int f = fast_one(u, msgs[done], &hop_at, err, sizeof err);
            if (f <= 0)
                break;
            if (hop_at > 0)
                rc_histogram_observe(ru->m.urgent_seconds, (double)(rc_now_us() - hop_at) / 1e6);
            rc_counter_inc(ru->m.urgent_messages);
            rd_kafka_message_destroy(msgs[done]);
            msgs[done++] = NULL;
        }
        if (done == n)
            continue;
        memmove(msgs, msgs + done, (n - done) * sizeof *msgs);
        n -= done;
        /* Transient failures are retried as they are (backoff up to 5 s);
         * a data failure splits the batch into one transaction per message,
         * where the one PostgreSQL refuses becomes a dead letter. */
        rc_pg_error_class cls;
        long backoff = 100;
        bool stored = false;
        while (!stored && !atomic_load(&ru->stop)) {
            if (process(u, msgs, n, &cls, err, sizeof err) == 0) {
                stored = true;
                urgent_failing(ru, NULL);
                break;
            }
            rc_counter_inc(ru->m.batch_failures);
            rc_warn("urgent: transaction failed messages=%zu class=%s: %s", n,
                    rc_pg_error_class_name(cls), err);
            if (cls == RC_PG_ERR_DATA) {
                stored = true;
                for (size_t i = 0; i < n && stored; i++)
                    if (process_alone(u, msgs[i]) < 0)
                        stored = false;
                break;
            }
            urgent_failing(ru, err);
            if (!pause_ms(ru, backoff))
                break;
            if (backoff < 5000)
                backoff *= 2;
        }
        for (size_t i = 0; i < n; i++)
            rd_kafka_message_destroy(msgs[i]);
    }
    free(msgs);
    return NULL;
}

int urgent_start(urgent_path *u, rollup *ru, char *errbuf, size_t errlen)
{
    static const char *const topics[] = {"reports.urgent"};
    size_t nprops = 0;

    memset(u, 0, sizeof *u);
    u->ru = ru;
    snprintf(u->group, sizeof u->group, "%s.urgent", ru->cfg.group);
    u->pg = rollup_pg_connect(ru, "rollcall-rollup-urgent", errbuf, errlen);
    if (!u->pg)
        return -1;
    /* Low latency: fetch as soon as one byte is there, never linger. */
    const char *props[] = {"fetch.wait.max.ms=10", "fetch.error.backoff.ms=10",
                           "queued.max.messages.kbytes=4096"};
    const char *own[8];
    size_t nown = 0;
    char inst[300];
    for (size_t i = 0; i < sizeof props / sizeof *props; i++)
        own[nown++] = props[i];
    if (rollup_instance_prop(ru, "urgent", inst, sizeof inst))
        own[nown++] = inst;
    const char *all[64];
    nprops = rollup_consumer_props(ru, own, nown, all, 64);
    rc_consumer_hooks hooks = {on_assign, NULL, u};
    /* The consumer's threads and ours are started real-time (they inherit
     * this thread's class, which is then put back): on a busy machine the
     * path otherwise waited its turn behind the daily batches and everyone
     * else's work before each read and each hop record. */
    char why[256];
    bool rt = ru->cfg.urgent_rtprio > 0;
    if (rt && rc_sched_realtime(ru->cfg.urgent_rtprio, why, sizeof why) < 0) {
        rc_warn("urgent: stays in the ordinary scheduling class (urgent_rtprio=%d): %s",
                ru->cfg.urgent_rtprio, why);
        rt = false;
    }
    u->consumer = rc_consumer_new(ru->cfg.kafka_brokers, u->group, topics, 1, all, nprops,
                                  &hooks, errbuf, errlen);
    int started = u->consumer ? pthread_create(&u->thread, NULL, urgent_main, u) : -1;
    if (rt)
        rc_sched_realtime(0, why, sizeof why);
    if (!u->consumer) {
        rc_pg_free(u->pg);
        u->pg = NULL;
        return -1;
    }
    if (started != 0) {
        snprintf(errbuf, errlen, "cannot start the urgent thread");
        rc_consumer_free(u->consumer);
        rc_pg_free(u->pg);
        return -1;
    }
    u->running = true;
    return 0;
}

void urgent_stop(urgent_path *u)
{
    if (!u->running)
        return;
    pthread_join(u->thread, NULL);
    rc_consumer_free(u->consumer);
    rc_pg_free(u->pg);
    u->running = false;
}
