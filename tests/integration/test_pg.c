/* Integration tests for rc_pg and rc_migrate against a real PostgreSQL
 * (ROLLCALL_PG_DSN): exec, prepared statements, COPY, reconnection after the
 * backend is killed, migrations (fresh, no-op, changed file), and the
 * dashboard views.  Everything happens in a scratch database
 * rollcall_test_<pid>, dropped at the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "rc_migrate.h"
#include "rc_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *base_dsn;      /* NULL: skip everything */
static char dbname[64];
static char test_dsn[2048];
static PGconn *admin;             /* on base_dsn: create/drop, terminate backends */
static rc_pg *pg;                 /* on the scratch database */

static const char *migrations_dir(void)
{
    const char *d = getenv("ROLLCALL_MIGRATIONS");
    return d && d[0] ? d : "migrations";
}

/* Rebuilds base_dsn as keyword=value pairs with dbname replaced. */
static int make_test_dsn(void)
{
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(base_dsn, &err), *o;
    size_t n = 0;
    if (!opts) {
        PQfreemem(err);
        return -1;
    }
    for (o = opts; o->keyword; o++) {
        if (!o->val || !o->val[0] || strcmp(o->keyword, "dbname") == 0)
            continue;
        n += (size_t)snprintf(test_dsn + n, sizeof test_dsn - n, "%s='%s' ", o->keyword, o->val);
    }
    snprintf(test_dsn + n, sizeof test_dsn - n, "dbname=%s", dbname);
    PQconninfoFree(opts);
    return 0;
}

static void admin_command(const char *sql)
{
    PGresult *r = PQexec(admin, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(admin));
    PQclear(r);
}

static int group_setup(void **state)
{
    char sql[128], err[512];
    (void)state;
    base_dsn = getenv("ROLLCALL_PG_DSN");
    if (!base_dsn || !base_dsn[0]) {
        base_dsn = NULL;
        return 0;
    }
    admin = PQconnectdb(base_dsn);
    if (PQstatus(admin) != CONNECTION_OK) {
        fprintf(stderr, "cannot connect to ROLLCALL_PG_DSN: %s", PQerrorMessage(admin));
        return -1;
    }
    snprintf(dbname, sizeof dbname, "rollcall_test_%ld", (long)getpid());
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", dbname);
    admin_command(sql);
    if (make_test_dsn() < 0)
        return -1;
    pg = rc_pg_connect(test_dsn, "test_pg", err, sizeof err);
    if (!pg) {
        fprintf(stderr, "connect to scratch database: %s\n", err);
        return -1;
    }
    rc_pg_set_reconnect_timeout(pg, 5000);
    return 0;
}

static int group_teardown(void **state)
{
    char sql[128];
    (void)state;
    if (!base_dsn)
        return 0;
    rc_pg_free(pg);
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", dbname);
    admin_command(sql);
    PQfinish(admin);
    return 0;
}

#define NEED_PG()                                                              \
    do {                                                                       \
        if (!base_dsn) {                                                       \
            print_message("ROLLCALL_PG_DSN unset: skipping PostgreSQL test\n"); \
            skip();                                                            \
        }                                                                      \
    } while (0)

