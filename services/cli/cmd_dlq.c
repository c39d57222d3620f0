/* rollcall dlq — lists dead letters (rollcall.dead_letter) and replays
 * those that pass now: each is re-decoded and re-validated against the
 * current registry, produced to its original topic and marked replayed in
 * the transaction that locked it, so a letter is replayed once. */
#include "cli.h"
#include "rc_sql.h"
#include "rc_log.h"
#include "rc_report.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECHECK_MARK " | re-checked "

static int dlq_list(rc_pg *pg, const char *status, long limit)
{
    char lim[24], err[512];
    const char *params[2] = {lim, status};
    PGresult *res;

    snprintf(lim, sizeof lim, "%ld", limit);
    res = rc_pg_exec_params(pg,
                            "SELECT id, topic, partition, \"offset\", "
                            "       to_char(received_at AT TIME ZONE 'Asia/Shanghai', "
                            "               'YYYY-MM-DD HH24:MI:SS'), status, reason "
                            "  FROM rollcall.dead_letter "
                            " WHERE $2::text IS NULL OR status = $2::text "
                            " ORDER BY id DESC LIMIT $1::bigint",
                            2, params, err, sizeof err);
    if (!res) {
        fprintf(stderr, "rollcall dlq list: %s\n", err);
        return CLI_FAILED;
    }
    printf("%8s  %-18s %4s %10s  %-19s  %-8s  %s\n", "ID", "TOPIC", "PART", "OFFSET",
           "RECEIVED (+08:00)", "STATUS", "REASON");
    for (int i = 0; i < PQntuples(res); i++)
        printf("%8s  %-18s %4s %10s  %-19s  %-8s  %s\n", PQgetvalue(res, i, 0),
               PQgetvalue(res, i, 1), PQgetvalue(res, i, 2), PQgetvalue(res, i, 3),
               PQgetvalue(res, i, 4), PQgetvalue(res, i, 5), PQgetvalue(res, i, 6));
    printf("(%d dead letter%s shown)\n", PQntuples(res), PQntuples(res) == 1 ? "" : "s");
    PQclear(res);
    return CLI_OK;
}

typedef enum { L_PENDING, L_INVALID, L_SENT, L_DELIVERED, L_UNDELIVERED } letter_state;

typedef struct {
    char id[24];
    char topic[64];
    char where[96];          /* "reports.village[3]@1234" */
    char *reason;            /* the stored reason, without an earlier re-check note */
    char note[512];          /* this run's finding */
    letter_state state;
} letter;

static void on_delivered(void *opaque, void *msg_opaque, bool ok, const char *error)
{
    letter *l = msg_opaque;
    (void)opaque;
    l->state = ok ? L_DELIVERED : L_UNDELIVERED;
    if (!ok)
        snprintf(l->note, sizeof l->note, "not delivered: %s", error ? error : "?");
}

/* Validation as the rollup applies it now: a letter that passes is one the
 * rollup will accept. */
static int revalidate(const Rollcall__Report *r, const rc_registry *reg, rc_errors *errs)
{
    rc_validate_opts o;

    cli_pipeline_validate_opts((int)r->level, CLI_ROLLUP_MAX_PAST_DAYS, &o);
    if (r->version <= 0)
        rc_errors_add(errs, "version", "missing (must be > 0)");
    return rc_report_validate(r, &o, reg, errs) < 0 || errs->n ? -1 : 0;
}

/* The original reason, without the note an earlier replay appended. */
static char *original_reason(const char *reason)
{
    const char *mark = strstr(reason, RECHECK_MARK);
    return strndup(reason, mark ? (size_t)(mark - reason) : strlen(reason));
}

typedef struct {
    size_t checked, replayed, invalid, undelivered;
    long printed, limit;
} dlq_totals;

/* Row i of the locked letters into l, its message re-validated and, when it
 * passes, queued back to the topic it came from; l->state says which. */
