/* Escalations: evaluates the rules on live aggregates and on filings (with
 * the earlier days the zero/copied rules compare with) and inserts what
 * fired, once per (unit, period, rule). */
#include "desk.h"

static int add_escal(desk *d, const char *unit, const char *period, const rc_rule *rule, int64_t value)
{
    if (d->nesc == d->capesc) {
        size_t cap = d->capesc ? 2 * d->capesc : 64;
        escal *p = realloc(d->esc, cap * sizeof *p);
        if (!p)
            return -1;
        d->esc = p;
        d->capesc = cap;
    }
    escal *e = &d->esc[d->nesc++];
    snprintf(e->unit, sizeof e->unit, "%s", unit);
    snprintf(e->period, sizeof e->period, "%s", period);
    e->rule = rule->name;
    e->value = value;
    e->raise_to = rc_rule_raise_to(rule, d->ctx->level);
    return 0;
}

/* Inserts the escalations found so far (once per unit, period and rule) in
 * the caller's transaction; the list is emptied either way.  -1 on error. */
int desk_insert_escalations(desk *d, int64_t now, char *err, size_t errlen)
{
    rc_sqlarr units, periods, rules, values, raise;
    PGresult *res = NULL;
    char level[4], at[40];
    const char *p[7];
    int rc = -1;

    if (d->nesc == 0)
        return 0;
    rc_sqlarr_init(&units);
    rc_sqlarr_init(&periods);
    rc_sqlarr_init(&rules);
    rc_sqlarr_init(&values);
    rc_sqlarr_init(&raise);
    for (size_t i = 0; i < d->nesc; i++) {
        rc_sqlarr_text(&units, d->esc[i].unit);
        rc_sqlarr_text(&periods, d->esc[i].period);
        rc_sqlarr_text(&rules, d->esc[i].rule);
        rc_sqlarr_int(&values, d->esc[i].value);
        rc_sqlarr_int(&raise, d->esc[i].raise_to);
    }
    snprintf(level, sizeof level, "%d", d->ctx->level);
    desk_fmt_time(now, at);
    p[0] = rc_sqlarr_get(&units);
    p[1] = rc_sqlarr_get(&periods);
    p[2] = rc_sqlarr_get(&rules);
    p[3] = rc_sqlarr_get(&values);
    p[4] = rc_sqlarr_get(&raise);
    p[5] = level;
    p[6] = at;
    if (!p[0] || !p[1] || !p[2] || !p[3] || !p[4]) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    res = rc_pg_exec_params(d->pg,
                            "INSERT INTO rollcall.escalation"
                            " (unit_code, period, rule, value, raised_to_level, raised_by_level, raised_at)"
                            " SELECT u, p, r, v, t, $6::smallint, $7::timestamptz"
                            "   FROM unnest($1::text[], $2::date[], $3::text[], $4::bigint[], $5::smallint[])"
                            "     AS x(u, p, r, v, t)"
                            " ON CONFLICT (unit_code, period, rule) DO NOTHING"
                            " RETURNING unit_code, period::text, rule, value, raised_to_level",
                            7, p, err, errlen);
    if (!res)
        goto done;
    for (int i = 0; i < PQntuples(res); i++) {
        rc_info("escalation raised unit=%s period=%s rule=%s value=%s raised_to=%s",
                PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
                PQgetvalue(res, i, 3), rc_level_name(atoi(PQgetvalue(res, i, 4))));
        rc_counter_inc(d->ctx->m.escalations);
    }
    rc = 0;
done:
    d->nesc = 0;
    PQclear(res);
    rc_sqlarr_free(&units);
    rc_sqlarr_free(&periods);
    rc_sqlarr_free(&rules);
    rc_sqlarr_free(&values);
    rc_sqlarr_free(&raise);
    return rc;
}

/* Loads the earlier days the zero/copied rules compare with: rows of the
 * same units for the periods before.  *hist owns the reports. */
typedef struct hist_entry { char unit[13]; int32_t day; Rollcall__Report *agg; } hist_entry;

static int cmp_hist(const void *a, const void *b)
{
    const hist_entry *x = a, *y = b;
    int c = strcmp(x->unit, y->unit);
    return c ? c : (x->day > y->day) - (x->day < y->day);
}

static Rollcall__Report *hist_find(hist_entry *h, size_t n, const char *unit, int32_t day)
{
    hist_entry key;
    hist_entry *e;
    snprintf(key.unit, sizeof key.unit, "%s", unit);
    key.day = day;
    e = bsearch(&key, h, n, sizeof *h, cmp_hist);
    return e ? e->agg : NULL;
}

