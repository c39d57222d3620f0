/* Unit tests for the database-free parts of rc_migrate: file names,
 * ordering, gaps and duplicates, checksums, the plan against applied rows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "rc_migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void test_parse_filename(void **state)
{
    char name[64], err[256];
    int v = -1;
    (void)state;

    assert_int_equal(rc_migrate_parse_filename("001_init.sql", &v, name, sizeof name, err, sizeof err), 1);
    assert_int_equal(v, 1);
    assert_string_equal(name, "init");
    assert_int_equal(rc_migrate_parse_filename("012_dead_letter_2.sql", &v, name, sizeof name, err, sizeof err), 1);
    assert_int_equal(v, 12);
    assert_string_equal(name, "dead_letter_2");
    /* Not migrations at all: ignored. */
    assert_int_equal(rc_migrate_parse_filename("README.md", &v, name, sizeof name, err, sizeof err), 0);
    assert_int_equal(rc_migrate_parse_filename("001_init.sql~", &v, name, sizeof name, err, sizeof err), 0);
    /* Malformed .sql names: errors naming the file. */
    assert_int_equal(rc_migrate_parse_filename("1_init.sql", &v, name, sizeof name, err, sizeof err), -1);
    assert_non_null(strstr(err, "1_init.sql"));
    assert_int_equal(rc_migrate_parse_filename("001init.sql", &v, name, sizeof name, err, sizeof err), -1);
    assert_int_equal(rc_migrate_parse_filename("001_.sql", &v, name, sizeof name, err, sizeof err), -1);
    assert_int_equal(rc_migrate_parse_filename("001_Init.sql", &v, name, sizeof name, err, sizeof err), -1);
    assert_int_equal(rc_migrate_parse_filename("000_zero.sql", &v, name, sizeof name, err, sizeof err), -1);
}

