/* The daily desk: consumes the rollup's live aggregates (rollups.<level>),
 * keeps the newest per (unit, period) in rollcall.filing, files snapshots of
 * them to reports.<level> — when complete, at the deadline, on a sign-off,
 * and again when the numbers change — reminds missing children before the
 * deadline and raises escalations.
 *
 * Every decision is re-derivable from rollcall.filing, so a restart resumes
 * from PostgreSQL alone: a batch's offsets are stored only after its filed
 * reports were acknowledged, and a periodic sweep files whatever is due and
 * not yet filed (a failed delivery, a deadline, a signature).  Instances of
 * one level share the partitions; each sweeps only the units of the
 * partitions it holds (filing.source_partition). */
#include "level.h"
#include "rc_dlq.h"
#include "rc_kafka.h"
#include "rc_level.h"
#include "rc_log.h"
#include "rc_report.h"
#include "rc_rule.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_PARTITIONS 256
#define MAX_RULES 64
#define MAX_REMINDERS 16
#define SWEEP_LIMIT 2000
#define PUBLISH_LIMIT 2000
#define RECOVER_EVERY_US (10LL * 1000000)  /* unpublished rows re-sent, gauges refreshed */
/* rollcall.filing.filed_at in microseconds since the epoch, 0 when never filed */
#define FILED_AT_US "coalesce((extract(epoch FROM filed_at) * 1000000)::bigint, 0)"

typedef struct delivery {
    bool sent, done, ok;
    int32_t partition;
    int64_t offset;
} delivery;

/* One unit-period under decision, from a batch or from a sweep. */
typedef struct row {
    char unit[13];
    char period[11];
    int32_t day;
    int64_t version;
    char live_id[40];
    Rollcall__Report *agg;      /* owned */
    const uint8_t *payload;     /* the aggregate as consumed (batch: borrowed from the message) */
    size_t payload_len;
    uint8_t *payload_owned;     /* sweep: decoded from PostgreSQL */
    int partition;
    size_t seq;                 /* batch: consumption order, the last word between equals */
    bool updated;               /* batch: the upsert took it (newer than what was stored) */
    /* state from rollcall.filing */
    bool filed;
    bool ready;
    bool signed_current;
    int64_t filed_at;           /* the last filing, microseconds since the epoch (0: never) */
    char signoff_by[128];
    /* decision */
    rc_file_action action;
    rc_file_reason reason;
    bool revised;
    bool past_deadline;
    char report_id[37];
    int kind;
    delivery dlv;
} row;

typedef struct escal {
    char unit[13];
    char period[11];
    const char *rule;
    int64_t value;
    int raise_to;
} escal;

typedef struct desk {
    level_ctx *ctx;
    const level_cfg *cfg;
    rc_pg *pg;
    rc_consumer *consumer;
    rc_producer *producer;
    char topic_in[32];
    char topic_out[32];
    bool assigned[MAX_PARTITIONS];
    /* policy and rules, reloaded on NOTIFY rollcall_level_config */
    int deadline_min;
    bool signoff_required;
    int reminder_min[MAX_REMINDERS];    /* descending */
    size_t nreminders;
    rc_rule rules[MAX_RULES];
    size_t nrules;
    int maxdays;                        /* history the zero/copied rules need */
    int64_t loaded_at;
    bool reload;
    /* the batch being collected */
    rd_kafka_message_t **msgs;
    size_t nmsgs, capmsgs;
    /* escalations found while processing, inserted with the next transaction */
    escal *esc;
    size_t nesc, capesc;
    int64_t last_tick, last_recover;
} desk;

/* ------------------------------------------------------------------ helpers */

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

static void fmt_time(int64_t us, char out[40])
{
    rc_time_format_rfc3339(us, out);
}

static bool past_deadline(const desk *d, int32_t day, int64_t now)
{
    return day <= rc_level_last_closed_period(now, d->deadline_min);
}

static int cmp_int_desc(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x < y) - (x > y);
}

static void row_clear(row *r)
{
    rc_report_free(r->agg);
    free(r->payload_owned);
    memset(r, 0, sizeof *r);
}

