/* The daily desk's loop (see desk.h): consumes rollups.<level> in batches,
 * keeps the newest live aggregate per (unit, period) in rollcall.filing,
 * files what the batch made due, stores the offsets, and between batches
 * runs the tick (sweep, reminders, escalations, gauges). */
#include "desk.h"
#include "rc_dlq.h"

static void on_delivery(void *fn_opaque, void *msg_opaque, rd_kafka_resp_err_t err,
                        const char *topic, int32_t partition, int64_t offset)
{
    delivery *d = msg_opaque;
    (void)fn_opaque;

    d->done = true;
    d->ok = err == RD_KAFKA_RESP_ERR_NO_ERROR;
    d->partition = partition;
    d->offset = offset;
    if (!d->ok)
        rc_warn("not delivered topic=%s err=%s (retried by the next sweep)", topic,
                rd_kafka_err2str(err));
}

void desk_fmt_time(int64_t us, char out[40])
{
    rc_time_format_rfc3339(us, out);
}

bool desk_past_deadline(const desk *d, int32_t day, int64_t now)
{
    return day <= rc_level_last_closed_period(now, d->deadline_min);
}

void desk_row_clear(row *r)
{
    rc_report_free(r->agg);
    free(r->payload_owned);
    memset(r, 0, sizeof *r);
}

void desk_rows_free(row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++)
        desk_row_clear(&rows[i]);
    free(rows);
}

int desk_decode_row(row *r, char *err, size_t errlen)
{
    rc_errors errs = {0};

    r->agg = rc_report_unpack(r->payload, r->payload_len, &errs);
    if (!r->agg) {
        rc_errors_format(&errs, err, errlen);
        return -1;
    }
    return 0;
}

static int cmp_row(const void *a, const void *b)
{
    const row *x = a, *y = b;
    int c = strcmp(x->unit, y->unit);
    if (c)
        return c;
    c = strcmp(x->period, y->period);
    if (c)
        return c;
    if (x->version != y->version)
        return (x->version > y->version) - (x->version < y->version);
    c = strcmp(x->live_id, y->live_id);
    return c ? c : (x->seq > y->seq) - (x->seq < y->seq);
}

static int cmp_unit_period(const void *a, const void *b)
{
    const row *x = a, *y = b;
    int c = strcmp(x->unit, y->unit);
    return c ? c : strcmp(x->period, y->period);
}

static void dead_letter(desk *d, const rd_kafka_message_t *m, const char *reason)
{
    char err[256];

    rc_warn("dead letter topic=%s partition=%d offset=%lld: %s", d->topic_in, (int)m->partition,
            (long long)m->offset, reason);
    rc_counter_inc(d->ctx->m.invalid);
    rc_dead_letter dl = {d->topic_in, m->partition, m->offset, m->payload, m->len, NULL, reason};
    if (rc_dlq_insert(d->pg, &dl, false, err, sizeof err) < 0)
        rc_error("dead letter not recorded topic=%s partition=%d offset=%lld: %s", d->topic_in,
                 (int)m->partition, (long long)m->offset, err);
}

/* Checks that a consumed aggregate is one of this level's; fills the row. */
static int accept_aggregate(desk *d, const rd_kafka_message_t *m, row *r, char *why, size_t whylen)
{
    Rollcall__Report *a;
    char unit[13];

    r->payload = m->payload;
    r->payload_len = m->len;
    r->partition = m->partition;
    if (desk_decode_row(r, why, whylen) < 0)
        return -1;
    a = r->agg;
    if ((int)a->level != d->ctx->level) {
        snprintf(why, whylen, "level %d on %s", (int)a->level, d->topic_in);
        return -1;
    }
    if (rc_level_unit_of(a->unit_code, d->ctx->level, unit) < 0 || strcmp(unit, a->unit_code) != 0) {
        snprintf(why, whylen, "unit_code '%s' is not a %s code", a->unit_code ? a->unit_code : "",
                 d->ctx->name);
        return -1;
    }
    if (!a->period || rc_period_parse(a->period, &r->day) < 0) {
        snprintf(why, whylen, "bad period '%s'", a->period ? a->period : "");
        return -1;
    }
    if (a->version <= 0 || !a->report_id || !rc_uuid_valid(a->report_id) || !a->completeness) {
        snprintf(why, whylen, "aggregate without version, report_id or completeness");
        return -1;
    }
    snprintf(r->unit, sizeof r->unit, "%s", a->unit_code);
    snprintf(r->period, sizeof r->period, "%s", a->period);
    snprintf(r->live_id, sizeof r->live_id, "%s", a->report_id);
    r->version = a->version;
    return 0;
}

