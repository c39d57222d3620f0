/* rc_migrate — applies the numbered SQL files of migrations/ (NNN_name.sql)
 * in order, each in its own transaction together with its row in
 * rollcall.schema_migration (version, name, SHA-256 of the file).
 *
 * A file must not contain BEGIN/COMMIT of its own.  The pure parts (file
 * names, ordering, checksums, the plan against what is applied) are exported
 * so they can be tested without a database. */
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
    char *sql;           /* file contents, NUL terminated */
    size_t sql_len;
} rc_migration;

typedef struct rc_migration_set {
    rc_migration *items; /* sorted by version: items[i].version == i + 1 */
    size_t count;
} rc_migration_set;

/* What schema_migration says is applied (borrowed strings). */
typedef struct rc_migration_applied {
    int version;
    const char *name;
    const char *checksum;
} rc_migration_applied;

/* Parses "NNN_name.sql" (at least three digits, name of [a-z0-9_]).
 * Returns 1 and fills version/name; 0 for a file that is not a migration
 * (no ".sql" suffix — ignored by the scanner); -1 for a ".sql" file with a
 * malformed name (an error: probably a typo), errbuf filled. */
int rc_migrate_parse_filename(const char *file, int *version, char *name, size_t namelen,
                              char *errbuf, size_t errlen);

/* SHA-256 of data as 64 lower-case hex digits + NUL. */
void rc_migrate_sha256_hex(const void *data, size_t len, char out[65]);

/* Sorts `set` by version and checks the numbering is 1, 2, 3, ... without
 * duplicates or gaps.  Returns 0, or -1 naming the offending files. */
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
 * checksums) or the database holds a version with no file. */
int rc_migrate_plan(const rc_migration_set *set, const rc_migration_applied *applied,
                    size_t napplied, size_t *first_pending, char *errbuf, size_t errlen);

/* Brings the database up to date with `dir`, printing one line per file
 * applied (or, with dry_run, that would be applied) and "up to date" when
 * there is nothing to do, on stdout.  Holds a session advisory lock while
 * working.  Returns 0; or -1 with errbuf filled — files applied before the
 * failing one stay applied, the failing one is rolled back, and nothing at
 * all is applied when a checksum or numbering check fails. */
int rc_migrate(rc_pg *pg, const char *dir, bool dry_run, char *errbuf, size_t errlen);

#endif
