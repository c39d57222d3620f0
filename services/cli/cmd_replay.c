/* rollcall replay — re-publishes archived reports of a unit subtree and
 * period range (or reports from a file) into the pipeline, then waits for
 * the rollup to apply them and prints what changed in rollcall.v_unit_day;
 * --dry-run prints the same change computed in a rolled-back transaction. */
#include "replay.h"
#include "rc_log.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_GROUP "rollcall-rollup"

typedef struct {
    const char *unit, *from, *to;          /* archive mode */
    const char *file;                      /* file mode */
    bool csv;
    int max_past_days;
    bool dry_run, wait, diff;
    const char *group;
    int wait_timeout_s;
    long limit;
    const char *dsn, *brokers;
} replay_opts;

/* ------------------------------------------------------ archive reading */

/* One archived revision, borrowed for the callback. */
typedef struct {
    const char *unit_code;
    int level;
    const uint8_t *payload;
    size_t len;
} archived;

typedef int archived_fn(void *opaque, const archived *a, char *errbuf, size_t errlen);

static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Parses one binary COPY row (unit_code text, level smallint, payload bytea).
 * Returns 1 for a row, 0 for the trailer, -1 when malformed. */
static int parse_row(const uint8_t *p, size_t n, archived *a, char *buf13)
{
    const uint8_t *end = p + n;
    uint32_t len;

    if (n < 2)
        return -1;
    if (be16(p) == 0xFFFF)
        return 0;
    if (be16(p) != 3)
        return -1;
    p += 2;
    if (end - p < 4 || (len = be32(p)) > 12 || end - p - 4 < (ptrdiff_t)len)
        return -1;
    memcpy(buf13, p + 4, len);
    buf13[len] = '\0';
    p += 4 + len;
    if (end - p < 6 || be32(p) != 2)
        return -1;
    a->level = (int16_t)be16(p + 4);
    p += 6;
    if (end - p < 4 || (len = be32(p)) == 0xFFFFFFFF || end - p - 4 < (ptrdiff_t)len)
        return -1;
    a->unit_code = buf13;
    a->payload = p + 4;
    a->len = len;
    return 1;
}

/* Streams the archived revisions of (unit subtree, from..to), calling fn
 * for each.  In no particular order: latest-wins makes the order of
 * revisions irrelevant, and sorting a national day costs seconds.  Returns the number of rows,
 * or -1 with errbuf filled (fn's failure stops the stream). */
static long long archive_stream(rc_pg *pg, const replay_opts *o, archived_fn *fn, void *opaque,
                                char *errbuf, size_t errlen)
{
    static const char sig[] = "PGCOPY\n\377\r\n";
    char sql[512];
    PGconn *conn = rc_pg_conn(pg);
    PGresult *res;
    char *buf = NULL;
    int n;
    bool header = true, failed = false;
    long long rows = 0;
    char code[13];

    if (!conn) {
        snprintf(errbuf, errlen, "%s", rc_pg_last_error(pg));
        return -1;
    }
    /* The values were checked (digits, real dates): safe in COPY's SQL. */
    snprintf(sql, sizeof sql,
             "COPY (SELECT unit_code, level, payload FROM rollcall.report_archive "
             "WHERE period BETWEEN '%s' AND '%s' AND unit_code LIKE '%s%%') "
             "TO STDOUT (FORMAT binary)",
             o->from, o->to, o->unit);
    res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_COPY_OUT) {
        snprintf(errbuf, errlen, "reading the archive: %s", PQerrorMessage(conn));
        PQclear(res);
        return -1;
    }
    PQclear(res);
    while ((n = PQgetCopyData(conn, &buf, 0)) > 0) {
        const uint8_t *p = (const uint8_t *)buf;
        size_t len = (size_t)n;
        archived a;
        int r;

        if (failed) {
            PQfreemem(buf);
            continue;   /* drain the COPY */
        }
        if (header) {
            uint32_t ext;
            if (len < 19 || memcmp(p, sig, 11) != 0) {
                snprintf(errbuf, errlen, "reading the archive: not a binary COPY stream");
                failed = true;
                PQfreemem(buf);
                continue;
            }
            ext = be32(p + 15);
            if (len < 19 + (size_t)ext) {
                snprintf(errbuf, errlen, "reading the archive: bad COPY header");
                failed = true;
                PQfreemem(buf);
                continue;
            }
            p += 19 + ext;
            len -= 19 + ext;
            header = false;
        }
        r = parse_row(p, len, &a, code);
        if (r < 0) {
            snprintf(errbuf, errlen, "reading the archive: malformed COPY row");
            failed = true;
        } else if (r > 0) {
            rows++;
            if (fn(opaque, &a, errbuf, errlen) < 0)
                failed = true;
        }
        PQfreemem(buf);
    }
    if (n == -2) {
        snprintf(errbuf, errlen, "reading the archive: %s", PQerrorMessage(conn));
        failed = true;
    }
    while ((res = PQgetResult(conn)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK && !failed) {
            snprintf(errbuf, errlen, "reading the archive: %s", PQresultErrorMessage(res));
            failed = true;
        }
        PQclear(res);
    }
    return failed ? -1 : rows;
}

