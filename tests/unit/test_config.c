/* Unit tests for rc_config: sources and their precedence, every type, errors
 * naming key and source, kafka.* pass-through, reload, secrets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "rc_config.h"
#include "rc_log.h"

static char *s_name, *s_dsn, *s_pass, *s_token;
static int i_port, ms_timeout, clock_deadline;
static bool b_flag;
static rc_log_level l_level;

static const rc_cfg_item items[] = {
    {"name", RC_CFG_STRING, &s_name, "village", 0, 0, "service name", 0},
    {"pg_dsn", RC_CFG_STRING, &s_dsn, NULL, 0, 0, "libpq conninfo", 0},
    {"pg_password", RC_CFG_STRING, &s_pass, "hunter2", 0, 0, "password", RC_CFG_SECRET},
    {"token", RC_CFG_STRING, &s_token, "abcdefgh", 8, 64, "API token", RC_CFG_SECRET},
    {"http_port", RC_CFG_INT, &i_port, "8080", 1, 65535, "listen port", 0},
    {"timeout", RC_CFG_MS, &ms_timeout, "5s", 1, 7200000, "request timeout", 0},
    {"deadline", RC_CFG_CLOCK, &clock_deadline, "10:00", 0, 0, "daily deadline", 0},
    {"dry-run", RC_CFG_BOOL, &b_flag, "no", 0, 0, "do nothing", 0},
    {"log_level", RC_CFG_LOGLEVEL, &l_level, "info", 0, 0, "log threshold", 0},
    {NULL},
};

static char tmpfile_path[64];

static const char *write_file(const char *text)
{
    strcpy(tmpfile_path, "/tmp/rc_config_test_XXXXXX");
    int fd = mkstemp(tmpfile_path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return tmpfile_path;
}

static int setup(void **state)
{
    static const char *const vars[] = {"ROLLCALL_CONFIG", "ROLLCALL_NAME", "ROLLCALL_PG_DSN",
                                       "ROLLCALL_HTTP_PORT", "ROLLCALL_TIMEOUT", "ROLLCALL_DEADLINE",
                                       "ROLLCALL_DRY_RUN", "ROLLCALL_LOG_LEVEL", "ROLLCALL_PG_PASSWORD"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
    tmpfile_path[0] = '\0';
    return 0;
}

static int teardown(void **state)
{
    if (tmpfile_path[0])
        unlink(tmpfile_path);
    return 0;
}

static rc_config *load(int argc, char **argv, char *err)
{
    err[0] = '\0';
    return rc_config_load(items, argc, argv, err, 256);
}

static void test_defaults(void **state)
{
    char err[256], *argv[] = {"prog", NULL};
    rc_config *cfg = load(1, argv, err);
    assert_non_null(cfg);
    assert_string_equal(s_name, "village");
    assert_null(s_dsn);
    assert_int_equal(i_port, 8080);
    assert_int_equal(ms_timeout, 5000);
    assert_int_equal(clock_deadline, 600);
    assert_false(b_flag);
    assert_int_equal(l_level, RC_LOG_INFO);
    assert_null(rc_config_file(cfg));
    rc_config_free(cfg);
    assert_null(s_name);
}

static void test_precedence(void **state)
{
    char err[256];
    const char *path = write_file("# comment\n\n  name = from-file  \n"
                                  "http_port=1000\ntimeout = 250ms\npg_dsn = \" host=x \"\n"
                                  "kafka.linger.ms = 5\n");
    char *argv[] = {"prog", "--config", (char *)path, "--http_port=3000", "pos1",
                    "--kafka.acks=all", "--timeout", "2m", "--", "--pos2", NULL};
    setenv("ROLLCALL_HTTP_PORT", "2000", 1);
    setenv("ROLLCALL_NAME", "from-env", 1);
    setenv("ROLLCALL_OTHER_SERVICE_KEY", "ignored", 1);
    rc_config *cfg = load(10, argv, err);
    assert_non_null(cfg);
    assert_string_equal(s_name, "from-env");    /* env over file */
    assert_int_equal(i_port, 3000);             /* command line over env */
    assert_int_equal(ms_timeout, 120000);       /* command line "--key value" */
    assert_string_equal(s_dsn, " host=x ");     /* quotes keep blanks */
    assert_string_equal(rc_config_file(cfg), path);
    size_t n;
    const char *const *k = rc_config_kafka_props(cfg, &n);
    assert_int_equal(n, 2);
    assert_string_equal(k[0], "linger.ms=5");
    assert_string_equal(k[1], "acks=all");
    char *const *args = rc_config_args(cfg, &n);
    assert_int_equal(n, 2);
    assert_string_equal(args[0], "pos1");
    assert_string_equal(args[1], "--pos2");
    rc_config_free(cfg);
    unsetenv("ROLLCALL_OTHER_SERVICE_KEY");
}

