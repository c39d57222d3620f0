/* rc_expect — see rc_ledger.h: the independent recomputation (the oracle
 * of `rollcall verify`).  It keeps one slot per village with a report
 * (latest revision, earliest receive time) in an open-addressing table, then
 * walks the registry once, villages in code order, summing into townships,
 * townships into counties, counties into provinces: linear in the registry.
 *
 * It shares no code with the pipeline on purpose, down to the rule of a
 * unit's rollup parent (a village's township is its code / 1000, a
 * township's county / 1000, a county's province / 10000, skipping the
 * prefecture), which lib/registry.c states for the pipeline: a mistake in
 * one copy then shows as a difference instead of agreeing with itself. */
#include "rc_ledger.h"

#include "rc_loadgen.h"
#include "rc_report.h"
#include "rc_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VILLAGE_EXTRA_MAX 4
#define NIND RC_LEDGER_INDICATORS
/* ---- expected rows ---- */

typedef struct village {
    uint64_t code;
    int64_t version;
    int64_t first_rx;
    uint8_t rid[16];
    uint8_t kind, zone, nextra;
    uint8_t extra_id[VILLAGE_EXTRA_MAX];
    int64_t extra_val[VILLAGE_EXTRA_MAX];
    int64_t ind[NIND];
} village;

typedef struct agg {
    uint64_t code;
    int64_t vsum;               /* sum over the villages beneath of max(version - start, 1) */
    int32_t expected, reported, zero, late;
    int32_t v_expected, v_reported, v_zero, v_late;
    int32_t zone[5];
    uint32_t missing_off, nmissing;
    int64_t ind[NIND];
    int64_t extra[RC_LEDGER_EXTRA_MAX];
} agg;

typedef struct rid_slot {
    uint8_t rid[16];
    uint64_t unit;
    int64_t version;
    bool used;
} rid_slot;

struct rc_expect {
    int32_t period;
    int64_t start_us;           /* the period's first microsecond, Asia/Shanghai */
    int64_t deadline_us;
    village *v;
    size_t nv, capv;
    uint32_t *vmap;          /* village index + 1; 0 = empty */
    size_t vmap_cap;         /* power of two */
    uint32_t *vorder;        /* villages ascending by code, after compute */
    uint32_t *vrank;         /* inverse of vorder */
    rid_slot *rids;
    size_t nrids, rids_cap;  /* power of two */
    char extra_names[RC_LEDGER_EXTRA_MAX][48];
    size_t nextra_names;
    agg *aggs[6];            /* index 2, 3, 5 */
    size_t nagg[6], capagg[6];
    uint64_t *missing;
    size_t nmissing, capmissing;
    bool computed;
    bool failed;             /* out of memory inside the registry walk */
    rc_expect_stats stats;
};

static const int code_len[6] = {0, 12, 9, 6, 4, 2};

static uint64_t hash64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

int64_t rc_expect_deadline_us(int32_t period, int deadline_s)
{
    return (int64_t)period * RC_DAY_US - RC_TZ_OFFSET_US + (int64_t)deadline_s * 1000000;
}

void rc_expect_code_format(uint64_t code, int level, char out[13])
{
    int len = level >= 1 && level <= 5 ? code_len[level] : 0;

    out[len] = '\0';
    for (int i = len - 1; i >= 0; i--, code /= 10)
        out[i] = (char)('0' + code % 10);
}

