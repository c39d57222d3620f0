/* rc_ledger — the load generator's ledger (JSON lines: what was sent and what
 * the pipeline answered) and the independent recomputation of what every
 * village, township, county and province row of rollcall.v_unit_day must say
 * for one period, from the ledger and the registry alone (PIPELINE.md
 * "Semantics"; none of the rollup's code or SQL is used).  The format is
 * lib/ledger.c, the recomputation lib/expect.c.
 *
 * Ledger format, one JSON object per line.  An optional first line is the
 * header: {"ledger":"rollcall-loadgen","format":1,"indicator_names":[...],...}.
 * Every other line is one message:
 *   {"report_id":"<uuid>","unit":"130102001001","period":"2021-08-01",
 *    "kind":"daily"|"zero"|"urgent"|"unspecified","role":"first",
 *    "version":1627781400000000,"received_at":"2021-08-01T09:30:00+08:00",
 *    "zone_status":"normal","indicators":[32 integers, proto order or the
 *    header's indicator_names order],"extra":{"grid_patrols":3},
 *    "status":"accepted"|"rejected"|"failed"|"invalid"|"planned",
 *    "http":202,"reason":"..."}
 * Only "accepted" messages count; "indicators" and "extra" may be absent
 * (zero). */
#ifndef RC_LEDGER_H
#define RC_LEDGER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rc_registry.h"

#define RC_LEDGER_INDICATORS 32   /* core indicators carried (== rc_indicator_count()) */
#define RC_LEDGER_EXTRA_MAX 8     /* distinct extra indicator names per ledger */

typedef enum {
    RC_LEDGER_PLANNED = 0,   /* not delivered (dry run) */
    RC_LEDGER_ACCEPTED,      /* the intake answered 2xx / the broker acknowledged it */
    RC_LEDGER_REJECTED,      /* the intake refused it (4xx) */
    RC_LEDGER_FAILED,        /* never acknowledged (5xx, network, delivery error) */
    RC_LEDGER_INVALID        /* delivered on purpose broken: the pipeline must refuse it */
} rc_ledger_status;

typedef struct rc_ledger_rec {
    char report_id[37];
    char unit[13];
    int32_t period;               /* days since 1970-01-01 */
    int kind;                     /* Rollcall__Kind */
    int role;                     /* rc_lg_role, -1 when not stated */
    int64_t version;
    int64_t received_at;          /* µs since the epoch */
    int zone;                     /* Rollcall__ZoneStatus */
    int64_t ind[RC_LEDGER_INDICATORS];
    size_t nextra;
    struct { char name[48]; int64_t value; } extra[RC_LEDGER_EXTRA_MAX];
    int status;                   /* rc_ledger_status */
    int http;                     /* HTTP status, 0 when none */
    char reason[128];             /* why refused or failed ("" when accepted) */
} rc_ledger_rec;

const char *rc_ledger_status_name(int status);

/* ---- writing ---- */

typedef struct rc_ledger_writer rc_ledger_writer;

/* Creates (truncates) path and writes the header line: `header` (borrowed,
 * may be NULL) plus "ledger", "format" and "indicator_names".  Returns NULL
 * with errbuf filled when the file cannot be created. */
rc_ledger_writer *rc_ledger_writer_open(const char *path, const json_t *header,
                                        char *errbuf, size_t errlen);

/* Appends one record.  Returns 0, or -1 with errbuf filled (write error,
 * out of memory); the writer stays usable. */
int rc_ledger_write(rc_ledger_writer *w, const rc_ledger_rec *rec, char *errbuf, size_t errlen);

/* Flushes, closes and frees.  Returns 0, or -1 with errbuf filled when the
 * data did not reach the file.  NULL is a no-op returning 0. */
int rc_ledger_writer_close(rc_ledger_writer *w, char *errbuf, size_t errlen);

/* The JSON object for one record (new reference, NULL on out of memory). */
json_t *rc_ledger_rec_to_json(const rc_ledger_rec *rec);

/* Parses one record object; `names_map` (may be NULL: proto order) maps the
 * ledger's indicator positions to rc_indicator indices (-1: not a core
 * indicator, ignored).  Returns 0, or -1 with errbuf naming the field. */
int rc_ledger_rec_from_json(const json_t *obj, const int *names_map, size_t nnames,
                            rc_ledger_rec *rec, char *errbuf, size_t errlen);

/* Reads a ledger file, calling fn for every record line (the header is
 * consumed); fn returning -1 stops the read.  Returns 0, or -1 with errbuf
 * naming path:line. */
int rc_ledger_read(const char *path, int (*fn)(const rc_ledger_rec *rec, void *opaque),
                   void *opaque, char *errbuf, size_t errlen);

