/* Integration test for rc_registry_load_pg against a real PostgreSQL
 * (ROLLCALL_PG_DSN): the sample county is written into rollcall.unit inside
 * a transaction that is rolled back, loaded with COPY, and checked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libpq-fe.h>

#include "rc_registry.h"

static void exec_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);

    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        print_message("%s: %s", sql, PQerrorMessage(c));
        PQclear(r);
        PQfinish(c);
        skip();
    }
    PQclear(r);
}

static void test_load_pg(void **state)
{
    const char *dsn = getenv("ROLLCALL_PG_DSN"), *data = getenv("ROLLCALL_TEST_DATA");
    char path[512], line[512], err[512] = "";
    PGconn *c;
    FILE *f;
    PGresult *res;
    rc_registry *reg;

    (void)state;
    if (!dsn || !dsn[0]) {
        print_message("ROLLCALL_PG_DSN not set: skipped\n");
        skip();
    }
    c = PQconnectdb(dsn);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    exec_ok(c, "BEGIN");
    exec_ok(c, "CREATE SCHEMA IF NOT EXISTS rollcall");
    exec_ok(c, "CREATE TABLE IF NOT EXISTS rollcall.unit (code text PRIMARY KEY, name text, level smallint)");
    /* COPY the sample through a temporary table so that a real rollcall.unit
     * with more columns still accepts (code, name, level). */
    exec_ok(c, "CREATE TEMP TABLE sample (code text, name text, parent_code text, level text) ON COMMIT DROP");
    res = PQexec(c, "COPY sample FROM STDIN (FORMAT csv, HEADER true)");
    assert_int_equal(PQresultStatus(res), PGRES_COPY_IN);
    PQclear(res);
    snprintf(path, sizeof path, "%s/registry-130102.csv", data ? data : "tests/data");
    f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof line, f))
        assert_int_equal(PQputCopyData(c, line, (int)strlen(line)), 1);
    fclose(f);
    assert_int_equal(PQputCopyEnd(c, NULL), 1);
    res = PQgetResult(c);
    assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
    exec_ok(c, "INSERT INTO rollcall.unit (code, name, level) "
               "SELECT code, name || E'\\t\\\\x', CASE level WHEN 'village' THEN 1 WHEN 'township' THEN 2 "
               "WHEN 'county' THEN 3 WHEN 'prefecture' THEN 4 ELSE 5 END FROM sample "
               "ON CONFLICT (code) DO NOTHING");

    reg = rc_registry_new(true);
    if (rc_registry_load_pg(reg, c, err, sizeof err) != 0)
        fail_msg("load: %s", err);
    assert_int_equal(rc_registry_level(reg, "130102001001"), 1);
    assert_int_equal(rc_registry_expected_children(reg, "130102"), 16);
    assert_int_equal(rc_registry_expected_children(reg, "130102001"), 10);
    assert_true(rc_registry_count(reg, 1) >= 174);
    /* COPY's text escapes are undone (a tab and a backslash were appended,
     * unless the table already held the county) */
    {
        const char *name = rc_registry_name(reg, "130102");

        assert_non_null(name);
        if (strcmp(name, "长安区\t\\x") != 0 && strcmp(name, "长安区") != 0)
            fail_msg("name not unescaped: \"%s\"", name);
    }
    rc_registry_free(reg);

    /* a second load on the same connection works: the COPY was drained */
    reg = rc_registry_new(false);
    assert_int_equal(rc_registry_load_pg(reg, c, err, sizeof err), 0);
    assert_null(rc_registry_name(reg, "130102"));
    rc_registry_free(reg);
    exec_ok(c, "ROLLBACK");
    PQfinish(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_pg),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