/* --------------------------------------------------------------- staging */

typedef struct {
    replay_diff *diff;
    cli_publisher *pub;
    const rc_registry *reg;     /* dry run: the rollup's view of validity */
    int max_past_days;
    size_t undecodable;
    size_t rejected;            /* dry run: what the rollup would dead-letter */
} run_ctx;

static int stage_archived(void *opaque, const archived *a, char *errbuf, size_t errlen)
{
    run_ctx *ctx = opaque;
    rc_errors errs = {0};
    Rollcall__Report *r = rc_report_unpack(a->payload, a->len, &errs);
    rc_validate_opts vo;
    char topic[32], key[13];
    int rc;

    if (!r || cli_report_route(a->unit_code, a->level, topic, key) < 0) {
        /* The rollup archived it, so it decoded once; count, do not stop. */
        ctx->undecodable++;
        rc_warn("archived report skipped unit=%s level=%d: %s", a->unit_code, a->level,
                r ? "no topic for its level" : "undecodable");
        rc_report_free(r);
        return 0;
    }
    /* What the rollup would dead-letter today (a unit since removed from
     * the registry, a period now outside its window) is not applied. */
    cli_pipeline_validate_opts((int)r->level, ctx->max_past_days, &vo);
    if (rc_report_validate(r, &vo, ctx->reg, &errs) < 0) {
        char why[300];
        rc_errors_format(&errs, why, sizeof why);
        if (ctx->rejected++ < 10)
            fprintf(stderr, "replay: %s %s %s would be dead-lettered: %s\n", r->unit_code,
                    r->period, r->report_id, why);
        rc_report_free(r);
        return 0;
    }
    rc = replay_diff_stage(ctx->diff, r, topic, a->payload, a->len, errbuf, errlen);
    rc_report_free(r);
    return rc;
}

static int send_archived(void *opaque, const archived *a, char *errbuf, size_t errlen)
{
    run_ctx *ctx = opaque;
    char topic[32], key[13];

    (void)errbuf;
    (void)errlen;
    if (cli_report_route(a->unit_code, a->level, topic, key) < 0) {
        ctx->undecodable++;
        rc_warn("archived report skipped unit=%s level=%d: no topic for its level", a->unit_code,
                a->level);
        return 0;
    }
    /* The original bytes: same report_id, same version. */
    cli_publisher_send(ctx->pub, topic, key, a->payload, a->len, NULL);
    return 0;
}

/* -------------------------------------------------------------- file mode */

/* A valid report of the file, packed, waiting for the snapshot to be taken
 * before anything is sent. */
typedef struct {
    char topic[32], key[13];
    uint8_t *buf;
    size_t len;
} file_msg;

typedef struct {
    replay_diff *diff;
    bool dry_run;
    bool failed;
    file_msg *msgs;
    size_t n, cap;
    char err[512];
} file_ctx;

static void file_report(void *opaque, Rollcall__Report *r, size_t line)
{
    file_ctx *ctx = opaque;
    char topic[32], key[13];
    file_msg *m;

    (void)line;
    if (ctx->failed || cli_report_route(r->unit_code, (int)r->level, topic, key) < 0)
        goto done;
    if (ctx->dry_run) {
        if (replay_diff_stage(ctx->diff, r, topic, NULL, 0, ctx->err, sizeof ctx->err) < 0)
            ctx->failed = true;
        goto done;
    }
    if (replay_diff_add_key(ctx->diff, r->unit_code, r->period, ctx->err, sizeof ctx->err) < 0) {
        ctx->failed = true;
        goto done;
    }
    if (ctx->n == ctx->cap) {
        size_t ncap = ctx->cap ? 2 * ctx->cap : 1024;
        file_msg *nm = realloc(ctx->msgs, ncap * sizeof *nm);
        if (!nm)
            goto oom;
        ctx->msgs = nm;
        ctx->cap = ncap;
    }
    m = &ctx->msgs[ctx->n];
    m->buf = rc_report_pack(r, &m->len);
    if (!m->buf)
        goto oom;
    memcpy(m->topic, topic, sizeof m->topic);
    memcpy(m->key, key, sizeof m->key);
    ctx->n++;
    goto done;
oom:
    snprintf(ctx->err, sizeof ctx->err, "out of memory");
    ctx->failed = true;
done:
    rc_report_free(r);
}

