/* rollcall-rollup internals: the shared context, the daily pipeline (a
 * consumer thread that streams decoded reports into a PostgreSQL staging
 * table, a flusher thread that turns each staged batch into one
 * transaction), the urgent fast path and the outbox publisher.
 *
 * Threads: the main thread runs the HTTP service (rc_service); "daily"
 * consumes reports.{village,township,county,province} and fills batch
 * slots; "flusher" commits the slots in order and publishes the outbox;
 * "urgent" consumes reports.urgent with its own connection and small
 * transactions.  Each thread owns its PostgreSQL connections. */
#ifndef ROLLUP_H
#define ROLLUP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "rc_kafka.h"
#include "rc_log.h"
#include "rc_metrics.h"
#include "rc_pg.h"
#include "rc_pgcopy.h"
#include "rc_registry.h"
#include "rc_report.h"
#include "rc_rollup_sql.h"
#include "stage.h"

#define ROLLUP_NTOPICS 4            /* reports.village .. reports.province */
#define ROLLUP_NSLOTS 2             /* batches: one filling while one flushes */
/* When no more than this many of a batch's first revisions carry a
 * report_id archived before, only those are checked (their ids in a hashed
 * list, RC_CHECK_KNOWN); with more, the batch is taken for a replay and
 * every row is checked. */
#define ROLLUP_KNOWN_MAX 100000
/* A batch closes once it holds this many dead letters: each keeps its raw
 * message in memory until the commit (a storm must not grow the process). */
#define ROLLUP_DLQ_MAX 5000

extern const char *const rollup_topics[ROLLUP_NTOPICS];
extern const int rollup_topic_level[ROLLUP_NTOPICS];

/* ------------------------------------------------------------- config */

typedef struct rollup_cfg {
    char *pg_dsn;
    char *kafka_brokers;
    char *group;                /* consumer group; the urgent path uses group + ".urgent" */
    char *listen_addr;
    char *instance_id;          /* static group membership (group.instance.id prefix) */
    int http_port;
    int flush_interval_ms;      /* coalescing interval */
    int max_batch;              /* reports per batch (backlog) */
    int lanes;                  /* parallel pipelines (consumers) in this process */
    int urgent_max_batch;
    int urgent_rtprio;          /* SCHED_RR priority of the urgent path's threads (0: ordinary) */
    bool urgent;                /* run the reports.urgent path */
    int max_past_days;          /* validation window for replays */
    int registry_reload_ms;
    int stall_after_ms;         /* /healthz: stalled after this long (0: never) */
    int outbox_chunk;
    rc_log_level log_level;
} rollup_cfg;

/* ------------------------------------------------------------- keyset */

/* A set of non-zero 64-bit keys (open addressing). */
typedef struct keyset {
    uint64_t *slots;
    size_t cap, n;
} keyset;

void keyset_init(keyset *s);
void keyset_free(keyset *s);
void keyset_clear(keyset *s);
/* Adds k; returns 1 if new, 0 if present, -1 on out of memory. */
int keyset_add(keyset *s, uint64_t k);
bool keyset_has(const keyset *s, uint64_t k);
/* Calls fn for every key (unordered). */
void keyset_each(const keyset *s, void (*fn)(uint64_t k, void *opaque), void *opaque);

/* (numeric unit code, period day) packed into one key. */
static inline uint64_t rollup_key(uint64_t code, int32_t day)
{
    return (code << 17) | ((uint64_t)(uint32_t)day & 0x1ffff);
}
static inline uint64_t rollup_key_code(uint64_t k) { return k >> 17; }
static inline int32_t rollup_key_day(uint64_t k) { return (int32_t)(k & 0x1ffff); }

/* ------------------------------------------------------------- metrics */

typedef struct rollup_metrics {
    rc_counter *messages, *archived, *duplicates, *dead_letters, *batches, *batch_failures;
    rc_counter *outbox_published, *outbox_failed, *aggregates_changed;
    rc_counter *urgent_messages, *urgent_hops;
    rc_histogram *flush_seconds, *urgent_seconds, *batch_rows;
    rc_gauge *outbox_depth, *lag;
} rollup_metrics;