static void recheck_and_send(const PGresult *res, int i, const rc_registry *reg,
                             cli_publisher *pub, letter *l)
{
    size_t rawlen = 0;
    unsigned char *raw = NULL;
    Rollcall__Report *r = NULL;
    rc_errors errs = {0};
    char topic[32], key[13];

    snprintf(l->id, sizeof l->id, "%s", PQgetvalue(res, i, 0));
    snprintf(l->topic, sizeof l->topic, "%s", PQgetvalue(res, i, 1));
    snprintf(l->where, sizeof l->where, "%s[%s]@%s", l->topic, PQgetvalue(res, i, 2),
             PQgetvalue(res, i, 3));
    l->reason = original_reason(PQgetvalue(res, i, 5));
    if (!PQgetisnull(res, i, 4))
        raw = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 4), &rawlen);
    if (!raw || rawlen == 0) {
        l->state = L_INVALID;
        snprintf(l->note, sizeof l->note, "still invalid: no message bytes kept");
        PQfreemem(raw);
        return;
    }
    r = rc_report_unpack(raw, rawlen, &errs);
    if (r)
        revalidate(r, reg, &errs);
    if (errs.n > 0) {
        char why[400];
        rc_errors_format(&errs, why, sizeof why);
        l->state = L_INVALID;
        snprintf(l->note, sizeof l->note, "still invalid: %s", why);
    } else if (cli_report_route(r->unit_code, (int)r->level, topic, key) < 0) {
        l->state = L_INVALID;
        snprintf(l->note, sizeof l->note, "still invalid: no topic for level %d", (int)r->level);
    } else {
        /* Back where it came from; the fast path keys by village. */
        const char *k = strcmp(l->topic, "reports.urgent") == 0 ? r->unit_code : key;
        l->state = L_SENT;
        if (cli_publisher_send(pub, l->topic, k, raw, rawlen, l) < 0) {
            l->state = L_UNDELIVERED;
            snprintf(l->note, sizeof l->note, "not delivered: could not queue");
        }
    }
    rc_report_free(r);
    PQfreemem(raw);
}

/* The new status and reason of each letter of a batch, as SQL arrays. */
typedef struct {
    rc_sqlarr ids, statuses, reasons;
} letter_outcomes;

/* After the delivery reports: counts the letter's fate in t, adds its new
 * status and reason (dated `when`) to out, and prints it while under the
 * limit.  A letter still only sent had no delivery report. */
static void tally_letter(letter *l, const char *when, dlq_totals *t, letter_outcomes *out)
{
    const char *status;
    char note[700];

    switch (l->state) {
    case L_DELIVERED:
        status = "replayed";
        t->replayed++;
        snprintf(note, sizeof note, "%s", l->reason);
        break;
    case L_INVALID:
        status = NULL;   /* unchanged */
        t->invalid++;
        snprintf(note, sizeof note, "%s" RECHECK_MARK "%s: %s", l->reason, when, l->note);
        break;
    default:
        if (l->state == L_SENT)
            snprintf(l->note, sizeof l->note, "not delivered: no delivery report");
        status = "failed";
        t->undelivered++;
        snprintf(note, sizeof note, "%s" RECHECK_MARK "%s: %s", l->reason, when, l->note);
        break;
    }
    rc_sqlarr_text(&out->ids, l->id);
    rc_sqlarr_text(&out->statuses, status);
    rc_sqlarr_text(&out->reasons, note);
    if (t->limit == 0 || t->printed < t->limit) {
        printf("dead letter %s (%s): %s\n", l->id, l->where,
               l->state == L_DELIVERED ? "replayed" : l->note);
        t->printed++;
    }
}

/* Writes the batch's outcomes to rollcall.dead_letter (a NULL status leaves
 * the letter's as it was).  Returns 0, or -1 with err set. */
static int store_outcomes(rc_pg *pg, letter_outcomes *out, char *err, size_t errlen)
{
    const char *up[3] = {rc_sqlarr_get(&out->ids), rc_sqlarr_get(&out->statuses),
                         rc_sqlarr_get(&out->reasons)};
    PGresult *res;

    if (!up[0] || !up[1] || !up[2]) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    res = rc_pg_exec_params(pg,
                            "UPDATE rollcall.dead_letter d SET reason = u.reason, "
                            "  status = coalesce(u.status, d.status), "
                            "  replayed_at = CASE WHEN u.status = 'replayed' THEN now() "
                            "                     ELSE d.replayed_at END "
                            "  FROM unnest($1::bigint[], $2::text[], $3::text[]) "
                            "       AS u(id, status, reason) "
                            " WHERE d.id = u.id",
                            3, up, err, errlen);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}

