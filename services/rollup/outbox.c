/* The outbox: changed aggregates (and dead letters) are written to
 * rollcall.outbox in the batch's transaction, published after COMMIT by the
 * idempotent producer, and each row is deleted only once its delivery report
 * says the broker has it.  A crash between COMMIT and delivery leaves the
 * rows, which the next start publishes again; consumers dedupe aggregates by
 * (unit, period, version). */
#include "rollup.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#define FETCH_ROWS 4096
#define OUTBOX_WAIT_MS 2000          /* most a chunk waits for the one before */

/* The namespace of Rollcall's name-based ids, shared with the level
 * services ("filed|...") so every derived id is reproducible anywhere. */
static const uuid_t rollcall_ns = {0x6b, 0x2f, 0x3c, 0x1e, 0x8a, 0x54, 0x4d, 0x0b,
                                   0x9c, 0x61, 0x2e, 0x7f, 0x13, 0xd4, 0x58, 0xa9};

static const char *out_topic(int level)
{
    switch (level) {
    case ROLLCALL__LEVEL__LEVEL_TOWNSHIP: return "rollups.township";
    case ROLLCALL__LEVEL__LEVEL_COUNTY: return "rollups.county";
    case ROLLCALL__LEVEL__LEVEL_PROVINCE: return "rollups.province";
    default: return NULL;
    }
}

int outbox_init(rollup_outbox *o)
{
    memset(o, 0, sizeof *o);
    atomic_init(&o->inflight, 0);
    return pthread_mutex_init(&o->mu, NULL) == 0 ? 0 : -1;
}

void outbox_destroy(rollup_outbox *o)
{
    free(o->done);
    free(o->failed);
    pthread_mutex_destroy(&o->mu);
}

static void push_id(int64_t **arr, size_t *n, size_t *cap, int64_t id)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 1024;
        int64_t *p = realloc(*arr, c * sizeof *p);
        if (!p) {
            /* The row stays in the outbox and is sent again at the next start. */
            rc_error("outbox: out of memory tracking id=%" PRId64, id);
            return;
        }
        *arr = p;
        *cap = c;
    }
    (*arr)[(*n)++] = id;
}

void outbox_delivered(void *fn_opaque, void *msg_opaque, rd_kafka_resp_err_t err,
                      const char *topic, int32_t partition, int64_t offset)
{
    rollup *ru = fn_opaque;
    int64_t id = (int64_t)(intptr_t)msg_opaque;
    (void)partition;
    (void)offset;

    atomic_fetch_sub(&ru->outbox.inflight, 1);
    pthread_mutex_lock(&ru->outbox.mu);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        push_id(&ru->outbox.done, &ru->outbox.ndone, &ru->outbox.capdone, id);
        rc_counter_inc(ru->m.outbox_published);
    } else {
        push_id(&ru->outbox.failed, &ru->outbox.nfailed, &ru->outbox.capfailed, id);
        rc_counter_inc(ru->m.outbox_failed);
        rc_warn("outbox delivery failed id=%" PRId64 " topic=%s err=%s", id, topic,
                rd_kafka_err2str(err));
    }
    pthread_mutex_unlock(&ru->outbox.mu);
}

/* Sends one outbox row.  Headers (dead letters) come as a JSON object of
 * strings.  Returns 0 when queued (the delivery callback will tell). */
static int send_row(rollup *ru, int64_t id, const char *topic, const char *key, const void *payload,
                    size_t len, const char *headers)
{
    rd_kafka_headers_t *hdrs = NULL;
    rd_kafka_resp_err_t err;

    if (headers && headers[0]) {
        json_error_t jerr;
        json_t *obj = json_loads(headers, 0, &jerr);
        const char *k;
        json_t *v;
        hdrs = rd_kafka_headers_new(4);
        json_object_foreach(obj, k, v) {
            const char *sv = json_is_string(v) ? json_string_value(v) : "";
            rd_kafka_header_add(hdrs, k, -1, sv, -1);
        }
        json_decref(obj);
    }
    if (!hdrs) {
        atomic_fetch_add(&ru->outbox.inflight, 1);
        if (rc_producer_send(ru->producer, topic, RD_KAFKA_PARTITION_UA, key, key ? strlen(key) : 0,
                             payload, len, (void *)(intptr_t)id, 60000) == 0)
            return 0;
        atomic_fetch_sub(&ru->outbox.inflight, 1);
        return -1;
    }
    atomic_fetch_add(&ru->outbox.inflight, 1);
    for (int attempt = 0;; attempt++) {
        err = rd_kafka_producev(rc_producer_handle(ru->producer), RD_KAFKA_V_TOPIC(topic),
                                RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
                                RD_KAFKA_V_VALUE((void *)payload, len),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE((void *)(intptr_t)id),
                                RD_KAFKA_V_END);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || attempt > 600)
            break;
        rc_producer_poll(ru->producer, 100);
    }
    if (err) {
        rd_kafka_headers_destroy(hdrs);     /* not taken over on failure */
        atomic_fetch_sub(&ru->outbox.inflight, 1);
        rc_warn("outbox send failed id=%" PRId64 " topic=%s err=%s", id, topic,
                rd_kafka_err2str(err));
        return -1;
    }
    return 0;
}

