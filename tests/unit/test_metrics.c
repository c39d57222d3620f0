/* Unit tests for rc_metrics: exact exposition lines, shared HELP/TYPE,
 * validation, process metrics, and promtool's verdict on the output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <event2/buffer.h>

#include "rc_metrics.h"

/* Renders the registry into a NUL-terminated malloc'ed string. */
static char *render(void)
{
    struct evbuffer *b = evbuffer_new();
    assert_int_equal(rc_metrics_render(b), 0);
    size_t n = evbuffer_get_length(b);
    char *s = malloc(n + 1);
    evbuffer_remove(b, s, n);
    s[n] = '\0';
    evbuffer_free(b);
    return s;
}

static int reset(void **state)
{
    rc_metrics_reset_for_tests();
    return 0;
}

static void assert_has(const char *text, const char *line)
{
    if (!strstr(text, line))
        fail_msg("missing \"%s\" in:\n%s", line, text);
}

/* Returns 0 when promtool accepts `text`, 77 when promtool is missing. */
static int promtool_check(const char *text)
{
    if (system("command -v promtool >/dev/null 2>&1") != 0)
        return 77;
    char path[] = "/tmp/rc_metrics_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s", path);
    int rc = system(cmd);
    unlink(path);
    return rc;
}

static void test_counters_and_gauges(void **state)
{
    rc_counter *ok = rc_metrics_counter("rc_requests_total", "Requests by status.", "status=\"202\"");
    rc_counter *bad = rc_metrics_counter("rc_requests_total", "ignored", "status=\"400\"");
    rc_gauge *g = rc_metrics_gauge("rc_queue_depth", "Queued reports.", NULL);
    assert_non_null(ok);
    assert_non_null(bad);
    assert_ptr_equal(rc_metrics_counter("rc_requests_total", NULL, "status=\"202\""), ok);
    rc_counter_add(ok, 3);
    rc_counter_inc(ok);
    rc_counter_add(ok, -5);                     /* ignored: counters only go up */
    rc_counter_add(bad, 0.5);
    rc_gauge_set(g, 10);
    rc_gauge_inc(g);
    rc_gauge_dec(g);
    rc_gauge_dec(g);
    rc_gauge_add(g, 0.25);
    assert_true(rc_counter_value(ok) == 4);
    assert_true(rc_gauge_value(g) == 9.25);

    char *t = render();
    assert_has(t, "# HELP rc_requests_total Requests by status.\n"
                  "# TYPE rc_requests_total counter\n"
                  "rc_requests_total{status=\"202\"} 4\n"
                  "rc_requests_total{status=\"400\"} 0.5\n");
    assert_has(t, "# HELP rc_queue_depth Queued reports.\n"
                  "# TYPE rc_queue_depth gauge\n"
                  "rc_queue_depth 9.25\n");
    /* One HELP/TYPE block per family. */
    const char *first = strstr(t, "# TYPE rc_requests_total");
    assert_null(strstr(first + 1, "# TYPE rc_requests_total"));
    /* Families sorted: process_* < rc_queue_depth < rc_requests_total. */
    assert_true(strstr(t, "# TYPE process_cpu_seconds_total counter") <
                strstr(t, "# TYPE process_resident_memory_bytes gauge"));
    assert_true(strstr(t, "process_start_time_seconds ") < strstr(t, "rc_queue_depth 9.25"));
    assert_true(strstr(t, "rc_queue_depth 9.25") < strstr(t, "rc_requests_total{"));
    free(t);
}