static long long scalar(const char *sql)
{
    char err[512];
    PGresult *r = rc_pg_exec(pg, sql, err, sizeof err);
    long long v;
    if (!r)
        fail_msg("%s: %s", sql, err);
    assert_int_equal(PQntuples(r), 1);
    v = PQgetisnull(r, 0, 0) ? -1 : atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

static void test_exec_prepared_copy(void **state)
{
    char err[512];
    PGresult *r;
    uint64_t rows = 0;
    (void)state;
    NEED_PG();

    assert_int_equal(rc_pg_command(pg, "CREATE TABLE t (id int PRIMARY KEY, name text)", err, sizeof err), 0);
    assert_int_equal(rc_pg_prepare(pg, "ins", "INSERT INTO t VALUES ($1, $2)", 2, err, sizeof err), 0);
    /* Same name, same SQL: no-op; same name, other SQL: error. */
    assert_int_equal(rc_pg_prepare(pg, "ins", "INSERT INTO t VALUES ($1, $2)", 2, err, sizeof err), 0);
    assert_int_equal(rc_pg_prepare(pg, "ins", "SELECT 1", 0, err, sizeof err), -1);

    const char *v1[] = {"1", "one"};
    r = rc_pg_exec_prepared(pg, "ins", 2, v1, NULL, NULL, 0, err, sizeof err);
    assert_non_null(r);
    assert_string_equal(PQcmdTuples(r), "1");
    PQclear(r);

    /* A failed statement reports message + SQLSTATE and leaves the
     * connection usable (PGRES_FATAL_ERROR is not a dead connection). */
    r = rc_pg_exec_prepared(pg, "ins", 2, v1, NULL, NULL, 0, err, sizeof err);
    assert_null(r);
    assert_non_null(strstr(err, "23505"));
    assert_null(rc_pg_exec(pg, "SELEC 1", err, sizeof err));
    assert_non_null(strstr(err, "42601"));
    assert_int_equal(rc_pg_reconnects(pg), 0);

    /* COPY in two puts that split a row. */
    assert_int_equal(rc_pg_copy_begin(pg, "COPY t (id, name) FROM STDIN", err, sizeof err), 0);
    const char *part1 = "2\ttwo\n3\tth", *part2 = "ree\n4\ta\\tb\n";
    assert_int_equal(rc_pg_copy_put(pg, part1, strlen(part1), err, sizeof err), 0);
    assert_int_equal(rc_pg_copy_put(pg, part2, strlen(part2), err, sizeof err), 0);
    assert_int_equal(rc_pg_copy_end(pg, &rows, err, sizeof err), 0);
    assert_int_equal(rows, 3);
    assert_int_equal(scalar("SELECT count(*) FROM t"), 4);
    assert_int_equal(scalar("SELECT length(name) FROM t WHERE id = 4"), 3);

    /* A COPY that violates the key fails at the end, copies nothing. */
    assert_int_equal(rc_pg_copy_begin(pg, "COPY t (id, name) FROM STDIN", err, sizeof err), 0);
    assert_int_equal(rc_pg_copy_put(pg, "5\tfive\n1\tdup\n", 12, err, sizeof err), 0);
    assert_int_equal(rc_pg_copy_end(pg, &rows, err, sizeof err), -1);
    assert_non_null(strstr(err, "23505"));
    assert_int_equal(scalar("SELECT count(*) FROM t"), 4);

    /* Transactions. */
    assert_int_equal(rc_pg_begin(pg, err, sizeof err), 0);
    assert_true(rc_pg_in_transaction(pg));
    assert_int_equal(rc_pg_command(pg, "INSERT INTO t VALUES (10, 'x')", err, sizeof err), 0);
    assert_int_equal(rc_pg_rollback(pg, err, sizeof err), 0);
    assert_false(rc_pg_in_transaction(pg));
    assert_int_equal(scalar("SELECT count(*) FROM t WHERE id = 10"), 0);

    char esc[32];
    assert_int_equal(rc_pg_copy_escape(esc, sizeof esc, "a\tb\\c\n"), 9);
    assert_string_equal(esc, "a\\tb\\\\c\\n");
    assert_int_equal(rc_pg_copy_escape(esc, 4, "abcd"), (size_t)-1);

    assert_int_equal(rc_pg_command(pg, "DROP TABLE t", err, sizeof err), 0);
}

/* Terminates the scratch connection's backend from the admin connection and
 * waits until it is gone. */
static void kill_backend(void)
{
    char sql[256];
    int pid = PQbackendPID(rc_pg_conn(pg));
    assert_true(pid > 0);
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d)", pid);
    admin_command(sql);
    for (int i = 0; i < 100; i++) {
        snprintf(sql, sizeof sql, "SELECT 1 FROM pg_stat_activity WHERE pid = %d", pid);
        PGresult *r = PQexec(admin, sql);
        int n = PQntuples(r);
        PQclear(r);
        if (n == 0)
            return;
        usleep(20000);
    }
    fail_msg("backend %d did not exit", pid);
}

