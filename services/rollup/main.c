/* rollcall-rollup — the only writer of reports and aggregates: consumes
 * every level's reports, keeps the archive, the latest report per unit and
 * day and the live aggregates of every township, county and province in
 * PostgreSQL (one transaction per batch, with the consumed offsets), and
 * publishes the changed aggregates to rollups.<level>. */
#include "rollup.h"

#include "rc_config.h"
#include "rc_service.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char *const rollup_topics[ROLLUP_NTOPICS] = {"reports.village", "reports.township",
                                                   "reports.county", "reports.province"};
const int rollup_topic_level[ROLLUP_NTOPICS] = {
    ROLLCALL__LEVEL__LEVEL_VILLAGE, ROLLCALL__LEVEL__LEVEL_TOWNSHIP,
    ROLLCALL__LEVEL__LEVEL_COUNTY, ROLLCALL__LEVEL__LEVEL_PROVINCE};

static rollup R;

static const rc_cfg_item config_items[] = {
    RC_CFG_PG_DSN(&R.cfg.pg_dsn, "PostgreSQL (libpq conninfo), as rollcall_rollup"),
    RC_CFG_KAFKA_BROKERS(&R.cfg.kafka_brokers, "127.0.0.1:9092"),
    {"group", RC_CFG_STRING, &R.cfg.group, "rollcall-rollup", 1, 200,
     "consumer group; offsets live in rollcall.consumer_offset under this name "
     "(the urgent path uses <group>.urgent)", 0},
    {"instance_id", RC_CFG_STRING, &R.cfg.instance_id, "", 0, 200,
     "static group membership: a name unique to this instance (e.g. the host); a restart "
     "then resumes its partitions at once instead of after the session timeout", 0},
    RC_CFG_LISTEN_ADDR(&R.cfg.listen_addr),
    RC_CFG_HTTP_PORT(&R.cfg.http_port, "8081"),
    {"flush_interval", RC_CFG_MS, &R.cfg.flush_interval_ms, "200ms", 1, 60000,
     "coalescing interval: a batch is committed at most this long after its first report "
     "(longer while the previous batch is still being committed)", 0},
    {"max_batch", RC_CFG_INT, &R.cfg.max_batch, "400000", 1, 5000000,
     "most reports in one batch (reached only with a backlog)", 0},
    {"lanes", RC_CFG_INT, &R.cfg.lanes, "1", 1, 8,
     "parallel pipelines in this process: each is a consumer of the group with its own "
     "PostgreSQL sessions, like one more instance", 0},
    {"urgent", RC_CFG_BOOL, &R.cfg.urgent, "yes", 0, 0, "consume reports.urgent (fast path)", 0},
    {"urgent_max_batch", RC_CFG_INT, &R.cfg.urgent_max_batch, "200", 1, 10000,
     "most urgent messages in one transaction", 0},
    {"urgent_rtprio", RC_CFG_INT, &R.cfg.urgent_rtprio, "10", 0, 99,
     "real-time (SCHED_RR) priority of the urgent path's threads, ahead of the daily batches "
     "and every ordinary thread on the machine; needs CAP_SYS_NICE (0: off)", 0},
    {"max_past_days", RC_CFG_INT, &R.cfg.max_past_days, "400", 1, 36500,
     "oldest period accepted (days before today), for replays", 0},
    {"registry_reload", RC_CFG_MS, &R.cfg.registry_reload_ms, "6s", 0, 3600000,
     "how often rollcall.unit is checked for changes and the registry reloaded (0: only at "
     "start, and never on demand); a report naming a unit the registry lacks makes it look at "
     "once, since the intake may have reloaded first", 0},
    {"stall_after", RC_CFG_MS, &R.cfg.stall_after_ms, "300s", 0, 86400000,
     "/healthz reports the service stalled once a batch has been running this long, or a "
     "consumer has not polled Kafka this long while no batch runs (0: never)", 0},
    {"outbox_chunk", RC_CFG_INT, &R.cfg.outbox_chunk, "5000", 10, 100000,
     "outbox rows read per query when publishing", 0},
    RC_CFG_LOG_LEVEL(&R.cfg.log_level),
    {NULL, 0, NULL, NULL, 0, 0, NULL, 0},
};

/* ---------------------------------------------------------------- helpers */

