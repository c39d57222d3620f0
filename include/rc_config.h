/* rc_config — one declarative table per service (PgBouncer's cf_* style):
 * defaults < file < environment < command line, every value validated.
 *
 * Sources, in increasing precedence:
 *   1. the table's defaults;
 *   2. a file named by --config FILE (or --config=FILE) or ROLLCALL_CONFIG:
 *      lines "key = value", '#' comments, blank lines; a value may be
 *      double-quoted to keep surrounding blanks;
 *   3. the environment: ROLLCALL_ + the key upper-cased with '.' and '-'
 *      turned into '_' (pg_dsn <-> ROLLCALL_PG_DSN);
 *   4. the command line: --key=value or --key value (a BOOL key also accepts
 *      a bare --key meaning true).
 * Unknown keys in the file or on the command line are errors; unknown
 * ROLLCALL_* variables are ignored (they belong to other services).  Keys
 * "kafka.X" in the file and --kafka.X=Y on the command line are passed
 * through verbatim as librdkafka properties (see rc_config_kafka_props).
 * Arguments not starting with "--" (and everything after "--") are kept as
 * positional arguments (rc_config_args).
 *
 * Destinations by type:
 *   RC_CFG_STRING   char **        malloc'ed; NULL when the default is NULL
 *   RC_CFG_INT      int *
 *   RC_CFG_BOOL     bool *         yes/no, true/false, on/off, 1/0
 *   RC_CFG_MS       int *          milliseconds: "250ms", "5s", "2m", "1h", "40"
 *   RC_CFG_CLOCK    int *          "HH:MM" -> minutes after midnight (0..1439)
 *   RC_CFG_LOGLEVEL rc_log_level * debug, info, warn, error
 * Bounds (min, max) apply to INT, MS (in ms) and CLOCK (in minutes), and to
 * a STRING's length; min == max == 0 means "no bounds beyond the type's".
 *
 * Not thread-safe: load and reload from the event-loop thread. */
#ifndef RC_CONFIG_H
#define RC_CONFIG_H

#include <stddef.h>
#include <stdio.h>

typedef enum {
    RC_CFG_STRING,
    RC_CFG_INT,
    RC_CFG_BOOL,
    RC_CFG_MS,
    RC_CFG_CLOCK,
    RC_CFG_LOGLEVEL,
} rc_cfg_type;

/* rc_cfg_item.flags */
#define RC_CFG_SECRET 0x1   /* never printed: usage, dumps, errors, reload logs */

typedef struct rc_cfg_item {
    const char *key;
    rc_cfg_type type;
    void *dest;
    const char *def;        /* parsed like any other source; NULL = empty/0 */
    long long min, max;
    const char *help;
    unsigned flags;
} rc_cfg_item;              /* a table ends with {NULL} */

/* The keys services share: one spelling, one meaning, one help line. */
#define RC_CFG_PG_DSN(dest, help) {"pg_dsn", RC_CFG_STRING, (dest), "", 0, 0, (help), RC_CFG_SECRET}
#define RC_CFG_KAFKA_BROKERS(dest, def)                                                   \
    {"kafka_brokers", RC_CFG_STRING, (dest), (def), 1, 4096,                              \
     "Kafka bootstrap servers (host:port,...); kafka.<property> keys pass librdkafka "    \
     "properties", 0}
#define RC_CFG_LISTEN_ADDR(dest)                                                          \
    {"listen_addr", RC_CFG_STRING, (dest), "127.0.0.1", 1, 255,                           \
     "address the HTTP server binds (0.0.0.0 for every interface)", 0}
#define RC_CFG_HTTP_PORT(dest, def)                                                       \
    {"http_port", RC_CFG_INT, (dest), (def), 0, 65535, "HTTP port (0 = ephemeral)", 0}
#define RC_CFG_LOG_LEVEL(dest) {"log_level", RC_CFG_LOGLEVEL, (dest), "info", 0, 0, "debug, info, warn, error", 0}

typedef struct rc_config rc_config;

/* Reads every source, validates every value and only then writes the
 * destinations.  `items` and `argv` are borrowed and must outlive the
 * config (a static table and main's argv).  Returns the config, or NULL with
 * the reason in errbuf — naming the key and its source, e.g.
 *   config: http_port = 70000 (from ROLLCALL_HTTP_PORT) is out of range 1..65535
 * — and no destination changed.  If --help is on the command line nothing is
 * read or written and rc_config_help_requested() is true: the caller prints
 * rc_config_usage() and exits. */
rc_config *rc_config_load(const rc_cfg_item *items, int argc, char **argv,
                          char *errbuf, size_t errlen);

/* True when the command line asked for --help (or -h). */
int rc_config_help_requested(const rc_config *cfg);

/* Strips leading and trailing white space in place: the one rule for the
 * lines of a configuration or properties file.  Returns the first
 * non-space character of s. */
char *rc_config_trim(char *s);

/* Re-reads file, environment and command line (SIGHUP).  Validates into
 * temporaries and swaps in only on success; returns 0, or -1 with errbuf and
 * every destination and the Kafka properties unchanged (PgBouncer: a bad
 * reload logs and keeps the old config).  Changed keys are logged at info
 * level (a secret's value never).  Strings replaced by a reload stay valid
 * until rc_config_free, so a pointer read earlier never dangles. */
int rc_config_reload(rc_config *cfg, char *errbuf, size_t errlen);

/* The "kafka.*" pass-through as "name=value" strings ("linger.ms=5"), file
 * first then command line, in order of appearance.  Owned by cfg; valid
 * until the next successful reload. */
const char *const *rc_config_kafka_props(const rc_config *cfg, size_t *n);

/* Positional (non "--") command-line arguments, borrowed from argv. */
char *const *rc_config_args(const rc_config *cfg, size_t *n);

/* The file actually read, or NULL. */
const char *rc_config_file(const rc_config *cfg);

/* Prints the table: key, type, default, bounds, help.  A secret's default is
 * shown as "(secret)". */
void rc_config_usage(const rc_cfg_item *items, FILE *out);

/* Prints "key = value  # from SOURCE" for every key; secrets as "(secret)". */
void rc_config_dump(const rc_config *cfg, FILE *out);

/* Frees the config and every string it put into a destination (the
 * destinations are set to NULL).  NULL is a no-op. */
void rc_config_free(rc_config *cfg);

#endif