static void test_env_config_file(void **state)
{
    char err[256], *argv[] = {"prog", NULL};
    setenv("ROLLCALL_CONFIG", write_file("http_port = 4242\n"), 1);
    rc_config *cfg = load(1, argv, err);
    assert_non_null(cfg);
    assert_int_equal(i_port, 4242);
    rc_config_free(cfg);
}

static void test_types(void **state)
{
    char err[256];
    static const struct { const char *in; int ms; } durs[] = {
        {"250ms", 250}, {"5s", 5000}, {"2m", 120000}, {"1h", 3600000}, {"40", 40}};
    for (size_t i = 0; i < sizeof durs / sizeof durs[0]; i++) {
        char arg[64];
        snprintf(arg, sizeof arg, "--timeout=%s", durs[i].in);
        char *argv[] = {"prog", arg, "--timeout", (char *)durs[i].in, NULL};
        rc_config *cfg = load(2, argv, err);
        assert_non_null(cfg);
        assert_int_equal(ms_timeout, durs[i].ms);
        rc_config_free(cfg);
        cfg = load(3, argv + 1, err);           /* "--timeout VALUE" form */
        assert_non_null(cfg);
        assert_int_equal(ms_timeout, durs[i].ms);
        rc_config_free(cfg);
    }
    static const struct { const char *in; bool v; } bools[] = {
        {"yes", true}, {"no", false}, {"true", true}, {"false", false}, {"1", true},
        {"0", false}, {"ON", true}};
    for (size_t i = 0; i < sizeof bools / sizeof bools[0]; i++) {
        setenv("ROLLCALL_DRY_RUN", bools[i].in, 1);
        char *argv[] = {"prog", NULL};
        rc_config *cfg = load(1, argv, err);
        assert_non_null(cfg);
        assert_int_equal(b_flag, bools[i].v);
        rc_config_free(cfg);
    }
    unsetenv("ROLLCALL_DRY_RUN");
    char *argv[] = {"prog", "--dry-run", "--deadline=09:30", "--log_level", "debug", NULL};
    rc_config *cfg = load(5, argv, err);
    assert_non_null(cfg);
    assert_true(b_flag);                        /* bare --bool */
    assert_int_equal(clock_deadline, 9 * 60 + 30);
    assert_int_equal(l_level, RC_LOG_DEBUG);
    rc_config_free(cfg);
}

static void expect_error(int argc, char **argv, const char *want)
{
    char err[256];
    i_port = 12345;
    rc_config *cfg = load(argc, argv, err);
    assert_null(cfg);
    assert_string_equal(err, want);
    assert_int_equal(i_port, 12345);            /* nothing written */
}

static void test_errors(void **state)
{
    char *a0[] = {"prog", NULL};
    setenv("ROLLCALL_HTTP_PORT", "70000", 1);
    expect_error(1, a0, "config: http_port = 70000 (from ROLLCALL_HTTP_PORT) is out of range 1..65535");
    setenv("ROLLCALL_HTTP_PORT", "80x", 1);
    expect_error(1, a0, "config: http_port = 80x (from ROLLCALL_HTTP_PORT) is not an integer");
    unsetenv("ROLLCALL_HTTP_PORT");

    char *a1[] = {"prog", "--timeout=5 s", NULL};
    expect_error(2, a1, "config: timeout = 5 s (from --timeout) is not a duration "
                        "(250ms, 5s, 2m, 1h, or milliseconds)");
    char *a2[] = {"prog", "--timeout=3h", NULL};
    expect_error(2, a2, "config: timeout = 3h (from --timeout) is out of range 1ms..2h");
    char *a3[] = {"prog", "--deadline=24:00", NULL};
    expect_error(2, a3, "config: deadline = 24:00 (from --deadline) is not a time of day HH:MM");
    char *a4[] = {"prog", "--dry-run=maybe", NULL};
    expect_error(2, a4, "config: dry-run = maybe (from --dry-run) is not a boolean "
                        "(yes/no, true/false, on/off, 1/0)");
    char *a5[] = {"prog", "--log_level=loud", NULL};
    expect_error(2, a5, "config: log_level = loud (from --log_level) is not a log level "
                        "(debug, info, warn, error)");
    char *a6[] = {"prog", "--no_such=1", NULL};
    expect_error(2, a6, "config: unknown option --no_such (from command line)");
    char *a7[] = {"prog", "--http_port", NULL};
    expect_error(2, a7, "config: option --http_port needs a value (from command line)");

    char want[256];
    const char *path = write_file("name = x\n\nbogus = 1\n");
    char *a8[] = {"prog", "--config", (char *)path, NULL};
    snprintf(want, sizeof want, "config: unknown key bogus (from %s:3)", path);
    expect_error(3, a8, want);
    unlink(path);
    char *a9[] = {"prog", "--config=/nonexistent/rc.conf", NULL};
    expect_error(2, a9, "config: cannot read /nonexistent/rc.conf (from --config): "
                        "No such file or directory");
    /* A secret's value is never echoed, even in an error. */
    char *a10[] = {"prog", "--token=short", NULL};
    expect_error(2, a10, "config: token = (secret) (from --token) must be 8..64 characters long");
}