static int cmp_subtree(const void *a, const void *b)
{
    uint64_t x = ((const subtree *)a)->code, y = ((const subtree *)b)->code;
    return x < y ? -1 : x > y;
}

int32_t rollup_villages_beneath(rollup *ru, int level, uint64_t code)
{
    pthread_rwlock_rdlock(&ru->reg_lock);
    const subtree *arr = level == 3 ? ru->counties : ru->provinces;
    size_t n = level == 3 ? ru->ncounties : ru->nprovinces;
    subtree key = {code, 0};
    const subtree *hit = arr ? bsearch(&key, arr, n, sizeof key, cmp_subtree) : NULL;
    int32_t v = hit ? hit->villages : 0;
    pthread_rwlock_unlock(&ru->reg_lock);
    return v;
}

static int registry_as_of(rollup *ru, int64_t since_us);

int rollup_validate(rollup *ru, const Rollcall__Report *r, const rc_validate_opts *opts,
                    rc_errors *errs)
{
    size_t before = errs->n;
    pthread_rwlock_rdlock(&ru->reg_lock);
    int rc = rc_report_validate(r, opts, ru->reg, errs);
    pthread_rwlock_unlock(&ru->reg_lock);
    if (rc == 0)
        return 0;
    /* The intake reloads the registry on its own schedule: it may accept a
     * unit imported since this service last looked.  When the registry is
     * all that is wrong, look again before refusing -- unless a look began
     * after the intake received the report (then it saw what the intake
     * saw), so that a storm of unknown units costs one look, not one each.
     * (A difference between the two hosts' clocks opens a window as wide
     * as it.) */
    rc_errors bare = {0};
    if (ru->cfg.registry_reload_ms == 0 || rc_report_validate(r, opts, NULL, &bare) < 0)
        return rc;      /* registry_reload 0: the registry of the start, as configured */
    int64_t now = rc_now_us();
    int64_t since = r->received_at > 0 && r->received_at < now ? r->received_at : now;
    if (registry_as_of(ru, since) <= 0)
        return rc;
    errs->n = before;
    pthread_rwlock_rdlock(&ru->reg_lock);
    rc = rc_report_validate(r, opts, ru->reg, errs);
    pthread_rwlock_unlock(&ru->reg_lock);
    return rc;
}

int64_t rollup_deadline_us(const rollup *ru, int level, int32_t day)
{
    int min = level >= 1 && level <= 5 ? ru->deadline_min[level] : 24 * 60;
    return (int64_t)day * RC_DAY_US + (int64_t)min * 60 * 1000000 - RC_TZ_OFFSET_US;
}

void rollup_set_health(rollup *ru, const char *what, const char *msg)
{
    pthread_mutex_lock(&ru->health_mu);
    if (msg)
        snprintf(ru->health_msg, sizeof ru->health_msg, "%.20s: %.200s", what, msg);
    else
        ru->health_msg[0] = '\0';
    pthread_mutex_unlock(&ru->health_mu);
}

int rollup_store_offset(rc_pg *pg, const char *group, const char *topic, int32_t partition,
                        int64_t next, char *errbuf, size_t errlen)
{
    char p[16], n[24];
    snprintf(p, sizeof p, "%" PRId32, partition);
    snprintf(n, sizeof n, "%" PRId64, next);
    const char *values[] = {group, topic, p, n};
    PGresult *res = rc_pg_exec_params(
        pg,
        "INSERT INTO rollcall.consumer_offset AS o (consumer_group, topic, partition, next_offset, "
        "updated_at) VALUES ($1, $2, $3::int, $4::bigint, now()) "
        "ON CONFLICT (consumer_group, topic, partition) DO UPDATE SET "
        "next_offset = greatest(o.next_offset, excluded.next_offset), updated_at = now()",
        4, values, errbuf, errlen);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}

#define DLQ_LOG_EACH 20             /* lines per interval before counting */
#define DLQ_LOG_INTERVAL_US (10LL * 1000000)
#define DLQ_LOG_REASONS 8

static struct {
    pthread_mutex_t mu;
    int64_t window_us;
    long logged;
    struct { char what[48]; long n; } reasons[DLQ_LOG_REASONS];
    long other;
} dlq_log = {PTHREAD_MUTEX_INITIALIZER, 0, 0, {{"", 0}}, 0};