static void test_reconnect_reprepares(void **state)
{
    char err[512];
    PGresult *r;
    const char *v[] = {"41"};
    uint64_t before;
    int old_pid;
    (void)state;
    NEED_PG();

    assert_int_equal(rc_pg_prepare(pg, "plus_one", "SELECT $1::int + 1", 1, err, sizeof err), 0);
    (void)rc_pg_was_disconnected(pg);
    before = rc_pg_reconnects(pg);
    old_pid = PQbackendPID(rc_pg_conn(pg));
    kill_backend();

    /* The dead idle connection is noticed before use: the statement runs on
     * a new connection where "plus_one" was prepared again. */
    r = rc_pg_exec_prepared(pg, "plus_one", 1, v, NULL, NULL, 0, err, sizeof err);
    if (!r) /* tolerated once: the kill raced with the probe */
        r = rc_pg_exec_prepared(pg, "plus_one", 1, v, NULL, NULL, 0, err, sizeof err);
    assert_non_null(r);
    assert_string_equal(PQgetvalue(r, 0, 0), "42");
    PQclear(r);
    assert_int_equal(rc_pg_reconnects(pg), before + 1);
    assert_true(rc_pg_was_disconnected(pg));
    assert_false(rc_pg_was_disconnected(pg));
    assert_int_not_equal(PQbackendPID(rc_pg_conn(pg)), old_pid);

    /* Inside a transaction the loss is reported, never papered over. */
    assert_int_equal(rc_pg_begin(pg, err, sizeof err), 0);
    kill_backend();
    r = rc_pg_exec_prepared(pg, "plus_one", 1, v, NULL, NULL, 0, err, sizeof err);
    assert_null(r);
    assert_int_equal(rc_pg_commit(pg, err, sizeof err), -1);
    assert_non_null(strstr(err, "transaction lost"));
    /* The failed commit ended it: a rollback is allowed and changes
     * nothing, and the next transaction begins without one. */
    assert_false(rc_pg_in_transaction(pg));
    assert_int_equal(rc_pg_rollback(pg, err, sizeof err), 0);
    assert_false(rc_pg_in_transaction(pg));
    r = rc_pg_exec_prepared(pg, "plus_one", 1, v, NULL, NULL, 0, err, sizeof err);
    assert_non_null(r);
    assert_string_equal(PQgetvalue(r, 0, 0), "42");
    PQclear(r);
    assert_int_equal(rc_pg_reconnects(pg), before + 2);

    /* A caller that goes from a failed commit straight to its next batch,
     * without a rollback, is not refused by BEGIN ever after. */
    assert_int_equal(rc_pg_begin(pg, err, sizeof err), 0);
    kill_backend();
    r = rc_pg_exec_prepared(pg, "plus_one", 1, v, NULL, NULL, 0, err, sizeof err);
    assert_null(r);
    assert_int_equal(rc_pg_commit(pg, err, sizeof err), -1);
    assert_int_equal(rc_pg_begin(pg, err, sizeof err), 0);
    r = rc_pg_exec_prepared(pg, "plus_one", 1, v, NULL, NULL, 0, err, sizeof err);
    assert_non_null(r);
    PQclear(r);
    assert_int_equal(rc_pg_commit(pg, err, sizeof err), 0);
}

