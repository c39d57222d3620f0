/* rc_loadgen — a reproducible reporting day for a set of villages: who files
 * DAILY or ZERO, who is missing, late, corrects, retries, sends an urgent or
 * an invalid report, and each report's contents, all derived from one seed.
 *
 * The plan is small (one rc_lg_item of 64 bytes per message); a report's
 * contents are rebuilt from the item on demand by rc_loadgen_build, without
 * allocating, so a national day (620,573 villages) plans in well under a
 * second and fits in ~50 MB.  Counts are exact: a share s of n villages is
 * round(s * n) villages. */
#ifndef RC_LOADGEN_H
#define RC_LOADGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rollcall.pb-c.h"

typedef struct rc_loadgen rc_loadgen;

typedef struct rc_loadgen_opts {
    uint64_t seed;
    int32_t period;            /* reporting day, days since 1970-01-01 (Asia/Shanghai date) */
    /* Shares of the villages given to rc_loadgen_new (0..1), each count = round(share * n). */
    double missing_share;      /* file nothing at all */
    double zero_share;         /* file ZERO instead of DAILY (among those who file) */
    double late_share;         /* first report received after 10:00 (direct delivery only:
                                  through HTTP the intake's clock decides) */
    double correction_share;   /* file a second version later */
    double tie_share;          /* of which the correction gets the SAME version (tie broken
                                  by report_id); direct delivery only */
    double retry_share;        /* send their first report's report_id a second time */
    size_t urgent_count;       /* URGENT reports from distinct villages (may be missing ones) */
    size_t invalid_count;      /* reports the pipeline must refuse */
    bool extra;                /* a province's own indicators (extra map) on DAILY reports */
    int32_t today;             /* for RC_LG_BAD_FUTURE: the period is 3 days after the later of
                                  `period` and `today` (days; 0 = period) */
    bool http;                 /* plan for the HTTP intake: two phases (first reports and
                                  retries, then corrections, so that the intake's clock orders
                                  them), no ties, invalid kinds the intake answers 400 to */
} rc_loadgen_opts;

/* What a message is for. */
typedef enum {
    RC_LG_FIRST = 0,      /* a village's first DAILY/ZERO report of the day */
    RC_LG_CORRECTION,     /* a later version (new report_id) */
    RC_LG_RETRY,          /* the first report sent again, same report_id and contents */
    RC_LG_URGENT,         /* an URGENT report: never counts as the daily report */
    RC_LG_INVALID         /* must be refused: 400 at the intake, dead letter in the rollup */
} rc_lg_role;

/* How an RC_LG_INVALID report is broken. */
typedef enum {
    RC_LG_OK = 0,
    RC_LG_BAD_NEGATIVE,       /* an indicator below zero */
    RC_LG_BAD_ZERO_NONZERO,   /* kind ZERO with a non-zero indicator */
    RC_LG_BAD_LEVEL,          /* level township on a village code */
    RC_LG_BAD_NO_KIND,        /* kind unspecified */
    RC_LG_BAD_FUTURE,         /* period three days in the future (HTTP only) */
    RC_LG_BAD_UNKNOWN_UNIT,   /* a village code not in the registry (direct only) */
    RC_LG_BAD_UNDECODABLE     /* bytes that are not a Report (direct only) */
} rc_lg_bad;

typedef struct rc_lg_item {
    uint64_t unit;            /* 12-digit village code as an integer */
    uint8_t report_id[16];    /* UUID v4 bytes; a RETRY repeats its original's */
    int64_t received_at;      /* planned receive time (µs); the version in direct delivery */
    int64_t send_at;          /* planned position in the day; items are sorted by it */
    uint64_t content;         /* seed of the contents (indicators, zone, incident) */
    uint32_t original;        /* CORRECTION/RETRY: index of the village's FIRST item */
    uint8_t role;             /* rc_lg_role */
    uint8_t kind;             /* Rollcall__Kind */
    uint8_t zone;             /* Rollcall__ZoneStatus */
    uint8_t bad;              /* rc_lg_bad */
    uint8_t phase;            /* 0, or 1 for the HTTP plan's corrections */
} rc_lg_item;

/* Defaults: seed 1, missing 2 %, zero 10 %, late 5 %, corrections 3 % (ties 0.1 %),
 * retries 2 %, 10 urgent, 20 invalid, extra indicators on, direct plan.  The period
 * is left 0 for the caller to set. */
void rc_loadgen_opts_default(rc_loadgen_opts *opts);

/* Plans the day for `villages` (12-digit codes as integers, ascending, no
 * duplicates; copied).  Returns NULL with errbuf filled on a bad option (a
 * share outside 0..1, no villages) or out of memory. */
rc_loadgen *rc_loadgen_new(const rc_loadgen_opts *opts, const uint64_t *villages, size_t n,
                           char *errbuf, size_t errlen);
void rc_loadgen_free(rc_loadgen *lg);

const rc_loadgen_opts *rc_loadgen_opts_of(const rc_loadgen *lg);

/* Planned messages, sorted by (phase, send_at): the order to send them in. */
size_t rc_loadgen_count(const rc_loadgen *lg);
const rc_lg_item *rc_loadgen_item(const rc_loadgen *lg, size_t i);

/* Index of the first phase-1 item (== count when there is no phase 1). */
size_t rc_loadgen_phase_start(const rc_loadgen *lg, int phase);

/* The villages given to rc_loadgen_new and how many messages of each role
 * were planned (role < 5), or how many villages are missing (role == -1). */
size_t rc_loadgen_villages(const rc_loadgen *lg, const uint64_t **villages);
size_t rc_loadgen_planned(const rc_loadgen *lg, int role);

/* A report rebuilt from an item, in storage owned by the struct (no heap):
 * valid until the struct is reused or goes out of scope. */
typedef struct rc_lg_report {
    Rollcall__Report report;
    Rollcall__Indicators indicators;
    Rollcall__Incident incident;
    Rollcall__Hop hop;
    Rollcall__Hop *hops[1];
    Rollcall__Report__ExtraEntry extra_entry;
    Rollcall__Report__ExtraEntry *extra[1];
    char report_id[37], unit[13], period[11], extra_name[32], description[64];
} rc_lg_report;

/* Fills out with the report the item stands for: every field as an intake
 * would produce it (received_at and version = item->received_at, submitted_at
 * a little earlier, submitter "loadgen"; an URGENT report carries its first
 * hop {village, unit, received_at}).  RC_LG_BAD_UNDECODABLE items get a valid
 * report here: send rc_loadgen_garbage's bytes instead. */
void rc_loadgen_build(const rc_loadgen *lg, const rc_lg_item *item, rc_lg_report *out);

/* Deterministic bytes that do not decode as a Report (a truncated varint),
 * for RC_LG_BAD_UNDECODABLE; returns how many were written (<= len). */
size_t rc_loadgen_garbage(const rc_lg_item *item, uint8_t *buf, size_t len);

/* "first", "correction", "retry", "urgent", "invalid". */
const char *rc_loadgen_role_name(int role);
/* "negative_value", "zero_with_values", ... ("" for RC_LG_OK). */
const char *rc_loadgen_bad_name(int bad);

/* Formats 16 UUID bytes as lower-case canonical text. */
void rc_loadgen_uuid_format(const uint8_t b[16], char out[37]);

/* The extra indicator a village's province adds (NULL when none): provinces
 * whose code is 1 mod 3 add "grid_patrols", 2 mod 3 "market_checks". */
const char *rc_loadgen_extra_name(uint64_t village);

#endif