/* Writes the counts of the interval that ended (under dlq_log.mu). */
static void dlq_log_flush(void)
{
    for (int i = 0; i < DLQ_LOG_REASONS && dlq_log.reasons[i].what[0]; i++)
        rc_warn("dead letters not logged one by one in the last %lld s: reason=\"%s\" count=%ld",
                DLQ_LOG_INTERVAL_US / 1000000, dlq_log.reasons[i].what, dlq_log.reasons[i].n);
    if (dlq_log.other)
        rc_warn("dead letters not logged one by one in the last %lld s: other reasons count=%ld",
                DLQ_LOG_INTERVAL_US / 1000000, dlq_log.other);
    memset(dlq_log.reasons, 0, sizeof dlq_log.reasons);
    dlq_log.other = 0;
}

void rollup_dlq_log(rollup *ru, const char *topic, int32_t partition, int64_t offset,
                    const char *reason)
{
    int64_t now = rc_now_us();
    (void)ru;
    pthread_mutex_lock(&dlq_log.mu);
    if (now - dlq_log.window_us >= DLQ_LOG_INTERVAL_US) {
        dlq_log_flush();
        dlq_log.window_us = now;
        dlq_log.logged = 0;
    }
    if (dlq_log.logged++ < DLQ_LOG_EACH) {
        pthread_mutex_unlock(&dlq_log.mu);
        rc_warn("dead letter topic=%s partition=%" PRId32 " offset=%" PRId64 " reason=\"%s\"",
                topic, partition, offset, reason);
        return;
    }
    /* The reason's kind: up to its second ':' ("invalid: period: ..."). */
    char what[48];
    size_t n = 0;
    int colons = 0;
    while (reason[n] && n < sizeof what - 1 && !(reason[n] == ':' && ++colons == 2))
        n++;
    memcpy(what, reason, n);
    what[n] = '\0';
    int i = 0;
    while (i < DLQ_LOG_REASONS && dlq_log.reasons[i].what[0] &&
           strcmp(dlq_log.reasons[i].what, what) != 0)
        i++;
    if (i == DLQ_LOG_REASONS) {
        dlq_log.other++;
    } else {
        if (!dlq_log.reasons[i].what[0])
            snprintf(dlq_log.reasons[i].what, sizeof dlq_log.reasons[i].what, "%s", what);
        dlq_log.reasons[i].n++;
    }
    pthread_mutex_unlock(&dlq_log.mu);
}

static int prepare_common(rc_pg *pg, char *errbuf, size_t errlen)
{
    if (rc_pg_prepare(pg, "rollup_outbox_read",
                      "SELECT id, topic, key, payload, headers::text FROM rollcall.outbox "
                      "WHERE id >= $1::bigint AND ($2::bigint < 0 OR id <= $2::bigint) "
                      "ORDER BY id LIMIT $3::int",
                      3, errbuf, errlen) < 0)
        return -1;
    if (rc_pg_prepare(pg, "rollup_outbox_read_ids",
                      "SELECT id, topic, key, payload, headers::text FROM rollcall.outbox "
                      "WHERE id = ANY ($1::bigint[]) ORDER BY id",
                      1, errbuf, errlen) < 0)
        return -1;
    if (rc_pg_prepare(pg, "rollup_outbox_delete",
                      "DELETE FROM rollcall.outbox WHERE id = ANY ($1::bigint[])", 1, errbuf,
                      errlen) < 0)
        return -1;
    return urgent_prepare(pg, errbuf, errlen);
}

rc_pg *rollup_pg_connect(rollup *ru, const char *appname, char *errbuf, size_t errlen)
{
    rc_pg *pg = rc_pg_connect(ru->cfg.pg_dsn, appname, errbuf, errlen);
    if (!pg)
        return NULL;
    /* JIT compiles the set-based statements for longer than they run; a
     * cursor's fast-start plan (cursor_tuple_fraction) turns the outbox
     * query's join into a nested loop over the whole aggregate table. */
    if (rc_pg_command(pg, "SET jit = off", errbuf, errlen) < 0 ||
        rc_pg_command(pg, "SET cursor_tuple_fraction = 1.0", errbuf, errlen) < 0 ||
        prepare_common(pg, errbuf, errlen) < 0) {
        rc_pg_free(pg);
        return NULL;
    }
    return pg;
}