static void test_reload(void **state)
{
    char err[256];
    const char *path = write_file("http_port = 1111\nname = first\n");
    char *argv[] = {"prog", "--config", (char *)path, NULL};
    rc_config *cfg = load(3, argv, err);
    assert_non_null(cfg);
    assert_int_equal(i_port, 1111);
    char *old_name = s_name;

    FILE *f = fopen(path, "w");
    fputs("http_port = 99999\nname = second\nkafka.acks = 1\n", f);
    fclose(f);
    assert_int_equal(rc_config_reload(cfg, err, sizeof err), -1);
    char want[256];
    snprintf(want, sizeof want, "config: http_port = 99999 (from %s:1) is out of range 1..65535", path);
    assert_string_equal(err, want);
    assert_int_equal(i_port, 1111);             /* old values kept */
    assert_string_equal(s_name, "first");
    size_t n;
    rc_config_kafka_props(cfg, &n);
    assert_int_equal(n, 0);

    f = fopen(path, "w");
    fputs("http_port = 2222\nname = second\nkafka.acks = 1\n", f);
    fclose(f);
    assert_int_equal(rc_config_reload(cfg, err, sizeof err), 0);
    assert_int_equal(i_port, 2222);
    assert_string_equal(s_name, "second");
    assert_string_equal(old_name, "first");     /* still valid until free */
    assert_string_equal(rc_config_kafka_props(cfg, &n)[0], "acks=1");
    rc_config_free(cfg);
}

static void test_help_and_secrets(void **state)
{
    char err[256], *buf = NULL;
    size_t len = 0;
    char *argv[] = {"prog", "--http_port=bad", "--help", NULL};
    rc_config *cfg = load(3, argv, err);
    assert_non_null(cfg);
    assert_true(rc_config_help_requested(cfg));
    rc_config_free(cfg);

    FILE *out = open_memstream(&buf, &len);
    rc_config_usage(items, out);
    fclose(out);
    assert_non_null(strstr(buf, "--http_port=INT  default 8080  range 1..65535  [ROLLCALL_HTTP_PORT]"));
    assert_non_null(strstr(buf, "--timeout=DURATION  default 5s  range 1ms..2h"));
    assert_non_null(strstr(buf, "--pg_password=STRING  default (secret)"));
    assert_null(strstr(buf, "hunter2"));
    free(buf);

    setenv("ROLLCALL_PG_PASSWORD", "s3cr3t", 1);
    char *a2[] = {"prog", "--kafka.sasl.password=kpass", NULL};
    cfg = load(2, a2, err);
    assert_non_null(cfg);
    assert_string_equal(s_pass, "s3cr3t");
    out = open_memstream(&buf, &len);
    rc_config_dump(cfg, out);
    fclose(out);
    assert_non_null(strstr(buf, "http_port = 8080  # from default\n"));
    assert_non_null(strstr(buf, "pg_password = (secret)  # from ROLLCALL_PG_PASSWORD\n"));
    assert_null(strstr(buf, "s3cr3t"));
    assert_null(strstr(buf, "kpass"));
    free(buf);
    rc_config_free(cfg);
    unsetenv("ROLLCALL_PG_PASSWORD");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_precedence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_config_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_help_and_secrets, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