static int64_t get_int8(const PGresult *res, int row, int col)
{
    const unsigned char *p = (const unsigned char *)PQgetvalue(res, row, col);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return (int64_t)v;
}

/* Sends the rows of `res`: id, topic, key, payload, headers::text, all in
 * binary format (libpq NUL-terminates every value, so the text columns read
 * as C strings). */
static int64_t send_result(rollup *ru, const PGresult *res)
{
    int64_t last = -1;
    for (int i = 0; i < PQntuples(res); i++) {
        int64_t id = get_int8(res, i, 0);
        const char *key = PQgetisnull(res, i, 2) ? NULL : PQgetvalue(res, i, 2);
        const char *hdr = PQgetisnull(res, i, 4) ? NULL : PQgetvalue(res, i, 4);
        if (send_row(ru, id, PQgetvalue(res, i, 1), key, PQgetvalue(res, i, 3),
                     (size_t)PQgetlength(res, i, 3), hdr) < 0) {
            pthread_mutex_lock(&ru->outbox.mu);
            push_id(&ru->outbox.failed, &ru->outbox.nfailed, &ru->outbox.capfailed, id);
            pthread_mutex_unlock(&ru->outbox.mu);
        }
        last = id;
    }
    return last;
}

int outbox_publish(rollup *ru, rc_pg *pg, int64_t lo, int64_t hi, char *errbuf, size_t errlen)
{
    char from[24], to[24], lim[16];
    int64_t next = lo;

    snprintf(to, sizeof to, "%" PRId64, hi);
    snprintf(lim, sizeof lim, "%d", ru->cfg.outbox_chunk);
    for (;;) {
        snprintf(from, sizeof from, "%" PRId64, next);
        const char *values[] = {from, to, lim};
        PGresult *res = rc_pg_exec_prepared(pg, "rollup_outbox_read", 3, values, NULL, NULL, 1,
                                            errbuf, errlen);
        if (!res)
            return -1;
        int n = PQntuples(res);
        int64_t last = send_result(ru, res);
        PQclear(res);
        rc_producer_poll(ru->producer, 0);
        if (n < ru->cfg.outbox_chunk || last < 0)
            return 0;
        /* One chunk in flight at a time: a national batch changes ~45,000
         * aggregates, and queued all at once in the producer they were
         * ~40 MB of this process.  Bounded, so that a broker that does not
         * answer delays the next batch by seconds, not by the delivery
         * timeout; what is still undelivered then just stays queued. */
        const int64_t until = rc_now_us() + OUTBOX_WAIT_MS * 1000LL;
        while (atomic_load(&ru->outbox.inflight) > ru->cfg.outbox_chunk && rc_now_us() < until)
            rc_producer_poll(ru->producer, 10);
        next = last + 1;
    }
}

/* Takes the ids of one list (done or failed) under the lock. */
static int64_t *take(rollup *ru, bool done, size_t *n)
{
    pthread_mutex_lock(&ru->outbox.mu);
    int64_t *ids = done ? ru->outbox.done : ru->outbox.failed;
    *n = done ? ru->outbox.ndone : ru->outbox.nfailed;
    if (done) {
        ru->outbox.done = NULL;
        ru->outbox.ndone = ru->outbox.capdone = 0;
    } else {
        ru->outbox.failed = NULL;
        ru->outbox.nfailed = ru->outbox.capfailed = 0;
    }
    pthread_mutex_unlock(&ru->outbox.mu);
    return ids;
}

static void give_back(rollup *ru, bool done, int64_t *ids, size_t n)
{
    pthread_mutex_lock(&ru->outbox.mu);
    for (size_t i = 0; i < n; i++) {
        if (done)
            push_id(&ru->outbox.done, &ru->outbox.ndone, &ru->outbox.capdone, ids[i]);
        else
            push_id(&ru->outbox.failed, &ru->outbox.nfailed, &ru->outbox.capfailed, ids[i]);
    }
    pthread_mutex_unlock(&ru->outbox.mu);
    free(ids);
}

