/* The daily desk of rollcall-level, private to services/level: the types
 * and functions its files share.
 *
 * It consumes the rollup's live aggregates (rollups.<level>),
 * keeps the newest per (unit, period) in rollcall.filing, files snapshots of
 * them to reports.<level> — when complete, at the deadline, on a sign-off,
 * and again when the numbers change — reminds missing children before the
 * deadline and raises escalations.
 *
 * Every decision is re-derivable from rollcall.filing, so a restart resumes
 * from PostgreSQL alone: a batch's offsets are stored only after its filed
 * reports were acknowledged, and a periodic sweep files whatever is due and
 * not yet filed (a failed delivery, a deadline, a signature).  Instances of
 * one level share the partitions; each sweeps only the units of the
 * partitions it holds (filing.source_partition). */
#ifndef ROLLCALL_LEVEL_DESK_H
#define ROLLCALL_LEVEL_DESK_H

#include "level.h"
#include "rc_kafka.h"
#include "rc_level.h"
#include "rc_log.h"
#include "rc_report.h"
#include "rc_rule.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_PARTITIONS 256
#define MAX_RULES 64
#define MAX_REMINDERS 16
#define SWEEP_LIMIT 2000
#define PUBLISH_LIMIT 2000
#define RECOVER_EVERY_US (10LL * 1000000)  /* unpublished rows re-sent, gauges refreshed */
/* rollcall.filing.filed_at in microseconds since the epoch, 0 when never filed */
#define FILED_AT_US "coalesce((extract(epoch FROM filed_at) * 1000000)::bigint, 0)"

typedef struct delivery {
    bool sent, done, ok;
    int32_t partition;
    int64_t offset;
} delivery;

/* One unit-period under decision, from a batch or from a sweep. */
typedef struct row {
    char unit[13];
    char period[11];
    int32_t day;
    int64_t version;
    char live_id[40];
    Rollcall__Report *agg;      /* owned */
    const uint8_t *payload;     /* the aggregate as consumed (batch: borrowed from the message) */
    size_t payload_len;
    uint8_t *payload_owned;     /* sweep: decoded from PostgreSQL */
    int partition;
    size_t seq;                 /* batch: consumption order, the last word between equals */
    bool updated;               /* batch: the upsert took it (newer than what was stored) */
    /* state from rollcall.filing */
    bool filed;
    bool ready;
    bool signed_current;
    int64_t filed_at;           /* the last filing, microseconds since the epoch (0: never) */
    char signoff_by[128];
    /* decision */
    rc_file_action action;
    rc_file_reason reason;
    bool revised;
    bool past_deadline;
    char report_id[37];
    int kind;
    delivery dlv;
} row;

typedef struct escal {
    char unit[13];
    char period[11];
    const char *rule;
    int64_t value;
    int raise_to;
} escal;

typedef struct desk {
    level_ctx *ctx;
    const level_cfg *cfg;
    rc_pg *pg;
    rc_consumer *consumer;
    rc_producer *producer;
    char topic_in[32];
    char topic_out[32];
    bool assigned[MAX_PARTITIONS];
    /* policy and rules, reloaded on NOTIFY rollcall_level_config */
    int deadline_min;
    bool signoff_required;
    int reminder_min[MAX_REMINDERS];    /* descending */
    size_t nreminders;
    rc_rule rules[MAX_RULES];
    size_t nrules;
    int maxdays;                        /* history the zero/copied rules need */
    int64_t loaded_at;
    bool reload;
    /* the batch being collected */
    rd_kafka_message_t **msgs;
    size_t nmsgs, capmsgs;
    /* escalations found while processing, inserted with the next transaction */
    escal *esc;
    size_t nesc, capesc;
    int64_t last_tick, last_recover;
} desk;

/* The rows of rollcall.filing that can be due before their deadline
 * (complete, filed before, ready or signed): with filed_version IS DISTINCT
 * FROM live_version, the predicate of filing_due_early_idx (migrations/001_baseline.sql),
 * which a query must state for PostgreSQL to use that index. */
#define DUE_EARLY                                                                     \
    "(live_complete OR filed_version IS NOT NULL OR ready_at IS NOT NULL"             \
    " OR signoff_version IS NOT NULL)"

/* ---- desk.c ---- */

void desk_fmt_time(int64_t us, char out[40]);

bool desk_past_deadline(const desk *d, int32_t day, int64_t now);

void desk_row_clear(row *r);

void desk_rows_free(row *rows, size_t n);

int desk_decode_row(row *r, char *err, size_t errlen);

/* ---- policy.c ---- */

int desk_load_config(desk *d);

void desk_listen_config(desk *d);

void desk_check_notifies(desk *d);

/* ---- filing.c ---- */

void desk_decide(desk *d, row *r, int64_t now);

/* Files the rows decided RC_FILE_NOW, waits for the broker's
 * acknowledgements, then records everything in one transaction (plus the
 * batch's offsets when given, and only if every filing was delivered).
 * Returns 0, or -1 (nothing recorded; the sweep files what is still due). */
int desk_file_rows(desk *d, row *rows, size_t n, int64_t now, const int32_t *parts,
                   const int64_t *next, size_t nparts);

/* ---- sweep.c ---- */

bool desk_any_assigned(const desk *d, rc_sqlarr *parts);

/* Files what became due without a new aggregate: deadlines, signatures,
 * retries, and changes held back by revise_every.  Returns the number of
 * rows looked at, -1 on error. */
int desk_sweep(desk *d);

/* ---- reminders.c ---- */

/* Publishes this level's unpublished reminders or escalations (rows locked
 * while they are sent, so two instances never send the same row). */
void desk_publish_pending(desk *d, bool reminders);

/* Reminds the missing children of units whose reminder time has come. */
void desk_remind(desk *d);

/* ---- escalations.c ---- */

/* Inserts the escalations found so far (once per unit, period and rule) in
 * the caller's transaction; the list is emptied either way.  -1 on error. */
int desk_insert_escalations(desk *d, int64_t now, char *err, size_t errlen);

/* Rules evaluated on what is filed: zero after observation, copied, and
 * missing children once the deadline has passed. */
void desk_rules_on_filing(desk *d, row *rows, size_t n);

void desk_rules_on_live(desk *d, const row *r);

#endif
