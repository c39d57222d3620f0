/* rc_migrate — applies the numbered SQL files of migrations/ (NNN_name.sql)
 * in order, each in its own transaction together with its row in
 * rollcall.schema_migration (version, name, SHA-256 of the file as written).
 *
 * Files are numbered 001, 002, ... without gaps, except right after
 * 001_baseline.sql, which stands for the migrations 001-006 it squashed
 * (the next file is 007).  A file may write @indicators(TEMPLATE): it is
 * replaced by TEMPLATE once per indicator of proto/rollcall.proto's
 * Indicators message, in field order, each "{}" in it by the indicator's
 * name, separated by ", " — so adding an indicator changes the .proto alone.
 * The .proto is looked for in $ROLLCALL_PROTO, then beside the migrations
 * directory (DIR/../proto/rollcall.proto: the source tree, or
 * share/rollcall/ when installed); it must list what this rollcall was built
 * with.  Without one the built-in list is used.
 *
 * A file must not contain BEGIN/COMMIT of its own.  The pure parts (file
 * names, ordering, checksums, the expansion, the plan against what is
 * applied) are exported so they can be tested without a database. */
#ifndef RC_MIGRATE_H
#define RC_MIGRATE_H

#include "rc_pg.h"

#include <stdbool.h>
#include <stddef.h>

/* pg_advisory_lock key serialising concurrent migrators ("rollcall"). */
#define RC_MIGRATE_LOCK_KEY 0x726f6c6c63616c6cLL

typedef struct rc_migration {
    int version;
    char name[128];      /* "init" for 001_init.sql */
    char file[160];      /* "001_init.sql" */
    char checksum[65];   /* SHA-256 of the file, lower-case hex */
    char *sql;           /* file contents, @indicators expanded, NUL terminated */
    size_t sql_len;
} rc_migration;

typedef struct rc_migration_set {
    rc_migration *items; /* sorted by version: 1, then consecutive (a baseline may skip the numbers it squashed) */
    size_t count;
} rc_migration_set;

/* What schema_migration says is applied (borrowed strings). */
typedef struct rc_migration_applied {
    int version;
    const char *name;
    const char *checksum;
} rc_migration_applied;

#define RC_MIGRATE_MAX_INDICATORS 64

/* Indicator names in field-number order. */
typedef struct rc_indicator_list {
    size_t count;
    char name[RC_MIGRATE_MAX_INDICATORS][64];
} rc_indicator_list;

/* Reads the fields of `message Indicators` from a .proto file (comments
 * ignored; every field int64).  Returns 0, or -1 with errbuf filled. */
int rc_migrate_read_proto(const char *path, rc_indicator_list *out, char *errbuf, size_t errlen);

/* The indicators this rollcall was built with (the protobuf-c descriptor). */
void rc_migrate_built_indicators(rc_indicator_list *out);

/* Replaces every @indicators(TEMPLATE) of sql (see above) into a new string
 * *out, which the caller frees.  Returns 0, or -1 (unbalanced parentheses,
 * out of memory) with errbuf filled and nothing allocated. */
int rc_migrate_expand(const char *sql, const rc_indicator_list *ind, char **out,
                      char *errbuf, size_t errlen);

/* Whether the applied rows are the chain 001_init .. 006_township_refresh
 * that 001_baseline.sql squashed: 1 exactly that chain (names and
 * checksums, any later rows after it), 0 not that chain at all (no 001_init
 * row), -1 an 001_init row with some other chain (edited files). */
int rc_migrate_squashed_chain(const rc_migration_applied *applied, size_t napplied);

/* Parses "NNN_name.sql" (at least three digits, name of [a-z0-9_]).
 * Returns 1 and fills version/name; 0 for a file that is not a migration
 * (no ".sql" suffix — ignored by the scanner); -1 for a ".sql" file with a
 * malformed name (an error: probably a typo), errbuf filled. */
int rc_migrate_parse_filename(const char *file, int *version, char *name, size_t namelen,
                              char *errbuf, size_t errlen);

/* SHA-256 of data as 64 lower-case hex digits + NUL. */
void rc_migrate_sha256_hex(const void *data, size_t len, char out[65]);

/* Sorts `set` by version and checks the numbering is 1, 2, 3, ... without
 * duplicates or gaps (but for the one after a baseline).  Returns 0, or -1 naming the offending files. */
int rc_migrate_check_sequence(rc_migration_set *set, char *errbuf, size_t errlen);

/* Reads every migration of `dir` (sorted, checked, checksummed) into *out,
 * which the caller releases with rc_migrate_set_clear.  Returns 0, or -1
 * with *out empty. */
int rc_migrate_load_dir(const char *dir, rc_migration_set *out, char *errbuf, size_t errlen);

/* Frees the contents of a set (not the struct); safe on an empty set. */
void rc_migrate_set_clear(rc_migration_set *set);

/* Compares the files with what is applied.  Returns 0 and the index of the
 * first file to apply in *first_pending (== set->count when up to date), or
 * -1 when an applied migration's checksum changed (naming the file and both
 * checksums), the database holds a version with no file, or the applied rows
 * are not the first files in order. */
int rc_migrate_plan(const rc_migration_set *set, const rc_migration_applied *applied,
                    size_t napplied, size_t *first_pending, char *errbuf, size_t errlen);

/* Brings the database up to date with `dir`, printing one line per file
 * applied (or, with dry_run, that would be applied) and "up to date" when
 * there is nothing to do, on stdout.  Holds a session advisory lock while
 * working.  A database migrated with the chain 001_baseline.sql squashed is
 * first recorded as having the baseline applied (same schema); one with
 * some other 001_init is refused, asking to recreate it.  Afterwards every
 * indicator must have its column in rollcall.latest_report (a database
 * created before an indicator was added is refused, naming it).
 * Returns 0; or -1 with errbuf filled — files applied before the
 * failing one stay applied, the failing one is rolled back, and nothing at
 * all is applied when a checksum or numbering check fails. */
int rc_migrate(rc_pg *pg, const char *dir, bool dry_run, char *errbuf, size_t errlen);

#endif