/* One batch, in its own transaction: locks up to `batch` letters after
 * *last_id, re-validates them, sends those that pass, waits for their
 * delivery reports and records every outcome.  Returns the number of
 * letters handled (0: none left), or -1. */
static long replay_batch(rc_pg *pg, cli_publisher *pub, const rc_registry *reg, const char *id,
                         long long *last_id, int batch, dlq_totals *t)
{
    char err[1024], after[24], lim[16];
    const char *params[3] = {id, after, lim};
    PGresult *res = NULL;
    letter *letters = NULL;
    letter_outcomes out;
    long n = -1;

    char when[40];

    rc_time_format_rfc3339(rc_now_us() / 1000000 * 1000000, when);
    snprintf(after, sizeof after, "%lld", *last_id);
    snprintf(lim, sizeof lim, "%d", batch);
    memset(&out, 0, sizeof out);
    if (rc_pg_begin(pg, err, sizeof err) < 0)
        goto failed;
    /* Locked until this batch has decided each letter's fate: a concurrent
     * replay skips them instead of sending them a second time. */
    res = rc_pg_exec_params(pg,
                            "SELECT id, topic, partition, \"offset\", raw, reason "
                            "  FROM rollcall.dead_letter "
                            " WHERE ($1::bigint IS NULL OR id = $1::bigint) AND id > $2::bigint "
                            "   AND status <> 'replayed' "
                            " ORDER BY id LIMIT $3::int FOR UPDATE SKIP LOCKED",
                            3, params, err, sizeof err);
    if (!res)
        goto failed;
    n = PQntuples(res);
    if (n == 0) {
        rc_pg_rollback(pg, NULL, 0);
        goto done;
    }
    letters = calloc((size_t)n, sizeof *letters);
    if (!letters) {
        snprintf(err, sizeof err, "out of memory");
        goto failed;
    }
    for (long i = 0; i < n; i++)
        recheck_and_send(res, (int)i, reg, pub, &letters[i]);
    *last_id = strtoll(PQgetvalue(res, (int)n - 1, 0), NULL, 10);
    PQclear(res);
    res = NULL;
    cli_publisher_flush(pub, 120000);

    for (long i = 0; i < n; i++)
        tally_letter(&letters[i], when, t, &out);
    t->checked += (size_t)n;
    if (store_outcomes(pg, &out, err, sizeof err) < 0)
        goto failed;
    if (rc_pg_commit(pg, err, sizeof err) < 0) {
        /* The reports went out: the pipeline is idempotent, so a later
         * replay of the same letters changes nothing, but say so. */
        fprintf(stderr, "rollcall dlq replay: letters were sent but their status could not be "
                        "recorded: %s\n", err);
        n = -1;
        goto done;
    }
    goto done;
failed:
    fprintf(stderr, "rollcall dlq replay: %s\n", err);
    n = -1;
done:
    PQclear(res);
    if (rc_pg_in_transaction(pg))
        rc_pg_rollback(pg, NULL, 0);
    for (long i = 0; letters && i < n; i++)
        free(letters[i].reason);
    free(letters);
    rc_sqlarr_free(&out.ids);
    rc_sqlarr_free(&out.statuses);
    rc_sqlarr_free(&out.reasons);
    return n;
}

