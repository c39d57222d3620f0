/* The `rollcall` command line: the command table's entry type, every
 * command's handler, and helpers shared by the commands.
 *
 * Adding a command: write services/cli/cmd_<name>.c with
 * `int cmd_<name>(int argc, char **argv)`, declare it below and add one line
 * to the table in main.c.  A handler gets argv[0] == its command name, parses
 * its options with getopt_long (main resets optind), and returns the exit
 * status: 0 success, 1 failure (logged or printed with the reason), 2 usage
 * error.  "--help"/"-h" never reaches a handler: main prints the table's
 * usage and help. */
#ifndef RC_CLI_H
#define RC_CLI_H

#include "rc_config.h"
#include "rc_kafka.h"
#include "rc_pg.h"
#include "rc_report.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLI_OK 0
#define CLI_FAILED 1
#define CLI_USAGE 2

typedef int (*cli_handler)(int argc, char **argv);

typedef struct cli_command {
    const char *name;
    cli_handler handler;
    const char *usage;  /* "migrate [--dir DIR] [--dry-run] [--dsn DSN]" */
    const char *help;   /* one or more lines; options explained */
} cli_command;

int cmd_migrate(int argc, char **argv);
int cmd_registry(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_dlq(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_gaps(int argc, char **argv);
int cmd_token(int argc, char **argv);
int cmd_submit(int argc, char **argv);
int cmd_loadgen(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_signoff(int argc, char **argv);
int cmd_user(int argc, char **argv);
int cmd_topics(int argc, char **argv);

/* The DSN: `opt` (from --dsn) if not NULL, else $ROLLCALL_PG_DSN, else ""
 * (libpq's own defaults and PG* variables). */
const char *cli_dsn(const char *opt);

/* Connects for a command; prints the reason to stderr and returns NULL on
 * failure.  The DSN's password never appears in the message. */
rc_pg *cli_connect(const char *dsn_opt, const char *command);

/* Directory holding the running executable (no trailing slash), or NULL. */
const char *cli_exe_dir(void);

/* Prints "usage: rollcall <usage>" for `name` to stderr; returns CLI_USAGE. */
int cli_usage_error(const char *name, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Seconds on the monotonic clock, for timings printed by commands. */
double cli_now(void);

/* ---- re-publishing into the pipeline (publish.c) ---- */

/* The bootstrap list: `opt` (from --brokers) if not NULL, else
 * $ROLLCALL_KAFKA_BROKERS, else NULL. */
const char *cli_brokers(const char *opt);

typedef struct cli_publisher cli_publisher;

/* The last acknowledged offset of one partition a publisher wrote to. */
typedef struct cli_position {
    char topic[64];
    int32_t partition;
    int64_t last_offset;
} cli_position;

/* Called once per message cli_publisher_send accepted, when its delivery
 * report arrives; `ok` false means it was not delivered (`error` says why). */
typedef void cli_delivered_fn(void *fn_opaque, void *msg_opaque, bool ok, const char *error);

/* An idempotent producer (acks=all, lz4) tuned for bulk re-publishing.
 * `label` prefixes the progress line (borrowed).  `fn` may be NULL.
 * Returns NULL with errbuf filled (no brokers, bad configuration). */
cli_publisher *cli_publisher_new(const char *brokers, const char *label, cli_delivered_fn *fn,
                                 void *fn_opaque, char *errbuf, size_t errlen);

/* Queues a copy of value for `topic`, partitioned by `key` (a string; NULL
 * for none).  Returns 0 (the outcome comes by delivery report), or -1 when
 * the message could not be queued (counted as failed, no callback). */
int cli_publisher_send(cli_publisher *pub, const char *topic, const char *key,
                       const void *value, size_t len, void *msg_opaque);

/* Waits up to timeout_ms for every delivery report, printing progress.
 * Returns 0 when everything sent was acknowledged, else -1. */
int cli_publisher_flush(cli_publisher *pub, int timeout_ms);

/* Prints "<label>: N sent, N delivered, N failed (T s)" to stderr, at most
 * once a second unless final. */
void cli_publisher_progress(cli_publisher *pub, bool final);

uint64_t cli_publisher_sent(const cli_publisher *pub);
uint64_t cli_publisher_delivered(const cli_publisher *pub);
uint64_t cli_publisher_failed(const cli_publisher *pub);
/* The first delivery failure seen, or NULL. */
const char *cli_publisher_error(const cli_publisher *pub);
/* The partitions written to, with their last acknowledged offset; borrowed,
 * valid until the next send/flush. */
const cli_position *cli_publisher_positions(const cli_publisher *pub, size_t *n);

/* Flushes (bounded), frees; NULL is a no-op. */
void cli_publisher_free(cli_publisher *pub);

/* Where a report of `level` enters the pipeline (PIPELINE.md): a village
 * report to reports.village keyed by its township (first 9 digits), a filed
 * report to reports.<level> keyed by its rollup parent (a province by
 * itself).  Returns 0, or -1 for a level that is never sent (prefecture). */
int cli_report_route(const char *unit_code, int level, char topic[32], char key[13]);

/* The rollup's window for accepting a report (its max_past_days default). */
#define CLI_ROLLUP_MAX_PAST_DAYS 400

/* Validation options as the rollup applies them to a report of `level`
 * (village bounds for villages, none for filed sums; the window
 * max_past_days back and one day ahead; report_id required), so the CLI
 * predicts what the rollup will accept. */
void cli_pipeline_validate_opts(int level, int max_past_days, rc_validate_opts *o);

/* ---- Kafka settings for the commands (kafka_props.c) ---- */

/* The "kafka.*" settings ("name=value", librdkafka's names) from the file
 * named by $ROLLCALL_CONFIG, read once; none when it is unset.  Borrowed,
 * valid until exit.  Returns NULL with errbuf when the file cannot be
 * read. */
const char *const *cli_kafka_props(size_t *n, char *errbuf, size_t errlen);

/* rc_kafka_conf_new(brokers, cli_kafka_props()): a configuration for a
 * command's own client.  NULL with errbuf on failure. */
rd_kafka_conf_t *cli_kafka_conf(const char *brokers, char *errbuf, size_t errlen);

/* ---- the topic plan (topics_plan.c) ---- */

#define CLI_NTOPICS 11

typedef struct cli_topic_default {
    const char *name;
    int partitions;
    bool dead_letters;  /* retention from dlq_retention */
    const char *help;
} cli_topic_default;

/* Every topic the pipeline produces or consumes, with its default
 * partition count. */
extern const cli_topic_default cli_topic_defaults[CLI_NTOPICS];

/* The settings of `rollcall topics`, filled by rc_config_load. */
typedef struct cli_topics_opts {
    char *kafka_brokers;
    int replication_factor;
    int retention_ms, dlq_retention_ms;
    bool add_partitions;
    int timeout_ms;
    int partitions[CLI_NTOPICS];
    char keys[CLI_NTOPICS][48];  /* "partitions.<topic>", the table's keys */
    char defs[CLI_NTOPICS][12];
} cli_topics_opts;

/* One topic to create. */
typedef struct cli_topic_spec {
    const char *name;           /* static */
    int partitions;
    int replication_factor;     /* -1: the broker's default */
    char retention_ms[24];      /* the topic config retention.ms */
} cli_topic_spec;

/* Fills `items` (cap entries, at least CLI_NTOPICS + 7) with the config
 * table whose destinations are in `o` (zeroed first): kafka_brokers,
 * replication_factor, retention, dlq_retention, add_partitions, timeout and
 * partitions.<topic> for every topic.  `o` must outlive the table.
 * Returns 0, or -1 when cap is too small (nothing written). */
int cli_topics_config_items(cli_topics_opts *o, rc_cfg_item *items, size_t cap);

/* The plan: one spec per topic, in cli_topic_defaults order.  Pure.
 * Returns the number written (at most cap). */
size_t cli_topics_plan(const cli_topics_opts *o, cli_topic_spec *out, size_t cap);

/* The planned partition count of `topic`, or -1 if it is not a pipeline
 * topic. */
int cli_topics_partitions(const cli_topics_opts *o, const char *topic);

#endif
