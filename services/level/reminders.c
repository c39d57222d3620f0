/* Reminders to the children still missing before the deadline, and the
 * publishing of reminders and escalations to their topics. */
#include "desk.h"

/* Publishes this level's unpublished reminders or escalations (rows locked
 * while they are sent, so two instances never send the same row). */
void desk_publish_pending(desk *d, bool reminders)
{
    PGresult *res = NULL, *upd = NULL;
    char err[512], level[4];
    delivery *dl = NULL;
    rc_sqlarr ids;
    const char *topic = reminders ? "reminders" : "escalations";
    int n;

    rc_sqlarr_init(&ids);
    snprintf(level, sizeof level, "%d", d->ctx->level);
    if (rc_pg_begin(d->pg, err, sizeof err) < 0)
        goto failed;
    const char *p[1] = {level};
    res = rc_pg_exec_params(d->pg, reminders
        ? "SELECT id, unit_code, period::text, asked_by_unit, minutes_before,"
          "       (extract(epoch FROM deadline) * 1000000)::bigint,"
          "       (extract(epoch FROM reminded_at) * 1000000)::bigint"
          "  FROM rollcall.reminder WHERE asked_by_level = $1::smallint AND published_at IS NULL"
          " ORDER BY id LIMIT 2000 FOR UPDATE SKIP LOCKED"
        : "SELECT id, unit_code, period::text, rule, value, raised_to_level,"
          "       (extract(epoch FROM raised_at) * 1000000)::bigint"
          "  FROM rollcall.escalation WHERE raised_by_level = $1::smallint AND published_at IS NULL"
          " ORDER BY id LIMIT 2000 FOR UPDATE SKIP LOCKED",
        1, p, err, sizeof err);
    if (!res)
        goto rollback;
    n = PQntuples(res);
    if (n == 0) {
        rc_pg_rollback(d->pg, NULL, 0);
        goto done;
    }
    dl = calloc((size_t)n, sizeof *dl);
    if (!dl)
        goto rollback;
    for (int i = 0; i < n; i++) {
        json_t *o;
        char *text, t1[40], t2[40];
        const char *unit = PQgetvalue(res, i, 1);
        if (reminders) {
            desk_fmt_time(strtoll(PQgetvalue(res, i, 5), NULL, 10), t1);
            desk_fmt_time(strtoll(PQgetvalue(res, i, 6), NULL, 10), t2);
            o = json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:I, s:s, s:s}", "type", "reminder",
                          "id", (json_int_t)strtoll(PQgetvalue(res, i, 0), NULL, 10),
                          "unit_code", unit, "period", PQgetvalue(res, i, 2),
                          "asked_by", PQgetvalue(res, i, 3), "asked_by_level", d->ctx->name,
                          "minutes_before", (json_int_t)atoi(PQgetvalue(res, i, 4)),
                          "deadline", t1, "reminded_at", t2);
        } else {
            desk_fmt_time(strtoll(PQgetvalue(res, i, 6), NULL, 10), t2);
            o = json_pack("{s:s, s:I, s:s, s:s, s:s, s:I, s:s, s:s, s:s}", "type", "escalation",
                          "id", (json_int_t)strtoll(PQgetvalue(res, i, 0), NULL, 10),
                          "unit_code", unit, "period", PQgetvalue(res, i, 2),
                          "rule", PQgetvalue(res, i, 3),
                          "value", (json_int_t)strtoll(PQgetvalue(res, i, 4), NULL, 10),
                          "raised_to_level", rc_level_name(atoi(PQgetvalue(res, i, 5))),
                          "raised_by_level", d->ctx->name, "raised_at", t2);
        }
        text = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (text && rc_producer_send(d->producer, topic, RD_KAFKA_PARTITION_UA, unit, strlen(unit),
                                     text, strlen(text), &dl[i], 5000) == 0)
            dl[i].sent = true;
        free(text);
    }
    rc_producer_flush(d->producer, d->cfg->flush_timeout_ms);
    for (int i = 0; i < n; i++)
        if (dl[i].ok)
            rc_sqlarr_text(&ids, PQgetvalue(res, i, 0));
    if (ids.n > 0) {
        const char *q[1] = {rc_sqlarr_get(&ids)};
        if (!q[0])
            goto rollback;
        upd = rc_pg_exec_params(d->pg, reminders
            ? "UPDATE rollcall.reminder SET published_at = now() WHERE id = ANY($1::bigint[])"
            : "UPDATE rollcall.escalation SET published_at = now() WHERE id = ANY($1::bigint[])",
            1, q, err, sizeof err);
        if (!upd)
            goto rollback;
    }
    if (rc_pg_commit(d->pg, err, sizeof err) < 0)
        goto failed;
    if (reminders)
        rc_counter_add(d->ctx->m.reminders, (double)ids.n);
    if (ids.n < (size_t)n)
        rc_warn("%zu of %d %s not delivered (retried later)", (size_t)n - ids.n, n, topic);
    goto done;
