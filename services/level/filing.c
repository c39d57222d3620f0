/* Filing: decides what each row's live aggregate calls for (rc_level),
 * marks the decision in rollcall.filing and delivers the filed reports to
 * reports.<level>. */
#include "desk.h"

void desk_decide(desk *d, row *r, int64_t now)
{
    rc_filing_state s;

    r->past_deadline = desk_past_deadline(d, r->day, now);
    s.filed = r->filed;
    s.ready = r->ready;
    s.complete = rc_level_aggregate_complete(r->agg);
    s.past_deadline = r->past_deadline;
    s.signoff_required = d->signoff_required;
    s.signed_current = r->signed_current;
    s.filed_recently = r->filed && now - r->filed_at < (int64_t)d->cfg->revise_every_ms * 1000;
    r->action = rc_level_decide(&s, &r->reason, &r->revised);
}

/* Records what the rows' decisions did, in the caller's transaction. */
static int mark_rows(desk *d, row *rows, size_t n, int64_t now, char *err, size_t errlen)
{
    rc_sqlarr fu, fp, fv, fid, frev, fby, freason, fkind, fexp, frep, fmiss, fpart, foff;
    rc_sqlarr wu, wp, wreason;
    PGresult *res = NULL;
    char at[40], level[4];
    int rc = -1;

    rc_sqlarr_init(&fu); rc_sqlarr_init(&fp); rc_sqlarr_init(&fv); rc_sqlarr_init(&fid); rc_sqlarr_init(&frev);
    rc_sqlarr_init(&fby); rc_sqlarr_init(&freason); rc_sqlarr_init(&fkind); rc_sqlarr_init(&fexp);
    rc_sqlarr_init(&frep); rc_sqlarr_init(&fmiss); rc_sqlarr_init(&fpart); rc_sqlarr_init(&foff);
    rc_sqlarr_init(&wu); rc_sqlarr_init(&wp); rc_sqlarr_init(&wreason);
    desk_fmt_time(now, at);
    snprintf(level, sizeof level, "%d", d->ctx->level);
    for (size_t i = 0; i < n; i++) {
        row *r = &rows[i];
        if (r->action == RC_FILE_NOW && r->dlv.ok) {
            const Rollcall__Completeness *c = r->agg->completeness;
            size_t m = 0, cap = 1;
            char *miss;
            rc_sqlarr_text(&fu, r->unit);
            rc_sqlarr_text(&fp, r->period);
            rc_sqlarr_int(&fv, r->version);
            rc_sqlarr_text(&fid, r->report_id);
            rc_sqlarr_bool(&frev, r->revised);
            rc_sqlarr_text(&fby, r->reason == RC_REASON_SIGNOFF && r->signoff_by[0] ? r->signoff_by
                                                                                 : d->ctx->submitter);
            rc_sqlarr_text(&freason, rc_level_reason_name(r->reason));
            rc_sqlarr_int(&fkind, r->kind);
            rc_sqlarr_int(&fexp, c ? c->expected : 0);
            rc_sqlarr_int(&frep, c ? c->reported : 0);
            /* PostgreSQL arrays cannot be ragged: each missing list goes as
             * one space-separated string, split again in SQL */
            for (size_t k = 0; c && k < c->n_missing; k++)
                cap += strlen(c->missing[k]) + 1;
            miss = malloc(cap);
            if (!miss) {
                snprintf(err, errlen, "out of memory");
                goto done;
            }
            miss[0] = '\0';
            for (size_t k = 0; c && k < c->n_missing; k++)
                m += (size_t)snprintf(miss + m, cap - m, "%s%s", k ? " " : "", c->missing[k]);
            rc_sqlarr_text(&fmiss, miss);
            free(miss);
            rc_sqlarr_int(&fpart, r->dlv.partition);
            rc_sqlarr_int(&foff, r->dlv.offset);
        } else if (r->action == RC_FILE_WAIT || (r->action == RC_FILE_NOW && !r->ready)) {
            /* ready (complete or deadline) but not filed: waiting for a
             * signature, or a delivery that failed and will be retried */
            rc_sqlarr_text(&wu, r->unit);
            rc_sqlarr_text(&wp, r->period);
            rc_sqlarr_text(&wreason, r->reason == RC_REASON_COMPLETE ? "complete" : "deadline");
        }
    }
    if (fu.n > 0) {
        const char *p[16] = {rc_sqlarr_get(&fu), rc_sqlarr_get(&fp), rc_sqlarr_get(&fv), rc_sqlarr_get(&fid),
                             rc_sqlarr_get(&frev), rc_sqlarr_get(&fby), rc_sqlarr_get(&freason),
                             rc_sqlarr_get(&fkind), rc_sqlarr_get(&fexp), rc_sqlarr_get(&frep),
                             rc_sqlarr_get(&fmiss), rc_sqlarr_get(&fpart), rc_sqlarr_get(&foff), at, level,
                             d->topic_out};
        for (int i = 0; i < 13; i++)
            if (!p[i]) {
                snprintf(err, errlen, "out of memory");
                goto done;
            }
        res = rc_pg_exec_params(d->pg,
            "WITH t AS (SELECT * FROM unnest($1::text[], $2::date[], $3::bigint[], $4::uuid[],"
            "                 $5::boolean[], $6::text[], $7::text[], $8::smallint[], $9::int[],"
            "                 $10::int[], $11::text[], $12::int[], $13::bigint[])"
            "       AS x(u, p, v, id, rev, by, reason, kind, exp, rep, miss, part, off)),"
            " f AS (UPDATE rollcall.filing AS f SET filed_version = t.v, filed_report_id = t.id,"
            "        filed_at = $14::timestamptz, first_filed_at = coalesce(f.first_filed_at, $14::timestamptz),"
            "        filed_revised = t.rev, filed_by = t.by, filings = f.filings + 1,"
            "        ready_at = coalesce(f.ready_at, $14::timestamptz),"
            "        ready_reason = coalesce(f.ready_reason, CASE t.reason WHEN 'complete' THEN 'complete'"
            "                                                 WHEN 'signoff' THEN 'signoff' ELSE 'deadline' END)"
            "       FROM t WHERE f.unit_code = t.u AND f.period = t.p"
            "        AND (f.filed_version IS NULL OR f.filed_version < t.v)"
            "       RETURNING 1)"
            " INSERT INTO rollcall.filing_log (report_id, unit_code, period, level, version, kind, reason,"
            "        revised, submitter, expected, reported, missing, filed_at, topic, partition, \"offset\")"
            " SELECT t.id, t.u, t.p, $15::smallint, t.v, t.kind, t.reason, t.rev, t.by, t.exp, t.rep,"
            "        CASE WHEN t.miss = '' THEN '{}'::text[] ELSE string_to_array(t.miss, ' ') END,"
            "        $14::timestamptz, $16, t.part, t.off FROM t"
            " ON CONFLICT (report_id) DO NOTHING",
            16, p, err, errlen);
        if (!res)
            goto done;
        PQclear(res);
        res = NULL;
    }
    if (wu.n > 0) {
        const char *p[4] = {rc_sqlarr_get(&wu), rc_sqlarr_get(&wp), rc_sqlarr_get(&wreason), at};
        if (!p[0] || !p[1] || !p[2]) {
            snprintf(err, errlen, "out of memory");
            goto done;
        }
        res = rc_pg_exec_params(d->pg,
            "UPDATE rollcall.filing AS f SET ready_at = $4::timestamptz, ready_reason = t.r"
            "  FROM unnest($1::text[], $2::date[], $3::text[]) AS t(u, p, r)"
            " WHERE f.unit_code = t.u AND f.period = t.p AND f.ready_at IS NULL",
            4, p, err, errlen);
        if (!res)
            goto done;
    }
    rc = 0;
done:
    PQclear(res);
    rc_sqlarr_free(&fu); rc_sqlarr_free(&fp); rc_sqlarr_free(&fv); rc_sqlarr_free(&fid); rc_sqlarr_free(&frev);
    rc_sqlarr_free(&fby); rc_sqlarr_free(&freason); rc_sqlarr_free(&fkind); rc_sqlarr_free(&fexp);
    rc_sqlarr_free(&frep); rc_sqlarr_free(&fmiss); rc_sqlarr_free(&fpart); rc_sqlarr_free(&foff);
    rc_sqlarr_free(&wu); rc_sqlarr_free(&wp); rc_sqlarr_free(&wreason);
    return rc;
}