/* ---- expected rows ---- */

typedef struct rc_expect rc_expect;

/* What rollcall.v_unit_day must hold for one unit and period.  Village rows
 * use kind, version, ind and extra; aggregate rows everything else too. */
typedef struct rc_expect_row {
    size_t index;                 /* position in rc_expect_at order */
    uint64_t code;
    int level;                    /* 1 village, 2 township, 3 county, 5 province */
    bool present;                 /* the pipeline must have a row for it */
    int kind;                     /* village: its latest report's kind */
    int zone_status;              /* village: its latest report's ZoneStatus */
    char report_id[37];           /* village: its latest report's report_id */
    int64_t first_received_at;    /* village: earliest receive time of its reports (µs) */
    int64_t version;              /* village: latest version; aggregate: max beneath */
    int32_t expected, reported, zero, late;   /* rollup children */
    int32_t villages_expected, villages_reported, villages_zero, villages_late;
    int32_t zone[5];              /* villages per ZoneStatus of their latest report */
    const int64_t *ind;           /* RC_LEDGER_INDICATORS values, proto order */
    int64_t extra[RC_LEDGER_EXTRA_MAX];  /* by rc_expect_extra_name index */
    const uint64_t *missing;      /* children not reported / not complete, ascending */
    size_t nmissing;
} rc_expect_row;

typedef struct rc_expect_stats {
    size_t records;               /* ledger records seen */
    size_t accepted;              /* of which accepted, for this period */
    size_t excluded;              /* not accepted (rejected, failed, invalid, planned) */
    size_t other_period;          /* accepted but for another period */
    size_t duplicates;            /* accepted again under a report_id already seen */
    size_t conflicts;             /* ... with a different version or unit: an anomaly */
    size_t urgent;                /* accepted URGENT reports (never the daily report) */
    size_t not_village;           /* accepted reports whose unit is not a 12-digit code */
    size_t unknown_units;         /* villages with a latest report but not in the registry */
    size_t villages;              /* villages with a latest DAILY/ZERO report */
    size_t late_villages;
    int64_t max_version;
} rc_expect_stats;

/* `village_deadline_s`: the village deadline as seconds after midnight,
 * Asia/Shanghai, on the period date (PIPELINE.md: 10:00 = 36000).  NULL on
 * out of memory. */
rc_expect *rc_expect_new(int32_t period, int village_deadline_s);
void rc_expect_free(rc_expect *e);

/* Takes one ledger record into account (only accepted DAILY/ZERO reports
 * for the period count; each report_id once; latest version wins, ties by
 * report_id byte-wise; a village is late when its earliest accepted report
 * was received after the deadline).  Returns 0, or -1 with errbuf filled
 * (out of memory, too many extra names) and nothing changed. */
int rc_expect_add(rc_expect *e, const rc_ledger_rec *rec, char *errbuf, size_t errlen);

/* Reads a ledger file into e.  Returns 0, or -1 with errbuf filled. */
int rc_expect_load(rc_expect *e, const char *path, char *errbuf, size_t errlen);

/* Computes every township, county and province aggregate from the villages'
 * latest reports and the registry (its rollup children).  A child counts as
 * reported when its subtree is complete: it has villages and every one of
 * them reported (a subtree without villages never has a row, so it is never
 * complete).  Call once, after the last rc_expect_add.  Returns 0, or -1 with
 * errbuf filled. */
int rc_expect_compute(rc_expect *e, const rc_registry *reg, char *errbuf, size_t errlen);

const rc_expect_stats *rc_expect_stats_of(const rc_expect *e);

/* Finds the row of a unit (level from the code's length).  Returns 0 and
 * fills *row (pointers valid as long as e), or -1 when the unit is neither a
 * village with a report nor a registry aggregate unit. */
int rc_expect_find(const rc_expect *e, const char *code, rc_expect_row *row);

/* Every row (present or not) in order: villages, townships, counties,
 * provinces, each ascending.  Returns 0, or -1 past the end. */
size_t rc_expect_count(const rc_expect *e);
int rc_expect_at(const rc_expect *e, size_t i, rc_expect_row *row);

/* Extra indicator names seen in the ledger (index = rc_expect_row.extra slot). */
size_t rc_expect_extra_count(const rc_expect *e);
const char *rc_expect_extra_name(const rc_expect *e, size_t i);

/* Formats a code of the given level (leading zeros kept). */
void rc_expect_code_format(uint64_t code, int level, char out[13]);

/* A village's first deadline instant (µs) for the period and deadline. */
int64_t rc_expect_deadline_us(int32_t period, int deadline_s);

#endif