static void test_sha256(void **state)
{
    char hex[65];
    (void)state;
    rc_migrate_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    rc_migrate_sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static rc_migration mk(int version, const char *file)
{
    rc_migration m;
    memset(&m, 0, sizeof m);
    m.version = version;
    snprintf(m.file, sizeof m.file, "%s", file);
    return m;
}

static void test_sequence(void **state)
{
    char err[256];
    rc_migration ok[3] = {mk(3, "003_c.sql"), mk(1, "001_a.sql"), mk(2, "002_b.sql")};
    rc_migration gap[2] = {mk(1, "001_a.sql"), mk(3, "003_c.sql")};
    rc_migration dup[3] = {mk(2, "002_b.sql"), mk(1, "001_a.sql"), mk(2, "002_bb.sql")};
    rc_migration late_start[1] = {mk(2, "002_b.sql")};
    rc_migration_set s;
    (void)state;

    s = (rc_migration_set){ok, 3};
    assert_int_equal(rc_migrate_check_sequence(&s, err, sizeof err), 0);
    assert_string_equal(ok[0].file, "001_a.sql");
    assert_string_equal(ok[2].file, "003_c.sql");

    s = (rc_migration_set){gap, 2};
    assert_int_equal(rc_migrate_check_sequence(&s, err, sizeof err), -1);
    assert_non_null(strstr(err, "gap"));
    assert_non_null(strstr(err, "003_c.sql"));

    s = (rc_migration_set){dup, 3};
    assert_int_equal(rc_migrate_check_sequence(&s, err, sizeof err), -1);
    assert_non_null(strstr(err, "duplicate"));
    assert_non_null(strstr(err, "002_b.sql"));
    assert_non_null(strstr(err, "002_bb.sql"));

    s = (rc_migration_set){late_start, 1};
    assert_int_equal(rc_migrate_check_sequence(&s, err, sizeof err), -1);
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void remove_dir(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_load_dir_and_plan(void **state)
{
    char dir[] = "/tmp/rc_migrate_test_XXXXXX";
    char err[512];
    rc_migration_set set = {NULL, 0};
    size_t first = 99;
    char abc[65];
    (void)state;

    assert_non_null(mkdtemp(dir));
    write_file(dir, "002_more.sql", "CREATE TABLE b (x int);\n");
    write_file(dir, "001_init.sql", "abc");
    write_file(dir, "README", "not a migration");
    assert_int_equal(rc_migrate_load_dir(dir, &set, err, sizeof err), 0);
    assert_int_equal(set.count, 2);
    assert_int_equal(set.items[0].version, 1);
    assert_string_equal(set.items[0].file, "001_init.sql");
    assert_string_equal(set.items[0].name, "init");
    assert_string_equal(set.items[0].sql, "abc");
    rc_migrate_sha256_hex("abc", 3, abc);
    assert_string_equal(set.items[0].checksum, abc);
    assert_string_equal(set.items[1].name, "more");

    /* Nothing applied: start at 0.  One applied, matching: start at 1. */
    assert_int_equal(rc_migrate_plan(&set, NULL, 0, &first, err, sizeof err), 0);
    assert_int_equal(first, 0);
    rc_migration_applied a1[] = {{1, "init", abc}};
    assert_int_equal(rc_migrate_plan(&set, a1, 1, &first, err, sizeof err), 0);
    assert_int_equal(first, 1);
    rc_migration_applied a2[] = {{1, "init", abc}, {2, "more", set.items[1].checksum}};
    assert_int_equal(rc_migrate_plan(&set, a2, 2, &first, err, sizeof err), 0);
    assert_int_equal(first, 2);

    /* A changed applied file: refused, naming the file and both checksums. */
    rc_migration_applied changed[] = {{1, "init", "00ff"}};
    assert_int_equal(rc_migrate_plan(&set, changed, 1, &first, err, sizeof err), -1);
    assert_non_null(strstr(err, "001_init.sql"));
    assert_non_null(strstr(err, "00ff"));
    assert_non_null(strstr(err, abc));

    /* The database is ahead of the files. */
    rc_migration_applied ahead[] = {{1, "init", abc}, {2, "more", set.items[1].checksum},
                                    {3, "future", "x"}};
    assert_int_equal(rc_migrate_plan(&set, ahead, 3, &first, err, sizeof err), -1);
    assert_non_null(strstr(err, "003_future"));
    rc_migrate_set_clear(&set);
    assert_int_equal(set.count, 0);

    /* A gap on disk fails the load and leaves the set empty. */
    write_file(dir, "004_skip.sql", "SELECT 1;");
    assert_int_equal(rc_migrate_load_dir(dir, &set, err, sizeof err), -1);
    assert_non_null(strstr(err, "004_skip.sql"));
    assert_null(set.items);

    /* A malformed .sql name fails the load. */
    write_file(dir, "3_oops.sql", "SELECT 1;");
    assert_int_equal(rc_migrate_load_dir(dir, &set, err, sizeof err), -1);
    remove_dir(dir);

    assert_int_equal(rc_migrate_load_dir("/nonexistent/rc", &set, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/rc"));
}

static void test_repository_migrations_load(void **state)
{
    char err[512];
    rc_migration_set set = {NULL, 0};
    (void)state;
    /* The real migrations/ directory must always be loadable. */
    if (access("migrations", F_OK) != 0)
        skip();
    assert_int_equal(rc_migrate_load_dir("migrations", &set, err, sizeof err), 0);
    assert_true(set.count >= 1);
    assert_string_equal(set.items[0].file, "001_baseline.sql");
    rc_migrate_set_clear(&set);
}

static void test_expand(void **state)
{
    rc_indicator_list ind = {2, {"a_b", "c"}};
    char *out = NULL, err[256];
    (void)state;

    assert_int_equal(rc_migrate_expand("SELECT @indicators(x.{}), 1", &ind, &out, err, sizeof err), 0);
    assert_string_equal(out, "SELECT x.a_b, x.c, 1");
    free(out);
    /* Nested parentheses and several {} in one template. */
    assert_int_equal(rc_migrate_expand("(@indicators(coalesce(sum(l.{}), 0) AS {}))", &ind, &out,
                                       err, sizeof err), 0);
    assert_string_equal(out, "(coalesce(sum(l.a_b), 0) AS a_b, coalesce(sum(l.c), 0) AS c)");
    free(out);
    /* Text without the macro, and '@' operators, pass unchanged. */
    assert_int_equal(rc_migrate_expand("SELECT '{}'::jsonb @> '{}'", &ind, &out, err, sizeof err), 0);
    assert_string_equal(out, "SELECT '{}'::jsonb @> '{}'");
    free(out);
    out = NULL;
    assert_int_equal(rc_migrate_expand("x\n@indicators(a.{}", &ind, &out, err, sizeof err), -1);
    assert_null(out);
    assert_non_null(strstr(err, "line 2"));
}

static void test_read_proto(void **state)
{
    char dir[] = "/tmp/rc_migrate_proto_XXXXXX", path[600], err[256];
    rc_indicator_list ind, built;
    FILE *f;
    (void)state;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/x.proto", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("message Other { int64 no = 1; }\n"
          "message Indicators {\n"
          "  // screening\n"
          "  int64 second = 2;  // said second\n"
          "  /* int64 commented = 9; */\n"
          "  int64 first = 1;\n"
          "}\n", f);
    fclose(f);
    assert_int_equal(rc_migrate_read_proto(path, &ind, err, sizeof err), 0);
    assert_int_equal(ind.count, 2);
    assert_string_equal(ind.name[0], "first");   /* field-number order */
    assert_string_equal(ind.name[1], "second");

    f = fopen(path, "w");
    fputs("message Indicators { string label = 1; }\n", f);
    fclose(f);
    assert_int_equal(rc_migrate_read_proto(path, &ind, err, sizeof err), -1);
    assert_non_null(strstr(err, "label"));
    unlink(path);
    rmdir(dir);

    /* The repository's .proto is what this library was built with. */
    if (access("proto/rollcall.proto", F_OK) != 0)
        skip();
    assert_int_equal(rc_migrate_read_proto("proto/rollcall.proto", &ind, err, sizeof err), 0);
    rc_migrate_built_indicators(&built);
    assert_int_equal(ind.count, built.count);
    for (size_t i = 0; i < ind.count; i++)
        assert_string_equal(ind.name[i], built.name[i]);
}

static void test_baseline_numbering(void **state)
{
    char err[256];
    size_t first = 99;
    rc_migration files[2] = {mk(7, "007_access.sql"), mk(1, "001_baseline.sql")};
    rc_migration no_base[2] = {mk(1, "001_init.sql"), mk(7, "007_access.sql")};
    rc_migration_set s = {files, 2};
    (void)state;

    snprintf(files[0].name, sizeof files[0].name, "access");
    snprintf(files[1].name, sizeof files[1].name, "baseline");
    snprintf(files[0].checksum, sizeof files[0].checksum, "c7");
    snprintf(files[1].checksum, sizeof files[1].checksum, "c1");
    snprintf(no_base[0].name, sizeof no_base[0].name, "init");
    /* The numbers a baseline squashed may be skipped after it, and only there. */
    assert_int_equal(rc_migrate_check_sequence(&s, err, sizeof err), 0);
    s = (rc_migration_set){no_base, 2};
    assert_int_equal(rc_migrate_check_sequence(&s, err, sizeof err), -1);
    assert_non_null(strstr(err, "007_access.sql"));

    s = (rc_migration_set){files, 2};
    rc_migration_applied base[] = {{1, "baseline", "c1"}};
    assert_int_equal(rc_migrate_plan(&s, base, 1, &first, err, sizeof err), 0);
    assert_int_equal(first, 1);
    rc_migration_applied both[] = {{1, "baseline", "c1"}, {7, "access", "c7"}};
    assert_int_equal(rc_migrate_plan(&s, both, 2, &first, err, sizeof err), 0);
    assert_int_equal(first, 2);
    rc_migration_applied only7[] = {{7, "access", "c7"}};
    assert_int_equal(rc_migrate_plan(&s, only7, 1, &first, err, sizeof err), -1);

    /* The chain the baseline squashed, as recorded by a database of before. */
    rc_migration_applied chain[] = {
        {1, "init", "cf079af99d6944f2015d1018c381a0963c72d09a1bc0df68576ee22a62507a7f"},
        {2, "village", "0e8822294330a91cd71d5a827233ea6c93b9b58496b7668517fc8b26081ccd66"},
        {3, "rollup", "813987d2908e8f473c7a03c3633ffc919045b0f2b7c14e2ab2bb8a36131c82bc"},
        {4, "levels", "3c4a364f99e7c27b7d4c186491107b3f0b183e9d29ba7f2c72fec0ea5803904b"},
        {5, "sweep", "efa1e4f6ac368f12672cf4bf98618d57fb08e4c6149a2ba831950ce15952ae78"},
        {6, "township_refresh", "0877e7daa68eca045f2c56931d3f273f0424de2d46f2cd649f72668eef2588ac"},
    };
    assert_int_equal(rc_migrate_squashed_chain(chain, 6), 1);
    assert_int_equal(rc_migrate_squashed_chain(chain, 5), -1);
    assert_int_equal(rc_migrate_squashed_chain(base, 1), 0);
    assert_int_equal(rc_migrate_squashed_chain(NULL, 0), 0);
    chain[3].checksum = "edited";
    assert_int_equal(rc_migrate_squashed_chain(chain, 6), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_filename),
        cmocka_unit_test(test_sha256),
        cmocka_unit_test(test_sequence),
        cmocka_unit_test(test_load_dir_and_plan),
        cmocka_unit_test(test_repository_migrations_load),
        cmocka_unit_test(test_expand),
        cmocka_unit_test(test_read_proto),
        cmocka_unit_test(test_baseline_numbering),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