/* ------------------------------------------------------------- outbox */

typedef struct rollup_outbox {
    pthread_mutex_t mu;
    int64_t *done;              /* delivered: delete these */
    size_t ndone, capdone;
    int64_t *failed;            /* not delivered: send again */
    size_t nfailed, capfailed;
    atomic_long inflight;
} rollup_outbox;

/* ------------------------------------------------------------- context */

typedef struct subtree {
    uint64_t code;
    int32_t villages;
} subtree;

typedef struct rollup {
    rollup_cfg cfg;
    /* The registry and the village counts beneath counties and provinces are
     * replaced together when rollcall.unit changes (rollcall registry import
     * while the service runs); readers hold reg_lock. */
    pthread_rwlock_t reg_lock;
    rc_registry *reg;
    subtree *counties, *provinces;      /* villages beneath, sorted by code */
    size_t ncounties, nprovinces;
    char reg_signature[64];
    /* Looks at rollcall.unit (periodic, or for a report naming a unit the
     * loaded registry lacks) one at a time; reg_check_pg is the session of
     * rollup_validate's looks. */
    pthread_mutex_t reg_check_mu;
    rc_pg *reg_check_pg;
    int64_t reg_checked_us;             /* when the last successful look began */
    int deadline_min[6];                /* per level: minutes after midnight, Asia/Shanghai */
    rc_producer *producer;
    rollup_outbox outbox;
    rollup_metrics m;
    rc_validate_opts vopts_village, vopts_filed;
    const char *const *kafka_props;     /* kafka.* from the config, for every client */
    size_t nkafka_props;
    atomic_bool stop;
    atomic_bool pg_ok, kafka_ok, failed;
    atomic_llong lag;
    struct pipeline *lanes;     /* for the stall check; nlanes once started */
    atomic_int nlanes;
    char health_msg[256];
    int64_t urgent_failing_us;          /* the urgent path cannot store (0: it can); health_mu */
    char urgent_error[300];
    pthread_mutex_t health_mu;
} rollup;

/* Village count beneath a county (level 3) or province (5); 0 if unknown. */
int32_t rollup_villages_beneath(rollup *ru, int level, uint64_t code);

/* rc_report_validate against the current registry. */
int rollup_validate(rollup *ru, const Rollcall__Report *r, const rc_validate_opts *opts,
                    rc_errors *errs);

/* Loads the registry again when rollcall.unit changed since the last load.
 * Returns 1 when reloaded, 0 when unchanged, -1 on error (the old one stays). */
int rollup_registry_refresh(rollup *ru, rc_pg *pg, char *errbuf, size_t errlen);

/* Microseconds (UTC) of the deadline of `level` on period `day`. */
int64_t rollup_deadline_us(const rollup *ru, int level, int32_t day);

/* Stores the next offset of one partition for group (never moving it
 * back), in the caller's transaction.  Returns 0 or -1 with errbuf. */
int rollup_store_offset(rc_pg *pg, const char *group, const char *topic, int32_t partition,
                        int64_t next, char *errbuf, size_t errlen);

/* Logs a dead letter: one line each for the first few of an interval, then
 * a count per reason at the end of it, so a storm of them (a day for a
 * period refused) costs bounded log volume. */
void rollup_dlq_log(rollup *ru, const char *topic, int32_t partition, int64_t offset,
                    const char *reason);

/* Records a health problem (or clears it when msg is NULL). */
void rollup_set_health(rollup *ru, const char *what, const char *msg);

/* Connects, sets the session up for the rollup (jit off, ...).  NULL on
 * failure with errbuf. */
rc_pg *rollup_pg_connect(rollup *ru, const char *appname, char *errbuf, size_t errlen);

/* Reads the stored next offsets of `group` into parts (.offset); partitions
 * never consumed get RD_KAFKA_OFFSET_BEGINNING.  Returns 0 or -1. */