static char *id_array(const int64_t *ids, size_t n)
{
    char *s = malloc(n * 21 + 3), *p = s;
    if (!s)
        return NULL;
    *p++ = '{';
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "%s%" PRId64, i ? "," : "", ids[i]);
    *p++ = '}';
    *p = '\0';
    return s;
}

int outbox_delete_done(rollup *ru, rc_pg *pg, char *errbuf, size_t errlen)
{
    size_t n;
    int64_t *ids = take(ru, true, &n);
    if (!n) {
        free(ids);
        return 0;
    }
    char *arr = id_array(ids, n);
    const char *values[] = {arr};
    PGresult *res = arr ? rc_pg_exec_prepared(pg, "rollup_outbox_delete", 1, values, NULL, NULL,
                                              0, errbuf, errlen)
                        : NULL;
    free(arr);
    if (!res) {
        /* Deleted next time; inside a failed transaction the caller rolls
         * back, and the ids must not be lost. */
        give_back(ru, true, ids, n);
        return -1;
    }
    PQclear(res);
    /* In a transaction the delete counts only once it commits; a rollback
     * would resurrect the rows, which are then simply sent again. */
    free(ids);
    return 0;
}

int outbox_retry_failed(rollup *ru, rc_pg *pg, char *errbuf, size_t errlen)
{
    size_t n;
    int64_t *ids = take(ru, false, &n);
    if (!n) {
        free(ids);
        return 0;
    }
    rc_info("outbox: sending %zu rows again", n);
    char *arr = id_array(ids, n);
    const char *values[] = {arr};
    PGresult *res = arr ? rc_pg_exec_prepared(pg, "rollup_outbox_read_ids", 1, values, NULL, NULL,
                                              1, errbuf, errlen)
                        : NULL;
    free(arr);
    if (!res) {
        give_back(ru, false, ids, n);
        return -1;
    }
    free(ids);
    send_result(ru, res);
    PQclear(res);
    return 0;
}

/* ---------------------------------------------------------------- building */

static size_t parse_missing(char *lit, char ***out)
{
    /* "{130102001001,130102001002}": codes are digits, never quoted. */
    size_t n = 0, cap = 0;
    char **v = NULL;
    char *p = lit;
    if (*p == '{')
        p++;
    while (*p && *p != '}') {
        char *start = p;
        while (*p && *p != ',' && *p != '}')
            p++;
        char c = *p;
        *p = '\0';
        if (*start) {
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                char **nv = realloc(v, cap * sizeof *nv);
                if (!nv)
                    break;
                v = nv;
            }
            v[n++] = start;
        }
        if (c == ',')
            p++;
        else
            break;
    }
    *out = v;
    return n;
}

/* Builds the rollups.<level> message of one aggregate row (see
 * rc_rollup_sql_changed_aggregates for the columns).  Returns a malloc'ed buffer. */
static uint8_t *build_aggregate(PGresult *res, int row, size_t *len, int *level)
{
    Rollcall__Report r = ROLLCALL__REPORT__INIT;
    Rollcall__Indicators ind = ROLLCALL__INDICATORS__INIT;
    Rollcall__Completeness comp = ROLLCALL__COMPLETENESS__INIT;
    Rollcall__Report__ExtraEntry *entries = NULL, **entry_ptrs = NULL;
    char **missing = NULL;
    char name[96], rid[37];
    uuid_t u;
    uint8_t *out = NULL;
    json_t *extra = NULL;

    r.unit_code = PQgetvalue(res, row, 1);
    r.period = PQgetvalue(res, row, 2);
    *level = atoi(PQgetvalue(res, row, 3));
    r.level = (Rollcall__Level)*level;
    r.kind = ROLLCALL__KIND__KIND_DAILY;
    r.version = strtoll(PQgetvalue(res, row, 4), NULL, 10);
    snprintf(name, sizeof name, "aggregate|%s|%s|%lld", r.unit_code, r.period,
             (long long)r.version);
    uuid_generate_sha1(u, rollcall_ns, name, strlen(name));
    uuid_unparse_lower(u, rid);
    r.report_id = rid;
    r.submitter = "rollcall-rollup";
    comp.expected = atoi(PQgetvalue(res, row, 5));
    comp.reported = atoi(PQgetvalue(res, row, 6));
    comp.zero = atoi(PQgetvalue(res, row, 7));
    comp.late = atoi(PQgetvalue(res, row, 8));
    comp.n_missing = parse_missing(PQgetvalue(res, row, 9), &missing);
    comp.missing = missing;
    comp.zone_normal = atoi(PQgetvalue(res, row, 10));
    comp.zone_prevention = atoi(PQgetvalue(res, row, 11));
    comp.zone_control = atoi(PQgetvalue(res, row, 12));
    comp.zone_lockdown = atoi(PQgetvalue(res, row, 13));
    r.completeness = &comp;
    for (size_t i = 0; i < rc_indicator_count(); i++)
        rc_indicator_set(&ind, i, strtoll(PQgetvalue(res, row, 15 + (int)i), NULL, 10));
    r.indicators = &ind;

    const char *ej = PQgetvalue(res, row, 14);
    if (strcmp(ej, "{}") != 0) {
        json_error_t jerr;
        extra = json_loads(ej, 0, &jerr);
        size_t n = extra ? json_object_size(extra) : 0;
        entries = calloc(n ? n : 1, sizeof *entries);
        entry_ptrs = calloc(n ? n : 1, sizeof *entry_ptrs);
        if (entries && entry_ptrs) {
            const char *k;
            json_t *v;
            size_t i = 0;
            json_object_foreach(extra, k, v) {
                Rollcall__Report__ExtraEntry init = ROLLCALL__REPORT__EXTRA_ENTRY__INIT;
                entries[i] = init;
                entries[i].key = (char *)k;
                entries[i].value = json_integer_value(v);
                entry_ptrs[i] = &entries[i];
                i++;
            }
            r.n_extra = i;
            r.extra = entry_ptrs;
        }
    }
    out = rc_report_pack(&r, len);
    free(missing);
    free(entries);
    free(entry_ptrs);
    json_decref(extra);
    return out;
}

