/* rc_log — see rc_log.h.  One write(2) per line so that lines from several
 * threads (librdkafka's log callback) never interleave. */
#include "rc_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

rc_log_level rc_log_threshold = RC_LOG_INFO;
static const char *log_service = "rollcall";

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void rc_log_init(const char *service, rc_log_level threshold)
{
    if (service)
        log_service = service;
    rc_log_threshold = threshold;
}

int rc_log_level_parse(const char *name, rc_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *out = (rc_log_level)i;
            return 0;
        }
    }
    return -1;
}

void rc_log_vwrite(rc_log_level level, const char *fmt, va_list ap)
{
    char line[2048];
    struct timeval tv;
    struct tm tm;
    size_t n;
    int w;

    /* Asia/Shanghai has no daylight saving: a fixed +08:00 keeps the logger
     * free of the process's TZ setting. */
    gettimeofday(&tv, NULL);
    time_t local = tv.tv_sec + 8 * 3600;
    gmtime_r(&local, &tm);
    n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    w = snprintf(line + n, sizeof line - n, ".%03ld+08:00 level=%s service=%s ",
                 (long)(tv.tv_usec / 1000), level_names[level], log_service);
    if (w > 0)
        n += (size_t)w;
    if (n < sizeof line) {
        w = vsnprintf(line + n, sizeof line - n, fmt, ap);
        if (w > 0)
            n += (size_t)w;
    }
    if (n >= sizeof line - 1)
        n = sizeof line - 2;
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, n) < 0) {
        /* nowhere left to report it */
    }
}

void rc_log_write(rc_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rc_log_vwrite(level, fmt, ap);
    va_end(ap);
}

void rc_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rc_log_vwrite(RC_LOG_ERROR, fmt, ap);
    va_end(ap);
    exit(1);
}

void rc_errf(char *errbuf, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!errbuf || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}
