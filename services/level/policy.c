/* The level policy (deadline, reminder times, sign-off) and the escalation
 * rules, read from rollcall.level_policy and rollcall.escalation_rule and
 * re-read when rollcall_level_config is notified. */
#include "desk.h"

static int cmp_int_desc(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x < y) - (x > y);
}

int desk_load_config(desk *d)
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

void desk_listen_config(desk *d)
{
    char err[256];
    if (rc_pg_command(d->pg, "LISTEN rollcall_level_config", err, sizeof err) < 0)
        rc_warn("LISTEN rollcall_level_config failed (policy still re-read periodically): %s", err);
}

void desk_check_notifies(desk *d)
{
    PGconn *c = rc_pg_conn(d->pg);
    PGnotify *n;

    if (!c)
        return;
    if (rc_pg_was_disconnected(d->pg)) {
        desk_listen_config(d);
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