static void test_histogram(void **state)
{
    static const double bounds[] = {0.005, 0.1, 1};
    rc_histogram *h = rc_metrics_histogram("rc_latency_seconds", "Latency.", "path=\"/r\"",
                                           bounds, 3);
    rc_histogram *h2 = rc_metrics_histogram("rc_latency_seconds", "Latency.", NULL, bounds, 3);
    assert_non_null(h);
    assert_non_null(h2);
    rc_histogram_observe(h, 0.005);             /* le is inclusive */
    rc_histogram_observe(h, 0.05);
    rc_histogram_observe(h, 0.1);
    rc_histogram_observe(h, 7);
    rc_histogram_observe(h2, 0.001);
    char *t = render();
    assert_has(t, "# HELP rc_latency_seconds Latency.\n"
                  "# TYPE rc_latency_seconds histogram\n"
                  "rc_latency_seconds_bucket{path=\"/r\",le=\"0.005\"} 1\n"
                  "rc_latency_seconds_bucket{path=\"/r\",le=\"0.1\"} 3\n"
                  "rc_latency_seconds_bucket{path=\"/r\",le=\"1\"} 3\n"
                  "rc_latency_seconds_bucket{path=\"/r\",le=\"+Inf\"} 4\n"
                  "rc_latency_seconds_sum{path=\"/r\"} 7.155\n"
                  "rc_latency_seconds_count{path=\"/r\"} 4\n"
                  "rc_latency_seconds_bucket{le=\"0.005\"} 1\n"
                  "rc_latency_seconds_bucket{le=\"0.1\"} 1\n"
                  "rc_latency_seconds_bucket{le=\"1\"} 1\n"
                  "rc_latency_seconds_bucket{le=\"+Inf\"} 1\n"
                  "rc_latency_seconds_sum 0.001\n"
                  "rc_latency_seconds_count 1\n");
    free(t);
    static const double other[] = {1, 2};
    assert_null(rc_metrics_histogram("rc_latency_seconds", "", "path=\"/r\"", other, 2));
    static const double unsorted[] = {2, 1};
    assert_null(rc_metrics_histogram("rc_h2", "", NULL, unsorted, 2));
}

static double seven(void *opaque)
{
    return *(double *)opaque;
}

static void test_validation_and_fn(void **state)
{
    assert_null(rc_metrics_counter("9bad", "", NULL));
    assert_null(rc_metrics_counter("bad-name", "", NULL));
    assert_null(rc_metrics_counter("ok_name", "", "status=202"));
    assert_null(rc_metrics_counter("ok_name", "", "status=\"202\","));
    assert_null(rc_metrics_counter("ok_name", "", "a=\"x\\q\""));
    static const double b[] = {1};
    assert_null(rc_metrics_histogram("h", "", "le=\"1\"", b, 1));
    assert_non_null(rc_metrics_counter("ok:name_total", "", "a=\"x\\\"y\",b_2=\"\""));
    assert_null(rc_metrics_gauge("ok:name_total", "", NULL));  /* type clash */
    rc_counter_inc(NULL);                       /* NULL-safe */
    rc_histogram_observe(NULL, 1);
    rc_gauge_set(NULL, 1);

    double v = 7;
    assert_int_equal(rc_metrics_gauge_fn("rc_pool_size", "Help with \\ and\nnewline.", NULL,
                                         seven, &v), 0);
    char *t = render();
    assert_has(t, "# HELP rc_pool_size Help with \\\\ and\\nnewline.\n# TYPE rc_pool_size gauge\n"
                  "rc_pool_size 7\n");
    assert_has(t, "ok:name_total{a=\"x\\\"y\",b_2=\"\"} 0\n");
    free(t);
}

static void test_process_metrics(void **state)
{
    char *t = render();
    char *p = strstr(t, "\nprocess_resident_memory_bytes ");
    assert_non_null(p);
    assert_true(strtod(p + 31, NULL) > 1e5);
    p = strstr(t, "\nprocess_start_time_seconds ");
    assert_non_null(p);
    double start = strtod(p + 28, NULL);
    assert_true(start > 1.6e9 && start < 4e9);
    assert_non_null(strstr(t, "\nprocess_cpu_seconds_total "));
    p = strstr(t, "\nprocess_open_fds ");
    assert_non_null(p);
    assert_true(strtod(p + 18, NULL) >= 3);
    free(t);
}

static void test_promtool(void **state)
{
    static const double bounds[] = {0.001, 0.01, 0.1};
    rc_counter_add(rc_metrics_counter("rc_reports_total", "Reports.", "kind=\"zero\""), 2);
    rc_counter_add(rc_metrics_counter("rc_reports_total", "Reports.", "kind=\"daily\""), 3);
    rc_gauge_set(rc_metrics_gauge("rc_lag", "Lag.", "topic=\"reports.village\",partition=\"3\""), -1.5);
    rc_histogram_observe(rc_metrics_histogram("rc_flush_seconds", "Flush time.", NULL, bounds, 3), 0.02);
    char *t = render();
    int rc = promtool_check(t);
    free(t);
    if (rc == 77)
        skip();
    assert_int_equal(rc, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_counters_and_gauges, reset, reset),
        cmocka_unit_test_setup_teardown(test_histogram, reset, reset),
        cmocka_unit_test_setup_teardown(test_validation_and_fn, reset, reset),
        cmocka_unit_test_setup_teardown(test_process_metrics, reset, reset),
        cmocka_unit_test_setup_teardown(test_promtool, reset, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