static void rows_free(row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++)
        row_clear(&rows[i]);
    free(rows);
}

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
static int insert_escalations(desk *d, int64_t now, char *err, size_t errlen)
{
    sqlarr units, periods, rules, values, raise;
    PGresult *res = NULL;
    char level[4], at[40];
    const char *p[7];
    int rc = -1;

    if (d->nesc == 0)
        return 0;
    sqlarr_init(&units);
    sqlarr_init(&periods);
    sqlarr_init(&rules);
    sqlarr_init(&values);
    sqlarr_init(&raise);
    for (size_t i = 0; i < d->nesc; i++) {
        sqlarr_text(&units, d->esc[i].unit);
        sqlarr_text(&periods, d->esc[i].period);
        sqlarr_text(&rules, d->esc[i].rule);
        sqlarr_int(&values, d->esc[i].value);
        sqlarr_int(&raise, d->esc[i].raise_to);
    }
    snprintf(level, sizeof level, "%d", d->ctx->level);
    fmt_time(now, at);
    p[0] = sqlarr_get(&units);
    p[1] = sqlarr_get(&periods);
    p[2] = sqlarr_get(&rules);
    p[3] = sqlarr_get(&values);
    p[4] = sqlarr_get(&raise);
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
    sqlarr_free(&units);
    sqlarr_free(&periods);
    sqlarr_free(&rules);
    sqlarr_free(&values);
    sqlarr_free(&raise);
    return rc;
}

/* ---------------------------------------------------------- policy & rules */

static int load_config(desk *d)
{
    char err[512], level[4];
    const char *p[1] = {level};
    PGresult *res = NULL;
    rc_rule rules[MAX_RULES];
    size_t nrules = 0;
    int maxdays = 0;

    snprintf(level, sizeof level, "%d", d->ctx->level);
    res = rc_pg_exec_params(d->pg,
                            "SELECT (extract(hour FROM deadline) * 60 + extract(minute FROM deadline))::int,"
                            "       signoff_required, array_to_string(reminder_minutes, ',')"
                            "  FROM rollcall.level_policy WHERE level = $1::smallint",
                            1, p, err, sizeof err);
    if (!res) {
        rc_error("level policy not read (keeping the previous one): %s", err);
        return -1;
    }
    if (PQntuples(res) != 1) {
        rc_error("no row for level %d in rollcall.level_policy (keeping the previous policy)",
                 d->ctx->level);
        PQclear(res);
        return -1;
    }
    d->deadline_min = atoi(PQgetvalue(res, 0, 0));
    d->signoff_required = PQgetvalue(res, 0, 1)[0] == 't';
    d->nreminders = 0;
    for (char *s = PQgetvalue(res, 0, 2), *end; *s && d->nreminders < MAX_REMINDERS; s = end) {
        long m = strtol(s, &end, 10);
        if (end == s)
            break;
        if (m > 0 && m < 24 * 60)
            d->reminder_min[d->nreminders++] = (int)m;
        while (*end == ',')
            end++;
    }
    qsort(d->reminder_min, d->nreminders, sizeof d->reminder_min[0], cmp_int_desc);
    PQclear(res);

    res = rc_pg_exec(d->pg,
                     "SELECT rule, kind, coalesce(indicator, ''), coalesce(op, ''), threshold, days,"
                     "       array_to_string(levels, ','), coalesce(raise_to, 0)"
                     "  FROM rollcall.escalation_rule WHERE enabled ORDER BY rule",
                     err, sizeof err);
    if (!res) {
        rc_error("escalation rules not read (keeping the previous ones): %s", err);
        return -1;
    }
    for (int i = 0; i < PQntuples(res) && nrules < MAX_RULES; i++) {
        rc_rule *r = &rules[nrules];
        char why[256];
        memset(r, 0, sizeof *r);
        snprintf(r->name, sizeof r->name, "%s", PQgetvalue(res, i, 0));
        if (rc_rule_kind_parse(PQgetvalue(res, i, 1), &r->kind) < 0) {
            rc_warn("escalation rule skipped: unknown kind rule=%s kind=%s", r->name, PQgetvalue(res, i, 1));
            continue;
        }
        snprintf(r->indicator, sizeof r->indicator, "%s", PQgetvalue(res, i, 2));
        r->threshold = strtoll(PQgetvalue(res, i, 4), NULL, 10);
        r->days = atoi(PQgetvalue(res, i, 5));
        for (char *s = PQgetvalue(res, i, 6), *end; *s; s = end) {
            long lv = strtol(s, &end, 10);
            if (end == s)
                break;
            if (lv > 0 && lv < 32)
                r->levels |= 1u << lv;
            while (*end == ',')
                end++;
        }
        r->raise_to = atoi(PQgetvalue(res, i, 7));
        if (rc_rule_check(r, PQgetvalue(res, i, 3), why, sizeof why) < 0) {
            rc_warn("escalation rule skipped: %s", why);
            continue;
        }
        if (!rc_rule_applies(r, d->ctx->level))
            continue;
        if (r->kind == RC_RULE_COPIED && r->days - 1 > maxdays)
            maxdays = r->days - 1;
        if (r->kind == RC_RULE_ZERO_AFTER && maxdays < 1)
            maxdays = 1;
        nrules++;
    }
    PQclear(res);
    memcpy(d->rules, rules, nrules * sizeof rules[0]);
    d->nrules = nrules;
    d->maxdays = maxdays;
    d->loaded_at = rc_now_us();
    d->reload = false;
    rc_info("policy loaded level=%s deadline=%02d:%02d signoff_required=%s reminders=%zu rules=%zu",
            d->ctx->name, d->deadline_min / 60, d->deadline_min % 60,
            d->signoff_required ? "yes" : "no", d->nreminders, d->nrules);
    return 0;
}