int rollup_load_offsets(rc_pg *pg, const char *group, rd_kafka_topic_partition_list_t *parts)
{
    char err[512];
    const char *values[] = {group};
    PGresult *res = rc_pg_exec_params(pg,
                                      "SELECT topic, partition, next_offset "
                                      "FROM rollcall.consumer_offset WHERE consumer_group = $1",
                                      1, values, err, sizeof err);
    if (!res) {
        rc_error("offsets of group=%s unreadable: %s", group, err);
        return -1;
    }
    for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *p = &parts->elems[i];
        p->offset = RD_KAFKA_OFFSET_BEGINNING;
        for (int r = 0; r < PQntuples(res); r++) {
            if (strcmp(PQgetvalue(res, r, 0), p->topic) == 0 &&
                atoi(PQgetvalue(res, r, 1)) == p->partition) {
                p->offset = strtoll(PQgetvalue(res, r, 2), NULL, 10);
                break;
            }
        }
        rc_debug("assigned topic=%s partition=%" PRId32 " offset=%" PRId64, p->topic,
                 p->partition, p->offset);
    }
    rc_info("partitions assigned group=%s count=%d (offsets from PostgreSQL)", group, parts->cnt);
    PQclear(res);
    return 0;
}

size_t rollup_consumer_props(const rollup *ru, const char *const *own, size_t nown,
                             const char **out, size_t cap)
{
    /* A restarted instance (SIGKILL: no LeaveGroup) gets its partitions back
     * once the group notices the old member is gone: keep that short. */
    static const char *const shared[] = {"session.timeout.ms=6000", "heartbeat.interval.ms=500"};
    size_t n = 0;
    for (size_t i = 0; i < sizeof shared / sizeof *shared && n < cap; i++)
        out[n++] = shared[i];
    for (size_t i = 0; i < nown && n < cap; i++)
        out[n++] = own[i];
    for (size_t i = 0; i < ru->nkafka_props && n < cap; i++)
        out[n++] = ru->kafka_props[i];
    return n;
}

const char *rollup_instance_prop(const rollup *ru, const char *suffix, char *buf, size_t len)
{
    if (!ru->cfg.instance_id || !ru->cfg.instance_id[0])
        return NULL;
    snprintf(buf, len, "group.instance.id=%s-%s", ru->cfg.instance_id, suffix);
    return buf;
}

/* ---------------------------------------------------------------- start-up */

typedef struct regset {
    rc_registry *reg;
    subtree *counties, *provinces;
    size_t ncounties, nprovinces;
} regset;

typedef struct subtree_fill {
    regset *rs;
    size_t ci, pi;
} subtree_fill;

static void collect_parents(const rc_unit *u, void *opaque)
{
    subtree_fill *f = opaque;
    uint64_t code = strtoull(u->code, NULL, 10);
    if (u->level == ROLLCALL__LEVEL__LEVEL_COUNTY && f->ci < f->rs->ncounties)
        f->rs->counties[f->ci++] = (subtree){code, 0};
    else if (u->level == ROLLCALL__LEVEL__LEVEL_PROVINCE && f->pi < f->rs->nprovinces)
        f->rs->provinces[f->pi++] = (subtree){code, 0};
}

static void count_villages(const rc_unit *u, void *opaque)
{
    regset *rs = opaque;
    if (u->level != ROLLCALL__LEVEL__LEVEL_VILLAGE)
        return;
    uint64_t code = strtoull(u->code, NULL, 10);
    subtree key = {code / 1000000, 0};
    subtree *c = bsearch(&key, rs->counties, rs->ncounties, sizeof key, cmp_subtree);
    if (c)
        c->villages++;
    key.code = code / 10000000000ULL;
    subtree *p = bsearch(&key, rs->provinces, rs->nprovinces, sizeof key, cmp_subtree);
    if (p)
        p->villages++;
}

static void regset_free(regset *rs)
{
    rc_registry_free(rs->reg);
    free(rs->counties);
    free(rs->provinces);
    memset(rs, 0, sizeof *rs);
}

/* Loads rollcall.unit (without names) and the village counts beneath every
 * county and province.  Returns 0, or -1 with nothing allocated. */
