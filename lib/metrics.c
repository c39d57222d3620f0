/* rc_metrics — see rc_metrics.h.  A registry of families kept sorted by
 * name; each family holds its series in creation order.  Values are C11
 * atomics so that updates never take the registry mutex. */
#include "rc_metrics.h"
#include "rc_log.h"

#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

typedef enum { F_COUNTER, F_GAUGE, F_HISTOGRAM } ftype;

static const char *const ftype_names[] = {"counter", "gauge", "histogram"};

/* rc_counter, rc_gauge and rc_histogram are all a struct series. */
struct series {
    char *labels;                       /* "" when none */
    _Atomic double value;               /* counter, gauge; histogram sum */
    double (*fn)(void *opaque);         /* computed at render time, or NULL */
    void *opaque;
    double *bounds;                     /* histogram: n upper bounds */
    size_t n;
    _Atomic unsigned long long *buckets; /* n + 1, not cumulative; last is +Inf */
};

struct family {
    char *name;
    char *help;
    ftype type;
    struct series **series;
    size_t nseries, cap;
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct family **families;
static size_t nfamilies, capfamilies;
static atomic_bool process_registered;

static bool valid_name(const char *s)
{
    if (!s || !(isalpha((unsigned char)*s) || *s == '_' || *s == ':'))
        return false;
    for (s++; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_' || *s == ':'))
            return false;
    return true;
}

/* Accepts `name="value"(,name="value")*` with the exposition format's
 * escapes; a histogram's series may not use "le" itself. */
static bool valid_labels(const char *s, bool histogram)
{
    if (!s || !*s)
        return true;
    for (;;) {
        const char *name = s;
        if (!(isalpha((unsigned char)*s) || *s == '_'))
            return false;
        while (isalnum((unsigned char)*s) || *s == '_')
            s++;
        if (histogram && s - name == 2 && strncmp(name, "le", 2) == 0)
            return false;
        if (*s++ != '=' || *s++ != '"')
            return false;
        for (; *s != '"'; s++) {
            if (*s == '\0' || *s == '\n')
                return false;
            if (*s == '\\' && *++s != '\\' && *s != '"' && *s != 'n')
                return false;
        }
        s++;
        if (*s == '\0')
            return true;
        if (*s++ != ',')
            return false;
    }
}

static void atomic_add_double(_Atomic double *a, double v)
{
    double old = atomic_load_explicit(a, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(a, &old, old + v, memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
}

static void series_free(struct series *s)
{
    if (!s)
        return;
    free(s->labels);
    free(s->bounds);
    free((void *)s->buckets);
    free(s);
}

/* Finds or creates the family `name` (caller holds reg_lock).  Returns NULL
 * on a type clash or out of memory; nothing changed then. */
static struct family *family_get(const char *name, const char *help, ftype type)
{
    size_t lo = 0, hi = nfamilies;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(families[mid]->name, name);
        if (c == 0) {
            if (families[mid]->type != type) {
                rc_error("metrics: %s is already a %s, not a %s", name,
                         ftype_names[families[mid]->type], ftype_names[type]);
                return NULL;
            }
            return families[mid];
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (nfamilies == capfamilies) {
        size_t cap = capfamilies ? capfamilies * 2 : 32;
        struct family **f = realloc(families, cap * sizeof *f);
        if (!f)
            return NULL;
        families = f;
        capfamilies = cap;
    }
    struct family *f = calloc(1, sizeof *f);
    if (!f || !(f->name = strdup(name)) || !(f->help = strdup(help ? help : ""))) {
        if (f) {
            free(f->name);
            free(f);
        }
        return NULL;
    }
    f->type = type;
    memmove(&families[lo + 1], &families[lo], (nfamilies - lo) * sizeof *families);
    families[lo] = f;
    nfamilies++;
    return f;
}

/* Finds or creates a series.  Returns NULL (and logs) on invalid input, a
 * clash, or out of memory. */
static struct series *series_get(const char *name, const char *help, const char *labels,
                                 ftype type, const double *bounds, size_t n)
{
    struct series *s = NULL;
    struct family *f;

    if (!labels)
        labels = "";
    if (!valid_name(name) || !valid_labels(labels, type == F_HISTOGRAM)) {
        rc_error("metrics: invalid metric name=%s labels=%s", name ? name : "(null)", labels);
        return NULL;
    }
    if (type == F_HISTOGRAM) {
        for (size_t i = 0; i < n; i++) {
            if (!isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1])) {
                rc_error("metrics: histogram %s: bounds must be finite and increasing", name);
                return NULL;
            }
        }
    }
    pthread_mutex_lock(&reg_lock);
    if (!(f = family_get(name, help, type)))
        goto done;
    for (size_t i = 0; i < f->nseries; i++) {
        if (strcmp(f->series[i]->labels, labels) == 0) {
            s = f->series[i];
            if (type == F_HISTOGRAM &&
                (s->n != n || memcmp(s->bounds, bounds, n * sizeof *bounds) != 0)) {
                rc_error("metrics: histogram %s{%s} created again with other bounds", name, labels);
                s = NULL;
            }
            goto done;
        }
    }
    if (f->nseries == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 4;
        struct series **ss = realloc(f->series, cap * sizeof *ss);
        if (!ss)
            goto done;
        f->series = ss;
        f->cap = cap;
    }
    if (!(s = calloc(1, sizeof *s)) || !(s->labels = strdup(labels)))
        goto oom;
    if (type == F_HISTOGRAM) {
        s->n = n;
        s->bounds = malloc((n ? n : 1) * sizeof *s->bounds);
        s->buckets = calloc(n + 1, sizeof *s->buckets);
        if (!s->bounds || !s->buckets)
            goto oom;
        if (n)
            memcpy(s->bounds, bounds, n * sizeof *bounds);
    }
    f->series[f->nseries++] = s;
    goto done;
oom:
    rc_error("metrics: out of memory creating %s", name);
    series_free(s);
    s = NULL;
done:
    pthread_mutex_unlock(&reg_lock);
    return s;
}

rc_counter *rc_metrics_counter(const char *name, const char *help, const char *labels)
{
    return (rc_counter *)series_get(name, help, labels, F_COUNTER, NULL, 0);
}

rc_gauge *rc_metrics_gauge(const char *name, const char *help, const char *labels)
{
    return (rc_gauge *)series_get(name, help, labels, F_GAUGE, NULL, 0);
}

rc_histogram *rc_metrics_histogram(const char *name, const char *help, const char *labels,
                                   const double *bounds, size_t n)
{
    return (rc_histogram *)series_get(name, help, labels, F_HISTOGRAM, bounds, n);
}

static int fn_series(const char *name, const char *help, const char *labels, ftype type,
                     double (*fn)(void *), void *opaque)
{
    struct series *s = series_get(name, help, labels, type, NULL, 0);
    if (!s)
        return -1;
    s->fn = fn;
    s->opaque = opaque;
    return 0;
}

int rc_metrics_gauge_fn(const char *name, const char *help, const char *labels,
                        double (*fn)(void *opaque), void *opaque)
{
    return fn_series(name, help, labels, F_GAUGE, fn, opaque);
}

void rc_counter_add(rc_counter *c, double v)
{
    if (c && v >= 0)
        atomic_add_double(&((struct series *)c)->value, v);
}

void rc_counter_inc(rc_counter *c)
{
    rc_counter_add(c, 1);
}

double rc_counter_value(const rc_counter *c)
{
    return c ? atomic_load_explicit(&((struct series *)c)->value, memory_order_relaxed) : 0;
}

void rc_gauge_set(rc_gauge *g, double v)
{
    if (g)
        atomic_store_explicit(&((struct series *)g)->value, v, memory_order_relaxed);
}

void rc_gauge_add(rc_gauge *g, double v)
{
    if (g)
        atomic_add_double(&((struct series *)g)->value, v);
}

void rc_gauge_inc(rc_gauge *g)
{
    rc_gauge_add(g, 1);
}

void rc_gauge_dec(rc_gauge *g)
{
    rc_gauge_add(g, -1);
}

double rc_gauge_value(const rc_gauge *g)
{
    return g ? atomic_load_explicit(&((struct series *)g)->value, memory_order_relaxed) : 0;
}

void rc_histogram_observe(rc_histogram *h, double v)
{
    struct series *s = (struct series *)h;
    size_t lo = 0, hi;
    if (!s || isnan(v))
        return;
    /* First bound >= v; n when v is above every bound (the +Inf bucket). */
    hi = s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->bounds[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    atomic_fetch_add_explicit(&s->buckets[lo], 1, memory_order_relaxed);
    atomic_add_double(&s->value, v);
}

/* ---- process metrics, read from /proc/self at render time ---- */

static double proc_rss(void *opaque)
{
    long pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%*s %ld", &pages) != 1)
            pages = 0;
        fclose(f);
    }
    return (double)pages * (double)sysconf(_SC_PAGESIZE);
}

/* Reads utime+stime (fields 14, 15) or starttime (22) of /proc/self/stat, in
 * clock ticks.  Returns -1 if unreadable. */
static double proc_stat_field(bool cpu)
{
    char buf[1024], *p;
    unsigned long long utime, stime, start;
    size_t n;
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f)
        return -1;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name may contain spaces and parentheses: skip past the last ')'. */
    if (!(p = strrchr(buf, ')')))
        return -1;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d "
                      "%*d %*d %llu", &utime, &stime, &start) != 3)
        return -1;
    return (double)(cpu ? utime + stime : start);
}

