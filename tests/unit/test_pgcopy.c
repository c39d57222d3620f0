/* Unit tests of rc_pgcopy: the exact bytes of PostgreSQL's binary COPY
 * format (signature, per-field lengths, network byte order, epochs). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "rc_pgcopy.h"

static void test_header_and_trailer(void **state)
{
    rc_pgcopy c;
    (void)state;
    rc_pgcopy_init(&c);
    rc_pgcopy_header(&c);
    assert_int_equal(c.len, 19);
    assert_memory_equal(c.buf, "PGCOPY\n\377\r\n\0", 11);
    assert_memory_equal(c.buf + 11, "\0\0\0\0\0\0\0\0", 8);
    rc_pgcopy_trailer(&c);
    assert_int_equal(c.len, 21);
    assert_memory_equal(c.buf + 19, "\377\377", 2);
    assert_false(c.failed);
    rc_pgcopy_release(&c);
    assert_null(c.buf);
}

static void test_fields(void **state)
{
    rc_pgcopy c;
    (void)state;
    rc_pgcopy_init(&c);
    rc_pgcopy_row(&c, 3);
    rc_pgcopy_int8(&c, -2);
    rc_pgcopy_text(&c, "ab");
    rc_pgcopy_null(&c);
    static const unsigned char want[] = {0, 3,                                   /* fields */
                                         0, 0, 0, 8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
                                         0, 0, 0, 2, 'a', 'b',                   /* text */
                                         0xff, 0xff, 0xff, 0xff};                /* NULL */
    assert_int_equal(c.len, sizeof want);
    assert_memory_equal(c.buf, want, sizeof want);

    rc_pgcopy_clear(&c);
    rc_pgcopy_int2(&c, 0x0102);
    rc_pgcopy_int4(&c, 0x01020304);
    rc_pgcopy_bool(&c, true);
    static const unsigned char want2[] = {0, 0, 0, 2, 1, 2, 0, 0, 0, 4, 1, 2, 3, 4, 0, 0, 0, 1, 1};
    assert_int_equal(c.len, sizeof want2);
    assert_memory_equal(c.buf, want2, sizeof want2);
    rc_pgcopy_release(&c);
}

static void test_epochs_and_jsonb(void **state)
{
    rc_pgcopy c;
    (void)state;
    rc_pgcopy_init(&c);
    rc_pgcopy_date(&c, 10957);                          /* 2000-01-01 is day 0 */
    rc_pgcopy_timestamptz(&c, RC_PGCOPY_EPOCH_US + 1);  /* 2000-01-01 00:00:00.000001 UTC */
    rc_pgcopy_jsonb(&c, "{}", 2);
    static const unsigned char want[] = {0, 0, 0, 4, 0, 0, 0, 0,
                                         0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1,
                                         0, 0, 0, 3, 1, '{', '}'};
    assert_int_equal(c.len, sizeof want);
    assert_memory_equal(c.buf, want, sizeof want);
    rc_pgcopy_release(&c);
}

static void test_grows(void **state)
{
    rc_pgcopy c;
    char big[100000];
    (void)state;
    memset(big, 'x', sizeof big);
    rc_pgcopy_init(&c);
    for (int i = 0; i < 20; i++)
        rc_pgcopy_bytes(&c, big, sizeof big);
    assert_false(c.failed);
    assert_int_equal(c.len, 20 * (4 + sizeof big));
    assert_true(c.cap >= c.len);
    rc_pgcopy_release(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_and_trailer),
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_epochs_and_jsonb),
        cmocka_unit_test(test_grows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