static int load_history(desk *d, row *rows, size_t n, hist_entry **out, size_t *nout)
{
    rc_sqlarr units;
    PGresult *res = NULL;
    char from[11], to[11], err[512];
    int32_t lo = INT32_MAX, hi = INT32_MIN;
    const char *p[3];
    hist_entry *h = NULL;
    size_t nh = 0;
    int rc = -1;

    *out = NULL;
    *nout = 0;
    rc_sqlarr_init(&units);
    for (size_t i = 0; i < n; i++) {
        if (!rows[i].dlv.ok)
            continue;
        rc_sqlarr_text(&units, rows[i].unit);
        if (rows[i].day < lo)
            lo = rows[i].day;
        if (rows[i].day > hi)
            hi = rows[i].day;
    }
    if (units.n == 0) {
        rc = 0;
        goto done;
    }
    rc_period_format(lo - d->maxdays, from);
    rc_period_format(hi - 1, to);
    p[0] = rc_sqlarr_get(&units);
    p[1] = from;
    p[2] = to;
    if (!p[0])
        goto done;
    res = rc_pg_exec_params(d->pg,
                            "SELECT unit_code, period::text, live_payload FROM rollcall.filing"
                            " WHERE unit_code = ANY($1::text[]) AND period BETWEEN $2::date AND $3::date",
                            3, p, err, sizeof err);
    if (!res) {
        rc_warn("history for the zero/copied rules not read: %s", err);
        goto done;
    }
    h = calloc((size_t)PQntuples(res) + 1, sizeof *h);
    if (!h)
        goto done;
    for (int i = 0; i < PQntuples(res); i++) {
        size_t blen;
        unsigned char *b = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 2), &blen);
        rc_errors errs = {0};
        if (!b)
            continue;
        snprintf(h[nh].unit, sizeof h[nh].unit, "%s", PQgetvalue(res, i, 0));
        if (rc_period_parse(PQgetvalue(res, i, 1), &h[nh].day) == 0)
            h[nh].agg = rc_report_unpack(b, blen, &errs);
        PQfreemem(b);
        if (h[nh].agg)
            nh++;
    }
    qsort(h, nh, sizeof *h, cmp_hist);
    *out = h;
    *nout = nh;
    h = NULL;
    rc = 0;
done:
    free(h);
    PQclear(res);
    rc_sqlarr_free(&units);
    return rc;
}

static void history_free(hist_entry *h, size_t n)
{
    for (size_t i = 0; i < n; i++)
        rc_report_free(h[i].agg);
    free(h);
}

/* Rules evaluated on what is filed: zero after observation, copied, and
 * missing children once the deadline has passed. */
void desk_rules_on_filing(desk *d, row *rows, size_t n)
{
    hist_entry *h = NULL;
    size_t nh = 0;
    const Rollcall__Report *days[64];
    int64_t value;

    if (d->nrules == 0)
        return;
    if (d->maxdays > 0)
        load_history(d, rows, n, &h, &nh);
    for (size_t i = 0; i < n; i++) {
        row *r = &rows[i];
        bool filed = r->dlv.ok;
        if (r->action == RC_FILE_NONE || !r->agg)
            continue;
        for (size_t k = 0; k < d->nrules; k++) {
            const rc_rule *rule = &d->rules[k];
            bool fires = false;
            switch (rule->kind) {
            case RC_RULE_MISSING_AFTER_DEADLINE:
                fires = rc_rule_eval_missing(rule, r->agg, r->past_deadline, &value);
                break;
            case RC_RULE_ZERO_AFTER:
                fires = filed && rc_rule_eval_zero_after(rule, r->agg,
                                                         hist_find(h, nh, r->unit, r->day - 1), &value);
                break;
            case RC_RULE_COPIED:
                if (!filed || rule->days > 64)
                    break;
                days[0] = r->agg;
                for (int j = 1; j < rule->days; j++)
                    days[j] = hist_find(h, nh, r->unit, r->day - j);
                fires = rc_rule_eval_copied(rule, days, (size_t)rule->days, &value);
                break;
            case RC_RULE_THRESHOLD:
                break;
            }
            if (fires)
                add_escal(d, r->unit, r->period, rule, value);
        }
    }
    history_free(h, nh);
}

void desk_rules_on_live(desk *d, const row *r)
{
    int64_t value;

    for (size_t k = 0; k < d->nrules; k++)
        if (d->rules[k].kind == RC_RULE_THRESHOLD && rc_rule_eval_threshold(&d->rules[k], r->agg, &value))
            add_escal(d, r->unit, r->period, &d->rules[k], value);
}