static int regset_load(regset *rs, rc_pg *pg, char *errbuf, size_t errlen)
{
    memset(rs, 0, sizeof *rs);
    rs->reg = rc_registry_new(false);
    if (!rs->reg || rc_registry_load_pg(rs->reg, rc_pg_conn(pg), errbuf, errlen) < 0)
        goto failed;
    rs->ncounties = rc_registry_count(rs->reg, ROLLCALL__LEVEL__LEVEL_COUNTY);
    rs->nprovinces = rc_registry_count(rs->reg, ROLLCALL__LEVEL__LEVEL_PROVINCE);
    rs->counties = calloc(rs->ncounties ? rs->ncounties : 1, sizeof *rs->counties);
    rs->provinces = calloc(rs->nprovinces ? rs->nprovinces : 1, sizeof *rs->provinces);
    if (!rs->counties || !rs->provinces) {
        snprintf(errbuf, errlen, "out of memory");
        goto failed;
    }
    subtree_fill f = {rs, 0, 0};
    rc_registry_foreach(rs->reg, collect_parents, &f);
    qsort(rs->counties, rs->ncounties, sizeof *rs->counties, cmp_subtree);
    qsort(rs->provinces, rs->nprovinces, sizeof *rs->provinces, cmp_subtree);
    rc_registry_foreach(rs->reg, count_villages, rs);
    return 0;
failed:
    regset_free(rs);
    return -1;
}

static int registry_signature(rc_pg *pg, char *out, size_t len, char *errbuf, size_t errlen)
{
    PGconn *conn = rc_pg_conn(pg);
    if (!conn) {
        snprintf(errbuf, errlen, "%s", rc_pg_last_error(pg));
        return -1;
    }
    return rc_registry_pg_signature(conn, out, len, errbuf, errlen);
}

/* Called with reg_check_mu held. */
static int registry_refresh_locked(rollup *ru, rc_pg *pg, char *errbuf, size_t errlen)
{
    char sig[64];
    regset rs;

    if (registry_signature(pg, sig, sizeof sig, errbuf, errlen) < 0)
        return -1;
    if (strcmp(sig, ru->reg_signature) == 0)
        return 0;
    if (regset_load(&rs, pg, errbuf, errlen) < 0)
        return -1;
    pthread_rwlock_wrlock(&ru->reg_lock);
    regset old = {ru->reg, ru->counties, ru->provinces, ru->ncounties, ru->nprovinces};
    ru->reg = rs.reg;
    ru->counties = rs.counties;
    ru->provinces = rs.provinces;
    ru->ncounties = rs.ncounties;
    ru->nprovinces = rs.nprovinces;
    snprintf(ru->reg_signature, sizeof ru->reg_signature, "%s", sig);
    pthread_rwlock_unlock(&ru->reg_lock);
    bool first = old.reg == NULL;
    regset_free(&old);
    rc_info("registry %s units=%zu villages=%zu counties=%zu provinces=%zu",
            first ? "loaded" : "reloaded (rollcall.unit changed)", rc_registry_count(ru->reg, 0),
            rc_registry_count(ru->reg, 1), ru->ncounties, ru->nprovinces);
    return 1;
}

int rollup_registry_refresh(rollup *ru, rc_pg *pg, char *errbuf, size_t errlen)
{
    pthread_mutex_lock(&ru->reg_check_mu);
    int64_t began = rc_now_us();
    int rc = registry_refresh_locked(ru, pg, errbuf, errlen);
    if (rc >= 0)
        ru->reg_checked_us = began;
    pthread_mutex_unlock(&ru->reg_check_mu);
    return rc;
}

/* Makes the loaded registry at least as new as rollcall.unit was at
 * since_us: looks again unless a look began after it.  Returns 1 when a
 * changed registry was loaded, 0 when nothing changed or the look failed
 * (logged: the loaded registry stays). */
static int registry_as_of(rollup *ru, int64_t since_us)
{
    char err[256];
    int rc = 0;
    pthread_mutex_lock(&ru->reg_check_mu);
    if (ru->reg_checked_us > since_us)
        goto done;
    if (!ru->reg_check_pg &&
        !(ru->reg_check_pg = rollup_pg_connect(ru, "rollcall-rollup-registry", err, sizeof err))) {
        rc_warn("registry look for an unknown unit: %s", err);
        goto done;
    }
    int64_t began = rc_now_us();
    rc = registry_refresh_locked(ru, ru->reg_check_pg, err, sizeof err);
    if (rc < 0) {
        rc_warn("registry look for an unknown unit failed (the loaded one stays): %s", err);
        rc = 0;
    } else {
        ru->reg_checked_us = began;
    }
done:
    pthread_mutex_unlock(&ru->reg_check_mu);
    return rc;
}