static int upsert_live(desk *d, row *rows, size_t n, int64_t now, char *err, size_t errlen)
{
    rc_sqlarr u, p, v, id, pay, exp, rep, miss, comp, part;
    PGresult *res = NULL;
    char at[40], level[4];
    int rc = -1;

    rc_sqlarr_init(&u); rc_sqlarr_init(&p); rc_sqlarr_init(&v); rc_sqlarr_init(&id); rc_sqlarr_init(&pay);
    rc_sqlarr_init(&exp); rc_sqlarr_init(&rep); rc_sqlarr_init(&miss); rc_sqlarr_init(&comp); rc_sqlarr_init(&part);
    for (size_t i = 0; i < n; i++) {
        const Rollcall__Completeness *c = rows[i].agg->completeness;
        rc_sqlarr_text(&u, rows[i].unit);
        rc_sqlarr_text(&p, rows[i].period);
        rc_sqlarr_int(&v, rows[i].version);
        rc_sqlarr_text(&id, rows[i].live_id);
        rc_sqlarr_bytea(&pay, rows[i].payload, rows[i].payload_len);
        rc_sqlarr_int(&exp, c->expected);
        rc_sqlarr_int(&rep, c->reported);
        rc_sqlarr_int(&miss, c->n_missing ? (long long)c->n_missing
                                       : (c->expected > c->reported ? c->expected - c->reported : 0));
        rc_sqlarr_bool(&comp, rc_level_aggregate_complete(rows[i].agg));
        rc_sqlarr_int(&part, rows[i].partition);
    }
    desk_fmt_time(now, at);
    snprintf(level, sizeof level, "%d", d->ctx->level);
    const char *prm[12] = {rc_sqlarr_get(&u), rc_sqlarr_get(&p), rc_sqlarr_get(&v), rc_sqlarr_get(&id),
                           rc_sqlarr_get(&pay), rc_sqlarr_get(&exp), rc_sqlarr_get(&rep), rc_sqlarr_get(&miss),
                           rc_sqlarr_get(&comp), rc_sqlarr_get(&part), level, at};
    for (int i = 0; i < 10; i++)
        if (!prm[i]) {
            snprintf(err, errlen, "out of memory");
            goto done;
        }
    /* Besides the upsert, the statement reports aggregates that came again
     * with the version and id already stored but other numbers: PIPELINE.md
     * promises that any change raises an aggregate's version, and a desk
     * cannot file the change under the same id (the rollup would take it
     * for the report it already has).  Rows: ('row', ...) per unit taken,
     * ('conflict', unit, period) per such aggregate.  The check probes the
     * key of each row (LATERAL, OFFSET 0): as a join the planner hashed the
     * whole filing table, every day's, at every batch. */
    res = rc_pg_exec_params(d->pg,
        "WITH t AS (SELECT * FROM unnest($1::text[], $2::date[], $3::bigint[], $4::uuid[], $5::bytea[],"
        "                               $6::int[], $7::int[], $8::int[], $9::boolean[], $10::int[])"
        "             AS x(u, p, v, id, pay, e, r, m, c, part)),"
        " up AS (INSERT INTO rollcall.filing AS f (unit_code, period, level, live_version, live_report_id,"
        "       live_payload, live_expected, live_reported, live_missing, live_complete, live_at,"
        "       source_partition)"
        " SELECT u, p, $11::smallint, v, id, pay, e, r, m, c, $12::timestamptz, part FROM t"
        " ON CONFLICT (unit_code, period) DO UPDATE SET"
        "   live_version = EXCLUDED.live_version, live_report_id = EXCLUDED.live_report_id,"
        "   live_payload = EXCLUDED.live_payload, live_expected = EXCLUDED.live_expected,"
        "   live_reported = EXCLUDED.live_reported, live_missing = EXCLUDED.live_missing,"
        "   live_complete = EXCLUDED.live_complete, live_at = EXCLUDED.live_at,"
        "   source_partition = EXCLUDED.source_partition"
        " WHERE f.live_version < EXCLUDED.live_version"
        "    OR (f.live_version = EXCLUDED.live_version AND f.live_report_id < EXCLUDED.live_report_id)"
        " RETURNING unit_code, period, filed_version IS NOT NULL AS filed,"
        "   coalesce(signoff_version = live_version, false) AS signed, coalesce(signoff_by, '') AS by,"
        "   ready_at IS NOT NULL AS ready, " FILED_AT_US " AS filed_at)"
        " SELECT 'row', unit_code, period::text, filed, signed, by, ready, filed_at FROM up"
        " UNION ALL"
        " SELECT 'conflict', t.u, t.p::text, NULL, NULL, NULL, NULL, NULL FROM t"
        "   CROSS JOIN LATERAL (SELECT 1 FROM rollcall.filing f"
        "                        WHERE f.unit_code = t.u AND f.period = t.p AND f.live_version = t.v"
        "                          AND f.live_report_id = t.id AND f.live_payload <> t.pay OFFSET 0) f",
        12, prm, err, errlen);
    if (!res)
        goto done;
    for (int i = 0; i < PQntuples(res); i++) {
        row key, *r;
        if (strcmp(PQgetvalue(res, i, 0), "conflict") == 0) {
            rc_warn("aggregate changed without a new version: the filed report keeps the numbers first"
                    " seen under it unit=%s period=%s", PQgetvalue(res, i, 1), PQgetvalue(res, i, 2));
            rc_counter_inc(d->ctx->m.version_conflicts);
            continue;
        }
        snprintf(key.unit, sizeof key.unit, "%s", PQgetvalue(res, i, 1));
        snprintf(key.period, sizeof key.period, "%s", PQgetvalue(res, i, 2));
        r = bsearch(&key, rows, n, sizeof *rows, cmp_unit_period);
        if (!r)
            continue;
        r->updated = true;
        r->filed = PQgetvalue(res, i, 3)[0] == 't';
        r->signed_current = PQgetvalue(res, i, 4)[0] == 't';
        snprintf(r->signoff_by, sizeof r->signoff_by, "%s", PQgetvalue(res, i, 5));
        r->ready = PQgetvalue(res, i, 6)[0] == 't';
        r->filed_at = strtoll(PQgetvalue(res, i, 7), NULL, 10);
    }
    rc = 0;
done:
    PQclear(res);
    rc_sqlarr_free(&u); rc_sqlarr_free(&p); rc_sqlarr_free(&v); rc_sqlarr_free(&id); rc_sqlarr_free(&pay);
    rc_sqlarr_free(&exp); rc_sqlarr_free(&rep); rc_sqlarr_free(&miss); rc_sqlarr_free(&comp); rc_sqlarr_free(&part);
    return rc;
}