rollback:
    rc_pg_rollback(d->pg, NULL, 0);
failed:
    rc_warn("publishing %s failed (retried later): %s", topic, err);
done:
    PQclear(res);
    PQclear(upd);
    free(dl);
    rc_sqlarr_free(&ids);
}

/* How many of the level's reminders (reminder_min, earliest first) are due
 * by now for period day. */
static int reminders_due(const desk *d, int32_t day, int64_t now)
{
    int64_t deadline = rc_level_deadline_us(day, d->deadline_min);
    int due = 0;
    while ((size_t)due < d->nreminders && deadline - (int64_t)d->reminder_min[due] * 60000000 <= now)
        due++;
    return due;
}

/* Reminds the missing children of units whose reminder time has come. */
void desk_remind(desk *d)
{
    rc_sqlarr parts, ru, rp, rby, rmin, rdl, fu, fp, fk;
    PGresult *res = NULL, *ins = NULL;
    rc_sqlarr wdays, wdue;
    char err[512], level[4], at[40];
    int64_t now = rc_clock_now(d->ctx->clock);
    int32_t first_open, last_due;

    if (d->nreminders == 0)
        return;
    rc_sqlarr_init(&parts); rc_sqlarr_init(&ru); rc_sqlarr_init(&rp); rc_sqlarr_init(&rby); rc_sqlarr_init(&rmin);
    rc_sqlarr_init(&rdl); rc_sqlarr_init(&fu); rc_sqlarr_init(&fp); rc_sqlarr_init(&fk);
    rc_sqlarr_init(&wdays); rc_sqlarr_init(&wdue);
    if (!desk_any_assigned(d, &parts))
        goto done;
    /* Periods whose deadline is still ahead, and whose earliest reminder
     * time has come. */
    first_open = rc_level_last_closed_period(now, d->deadline_min) + 1;
    last_due = rc_level_last_closed_period(now, d->deadline_min - d->reminder_min[0]);
    if (last_due < first_open)
        goto done;
    /* Per period, how many reminders are due by now: only units with fewer
     * done are read (filing_remind_idx), not every unit still waiting. */
    for (int32_t day = first_open; day <= last_due; day++) {
        int due = reminders_due(d, day, now);
        if (due == 0)
            continue;
        char pd[11];
        rc_period_format(day, pd);
        rc_sqlarr_text(&wdays, pd);
        rc_sqlarr_int(&wdue, due);
    }
    if (wdays.n == 0)
        goto done;
    snprintf(level, sizeof level, "%d", d->ctx->level);
    desk_fmt_time(now, at);
    const char *p[4] = {level, rc_sqlarr_get(&parts), rc_sqlarr_get(&wdays), rc_sqlarr_get(&wdue)};
    res = rc_pg_exec_params(d->pg,
        "SELECT f.unit_code, f.period::text, f.live_payload, f.reminders_done"
        "  FROM unnest($3::date[], $4::int[]) AS w(period, due)"
        "  JOIN rollcall.filing f ON f.level = $1::smallint AND f.period = w.period"
        "   AND f.reminders_done < w.due AND NOT f.live_complete"
        " WHERE f.source_partition = ANY($2::int[])"
        " ORDER BY f.period, f.unit_code LIMIT 2000",
        4, p, err, sizeof err);
    if (!res)
        goto failed;
    for (int i = 0; i < PQntuples(res); i++) {
        const char *unit = PQgetvalue(res, i, 0), *period = PQgetvalue(res, i, 1);
        int done = atoi(PQgetvalue(res, i, 3)), due = 0;
        int32_t day;
        int64_t deadline;
        size_t blen;
        unsigned char *b;
        Rollcall__Report *agg;
        rc_errors errs = {0};
        char dl[40];

        if (rc_period_parse(period, &day) < 0)
            continue;
        deadline = rc_level_deadline_us(day, d->deadline_min);
        due = reminders_due(d, day, now);
        if (due <= done)
            continue;
        b = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 2), &blen);
        agg = b ? rc_report_unpack(b, blen, &errs) : NULL;
        PQfreemem(b);
        if (!agg)
            continue;
        desk_fmt_time(deadline, dl);
        for (size_t k = 0; agg->completeness && k < agg->completeness->n_missing; k++) {
            rc_sqlarr_text(&ru, agg->completeness->missing[k]);
            rc_sqlarr_text(&rp, period);
            rc_sqlarr_text(&rby, unit);
            rc_sqlarr_int(&rmin, d->reminder_min[due - 1]);
            rc_sqlarr_text(&rdl, dl);
        }
        rc_info("reminding missing children unit=%s period=%s missing=%zu minutes_before=%d", unit,
                period, agg->completeness ? agg->completeness->n_missing : 0, d->reminder_min[due - 1]);
        rc_report_free(agg);
        rc_sqlarr_text(&fu, unit);
        rc_sqlarr_text(&fp, period);
        rc_sqlarr_int(&fk, due);
    }
    if (fu.n == 0)
        goto done;
    const char *q[10] = {rc_sqlarr_get(&ru), rc_sqlarr_get(&rp), rc_sqlarr_get(&rby), rc_sqlarr_get(&rmin),
                         rc_sqlarr_get(&rdl), level, at, rc_sqlarr_get(&fu), rc_sqlarr_get(&fp), rc_sqlarr_get(&fk)};
    for (int i = 0; i < 10; i++)
        if (!q[i]) {
            snprintf(err, sizeof err, "out of memory");
            goto failed;
        }
    ins = rc_pg_exec_params(d->pg,
        "WITH r AS (INSERT INTO rollcall.reminder (unit_code, period, asked_by_unit, asked_by_level,"
        "                  minutes_before, deadline, reminded_at)"
        "   SELECT u, p, b, $6::smallint, m, dl, $7::timestamptz"
        "     FROM unnest($1::text[], $2::date[], $3::text[], $4::int[], $5::timestamptz[]) AS t(u, p, b, m, dl)"
        "   ON CONFLICT (unit_code, period, asked_by_level, minutes_before) DO NOTHING RETURNING 1)"
        " UPDATE rollcall.filing AS f SET reminders_done = t.k"
        "   FROM unnest($8::text[], $9::date[], $10::int[]) AS t(u, p, k)"
        "  WHERE f.unit_code = t.u AND f.period = t.p AND f.reminders_done < t.k",
        10, q, err, sizeof err);
    if (!ins)
        goto failed;
    PQclear(ins);
    ins = NULL;
    desk_publish_pending(d, true);
    goto done;
failed:
    rc_error("reminders failed (retried next tick): %s", err);
done:
    PQclear(res);
    PQclear(ins);
    rc_sqlarr_free(&parts); rc_sqlarr_free(&ru); rc_sqlarr_free(&rp); rc_sqlarr_free(&rby); rc_sqlarr_free(&rmin);
    rc_sqlarr_free(&rdl); rc_sqlarr_free(&fu); rc_sqlarr_free(&fp); rc_sqlarr_free(&fk);
    rc_sqlarr_free(&wdays); rc_sqlarr_free(&wdue);
}