int rollup_load_offsets(rc_pg *pg, const char *group, rd_kafka_topic_partition_list_t *parts);

/* Builds a consumer's property list: the consumer defaults every rollup
 * consumer shares, then `own`, then the config's kafka.* (which win).
 * Returns the count written into out (at most cap). */
size_t rollup_consumer_props(const rollup *ru, const char *const *own, size_t nown,
                             const char **out, size_t cap);

/* "group.instance.id=<instance_id>-<suffix>" into buf when instance_id is
 * set (static membership: a restarted instance gets its partitions back at
 * once instead of after the session timeout); NULL otherwise. */
const char *rollup_instance_prop(const rollup *ru, const char *suffix, char *buf, size_t len);

/* ------------------------------------------------------------- daily path */

typedef struct dead_letter {
    char *topic;
    int32_t partition;
    int64_t offset;
    void *raw;
    size_t rawlen;
    char *key;
    char reason[512];
} dead_letter;

typedef struct part_off {
    int topic;                  /* index in rollup_topics */
    int32_t partition;
    int64_t first, next;        /* first offset in the batch, last + 1 */
} part_off;

typedef struct slot {
    int id;
    rc_pg *pg;
    bool copying;               /* COPY into the stage is open */
    bool session_ready;
    uint64_t session_conn;      /* rc_pg_reconnects when the session was made ready */
    rc_pgcopy buf;              /* rows not yet handed to libpq */
    size_t rows;                /* staged rows */
    size_t latest_rows;         /* DAILY/ZERO rows among them */
    bool repeated_keys;         /* some (unit, period) twice in the batch */
    size_t rep_rows;            /* rows staged with rep = true */
    keyset keys;                /* (unit, period) of DAILY/ZERO rows */
    keyset townships, counties, provinces;          /* live aggregates to refresh */
    keyset filing_counties, filing_provinces;       /* filing completeness to refresh */
    part_off *offs;
    size_t noffs, capoffs;
    dead_letter *dlq;
    size_t ndlq, capdlq;
    Rollcall__Report **urgent;  /* URGENT reports seen on the daily topics */
    size_t nurgent, capurgent;
    int64_t opened_us;
    double decode_s;
    /* The batch's first message as consumed: when a batch of one fails for
     * a data reason, this is what goes to the dead letters. */
    int first_topic;            /* -1: none */
    int32_t first_partition;
    int64_t first_offset;
    void *first_raw;
    size_t first_len;
    char *first_key;
    /* The COPY into the stage failed (PostgreSQL refused a row, or the
     * connection went): the slot goes to the flusher all the same, which
     * treats it as a failed batch. */
    bool stage_failed;
    rc_pg_error_class stage_class;
    char stage_error[512];
} slot;

typedef struct pipeline {
    rollup *ru;
    atomic_llong flush_started_us;  /* when the running batch began; 0: none */
    atomic_llong polled_us;         /* the consumer's last pass through its loop */
    int lane;
    int cur_slot;               /* the filling slot (consumer thread), -1 none */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    slot slots[ROLLUP_NSLOTS];
    int queue[ROLLUP_NSLOTS];   /* closed slots waiting for the flusher, FIFO */
    int nqueue;
    bool flushing;              /* the flusher holds a slot */
    int free_mask;
    bool rewind;                /* a flush failed: the consumer re-reads from the stored offsets */
    int consecutive_failures;
    int64_t failing_since_us;   /* first failure of the current run of failures; 0: none */
    char last_error[300];       /* of the last failed batch, for /healthz */
    /* Poison isolation: after a batch failed for a data reason, batches hold
     * at most isolate_limit messages (halved on each such failure, doubled
     * on success) until the consumer is past every partition range of the
     * failed batch (suspect); a batch of one that PostgreSQL refuses is
     * dead-lettered.  0: normal batches.  Under mu. */
    size_t isolate_limit;
    int64_t isolate_deadline_us;
    part_off *suspect;
    size_t nsuspect, capsuspect;
    bool stopping;
    rc_pg *control;             /* consumer thread: offsets on assignment */
    rc_consumer *consumer;
    pthread_t consumer_thread, flusher_thread;
} pipeline;