/* Numeric value and level of a code; level 0 when it is not one. */
static int parse_code(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    size_t n = 0;

    for (; s[n]; n++) {
        if (s[n] < '0' || s[n] > '9' || n >= 12)
            return 0;
        v = v * 10 + (uint64_t)(s[n] - '0');
    }
    *out = v;
    for (int l = 1; l <= 5; l++)
        if ((size_t)code_len[l] == n)
            return l;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* UUID text to bytes; -1 if malformed. */
static int parse_uuid(const char *s, uint8_t out[16])
{
    size_t k = 0;

    for (size_t i = 0; s[i] && k < 32; i++) {
        int h;

        if (s[i] == '-' && (i == 8 || i == 13 || i == 18 || i == 23))
            continue;
        if ((h = hexval(s[i])) < 0)
            return -1;
        if (k % 2 == 0)
            out[k / 2] = (uint8_t)(h << 4);
        else
            out[k / 2] |= (uint8_t)h;
        k++;
    }
    return k == 32 && strlen(s) == 36 ? 0 : -1;
}

rc_expect *rc_expect_new(int32_t period, int village_deadline_s)
{
    rc_expect *e = calloc(1, sizeof *e);

    if (!e)
        return NULL;
    e->period = period;
    e->start_us = rc_expect_deadline_us(period, 0);
    e->deadline_us = rc_expect_deadline_us(period, village_deadline_s);
    return e;
}

void rc_expect_free(rc_expect *e)
{
    if (!e)
        return;
    free(e->v);
    free(e->vmap);
    free(e->vorder);
    free(e->vrank);
    free(e->rids);
    for (int l = 0; l < 6; l++)
        free(e->aggs[l]);
    free(e->missing);
    free(e);
}

const rc_expect_stats *rc_expect_stats_of(const rc_expect *e)
{
    return &e->stats;
}

size_t rc_expect_extra_count(const rc_expect *e)
{
    return e->nextra_names;
}

const char *rc_expect_extra_name(const rc_expect *e, size_t i)
{
    return i < e->nextra_names ? e->extra_names[i] : NULL;
}

static int grow_rids(rc_expect *e)
{
    size_t cap = e->rids_cap ? e->rids_cap * 2 : 1 << 12;
    rid_slot *t = calloc(cap, sizeof *t);

    if (!t)
        return -1;
    for (size_t i = 0; i < e->rids_cap; i++) {
        rid_slot *s = &e->rids[i];
        uint64_t h;

        if (!s->used)
            continue;
        memcpy(&h, s->rid, 8);
        for (h = hash64(h) & (cap - 1); t[h].used; h = (h + 1) & (cap - 1))
            ;
        t[h] = *s;
    }
    free(e->rids);
    e->rids = t;
    e->rids_cap = cap;
    return 0;
}

/* The slot of rid: found (*found = true) or the empty one to fill. */
static rid_slot *rid_lookup(rc_expect *e, const uint8_t rid[16], bool *found)
{
    uint64_t h;

    memcpy(&h, rid, 8);
    for (h = hash64(h) & (e->rids_cap - 1);; h = (h + 1) & (e->rids_cap - 1)) {
        rid_slot *s = &e->rids[h];

        if (!s->used) {
            *found = false;
            return s;
        }
        if (memcmp(s->rid, rid, 16) == 0) {
            *found = true;
            return s;
        }
    }
}

static int grow_villages(rc_expect *e)
{
    size_t cap = e->vmap_cap ? e->vmap_cap * 2 : 1 << 12;
    uint32_t *m = calloc(cap, sizeof *m);

    if (!m)
        return -1;
    for (size_t i = 0; i < e->nv; i++) {
        uint64_t h;

        for (h = hash64(e->v[i].code) & (cap - 1); m[h]; h = (h + 1) & (cap - 1))
            ;
        m[h] = (uint32_t)i + 1;
    }
    free(e->vmap);
    e->vmap = m;
    e->vmap_cap = cap;
    return 0;
}

static village *village_find(const rc_expect *e, uint64_t code, uint32_t **slot)
{
    uint64_t h;

    if (!e->vmap_cap) {
        if (slot)
            *slot = NULL;
        return NULL;
    }
    for (h = hash64(code) & (e->vmap_cap - 1);; h = (h + 1) & (e->vmap_cap - 1)) {
        uint32_t idx = e->vmap[h];

        if (!idx) {
            if (slot)
                *slot = &e->vmap[h];
            return NULL;
        }
        if (e->v[idx - 1].code == code)
            return &e->v[idx - 1];
    }
}

static int extra_id(rc_expect *e, const char *name)
{
    for (size_t i = 0; i < e->nextra_names; i++)
        if (strcmp(e->extra_names[i], name) == 0)
            return (int)i;
    if (e->nextra_names == RC_LEDGER_EXTRA_MAX || strlen(name) >= sizeof e->extra_names[0])
        return -1;
    strcpy(e->extra_names[e->nextra_names], name);
    return (int)e->nextra_names++;
}

/* The record's report_id as bytes into rid and its extra indicators as ids
 * (registering new names).  Returns 0, or -1 with errbuf set for a
 * malformed id or too many extras. */
static int parse_record_ids(rc_expect *e, const rc_ledger_rec *rec, uint8_t rid[16], int *ids,
                            char *errbuf, size_t errlen)
{
    if (parse_uuid(rec->report_id, rid) < 0) {
        snprintf(errbuf, errlen, "accepted report with a malformed report_id '%s'", rec->report_id);
        return -1;
    }
    if (rec->nextra > VILLAGE_EXTRA_MAX) {
        snprintf(errbuf, errlen, "report %s: more than %d extra indicators", rec->report_id,
                 VILLAGE_EXTRA_MAX);
        return -1;
    }
    for (size_t i = 0; i < rec->nextra; i++) {
        if ((ids[i] = extra_id(e, rec->extra[i].name)) < 0) {
            snprintf(errbuf, errlen, "more than %d distinct extra indicator names",
                     RC_LEDGER_EXTRA_MAX);
            return -1;
        }
    }
    return 0;
}

/* Records an acknowledged report_id.  A re-delivered report changes
 * nothing; the same id acknowledged with another version or unit is an
 * anomaly of the acknowledger.  Returns 1 for a new id, 0 for one seen
 * before, -1 when out of memory. */
static int remember_rid(rc_expect *e, const uint8_t rid[16], uint64_t code, int64_t version)
{
    rid_slot *slot;
    bool found;

    if ((e->nrids + 1) * 2 > e->rids_cap && grow_rids(e) < 0)
        return -1;
    slot = rid_lookup(e, rid, &found);
    if (found) {
        e->stats.duplicates++;
        if (slot->version != version || slot->unit != code)
            e->stats.conflicts++;
        return 0;
    }
    memcpy(slot->rid, rid, 16);
    slot->unit = code;
    slot->version = version;
    slot->used = true;
    e->nrids++;
    e->stats.accepted++;
    return 1;
}

/* The village of code, added (with no version yet, *added set) when first
 * seen; its first receive time takes received_at when earlier.  NULL when
 * out of memory. */
static village *village_of(rc_expect *e, uint64_t code, int64_t received_at, bool *added)
{
    village *v;
    uint32_t *vslot;

    *added = false;
    if ((e->nv + 1) * 2 > e->vmap_cap && grow_villages(e) < 0)
        return NULL;
    if ((v = village_find(e, code, &vslot))) {
        if (received_at < v->first_rx)
            v->first_rx = received_at;
        return v;
    }
    if (e->nv == e->capv) {
        size_t cap = e->capv ? e->capv * 2 : 1024;
        village *t = realloc(e->v, cap * sizeof *t);

        if (!t)
            return NULL;
        e->v = t;
        e->capv = cap;
    }
    v = &e->v[e->nv];
    memset(v, 0, sizeof *v);
    v->code = code;
    v->first_rx = received_at;
    v->version = INT64_MIN;
    *vslot = (uint32_t)++e->nv;
    *added = true;
    return v;
}

/* The village's report becomes rec when the village was just added or rec
 * is newer: a higher version, or the same version with a greater report_id. */
static void keep_newest(village *v, bool added, const rc_ledger_rec *rec, const uint8_t rid[16],
                        const int *ids)
{
    bool newer = added || rec->version > v->version ||
                 (rec->version == v->version && memcmp(rid, v->rid, 16) > 0);

    if (!newer)
        return;
    v->version = rec->version;
    memcpy(v->rid, rid, 16);
    v->kind = (uint8_t)rec->kind;
    v->zone = (uint8_t)(rec->zone >= 0 && rec->zone <= 4 ? rec->zone : 0);
    memcpy(v->ind, rec->ind, sizeof v->ind);
    v->nextra = (uint8_t)rec->nextra;
    for (size_t i = 0; i < rec->nextra; i++) {
        v->extra_id[i] = (uint8_t)ids[i];
        v->extra_val[i] = rec->extra[i].value;
    }
}

int rc_expect_add(rc_expect *e, const rc_ledger_rec *rec, char *errbuf, size_t errlen)
{
    uint8_t rid[16];
    uint64_t code;
    village *v;
    int ids[RC_LEDGER_EXTRA_MAX], fresh;
    bool added;

    e->stats.records++;
    if (rec->status != RC_LEDGER_ACCEPTED) {
        e->stats.excluded++;
        return 0;
    }
    if (rec->period != e->period) {
        e->stats.other_period++;
        return 0;
    }
    if (parse_record_ids(e, rec, rid, ids, errbuf, errlen) < 0)
        return -1;
    parse_code(rec->unit, &code);
    if ((fresh = remember_rid(e, rid, code, rec->version)) < 0)
        goto oom;
    if (!fresh)
        return 0;

    if (rec->kind == ROLLCALL__KIND__KIND_URGENT) {
        e->stats.urgent++;
        return 0;
    }
    if (rec->kind != ROLLCALL__KIND__KIND_DAILY && rec->kind != ROLLCALL__KIND__KIND_ZERO)
        return 0;
    if (parse_code(rec->unit, &code) != 1) {
        e->stats.not_village++;
        return 0;
    }
    if (!(v = village_of(e, code, rec->received_at, &added)))
        goto oom;
    if (rec->version > e->stats.max_version)
        e->stats.max_version = rec->version;
    keep_newest(v, added, rec, rid, ids);
    return 0;

oom:
    snprintf(errbuf, errlen, "out of memory");
    return -1;
}

static int add_cb(const rc_ledger_rec *rec, void *opaque)
{
    void **ctx = opaque;
    rc_expect *e = ctx[0];
    char *err = ctx[1];

    return rc_expect_add(e, rec, err, 256);
}

int rc_expect_load(rc_expect *e, const char *path, char *errbuf, size_t errlen)
{
    char err[256] = "";
    void *ctx[2] = {e, err};

    if (rc_ledger_read(path, add_cb, ctx, errbuf, errlen) < 0) {
        if (err[0])
            snprintf(errbuf, errlen, "%s: %s", path, err);
        return -1;
    }
    return 0;
}

/* ---- the registry walk ---- */

static agg *agg_push(rc_expect *e, int level, uint64_t code)
{
    agg *a;

    if (e->nagg[level] == e->capagg[level]) {
        size_t cap = e->capagg[level] ? e->capagg[level] * 2 : 64;
        agg *t = realloc(e->aggs[level], cap * sizeof *t);

        if (!t)
            return NULL;
        e->aggs[level] = t;
        e->capagg[level] = cap;
    }
    a = &e->aggs[level][e->nagg[level]++];
    memset(a, 0, sizeof *a);
    a->code = code;
    return a;
}

static int missing_push(rc_expect *e, agg *a, uint64_t child)
{
    if (e->nmissing == e->capmissing) {
        size_t cap = e->capmissing ? e->capmissing * 2 : 1024;
        uint64_t *t = realloc(e->missing, cap * sizeof *t);

        if (!t)
            return -1;
        e->missing = t;
        e->capmissing = cap;
    }
    if (a->nmissing == 0)
        a->missing_off = (uint32_t)e->nmissing;
    e->missing[e->nmissing++] = child;
    a->nmissing++;
    return 0;
}

typedef struct walk {
    rc_expect *e;
    size_t township;        /* merge cursor into aggs[2] */
    size_t matched;         /* ledger villages found in the registry */
} walk;

static void walk_unit(const rc_unit *u, void *opaque)
{
    walk *w = opaque;
    rc_expect *e = w->e;
    uint64_t code;
    agg *t;
    village *v;

    if (e->failed)
        return;
    parse_code(u->code, &code);
    if (u->level == ROLLCALL__LEVEL__LEVEL_TOWNSHIP || u->level == ROLLCALL__LEVEL__LEVEL_COUNTY ||
        u->level == ROLLCALL__LEVEL__LEVEL_PROVINCE) {
        if (!agg_push(e, u->level, code))
            e->failed = true;
        return;
    }
    if (u->level != ROLLCALL__LEVEL__LEVEL_VILLAGE)
        return;
    /* Villages arrive ascending, so their townships do too. */
    while (w->township < e->nagg[2] && e->aggs[2][w->township].code < code / 1000)
        w->township++;
    if (w->township == e->nagg[2] || e->aggs[2][w->township].code != code / 1000)
        return;   /* cannot happen: the registry holds every village's township */
    t = &e->aggs[2][w->township];
    t->expected++;
    if (!(v = village_find(e, code, NULL))) {
        if (missing_push(e, t, code) < 0)
            e->failed = true;
        return;
    }
    w->matched++;
    t->reported++;
    if (v->kind == ROLLCALL__KIND__KIND_ZERO)
        t->zero++;
    if (v->first_rx > e->deadline_us) {
        t->late++;
        e->stats.late_villages++;
    }
    t->zone[v->zone]++;
    t->vsum += v->version - e->start_us > 1 ? v->version - e->start_us : 1;
    for (size_t i = 0; i < NIND; i++)
        t->ind[i] += v->ind[i];
    for (size_t i = 0; i < v->nextra; i++)
        t->extra[v->extra_id[i]] += v->extra_val[i];
}

/* Sums the children at level cl into their parents at level pl (aggs
 * ascending at both levels); `divisor` turns a child code into its parent's. */
static int roll_up(rc_expect *e, int cl, int pl, uint64_t divisor)
{
    size_t p = 0;

    for (size_t i = 0; i < e->nagg[cl]; i++) {
        const agg *c = &e->aggs[cl][i];
        bool complete = c->v_expected > 0 && c->v_reported == c->v_expected;
        agg *a;

        while (p < e->nagg[pl] && e->aggs[pl][p].code < c->code / divisor)
            p++;
        if (p == e->nagg[pl] || e->aggs[pl][p].code != c->code / divisor)
            continue;
        a = &e->aggs[pl][p];
        a->expected++;
        if (complete) {
            a->reported++;
            if (c->v_zero == c->v_expected)
                a->zero++;
            if (c->v_late > 0)
                a->late++;
        } else if (missing_push(e, a, c->code) < 0) {
            return -1;
        }
        a->v_expected += c->v_expected;
        a->v_reported += c->v_reported;
        a->v_zero += c->v_zero;
        a->v_late += c->v_late;
        for (int z = 0; z < 5; z++)
            a->zone[z] += c->zone[z];
        a->vsum += c->vsum;
        for (size_t k = 0; k < NIND; k++)
            a->ind[k] += c->ind[k];
        for (size_t k = 0; k < RC_LEDGER_EXTRA_MAX; k++)
            a->extra[k] += c->extra[k];
    }
    return 0;
}

static int cmp_vorder(const void *a, const void *b, void *arg)
{
    const rc_expect *e = arg;
    uint64_t x = e->v[*(const uint32_t *)a].code, y = e->v[*(const uint32_t *)b].code;

    return x < y ? -1 : x > y;
}

int rc_expect_compute(rc_expect *e, const rc_registry *reg, char *errbuf, size_t errlen)
{
    walk w = {.e = e};

    if (e->computed) {
        snprintf(errbuf, errlen, "expectations already computed");
        return -1;
    }
    rc_registry_foreach(reg, walk_unit, &w);
    if (e->failed)
        goto oom;
    /* A township's village coverage is its own children. */
    for (size_t i = 0; i < e->nagg[2]; i++) {
        agg *t = &e->aggs[2][i];

        t->v_expected = t->expected;
        t->v_reported = t->reported;
        t->v_zero = t->zero;
        t->v_late = t->late;
    }
    /* The oracle's own copy of the rollup-parent rule (see the top of the file). */
    if (roll_up(e, 2, 3, 1000) < 0 || roll_up(e, 3, 5, 10000) < 0)
        goto oom;
    e->stats.villages = e->nv;
    e->stats.unknown_units = e->nv - w.matched;
    if (e->nv && !(e->vorder = malloc(e->nv * sizeof *e->vorder)))
        goto oom;
    for (size_t i = 0; i < e->nv; i++)
        e->vorder[i] = (uint32_t)i;
    qsort_r(e->vorder, e->nv, sizeof *e->vorder, cmp_vorder, e);
    if (e->nv && !(e->vrank = malloc(e->nv * sizeof *e->vrank)))
        goto oom;
    for (size_t i = 0; i < e->nv; i++)
        e->vrank[e->vorder[i]] = (uint32_t)i;
    e->computed = true;
    return 0;

oom:
    snprintf(errbuf, errlen, "out of memory");
    return -1;
}

/* ---- rows ---- */

static void village_row(const rc_expect *e, const village *v, rc_expect_row *row)
{
    memset(row, 0, sizeof *row);
    row->index = e->vrank ? e->vrank[v - e->v] : 0;
    row->code = v->code;
    row->level = ROLLCALL__LEVEL__LEVEL_VILLAGE;
    row->present = true;
    row->kind = v->kind;
    row->zone_status = v->zone;
    rc_loadgen_uuid_format(v->rid, row->report_id);
    row->first_received_at = v->first_rx;
    row->version = v->version;
    row->villages_expected = 1;
    row->villages_reported = 1;
    row->villages_zero = v->kind == ROLLCALL__KIND__KIND_ZERO;
    row->villages_late = v->first_rx > e->deadline_us;
    row->zone[v->zone] = 1;
    row->ind = v->ind;
    for (size_t i = 0; i < v->nextra; i++)
        row->extra[v->extra_id[i]] += v->extra_val[i];
}

static void agg_row(const rc_expect *e, const agg *a, int level, rc_expect_row *row)
{
    size_t base = e->nv + (level >= 3 ? e->nagg[2] : 0) + (level == 5 ? e->nagg[3] : 0);

    memset(row, 0, sizeof *row);
    row->index = base + (size_t)(a - e->aggs[level]);
    row->code = a->code;
    row->level = level;
    row->present = a->v_reported > 0;
    row->kind = ROLLCALL__KIND__KIND_UNSPECIFIED;
    /* An aggregate's version (Report.version in proto/rollcall.proto): the
     * period's start plus the sum over its villages of their versions'
     * distance from it, so that any change beneath raises it; 0 while
     * nothing beneath has reported. */
    row->version = a->vsum ? e->start_us + a->vsum : 0;
    row->expected = a->expected;
    row->reported = a->reported;
    row->zero = a->zero;
    row->late = a->late;
    row->villages_expected = a->v_expected;
    row->villages_reported = a->v_reported;
    row->villages_zero = a->v_zero;
    row->villages_late = a->v_late;
    memcpy(row->zone, a->zone, sizeof row->zone);
    row->ind = a->ind;
    memcpy(row->extra, a->extra, sizeof row->extra);
    row->missing = a->nmissing ? e->missing + a->missing_off : NULL;
    row->nmissing = a->nmissing;
}

int rc_expect_find(const rc_expect *e, const char *code, rc_expect_row *row)
{
    uint64_t c;
    int level = parse_code(code, &c);
    const village *v;

    if (!e->computed)
        return -1;
    if (level == ROLLCALL__LEVEL__LEVEL_VILLAGE) {
        if (!(v = village_find(e, c, NULL)))
            return -1;
        village_row(e, v, row);
        return 0;
    }
    if (level == 2 || level == 3 || level == 5) {
        size_t lo = 0, hi = e->nagg[level];

        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;

            if (e->aggs[level][mid].code < c)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < e->nagg[level] && e->aggs[level][lo].code == c) {
            agg_row(e, &e->aggs[level][lo], level, row);
            return 0;
        }
    }
    return -1;
}

size_t rc_expect_count(const rc_expect *e)
{
    return e->computed ? e->nv + e->nagg[2] + e->nagg[3] + e->nagg[5] : 0;
}

int rc_expect_at(const rc_expect *e, size_t i, rc_expect_row *row)
{
    static const int levels[] = {2, 3, 5};

    if (!e->computed)
        return -1;
    if (i < e->nv) {
        village_row(e, &e->v[e->vorder[i]], row);
        return 0;
    }
    i -= e->nv;
    for (size_t k = 0; k < 3; k++) {
        int l = levels[k];

        if (i < e->nagg[l]) {
            agg_row(e, &e->aggs[l][i], l, row);
            return 0;
        }
        i -= e->nagg[l];
    }
    return -1;
}
