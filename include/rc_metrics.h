/* rc_metrics — counters, gauges and histograms in one process-wide registry,
 * rendered in the Prometheus text exposition format 0.0.4.
 *
 * A series is a family name plus a fixed label set given at creation as
 * Prometheus text, e.g. "path=\"/report\",code=\"202\"" (NULL for none).
 * Series of one name share one HELP/TYPE block; the first creation's help
 * wins.  Creating the same name and labels again returns the same series, so
 * callers may create lazily.  Creation returns NULL (and logs) when the name
 * or labels are invalid or the name is already a family of another type; all
 * update functions accept NULL and do nothing, so a bad metric never crashes
 * a service.
 *
 * Threads: creation and rendering take a mutex; updates are relaxed C11
 * atomics (lock-free on x86-64), so a series may be updated from any thread.
 * In practice everything runs on the event-loop thread — librdkafka runs its
 * delivery-report and statistics callbacks in whichever thread calls
 * rd_kafka_poll, which is the loop's.  Series live until
 * rc_metrics_reset_for_tests() (or process exit); pointers stay valid. */
#ifndef RC_METRICS_H
#define RC_METRICS_H

#include <stddef.h>

struct evbuffer;

typedef struct rc_counter rc_counter;
typedef struct rc_gauge rc_gauge;
typedef struct rc_histogram rc_histogram;

rc_counter *rc_metrics_counter(const char *name, const char *help, const char *labels);
rc_gauge *rc_metrics_gauge(const char *name, const char *help, const char *labels);

/* `bounds` are the buckets' upper bounds, strictly increasing and finite
 * (+Inf is implicit); copied.  A second creation of the same series must give
 * the same bounds, or NULL is returned. */
rc_histogram *rc_metrics_histogram(const char *name, const char *help, const char *labels,
                                   const double *bounds, size_t n);

/* A gauge whose value is computed at render time (a queue's length, a pool's
 * size).  `fn` runs with the registry mutex held: it must not create metrics.
 * `opaque` is borrowed and must outlive the registry (or the next reset). */
int rc_metrics_gauge_fn(const char *name, const char *help, const char *labels,
                        double (*fn)(void *opaque), void *opaque);

/* Counters only go up: a negative or NaN `v` is ignored. */
void rc_counter_add(rc_counter *c, double v);
void rc_counter_inc(rc_counter *c);
double rc_counter_value(const rc_counter *c);

void rc_gauge_set(rc_gauge *g, double v);
void rc_gauge_add(rc_gauge *g, double v);
void rc_gauge_inc(rc_gauge *g);
void rc_gauge_dec(rc_gauge *g);
double rc_gauge_value(const rc_gauge *g);

/* Counts v into the first bucket whose bound is >= v (Prometheus "le"). */
void rc_histogram_observe(rc_histogram *h, double v);

/* Appends the exposition: families sorted by name, then the process metrics
 * (process_cpu_seconds_total, process_resident_memory_bytes,
 * process_start_time_seconds, process_open_fds from /proc/self) in their
 * sorted places.  Returns 0, or -1 if the buffer could not grow. */
int rc_metrics_render(struct evbuffer *out);

/* Forgets every series; earlier pointers dangle.  Tests only. */
void rc_metrics_reset_for_tests(void);

#endif