static void drop_batch(desk *d)
{
    for (size_t i = 0; i < d->nmsgs; i++)
        rd_kafka_message_destroy(d->msgs[i]);
    d->nmsgs = 0;
}

static int process_batch(desk *d)
{
    int64_t next[MAX_PARTITIONS];
    bool seen[MAX_PARTITIONS] = {false};
    int32_t parts[MAX_PARTITIONS];
    int64_t offs[MAX_PARTITIONS];
    size_t nparts = 0, n = 0, kept = 0;
    row *rows = NULL;
    char err[512], why[256];
    int64_t now = rc_clock_now(d->ctx->clock), t0 = rc_now_us();
    int rc = -1;

    rows = calloc(d->nmsgs ? d->nmsgs : 1, sizeof *rows);
    if (!rows)
        return -1;
    if (rc_pg_begin(d->pg, err, sizeof err) < 0)
        goto failed;
    for (size_t i = 0; i < d->nmsgs; i++) {
        const rd_kafka_message_t *m = d->msgs[i];
        if (m->partition >= 0 && m->partition < MAX_PARTITIONS) {
            next[m->partition] = m->offset + 1;
            seen[m->partition] = true;
        }
        rows[n].seq = i;
        if (accept_aggregate(d, m, &rows[n], why, sizeof why) < 0) {
            dead_letter(d, m, why);
            desk_row_clear(&rows[n]);
            continue;
        }
        rc_counter_inc(d->ctx->m.consumed);
        n++;
    }
    /* Coalesce: per (unit, period) only the newest version matters. */
    qsort(rows, n, sizeof *rows, cmp_row);
    for (size_t i = 0; i < n; i++) {
        if (i + 1 < n && cmp_unit_period(&rows[i], &rows[i + 1]) == 0) {
            desk_row_clear(&rows[i]);
            continue;
        }
        if (kept != i) {
            rows[kept] = rows[i];
            memset(&rows[i], 0, sizeof rows[i]);
        }
        kept++;
    }
    n = kept;
    if (n > 0 && upsert_live(d, rows, n, now, err, sizeof err) < 0)
        goto rollback;
    for (size_t i = 0; i < n; i++)
        if (rows[i].updated)
            desk_rules_on_live(d, &rows[i]);
    if (desk_insert_escalations(d, now, err, sizeof err) < 0)
        goto rollback;
    if (rc_pg_commit(d->pg, err, sizeof err) < 0)
        goto failed;

    for (int p = 0; p < MAX_PARTITIONS; p++)
        if (seen[p]) {
            parts[nparts] = p;
            offs[nparts++] = next[p];
        }
    for (size_t i = 0; i < n; i++) {
        if (rows[i].updated)
            desk_decide(d, &rows[i], now);
        else
            rows[i].action = RC_FILE_NONE;
    }
    /* A failed filing round still leaves the newest aggregates stored: the
     * sweep files them, and the offsets are stored with a later batch. */
    if (desk_file_rows(d, rows, n, now, parts, offs, nparts) == 0) {
        rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new((int)nparts);
        for (size_t i = 0; i < nparts; i++)
            rd_kafka_topic_partition_list_add(list, d->topic_in, parts[i])->offset = offs[i];
        rc_consumer_commit(d->consumer, list, true);
        rd_kafka_topic_partition_list_destroy(list);
        atomic_store(&d->ctx->daily_ok, true);
    }
    rc = 0;
    rc_histogram_observe(d->ctx->m.batch_seconds, (double)(rc_now_us() - t0) / 1e6);
    goto done;
rollback:
    rc_pg_rollback(d->pg, NULL, 0);
failed:
    rc_error("batch not processed (retrying) messages=%zu: %s", d->nmsgs, err);
    atomic_store(&d->ctx->daily_ok, false);
done:
    desk_rows_free(rows, d->nmsgs);
    d->nesc = 0;
    return rc;
}

