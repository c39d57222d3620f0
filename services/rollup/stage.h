/* The rollup's message-to-stage path without its session: a consumed
 * report checked for the stage and written as one binary COPY row of
 * rollup_stage.  Built into rollcall-rollup, and into the fuzz harness
 * tests/fuzz/fuzz_stage.c from these sources. */
#ifndef ROLLUP_STAGE_H
#define ROLLUP_STAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rc_pgcopy.h"
#include "rc_report.h"

#define ROLLUP_STAGE_FIELDS 49

/* Where a row came from, and what the consumer decided about it. */
typedef struct stage_source {
    const char *topic;
    int32_t partition;
    int64_t offset;
    const void *payload;        /* the message as consumed, kept in the row */
    size_t len;
    int64_t received_us;        /* received_at, or the broker's timestamp */
    bool late;
    bool repeat;                /* a later revision of a (unit, period) in the batch */
} stage_source;

/* The validation bounds of the rollup: village reports as the codec's
 * defaults with max_past_days of history and a day ahead (clocks), a
 * report_id required; filed reports (sums) with every value bound raised. */
void stage_validate_opts(int max_past_days, rc_validate_opts *village, rc_validate_opts *filed);

/* What rc_report_validate leaves to the stage: the report's level is the
 * topic's (topic_level, topic named in the reason), it has a version, a
 * readable report_id and period.  Returns 0 with the report_id's 16 bytes
 * in id and the period's day, or -1 with the reason in detail. */
int stage_check(const Rollcall__Report *r, int topic_level, const char *topic, uint8_t id[16],
                int32_t *day, char *detail, size_t len);

/* Appends r's row (rc_pgcopy_row and ROLLUP_STAGE_FIELDS fields) to c.  r
 * has passed rc_report_validate and stage_check, which gave id and day. */
void stage_row(rc_pgcopy *c, const Rollcall__Report *r, const uint8_t id[16], int32_t day,
               const stage_source *src);

#endif
