/* Unit tests for rc_probe: the check names the first cause, answers from
 * the last round without waiting, and turns healthy again by itself.  A
 * PostgreSQL that refuses is a DSN on a port nothing listens on; Kafka is
 * not needed (the probe's Kafka path is rc_kafka_ping, tested with the
 * broker in the integration tests). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "rc_log.h"
#include "rc_probe.h"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_pg_refused(void **state)
{
    char err[256] = "", msg[256] = "";
    rc_probe *p = rc_probe_new("host=127.0.0.1 port=1 connect_timeout=2 dbname=none", "test-probe", NULL,
                               NULL, NULL, err, sizeof err);

    assert_non_null(p);
    /* The first round ran before rc_probe_new returned. */
    assert_int_equal(rc_probe_check(p, msg, sizeof msg), 1);
    assert_false(rc_probe_pg_ok(p));
    assert_true(rc_probe_kafka_ok(p));     /* not probed */
    assert_int_equal(strncmp(msg, "postgresql: ", 12), 0);
    /* libpq's reason, not the DSN, fills the line. */
    assert_null(strstr(msg, "port=1"));
    assert_non_null(strstr(msg, "refused"));
    rc_probe_free(p);
    rc_probe_free(NULL);
}

static atomic_int failing;
static atomic_int rounds;

static int round_fn(void *opaque, rc_pg *pg, char *msg, size_t len)
{
    (void)opaque;
    assert_null(pg);                       /* PostgreSQL not probed */
    atomic_fetch_add(&rounds, 1);
    if (!atomic_load(&failing))
        return 0;
    snprintf(msg, len, "stalled: lane 0 failing");
    return 1;
}

static void test_round_and_recovery(void **state)
{
    char err[256] = "", msg[256] = "";
    rc_probe *p;
    int64_t t0;

    atomic_store(&failing, 1);
    p = rc_probe_new(NULL, NULL, NULL, round_fn, NULL, err, sizeof err);
    assert_non_null(p);
    assert_int_equal(rc_probe_check(p, msg, sizeof msg), 1);
    assert_string_equal(msg, "stalled: lane 0 failing");
    /* While failing the rounds come every 250 ms: healthy again within a
     * second of the cause going away, without anyone asking. */
    atomic_store(&failing, 0);
    t0 = now_ms();
    while (rc_probe_check(p, msg, sizeof msg) != 0 && now_ms() - t0 < 5000)
        usleep(20 * 1000);
    assert_int_equal(rc_probe_check(p, msg, sizeof msg), 0);
    assert_true(now_ms() - t0 < 1000);
    assert_true(atomic_load(&rounds) >= 2);
    /* Stopping does not wait out the 2 s between healthy rounds. */
    t0 = now_ms();
    rc_probe_free(p);
    assert_true(now_ms() - t0 < 500);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pg_refused),
        cmocka_unit_test(test_round_and_recovery),
    };
    rc_log_init("test", RC_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
