/* rc_level — what a level desk (township, county, province) decides, as pure
 * functions: level relations, deadlines, when and how a unit's report is
 * filed, and how an urgent report is forwarded one level up.  The services
 * do the I/O; everything here is deterministic and unit-tested.
 *
 * Levels are the proto Level enum values (village 1, township 2, county 3,
 * prefecture 4, province 5); aggregation skips the prefecture. */
#ifndef RC_LEVEL_H
#define RC_LEVEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rollcall.pb-c.h"

/* ---- levels ---- */

/* "village", "township", "county", "prefecture", "province" (or the number
 * "1".."5") -> the level; 0 when unknown. */
int rc_level_parse(const char *name);

/* The level's name, "unknown" when out of range. */
const char *rc_level_name(int level);

/* The aggregation child level: township 2 -> 1, county 3 -> 2, province
 * 5 -> 3; 0 for any other level. */
int rc_level_child(int level);

/* The aggregation parent level: 1 -> 2, 2 -> 3, 3 -> 5; 0 for a province
 * (the top) or an unknown level. */
int rc_level_parent(int level);

/* The unit of `level` containing `code` (a code of that level or below):
 * its first 2/6/9/12 digits.  Returns 0, or -1 (out = "") when code is
 * shorter than the level's codes, not all digits, or level is not 1,2,3,5. */
int rc_level_unit_of(const char *code, int level, char out[13]);

/* ---- deadlines (Asia/Shanghai, fixed UTC+8) ---- */

/* The instant of `minutes` after midnight on period `day` (days since
 * 1970-01-01), in microseconds since the epoch. */
int64_t rc_level_deadline_us(int32_t day, int minutes);

/* The newest period whose deadline (`minutes` after its midnight) is at or
 * before now_us: every period <= the result is past its deadline. */
int32_t rc_level_last_closed_period(int64_t now_us, int minutes);

/* ---- filing ---- */

/* What the unit's state calls for, given the newest live aggregate. */
typedef struct {
    bool filed;            /* some version was filed already */
    bool ready;            /* ready_at was recorded (complete or deadline seen earlier) */
    bool complete;         /* the newest aggregate has every expected child */
    bool past_deadline;    /* the clock is at or past the level's deadline for the period */
    bool signoff_required; /* the level's policy wants a manual sign-off */
    bool signed_current;   /* an official signed exactly the newest version */
    bool filed_recently;   /* the last filing is younger than the level's revise_every */
} rc_filing_state;

typedef enum {
    RC_FILE_NONE,    /* keep collecting */
    RC_FILE_WAIT,    /* ready, waiting for a manual sign-off */
    RC_FILE_NOW,     /* file the newest aggregate now */
} rc_file_action;

typedef enum {
    RC_REASON_COMPLETE,  /* every expected child reported */
    RC_REASON_DEADLINE,  /* the deadline came; filed with whatever arrived */
    RC_REASON_SIGNOFF,   /* an official signed it */
    RC_REASON_REVISION,  /* the live numbers changed after a filing */
} rc_file_reason;

/* Decides.  The caller only asks when the newest version is not yet filed.
 * A revision waits (RC_FILE_NONE) while the last filing is recent: one
 * filing per revise_every carries every change made meanwhile, and the
 * desk's sweep files it once the interval is over.  A signature never waits.
 * For RC_FILE_NOW and RC_FILE_WAIT, *reason says why the unit is ready and
 * *revised whether the filing is a re-filing after the deadline (PIPELINE:
 * revised=true when filed again after its deadline). */
rc_file_action rc_level_decide(const rc_filing_state *s, rc_file_reason *reason, bool *revised);

/* "complete", "deadline", "signoff", "revision". */
const char *rc_level_reason_name(rc_file_reason reason);

/* Every expected child is in: expected > 0, reported >= expected and no
 * missing child listed.  False without completeness. */
bool rc_level_aggregate_complete(const Rollcall__Report *agg);

/* The report to file is ZERO: every core and extra indicator is 0 and every
 * expected child reported ZERO (which, level by level, means every village
 * beneath reported ZERO). */
bool rc_level_aggregate_zero(const Rollcall__Report *agg);

/* The filed report's id: the name-based (SHA-1) UUID of
 * "filed|UNIT|PERIOD|VERSION" in the Rollcall namespace.  Deterministic, so
 * filing the same version twice is the same report. */
void rc_level_filed_id(const char *unit, const char *period, int64_t version, char out[37]);

/* The key a filed report travels under: the unit's rollup parent code
 * (township -> county, county -> province); a province keys by itself.
 * Returns 0, or -1 (out = "") for a code that is not 2/6/9 digits. */
int rc_level_filed_key(const char *unit, char out[13]);

typedef struct {
    const char *submitter;  /* "rollcall-township" or the signing official */
    const char *note;       /* may be NULL */
    bool revised;
    int64_t now_us;         /* submitted_at and received_at (the level's clock) */
} rc_filed_opts;

/* Packs the filed report for live aggregate `agg`: the same unit, level,
 * period, version, indicators, completeness and extra; kind ZERO when
 * rc_level_aggregate_zero, else DAILY; report_id rc_level_filed_id; the
 * options' submitter, note, revised and times.  `agg` is not changed (its
 * fields are borrowed for the packing).  Returns a malloc'ed buffer (the
 * caller frees it) with its length in *len and the id in report_id, or NULL
 * on out of memory or when agg lacks unit, period or version. */
uint8_t *rc_level_pack_filed(const Rollcall__Report *agg, const rc_filed_opts *o,
                             size_t *len, char report_id[37]);

/* ---- urgent fast path ---- */

/* Forwards an urgent report one level up if it is this level's to forward:
 * kind URGENT, an incident whose LAST hop is `level`'s child level.  Returns
 * 1 and a malloc'ed packed copy in *out (length *outlen) with the hop
 * {level, unit of that level containing the village, now_us} appended
 * (*prev_at = the last hop's time, for lag measurement); 0 when the report
 * is not for this level to forward (nothing allocated); -1 with errbuf for a
 * report that cannot be forwarded (no incident, no hop, a unit code not of
 * a village, a copy rc_report_validate_storable refuses, out of memory).
 * `r` is not changed. */
int rc_level_urgent_forward(const Rollcall__Report *r, int level, int64_t now_us,
                            uint8_t **out, size_t *outlen, int64_t *prev_at,
                            char *errbuf, size_t errlen);

#endif