/* ------------------------------------------------------------------ wait */

/* Waits until `group` has stored, in rollcall.consumer_offset, a position
 * past every offset this run wrote: then the rollup has committed their
 * effect (it stores offsets in the transaction that applies them).
 * Returns 0, or -1 on timeout or error. */
static int wait_for_rollup(rc_pg *pg, const cli_publisher *pub, const char *group, int timeout_s,
                           char *errbuf, size_t errlen)
{
    size_t npos;
    const cli_position *pos = cli_publisher_positions(pub, &npos);
    double t0 = cli_now(), last = 0;

    if (npos == 0)
        return 0;
    for (;;) {
        size_t done = 0;
        for (size_t i = 0; i < npos; i++) {
            char part[16], off[24];
            const char *params[4] = {group, pos[i].topic, part, off};
            PGresult *res;

            snprintf(part, sizeof part, "%d", (int)pos[i].partition);
            snprintf(off, sizeof off, "%lld", (long long)pos[i].last_offset);
            res = rc_pg_exec_params(pg,
                                    "SELECT 1 FROM rollcall.consumer_offset "
                                    " WHERE consumer_group = $1 AND topic = $2 "
                                    "   AND partition = $3::int AND next_offset > $4::bigint",
                                    4, params, errbuf, errlen);
            if (!res)
                return -1;
            if (PQntuples(res) > 0)
                done++;
            PQclear(res);
        }
        if (done == npos) {
            fprintf(stderr, "replay: %s applied everything (%.1f s)\n", group, cli_now() - t0);
            return 0;
        }
        if (cli_now() - t0 > timeout_s) {
            snprintf(errbuf, errlen,
                     "%s has applied %zu of %zu partitions after %d s: is it running? "
                     "(the reports are in Kafka; it will apply them when it runs)",
                     group, done, npos, timeout_s);
            return -1;
        }
        if (cli_now() - last >= 1.0) {
            fprintf(stderr, "replay: waiting for %s: %zu of %zu partitions applied\n", group, done,
                    npos);
            last = cli_now();
        }
        usleep(100000);
    }
}

/* Number of archived revisions selected.  -1 with errbuf on failure. */
static long long archive_count(rc_pg *pg, const replay_opts *o, char *errbuf, size_t errlen)
{
    const char *params[3] = {o->from, o->to, o->unit};
    PGresult *res = rc_pg_exec_params(pg,
                                      "SELECT count(*) FROM rollcall.report_archive "
                                      " WHERE period BETWEEN $1::date AND $2::date "
                                      "   AND unit_code LIKE $3 || '%'",
                                      3, params, errbuf, errlen);
    long long n;

    if (!res)
        return -1;
    n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return n;
}

/* ------------------------------------------------------------------- run */

/* --dry-run: a second connection reads the selected revisions while the
 * first stages them as the rollup would apply them; prints what would
 * change, and changes nothing. */
