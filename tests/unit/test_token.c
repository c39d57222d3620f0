/* Unit tests for rc_token: generated tokens, SHA-256 hex, subtree scope,
 * and the token map (put/get/del, growth, deletion inside clusters, the
 * mark-and-sweep reload). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "rc_token.h"

static void test_generate(void **state)
{
    char a[RC_TOKEN_LEN + 1], b[RC_TOKEN_LEN + 1];

    assert_int_equal(rc_token_generate(a), 0);
    assert_int_equal(rc_token_generate(b), 0);
    assert_int_equal(strlen(a), RC_TOKEN_LEN);
    assert_string_not_equal(a, b);
    for (int i = 0; i < RC_TOKEN_LEN; i++)
        assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", a[i]));
}

static void test_hash_hex(void **state)
{
    char hex[RC_TOKEN_HEX_LEN + 1];
    uint8_t raw[RC_TOKEN_HASH_LEN], back[RC_TOKEN_HASH_LEN];

    rc_token_hash_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    rc_token_hash("abc", 3, raw);
    assert_int_equal(rc_token_hash_from_hex(hex, back), 0);
    assert_memory_equal(raw, back, sizeof raw);
    assert_int_equal(rc_token_hash_from_hex("zz", back), -1);
    hex[10] = 'g';
    assert_int_equal(rc_token_hash_from_hex(hex, back), -1);
}

static void test_covers(void **state)
{
    assert_true(rc_token_covers("130102001001", "130102001001"));
    assert_true(rc_token_covers("130102001", "130102001001"));
    assert_false(rc_token_covers("130102001001", "130102001002"));
    assert_false(rc_token_covers("130102002", "130102001001"));
    assert_false(rc_token_covers("", "130102001001"));
}

static void hash_of(int i, uint8_t out[RC_TOKEN_HASH_LEN])
{
    char t[32];
    snprintf(t, sizeof t, "token-%d", i);
    rc_token_hash(t, strlen(t), out);
}

static void unit_of(int i, char out[13])
{
    snprintf(out, 13, "1301020%02d%03d", i % 16 + 1, i % 1000);
}

static void test_map(void **state)
{
    enum { N = 20000 };
    rc_token_map *m = rc_token_map_new();
    uint8_t h[RC_TOKEN_HASH_LEN];
    char unit[13], want[13];

    assert_non_null(m);
    for (int i = 0; i < N; i++) {
        hash_of(i, h);
        unit_of(i, want);
        assert_int_equal(rc_token_map_put(m, h, want), 0);
    }
    assert_int_equal(rc_token_map_size(m), N);
    for (int i = 0; i < N; i++) {
        hash_of(i, h);
        unit_of(i, want);
        assert_true(rc_token_map_get(m, h, unit));
        assert_string_equal(unit, want);
    }
    hash_of(N, h);
    assert_false(rc_token_map_get(m, h, unit));

    /* Short codes survive the packing; bad codes are refused. */
    hash_of(0, h);
    assert_int_equal(rc_token_map_put(m, h, "13"), 0);
    assert_true(rc_token_map_get(m, h, unit));
    assert_string_equal(unit, "13");
    assert_int_equal(rc_token_map_put(m, h, "1x"), -1);
    assert_int_equal(rc_token_map_put(m, h, "1234567890123"), -1);
    assert_int_equal(rc_token_map_size(m), N);

    /* Reserving room keeps every entry. */
    assert_int_equal(rc_token_map_reserve(m, 4 * N), 0);
    assert_int_equal(rc_token_map_size(m), N);
    hash_of(N - 1, h);
    assert_true(rc_token_map_get(m, h, NULL));

    /* Every other entry removed: the rest stay reachable. */
    for (int i = 0; i < N; i += 2) {
        hash_of(i, h);
        assert_true(rc_token_map_del(m, h));
        assert_false(rc_token_map_del(m, h));
    }
    assert_int_equal(rc_token_map_size(m), N / 2);
    for (int i = 1; i < N; i += 2) {
        hash_of(i, h);
        unit_of(i, want);
        assert_true(rc_token_map_get(m, h, unit));
        assert_string_equal(unit, want);
    }
    for (int i = 0; i < N; i += 2) {
        hash_of(i, h);
        assert_false(rc_token_map_get(m, h, NULL));
    }
    rc_token_map_free(m);
    rc_token_map_free(NULL);
}

static void test_mark_sweep(void **state)
{
    enum { N = 5000 };
    rc_token_map *m = rc_token_map_new();
    uint8_t h[RC_TOKEN_HASH_LEN];
    char unit[13];

    for (int i = 0; i < N; i++) {
        hash_of(i, h);
        unit_of(i, unit);
        rc_token_map_put(m, h, unit);
    }
    /* A reload that sees only the multiples of 3, plus one new token. */
    rc_token_map_mark(m);
    for (int i = 0; i < N; i += 3) {
        hash_of(i, h);
        unit_of(i, unit);
        rc_token_map_put(m, h, unit);
    }
    hash_of(N + 1, h);
    rc_token_map_put(m, h, "130102001001");
    assert_int_equal(rc_token_map_sweep(m), N - (N + 2) / 3);
    assert_int_equal(rc_token_map_size(m), (N + 2) / 3 + 1);
    for (int i = 0; i < N; i++) {
        hash_of(i, h);
        assert_int_equal(rc_token_map_get(m, h, NULL), i % 3 == 0);
    }
    hash_of(N + 1, h);
    assert_true(rc_token_map_get(m, h, unit));
    assert_string_equal(unit, "130102001001");

    /* A second reload that sees everything removes nothing. */
    rc_token_map_mark(m);
    for (int i = 0; i < N; i += 3) {
        hash_of(i, h);
        unit_of(i, unit);
        rc_token_map_put(m, h, unit);
    }
    hash_of(N + 1, h);
    rc_token_map_put(m, h, "130102001001");
    assert_int_equal(rc_token_map_sweep(m), 0);
    rc_token_map_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate),
        cmocka_unit_test(test_hash_hex),
        cmocka_unit_test(test_covers),
        cmocka_unit_test(test_map),
        cmocka_unit_test(test_mark_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