/* True, with a description in msg, when a lane's batch has been running
 * for stall_after or its consumer has not polled for that long while no
 * batch runs (a consumer waiting for a free slot waits on a batch). */
bool rollup_stalled(rollup *ru, char *msg, size_t len);

/* Starts one lane: a consumer in the group and its flusher.  Several lanes
 * in one process behave exactly like several instances (disjoint
 * partitions, parents locked in code order), and let PostgreSQL work on two
 * batches at once. */
int pipeline_start(pipeline *pl, rollup *ru, int lane, char *errbuf, size_t errlen);
/* Stops consuming, flushes what was consumed, joins the threads. */
void pipeline_stop(pipeline *pl);

/* slot.c */
int slot_open(rollup *ru, slot *s, char *errbuf, size_t errlen);
void slot_reset(slot *s);
void slot_free(slot *s);
/* Decodes one message into the slot (or its dead letters).  Returns 0, or
 * -1 when the slot's COPY failed (the batch must be discarded). */
int slot_add(rollup *ru, slot *s, const rd_kafka_message_t *msg, int topic);
/* Ends the COPY; returns 0 or -1. */
int slot_close(rollup *ru, slot *s, char *errbuf, size_t errlen);
/* Makes the session ready (temp stage table, statements).  0 or -1. */
int slot_session(rollup *ru, slot *s, char *errbuf, size_t errlen);

/* flush.c: runs the slot's transaction and publishes its outbox.  Returns
 * 0, or -1 with errbuf and *cls (what PostgreSQL's SQLSTATE says about it:
 * retry, or the data's fault) — nothing committed. */
int flush_slot(rollup *ru, slot *s, const char *group, rc_pg_error_class *cls, char *errbuf,
               size_t errlen);
/* Deletes delivered outbox rows and re-sends failed ones (idle work). */
int flush_housekeeping(rollup *ru, rc_pg *pg, char *errbuf, size_t errlen);

/* ------------------------------------------------------------- outbox.c */

int outbox_init(rollup_outbox *o);
void outbox_destroy(rollup_outbox *o);
/* rc_delivery_fn for the producer. */
void outbox_delivered(void *fn_opaque, void *msg_opaque, rd_kafka_resp_err_t err,
                      const char *topic, int32_t partition, int64_t offset);
/* Publishes the outbox rows with lo <= id <= hi (hi < 0: all rows). */
int outbox_publish(rollup *ru, rc_pg *pg, int64_t lo, int64_t hi, char *errbuf, size_t errlen);
/* Deletes delivered rows (inside the caller's transaction if one is open). */
int outbox_delete_done(rollup *ru, rc_pg *pg, char *errbuf, size_t errlen);
/* Re-sends rows whose delivery failed. */
int outbox_retry_failed(rollup *ru, rc_pg *pg, char *errbuf, size_t errlen);
/* Appends the changed aggregates (updated in this transaction) of the given
 * parents to the outbox.  Returns the number written or -1. */
long outbox_write_aggregates(rollup *ru, rc_pg *pg, const char *codes, const char *days,
                             int64_t *lo, int64_t *hi, char *errbuf, size_t errlen);

/* ------------------------------------------------------------- urgent.c */

typedef struct urgent_path {
    rollup *ru;
    rc_pg *pg;
    rc_consumer *consumer;
    char group[256];
    pthread_t thread;
    bool running;
} urgent_path;

int urgent_start(urgent_path *u, rollup *ru, char *errbuf, size_t errlen);
void urgent_stop(urgent_path *u);
/* Records an URGENT report (urgent_report + its hops) in the caller's
 * transaction.  Returns the number of new hops or -1. */
int urgent_record(rc_pg *pg, const Rollcall__Report *r, char *errbuf, size_t errlen);
int urgent_prepare(rc_pg *pg, char *errbuf, size_t errlen);

#endif
