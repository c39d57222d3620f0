/* Unit tests of the error classes (lib/pg.c) and the UTF-8 rules (lib/dlq.c)
 * that decide between retry and dead letter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "rc_dlq.h"
#include "rc_pg.h"

static void test_sqlstate_classes(void **state)
{
    (void)state;
    static const char *const data[] = {"22021", "22003", "22008", "22P02", "23505", "23503",
                                       "42601", "42804", "54000", "54001"};
    static const char *const transient[] = {"40001", "40P01", "55P03", "57P01", "57014",
                                            "08006", "08001", "53300", "58030"};
    static const char *const other[] = {"42P01", "42501", "42703", "42883", "XX000", "25P02"};
    for (size_t i = 0; i < sizeof data / sizeof *data; i++)
        assert_int_equal(rc_pg_sqlstate_class(data[i]), RC_PG_ERR_DATA);
    for (size_t i = 0; i < sizeof transient / sizeof *transient; i++)
        assert_int_equal(rc_pg_sqlstate_class(transient[i]), RC_PG_ERR_TRANSIENT);
    for (size_t i = 0; i < sizeof other / sizeof *other; i++)
        assert_int_equal(rc_pg_sqlstate_class(other[i]), RC_PG_ERR_OTHER);
    assert_int_equal(rc_pg_sqlstate_class(NULL), RC_PG_ERR_TRANSIENT);
    assert_int_equal(rc_pg_sqlstate_class(""), RC_PG_ERR_TRANSIENT);
    assert_int_equal(rc_pg_error_classify("transaction lost (connection was reset)"),
                     RC_PG_ERR_TRANSIENT);
    assert_int_equal(rc_pg_error_classify("invalid byte sequence for encoding \"UTF8\": 0xff "
                                          "(SQLSTATE 22021)"),
                     RC_PG_ERR_DATA);
    /* a hostile value quoted in the detail does not change the class */
    assert_int_equal(rc_pg_error_classify("refused (SQLSTATE 22023; value \"(SQLSTATE 40001)\")"),
                     RC_PG_ERR_DATA);
    assert_int_equal(rc_pg_last_error_class(NULL), RC_PG_ERR_TRANSIENT);
}

static void test_utf8(void **state)
{
    (void)state;
    assert_true(rc_utf8_valid("plain", 5));
    assert_true(rc_utf8_valid("\xe6\x9d\x91\xe5\xa7\x94", 6));             /* 村委 */
    assert_true(rc_utf8_valid("\xf0\x9f\x98\x80", 4));                     /* U+1F600 */
    assert_false(rc_utf8_valid("a\xff" "b", 3));
    assert_false(rc_utf8_valid("\xc0\xaf", 2));                            /* overlong */
    assert_false(rc_utf8_valid("\xed\xa0\x80", 3));                        /* surrogate */
    assert_false(rc_utf8_valid("\xf4\x90\x80\x80", 4));                    /* > U+10FFFF */
    assert_false(rc_utf8_valid("\xe6\x9d", 2));                            /* cut short */
    assert_false(rc_utf8_valid("a\0b", 3));

    char out[8];
    assert_string_equal(rc_utf8_sanitize(out, sizeof out, "a\xff" "b"), "a?b");
    /* cut at a character boundary */
    assert_string_equal(rc_utf8_sanitize(out, sizeof out, "ab\xe6\x9d\x91\xe5\xa7\x94"),
                        "ab\xe6\x9d\x91");
    assert_string_equal(rc_utf8_sanitize(out, sizeof out, NULL), "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sqlstate_classes),
        cmocka_unit_test(test_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