static void refresh_gauges(desk *d)
{
    char err[256], level[4], closed[11];
    const char *p[1] = {level};
    const char *pm[2] = {level, closed};
    PGresult *res;

    /* Children still missing from this level's units for the newest period
     * whose deadline has passed: what an alert after the deadline watches.
     * Every instance reports the whole level (the rule takes the max). */
    snprintf(level, sizeof level, "%d", d->ctx->level);
    rc_period_format(rc_level_last_closed_period(rc_clock_now(d->ctx->clock), d->deadline_min), closed);
    res = rc_pg_exec_params(d->pg,
        "SELECT coalesce(sum(live_missing), 0), count(*) FILTER (WHERE live_missing > 0)"
        "  FROM rollcall.filing WHERE level = $1::smallint AND period = $2::date",
        2, pm, err, sizeof err);
    if (res && PQntuples(res) == 1) {
        rc_gauge_set(d->ctx->m.missing_after_deadline, strtod(PQgetvalue(res, 0, 0), NULL));
        rc_gauge_set(d->ctx->m.incomplete_after_deadline, strtod(PQgetvalue(res, 0, 1), NULL));
    }
    PQclear(res);

    /* Nothing waits for a signature where none is required. */
    if (!d->signoff_required) {
        rc_gauge_set(d->ctx->m.awaiting_signoff, 0);
        return;
    }
    /* rollcall.v_pending_signoff for this level, read through the index
     * of the rows that can be due (filing_due_early_idx) rather than the view. */
    snprintf(level, sizeof level, "%d", d->ctx->level);
    res = rc_pg_exec_params(d->pg,
        "SELECT count(*) FROM rollcall.filing WHERE level = $1::smallint"
        "   AND ready_at IS NOT NULL AND signoff_version IS DISTINCT FROM live_version"
        "   AND filed_version IS DISTINCT FROM live_version AND " DUE_EARLY,
        1, p, err, sizeof err);
    if (res && PQntuples(res) == 1)
        rc_gauge_set(d->ctx->m.awaiting_signoff, strtod(PQgetvalue(res, 0, 0), NULL));
    PQclear(res);
}

