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

#include "rc_pg.h"

#include <stdbool.h>
#include <stddef.h>

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
int cmd_token(int argc, char **argv);
int cmd_submit(int argc, char **argv);
int cmd_loadgen(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_signoff(int argc, char **argv);

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

#endif