static void copy_dir(const char *from, const char *to)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cp '%s'/*.sql '%s'/", from, to);
    assert_int_equal(system(cmd), 0);
}

static void test_migrate(void **state)
{
    char err[1024], tmp[] = "/tmp/rc_migrations_XXXXXX", path[600];
    rc_migration_set set = {NULL, 0};
    FILE *f;
    long long applied;
    int newest;
    (void)state;
    NEED_PG();

    assert_int_equal(rc_migrate_load_dir(migrations_dir(), &set, err, sizeof err), 0);
    applied = (long long)set.count;
    newest = set.items[set.count - 1].version;
    rc_migrate_set_clear(&set);

    /* Dry run on an empty database changes nothing. */
    assert_int_equal(rc_migrate(pg, migrations_dir(), true, err, sizeof err), 0);
    assert_int_equal(scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'rollcall'"), 0);

    assert_int_equal(rc_migrate(pg, migrations_dir(), false, err, sizeof err), 0);
    assert_int_equal(scalar("SELECT count(*) FROM rollcall.schema_migration"), applied);
    assert_int_equal(scalar("SELECT (to_regclass('rollcall.unit') IS NOT NULL)::int"), 1);
    assert_int_equal(scalar("SELECT (to_regclass('rollcall.v_unit_day') IS NOT NULL)::int"), 1);
    assert_int_equal(scalar("SELECT count(*) FROM information_schema.columns "
                            "WHERE table_schema = 'rollcall' AND table_name = 'latest_report' "
                            "AND data_type = 'bigint' AND column_name <> 'version'"), 32);

    /* Second run: a no-op. */
    assert_int_equal(rc_migrate(pg, migrations_dir(), false, err, sizeof err), 0);
    assert_int_equal(scalar("SELECT count(*) FROM rollcall.schema_migration"), applied);

    /* A copy with 001 changed by one byte and a new migration: refused,
     * the message names the file, and the new migration is not applied. */
    assert_non_null(mkdtemp(tmp));
    copy_dir(migrations_dir(), tmp);
    snprintf(path, sizeof path, "%s/001_baseline.sql", tmp);
    f = fopen(path, "r+");
    assert_non_null(f);
    assert_int_equal(fputc('#', f), '#'); /* was '-' of the opening comment */
    fclose(f);
    snprintf(path, sizeof path, "%s/%03d_probe.sql", tmp, newest + 1);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("CREATE TABLE rollcall.probe (x int);\n", f);
    fclose(f);
    assert_int_equal(rc_migrate(pg, tmp, false, err, sizeof err), -1);
    assert_non_null(strstr(err, "001_baseline.sql"));
    assert_non_null(strstr(err, "changed"));
    assert_int_equal(scalar("SELECT (to_regclass('rollcall.probe') IS NULL)::int"), 1);
    assert_int_equal(scalar("SELECT count(*) FROM rollcall.schema_migration"), applied);

    /* A migration that fails is rolled back with its row. */
    copy_dir(migrations_dir(), tmp);  /* restores 001 */
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("CREATE TABLE rollcall.probe (x int);\nSELECT no_such_function();\n", f);
    fclose(f);
    assert_int_equal(rc_migrate(pg, tmp, false, err, sizeof err), -1);
    assert_non_null(strstr(err, "_probe.sql"));
    assert_int_equal(scalar("SELECT (to_regclass('rollcall.probe') IS NULL)::int"), 1);
    assert_int_equal(scalar("SELECT count(*) FROM rollcall.schema_migration"), applied);
    assert_false(rc_pg_in_transaction(pg));

    snprintf(path, sizeof path, "rm -rf '%s'", tmp);
    assert_int_equal(system(path), 0);
}

