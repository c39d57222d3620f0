/* rc_loadgen — see rc_loadgen.h.  Every random choice comes from splitmix64
 * streams keyed by (seed, period, purpose[, village]), so a plan is the same
 * on every machine and run, and an item's contents can be rebuilt from its
 * 64-bit content seed alone. */
#include "rc_loadgen.h"

#include "rc_report.h"
#include "rc_time.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOUR_US (3600LL * 1000000)
#define MINUTE_US (60LL * 1000000)
#define SECOND_US 1000000LL

struct rc_loadgen {
    rc_loadgen_opts opts;
    uint64_t *villages;
    size_t nvillages;
    rc_lg_item *items;
    size_t nitems, cap;
    size_t planned[5];
    size_t missing;
    size_t phase1;
    char period[11], future_period[11];   /* formatted once: built 640,000 times a day */
};

/* ---- random streams ---- */

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A new stream seed from a parent seed and a tag. */
static uint64_t derive(uint64_t parent, uint64_t tag)
{
    uint64_t s = parent ^ (tag * 0xd6e8feb86659fd93ULL);

    splitmix64(&s);
    return splitmix64(&s);
}

/* Uniform in [0, n) (n > 0); the multiply-shift bias is below 2^-40 here. */
static uint64_t below(uint64_t *s, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)splitmix64(s) * n) >> 64);
}

/* Uniform in [lo, hi]. */
static int64_t between(uint64_t *s, int64_t lo, int64_t hi)
{
    return lo + (int64_t)below(s, (uint64_t)(hi - lo) + 1);
}

static double unit01(uint64_t *s)
{
    return (double)(splitmix64(s) >> 11) * 0x1.0p-53;
}

static bool chance(uint64_t *s, double p)
{
    return unit01(s) < p;
}

enum { TAG_PERM_MISSING = 1, TAG_PERM_ZERO, TAG_PERM_LATE, TAG_PERM_CORR, TAG_PERM_TIE,
       TAG_PERM_RETRY, TAG_PERM_URGENT, TAG_PERM_INVALID, TAG_ITEM, TAG_ZONE, TAG_PROFILE };

/* Fisher-Yates shuffle of idx[0..n) with its own stream. */
static void shuffle(uint32_t *idx, size_t n, uint64_t seed)
{
    uint64_t s = seed;

    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)below(&s, i);
        uint32_t t = idx[i - 1];

        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}

static size_t share_count(double share, size_t n)
{
    double c = floor(share * (double)n + 0.5);

    return c < 0 ? 0 : c > (double)n ? n : (size_t)c;
}

/* ---- options and names ---- */

void rc_loadgen_opts_default(rc_loadgen_opts *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->seed = 1;
    opts->missing_share = 0.02;
    opts->zero_share = 0.10;
    opts->late_share = 0.05;
    opts->correction_share = 0.03;
    opts->tie_share = 0.001;
    opts->retry_share = 0.02;
    opts->urgent_count = 10;
    opts->invalid_count = 20;
    opts->extra = true;
}

const char *rc_loadgen_role_name(int role)
{
    static const char *const names[] = {"first", "correction", "retry", "urgent", "invalid"};

    return role >= 0 && role < 5 ? names[role] : "?";
}

const char *rc_loadgen_bad_name(int bad)
{
    static const char *const names[] = {"", "negative_value", "zero_with_values",
                                        "level_mismatch", "no_kind", "future_period",
                                        "unknown_unit", "undecodable"};

    return bad >= 0 && bad <= RC_LG_BAD_UNDECODABLE ? names[bad] : "?";
}

const char *rc_loadgen_extra_name(uint64_t village)
{
    switch ((village / 10000000000ULL) % 3) {
    case 1: return "grid_patrols";
    case 2: return "market_checks";
    default: return NULL;
    }
}

void rc_loadgen_uuid_format(const uint8_t b[16], char out[37])
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
}

static void uuid_from(uint64_t *s, uint8_t b[16])
{
    uint64_t hi = splitmix64(s), lo = splitmix64(s);

    for (int i = 0; i < 8; i++) {
        b[i] = (uint8_t)(hi >> (56 - 8 * i));
        b[8 + i] = (uint8_t)(lo >> (56 - 8 * i));
    }
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);   /* version 4 */
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);   /* RFC 4122 variant */
}

