/* rc_clock — see rc_clock.h.  The "file:" mode caches the instant and
 * re-reads the file only when its mtime or size changes, so asking the time
 * costs one stat(2). */
#include "rc_clock.h"
#include "rc_log.h"
#include "rc_time.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef enum { MODE_REAL, MODE_OFFSET, MODE_FILE, MODE_MANUAL } clock_mode;

struct rc_clock {
    clock_mode mode;
    int64_t offset_us;          /* MODE_OFFSET */
    _Atomic int64_t manual_us;  /* MODE_MANUAL */
    char *path;                 /* MODE_FILE */
    pthread_mutex_t lock;       /* guards the file cache below */
    struct timespec mtime;
    off_t size;
    bool have_file;             /* the cache reflects a read of the file */
    bool file_real;             /* the file said "real" (or was empty/missing) */
    int64_t file_us;
    int64_t read_at;            /* wall clock of the last read */
};

static const char *const mode_names[] = {"real", "offset", "file", "manual"};

rc_clock *rc_clock_new(const char *spec, char *errbuf, size_t errlen)
{
    rc_clock *clk = NULL;
    const char *arg;

    if (!spec || !*spec)
        spec = "real";
    clk = calloc(1, sizeof *clk);
    if (!clk) {
        snprintf(errbuf, errlen, "clock: out of memory");
        return NULL;
    }
    pthread_mutex_init(&clk->lock, NULL);
    if (strcmp(spec, "real") == 0) {
        clk->mode = MODE_REAL;
    } else if (strncmp(spec, "offset:", 7) == 0) {
        char *end = NULL;
        double s;
        arg = spec + 7;
        errno = 0;
        s = strtod(arg, &end);
        if (errno || end == arg || *end || s > 1e10 || s < -1e10) {
            snprintf(errbuf, errlen, "clock: bad offset '%s' (seconds expected)", arg);
            goto failed;
        }
        clk->mode = MODE_OFFSET;
        clk->offset_us = (int64_t)(s * 1e6);
    } else if (strncmp(spec, "file:", 5) == 0) {
        arg = spec + 5;
        if (!*arg) {
            snprintf(errbuf, errlen, "clock: file: needs a path");
            goto failed;
        }
        clk->mode = MODE_FILE;
        clk->path = strdup(arg);
        if (!clk->path) {
            snprintf(errbuf, errlen, "clock: out of memory");
            goto failed;
        }
    } else if (strcmp(spec, "manual") == 0 || strncmp(spec, "manual:", 7) == 0) {
        int64_t us = rc_now_us();
        if (spec[6] == ':' && rc_time_parse_rfc3339(spec + 7, &us) < 0) {
            snprintf(errbuf, errlen, "clock: bad instant '%s' (RFC 3339 expected)", spec + 7);
            goto failed;
        }
        clk->mode = MODE_MANUAL;
        atomic_store(&clk->manual_us, us);
    } else {
        snprintf(errbuf, errlen,
                 "clock: unknown mode '%s' (real, offset:SECONDS, file:PATH, manual[:RFC3339])", spec);
        goto failed;
    }
    return clk;

failed:
    rc_clock_free(clk);
    return NULL;
}

void rc_clock_free(rc_clock *clk)
{
    if (!clk)
        return;
    pthread_mutex_destroy(&clk->lock);
    free(clk->path);
    free(clk);
}

/* Re-reads the file into the cache; called with the lock held.  mtime has
 * the kernel's coarse granularity, so two writes a few ms apart may look
 * alike: the cache also expires after FILE_TTL_US. */
#define FILE_TTL_US 250000
static void read_clock_file(rc_clock *clk, const struct stat *st, bool exists, bool changed)
{
    char buf[128];
    size_t n = 0;
    FILE *f;

    clk->have_file = true;
    clk->file_real = true;
    clk->read_at = rc_now_us();
    if (exists) {
        clk->mtime = st->st_mtim;
        clk->size = st->st_size;
    } else {
        memset(&clk->mtime, 0, sizeof clk->mtime);
        clk->size = -1;
        return;
    }
    f = fopen(clk->path, "r");
    if (f) {
        n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
    }
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    if (n == 0 || strcmp(buf, "real") == 0)
        return;
    if (rc_time_parse_rfc3339(buf, &clk->file_us) < 0) {
        if (changed)
            rc_warn("clock file holds no RFC 3339 instant, using the wall clock path=%s", clk->path);
        return;
    }
    clk->file_real = false;
}

int64_t rc_clock_now(rc_clock *clk)
{
    struct stat st;
    bool exists, changed;
    int64_t us;

    switch (clk->mode) {
    case MODE_OFFSET:
        return rc_now_us() + clk->offset_us;
    case MODE_MANUAL:
        return atomic_load(&clk->manual_us);
    case MODE_FILE:
        exists = stat(clk->path, &st) == 0;
        pthread_mutex_lock(&clk->lock);
        changed = !clk->have_file ||
                  (exists ? (st.st_mtim.tv_sec != clk->mtime.tv_sec ||
                             st.st_mtim.tv_nsec != clk->mtime.tv_nsec || st.st_size != clk->size)
                          : clk->size != -1);
        if (changed || rc_now_us() - clk->read_at > FILE_TTL_US)
            read_clock_file(clk, &st, exists, changed);
        us = clk->file_real ? rc_now_us() : clk->file_us;
        pthread_mutex_unlock(&clk->lock);
        return us;
    case MODE_REAL:
    default:
        return rc_now_us();
    }
}

int rc_clock_set(rc_clock *clk, int64_t us)
{
    if (clk->mode != MODE_MANUAL)
        return -1;
    atomic_store(&clk->manual_us, us);
    return 0;
}

bool rc_clock_is_controlled(const rc_clock *clk)
{
    return clk->mode != MODE_REAL;
}

const char *rc_clock_mode(const rc_clock *clk)
{
    return mode_names[clk->mode];
}