static double proc_cpu(void *opaque)
{
    double t = proc_stat_field(true);
    return t < 0 ? 0 : t / (double)sysconf(_SC_CLK_TCK);
}

static double proc_start(void *opaque)
{
    static double start;
    if (start == 0) {
        char line[256];
        unsigned long long btime = 0;
        FILE *f = fopen("/proc/stat", "r");
        if (!f)
            return 0;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "btime %llu", &btime) == 1)
                break;
        fclose(f);
        double ticks = proc_stat_field(false);
        if (btime == 0 || ticks < 0)
            return 0;
        start = (double)btime + ticks / (double)sysconf(_SC_CLK_TCK);
    }
    return start;
}

static double proc_fds(void *opaque)
{
    double n = 0;
    struct dirent *d;
    DIR *dir = opendir("/proc/self/fd");
    if (!dir)
        return 0;
    while ((d = readdir(dir)))
        if (d->d_name[0] != '.')
            n++;
    closedir(dir);
    return n - 1;       /* opendir's own descriptor */
}

static void register_process_metrics(void)
{
    if (atomic_exchange(&process_registered, true))
        return;
    fn_series("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
              NULL, F_COUNTER, proc_cpu, NULL);
    fn_series("process_resident_memory_bytes", "Resident memory size in bytes.", NULL, F_GAUGE,
              proc_rss, NULL);
    fn_series("process_start_time_seconds",
              "Start time of the process since unix epoch in seconds.", NULL, F_GAUGE,
              proc_start, NULL);
    fn_series("process_open_fds", "Number of open file descriptors.", NULL, F_GAUGE, proc_fds,
              NULL);
}