static void listen_config(desk *d)
{
    char err[256];
    if (rc_pg_command(d->pg, "LISTEN rollcall_level_config", err, sizeof err) < 0)
        rc_warn("LISTEN rollcall_level_config failed (policy still re-read periodically): %s", err);
}

static void check_notifies(desk *d)
{
    PGconn *c = rc_pg_conn(d->pg);
    PGnotify *n;

    if (!c)
        return;
    if (rc_pg_was_disconnected(d->pg)) {
        listen_config(d);
        d->reload = true;
        c = rc_pg_conn(d->pg);
        if (!c)
            return;
    }
    if (PQconsumeInput(c) == 0)
        return;
    while ((n = PQnotifies(c)) != NULL) {
        d->reload = true;
        PQfreemem(n);
    }
}

/* ------------------------------------------------------------------- filing */

static int decode_row(row *r, char *err, size_t errlen)
{
    rc_errors errs = {0};

    r->agg = rc_report_unpack(r->payload, r->payload_len, &errs);
    if (!r->agg) {
        rc_errors_format(&errs, err, errlen);
        return -1;
    }
    return 0;
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
    sqlarr units;
    PGresult *res = NULL;
    char from[11], to[11], err[512];
    int32_t lo = INT32_MAX, hi = INT32_MIN;
    const char *p[3];
    hist_entry *h = NULL;
    size_t nh = 0;
    int rc = -1;

    *out = NULL;
    *nout = 0;
    sqlarr_init(&units);
    for (size_t i = 0; i < n; i++) {
        if (!rows[i].dlv.ok)
            continue;
        sqlarr_text(&units, rows[i].unit);
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
    p[0] = sqlarr_get(&units);
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
    sqlarr_free(&units);
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
static void rules_on_filing(desk *d, row *rows, size_t n)
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

static void rules_on_live(desk *d, const row *r)
{
    int64_t value;

    for (size_t k = 0; k < d->nrules; k++)
        if (d->rules[k].kind == RC_RULE_THRESHOLD && rc_rule_eval_threshold(&d->rules[k], r->agg, &value))
            add_escal(d, r->unit, r->period, &d->rules[k], value);
}

static void decide(desk *d, row *r, int64_t now)
{
    rc_filing_state s;

    r->past_deadline = past_deadline(d, r->day, now);
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
    sqlarr fu, fp, fv, fid, frev, fby, freason, fkind, fexp, frep, fmiss, fpart, foff;
    sqlarr wu, wp, wreason;
    PGresult *res = NULL;
    char at[40], level[4];
    int rc = -1;

    sqlarr_init(&fu); sqlarr_init(&fp); sqlarr_init(&fv); sqlarr_init(&fid); sqlarr_init(&frev);
    sqlarr_init(&fby); sqlarr_init(&freason); sqlarr_init(&fkind); sqlarr_init(&fexp);
    sqlarr_init(&frep); sqlarr_init(&fmiss); sqlarr_init(&fpart); sqlarr_init(&foff);
    sqlarr_init(&wu); sqlarr_init(&wp); sqlarr_init(&wreason);
    fmt_time(now, at);
    snprintf(level, sizeof level, "%d", d->ctx->level);
    for (size_t i = 0; i < n; i++) {
        row *r = &rows[i];
        if (r->action == RC_FILE_NOW && r->dlv.ok) {
            const Rollcall__Completeness *c = r->agg->completeness;
            size_t m = 0, cap = 1;
            char *miss;
            sqlarr_text(&fu, r->unit);
            sqlarr_text(&fp, r->period);
            sqlarr_int(&fv, r->version);
            sqlarr_text(&fid, r->report_id);
            sqlarr_bool(&frev, r->revised);
            sqlarr_text(&fby, r->reason == RC_REASON_SIGNOFF && r->signoff_by[0] ? r->signoff_by
                                                                                 : d->ctx->submitter);
            sqlarr_text(&freason, rc_level_reason_name(r->reason));
            sqlarr_int(&fkind, r->kind);
            sqlarr_int(&fexp, c ? c->expected : 0);
            sqlarr_int(&frep, c ? c->reported : 0);
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
            sqlarr_text(&fmiss, miss);
            free(miss);
            sqlarr_int(&fpart, r->dlv.partition);
            sqlarr_int(&foff, r->dlv.offset);
        } else if (r->action == RC_FILE_WAIT || (r->action == RC_FILE_NOW && !r->ready)) {
            /* ready (complete or deadline) but not filed: waiting for a
             * signature, or a delivery that failed and will be retried */
            sqlarr_text(&wu, r->unit);
            sqlarr_text(&wp, r->period);
            sqlarr_text(&wreason, r->reason == RC_REASON_COMPLETE ? "complete" : "deadline");
        }
    }
    if (fu.n > 0) {
        const char *p[16] = {sqlarr_get(&fu), sqlarr_get(&fp), sqlarr_get(&fv), sqlarr_get(&fid),
                             sqlarr_get(&frev), sqlarr_get(&fby), sqlarr_get(&freason),
                             sqlarr_get(&fkind), sqlarr_get(&fexp), sqlarr_get(&frep),
                             sqlarr_get(&fmiss), sqlarr_get(&fpart), sqlarr_get(&foff), at, level,
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
        const char *p[4] = {sqlarr_get(&wu), sqlarr_get(&wp), sqlarr_get(&wreason), at};
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
    sqlarr_free(&fu); sqlarr_free(&fp); sqlarr_free(&fv); sqlarr_free(&fid); sqlarr_free(&frev);
    sqlarr_free(&fby); sqlarr_free(&freason); sqlarr_free(&fkind); sqlarr_free(&fexp);
    sqlarr_free(&frep); sqlarr_free(&fmiss); sqlarr_free(&fpart); sqlarr_free(&foff);
    sqlarr_free(&wu); sqlarr_free(&wp); sqlarr_free(&wreason);
    return rc;
}

/* Files the rows decided RC_FILE_NOW, waits for the broker's
 * acknowledgements, then records everything in one transaction (plus the
 * batch's offsets when given, and only if every filing was delivered).
 * Returns 0, or -1 (nothing recorded; the sweep files what is still due). */
static int file_rows(desk *d, row *rows, size_t n, int64_t now, const int32_t *parts,
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
    rules_on_filing(d, rows, n);

    if (rc_pg_begin(d->pg, err, sizeof err) < 0)
        goto failed;
    if (mark_rows(d, rows, n, now, err, sizeof err) < 0 ||
        insert_escalations(d, now, err, sizeof err) < 0)
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

/* ----------------------------------------------------------------- batches */

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
    if (decode_row(r, why, whylen) < 0)
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
    sqlarr u, p, v, id, pay, exp, rep, miss, comp, part;
    PGresult *res = NULL;
    char at[40], level[4];
    int rc = -1;

    sqlarr_init(&u); sqlarr_init(&p); sqlarr_init(&v); sqlarr_init(&id); sqlarr_init(&pay);
    sqlarr_init(&exp); sqlarr_init(&rep); sqlarr_init(&miss); sqlarr_init(&comp); sqlarr_init(&part);
    for (size_t i = 0; i < n; i++) {
        const Rollcall__Completeness *c = rows[i].agg->completeness;
        sqlarr_text(&u, rows[i].unit);
        sqlarr_text(&p, rows[i].period);
        sqlarr_int(&v, rows[i].version);
        sqlarr_text(&id, rows[i].live_id);
        sqlarr_bytea(&pay, rows[i].payload, rows[i].payload_len);
        sqlarr_int(&exp, c->expected);
        sqlarr_int(&rep, c->reported);
        sqlarr_int(&miss, c->n_missing ? (long long)c->n_missing
                                       : (c->expected > c->reported ? c->expected - c->reported : 0));
        sqlarr_bool(&comp, rc_level_aggregate_complete(rows[i].agg));
        sqlarr_int(&part, rows[i].partition);
    }
    fmt_time(now, at);
    snprintf(level, sizeof level, "%d", d->ctx->level);
    const char *prm[12] = {sqlarr_get(&u), sqlarr_get(&p), sqlarr_get(&v), sqlarr_get(&id),
                           sqlarr_get(&pay), sqlarr_get(&exp), sqlarr_get(&rep), sqlarr_get(&miss),
                           sqlarr_get(&comp), sqlarr_get(&part), level, at};
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
    sqlarr_free(&u); sqlarr_free(&p); sqlarr_free(&v); sqlarr_free(&id); sqlarr_free(&pay);
    sqlarr_free(&exp); sqlarr_free(&rep); sqlarr_free(&miss); sqlarr_free(&comp); sqlarr_free(&part);
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
            row_clear(&rows[n]);
            continue;
        }
        rc_counter_inc(d->ctx->m.consumed);
        n++;
    }
    /* Coalesce: per (unit, period) only the newest version matters. */
    qsort(rows, n, sizeof *rows, cmp_row);
    for (size_t i = 0; i < n; i++) {
        if (i + 1 < n && cmp_unit_period(&rows[i], &rows[i + 1]) == 0) {
            row_clear(&rows[i]);
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
            rules_on_live(d, &rows[i]);
    if (insert_escalations(d, now, err, sizeof err) < 0)
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
            decide(d, &rows[i], now);
        else
            rows[i].action = RC_FILE_NONE;
    }
    /* A failed filing round still leaves the newest aggregates stored: the
     * sweep files them, and the offsets are stored with a later batch. */
    if (file_rows(d, rows, n, now, parts, offs, nparts) == 0) {
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
    rows_free(rows, d->nmsgs);
    d->nesc = 0;
    return rc;
}

/* ------------------------------------------------------------------ sweeps */

static bool any_assigned(const desk *d, sqlarr *parts)
{
    for (int p = 0; p < MAX_PARTITIONS; p++)
        if (d->assigned[p])
            sqlarr_int(parts, p);
    return parts->n > 0;
}

/* The rows of rollcall.filing that can be due before their deadline
 * (complete, filed before, ready or signed): with filed_version IS DISTINCT
 * FROM live_version, the predicate of migration 005's filing_due_early_idx,
 * which a query must state for PostgreSQL to use that index. */
#define DUE_EARLY                                                                     \
    "(live_complete OR filed_version IS NOT NULL OR ready_at IS NOT NULL"             \
    " OR signoff_version IS NOT NULL)"

/* Files what became due without a new aggregate: deadlines, signatures,
 * retries, and changes held back by revise_every.  Returns the number of
 * rows looked at, -1 on error. */
static int sweep(desk *d)
{
    sqlarr parts;
    PGresult *res = NULL;
    row *rows = NULL;
    char err[512], level[4], cutoff[11], limit[12], revisable[40];
    int64_t now = rc_clock_now(d->ctx->clock);
    size_t n = 0;
    int rc = -1;

    sqlarr_init(&parts);
    if (!any_assigned(d, &parts)) {
        rc = 0;
        goto done;
    }
    snprintf(level, sizeof level, "%d", d->ctx->level);
    rc_period_format(rc_level_last_closed_period(now, d->deadline_min), cutoff);
    snprintf(limit, sizeof limit, "%d", SWEEP_LIMIT);
    fmt_time(now - (int64_t)d->cfg->revise_every_ms * 1000, revisable);
    const char *p[6] = {level, sqlarr_get(&parts), cutoff, d->signoff_required ? "true" : "false", limit,
                        revisable};
    /* Two narrow questions (migration 005): days past their deadline, and
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
            row_clear(r);
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
        if (!copy || decode_row(r, why, sizeof why) < 0) {
            rc_error("stored aggregate undecodable unit=%s period=%s: %s", r->unit, r->period, why);
            row_clear(r);
            continue;
        }
        decide(d, r, now);
        n++;
    }
    rc = PQntuples(res);
    if (file_rows(d, rows, n, now, NULL, NULL, 0) == 0)
        atomic_store(&d->ctx->daily_ok, true);
    goto done;
failed:
    rc_error("sweep failed: %s", err);
    atomic_store(&d->ctx->daily_ok, false);
done:
    rows_free(rows, n);
    PQclear(res);
    sqlarr_free(&parts);
    return rc;
}

/* Publishes this level's unpublished reminders or escalations (rows locked
 * while they are sent, so two instances never send the same row). */
static void publish_pending(desk *d, bool reminders)
{
    PGresult *res = NULL, *upd = NULL;
    char err[512], level[4];
    delivery *dl = NULL;
    sqlarr ids;
    const char *topic = reminders ? "reminders" : "escalations";
    int n;

    sqlarr_init(&ids);
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
            fmt_time(strtoll(PQgetvalue(res, i, 5), NULL, 10), t1);
            fmt_time(strtoll(PQgetvalue(res, i, 6), NULL, 10), t2);
            o = json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:I, s:s, s:s}", "type", "reminder",
                          "id", (json_int_t)strtoll(PQgetvalue(res, i, 0), NULL, 10),
                          "unit_code", unit, "period", PQgetvalue(res, i, 2),
                          "asked_by", PQgetvalue(res, i, 3), "asked_by_level", d->ctx->name,
                          "minutes_before", (json_int_t)atoi(PQgetvalue(res, i, 4)),
                          "deadline", t1, "reminded_at", t2);
        } else {
            fmt_time(strtoll(PQgetvalue(res, i, 6), NULL, 10), t2);
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
            sqlarr_text(&ids, PQgetvalue(res, i, 0));
    if (ids.n > 0) {
        const char *q[1] = {sqlarr_get(&ids)};
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
    sqlarr_free(&ids);
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
static void remind(desk *d)
{
    sqlarr parts, ru, rp, rby, rmin, rdl, fu, fp, fk;
    PGresult *res = NULL, *ins = NULL;
    sqlarr wdays, wdue;
    char err[512], level[4], at[40];
    int64_t now = rc_clock_now(d->ctx->clock);
    int32_t first_open, last_due;

    if (d->nreminders == 0)
        return;
    sqlarr_init(&parts); sqlarr_init(&ru); sqlarr_init(&rp); sqlarr_init(&rby); sqlarr_init(&rmin);
    sqlarr_init(&rdl); sqlarr_init(&fu); sqlarr_init(&fp); sqlarr_init(&fk);
    sqlarr_init(&wdays); sqlarr_init(&wdue);
    if (!any_assigned(d, &parts))
        goto done;
    /* Periods whose deadline is still ahead, and whose earliest reminder
     * time has come. */
    first_open = rc_level_last_closed_period(now, d->deadline_min) + 1;
    last_due = rc_level_last_closed_period(now, d->deadline_min - d->reminder_min[0]);
    if (last_due < first_open)
        goto done;
    /* Per period, how many reminders are due by now: only units with fewer
     * done are read (migration 005's index), not every unit still waiting. */
    for (int32_t day = first_open; day <= last_due; day++) {
        int due = reminders_due(d, day, now);
        if (due == 0)
            continue;
        char pd[11];
        rc_period_format(day, pd);
        sqlarr_text(&wdays, pd);
        sqlarr_int(&wdue, due);
    }
    if (wdays.n == 0)
        goto done;
    snprintf(level, sizeof level, "%d", d->ctx->level);
    fmt_time(now, at);
    const char *p[4] = {level, sqlarr_get(&parts), sqlarr_get(&wdays), sqlarr_get(&wdue)};
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
        fmt_time(deadline, dl);
        for (size_t k = 0; agg->completeness && k < agg->completeness->n_missing; k++) {
            sqlarr_text(&ru, agg->completeness->missing[k]);
            sqlarr_text(&rp, period);
            sqlarr_text(&rby, unit);
            sqlarr_int(&rmin, d->reminder_min[due - 1]);
            sqlarr_text(&rdl, dl);
        }
        rc_info("reminding missing children unit=%s period=%s missing=%zu minutes_before=%d", unit,
                period, agg->completeness ? agg->completeness->n_missing : 0, d->reminder_min[due - 1]);
        rc_report_free(agg);
        sqlarr_text(&fu, unit);
        sqlarr_text(&fp, period);
        sqlarr_int(&fk, due);
    }
    if (fu.n == 0)
        goto done;
    const char *q[10] = {sqlarr_get(&ru), sqlarr_get(&rp), sqlarr_get(&rby), sqlarr_get(&rmin),
                         sqlarr_get(&rdl), level, at, sqlarr_get(&fu), sqlarr_get(&fp), sqlarr_get(&fk)};
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
    publish_pending(d, true);
    goto done;
failed:
    rc_error("reminders failed (retried next tick): %s", err);
done:
    PQclear(res);
    PQclear(ins);
    sqlarr_free(&parts); sqlarr_free(&ru); sqlarr_free(&rp); sqlarr_free(&rby); sqlarr_free(&rmin);
    sqlarr_free(&rdl); sqlarr_free(&fu); sqlarr_free(&fp); sqlarr_free(&fk);
    sqlarr_free(&wdays); sqlarr_free(&wdue);
}

static void refresh_gauges(desk *d)
{
    char err[256], level[4];
    const char *p[1] = {level};
    PGresult *res;

    /* Nothing waits for a signature where none is required. */
    if (!d->signoff_required) {
        rc_gauge_set(d->ctx->m.awaiting_signoff, 0);
        return;
    }
    /* rollcall.v_pending_signoff for this level, read through the index
     * of the rows that can be due (migration 005) rather than the view. */
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

    check_notifies(d);
    if (d->reload || wall - d->loaded_at >= (int64_t)d->cfg->reload_ms * 1000)
        load_config(d);
    /* A day's deadline can make thousands of units due at once: a few
     * pages per tick, so that new aggregates are not kept waiting. */
    for (int page = 0; page < 10 && atomic_load(&d->ctx->running); page++)
        if (sweep(d) < SWEEP_LIMIT)
            break;
    remind(d);
    publish_pending(d, false);
    if (wall - d->last_recover >= RECOVER_EVERY_US) {
        publish_pending(d, true);
        refresh_gauges(d);
        d->last_recover = wall;
    }
    d->last_tick = wall;
}

/* --------------------------------------------------------------- consumer */

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

/* Collects up to batch_max messages, waiting at most until the next tick
 * when idle and at most batch_ms once the first message is in.  Returns -1
 * on a fatal consumer error. */
static int collect(desk *d)
{
    int64_t start = 0, until_tick;
    rd_kafka_message_t *m;

    for (;;) {
        int64_t now = rc_now_us(), wait;
        if (d->nmsgs >= (size_t)d->cfg->batch_max)
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
    if (load_config(&d) < 0)
        goto failed;
    listen_config(&d);
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
