/* rollcall-level internals: the configuration and state shared by the
 * process's three parts — the HTTP service (main.c), the daily desk
 * (daily.c: rollups.<level> -> filing, reminders, escalations) and the
 * urgent relay (urgent.c: reports.urgent -> reports.urgent).
 *
 * The desk and the relay run in threads of their own, each with its own
 * PostgreSQL connection, consumer and producer: an urgent report must never
 * wait behind a batch of daily work (a filing flush, a sweep query). */
#ifndef ROLLCALL_LEVEL_H
#define ROLLCALL_LEVEL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "rc_clock.h"
#include "rc_metrics.h"
#include "rc_pg.h"
#include "rc_sql.h"

typedef struct level_cfg {
    char *level_name;       /* township | county | province */
    char *pg_dsn;
    char *kafka_brokers;
    char *group;            /* "" -> rollcall-<level> */
    char *clock;            /* rc_clock spec */
    char *start_from;       /* beginning | end: where a partition without a stored offset starts */
    char *listen_addr;
    int http_port;
    int tick_ms;            /* deadline / sign-off / reminder sweep period */
    int max_batch;          /* messages per daily batch */
    int batch_ms;           /* longest wait to fill a batch */
    int flush_timeout_ms;   /* longest wait for filed reports to be acknowledged */
    int reload_ms;          /* policy and rules re-read at least this often */
    int revise_every_ms;    /* shortest time between two filings of one unit-period */
    bool daily;             /* run the desk */
    bool urgent;            /* run the urgent relay */
    int urgent_nice;
    int urgent_rtprio;        /* SCHED_RR priority of the relay's threads (0: ordinary) */
    int urgent_fetch_wait_ms; /* fetch.wait.max.ms of the relay's consumer */        /* nice value of the relay's threads (negative: ahead of the rest) */
} level_cfg;

typedef struct level_metrics {
    rc_counter *consumed;           /* live aggregates consumed */
    rc_counter *invalid;            /* undecodable or foreign messages (dead letters) */
    rc_counter *version_conflicts;  /* an aggregate changed without a new version */
    rc_counter *filed[4];           /* by rc_file_reason */
    rc_counter *filing_failed;      /* filed reports not acknowledged (retried) */
    rc_counter *reminders;
    rc_counter *escalations;
    rc_counter *urgent_seen;
    rc_counter *urgent_forwarded;
    rc_counter *urgent_invalid;
    rc_counter *urgent_retries;
    rc_histogram *urgent_forward;   /* received -> acknowledged by the broker, seconds */
    rc_histogram *urgent_hop_lag;   /* previous hop's time -> our hop's time, seconds */
    rc_histogram *batch_seconds;    /* one daily batch, consume to offsets committed */
    rc_gauge *awaiting_signoff;
    rc_gauge *missing_after_deadline;
    rc_gauge *incomplete_after_deadline;
} level_metrics;

typedef struct level_ctx {
    int level;                      /* 2 township, 3 county, 5 province */
    const char *name;               /* "township" */
    char submitter[32];             /* "rollcall-township" */
    char group[128];                /* consumer group of the desk; the relay adds "-urgent" */
    const level_cfg *cfg;
    const char *const *kafka_props; /* kafka.* pass-through */
    size_t nkafka_props;
    rc_clock *clock;
    level_metrics m;
    atomic_bool running;
    /* Liveness for /healthz: wall-clock µs of each loop's last turn, and
     * whether its last PostgreSQL / Kafka operation worked. */
    _Atomic int64_t daily_beat, urgent_beat;
    atomic_bool daily_ok, urgent_ok;
    atomic_int daily_parts, urgent_parts;   /* partitions assigned right now */
} level_ctx;

/* Thread bodies; each returns when ctx->running turns false (or on a fatal
 * error, after clearing ctx->running so the whole process stops). */
void *level_daily_main(void *ctx);
void *level_urgent_main(void *ctx);

/* ---- offsets.c: consumed offsets live in rollcall.consumer_offset ---- */

/* Sets .offset of every partition in `parts` to the next offset stored for
 * `group`, or for a partition never consumed to the current start or end of
 * the partition ("beginning" | "end"), asked of the broker through `rk`.  Returns 0, or -1 with errbuf (parts unchanged
 * then: the caller refuses the assignment). */
int level_offsets_assign(rc_pg *pg, rd_kafka_t *rk, const char *group,
                         rd_kafka_topic_partition_list_t *parts, const char *start_from,
                         char *errbuf, size_t errlen);

/* Stores next offsets (never moving one backwards) for `group`: n entries
 * of topic/partition/next.  Runs inside the caller's transaction if one is
 * open.  Returns 0, or -1 with errbuf. */
int level_offsets_store(rc_pg *pg, const char *group, const char *topic,
                        const int32_t *partitions, const int64_t *next, size_t n,
                        char *errbuf, size_t errlen);

#endif
