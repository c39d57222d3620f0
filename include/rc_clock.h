/* rc_clock — the time a service decides deadlines by: the real clock in
 * production, a controllable one in tests and rehearsals.
 *
 * A clock is described by one string (the `clock` config key):
 *   "real"              the wall clock
 *   "offset:SECONDS"    the wall clock shifted by SECONDS (may be negative)
 *   "file:PATH"         frozen at the RFC 3339 instant written in PATH
 *                       (re-read whenever the file changes; "real" in the file,
 *                       an empty or missing file mean the wall clock)
 *   "manual[:RFC3339]"  frozen at the given instant (default: start-up time),
 *                       moved only by rc_clock_set (the /v1/clock endpoint)
 * Only decisions (deadlines, reminder times, "filed at") follow this clock;
 * measurements (latencies, urgent hop times) always use the wall clock.
 * Thread-safe: rc_clock_now and rc_clock_set may be called from any thread. */
#ifndef RC_CLOCK_H
#define RC_CLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rc_clock rc_clock;

/* Parses `spec`.  Returns a new clock, or NULL with the reason in errbuf
 * (unknown mode, bad number or instant). */
rc_clock *rc_clock_new(const char *spec, char *errbuf, size_t errlen);

/* NULL is a no-op. */
void rc_clock_free(rc_clock *clk);

/* Microseconds since the epoch by this clock.  A "file:" clock whose file
 * holds something unparseable logs a warning once per change and falls
 * back to the wall clock. */
int64_t rc_clock_now(rc_clock *clk);

/* Moves a "manual" clock to `us`.  Returns 0, or -1 (nothing changed) for
 * any other mode. */
int rc_clock_set(rc_clock *clk, int64_t us);

/* True when the clock is anything but "real". */
bool rc_clock_is_controlled(const rc_clock *clk);

/* The mode name: "real", "offset", "file" or "manual". */
const char *rc_clock_mode(const rc_clock *clk);

#endif