/* ---- planning ---- */

static int64_t day_start_us(int32_t period)
{
    return (int64_t)period * RC_DAY_US - RC_TZ_OFFSET_US;
}

static rc_lg_item *push(rc_loadgen *lg)
{
    if (lg->nitems == lg->cap) {
        size_t cap = lg->cap ? lg->cap * 2 : 1024;
        rc_lg_item *items = realloc(lg->items, cap * sizeof *items);

        if (!items)
            return NULL;
        lg->items = items;
        lg->cap = cap;
    }
    memset(&lg->items[lg->nitems], 0, sizeof lg->items[0]);
    return &lg->items[lg->nitems++];
}

/* The zone status a village states today: mostly normal. */
static uint8_t plan_zone(uint64_t seed, uint64_t village)
{
    uint64_t s = derive(seed, village ^ ((uint64_t)TAG_ZONE << 48));
    double u = unit01(&s);

    if (u < 0.80) return ROLLCALL__ZONE_STATUS__ZONE_STATUS_NORMAL;
    if (u < 0.92) return ROLLCALL__ZONE_STATUS__ZONE_STATUS_PREVENTION;
    if (u < 0.97) return ROLLCALL__ZONE_STATUS__ZONE_STATUS_CONTROL;
    if (u < 0.985) return ROLLCALL__ZONE_STATUS__ZONE_STATUS_LOCKDOWN;
    return ROLLCALL__ZONE_STATUS__ZONE_STATUS_UNSPECIFIED;
}

static int cmp_item(const void *a, const void *b)
{
    const rc_lg_item *x = a, *y = b;

    if (x->phase != y->phase)
        return x->phase < y->phase ? -1 : 1;
    if (x->send_at != y->send_at)
        return x->send_at < y->send_at ? -1 : 1;
    if (x->unit != y->unit)
        return x->unit < y->unit ? -1 : 1;
    return x->role < y->role ? -1 : x->role > y->role;
}

