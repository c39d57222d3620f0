/* rollcall replay internals: reading reports from a file (replay_file.c) and
 * measuring what a replay changes in rollcall.v_unit_day (replay_diff.c). */
#ifndef RC_CLI_REPLAY_H
#define RC_CLI_REPLAY_H

#include "cli.h"
#include "rc_report.h"

#include <stdio.h>

/* ---- replay_file.c ---- */

typedef struct {
    const char *path;                   /* "-" = stdin */
    bool csv;                           /* else JSON lines */
    const rc_registry *registry;        /* the current registry (validation) */
    const rc_validate_opts *validate;
} replay_file_opts;

/* Called for each valid report, in file order; takes ownership of r
 * (rc_report_free it).  `line` is its line (CSV: record) number. */
typedef void replay_report_fn(void *opaque, Rollcall__Report *r, size_t line);

/* Reads every report of the file; prints each invalid one to stderr as
 * "FILE:LINE: field: reason" and skips it.  Returns 0 (counts in *valid and
 * *invalid), or -1 with errbuf filled when the file cannot be read or its
 * CSV header names an unknown field (reports already passed to fn stay
 * passed). */
int replay_file_read(const replay_file_opts *o, replay_report_fn *fn, void *opaque,
                     size_t *valid, size_t *invalid, char *errbuf, size_t errlen);

/* ---- replay_diff.c ---- */

/* The (unit, period) rows of rollcall.v_unit_day a replay may touch: each
 * replayed report's own unit and its rollup ancestors.  Kept in session
 * temporary tables of the connection. */
typedef struct replay_diff replay_diff;

/* Creates (or empties) the temporary tables.  NULL with errbuf filled. */
replay_diff *replay_diff_new(rc_pg *pg, char *errbuf, size_t errlen);
void replay_diff_free(replay_diff *d);

/* Scopes the comparison to a subtree and period range: every row of the
 * unit's subtree (a code prefix, "" for all) and of its rollup ancestors for
 * the periods — a superset of what replaying the subtree can touch, read
 * with one predicate instead of a key per report.  Without it the scope is
 * the keys added with replay_diff_add_key.  Returns 0 or -1. */
int replay_diff_scope_subtree(replay_diff *d, const char *unit, const char *from, const char *to,
                              char *errbuf, size_t errlen);

/* Adds one report's keys (its unit and rollup ancestors for its period).
 * Returns 0 or -1. */
int replay_diff_add_key(replay_diff *d, const char *unit_code, const char *period,
                        char *errbuf, size_t errlen);

/* Stages one report to be applied by the dry run, and adds its keys:
 * between replay_diff_stage_begin (which opens the dry run's transaction)
 * and replay_diff_snapshot.  `payload` is the message's bytes (NULL: the
 * report packed).  Returns 0 or -1. */
int replay_diff_stage_begin(replay_diff *d, char *errbuf, size_t errlen);
int replay_diff_stage(replay_diff *d, const Rollcall__Report *r, const char *topic,
                      const uint8_t *payload, size_t len, char *errbuf, size_t errlen);
int replay_diff_stage_end(replay_diff *d, char *errbuf, size_t errlen);

/* Records the keys' current rows ("before").  Returns 0 or -1. */
int replay_diff_snapshot(replay_diff *d, char *errbuf, size_t errlen);

/* The dry run: in one transaction, applies the staged reports with the
 * rollup's own statements, prints the change against the snapshot and
 * rolls everything back.  Returns the number of rows that would change,
 * or -1 (nothing changed either way). */
long long replay_diff_dry_run(replay_diff *d, FILE *out, long limit, char *errbuf, size_t errlen);

/* After a real run: prints the change between the snapshot and the rows
 * now.  Returns the number of rows changed, or -1. */
long long replay_diff_print(replay_diff *d, FILE *out, long limit, char *errbuf, size_t errlen);

/* ---- replay_apply.c ---- */

/* Creates the rollup's stage table (rc_rollup_sql) in the caller's open
 * transaction and starts a COPY into it.  Returns 0 or -1. */
int replay_apply_stage_begin(rc_pg *pg, char *errbuf, size_t errlen);

/* Writes one report as a stage row, as the rollup's consumer would for a
 * new message on `topic`.  Returns 0, or -1 (the COPY is then over). */
int replay_apply_stage_row(rc_pg *pg, const Rollcall__Report *r, const char *topic,
                           const uint8_t *payload, size_t len, char *errbuf, size_t errlen);

/* Applies the staged reports (after the COPY ended) the way the rollup
 * applies a batch: its archive, duplicate and latest-wins statements, then
 * rollcall.refresh_level for the counties and provinces.  Returns 0, or -1
 * with errbuf filled (the caller rolls back either way). */
int replay_apply_staged(rc_pg *pg, char *errbuf, size_t errlen);

#endif