static void test_views(void **state)
{
    char err[512];
    PGresult *r;
    (void)state;
    NEED_PG();

    assert_int_equal(rc_pg_command(pg,
        "INSERT INTO rollcall.unit (code, name, level, parent_code, rollup_parent, expected_children) VALUES "
        " ('110101001', 'T', 2, '110101', '110101', 3),"
        " ('110101001001', 'V1', 1, '110101001', '110101001', 0),"
        " ('110101001002', 'V2', 1, '110101001', '110101001', 0),"
        " ('110101001003', 'V3', 1, '110101001', '110101001', 0);"
        "INSERT INTO rollcall.latest_report (unit_code, period, level, kind, version, report_id, households_visited, disinfectant_kg) VALUES "
        " ('110101001001', '2021-08-01', 1, 1, 100, 'aaaaaaaa-0000-0000-0000-000000000001', 5, 2),"
        " ('110101001002', '2021-08-01', 1, 2, 101, 'aaaaaaaa-0000-0000-0000-000000000002', 0, 0),"
        " ('110101001003', '2021-08-02', 1, 1, 102, 'aaaaaaaa-0000-0000-0000-000000000003', 7, 0);",
        err, sizeof err), 0);
    /* The township's aggregates follow their villages' latest reports (what
     * the rollup recomputes; rebuild_day does it for a whole day). */
    assert_true(scalar("SELECT rollcall.rebuild_day('2021-08-01')") > 0);
    assert_true(scalar("SELECT rollcall.rebuild_day('2021-08-02')") > 0);

    r = rc_pg_exec(pg,
        "SELECT unit_code, level, kind, version, expected_children, reported_children, zero_children,"
        "       missing_children, households_visited, disinfectant_kg"
        "  FROM rollcall.v_unit_day WHERE period = '2021-08-01' AND unit_code LIKE '110101001%'"
        " ORDER BY unit_code",
        err, sizeof err);
    assert_non_null(r);
    assert_int_equal(PQntuples(r), 3);
    assert_string_equal(PQgetvalue(r, 0, 0), "110101001");
    assert_string_equal(PQgetvalue(r, 0, 1), "township");
    assert_true(PQgetisnull(r, 0, 2));
    /* version: period start + one per village (versions before the period's
     * start count 1 each) */
    char want[32];
    snprintf(want, sizeof want, "%lld", scalar("SELECT rollcall.period_start_us('2021-08-01') + 2"));
    assert_string_equal(PQgetvalue(r, 0, 3), want);
    assert_string_equal(PQgetvalue(r, 0, 4), "3");
    assert_string_equal(PQgetvalue(r, 0, 5), "2");
    assert_string_equal(PQgetvalue(r, 0, 6), "1");
    assert_string_equal(PQgetvalue(r, 0, 7), "{110101001003}");
    assert_string_equal(PQgetvalue(r, 0, 8), "5");
    assert_string_equal(PQgetvalue(r, 0, 9), "2");
    assert_string_equal(PQgetvalue(r, 1, 0), "110101001001");
    assert_string_equal(PQgetvalue(r, 1, 1), "village");
    assert_string_equal(PQgetvalue(r, 1, 2), "daily");
    assert_true(PQgetisnull(r, 1, 4));
    assert_true(PQgetisnull(r, 1, 7));
    assert_string_equal(PQgetvalue(r, 1, 8), "5");
    assert_string_equal(PQgetvalue(r, 2, 2), "zero");
    PQclear(r);

    /* Column order: the fixed columns, then the 32 indicators in proto order. */
    r = rc_pg_exec(pg, "SELECT * FROM rollcall.v_unit_day LIMIT 0", err, sizeof err);
    assert_non_null(r);
    assert_string_equal(PQfname(r, 9), "missing_children");
    assert_string_equal(PQfname(r, 10), "households_visited");
    assert_string_equal(PQfname(r, 41), "disinfectant_kg");
    PQclear(r);

    /* Missing from the township: village 3 on 08-01; on 08-02 villages 1
     * and 2 (the county lists the township too: it has not filed). */
    r = rc_pg_exec(pg, "SELECT period, unit_code, parent_code FROM rollcall.v_missing"
                       " WHERE period = '2021-08-01' AND parent_code = '110101001' ORDER BY 1, 2",
                   err, sizeof err);
    assert_non_null(r);
    assert_int_equal(PQntuples(r), 1);
    assert_string_equal(PQgetvalue(r, 0, 0), "2021-08-01");
    assert_string_equal(PQgetvalue(r, 0, 1), "110101001003");
    assert_string_equal(PQgetvalue(r, 0, 2), "110101001");
    PQclear(r);

    /* Village 3 reports for 08-01: nobody is missing any more. */
    assert_int_equal(rc_pg_command(pg,
        "INSERT INTO rollcall.latest_report (unit_code, period, level, kind, version, report_id) VALUES "
        " ('110101001003', '2021-08-01', 1, 2, 103, 'aaaaaaaa-0000-0000-0000-000000000004')",
        err, sizeof err), 0);
    assert_true(scalar("SELECT rollcall.rebuild_day('2021-08-01')") > 0);
    assert_int_equal(scalar("SELECT count(*) FROM rollcall.v_missing WHERE period = '2021-08-01' "
                            "AND parent_code = '110101001'"), 0);
    assert_int_equal(scalar("SELECT count(*) FROM rollcall.v_missing WHERE period = '2021-08-02' "
                            "AND parent_code = '110101001'"), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exec_prepared_copy),
        cmocka_unit_test(test_reconnect_reprepares),
        cmocka_unit_test(test_migrate),
        cmocka_unit_test(test_views),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