static void tick(desk *d)
{
    int64_t wall = rc_now_us();

    desk_check_notifies(d);
    if (d->reload || wall - d->loaded_at >= (int64_t)d->cfg->reload_ms * 1000)
        desk_load_config(d);
    /* A day's deadline can make thousands of units due at once: a few
     * pages per tick, so that new aggregates are not kept waiting. */
    for (int page = 0; page < 10 && atomic_load(&d->ctx->running); page++)
        if (desk_sweep(d) < SWEEP_LIMIT)
            break;
    desk_remind(d);
    desk_publish_pending(d, false);
    if (wall - d->last_recover >= RECOVER_EVERY_US) {
        desk_publish_pending(d, true);
        refresh_gauges(d);
        d->last_recover = wall;
    }
    d->last_tick = wall;
}

static int on_assign(void *opaque, rd_kafka_topic_partition_list_t *parts)
{
    desk *d = opaque;
    char err[256];
    int n = 0;

    drop_batch(d);
    if (level_offsets_assign(d->pg, rc_consumer_handle(d->consumer), d->ctx->group, parts, d->cfg->start_from, err, sizeof err) < 0) {
        rc_error("desk cannot read its offsets group=%s: %s", d->ctx->group, err);
        return -1;
    }
    for (int i = 0; i < parts->cnt; i++)
        if (parts->elems[i].partition >= 0 && parts->elems[i].partition < MAX_PARTITIONS) {
            d->assigned[parts->elems[i].partition] = true;
            n++;
        }
    rc_gauge_set(rc_metrics_gauge("rollcall_level_partitions", "Partitions assigned to this instance",
                                  "part=\"daily\""),
                 n);
    atomic_store(&d->ctx->daily_parts, n);
    return 0;
}

static void on_revoke(void *opaque, const rd_kafka_topic_partition_list_t *parts)
{
    desk *d = opaque;

    /* Messages collected but not processed are simply dropped: their
     * offsets were not stored, so whoever gets the partition reads them. */
    drop_batch(d);
    for (int i = 0; i < parts->cnt; i++)
        if (parts->elems[i].partition >= 0 && parts->elems[i].partition < MAX_PARTITIONS)
            d->assigned[parts->elems[i].partition] = false;
    rc_gauge_set(rc_metrics_gauge("rollcall_level_partitions", "Partitions assigned to this instance",
                                  "part=\"daily\""),
                 0);
    atomic_store(&d->ctx->daily_parts, 0);
}

/* Collects up to max_batch messages, waiting at most until the next tick
 * when idle and at most batch_ms once the first message is in.  Returns -1
 * on a fatal consumer error. */
