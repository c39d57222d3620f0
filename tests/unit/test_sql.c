/* Unit tests of the library's text helpers: rc_buf and rc_sqlarr. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "rc_buf.h"
#include "rc_sql.h"

#include <stdlib.h>
#include <string.h>

static void test_buf(void **state)
{
    rc_buf b = RC_BUF_INIT;
    char *s;
    (void)state;

    assert_string_equal(rc_buf_str(&b), "");
    rc_buf_add(&b, "%s=%d", "a", 1);
    rc_buf_addn(&b, ", bc", 3);
    assert_string_equal(rc_buf_str(&b), "a=1, b");
    /* Growing past the first allocation keeps what was there. */
    for (int i = 0; i < 1000; i++)
        rc_buf_add(&b, "%04d", i);
    assert_int_equal(b.len, 6 + 4000);
    assert_memory_equal(b.p + 6 + 4 * 999, "0999", 4);
    rc_buf_clear(&b);
    assert_string_equal(rc_buf_str(&b), "");
    rc_buf_add(&b, "x");
    s = rc_buf_take(&b);
    assert_string_equal(s, "x");
    assert_null(b.p);
    free(s);
    rc_buf_free(&b);
    rc_buf_free(NULL);
}

static void test_sqlarr(void **state)
{
    rc_sqlarr a;
    static const uint8_t bytes[] = {0x00, 0xab};
    (void)state;

    rc_sqlarr_init(&a);
    assert_string_equal(rc_sqlarr_get(&a), "{}");
    rc_sqlarr_text(&a, "plain");
    rc_sqlarr_text(&a, "q\"b\\");
    rc_sqlarr_text(&a, NULL);
    rc_sqlarr_int(&a, -42);
    rc_sqlarr_bool(&a, true);
    rc_sqlarr_bytea(&a, bytes, sizeof bytes);
    assert_int_equal(a.n, 6);
    assert_string_equal(rc_sqlarr_get(&a), "{\"plain\",\"q\\\"b\\\\\",NULL,-42,t,\"\\\\x00ab\"}");
    rc_sqlarr_reset(&a);
    assert_int_equal(a.n, 0);
    rc_sqlarr_int(&a, 7);
    assert_string_equal(rc_sqlarr_get(&a), "{7}");
    rc_sqlarr_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf),
        cmocka_unit_test(test_sqlarr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
