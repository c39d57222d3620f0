/* rc_log — the one logger: levels, one line per event, key=value context.
 *
 * Lines go to stderr as
 *   2026-11-22T08:30:00.123+08:00 level=info service=village report accepted unit=130102001001
 * Callers put context as key=value pairs in the message.  Formatting costs
 * nothing when the level is off (the macros test the threshold first).
 * Never pass a secret (a token, a password) to the logger. */
#ifndef RC_LOG_H
#define RC_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdnoreturn.h>

typedef enum {
    RC_LOG_DEBUG = 0,
    RC_LOG_INFO = 1,
    RC_LOG_WARN = 2,
    RC_LOG_ERROR = 3,
} rc_log_level;

extern rc_log_level rc_log_threshold;

/* Names the service in every line and sets the threshold.  `service` is
 * borrowed and must outlive the logger (a string literal). */
void rc_log_init(const char *service, rc_log_level threshold);

/* Parses "debug", "info", "warn" or "error".  Returns 0, or -1 and leaves
 * *out unchanged. */
int rc_log_level_parse(const char *name, rc_log_level *out);

void rc_log_write(rc_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void rc_log_vwrite(rc_log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* The error idiom: a function that can fail takes (char *errbuf, size_t
 * errlen) last and writes there one line saying what failed.  rc_errf
 * formats it; a NULL or empty errbuf is left alone. */
void rc_errf(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Logs at error level and exits with status 1.  For start-up only. */
noreturn void rc_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define rc_log(level, ...) \
    do { if ((level) >= rc_log_threshold) rc_log_write((level), __VA_ARGS__); } while (0)
#define rc_debug(...) rc_log(RC_LOG_DEBUG, __VA_ARGS__)
#define rc_info(...)  rc_log(RC_LOG_INFO, __VA_ARGS__)
#define rc_warn(...)  rc_log(RC_LOG_WARN, __VA_ARGS__)
#define rc_error(...) rc_log(RC_LOG_ERROR, __VA_ARGS__)

#endif