static int dlq_replay(rc_pg *pg, const char *brokers, const char *id, long limit)
{
    char err[1024];
    rc_registry *reg = NULL;
    cli_publisher *pub = NULL;
    dlq_totals t = {.limit = limit};
    long long last_id = 0;
    double t0 = cli_now();
    long n;
    int rc = CLI_FAILED;

    reg = rc_registry_new(false);
    if (!reg || rc_registry_load_pg(reg, rc_pg_conn(pg), err, sizeof err) < 0) {
        fprintf(stderr, "rollcall dlq replay: loading the registry: %s\n", reg ? err : "out of memory");
        goto done;
    }
    pub = cli_publisher_new(brokers, "dlq replay", on_delivered, NULL, err, sizeof err);
    if (!pub) {
        fprintf(stderr, "rollcall dlq replay: %s\n", err);
        goto done;
    }
    while ((n = replay_batch(pg, pub, reg, id, &last_id, 5000, &t)) > 0)
        fprintf(stderr, "dlq replay: %zu checked, %zu replayed, %zu still invalid, "
                        "%zu not delivered (%.1f s)\n",
                t.checked, t.replayed, t.invalid, t.undelivered, cli_now() - t0);
    if (n < 0)
        goto done;
    if (t.checked == 0) {
        if (id)
            printf("dead letter %s: nothing to replay (unknown, already replayed, or being "
                   "replayed by another run)\n", id);
        else
            printf("no dead letters to replay\n");
        rc = CLI_OK;
        goto done;
    }
    if (limit > 0 && t.printed < (long)t.checked)
        printf("... and %zu more\n", t.checked - (size_t)t.printed);
    printf("replayed %zu, still invalid %zu, not delivered %zu\n", t.replayed, t.invalid,
           t.undelivered);
    rc = t.undelivered ? CLI_FAILED : CLI_OK;
done:
    cli_publisher_free(pub);
    rc_registry_free(reg);
    return rc;
}

int cmd_dlq(int argc, char **argv)
{
    static const struct option opts[] = {
        {"status", required_argument, NULL, 's'},
        {"limit", required_argument, NULL, 'l'},
        {"id", required_argument, NULL, 'i'},
        {"all", no_argument, NULL, 'a'},
        {"brokers", required_argument, NULL, 'b'},
        {"dsn", required_argument, NULL, 'D'},
        {NULL, 0, NULL, 0},
    };
    const char *sub, *status = NULL, *id = NULL, *dsn = NULL, *brokers_opt = NULL;
    bool all = false;
    long limit = 50;
    char *end;
    int c, rc;
    rc_pg *pg;

    if (argc < 2 || (strcmp(argv[1], "list") != 0 && strcmp(argv[1], "replay") != 0))
        return cli_usage_error("dlq", "expected the subcommand 'list' or 'replay'");
    sub = argv[1];
    argc--;
    argv++;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            if (strcmp(optarg, "new") && strcmp(optarg, "replayed") && strcmp(optarg, "failed"))
                return cli_usage_error("dlq", "--status is new, replayed or failed");
            status = optarg;
            break;
        case 'l':
            limit = strtol(optarg, &end, 10);
            if (*end || limit < 1)
                return cli_usage_error("dlq", "--limit needs a number >= 1");
            break;
        case 'i':
            strtoll(optarg, &end, 10);
            if (*end || !optarg[0])
                return cli_usage_error("dlq", "--id needs a number");
            id = optarg;
            break;
        case 'a': all = true; break;
        case 'b': brokers_opt = optarg; break;
        case 'D': dsn = optarg; break;
        default: return cli_usage_error("dlq", "bad option");
        }
    }
    if (optind < argc)
        return cli_usage_error("dlq", "unexpected argument '%s'", argv[optind]);
    if (strcmp(sub, "list") == 0 && (id || all))
        return cli_usage_error("dlq", "--id/--all belong to 'dlq replay'");
    if (strcmp(sub, "replay") == 0 && (!id == !all))
        return cli_usage_error("dlq", "give exactly one of --id N and --all");
    if (strcmp(sub, "replay") == 0 && !cli_brokers(brokers_opt)) {
        fprintf(stderr, "rollcall dlq replay: no Kafka brokers: give --brokers or set "
                        "ROLLCALL_KAFKA_BROKERS\n");
        return CLI_FAILED;
    }
    pg = cli_connect(dsn, "dlq");
    if (!pg)
        return CLI_FAILED;
    if (strcmp(sub, "list") == 0)
        rc = dlq_list(pg, status, limit);
    else
        rc = dlq_replay(pg, cli_brokers(brokers_opt), id, limit);
    rc_pg_free(pg);
    return rc;
}