static int collect(desk *d)
{
    int64_t start = 0, until_tick;
    rd_kafka_message_t *m;

    for (;;) {
        int64_t now = rc_now_us(), wait;
        if (d->nmsgs >= (size_t)d->cfg->max_batch)
            return 0;
        if (d->nmsgs == 0) {
            until_tick = d->last_tick + (int64_t)d->cfg->tick_ms * 1000 - now;
            if (until_tick <= 0)
                return 0;
            wait = until_tick / 1000 + 1;
        } else {
            wait = (start + (int64_t)d->cfg->batch_ms * 1000 - now) / 1000;
            if (wait < 0)
                return 0;
        }
        m = rc_consumer_poll(d->consumer, (int)(wait > 100 ? 100 : wait));
        if (!atomic_load(&d->ctx->running)) {
            if (m)
                rd_kafka_message_destroy(m);
            return 0;
        }
        if (!m) {
            if (rc_consumer_failed(d->consumer))
                return -1;
            if (d->nmsgs == 0)
                continue;
            if (rc_now_us() - start >= (int64_t)d->cfg->batch_ms * 1000)
                return 0;
            continue;
        }
        if (m->err) {
            bool fatal = rc_consumer_fatal(m);
            if (fatal)
                rc_error("desk: fatal consumer error: %s", rd_kafka_message_errstr(m));
            else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                rc_warn("desk: consumer: %s", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            if (fatal)
                return -1;
            continue;
        }
        if (d->nmsgs == d->capmsgs) {
            size_t cap = d->capmsgs ? 2 * d->capmsgs : 1024;
            rd_kafka_message_t **p = realloc(d->msgs, cap * sizeof *p);
            if (!p) {
                rd_kafka_message_destroy(m);
                return 0;   /* the message is read again after a restart */
            }
            d->msgs = p;
            d->capmsgs = cap;
        }
        if (d->nmsgs == 0)
            start = rc_now_us();
        d->msgs[d->nmsgs++] = m;
    }
}

void *level_daily_main(void *arg)
{
    level_ctx *ctx = arg;
    desk d;
    char err[512];
    const char *topics[1];
    rc_consumer_hooks hooks;

    memset(&d, 0, sizeof d);
    d.ctx = ctx;
    d.cfg = ctx->cfg;
    snprintf(d.topic_in, sizeof d.topic_in, "rollups.%s", ctx->name);
    snprintf(d.topic_out, sizeof d.topic_out, "reports.%s", ctx->name);
    topics[0] = d.topic_in;
    /* Until the policy is read: PIPELINE.md's deadlines. */
    d.deadline_min = ctx->level == 2 ? 11 * 60 : ctx->level == 3 ? 12 * 60 : 14 * 60;

    d.pg = rc_pg_connect(d.cfg->pg_dsn, "rollcall-level", err, sizeof err);
    if (!d.pg) {
        rc_error("desk: PostgreSQL: %s", err);
        goto failed;
    }
    if (desk_load_config(&d) < 0)
        goto failed;
    desk_listen_config(&d);
    d.producer = rc_producer_new(d.cfg->kafka_brokers, ctx->kafka_props, ctx->nkafka_props, on_delivery,
                                 &d, err, sizeof err);
    if (!d.producer) {
        rc_error("desk: producer: %s", err);
        goto failed;
    }
    hooks.on_assign = on_assign;
    hooks.on_revoke = on_revoke;
    hooks.opaque = &d;
    d.consumer = rc_consumer_new(d.cfg->kafka_brokers, ctx->group, topics, 1, ctx->kafka_props,
                                 ctx->nkafka_props, &hooks, err, sizeof err);
    if (!d.consumer) {
        rc_error("desk: consumer: %s", err);
        goto failed;
    }
    atomic_store(&ctx->daily_ok, true);
    rc_info("desk started level=%s group=%s in=%s out=%s", ctx->name, ctx->group, d.topic_in, d.topic_out);

    while (atomic_load(&ctx->running)) {
        atomic_store(&ctx->daily_beat, rc_now_us());
        if (collect(&d) < 0)
            goto failed;
        while (d.nmsgs > 0 && atomic_load(&ctx->running)) {
            if (process_batch(&d) == 0) {
                drop_batch(&d);
                break;
            }
            atomic_store(&ctx->daily_beat, rc_now_us());
            struct timespec ts = {1, 0};
            nanosleep(&ts, NULL);
        }
        if (rc_now_us() - d.last_tick >= (int64_t)d.cfg->tick_ms * 1000)
            tick(&d);
    }
    goto done;

failed:
    atomic_store(&ctx->daily_ok, false);
    atomic_store(&ctx->running, false);
done:
    drop_batch(&d);
    rc_consumer_free(d.consumer);
    rc_producer_free(d.producer);
    rc_pg_free(d.pg);
    free(d.msgs);
    free(d.esc);
    rc_info("desk stopped");
    return NULL;
}
