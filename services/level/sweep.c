/* The sweep: files what became due without a new aggregate (deadlines,
 * signatures, retries, revisions held back), for the partitions this
 * instance holds. */
#include "desk.h"

bool desk_any_assigned(const desk *d, rc_sqlarr *parts)
{
    for (int p = 0; p < MAX_PARTITIONS; p++)
        if (d->assigned[p])
            rc_sqlarr_int(parts, p);
    return parts->n > 0;
}

/* Files what became due without a new aggregate: deadlines, signatures,
 * retries, and changes held back by revise_every.  Returns the number of
 * rows looked at, -1 on error. */
int desk_sweep(desk *d)
{
    rc_sqlarr parts;
    PGresult *res = NULL;
    row *rows = NULL;
    char err[512], level[4], cutoff[11], limit[12], revisable[40];
    int64_t now = rc_clock_now(d->ctx->clock);
    size_t n = 0;
    int rc = -1;

    rc_sqlarr_init(&parts);
    if (!desk_any_assigned(d, &parts)) {
        rc = 0;
        goto done;
    }
    snprintf(level, sizeof level, "%d", d->ctx->level);
    rc_period_format(rc_level_last_closed_period(now, d->deadline_min), cutoff);
    snprintf(limit, sizeof limit, "%d", SWEEP_LIMIT);
    desk_fmt_time(now - (int64_t)d->cfg->revise_every_ms * 1000, revisable);
    const char *p[6] = {level, rc_sqlarr_get(&parts), cutoff, d->signoff_required ? "true" : "false", limit,
                        revisable};
    /* Two narrow questions (filing_unfiled_idx, filing_due_early_idx): days past their deadline, and
     * for later days only the rows that can be due early — the units still
     * waiting for their children are not read at every tick. */
#define SWEEP_COLUMNS                                                                       \
    "SELECT unit_code, period, live_version, live_report_id::text, live_payload,"          \
    "       filed_version IS NOT NULL, coalesce(signoff_version = live_version, false),"  \
    "       coalesce(signoff_by, ''), ready_at IS NOT NULL, source_partition, " FILED_AT_US     \
    "  FROM rollcall.filing"                                                                 \
    " WHERE level = $1::smallint AND source_partition = ANY($2::int[])"                     \
    "   AND filed_version IS DISTINCT FROM live_version"                                     \
    "   AND (filed_at IS NULL OR filed_at <= $6::timestamptz OR signoff_version = live_version)" \
    "   AND (signoff_version = live_version"                                                 \
    "        OR (ready_at IS NULL AND (live_complete OR period <= $3::date OR filed_version IS NOT NULL))" \
    "        OR (NOT $4::boolean AND (ready_at IS NOT NULL OR filed_version IS NOT NULL)))"
    res = rc_pg_exec_params(d->pg,
        "SELECT unit_code, period::text, live_version, live_report_id, live_payload, filed,"
        "       signed_current, signoff_by, ready, source_partition, filed_at FROM ("
        "  (" SWEEP_COLUMNS " AND period <= $3::date ORDER BY period, unit_code LIMIT $5::int)"
        "  UNION ALL"
        "  (" SWEEP_COLUMNS " AND period > $3::date AND " DUE_EARLY
        "   ORDER BY period, unit_code LIMIT $5::int)"
        ") AS s (unit_code, period, live_version, live_report_id, live_payload, filed,"
        "        signed_current, signoff_by, ready, source_partition, filed_at)"
        " ORDER BY period, unit_code LIMIT $5::int",
        6, p, err, sizeof err);
#undef SWEEP_COLUMNS
    if (!res)
        goto failed;
    if (PQntuples(res) == 0) {
        atomic_store(&d->ctx->daily_ok, true);   /* PostgreSQL answers: healthy again */
        rc = 0;
        goto done;
    }
    rows = calloc((size_t)PQntuples(res), sizeof *rows);
    if (!rows)
        goto done;
    for (int i = 0; i < PQntuples(res); i++) {
        row *r = &rows[n];
        size_t blen;
        char why[256];
        snprintf(r->unit, sizeof r->unit, "%s", PQgetvalue(res, i, 0));
        snprintf(r->period, sizeof r->period, "%s", PQgetvalue(res, i, 1));
        r->version = strtoll(PQgetvalue(res, i, 2), NULL, 10);
        snprintf(r->live_id, sizeof r->live_id, "%s", PQgetvalue(res, i, 3));
        r->payload_owned = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 4), &blen);
        r->filed = PQgetvalue(res, i, 5)[0] == 't';
        r->signed_current = PQgetvalue(res, i, 6)[0] == 't';
        snprintf(r->signoff_by, sizeof r->signoff_by, "%s", PQgetvalue(res, i, 7));
        r->ready = PQgetvalue(res, i, 8)[0] == 't';
        r->partition = atoi(PQgetvalue(res, i, 9));
        r->filed_at = strtoll(PQgetvalue(res, i, 10), NULL, 10);
        if (!r->payload_owned || rc_period_parse(r->period, &r->day) < 0) {
            desk_row_clear(r);
            continue;
        }
        /* PQunescapeBytea's buffer must go back through PQfreemem: copy. */
        uint8_t *copy = malloc(blen ? blen : 1);
        if (copy)
            memcpy(copy, r->payload_owned, blen);
        PQfreemem(r->payload_owned);
        r->payload_owned = copy;
        r->payload = copy;
        r->payload_len = blen;
        if (!copy || desk_decode_row(r, why, sizeof why) < 0) {
            rc_error("stored aggregate undecodable unit=%s period=%s: %s", r->unit, r->period, why);
            desk_row_clear(r);
            continue;
        }
        desk_decide(d, r, now);
        n++;
    }
    rc = PQntuples(res);
    if (desk_file_rows(d, rows, n, now, NULL, NULL, 0) == 0)
        atomic_store(&d->ctx->daily_ok, true);
    goto done;
failed:
    rc_error("sweep failed: %s", err);
    atomic_store(&d->ctx->daily_ok, false);
done:
    desk_rows_free(rows, n);
    PQclear(res);
    rc_sqlarr_free(&parts);
    return rc;
}
