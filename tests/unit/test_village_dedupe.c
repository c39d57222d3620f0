/* Unit tests for the village intake's idempotency window
 * (services/village/dedupe.c, built into this test as PgBouncer's tests
 * build their module sources): lookups, the time window, the bounded ring,
 * and that an entry still in flight is never pushed out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "../../services/village/dedupe.c"

static void id_of(uint32_t i, uint8_t id[16])
{
    memset(id, 0, 16);
    memcpy(id, &i, sizeof i);
    id[15] = 0x5a;
}

static void test_find_and_states(void **state)
{
    dedupe *d = dedupe_new(64, 1000000);
    uint8_t id[16];
    dd_entry e;
    int job;
    int64_t slot;

    id_of(1, id);
    assert_false(dedupe_find(d, id, 0, &e));
    slot = dedupe_add(d, id, 5000, 0, 0xabc, &job);
    assert_true(slot >= 0);
    assert_true(dedupe_find(d, id, 6000, &e));
    assert_int_equal(e.state, DD_INFLIGHT);
    assert_ptr_equal(e.job, &job);
    assert_int_equal(e.version, 5000);
    assert_int_equal(e.fingerprint, 0xabc);
    assert_int_equal(e.submitted_at, 0);

    dedupe_set(d, (uint32_t)slot, DD_DONE, NULL);
    assert_true(dedupe_find(d, id, 6000, &e));
    assert_int_equal(e.state, DD_DONE);
    assert_null(e.job);
    /* Past the window a report_id is new again. */
    assert_true(dedupe_find(d, id, 5000 + 1000000, &e));
    assert_false(dedupe_find(d, id, 5000 + 1000001, &e));
    assert_int_equal(dedupe_size(d), 1);
    dedupe_free(d);
    dedupe_free(NULL);
}

static void test_ring_bound(void **state)
{
    enum { CAP = 100 };
    dedupe *d = dedupe_new(CAP, INT64_MAX / 2);
    uint8_t id[16];
    dd_entry e;

    for (uint32_t i = 0; i < 3 * CAP; i++) {
        int64_t slot;
        id_of(i, id);
        slot = dedupe_add(d, id, i, 0, i, NULL);
        assert_true(slot >= 0);
        dedupe_set(d, (uint32_t)slot, DD_DONE, NULL);
    }
    assert_int_equal(dedupe_size(d), CAP);
    for (uint32_t i = 0; i < 3 * CAP; i++) {
        id_of(i, id);
        assert_int_equal(dedupe_find(d, id, 0, &e), i >= 2 * CAP);
    }
    dedupe_free(d);
}

static void test_inflight_is_kept(void **state)
{
    enum { CAP = 16 };
    dedupe *d = dedupe_new(CAP, INT64_MAX / 2);
    uint8_t id[16];
    dd_entry e;
    int job;

    /* Slot of report 0 stays in flight while many others come and go. */
    id_of(0, id);
    assert_true(dedupe_add(d, id, 1, 0, 1, &job) >= 0);
    for (uint32_t i = 1; i < 10 * CAP; i++) {
        int64_t slot;
        id_of(i, id);
        slot = dedupe_add(d, id, i, 0, i, NULL);
        assert_true(slot >= 0);
        dedupe_set(d, (uint32_t)slot, DD_DONE, NULL);
    }
    id_of(0, id);
    assert_true(dedupe_find(d, id, 0, &e));
    assert_int_equal(e.state, DD_INFLIGHT);
    assert_ptr_equal(e.job, &job);

    /* With every slot in flight there is no room: the caller sheds load. */
    for (uint32_t i = 1000; i < 1000 + CAP - 1; i++) {
        id_of(i, id);
        assert_true(dedupe_add(d, id, i, 0, i, &job) >= 0);
    }
    id_of(5000, id);
    assert_int_equal(dedupe_add(d, id, 1, 0, 1, &job), -1);
    dedupe_free(d);
}

static void test_readd_after_window(void **state)
{
    dedupe *d = dedupe_new(32, 100);
    uint8_t id[16];
    dd_entry e;
    int64_t slot;

    id_of(7, id);
    slot = dedupe_add(d, id, 1000, 0, 1, NULL);
    dedupe_set(d, (uint32_t)slot, DD_DONE, NULL);
    assert_false(dedupe_find(d, id, 2000, &e));
    /* The stale entry is replaced, not duplicated. */
    slot = dedupe_add(d, id, 2000, 0, 2, NULL);
    dedupe_set(d, (uint32_t)slot, DD_FAILED, NULL);
    assert_int_equal(dedupe_size(d), 1);
    assert_true(dedupe_find(d, id, 2050, &e));
    assert_int_equal(e.state, DD_FAILED);
    assert_int_equal(e.version, 2000);
    assert_int_equal(e.fingerprint, 2);
    dedupe_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find_and_states),
        cmocka_unit_test(test_ring_bound),
        cmocka_unit_test(test_inflight_is_kept),
        cmocka_unit_test(test_readd_after_window),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