/* Index of the first village >= code (nvillages when none). */
static size_t village_index(const rc_loadgen *lg, uint64_t code)
{
    size_t lo = 0, hi = lg->nvillages;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (lg->villages[mid] < code)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static bool is_village(const rc_loadgen *lg, uint64_t code)
{
    size_t i = village_index(lg, code);

    return i < lg->nvillages && lg->villages[i] == code;
}

static int check_share(const char *name, double v, char *errbuf, size_t errlen)
{
    if (!(v >= 0.0 && v <= 1.0)) {
        snprintf(errbuf, errlen, "%s must be between 0 and 1 (got %g)", name, v);
        return -1;
    }
    return 0;
}

/* The plan's per-village attributes, as bits of one byte per village. */
enum { F_MISSING = 1, F_ZERO = 2, F_LATE = 4, F_CORR = 8, F_TIE = 16, F_RETRY = 32 };

/* Refuses shares outside [0, 1] and a village list that is empty, too long,
 * or not strictly ascending.  Returns 0, or -1 with errbuf set. */
static int check_plan_input(const rc_loadgen_opts *opts, const uint64_t *villages, size_t n,
                            char *errbuf, size_t errlen)
{
    if (check_share("missing share", opts->missing_share, errbuf, errlen) < 0 ||
        check_share("zero share", opts->zero_share, errbuf, errlen) < 0 ||
        check_share("late share", opts->late_share, errbuf, errlen) < 0 ||
        check_share("correction share", opts->correction_share, errbuf, errlen) < 0 ||
        check_share("tie share", opts->tie_share, errbuf, errlen) < 0 ||
        check_share("retry share", opts->retry_share, errbuf, errlen) < 0)
        return -1;
    if (n == 0 || n > UINT32_MAX) {
        snprintf(errbuf, errlen, "no villages to plan for");
        return -1;
    }
    for (size_t i = 1; i < n; i++) {
        if (villages[i] <= villages[i - 1]) {
            snprintf(errbuf, errlen, "villages must be ascending without duplicates");
            return -1;
        }
    }
    return 0;
}

/* Who does what.  Each attribute draws its villages from its own
 * permutation, so the counts are exact and the attributes independent.
 * Sets flags[0..n) (zeroed by the caller) and returns how many villages
 * are missing; perm is scratch of n entries. */
static size_t draw_attributes(const rc_loadgen_opts *opts, uint64_t base, size_t n,
                              uint32_t *perm, uint8_t *flags)
{
    size_t nmissing, nreport, ntie;

    for (size_t i = 0; i < n; i++)
        perm[i] = (uint32_t)i;
    shuffle(perm, n, derive(base, TAG_PERM_MISSING));
    nmissing = share_count(opts->missing_share, n);
    for (size_t i = 0; i < nmissing; i++)
        flags[perm[i]] |= F_MISSING;
    nreport = n - nmissing;
    /* perm[nmissing..n) are the reporters; later draws reshuffle only them. */
    uint32_t *rep = perm + nmissing;
    const struct { uint8_t flag; double share; int tag; } draws[] = {
        {F_ZERO, opts->zero_share, TAG_PERM_ZERO},
        {F_LATE, opts->http ? 0.0 : opts->late_share, TAG_PERM_LATE},
        {F_CORR, opts->correction_share, TAG_PERM_CORR},
        {F_RETRY, opts->retry_share, TAG_PERM_RETRY},
    };

    for (size_t d = 0; d < sizeof draws / sizeof draws[0]; d++) {
        size_t c = share_count(draws[d].share, n);

        if (c > nreport)
            c = nreport;
        shuffle(rep, nreport, derive(base, (uint64_t)draws[d].tag));
        for (size_t i = 0; i < c; i++)
            flags[rep[i]] |= draws[d].flag;
    }
    /* Ties are drawn among the corrections (in village order, then shuffled). */
    ntie = opts->http ? 0 : share_count(opts->tie_share, n);
    size_t k = 0;

    for (size_t i = 0; i < n; i++)
        if (flags[i] & F_CORR)
            rep[k++] = (uint32_t)i;
    if (ntie > k)
        ntie = k;
    shuffle(rep, k, derive(base, TAG_PERM_TIE));
    for (size_t i = 0; i < ntie; i++)
        flags[rep[i]] |= F_TIE;
    return nmissing;
}

/* Appends village i's first report, and its correction and retry if its
 * flags say so.  Records the first report's index in *first.  Returns 0,
 * or -1 when out of memory. */
static int plan_village(rc_loadgen *lg, size_t i, uint8_t flags, uint64_t base, int64_t day,
                        uint32_t *first_index)
{
    const rc_loadgen_opts *opts = &lg->opts;
    uint64_t v = lg->villages[i];
    uint64_t s = derive(base, v ^ ((uint64_t)TAG_ITEM << 48));
    rc_lg_item *first, *it;
    uint32_t fi;

    if (!(first = push(lg)))
        return -1;
    fi = (uint32_t)(lg->nitems - 1);
    *first_index = fi;
    first->unit = v;
    first->role = RC_LG_FIRST;
    first->kind = (flags & F_ZERO) ? ROLLCALL__KIND__KIND_ZERO : ROLLCALL__KIND__KIND_DAILY;
    first->zone = plan_zone(base, v);
    uuid_from(&s, first->report_id);
    first->content = splitmix64(&s);
    if (flags & F_LATE)
        first->received_at = day + 10 * HOUR_US + 1 + between(&s, 0, 4 * HOUR_US - 1);
    else
        first->received_at = day + 7 * HOUR_US + between(&s, 0, 3 * HOUR_US - 1);
    first->send_at = first->received_at;
    first->original = fi;

    if (flags & F_CORR) {
        if (!(it = push(lg)))
            return -1;
        first = &lg->items[fi];
        it->unit = v;
        it->role = RC_LG_CORRECTION;
        it->original = fi;
        /* One correction in five changes its mind about the kind. */
        it->kind = first->kind;
        if (chance(&s, 0.2))
            it->kind = first->kind == ROLLCALL__KIND__KIND_ZERO ? ROLLCALL__KIND__KIND_DAILY
                                                                : ROLLCALL__KIND__KIND_ZERO;
        it->zone = chance(&s, 0.1) ? plan_zone(derive(base, 7), v) : first->zone;
        uuid_from(&s, it->report_id);
        it->content = splitmix64(&s);
        it->received_at = (flags & F_TIE)
            ? first->received_at
            : first->received_at + between(&s, 5 * MINUTE_US, 4 * HOUR_US);
        it->send_at = it->received_at + ((flags & F_TIE) ? 1 : 0);
        it->phase = opts->http ? 1 : 0;
    }
    if (flags & F_RETRY) {
        if (!(it = push(lg)))
            return -1;
        first = &lg->items[fi];
        *it = *first;
        it->role = RC_LG_RETRY;
        it->original = fi;
        /* Through the intake a retry is a client's after a timeout:
         * seconds to minutes later, inside the intake's idempotency
         * window (hours later it is a new report there, with a new
         * version, and the rollup keeps the first one). */
        it->send_at = first->received_at + (opts->http ? between(&s, SECOND_US, 2 * MINUTE_US)
                                                       : between(&s, SECOND_US, 2 * HOUR_US));
    }
    return 0;
}

/* Urgent reports: distinct villages while there are enough.  Leaves perm
 * as the urgent draw's permutation.  Returns 0, or -1 when out of memory. */
static int plan_urgent(rc_loadgen *lg, uint64_t base, int64_t day, uint32_t *perm)
{
    size_t n = lg->nvillages;

    for (size_t i = 0; i < n; i++)
        perm[i] = (uint32_t)i;
    shuffle(perm, n, derive(base, TAG_PERM_URGENT));
    for (size_t k = 0; k < lg->opts.urgent_count; k++) {
        uint64_t s = derive(base, ((uint64_t)TAG_PERM_URGENT << 48) ^ k);
        rc_lg_item *it = push(lg);

        if (!it)
            return -1;
        it->unit = lg->villages[perm[k % n]];
        it->role = RC_LG_URGENT;
        it->kind = ROLLCALL__KIND__KIND_URGENT;
        it->zone = plan_zone(base, it->unit);
        uuid_from(&s, it->report_id);
        it->content = splitmix64(&s);
        it->received_at = day + between(&s, 0, 20 * HOUR_US);
        it->send_at = it->received_at;
    }
    return 0;
}

/* Invalid reports, their faults in turn.  perm is reshuffled from where
 * the urgent draw left it.  Returns 0, or -1 when out of memory. */
static int plan_invalid(rc_loadgen *lg, uint64_t base, int64_t day, uint32_t *perm)
{
    static const uint8_t http_bad[] = {RC_LG_BAD_NEGATIVE, RC_LG_BAD_ZERO_NONZERO,
                                       RC_LG_BAD_LEVEL, RC_LG_BAD_NO_KIND,
                                       RC_LG_BAD_FUTURE};
    static const uint8_t direct_bad[] = {RC_LG_BAD_NEGATIVE, RC_LG_BAD_ZERO_NONZERO,
                                         RC_LG_BAD_LEVEL, RC_LG_BAD_UNKNOWN_UNIT,
                                         RC_LG_BAD_UNDECODABLE};
    size_t n = lg->nvillages;

    shuffle(perm, n, derive(base, TAG_PERM_INVALID));
    for (size_t k = 0; k < lg->opts.invalid_count; k++) {
        uint64_t s = derive(base, ((uint64_t)TAG_PERM_INVALID << 48) ^ k);
        rc_lg_item *it = push(lg);

        if (!it)
            return -1;
        it->unit = lg->villages[perm[k % n]];
        it->bad = lg->opts.http ? http_bad[k % sizeof http_bad]
                                : direct_bad[k % sizeof direct_bad];
        if (it->bad == RC_LG_BAD_UNKNOWN_UNIT) {
            /* The last village numbers of the township, down to the first free
             * one: the subtree holds whole townships, so free means unknown. */
            uint64_t code = it->unit / 1000 * 1000 + 999;

            while (is_village(lg, code))
                code--;
            it->unit = code;
        }
        it->role = RC_LG_INVALID;
        it->kind = it->bad == RC_LG_BAD_ZERO_NONZERO ? ROLLCALL__KIND__KIND_ZERO
                 : it->bad == RC_LG_BAD_NO_KIND ? ROLLCALL__KIND__KIND_UNSPECIFIED
                                                : ROLLCALL__KIND__KIND_DAILY;
        it->zone = ROLLCALL__ZONE_STATUS__ZONE_STATUS_NORMAL;
        uuid_from(&s, it->report_id);
        it->content = splitmix64(&s);
        it->received_at = day + 7 * HOUR_US + between(&s, 0, 5 * HOUR_US);
        it->send_at = it->received_at;
    }
    return 0;
}

/* Sorts the items into sending order, re-links corrections and retries to
 * their first item, and counts the plan by role and phase.  first_of is
 * scratch of one entry per village. */
static void finish_plan(rc_loadgen *lg, uint32_t *first_of)
{
    qsort(lg->items, lg->nitems, sizeof lg->items[0], cmp_item);
    for (size_t i = 0; i < lg->nitems; i++)
        if (lg->items[i].role == RC_LG_FIRST)
            first_of[village_index(lg, lg->items[i].unit)] = (uint32_t)i;
    for (size_t i = 0; i < lg->nitems; i++) {
        rc_lg_item *it = &lg->items[i];

        it->original = it->role == RC_LG_CORRECTION || it->role == RC_LG_RETRY
            ? first_of[village_index(lg, it->unit)] : (uint32_t)i;
    }
    for (size_t i = 0; i < lg->nitems; i++)
        lg->planned[lg->items[i].role]++;
    lg->phase1 = lg->nitems;
    for (size_t i = 0; i < lg->nitems; i++) {
        if (lg->items[i].phase == 1) {
            lg->phase1 = i;
            break;
        }
    }
}

rc_loadgen *rc_loadgen_new(const rc_loadgen_opts *opts, const uint64_t *villages, size_t n,
                           char *errbuf, size_t errlen)
{
    rc_loadgen *lg = NULL;
    uint32_t *perm = NULL, *first_of = NULL;
    uint8_t *flags = NULL;
    const uint64_t base = derive(opts->seed, (uint64_t)(uint32_t)opts->period);
    const int64_t day = day_start_us(opts->period);

    if (check_plan_input(opts, villages, n, errbuf, errlen) < 0)
        return NULL;
    lg = calloc(1, sizeof *lg);
    perm = malloc(n * sizeof *perm);
    flags = calloc(n, 1);
    first_of = malloc(n * sizeof *first_of);
    if (!lg || !perm || !flags || !first_of)
        goto oom;
    lg->opts = *opts;
    rc_period_format(opts->period, lg->period);
    rc_period_format((opts->today > opts->period ? opts->today : opts->period) + 3,
                     lg->future_period);
    lg->villages = malloc(n * sizeof *villages);
    if (!lg->villages)
        goto oom;
    memcpy(lg->villages, villages, n * sizeof *villages);
    lg->nvillages = n;

    lg->missing = draw_attributes(opts, base, n, perm, flags);
    /* First reports, corrections, retries, in village order (sorted later). */
    for (size_t i = 0; i < n; i++)
        if (!(flags[i] & F_MISSING) && plan_village(lg, i, flags[i], base, day, &first_of[i]) < 0)
            goto oom;
    if (plan_urgent(lg, base, day, perm) < 0 || plan_invalid(lg, base, day, perm) < 0)
        goto oom;
    finish_plan(lg, first_of);
    free(perm);
    free(flags);
    free(first_of);
    return lg;

oom:
    snprintf(errbuf, errlen, "out of memory planning %zu villages", n);
    free(perm);
    free(flags);
    free(first_of);
    rc_loadgen_free(lg);
    return NULL;
}

void rc_loadgen_free(rc_loadgen *lg)
{
    if (!lg)
        return;
    free(lg->items);
    free(lg->villages);
    free(lg);
}

const rc_loadgen_opts *rc_loadgen_opts_of(const rc_loadgen *lg)
{
    return &lg->opts;
}

size_t rc_loadgen_count(const rc_loadgen *lg)
{
    return lg->nitems;
}

const rc_lg_item *rc_loadgen_item(const rc_loadgen *lg, size_t i)
{
    return i < lg->nitems ? &lg->items[i] : NULL;
}

size_t rc_loadgen_phase_start(const rc_loadgen *lg, int phase)
{
    return phase <= 0 ? 0 : lg->phase1;
}

size_t rc_loadgen_villages(const rc_loadgen *lg, const uint64_t **villages)
{
    if (villages)
        *villages = lg->villages;
    return lg->nvillages;
}

size_t rc_loadgen_planned(const rc_loadgen *lg, int role)
{
    if (role == -1)
        return lg->missing;
    return role >= 0 && role < 5 ? lg->planned[role] : 0;
}

/* ---- contents ---- */

static void format_code12(uint64_t v, char out[13])
{
    for (int i = 11; i >= 0; i--, v /= 10)
        out[i] = (char)('0' + v % 10);
    out[12] = '\0';
}

/* Fields set by name in the generated struct: no lookups on the hot path. */
#define SET(name, value) (ind->name = (value))

/* Plausible village counts: most small, a size that varies by village, and
 * a few "case villages" (0.3 %) with confirmed cases and their contacts. */
static void fill_indicators(uint64_t village, uint64_t content, uint64_t seed,
                            Rollcall__Indicators *ind)
{
    uint64_t prof = derive(seed, village ^ ((uint64_t)TAG_PROFILE << 48));
    uint64_t s = content;
    int64_t households = between(&prof, 80, 1500);
    bool cases = chance(&prof, 0.003);
    int64_t visited = households * between(&s, 5, 40) / 100;
    int64_t screened = visited * between(&s, 20, 35) / 10;

    SET(households_visited, visited);
    SET(persons_screened, screened);
    SET(temperature_checks, screened * between(&s, 50, 100) / 100);
    SET(arrivals_risk_areas, chance(&s, 0.2) ? between(&s, 1, 5) : 0);
    SET(arrivals_abroad, chance(&s, 0.03) ? between(&s, 1, 3) : 0);
    SET(investigation_requests, chance(&s, 0.05) ? between(&s, 1, 3) : 0);
    SET(close_contacts, cases ? between(&s, 3, 40) : chance(&s, 0.01) ? between(&s, 1, 3) : 0);
    SET(secondary_contacts, cases ? between(&s, 10, 120) : chance(&s, 0.01) ? between(&s, 1, 5) : 0);
    SET(cold_chain_workers, chance(&s, 0.1) ? between(&s, 1, 10) : 0);
    SET(released_observation, chance(&s, 0.05) ? between(&s, 1, 5) : 0);
    SET(home_observation, cases ? between(&s, 5, 60) : chance(&s, 0.15) ? between(&s, 1, 10) : 0);
    SET(central_isolation, cases ? between(&s, 1, 30) : chance(&s, 0.02) ? between(&s, 1, 3) : 0);
    SET(fever_referred, chance(&s, 0.05) ? between(&s, 1, 3) : 0);
    SET(suspected, cases && chance(&s, 0.5) ? between(&s, 1, 3) : 0);
    SET(confirmed, cases ? between(&s, 1, 5) : 0);
    SET(asymptomatic, cases ? between(&s, 0, 4) : 0);
    SET(nucleic_acid_sampled, cases ? households * 2 : chance(&s, 0.3) ? screened * between(&s, 20, 100) / 100 : 0);
    SET(vaccinated, chance(&s, 0.5) ? between(&s, 1, 40) : 0);
    SET(elderly_alone, between(&s, 0, households / 40));
    SET(disabled, between(&s, 0, households / 80));
    SET(pregnant, between(&s, 0, 3));
    SET(left_behind_children, between(&s, 0, households / 60));
    SET(orphans, chance(&s, 0.05) ? 1 : 0);
    SET(hardship_households, between(&s, 0, 5));
    SET(tenants, between(&s, 0, households / 20));
    SET(assistance_granted, chance(&s, 0.1) ? between(&s, 1, 3) : 0);
    SET(gatherings_postponed, chance(&s, 0.05) ? between(&s, 1, 2) : 0);
    SET(staff_on_duty, between(&s, 3, 25));
    SET(volunteers, between(&s, 0, 40));
    SET(masks, between(&s, 100, 5000));
    SET(thermometers, between(&s, 2, 30));
    SET(disinfectant_kg, between(&s, 0, 80));
}

void rc_loadgen_build(const rc_loadgen *lg, const rc_lg_item *item, rc_lg_report *out)
{
    static const char *const incident_types[] = {"confirmed_case", "suspected_case",
                                                 "fever_cluster", "missing_contact",
                                                 "worker_casualty"};
    Rollcall__Report *r = &out->report;
    Rollcall__Indicators *ind = &out->indicators;
    const uint64_t base = derive(lg->opts.seed, (uint64_t)(uint32_t)lg->opts.period);
    uint64_t s = item->content;

    rollcall__report__init(r);
    rollcall__indicators__init(ind);
    rc_loadgen_uuid_format(item->report_id, out->report_id);
    format_code12(item->unit, out->unit);
    memcpy(out->period, item->bad == RC_LG_BAD_FUTURE ? lg->future_period : lg->period,
           sizeof out->period);
    r->report_id = out->report_id;
    r->unit_code = out->unit;
    r->level = item->bad == RC_LG_BAD_LEVEL ? ROLLCALL__LEVEL__LEVEL_TOWNSHIP
                                            : ROLLCALL__LEVEL__LEVEL_VILLAGE;
    r->period = out->period;
    r->kind = (Rollcall__Kind)item->kind;
    r->version = item->received_at;
    r->received_at = item->received_at;
    r->submitted_at = item->received_at - between(&s, 0, 60 * SECOND_US);
    r->submitter = "loadgen";
    r->zone_status = (Rollcall__ZoneStatus)item->zone;

    if (item->kind == ROLLCALL__KIND__KIND_ZERO && item->bad != RC_LG_BAD_ZERO_NONZERO)
        return;   /* a zero report: no indicators at all */
    r->indicators = ind;
    if (item->kind == ROLLCALL__KIND__KIND_URGENT) {
        size_t t = (size_t)below(&s, sizeof incident_types / sizeof incident_types[0]);

        rollcall__incident__init(&out->incident);
        rollcall__hop__init(&out->hop);
        out->incident.type = (char *)incident_types[t];
        out->incident.severity = (int32_t)between(&s, 1, 4);
        snprintf(out->description, sizeof out->description, "%s reported by village %s",
                 incident_types[t], out->unit);
        out->incident.description = out->description;
        out->incident.occurred_at = item->received_at - between(&s, MINUTE_US, 3 * HOUR_US);
        out->hop.level = ROLLCALL__LEVEL__LEVEL_VILLAGE;
        out->hop.unit_code = out->unit;
        out->hop.at = item->received_at;
        out->hops[0] = &out->hop;
        out->incident.n_hops = 1;
        out->incident.hops = out->hops;
        r->incident = &out->incident;
        rc_indicator_set(ind, (size_t)rc_indicator_index(t == 0 ? "confirmed" : "suspected"),
                         between(&s, 1, 3));
        return;
    }
    fill_indicators(item->unit, item->content, base, ind);
    if (item->bad == RC_LG_BAD_NEGATIVE)
        rc_indicator_set(ind, (size_t)rc_indicator_index("close_contacts"), -between(&s, 1, 9));
    if (item->bad == RC_LG_BAD_ZERO_NONZERO) {
        rollcall__indicators__init(ind);
        rc_indicator_set(ind, (size_t)rc_indicator_index("fever_referred"), between(&s, 1, 3));
    }
    if (lg->opts.extra && item->kind == ROLLCALL__KIND__KIND_DAILY && item->bad == RC_LG_OK) {
        const char *name = rc_loadgen_extra_name(item->unit);

        if (name) {
            rollcall__report__extra_entry__init(&out->extra_entry);
            snprintf(out->extra_name, sizeof out->extra_name, "%s", name);
            out->extra_entry.key = out->extra_name;
            out->extra_entry.value = between(&s, 0, 20);
            out->extra[0] = &out->extra_entry;
            r->n_extra = 1;
            r->extra = out->extra;
        }
    }
}

size_t rc_loadgen_garbage(const rc_lg_item *item, uint8_t *buf, size_t len)
{
    /* Field 1 (report_id, length-delimited) claiming more bytes than follow. */
    const uint8_t bytes[] = {0x0a, 0x7f, 'n', 'o', 't', ' ', 'a', ' ', 'r', 'e', 'p', 'o', 'r',
                             't', (uint8_t)(item->unit & 0x7f)};
    size_t n = sizeof bytes < len ? sizeof bytes : len;

    memcpy(buf, bytes, n);
    return n;
}