/* ---- rendering ---- */

/* Shortest text that reads back as the same double. */
static void fmt_double(char *buf, size_t len, double v)
{
    if (isnan(v))
        snprintf(buf, len, "NaN");
    else if (isinf(v))
        snprintf(buf, len, v > 0 ? "+Inf" : "-Inf");
    else if (v == trunc(v) && fabs(v) < 1e15)
        snprintf(buf, len, "%.0f", v);
    else {
        snprintf(buf, len, "%.15g", v);
        if (strtod(buf, NULL) != v)
            snprintf(buf, len, "%.17g", v);
    }
}

static int render_help(struct evbuffer *out, const struct family *f)
{
    if (evbuffer_add_printf(out, "# HELP %s ", f->name) < 0)
        return -1;
    for (const char *p = f->help; *p; p++) {
        int rc;
        if (*p == '\\')
            rc = evbuffer_add(out, "\\\\", 2);
        else if (*p == '\n')
            rc = evbuffer_add(out, "\\n", 2);
        else
            rc = evbuffer_add(out, p, 1);
        if (rc < 0)
            return -1;
    }
    return evbuffer_add_printf(out, "\n# TYPE %s %s\n", f->name, ftype_names[f->type]) < 0 ? -1 : 0;
}

static int render_histogram(struct evbuffer *out, const struct family *f, const struct series *s)
{
    unsigned long long cum = 0;
    const char *sep = *s->labels ? "," : "";
    char num[40];

    for (size_t i = 0; i <= s->n; i++) {
        cum += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
        if (i < s->n)
            fmt_double(num, sizeof num, s->bounds[i]);
        else
            snprintf(num, sizeof num, "+Inf");
        if (evbuffer_add_printf(out, "%s_bucket{%s%sle=\"%s\"} %llu\n", f->name, s->labels, sep,
                                num, cum) < 0)
            return -1;
    }
    fmt_double(num, sizeof num, atomic_load_explicit(&s->value, memory_order_relaxed));
    if (*s->labels) {
        if (evbuffer_add_printf(out, "%s_sum{%s} %s\n%s_count{%s} %llu\n", f->name, s->labels,
                                num, f->name, s->labels, cum) < 0)
            return -1;
    } else if (evbuffer_add_printf(out, "%s_sum %s\n%s_count %llu\n", f->name, num, f->name,
                                   cum) < 0)
        return -1;
    return 0;
}

int rc_metrics_render(struct evbuffer *out)
{
    int rc = -1;

    register_process_metrics();     /* takes the lock itself */
    pthread_mutex_lock(&reg_lock);
    for (size_t i = 0; i < nfamilies; i++) {
        const struct family *f = families[i];
        if (f->nseries == 0)
            continue;
        if (render_help(out, f) < 0)
            goto done;
        for (size_t j = 0; j < f->nseries; j++) {
            const struct series *s = f->series[j];
            char num[40];
            if (f->type == F_HISTOGRAM) {
                if (render_histogram(out, f, s) < 0)
                    goto done;
                continue;
            }
            fmt_double(num, sizeof num,
                       s->fn ? s->fn(s->opaque) : atomic_load_explicit(&s->value, memory_order_relaxed));
            if (evbuffer_add_printf(out, *s->labels ? "%s{%s} %s\n" : "%s%s %s\n", f->name,
                                    s->labels, num) < 0)
                goto done;
        }
    }
    rc = 0;
done:
    pthread_mutex_unlock(&reg_lock);
    return rc;
}

void rc_metrics_reset_for_tests(void)
{
    pthread_mutex_lock(&reg_lock);
    for (size_t i = 0; i < nfamilies; i++) {
        for (size_t j = 0; j < families[i]->nseries; j++)
            series_free(families[i]->series[j]);
        free(families[i]->series);
        free(families[i]->name);
        free(families[i]->help);
        free(families[i]);
    }
    free(families);
    families = NULL;
    nfamilies = capfamilies = 0;
    atomic_store(&process_registered, false);
    pthread_mutex_unlock(&reg_lock);
}
