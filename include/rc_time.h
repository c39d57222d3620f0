/* rc_time — clocks, reporting periods, RFC 3339 timestamps and report ids.
 * Periods are calendar dates in Asia/Shanghai (fixed UTC+8, no DST). */
#ifndef RC_TIME_H
#define RC_TIME_H

#include <stdbool.h>
#include <stdint.h>

#define RC_TZ_OFFSET_US (8LL * 3600 * 1000000)  /* Asia/Shanghai, fixed */
#define RC_DAY_US (86400LL * 1000000)

/* Wall clock, microseconds since the Unix epoch. */
int64_t rc_now_us(void);

/* Parses a strict "YYYY-MM-DD" naming a real calendar date (leap years
 * included) into days since 1970-01-01.  Returns 0, or -1 and leaves *day
 * unchanged. */
int rc_period_parse(const char *s, int32_t *day);

/* Writes day (days since 1970-01-01) as "YYYY-MM-DD" into out. */
void rc_period_format(int32_t day, char out[11]);

/* The Asia/Shanghai date of an instant, as days since 1970-01-01. */
int32_t rc_period_of(int64_t us);

/* Parses an RFC 3339 timestamp "YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)"
 * (fraction beyond microseconds is truncated) into microseconds since the
 * epoch.  Returns 0, or -1 and leaves *us unchanged. */
int rc_time_parse_rfc3339(const char *s, int64_t *us);

/* Writes us as RFC 3339 in +08:00, with ".ffffff" only when the instant has
 * a sub-second part: "2021-08-01T09:30:00+08:00". */
void rc_time_format_rfc3339(int64_t us, char out[40]);

/* A new random UUID (version 4), lower case, 36 characters. */
void rc_uuid_new(char out[37]);

/* True when s is a UUID in canonical lower-case form (8-4-4-4-12 hex).
 * Upper case is refused: a report_id is compared byte-wise everywhere. */
bool rc_uuid_valid(const char *s);

#endif