long outbox_write_aggregates(rollup *ru, rc_pg *pg, const char *codes, const char *days,
                             int64_t *lo, int64_t *hi, char *errbuf, size_t errlen)
{
    rc_pgcopy c;
    long total = 0;
    PGresult *res = NULL;

    rc_pgcopy_init(&c);
    const char *params[] = {codes, days};
    char *declare = NULL;
    if (asprintf(&declare, "DECLARE rollup_changed NO SCROLL CURSOR FOR %s",
                 rc_rollup_sql_changed_aggregates()) < 0) {
        snprintf(errbuf, errlen, "out of memory");
        return -1;
    }
    res = rc_pg_exec_params(pg, declare, 2, params, errbuf, errlen);
    free(declare);
    if (!res)
        goto failed;
    PQclear(res);
    for (;;) {
        char fetch[64];
        snprintf(fetch, sizeof fetch, "FETCH %d FROM rollup_changed", FETCH_ROWS);
        res = rc_pg_exec(pg, fetch, errbuf, errlen);
        if (!res)
            goto failed;
        int n = PQntuples(res);
        if (n == 0) {
            PQclear(res);
            break;
        }
        rc_pgcopy_clear(&c);
        rc_pgcopy_header(&c);
        for (int i = 0; i < n; i++) {
            size_t len = 0;
            int level = 0;
            int64_t id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
            uint8_t *payload = build_aggregate(res, i, &len, &level);
            const char *topic = out_topic(level);
            if (!payload || !topic) {
                free(payload);
                snprintf(errbuf, errlen, "could not build the aggregate of %s",
                         PQgetvalue(res, i, 1));
                goto failed;
            }
            rc_pgcopy_row(&c, 4);
            rc_pgcopy_int8(&c, id);
            rc_pgcopy_text(&c, topic);
            rc_pgcopy_text(&c, PQgetvalue(res, i, 1));
            rc_pgcopy_bytes(&c, payload, len);
            free(payload);
            if (*lo < 0 || id < *lo)
                *lo = id;
            if (id > *hi)
                *hi = id;
        }
        rc_pgcopy_trailer(&c);
        PQclear(res);
        res = NULL;
        if (c.failed) {
            snprintf(errbuf, errlen, "out of memory");
            goto failed;
        }
        if (rc_pg_copy_begin(pg, "COPY rollcall.outbox (id, topic, key, payload) FROM STDIN "
                                 "(FORMAT binary)", errbuf, errlen) < 0)
            goto failed;
        if (rc_pg_copy_put(pg, c.buf, c.len, errbuf, errlen) < 0) {
            rc_pg_copy_abort(pg, "rollup: outbox");
            goto failed;
        }
        if (rc_pg_copy_end(pg, NULL, errbuf, errlen) < 0)
            goto failed;
        total += n;
        if (n < FETCH_ROWS)
            break;
    }
    res = rc_pg_exec(pg, "CLOSE rollup_changed", errbuf, errlen);
    if (!res)
        goto failed;
    PQclear(res);
    rc_pgcopy_release(&c);
    return total;
failed:
    PQclear(res);
    rc_pgcopy_release(&c);
    return -1;
}