static int dry_run_archive(const replay_opts *o, replay_diff *diff, run_ctx *ctx, double t0)
{
    rc_pg *reader = NULL;
    rc_registry *reg = NULL;
    char err[1024];
    long long streamed, changed;
    int rc = CLI_FAILED;

    reader = cli_connect(o->dsn, "replay");
    if (!reader)
        goto done;
    reg = rc_registry_new(false);
    if (!reg || rc_registry_load_pg(reg, rc_pg_conn(reader), err, sizeof err) < 0) {
        if (!reg)
            snprintf(err, sizeof err, "out of memory");
        goto failed;
    }
    ctx->reg = reg;
    ctx->max_past_days = o->max_past_days;
    if (replay_diff_stage_begin(diff, err, sizeof err) < 0)
        goto failed;
    streamed = archive_stream(reader, o, stage_archived, ctx, err, sizeof err);
    if (streamed < 0)
        goto failed;
    if (replay_diff_snapshot(diff, err, sizeof err) < 0)
        goto failed;
    fprintf(stderr, "replay: dry run: %lld revision(s) staged (%.1f s)\n", streamed,
            cli_now() - t0);
    changed = replay_diff_dry_run(diff, stdout, o->limit, err, sizeof err);
    if (changed < 0)
        goto failed;
    if (ctx->rejected)
        printf("dry run: %zu revision(s) would be dead-lettered by the rollup (not applied "
               "above)\n", ctx->rejected);
    printf("dry run: %lld revision(s) would be sent; nothing was changed\n", streamed);
    rc = CLI_OK;
    goto done;
failed:
    fprintf(stderr, "rollcall replay: %s\n", err);
done:
    ctx->reg = NULL;
    rc_registry_free(reg);
    rc_pg_free(reader);
    return rc;
}

/* Sends the selected revisions back to their topics; with --wait, waits
 * for the rollup to apply them and (with a diff) prints what changed. */
static int send_archive(rc_pg *pg, const replay_opts *o, replay_diff *diff, run_ctx *ctx,
                        double t0)
{
    cli_publisher *pub = NULL;
    char err[1024];
    long long streamed, changed;
    int rc = CLI_FAILED;

    if (diff && replay_diff_snapshot(diff, err, sizeof err) < 0)
        goto failed;
    pub = cli_publisher_new(o->brokers, "replay", NULL, NULL, err, sizeof err);
    if (!pub)
        goto failed;
    ctx->pub = pub;
    streamed = archive_stream(pg, o, send_archived, ctx, err, sizeof err);
    if (streamed < 0)
        goto failed;
    if (cli_publisher_flush(pub, 180000) < 0) {
        fprintf(stderr, "rollcall replay: %llu of %llu report(s) not delivered (%s); nothing "
                        "is lost: run the same replay again\n",
                (unsigned long long)(cli_publisher_sent(pub) - cli_publisher_delivered(pub)),
                (unsigned long long)cli_publisher_sent(pub),
                cli_publisher_error(pub) ? cli_publisher_error(pub) : "timed out");
        goto done;
    }
    printf("replayed %llu report(s) in %.1f s\n", (unsigned long long)cli_publisher_delivered(pub),
           cli_now() - t0);
    if (!o->wait) {
        rc = CLI_OK;
        goto done;
    }
    if (wait_for_rollup(pg, pub, o->group, o->wait_timeout_s, err, sizeof err) < 0)
        goto failed;
    printf("applied in %.1f s\n", cli_now() - t0);
    if (diff) {
        changed = replay_diff_print(diff, stdout, o->limit, err, sizeof err);
        if (changed < 0)
            goto failed;
    }
    rc = CLI_OK;
    goto done;
failed:
    fprintf(stderr, "rollcall replay: %s\n", err);
done:
    ctx->pub = NULL;
    cli_publisher_free(pub);
    return rc;
}

static int run_archive(const replay_opts *o)
{
    rc_pg *pg = NULL;
    replay_diff *diff = NULL;
    run_ctx ctx = {0};
    char err[1024];
    long long selected;
    int rc = CLI_FAILED;
    double t0 = cli_now();

    pg = cli_connect(o->dsn, "replay");
    if (!pg)
        goto done;
    if (o->dry_run || (o->wait && o->diff)) {
        diff = replay_diff_new(pg, err, sizeof err);
        if (!diff || replay_diff_scope_subtree(diff, o->unit, o->from, o->to, err, sizeof err) < 0)
            goto failed;
    }
    selected = archive_count(pg, o, err, sizeof err);
    if (selected < 0)
        goto failed;
    fprintf(stderr, "replay: %lld archived revision(s) of %s from %s to %s (%.1f s)\n", selected,
            o->unit[0] ? o->unit : "all units", o->from, o->to, cli_now() - t0);
    if (selected == 0) {
        printf("nothing archived for %s from %s to %s\n", o->unit[0] ? o->unit : "any unit",
               o->from, o->to);
        rc = CLI_OK;
        goto done;
    }
    ctx.diff = diff;
    rc = o->dry_run ? dry_run_archive(o, diff, &ctx, t0) : send_archive(pg, o, diff, &ctx, t0);
    goto done;
failed:
    fprintf(stderr, "rollcall replay: %s\n", err);
done:
    if (ctx.undecodable)
        fprintf(stderr, "rollcall replay: %zu archived revision(s) skipped (see the log)\n",
                ctx.undecodable);
    replay_diff_free(diff);
    rc_pg_free(pg);
    return rc;
}

