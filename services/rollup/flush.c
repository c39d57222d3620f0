/* The flush: one staged batch becomes one PostgreSQL transaction — archive,
 * latest-wins upsert (township aggregates follow by trigger), county and
 * province refresh, dead letters, consumed offsets, outbox — and after
 * COMMIT the outbox is published.  Every step is set-based; nothing on this
 * path costs a round trip per report. */
#include "rollup.h"
#include "rc_dlq.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct textbuf {
    char *p;
    size_t len, cap;
    bool oom;
} textbuf;

static void tb_add(textbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void tb_str(textbuf *b, const char *s) { tb_add(b, s, strlen(s)); }

/* Array literals ("{a,b}") of codes, periods and village counts. */
typedef struct parent_arrays {
    textbuf codes, days, villages;
    size_t n;
    rollup *ru;
    int level;                  /* 2, 3 or 5 */
    const keyset *skip;         /* keys already added */
} parent_arrays;

static void pa_open(parent_arrays *a, rollup *ru, int level)
{
    memset(a, 0, sizeof *a);
    a->ru = ru;
    a->level = level;
    tb_str(&a->codes, "{");
    tb_str(&a->days, "{");
    tb_str(&a->villages, "{");
}

static void pa_close(parent_arrays *a)
{
    tb_str(&a->codes, "}");
    tb_str(&a->days, "}");
    tb_str(&a->villages, "}");
}

static void pa_free(parent_arrays *a)
{
    free(a->codes.p);
    free(a->days.p);
    free(a->villages.p);
}

static void pa_add_key(uint64_t k, void *opaque)
{
    parent_arrays *a = opaque;
    char code[24], day[16], vil[16];
    int digits = a->level == 2 ? 9 : a->level == 3 ? 6 : 2;

    if (a->skip && keyset_has(a->skip, k))
        return;
    snprintf(code, sizeof code, "%s%0*" PRIu64, a->n ? "," : "", digits, rollup_key_code(k));
    day[0] = a->n ? ',' : '\0';
    rc_period_format(rollup_key_day(k), day + (a->n ? 1 : 0));
    snprintf(vil, sizeof vil, "%s%d", a->n ? "," : "",
             a->level == 2 ? 0 : rollup_villages_beneath(a->ru, a->level, rollup_key_code(k)));
    tb_str(&a->codes, code);
    tb_str(&a->days, day);
    tb_str(&a->villages, vil);
    a->n++;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long exec_count(rc_pg *pg, const char *sql, int n, const char *const *params, char *errbuf,
                       size_t errlen)
{
    PGresult *res = n ? rc_pg_exec_params(pg, sql, n, params, errbuf, errlen)
                      : rc_pg_exec(pg, sql, errbuf, errlen);
    if (!res)
        return -1;
    long count = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && PQnfields(res) == 1
                     ? atol(PQgetvalue(res, 0, 0))
                     : atol(PQcmdTuples(res));
    PQclear(res);
    return count;
}

/* Refreshes the live aggregates (and filing completeness) of one parent
 * level.  Returns the number of aggregates written, or -1. */
static long refresh_level(rollup *ru, rc_pg *pg, int level, const keyset *live,
                          const keyset *filing, char *errbuf, size_t errlen)
{
    parent_arrays all, fil;
    long n = -1;
    char lvl[8];

    if (!live->n && !filing->n)
        return 0;
    pa_open(&all, ru, level);
    keyset_each(live, pa_add_key, &all);
    all.skip = live;
    keyset_each(filing, pa_add_key, &all);
    pa_close(&all);
    pa_open(&fil, ru, level);
    keyset_each(filing, pa_add_key, &fil);
    pa_close(&fil);
    if (all.codes.oom || all.days.oom || all.villages.oom || fil.codes.oom || fil.days.oom) {
        snprintf(errbuf, errlen, "out of memory");
        goto done;
    }
    snprintf(lvl, sizeof lvl, "%d", level);
    const char *params[] = {lvl, all.codes.p, all.days.p, all.villages.p, fil.codes.p, fil.days.p};
    n = exec_count(pg, "SELECT rollcall.refresh_level($1::smallint, $2::text[], $3::date[], "
                       "$4::int[], $5::text[], $6::date[])",
                   6, params, errbuf, errlen);
done:
    pa_free(&all);
    pa_free(&fil);
    return n;
}

static int store_offsets(rc_pg *pg, const char *group, const slot *s, char *errbuf, size_t errlen)
{
    textbuf topics = {0}, parts = {0}, offs = {0};
    char num[32];
    int rc = -1;

    if (!s->noffs)
        return 0;
    tb_str(&topics, "{");
    tb_str(&parts, "{");
    tb_str(&offs, "{");
    for (size_t i = 0; i < s->noffs; i++) {
        if (i) {
            tb_str(&topics, ",");
            tb_str(&parts, ",");
            tb_str(&offs, ",");
        }
        tb_str(&topics, rollup_topics[s->offs[i].topic]);
        snprintf(num, sizeof num, "%" PRId32, s->offs[i].partition);
        tb_str(&parts, num);
        snprintf(num, sizeof num, "%" PRId64, s->offs[i].next);
        tb_str(&offs, num);
    }
    tb_str(&topics, "}");
    tb_str(&parts, "}");
    tb_str(&offs, "}");
    if (topics.oom || parts.oom || offs.oom) {
        snprintf(errbuf, errlen, "out of memory");
        goto done;
    }
    const char *params[] = {group, topics.p, parts.p, offs.p};
    /* greatest(): an instance that lost a partition in a rebalance and
     * commits late never moves the offset back. */
    if (exec_count(pg,
                   "INSERT INTO rollcall.consumer_offset AS o (consumer_group, topic, partition, "
                   "next_offset, updated_at) "
                   "SELECT $1, t, p, n, now() FROM unnest($2::text[], $3::int[], $4::bigint[]) "
                   "AS x(t, p, n) "
                   "ON CONFLICT (consumer_group, topic, partition) DO UPDATE SET "
                   "next_offset = greatest(o.next_offset, excluded.next_offset), updated_at = now()",
                   4, params, errbuf, errlen) < 0)
        goto done;
    rc = 0;
done:
    free(topics.p);
    free(parts.p);
    free(offs.p);
    return rc;
}

/* rollcall.dead_letter and the outbox row that carries it to reports.dlq.
 * Returns 0 or -1; lo and hi widen to the outbox ids written. */
static int store_dead_letters(rc_pg *pg, const slot *s, int64_t *lo, int64_t *hi, char *errbuf,
                              size_t errlen)
{
    for (size_t i = 0; i < s->ndlq; i++) {
        const dead_letter *d = &s->dlq[i];
        rc_dead_letter dl = {d->topic, d->partition, d->offset, d->raw, d->rawlen, d->key,
                             d->reason};
        int64_t id = rc_dlq_insert(pg, &dl, true, errbuf, errlen);
        if (id < 0)
            return -1;
        if (id > 0) {
            if (*lo < 0 || id < *lo)
                *lo = id;
            if (id > *hi)
                *hi = id;
        }
    }
    return 0;
}

static void add_key_text(uint64_t k, void *opaque)
{
    parent_arrays *a = opaque;
    pa_add_key(k, a);
}

/* Every parent (township, county, province) this batch touched, as array
 * literals in t (codes, days); the caller frees t.  Returns 0, or -1 with
 * errbuf filled (out of memory). */
static int touched_parents(rollup *ru, const slot *s, parent_arrays *t, char *errbuf,
                           size_t errlen)
{
    pa_open(t, ru, 2);
    keyset_each(&s->townships, add_key_text, t);
    t->level = 3;
    keyset_each(&s->counties, add_key_text, t);
    t->skip = &s->counties;
    keyset_each(&s->filing_counties, add_key_text, t);
    t->level = 5;
    t->skip = NULL;
    keyset_each(&s->provinces, add_key_text, t);
    t->skip = &s->provinces;
    keyset_each(&s->filing_provinces, add_key_text, t);
    pa_close(t);
    if (t->codes.oom || t->days.oom) {
        snprintf(errbuf, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static bool touches_parents(const slot *s)
{
    return s->townships.n || s->counties.n || s->provinces.n || s->filing_counties.n ||
           s->filing_provinces.n;
}

/* The parents this batch touched whose aggregate the batch's own writes
 * would not make right, counted before them: a township whose row is gone
 * while its villages have latest reports (deleted by hand: the trigger of
 * 009 would start it from nothing), and any parent whose expected children
 * differ from the registry's (a registry import since it was computed);
 * counties and provinces also when their row is gone.  Sets *townships and
 * *upper; returns 0, or -1. */
static int parents_out_of_date(rollup *ru, rc_pg *pg, const slot *s, long *townships,
                               long *upper, char *errbuf, size_t errlen)
{
    parent_arrays t;
    int rc = -1;

    *townships = *upper = 0;
    if (!touches_parents(s))
        return 0;
    if (touched_parents(ru, s, &t, errbuf, errlen) == 0) {
        const char *params[] = {t.codes.p, t.days.p};
        /* expected children as rollcall.refresh_level counts them: a
         * township's from the registry row, a county's or province's by
         * its children in the registry */
        PGresult *res = rc_pg_exec_params(
            pg,
            "SELECT count(*) FILTER (WHERE length(p.code) = 9), "
            "       count(*) FILTER (WHERE length(p.code) <> 9) "
            "FROM unnest($1::text[], $2::date[]) AS p(code, period) "
            "LEFT JOIN rollcall.aggregate a ON a.unit_code = p.code AND a.period = p.period "
            "LEFT JOIN rollcall.unit u ON u.code = p.code "
            "WHERE CASE WHEN a.unit_code IS NULL "
            "      THEN length(p.code) <> 9 OR EXISTS (SELECT 1 FROM rollcall.latest_report l "
            "           WHERE l.period = p.period AND l.unit_code > p.code "
            "             AND l.unit_code < p.code || ';' AND l.level = 1 AND l.kind IN (1, 2)) "
            "      ELSE a.expected_children IS DISTINCT FROM "
            "           CASE WHEN length(p.code) = 9 THEN u.expected_children "
            "           ELSE (SELECT count(*)::int FROM rollcall.unit c WHERE c.rollup_parent = p.code "
            "                 AND c.level = CASE length(p.code) WHEN 6 THEN 2 ELSE 3 END) END END",
            2, params, errbuf, errlen);
        if (res) {
            *townships = atol(PQgetvalue(res, 0, 0));
            *upper = atol(PQgetvalue(res, 0, 1));
            PQclear(res);
            rc = 0;
        }
    }
    pa_free(&t);
    return rc;
}

/* The changed aggregates of every parent this batch touched go to the
 * outbox (updated_at = now() marks the rows this transaction changed). */
static long write_outbox(rollup *ru, rc_pg *pg, const slot *s, int64_t *lo, int64_t *hi,
                         char *errbuf, size_t errlen)
{
    parent_arrays t;
    long n = -1;

    if (!touches_parents(s))
        return 0;
    if (touched_parents(ru, s, &t, errbuf, errlen) == 0)
        n = outbox_write_aggregates(ru, pg, t.codes.p, t.days.p, lo, hi, errbuf, errlen);
    pa_free(&t);
    return n;
}

int flush_slot(rollup *ru, slot *s, const char *group, rc_pg_error_class *cls, char *errbuf,
               size_t errlen)
{
    double t0 = now_s(), t_arch = 0, t_latest = 0, t_townships = 0, t_parents = 0, t_outbox = 0,
           t_commit = 0;
    long archived = 0, latest = 0, townships = 0, counties = 0, provinces = 0, aggs = 0;
    long stale_townships = 0, stale_upper = 0;
    keyset no_keys;
    int64_t lo = -1, hi = -1;
    double t;

    /* Rows delivered since the last flush, in their own small commit: were
     * they deleted inside the batch and the batch rolled back, they would be
     * published twice. */
    keyset_init(&no_keys);
    if (outbox_delete_done(ru, s->pg, errbuf, errlen) < 0)
        goto failed;
    if (rc_pg_begin(s->pg, errbuf, errlen) < 0)
        goto failed;
    if (parents_out_of_date(ru, s->pg, s, &stale_townships, &stale_upper, errbuf, errlen) < 0)
        goto failed;
    if (s->rows) {
        t = now_s();
        /* A batch of new reports archives every row and checks none; one
         * with some report_ids archived before checks just those, when
         * they are few; a replay (none new, or many known) checks all. */
        char firsts[24], limit[24];
        const size_t nfirst = s->rows - s->rep_rows - s->nurgent;
        snprintf(firsts, sizeof firsts, "%zu", nfirst);
        snprintf(limit, sizeof limit, "%d", ROLLUP_KNOWN_MAX);
        const char *params[] = {firsts, limit};
        archived = exec_count(s->pg, rc_rollup_sql_archive_insert(false), 2, params, errbuf,
                              errlen);
        if (archived < 0)
            goto failed;
        const rc_archive_check check_firsts =
            rc_rollup_sql_check_for((long)nfirst, archived, ROLLUP_KNOWN_MAX);
        if (s->rep_rows) {
            long more = exec_count(s->pg, rc_rollup_sql_archive_insert(true), 0, NULL, errbuf,
                                   errlen);
            if (more < 0)
                goto failed;
            archived += more;
        }
        t_arch = now_s() - t;
        if (s->latest_rows) {
            t = now_s();
            latest = exec_count(s->pg, rc_rollup_sql_latest_upsert(false, check_firsts), 0, NULL,
                                errbuf, errlen);
            if (latest < 0)
                goto failed;
            if (s->repeated_keys) {
                rc_archive_check check =
                    rc_rollup_sql_check_for((long)(s->rows - s->nurgent), archived, 0);
                long more = exec_count(s->pg, rc_rollup_sql_latest_upsert(true, check), 0, NULL,
                                       errbuf, errlen);
                if (more < 0)
                    goto failed;
                latest += more;
            }
            t_latest = now_s() - t;
        }
    }
    /* Townships followed the upserts by their differences (the trigger of
     * 009); they are recomputed only when that could not make them right.
     * Counties and provinces are recomputed from their townships whenever
     * a latest report changed, or when one is out of date; a batch that
     * changed none (a replay of what is there, a re-delivery) leaves them. */
    bool refresh = latest > 0 || stale_townships > 0 || stale_upper > 0;
    if (stale_townships > 0) {
        t = now_s();
        townships = refresh_level(ru, s->pg, 2, &s->townships, &no_keys, errbuf, errlen);
        if (townships < 0)
            goto failed;
        t_townships = now_s() - t;
    }
    if (refresh) {
        t = now_s();
        /* Level by level, so each recompute sees the one below it. */
        if ((counties = refresh_level(ru, s->pg, 3, &s->counties, &s->filing_counties, errbuf,
                                      errlen)) < 0)
            goto failed;
        if ((provinces = refresh_level(ru, s->pg, 5, &s->provinces, &s->filing_provinces, errbuf,
                                       errlen)) < 0)
            goto failed;
        t_parents = now_s() - t;
    }
    if (store_dead_letters(s->pg, s, &lo, &hi, errbuf, errlen) < 0)
        goto failed;
    if (store_offsets(s->pg, group, s, errbuf, errlen) < 0)
        goto failed;
    t = now_s();
    if (refresh && (aggs = write_outbox(ru, s->pg, s, &lo, &hi, errbuf, errlen)) < 0)
        goto failed;
    t_outbox = now_s() - t;
    /* Last, so the urgent path, which may be storing the same reports from
     * reports.urgent, waits on their lock for no more than the commit. */
    if (s->nurgent) {
        long n = exec_count(s->pg, rc_rollup_sql_urgent_archive(), 0, NULL, errbuf, errlen);
        if (n < 0)
            goto failed;
        archived += n;
    }
    for (size_t i = 0; i < s->nurgent; i++) {
        int hops = urgent_record(s->pg, s->urgent[i], errbuf, errlen);
        if (hops < 0)
            goto failed;
        rc_counter_add(ru->m.urgent_hops, hops);
    }
    t = now_s();
    if (rc_pg_commit(s->pg, errbuf, errlen) < 0)
        goto failed;
    t_commit = now_s() - t;

    rc_counter_inc(ru->m.batches);
    rc_counter_add(ru->m.archived, (double)archived);
    rc_counter_add(ru->m.duplicates, (double)(s->rows - (size_t)archived));
    rc_counter_add(ru->m.aggregates_changed, (double)aggs);
    rc_histogram_observe(ru->m.batch_rows, (double)s->rows);
    double total = now_s() - t0;
    rc_histogram_observe(ru->m.flush_seconds, total);
    rc_info("batch committed slot=%d rows=%zu archived=%ld duplicates=%ld latest=%ld "
            "dead_letters=%zu urgent=%zu aggregates=%ld townships=%ld counties=%ld provinces=%ld "
            "seconds=%.3f t_archive=%.3f t_latest=%.3f t_townships=%.3f t_parents=%.3f "
            "t_outbox=%.3f t_commit=%.3f t_fill=%.3f",
            s->id, s->rows, archived, (long)(s->rows - (size_t)archived), latest,
            s->ndlq, s->nurgent, aggs, townships, counties, provinces, total, t_arch, t_latest,
            t_townships, t_parents, t_outbox, t_commit, s->decode_s);

    /* Durable: now the outbox may go out. */
    if (lo >= 0) {
        char err[256];
        if (outbox_publish(ru, s->pg, lo, hi, err, sizeof err) < 0)
            rc_warn("outbox publish after commit failed (the rows stay and are sent later): %s",
                    err);
    }
    rc_producer_poll(ru->producer, 0);
    return 0;

failed:
    *cls = rc_pg_last_error_class(s->pg);   /* before the rollback's own statement */
    if (rc_pg_in_transaction(s->pg))
        rc_pg_rollback(s->pg, NULL, 0);
    return -1;
}

int flush_housekeeping(rollup *ru, rc_pg *pg, char *errbuf, size_t errlen)
{
    rc_producer_poll(ru->producer, 0);
    if (outbox_delete_done(ru, pg, errbuf, errlen) < 0)
        return -1;
    return outbox_retry_failed(ru, pg, errbuf, errlen);
}
