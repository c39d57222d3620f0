/* rc_level — see rc_level.h.  Packing borrows the input's fields into a
 * shallow copy instead of editing it, so nothing here depends on how the
 * input message was allocated. */
#include "rc_level.h"
#include "rc_registry.h"
#include "rc_report.h"
#include "rc_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

static const char *const level_names[] = {"unspecified", "village", "township", "county",
                                          "prefecture", "province"};

int rc_level_parse(const char *name)
{
    if (!name)
        return 0;
    for (int i = 1; i <= 5; i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    if (name[0] >= '1' && name[0] <= '5' && name[1] == '\0')
        return name[0] - '0';
    return 0;
}

const char *rc_level_name(int level)
{
    return level >= 1 && level <= 5 ? level_names[level] : "unknown";
}

int rc_level_child(int level)
{
    switch (level) {
    case ROLLCALL__LEVEL__LEVEL_TOWNSHIP: return ROLLCALL__LEVEL__LEVEL_VILLAGE;
    case ROLLCALL__LEVEL__LEVEL_COUNTY: return ROLLCALL__LEVEL__LEVEL_TOWNSHIP;
    case ROLLCALL__LEVEL__LEVEL_PROVINCE: return ROLLCALL__LEVEL__LEVEL_COUNTY;
    default: return 0;
    }
}

int rc_level_parent(int level)
{
    return rc_code_rollup_level(level);
}

static size_t code_len(int level)
{
    switch (level) {
    case ROLLCALL__LEVEL__LEVEL_VILLAGE: return 12;
    case ROLLCALL__LEVEL__LEVEL_TOWNSHIP: return 9;
    case ROLLCALL__LEVEL__LEVEL_COUNTY: return 6;
    case ROLLCALL__LEVEL__LEVEL_PROVINCE: return 2;
    default: return 0;
    }
}

static bool all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

int rc_level_unit_of(const char *code, int level, char out[13])
{
    size_t n = code_len(level), len = code ? strlen(code) : 0;

    out[0] = '\0';
    if (n == 0 || len < n || len > 12 || !all_digits(code, len))
        return -1;
    memcpy(out, code, n);
    out[n] = '\0';
    return 0;
}

int64_t rc_level_deadline_us(int32_t day, int minutes)
{
    return (int64_t)day * RC_DAY_US - RC_TZ_OFFSET_US + (int64_t)minutes * 60 * 1000000;
}

int32_t rc_level_last_closed_period(int64_t now_us, int minutes)
{
    return rc_period_of(now_us - (int64_t)minutes * 60 * 1000000);
}

rc_file_action rc_level_decide(const rc_filing_state *s, rc_file_reason *reason, bool *revised)
{
    *revised = s->filed && s->past_deadline;
    /* An official's signature files the signed version whatever the state:
     * signing early is the official's call. */
    if (s->signed_current) {
        *reason = RC_REASON_SIGNOFF;
        return RC_FILE_NOW;
    }
    if (s->filed && s->filed_recently)
        return RC_FILE_NONE;
    if (s->filed)
        *reason = RC_REASON_REVISION;
    else if (s->complete)
        *reason = RC_REASON_COMPLETE;
    else if (s->past_deadline || s->ready)
        *reason = RC_REASON_DEADLINE;
    else
        return RC_FILE_NONE;
    return s->signoff_required ? RC_FILE_WAIT : RC_FILE_NOW;
}

const char *rc_level_reason_name(rc_file_reason reason)
{
    switch (reason) {
    case RC_REASON_COMPLETE: return "complete";
    case RC_REASON_DEADLINE: return "deadline";
    case RC_REASON_SIGNOFF: return "signoff";
    case RC_REASON_REVISION: return "revision";
    }
    return "unknown";
}

bool rc_level_aggregate_complete(const Rollcall__Report *agg)
{
    const Rollcall__Completeness *c = agg->completeness;
    return c && c->expected > 0 && c->reported >= c->expected && c->n_missing == 0;
}

bool rc_level_aggregate_zero(const Rollcall__Report *agg)
{
    const Rollcall__Completeness *c = agg->completeness;
    const Rollcall__Indicators *ind = agg->indicators;

    if (!c || c->expected <= 0 || c->zero < c->expected)
        return false;
    if (ind) {
        /* Walk the descriptor rather than a hand-written list of 32 names:
         * an indicator added to the proto is covered by construction. */
        const ProtobufCMessageDescriptor *d = ind->base.descriptor;
        for (unsigned i = 0; i < d->n_fields; i++) {
            const int64_t *v = (const int64_t *)((const char *)ind + d->fields[i].offset);
            if (d->fields[i].type == PROTOBUF_C_TYPE_INT64 && *v != 0)
                return false;
        }
    }
    for (size_t i = 0; i < agg->n_extra; i++)
        if (agg->extra[i]->value != 0)
            return false;
    return true;
}

/* The namespace of Rollcall's name-based ids (a fixed random UUID). */
static const uuid_t rollcall_ns = {0x6b, 0x2f, 0x3c, 0x1e, 0x8a, 0x54, 0x4d, 0x0b,
                                   0x9c, 0x61, 0x2e, 0x7f, 0x13, 0xd4, 0x58, 0xa9};

void rc_level_filed_id(const char *unit, const char *period, int64_t version, char out[37])
{
    char name[96];
    uuid_t id;
    int n = snprintf(name, sizeof name, "filed|%s|%s|%lld", unit, period, (long long)version);

    if (n < 0 || (size_t)n >= sizeof name)
        n = (int)sizeof name - 1;
    uuid_generate_sha1(id, rollcall_ns, name, (size_t)n);
    uuid_unparse_lower(id, out);
}

int rc_level_filed_key(const char *unit, char out[13])
{
    size_t len = unit ? strlen(unit) : 0;

    out[0] = '\0';
    if (len == 2 && all_digits(unit, len)) {  /* a province: the top keys by itself */
        memcpy(out, unit, 3);
        return 0;
    }
    if (len != 9 && len != 6)
        return -1;
    return rc_code_rollup_parent(unit, out);
}

uint8_t *rc_level_pack_filed(const Rollcall__Report *agg, const rc_filed_opts *o,
                             size_t *len, char report_id[37])
{
    Rollcall__Report f;
    uint8_t *buf;

    if (!agg->unit_code || !*agg->unit_code || !agg->period || !*agg->period || agg->version <= 0)
        return NULL;
    rc_level_filed_id(agg->unit_code, agg->period, agg->version, report_id);
    f = *agg;   /* borrows every field; only scalars and our own strings change */
    f.report_id = report_id;
    f.kind = rc_level_aggregate_zero(agg) ? ROLLCALL__KIND__KIND_ZERO : ROLLCALL__KIND__KIND_DAILY;
    f.submitter = (char *)(o->submitter ? o->submitter : "");
    f.note = (char *)(o->note ? o->note : "");
    f.revised = o->revised;
    f.submitted_at = o->now_us;
    f.received_at = o->now_us;
    f.incident = NULL;
    f.zone_status = ROLLCALL__ZONE_STATUS__ZONE_STATUS_UNSPECIFIED;
    *len = rollcall__report__get_packed_size(&f);
    buf = malloc(*len ? *len : 1);
    if (!buf)
        return NULL;
    rollcall__report__pack(&f, buf);
    return buf;
}

int rc_level_urgent_forward(const Rollcall__Report *r, int level, int64_t now_us,
                            uint8_t **out, size_t *outlen, int64_t *prev_at,
                            char *errbuf, size_t errlen)
{
    Rollcall__Report copy;
    Rollcall__Incident inc;
    Rollcall__Hop hop, **hops = NULL;
    const Rollcall__Hop *last;
    char unit[13];
    int child = rc_level_child(level);
    uint8_t *buf;

    *out = NULL;
    *outlen = 0;
    if (r->kind != ROLLCALL__KIND__KIND_URGENT)
        return 0;
    if (!r->incident || r->incident->n_hops == 0) {
        snprintf(errbuf, errlen, "urgent report without hops");
        return -1;
    }
    last = r->incident->hops[r->incident->n_hops - 1];
    if (!last || child == 0 || (int)last->level != child)
        return 0;
    if (rc_level_unit_of(r->unit_code, ROLLCALL__LEVEL__LEVEL_VILLAGE, unit) < 0 ||
        strlen(r->unit_code) != 12 || rc_level_unit_of(r->unit_code, level, unit) < 0) {
        snprintf(errbuf, errlen, "urgent report unit_code '%s' is not a village code",
                 r->unit_code ? r->unit_code : "");
        return -1;
    }
    /* A shallow copy with one more hop: the input stays untouched. */
    hops = malloc((r->incident->n_hops + 1) * sizeof *hops);
    if (!hops) {
        snprintf(errbuf, errlen, "out of memory");
        return -1;
    }
    memcpy(hops, r->incident->hops, r->incident->n_hops * sizeof *hops);
    rollcall__hop__init(&hop);
    hop.level = (Rollcall__Level)level;
    hop.unit_code = unit;
    hop.at = now_us;
    hops[r->incident->n_hops] = &hop;
    inc = *r->incident;
    inc.hops = hops;
    inc.n_hops = r->incident->n_hops + 1;
    copy = *r;
    copy.incident = &inc;
    /* Poison stops here: what the rollup would dead-letter (hops beyond the
     * limit, text PostgreSQL refuses) is dead-lettered once, from the
     * village's message, instead of again for each level that passed it up. */
    rc_errors errs = {0};
    if (rc_report_validate_storable(&copy, &errs) < 0) {
        char why[256];
        free(hops);
        rc_errors_format(&errs, why, sizeof why);
        snprintf(errbuf, errlen, "urgent report not storable: %s", why);
        return -1;
    }
    *outlen = rollcall__report__get_packed_size(&copy);
    buf = malloc(*outlen ? *outlen : 1);
    if (!buf) {
        free(hops);
        snprintf(errbuf, errlen, "out of memory");
        return -1;
    }
    rollcall__report__pack(&copy, buf);
    free(hops);
    *out = buf;
    *prev_at = last->at;
    return 1;
}
