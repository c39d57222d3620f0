/* Unit tests for the topic plan of `rollcall topics` (services/cli/
 * topics_plan.c, built into this test from the CLI's sources): the defaults
 * cover every topic the services use, settings from the command line, the
 * environment and a file reach the plan, and bad values are refused with
 * the key named.  No broker is contacted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../services/cli/topics_plan.c"
#include "rc_log.h"

/* Loads the table from argv; returns the config (NULL on error, err set). */
static rc_config *load(cli_topics_opts *o, rc_cfg_item *items, int argc, char **argv,
                       char *err, size_t errlen)
{
    assert_int_equal(cli_topics_config_items(o, items, CLI_NTOPICS + 8), 0);
    return rc_config_load(items, argc, argv, err, errlen);
}

static const cli_topic_spec *find(const cli_topic_spec *plan, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(plan[i].name, name) == 0)
            return &plan[i];
    return NULL;
}

static void defaults_cover_every_pipeline_topic(void **state)
{
    /* The topics the services produce to or consume from (lib/ and
     * services/): a topic missing from the plan would be auto-created with
     * the broker's defaults, or refused where auto-creation is off. */
    static const char *const used[] = {
        "reports.village",  "reports.urgent", "reports.township", "reports.county",
        "reports.province", "rollups.township", "rollups.county", "rollups.province",
        "reports.dlq",      "reminders",      "escalations",
    };
    cli_topics_opts o;
    rc_cfg_item items[CLI_NTOPICS + 8];
    cli_topic_spec plan[16];
    char err[512] = "";
    char *argv[] = {"topics", "plan"};

    rc_config *cfg = load(&o, items, 2, argv, err, sizeof err);
    assert_non_null(cfg);
    size_t n = cli_topics_plan(&o, plan, 16);
    assert_int_equal(n, sizeof used / sizeof used[0]);
    for (size_t i = 0; i < sizeof used / sizeof used[0]; i++)
        assert_non_null(find(plan, n, used[i]));
    assert_int_equal(find(plan, n, "reports.village")->partitions, 32);
    assert_int_equal(find(plan, n, "rollups.township")->partitions, 16);
    assert_int_equal(find(plan, n, "reports.village")->replication_factor, -1);
    assert_string_equal(find(plan, n, "reports.village")->retention_ms, "604800000");
    assert_string_equal(find(plan, n, "reports.dlq")->retention_ms, "1209600000");
    assert_null(o.kafka_brokers);
    rc_config_free(cfg);
}

static void command_line_and_environment_reach_the_plan(void **state)
{
    cli_topics_opts o;
    rc_cfg_item items[CLI_NTOPICS + 8];
    cli_topic_spec plan[16];
    char err[512] = "";
    char *argv[] = {"topics", "create", "--partitions.reports.village=96",
                    "--replication_factor", "3", "--retention=24h",
                    "--kafka.security.protocol=SASL_SSL", "--add_partitions"};

    setenv("ROLLCALL_PARTITIONS_ROLLUPS_TOWNSHIP", "48", 1);
    setenv("ROLLCALL_KAFKA_BROKERS", "kafka:9092", 1);
    rc_config *cfg = load(&o, items, 8, argv, err, sizeof err);
    unsetenv("ROLLCALL_PARTITIONS_ROLLUPS_TOWNSHIP");
    unsetenv("ROLLCALL_KAFKA_BROKERS");
    assert_non_null(cfg);
    size_t n = cli_topics_plan(&o, plan, 16);
    assert_int_equal(find(plan, n, "reports.village")->partitions, 96);
    assert_int_equal(find(plan, n, "rollups.township")->partitions, 48);
    assert_int_equal(find(plan, n, "reports.county")->partitions, 4);
    assert_int_equal(find(plan, n, "reports.county")->replication_factor, 3);
    assert_string_equal(find(plan, n, "reports.urgent")->retention_ms, "86400000");
    assert_string_equal(find(plan, n, "reports.dlq")->retention_ms, "1209600000");
    assert_true(o.add_partitions);
    assert_string_equal(o.kafka_brokers, "kafka:9092");
    assert_int_equal(cli_topics_partitions(&o, "reports.village"), 96);
    assert_int_equal(cli_topics_partitions(&o, "no.such.topic"), -1);

    size_t np;
    const char *const *props = rc_config_kafka_props(cfg, &np);
    assert_int_equal(np, 1);
    assert_string_equal(props[0], "security.protocol=SASL_SSL");
    size_t nargs;
    char *const *args = rc_config_args(cfg, &nargs);
    assert_int_equal(nargs, 1);
    assert_string_equal(args[0], "create");
    rc_config_free(cfg);
}

static void config_file_carries_sasl_settings(void **state)
{
    cli_topics_opts o;
    rc_cfg_item items[CLI_NTOPICS + 8];
    char err[512] = "", path[] = "/tmp/rc_topics_test_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "kafka_brokers = kafka:9094\n"
                       "partitions.reports.dlq = 2\n"
                       "kafka.security.protocol = SASL_PLAINTEXT\n"
                       "kafka.sasl.mechanism = SCRAM-SHA-512\n"
                       "kafka.sasl.username = rollcall-admin\n"
                       "kafka.sasl.password = not-on-argv\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    char cfgarg[64];
    snprintf(cfgarg, sizeof cfgarg, "--config=%s", path);
    char *argv[] = {"topics", "create", cfgarg};

    rc_config *cfg = load(&o, items, 3, argv, err, sizeof err);
    unlink(path);
    assert_non_null(cfg);
    assert_string_equal(o.kafka_brokers, "kafka:9094");
    assert_int_equal(cli_topics_partitions(&o, "reports.dlq"), 2);
    size_t np;
    const char *const *props = rc_config_kafka_props(cfg, &np);
    assert_int_equal(np, 4);
    assert_string_equal(props[3], "sasl.password=not-on-argv");
    rc_config_free(cfg);
}

static void bad_values_are_refused_with_the_key(void **state)
{
    cli_topics_opts o;
    rc_cfg_item items[CLI_NTOPICS + 8];
    char err[512] = "";
    char *zero[] = {"topics", "plan", "--partitions.reports.urgent=0"};
    char *unknown[] = {"topics", "plan", "--partitions.reports.nowhere=4"};
    char *rf[] = {"topics", "plan", "--replication_factor=-2"};
    char *ret[] = {"topics", "plan", "--retention=10m"};

    assert_null(load(&o, items, 3, zero, err, sizeof err));
    assert_non_null(strstr(err, "partitions.reports.urgent"));
    assert_null(load(&o, items, 3, unknown, err, sizeof err));
    assert_non_null(strstr(err, "partitions.reports.nowhere"));
    assert_null(load(&o, items, 3, rf, err, sizeof err));
    assert_non_null(strstr(err, "replication_factor"));
    assert_null(load(&o, items, 3, ret, err, sizeof err));
    assert_non_null(strstr(err, "retention"));
}

static void small_table_is_refused(void **state)
{
    cli_topics_opts o;
    rc_cfg_item items[4];
    assert_int_equal(cli_topics_config_items(&o, items, 4), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_cover_every_pipeline_topic),
        cmocka_unit_test(command_line_and_environment_reach_the_plan),
        cmocka_unit_test(config_file_carries_sasl_settings),
        cmocka_unit_test(bad_values_are_refused_with_the_key),
        cmocka_unit_test(small_table_is_refused),
    };
    rc_log_init("test", RC_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