static int run_file(const replay_opts *o)
{
    rc_pg *pg = NULL;
    rc_registry *reg = NULL;
    replay_diff *diff = NULL;
    cli_publisher *pub = NULL;
    file_ctx ctx = {0};
    rc_validate_opts vo;
    replay_file_opts fo;
    size_t valid = 0, invalid = 0;
    char err[1024];
    int rc = CLI_FAILED;
    double t0 = cli_now();

    pg = cli_connect(o->dsn, "replay");
    if (!pg)
        goto done;
    reg = rc_registry_new(false);
    if (!reg || rc_registry_load_pg(reg, rc_pg_conn(pg), err, sizeof err) < 0) {
        fprintf(stderr, "rollcall replay: loading the registry: %s\n", reg ? err : "out of memory");
        goto done;
    }
    rc_validate_opts_default(&vo);
    vo.max_past_days = o->max_past_days;
    vo.require_report_id = true;
    fo.path = o->file;
    fo.csv = o->csv;
    fo.registry = reg;
    fo.validate = &vo;

    diff = replay_diff_new(pg, err, sizeof err);
    if (!diff)
        goto failed;
    ctx.diff = diff;
    ctx.dry_run = o->dry_run;
    if (o->dry_run && replay_diff_stage_begin(diff, err, sizeof err) < 0)
        goto failed;
    if (replay_file_read(&fo, file_report, &ctx, &valid, &invalid, err, sizeof err) < 0)
        goto failed;
    if (ctx.failed) {
        snprintf(err, sizeof err, "%s", ctx.err);
        goto failed;
    }
    fprintf(stderr, "replay: %s: %zu valid report(s), %zu invalid\n", o->file, valid, invalid);

    if (o->dry_run) {
        if (replay_diff_snapshot(diff, err, sizeof err) < 0 ||
            replay_diff_dry_run(diff, stdout, o->limit, err, sizeof err) < 0)
            goto failed;
        printf("dry run: %zu report(s) would be sent, %zu invalid; nothing was changed\n", valid,
               invalid);
        rc = invalid ? CLI_FAILED : CLI_OK;
        goto done;
    }
    if (ctx.n == 0) {
        printf("nothing to send: %zu invalid line(s)\n", invalid);
        rc = invalid ? CLI_FAILED : CLI_OK;
        goto done;
    }
    if (o->wait && o->diff && replay_diff_snapshot(diff, err, sizeof err) < 0)
        goto failed;
    pub = cli_publisher_new(o->brokers, "replay", NULL, NULL, err, sizeof err);
    if (!pub)
        goto failed;
    for (size_t i = 0; i < ctx.n; i++)
        cli_publisher_send(pub, ctx.msgs[i].topic, ctx.msgs[i].key, ctx.msgs[i].buf,
                           ctx.msgs[i].len, NULL);
    if (cli_publisher_flush(pub, 180000) < 0) {
        fprintf(stderr, "rollcall replay: %llu report(s) not delivered (%s)\n",
                (unsigned long long)(cli_publisher_sent(pub) - cli_publisher_delivered(pub)),
                cli_publisher_error(pub) ? cli_publisher_error(pub) : "timed out");
        goto done;
    }
    printf("sent %llu report(s) from %s in %.1f s; %zu invalid line(s) not sent\n",
           (unsigned long long)cli_publisher_delivered(pub), o->file, cli_now() - t0, invalid);
    if (o->wait) {
        if (wait_for_rollup(pg, pub, o->group, o->wait_timeout_s, err, sizeof err) < 0 ||
            (o->diff && replay_diff_print(diff, stdout, o->limit, err, sizeof err) < 0))
            goto failed;
    }
    rc = invalid ? CLI_FAILED : CLI_OK;
    goto done;
failed:
    fprintf(stderr, "rollcall replay: %s\n", err);
done:
    for (size_t i = 0; i < ctx.n; i++)
        free(ctx.msgs[i].buf);
    free(ctx.msgs);
    cli_publisher_free(pub);
    replay_diff_free(diff);
    rc_registry_free(reg);
    rc_pg_free(pg);
    return rc;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

int cmd_replay(int argc, char **argv)
{
    static const struct option opts[] = {
        {"unit", required_argument, NULL, 'u'},
        {"all", no_argument, NULL, 'A'},
        {"from", required_argument, NULL, 'f'},
        {"to", required_argument, NULL, 't'},
        {"file", required_argument, NULL, 'F'},
        {"format", required_argument, NULL, 'm'},
        {"max-past-days", required_argument, NULL, 'P'},
        {"dry-run", no_argument, NULL, 'n'},
        {"no-wait", no_argument, NULL, 'W'},
        {"no-diff", no_argument, NULL, 'N'},
        {"group", required_argument, NULL, 'g'},
        {"wait-timeout", required_argument, NULL, 'w'},
        {"limit", required_argument, NULL, 'l'},
        {"brokers", required_argument, NULL, 'b'},
        {"dsn", required_argument, NULL, 'D'},
        {NULL, 0, NULL, 0},
    };
    replay_opts o = {.group = DEFAULT_GROUP, .wait = true, .diff = true, .wait_timeout_s = 600,
                     .limit = 50, .max_past_days = -1};
    const char *format = NULL, *brokers_opt = NULL;
    bool all = false;
    int32_t dfrom, dto;
    char *end;
    int c;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'u': o.unit = optarg; break;
        case 'A': all = true; break;
        case 'f': o.from = optarg; break;
        case 't': o.to = optarg; break;
        case 'F': o.file = optarg; break;
        case 'm': format = optarg; break;
        case 'P':
            o.max_past_days = (int)strtol(optarg, &end, 10);
            if (*end || o.max_past_days < 0)
                return cli_usage_error("replay", "--max-past-days needs a number >= 0");
            break;
        case 'n': o.dry_run = true; break;
        case 'W': o.wait = false; break;
        case 'N': o.diff = false; break;
        case 'g': o.group = optarg; break;
        case 'w':
            o.wait_timeout_s = (int)strtol(optarg, &end, 10);
            if (*end || o.wait_timeout_s < 1)
                return cli_usage_error("replay", "--wait-timeout needs seconds >= 1");
            break;
        case 'l':
            o.limit = strtol(optarg, &end, 10);
            if (*end || o.limit < 0)
                return cli_usage_error("replay", "--limit needs a number >= 0");
            break;
        case 'b': brokers_opt = optarg; break;
        case 'D': o.dsn = optarg; break;
        default: return cli_usage_error("replay", "bad option");
        }
    }
    if (optind < argc)
        return cli_usage_error("replay", "unexpected argument '%s'", argv[optind]);
    if (all && o.unit)
        return cli_usage_error("replay", "give --unit or --all, not both");
    if (all)
        o.unit = "";    /* every code starts with "" */
    if (!o.file == !o.unit)
        return cli_usage_error("replay", "give either --unit (or --all) with --from/--to, or --file");
    if (o.unit) {
        if (!all && rc_code_level(o.unit) == 0)
            return cli_usage_error("replay", "--unit needs a unit code (2, 4, 6, 9 or 12 digits)");
        if (!o.from || !o.to || rc_period_parse(o.from, &dfrom) < 0 ||
            rc_period_parse(o.to, &dto) < 0)
            return cli_usage_error("replay", "--from and --to need dates YYYY-MM-DD");
        if (dfrom > dto)
            return cli_usage_error("replay", "--from is after --to");
        if (format)
            return cli_usage_error("replay", "--format belongs to --file");
    } else {
        if (o.from || o.to)
            return cli_usage_error("replay", "--from/--to belong to --unit");
        if (format && strcmp(format, "csv") != 0 && strcmp(format, "jsonl") != 0)
            return cli_usage_error("replay", "--format is jsonl or csv");
        o.csv = format ? strcmp(format, "csv") == 0 : ends_with(o.file, ".csv");
    }
    if (o.max_past_days < 0)   /* the window of whoever judges the reports */
        o.max_past_days = o.file ? 7 : CLI_ROLLUP_MAX_PAST_DAYS;
    o.brokers = cli_brokers(brokers_opt);
    if (!o.dry_run && !o.brokers) {
        fprintf(stderr, "rollcall replay: no Kafka brokers: give --brokers or set "
                        "ROLLCALL_KAFKA_BROKERS\n");
        return CLI_FAILED;
    }
    return o.unit ? run_archive(&o) : run_file(&o);
}