static int load_policy(rollup *ru, rc_pg *pg, char *errbuf, size_t errlen)
{
    for (int l = 0; l <= 5; l++)
        ru->deadline_min[l] = 24 * 60;
    PGresult *res = rc_pg_exec(pg,
                               "SELECT level, (extract(epoch FROM deadline) / 60)::int "
                               "FROM rollcall.level_policy",
                               errbuf, errlen);
    if (!res)
        return -1;
    for (int i = 0; i < PQntuples(res); i++) {
        int level = atoi(PQgetvalue(res, i, 0));
        if (level >= 1 && level <= 5)
            ru->deadline_min[level] = atoi(PQgetvalue(res, i, 1));
    }
    PQclear(res);
    /* The prefecture is skipped by aggregation; nothing files for it. */
    return 0;
}

static void init_metrics(rollup *ru)
{
    static const double flush_b[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
    static const double urgent_b[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1};
    static const double rows_b[] = {1, 10, 100, 1000, 10000, 100000, 1000000};
    rollup_metrics *m = &ru->m;
    m->messages = rc_metrics_counter("rollcall_rollup_messages_total",
                                     "Messages consumed from the daily topics", NULL);
    m->archived = rc_metrics_counter("rollcall_rollup_reports_archived_total",
                                     "New report revisions archived", NULL);
    m->duplicates = rc_metrics_counter("rollcall_rollup_duplicates_total",
                                       "Re-delivered report_ids (no-ops)", NULL);
    m->dead_letters = rc_metrics_counter("rollcall_rollup_dead_letters_total",
                                         "Messages sent to reports.dlq", NULL);
    m->batches = rc_metrics_counter("rollcall_rollup_batches_total", "Batches committed", NULL);
    m->batch_failures = rc_metrics_counter("rollcall_rollup_batch_failures_total",
                                           "Batch transactions that failed", NULL);
    m->outbox_published = rc_metrics_counter("rollcall_rollup_outbox_published_total",
                                             "Outbox messages delivered", NULL);
    m->outbox_failed = rc_metrics_counter("rollcall_rollup_outbox_failed_total",
                                          "Outbox deliveries that failed (retried)", NULL);
    m->aggregates_changed = rc_metrics_counter("rollcall_rollup_aggregates_changed_total",
                                               "Aggregate revisions written to the outbox", NULL);
    m->urgent_messages = rc_metrics_counter("rollcall_rollup_urgent_messages_total",
                                            "Messages consumed from reports.urgent", NULL);
    m->urgent_hops = rc_metrics_counter("rollcall_rollup_urgent_hops_total",
                                        "Urgent hops recorded", NULL);
    m->flush_seconds = rc_metrics_histogram("rollcall_rollup_flush_seconds",
                                            "Duration of a batch transaction", NULL, flush_b,
                                            sizeof flush_b / sizeof *flush_b);
    m->urgent_seconds = rc_metrics_histogram(
        "rollcall_rollup_urgent_latency_seconds",
        "From the last hop's time to its commit in PostgreSQL", NULL, urgent_b,
        sizeof urgent_b / sizeof *urgent_b);
    m->batch_rows = rc_metrics_histogram("rollcall_rollup_batch_reports", "Reports per batch",
                                         NULL, rows_b, sizeof rows_b / sizeof *rows_b);
    m->lag = rc_metrics_gauge("rollcall_rollup_consumer_lag",
                              "Messages behind the high watermark (partitions of the last batch)",
                              NULL);
}

static double outbox_inflight(void *opaque)
{
    rollup *ru = opaque;
    return (double)atomic_load(&ru->outbox.inflight);
}

static int health_check(void *opaque, char *msg, size_t len)
{
    rollup *ru = opaque;
    int bad = 0;
    pthread_mutex_lock(&ru->health_mu);
    if (!atomic_load(&ru->pg_ok) || !atomic_load(&ru->kafka_ok) || ru->health_msg[0]) {
        snprintf(msg, len, "%s", ru->health_msg[0] ? ru->health_msg : "starting");
        bad = 1;
    }
    pthread_mutex_unlock(&ru->health_mu);
    return bad;
}

/* Probes PostgreSQL and Kafka every 2 s for /healthz (whose checks only
 * read flags), and turns a failed worker into a process exit. */
static void *health_main(void *arg)
{
    rollup *ru = arg;
    char err[256];
    rc_pg *pg = NULL;
    unsigned rounds = 0;

    while (!atomic_load(&ru->stop)) {
        bool pg_ok = false, kafka_ok = false;
        if (!pg)
            pg = rc_pg_connect(ru->cfg.pg_dsn, "rollcall-rollup-health", err, sizeof err);
        if (pg) {
            rc_pg_set_reconnect_timeout(pg, 0);
            PGresult *res = rc_pg_exec(pg, "SELECT 1", err, sizeof err);
            if (res) {
                pg_ok = true;
                PQclear(res);
            }
        }
        if (!pg_ok)
            rollup_set_health(ru, "postgresql", err);
        else if (rc_kafka_ping(rc_producer_handle(ru->producer), 1000, err, sizeof err) == 0)
            kafka_ok = true;
        else
            rollup_set_health(ru, "kafka", err);
        if (pg_ok && kafka_ok) {
            char stall[200];
            if (rollup_stalled(ru, stall, sizeof stall))
                rollup_set_health(ru, "stalled", stall);
            else
                rollup_set_health(ru, NULL, NULL);
        }
        /* each round takes about 2 s */
        unsigned every = (unsigned)ru->cfg.registry_reload_ms / 2000;
        if (every == 0)
            every = 1;
        if (pg_ok && ru->cfg.registry_reload_ms > 0 && ++rounds % every == 0 &&
            rollup_registry_refresh(ru, pg, err, sizeof err) < 0)
            rc_warn("registry reload failed (the loaded one stays): %s", err);
        atomic_store(&ru->pg_ok, pg_ok);
        atomic_store(&ru->kafka_ok, kafka_ok);
        for (int i = 0; i < 20 && !atomic_load(&ru->stop); i++) {
            struct timespec ts = {0, 100 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    rc_pg_free(pg);
    if (atomic_load(&ru->failed))
        kill(getpid(), SIGTERM);    /* rc_service_run returns; main exits non-zero */
    return NULL;
}

static void on_stop(void *opaque)
{
    rollup *ru = opaque;
    atomic_store(&ru->stop, true);
}

int main(int argc, char **argv)
{
    char err[1024];
    rc_config *cfg;
    rc_service *svc = NULL;
    pipeline *lanes = NULL;
    urgent_path up;
    pthread_t health;
    int status = 0;

    rc_service_limit_arenas();
    rc_log_init("rollup", RC_LOG_INFO);
    cfg = rc_config_load(config_items, argc, argv, err, sizeof err);
    if (!cfg)
        rc_die("%s", err);
    if (rc_config_help_requested(cfg)) {
        printf("usage: rollcall-rollup [--config FILE] [--key=value ...]\n\n");
        rc_config_usage(config_items, stdout);
        rc_config_free(cfg);
        return 0;
    }
    rc_log_init("rollup", R.cfg.log_level);
    pthread_mutex_init(&R.health_mu, NULL);
    pthread_rwlock_init(&R.reg_lock, NULL);
    pthread_mutex_init(&R.reg_check_mu, NULL);
    atomic_init(&R.stop, false);
    atomic_init(&R.failed, false);
    if (outbox_init(&R.outbox) < 0 || rc_rollup_sql_init(err, sizeof err) < 0)
        rc_die("start-up: %s", err);

    stage_validate_opts(R.cfg.max_past_days, &R.vopts_village, &R.vopts_filed);

    rc_pg *boot = rollup_pg_connect(&R, "rollcall-rollup", err, sizeof err);
    if (!boot)
        rc_die("postgresql: %s", err);
    PGresult *res = rc_pg_exec(boot, "SELECT to_regclass('rollcall.level_policy') IS NOT NULL",
                               err, sizeof err);
    if (!res || PQgetvalue(res, 0, 0)[0] != 't')
        rc_die("migration 003_rollup is not applied (run: rollcall migrate)%s%s", res ? "" : ": ",
               res ? "" : err);
    PQclear(res);
    if (rollup_registry_refresh(&R, boot, err, sizeof err) < 0)
        rc_die("registry: %s", err);
    if (load_policy(&R, boot, err, sizeof err) < 0)
        rc_die("level policy: %s", err);
    if (rc_registry_count(R.reg, 0) == 0)
        rc_warn("the registry is empty: every report will be dead-lettered "
                "(run: rollcall registry import)");

    init_metrics(&R);
    rc_metrics_gauge_fn("rollcall_rollup_outbox_inflight",
                        "Outbox messages sent and not yet acknowledged", NULL, outbox_inflight, &R);

    size_t nprops = 0;
    const char *const *kprops = rc_config_kafka_props(cfg, &nprops);
    R.kafka_props = kprops;
    R.nkafka_props = nprops;
    const char *props[64];
    size_t np = 0;
    props[np++] = "queue.buffering.max.kbytes=8192";     /* RSS: back-pressure instead */
    props[np++] = "linger.ms=20";
    for (size_t i = 0; i < nprops && np < 64; i++)
        props[np++] = kprops[i];
    R.producer = rc_producer_new(R.cfg.kafka_brokers, props, np, outbox_delivered, &R, err,
                                 sizeof err);
    if (!R.producer)
        rc_die("kafka producer: %s", err);

    /* A crash between a commit and its deliveries left rows behind. */
    if (outbox_publish(&R, boot, 0, -1, err, sizeof err) < 0)
        rc_die("outbox: %s", err);
    rc_producer_flush(R.producer, 10000);
    if (outbox_delete_done(&R, boot, err, sizeof err) < 0)
        rc_warn("outbox: %s", err);
    rc_pg_free(boot);

    lanes = calloc((size_t)R.cfg.lanes, sizeof *lanes);
    if (!lanes)
        rc_die("out of memory");
    for (int i = 0; i < R.cfg.lanes; i++)
        if (pipeline_start(&lanes[i], &R, i, err, sizeof err) < 0)
            rc_die("daily pipeline: %s", err);
    R.lanes = lanes;
    atomic_store(&R.nlanes, R.cfg.lanes);
    if (R.cfg.urgent && urgent_start(&up, &R, err, sizeof err) < 0)
        rc_die("urgent path: %s", err);
    if (!R.cfg.urgent)
        memset(&up, 0, sizeof up);
    if (pthread_create(&health, NULL, health_main, &R) != 0)
        rc_die("cannot start the health thread");

    svc = rc_service_new("rollup", R.cfg.listen_addr, R.cfg.http_port, err, sizeof err);
    if (!svc)
        rc_die("http: %s", err);
    rc_service_add_health_check(svc, "rollup", health_check, &R);
    rc_service_on_stop(svc, on_stop, &R);
    rc_info("rollcall-rollup running group=%s http_port=%d flush_interval=%dms max_batch=%d "
            "lanes=%d",
            R.cfg.group, rc_service_port(svc), R.cfg.flush_interval_ms, R.cfg.max_batch,
            R.cfg.lanes);
    if (rc_service_run(svc) < 0)
        status = 1;

    atomic_store(&R.stop, true);
    rc_info("stopping: committing what was consumed");
    for (int i = 0; i < R.cfg.lanes; i++)
        pipeline_stop(&lanes[i]);
    free(lanes);
    urgent_stop(&up);
    pthread_join(health, NULL);
    /* Deliver what the last batches published and forget the delivered rows,
     * so the next start does not send them again. */
    rc_producer_flush(R.producer, 10000);
    rc_pg *bye = rollup_pg_connect(&R, "rollcall-rollup", err, sizeof err);
    if (bye && outbox_delete_done(&R, bye, err, sizeof err) < 0)
        rc_warn("outbox: %s", err);
    rc_pg_free(bye);
    rc_producer_free(R.producer);
    if (atomic_load(&R.failed))
        status = 1;
    rc_service_free(svc);
    regset last = {R.reg, R.counties, R.provinces, R.ncounties, R.nprovinces};
    regset_free(&last);
    pthread_rwlock_destroy(&R.reg_lock);
    rc_pg_free(R.reg_check_pg);
    pthread_mutex_destroy(&R.reg_check_mu);
    outbox_destroy(&R.outbox);
    rc_config_free(cfg);
    rc_info("stopped status=%d", status);
    return status;
}