/* Files the rows decided RC_FILE_NOW, waits for the broker's
 * acknowledgements, then records everything in one transaction (plus the
 * batch's offsets when given, and only if every filing was delivered).
 * Returns 0, or -1 (nothing recorded; the sweep files what is still due). */
int desk_file_rows(desk *d, row *rows, size_t n, int64_t now, const int32_t *parts,
                   const int64_t *next, size_t nparts)
{
    char err[512], key[13];
    size_t sent = 0, failed = 0;

    for (size_t i = 0; i < n; i++) {
        row *r = &rows[i];
        rc_filed_opts o;
        uint8_t *buf;
        size_t len;

        memset(&r->dlv, 0, sizeof r->dlv);
        if (r->action != RC_FILE_NOW)
            continue;
        o.submitter = r->reason == RC_REASON_SIGNOFF && r->signoff_by[0] ? r->signoff_by
                                                                        : d->ctx->submitter;
        o.note = rc_level_reason_name(r->reason);
        o.revised = r->revised;
        o.now_us = now;
        buf = rc_level_pack_filed(r->agg, &o, &len, r->report_id);
        if (!buf || rc_level_filed_key(r->unit, key) < 0) {
            rc_error("filed report not built unit=%s period=%s version=%lld", r->unit, r->period,
                     (long long)r->version);
            free(buf);
            failed++;
            continue;
        }
        r->kind = rc_level_aggregate_zero(r->agg) ? ROLLCALL__KIND__KIND_ZERO : ROLLCALL__KIND__KIND_DAILY;
        if (rc_producer_send(d->producer, d->topic_out, RD_KAFKA_PARTITION_UA, key, strlen(key), buf,
                             len, &r->dlv, 5000) == 0) {
            r->dlv.sent = true;
            sent++;
        } else {
            failed++;
        }
        free(buf);
    }
    if (sent > 0 && rc_producer_flush(d->producer, d->cfg->flush_timeout_ms) < 0)
        rc_warn("filed reports not all acknowledged within %d ms", d->cfg->flush_timeout_ms);
    for (size_t i = 0; i < n; i++) {
        row *r = &rows[i];
        if (r->dlv.sent && !r->dlv.ok)
            failed++;
        if (r->dlv.ok) {
            rc_counter_inc(d->ctx->m.filed[r->reason]);
            rc_debug("filed unit=%s period=%s version=%lld reason=%s revised=%s report_id=%s",
                    r->unit, r->period, (long long)r->version, rc_level_reason_name(r->reason),
                    r->revised ? "true" : "false", r->report_id);
        }
    }
    if (failed)
        rc_counter_add(d->ctx->m.filing_failed, (double)failed);
    if (sent)
        rc_info("filed reports=%zu not_delivered=%zu topic=%s", sent - (failed > sent ? sent : failed),
                failed, d->topic_out);
    desk_rules_on_filing(d, rows, n);

    if (rc_pg_begin(d->pg, err, sizeof err) < 0)
        goto failed;
    if (mark_rows(d, rows, n, now, err, sizeof err) < 0 ||
        desk_insert_escalations(d, now, err, sizeof err) < 0)
        goto rollback;
    if (nparts > 0 && failed == 0 &&
        level_offsets_store(d->pg, d->ctx->group, d->topic_in, parts, next, nparts, err, sizeof err) < 0)
        goto rollback;
    if (rc_pg_commit(d->pg, err, sizeof err) < 0)
        goto failed;
    if (failed == 0)
        return 0;
    snprintf(err, sizeof err, "%zu filed report(s) not delivered", failed);
    goto failed;
rollback:
    rc_pg_rollback(d->pg, NULL, 0);
failed:
    rc_warn("filing round incomplete (the sweep retries): %s", err);
    atomic_store(&d->ctx->daily_ok, false);
    return -1;
}
