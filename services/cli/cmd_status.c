/* rollcall status — every consumer group's position and lag per partition,
 * and --rewind to move a stopped service's group back.  A group whose
 * positions are in rollcall.consumer_offset (the rollup, the level services)
 * is read and rewound there — PostgreSQL is the truth for it; any other
 * group through Kafka's committed offsets. */
#include "cli.h"
#include "rc_log.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KAFKA_TIMEOUT_MS 10000
#define MAX_GROUPS 64

typedef struct {
    char topic[64];
    int32_t partition;
    int64_t position;   /* next offset to read; < 0 when none */
    int64_t lo;         /* rewind: the position before */
} gpos;

typedef struct {
    gpos *v;
    size_t n, cap;
} gpos_list;

static int gpos_add(gpos_list *l, const char *topic, int32_t partition, int64_t position)
{
    if (l->n == l->cap) {
        size_t ncap = l->cap ? 2 * l->cap : 64;
        gpos *n = realloc(l->v, ncap * sizeof *n);
        if (!n)
            return -1;
        l->v = n;
        l->cap = ncap;
    }
    snprintf(l->v[l->n].topic, sizeof l->v[l->n].topic, "%s", topic);
    l->v[l->n].partition = partition;
    l->v[l->n].position = position;
    l->n++;
    return 0;
}

static bool match_filter(const char *topic, int32_t partition, const char *ftopic, int fpart)
{
    return (!ftopic || strcmp(topic, ftopic) == 0) && (fpart < 0 || partition == fpart);
}

/* A plain client handle for metadata, watermarks and group listing; a
 * consumer handle (never subscribed) when `group` is set, for committed
 * offsets.  NULL with errbuf filled on failure. */
static rd_kafka_t *kafka_handle(const char *brokers, const char *group, char *errbuf,
                                size_t errlen)
{
    rd_kafka_conf_t *conf = cli_kafka_conf(brokers, errbuf, errlen);
    rd_kafka_t *rk;

    if (!conf)
        return NULL;
    if (rd_kafka_conf_set(conf, "client.id", "rollcall-status", errbuf, errlen) != RD_KAFKA_CONF_OK ||
        (group && (rd_kafka_conf_set(conf, "group.id", group, errbuf, errlen) != RD_KAFKA_CONF_OK ||
                   rd_kafka_conf_set(conf, "enable.auto.commit", "false", errbuf, errlen) !=
                       RD_KAFKA_CONF_OK))) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rc_kafka_conf_set_logger(conf);
    rk = rd_kafka_new(group ? RD_KAFKA_CONSUMER : RD_KAFKA_PRODUCER, conf, errbuf, errlen);
    if (!rk)
        rd_kafka_conf_destroy(conf);
    return rk;
}

/* ------------------------------------------------------------ positions */

/* The groups recorded in rollcall.consumer_offset, with their positions
 * (filtered).  Returns the number of groups added to names, or -1. */
static int pg_groups(rc_pg *pg, char names[][128], int max, char *errbuf, size_t errlen)
{
    PGresult *res = rc_pg_exec(pg,
                               "SELECT DISTINCT consumer_group FROM rollcall.consumer_offset "
                               "ORDER BY 1",
                               errbuf, errlen);
    int n = 0;

    if (!res)
        return -1;
    for (int i = 0; i < PQntuples(res) && n < max; i++)
        snprintf(names[n++], 128, "%s", PQgetvalue(res, i, 0));
    PQclear(res);
    return n;
}

static int pg_positions(rc_pg *pg, const char *group, gpos_list *out, char *errbuf, size_t errlen)
{
    const char *params[1] = {group};
    PGresult *res = rc_pg_exec_params(pg,
                                      "SELECT topic, partition, next_offset "
                                      "FROM rollcall.consumer_offset WHERE consumer_group = $1 "
                                      "ORDER BY topic, partition",
                                      1, params, errbuf, errlen);
    if (!res)
        return -1;
    for (int i = 0; i < PQntuples(res); i++) {
        if (gpos_add(out, PQgetvalue(res, i, 0), atoi(PQgetvalue(res, i, 1)),
                     strtoll(PQgetvalue(res, i, 2), NULL, 10)) < 0) {
            snprintf(errbuf, errlen, "out of memory");
            PQclear(res);
            return -1;
        }
    }
    PQclear(res);
    return 0;
}

/* Every partition of every non-internal topic. */
static int all_partitions(rd_kafka_t *rk, gpos_list *out, char *errbuf, size_t errlen)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, NULL, &md, KAFKA_TIMEOUT_MS);

    if (err) {
        snprintf(errbuf, errlen, "kafka metadata: %s", rd_kafka_err2str(err));
        return -1;
    }
    for (int t = 0; t < md->topic_cnt; t++) {
        const rd_kafka_metadata_topic_t *mt = &md->topics[t];
        if (mt->topic[0] == '_' || mt->err)
            continue;
        for (int p = 0; p < mt->partition_cnt; p++)
            if (gpos_add(out, mt->topic, mt->partitions[p].id, -1) < 0) {
                rd_kafka_metadata_destroy(md);
                snprintf(errbuf, errlen, "out of memory");
                return -1;
            }
    }
    rd_kafka_metadata_destroy(md);
    return 0;
}

/* The group's committed offsets in Kafka; only partitions with one are kept. */
static int kafka_positions(const char *brokers, const char *group, const gpos_list *parts,
                           gpos_list *out, char *errbuf, size_t errlen)
{
    rd_kafka_t *rk = kafka_handle(brokers, group, errbuf, errlen);
    rd_kafka_topic_partition_list_t *l = NULL;
    rd_kafka_resp_err_t err;
    int rc = -1;

    if (!rk)
        return -1;
    l = rd_kafka_topic_partition_list_new((int)parts->n);
    for (size_t i = 0; i < parts->n; i++)
        rd_kafka_topic_partition_list_add(l, parts->v[i].topic, parts->v[i].partition);
    err = rd_kafka_committed(rk, l, KAFKA_TIMEOUT_MS);
    if (err) {
        snprintf(errbuf, errlen, "committed offsets of group %s: %s", group, rd_kafka_err2str(err));
        goto done;
    }
    for (int i = 0; i < l->cnt; i++)
        if (l->elems[i].offset >= 0 &&
            gpos_add(out, l->elems[i].topic, l->elems[i].partition, l->elems[i].offset) < 0) {
            snprintf(errbuf, errlen, "out of memory");
            goto done;
        }
    rc = 0;
done:
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    return rc;
}

/* Consumer groups known to the broker, or -1 when it cannot list them
 * (the development broker does not implement ListGroups). */
static int kafka_groups(rd_kafka_t *rk, char names[][128], int max)
{
    const struct rd_kafka_group_list *gl = NULL;
    int n = 0;

    if (rd_kafka_list_groups(rk, NULL, &gl, KAFKA_TIMEOUT_MS) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return -1;
    for (int i = 0; i < gl->group_cnt && n < max; i++)
        if (strcmp(gl->groups[i].protocol_type, "consumer") == 0)
            snprintf(names[n++], 128, "%s", gl->groups[i].group);
    rd_kafka_group_list_destroy(gl);
    return n;
}

static void print_positions(rd_kafka_t *rk, const char *group, const char *store,
                            const gpos_list *l)
{
    int64_t total = 0;
    int warned = 0;

    if (l->n == 0) {
        printf("%-28s (no positions %s)\n", group,
               strcmp(store, "kafka") == 0 ? "committed in Kafka" : "stored");
        return;
    }
    for (size_t i = 0; i < l->n; i++) {
        int64_t lo = -1, hi = -1;
        const char *note = "";
        char lag[24];
        rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
            rk, l->v[i].topic, l->v[i].partition, &lo, &hi, KAFKA_TIMEOUT_MS);

        if (err) {
            snprintf(lag, sizeof lag, "?");
            note = rd_kafka_err2str(err);
        } else {
            int64_t d = hi - l->v[i].position;
            snprintf(lag, sizeof lag, "%lld", (long long)(d > 0 ? d : 0));
            if (d > 0)
                total += d;
            if (l->v[i].position < lo) {
                note = "BEHIND RETENTION: messages were lost before it read them";
                warned++;
            } else if (l->v[i].position > hi) {
                note = "AHEAD of the log end (the broker was reset?)";
                warned++;
            }
        }
        printf("%-28s %-18s %4d %12lld %12lld %12lld %10s  %s%s%s\n", group, l->v[i].topic,
               (int)l->v[i].partition, (long long)l->v[i].position, (long long)lo, (long long)hi,
               lag, store, note[0] ? "  " : "", note);
    }
    printf("%-28s total lag %lld over %zu partitions%s\n", group, (long long)total, l->n,
           warned ? " — SEE WARNINGS ABOVE" : "");
}

/* print_positions over the positions of l that pass the --topic/--partition
 * filter. */
static void print_filtered(rd_kafka_t *rk, const char *group, const char *store,
                           const gpos_list *l, const char *ftopic, int fpart)
{
    gpos_list f = {0};

    for (size_t i = 0; i < l->n; i++)
        if (match_filter(l->v[i].topic, l->v[i].partition, ftopic, fpart))
            gpos_add(&f, l->v[i].topic, l->v[i].partition, l->v[i].position);
    print_positions(rk, group, store, &f);
    free(f.v);
}

static bool listed(char names[][128], int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return true;
    return false;
}

static int show_status(rc_pg *pg, const char *brokers, char groups[][128], int ngroups,
                       const char *ftopic, int fpart)
{
    char pgnames[MAX_GROUPS][128], knames[MAX_GROUPS][128], err[512];
    int npg = 0, nk = 0, rc = CLI_FAILED;
    rd_kafka_t *rk = NULL;
    gpos_list parts = {0};

    rk = kafka_handle(brokers, NULL, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "rollcall status: %s\n", err);
        return CLI_FAILED;
    }
    if (pg && (npg = pg_groups(pg, pgnames, MAX_GROUPS, err, sizeof err)) < 0) {
        fprintf(stderr, "rollcall status: reading rollcall.consumer_offset: %s\n", err);
        goto done;
    }
    if (ngroups > 0) {
        for (int i = 0; i < ngroups; i++)
            if (!listed(pgnames, npg, groups[i]))
                memcpy(knames[nk++], groups[i], 128);
    } else {
        char found[MAX_GROUPS][128];
        int n = kafka_groups(rk, found, MAX_GROUPS);
        if (n < 0)
            fprintf(stderr, "rollcall status: the broker cannot list consumer groups; showing the "
                            "groups in rollcall.consumer_offset (name others with --group)\n");
        for (int i = 0; i < n; i++)
            if (!listed(pgnames, npg, found[i]))
                memcpy(knames[nk++], found[i], 128);
    }
    if (nk > 0 && all_partitions(rk, &parts, err, sizeof err) < 0) {
        fprintf(stderr, "rollcall status: %s\n", err);
        goto done;
    }

    printf("%-28s %-18s %4s %12s %12s %12s %10s  %s\n", "GROUP", "TOPIC", "PART", "POSITION",
           "LOW", "HIGH", "LAG", "STORED IN");
    for (int g = 0; g < npg; g++) {
        gpos_list l = {0};
        if (ngroups > 0 && !listed(groups, ngroups, pgnames[g]))
            continue;
        if (pg_positions(pg, pgnames[g], &l, err, sizeof err) < 0) {
            fprintf(stderr, "rollcall status: group %s: %s\n", pgnames[g], err);
            free(l.v);
            goto done;
        }
        print_filtered(rk, pgnames[g], "postgresql", &l, ftopic, fpart);
        free(l.v);
    }
    for (int g = 0; g < nk; g++) {
        gpos_list l = {0};
        if (kafka_positions(brokers, knames[g], &parts, &l, err, sizeof err) < 0) {
            fprintf(stderr, "rollcall status: %s\n", err);
            free(l.v);
            goto done;
        }
        print_filtered(rk, knames[g], "kafka", &l, ftopic, fpart);
        free(l.v);
    }
    rc = CLI_OK;
done:
    free(parts.v);
    rd_kafka_destroy(rk);
    return rc;
}

/* ---------------------------------------------------------------- rewind */

typedef struct {
    int assigned;          /* -1 until the first assignment */
    int revoked;
} probe_state;

static void probe_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                            rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    probe_state *ps = opaque;

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        ps->assigned = parts->cnt;
        /* Paused right away: the probe reads nothing, it only needs a
         * generation to commit with. */
        rd_kafka_assign(rk, parts);
        rd_kafka_pause_partitions(rk, parts);
    } else {
        ps->revoked++;
        rd_kafka_assign(rk, NULL);
    }
}

/* Sessions of a running service in PostgreSQL.  Every Rollcall service
 * connects with application_name "rollcall-<service>[-<part>]" and names its
 * groups after itself ("rollcall-rollup", "rollcall-rollup.urgent",
 * "rollcall-township-urgent"); the three level services share
 * "rollcall-level*", so any of them running counts for every level group.
 * Returns the number found (described in `who`), or -1. */
static int pg_active_sessions(rc_pg *pg, const char *group, char *who, size_t wholen,
                              char *errbuf, size_t errlen)
{
    const char *params[1] = {group};
    PGresult *res = rc_pg_exec_params(
        pg,
        "WITH g AS (SELECT substring(replace($1, '.', '-') FROM '^rollcall-([a-z]+)') AS svc)\n"
        "SELECT a.application_name, a.client_addr, a.pid FROM pg_stat_activity a, g\n"
        " WHERE a.pid <> pg_backend_pid()\n"
        "   AND (a.application_name = $1\n"
        "        OR a.application_name = 'rollcall-' || g.svc\n"
        "        OR a.application_name LIKE 'rollcall-' || g.svc || '-%'\n"
        "        OR (g.svc IN ('township', 'county', 'province')\n"
        "            AND a.application_name LIKE 'rollcall-level%'))\n"
        " ORDER BY a.pid",
        1, params, errbuf, errlen);
    int n;

    if (!res)
        return -1;
    n = PQntuples(res);
    who[0] = '\0';
    for (int i = 0; i < n && i < 4; i++) {
        size_t used = strlen(who);
        snprintf(who + used, wholen - used, "%s%s (pid %s%s%s)", i ? ", " : "",
                 PQgetvalue(res, i, 0), PQgetvalue(res, i, 2),
                 PQgetisnull(res, i, 1) ? "" : " from ", PQgetvalue(res, i, 1));
    }
    if (n > 4) {
        size_t used = strlen(who);
        snprintf(who + used, wholen - used, " and %d more", n - 4);
    }
    PQclear(res);
    return n;
}

/* The group's state as the broker reports it.  Returns 1 when members are
 * active (described in `who`), 0 when it has none, -1 when the broker
 * cannot tell (no ListGroups: the development broker). */
static int kafka_group_active(rd_kafka_t *rk, const char *group, char *who, size_t wholen)
{
    const struct rd_kafka_group_list *gl = NULL;
    int active = 0;

    if (rd_kafka_list_groups(rk, group, &gl, KAFKA_TIMEOUT_MS) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return -1;
    for (int i = 0; i < gl->group_cnt; i++) {
        const struct rd_kafka_group_info *g = &gl->groups[i];
        if (strcmp(g->group, group) != 0 || g->member_cnt == 0)
            continue;
        active = 1;
        snprintf(who, wholen, "group state %s, %d member(s), first %s on %s", g->state,
                 g->member_cnt, g->members[0].client_id, g->members[0].client_host);
    }
    rd_kafka_group_list_destroy(gl);
    return active;
}

/* Joins `group` subscribed to the topics of `targets` and checks that this
 * probe alone was given every partition of them: any other member would
 * have been given some.  With commit, then commits the targets' offsets as
 * a member of the group (the only way to commit for a group that had
 * members).  Returns 0, or -1 with the reason (nothing committed). */
static int join_and_commit(const char *brokers, const char *group, const gpos_list *targets,
                           int nparts_expected, bool commit, int join_timeout_s, char *errbuf,
                           size_t errlen)
{
    rd_kafka_conf_t *conf = cli_kafka_conf(brokers, errbuf, errlen);
    rd_kafka_topic_partition_list_t *topics = NULL, *offs = NULL;
    probe_state ps = {.assigned = -1};
    rd_kafka_t *rk = NULL;
    rd_kafka_resp_err_t err;
    double t0 = cli_now();
    char tmp[512];
    int rc = -1;

    if (!conf)
        return -1;
    if (rd_kafka_conf_set(conf, "group.id", group, tmp, sizeof tmp) ||
        rd_kafka_conf_set(conf, "client.id", "rollcall-status-rewind", tmp, sizeof tmp) ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", tmp, sizeof tmp) ||
        rd_kafka_conf_set(conf, "enable.auto.offset.store", "false", tmp, sizeof tmp) ||
        rd_kafka_conf_set(conf, "auto.offset.reset", "error", tmp, sizeof tmp) ||
        /* Should its LeaveGroup get lost, the probe must not hold the
         * group (and the service restarted after it) for minutes. */
        rd_kafka_conf_set(conf, "session.timeout.ms", "6000", tmp, sizeof tmp) ||
        rd_kafka_conf_set(conf, "max.poll.interval.ms", "7000", tmp, sizeof tmp)) {
        snprintf(errbuf, errlen, "kafka configuration: %s", tmp);
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    rc_kafka_conf_set_logger(conf);
    rd_kafka_conf_set_rebalance_cb(conf, probe_rebalance);
    rd_kafka_conf_set_opaque(conf, &ps);
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, tmp, sizeof tmp);
    if (!rk) {
        snprintf(errbuf, errlen, "kafka consumer: %s", tmp);
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    rd_kafka_poll_set_consumer(rk);
    topics = rd_kafka_topic_partition_list_new(4);
    for (size_t i = 0; i < targets->n; i++)
        if (!rd_kafka_topic_partition_list_find(topics, targets->v[i].topic, RD_KAFKA_PARTITION_UA))
            rd_kafka_topic_partition_list_add(topics, targets->v[i].topic, RD_KAFKA_PARTITION_UA);
    if ((err = rd_kafka_subscribe(rk, topics))) {
        snprintf(errbuf, errlen, "subscribing group %s: %s", group, rd_kafka_err2str(err));
        goto done;
    }
    while (ps.assigned < 0 && cli_now() - t0 < join_timeout_s) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (m)
            rd_kafka_message_destroy(m);
    }
    if (ps.assigned < 0) {
        snprintf(errbuf, errlen,
                 "group %s did not admit this probe within %d s: a member is probably active "
                 "(stop the service first)", group, join_timeout_s);
        goto done;
    }
    if (ps.assigned < nparts_expected) {
        snprintf(errbuf, errlen,
                 "group %s has another active member (this probe was given %d of %d "
                 "partitions): stop the service first", group, ps.assigned, nparts_expected);
        goto done;
    }
    if (commit) {
        offs = rd_kafka_topic_partition_list_new((int)targets->n);
        for (size_t i = 0; i < targets->n; i++)
            rd_kafka_topic_partition_list_add(offs, targets->v[i].topic, targets->v[i].partition)
                ->offset = targets->v[i].position;
        err = rd_kafka_commit(rk, offs, 0);
        for (int i = 0; !err && i < offs->cnt; i++)
            err = offs->elems[i].err;
        if (err) {
            snprintf(errbuf, errlen, "committing offsets for group %s: %s", group,
                     rd_kafka_err2str(err));
            goto done;
        }
    }
    rc = 0;
done:
    if (topics)
        rd_kafka_topic_partition_list_destroy(topics);
    if (offs)
        rd_kafka_topic_partition_list_destroy(offs);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return rc;
}

static int count_partitions(rd_kafka_t *rk, const gpos_list *targets, char *errbuf, size_t errlen)
{
    const struct rd_kafka_metadata *md = NULL;
    int total = 0;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, NULL, &md, KAFKA_TIMEOUT_MS);

    if (err) {
        snprintf(errbuf, errlen, "kafka metadata: %s", rd_kafka_err2str(err));
        return -1;
    }
    for (int t = 0; t < md->topic_cnt; t++) {
        bool used = false;
        for (size_t i = 0; i < targets->n && !used; i++)
            used = strcmp(targets->v[i].topic, md->topics[t].topic) == 0;
        if (used)
            total += md->topics[t].partition_cnt;
    }
    rd_kafka_metadata_destroy(md);
    return total;
}

static void print_rewound(const char *group, const gpos_list *targets)
{
    for (size_t i = 0; i < targets->n; i++)
        printf("%-28s %-18s %4d %12lld -> %lld\n", group, targets->v[i].topic,
               (int)targets->v[i].partition, (long long)targets->v[i].lo,
               (long long)targets->v[i].position);
}

/* The partitions to rewind, with their current positions: the group's own
 * (stored in PostgreSQL, else committed in Kafka), or every partition of
 * ftopic when the group never read it.  *in_pg says whether the positions
 * live in PostgreSQL.  Returns 0 (targets may be empty), or -1 after saying
 * why. */
static int rewind_targets(rc_pg *pg, rd_kafka_t *rk, const char *brokers, const char *group,
                          const char *ftopic, int fpart, gpos_list *targets, bool *in_pg)
{
    char err[1024];
    gpos_list cur = {0}, all = {0};
    int rc = -1;

    *in_pg = false;
    if (pg) {
        if (pg_positions(pg, group, &cur, err, sizeof err) < 0)
            goto failed;
        *in_pg = cur.n > 0;
    }
    if (!*in_pg) {
        if (all_partitions(rk, &all, err, sizeof err) < 0 ||
            kafka_positions(brokers, group, &all, &cur, err, sizeof err) < 0)
            goto failed;
    }
    for (size_t i = 0; i < cur.n; i++)
        if (match_filter(cur.v[i].topic, cur.v[i].partition, ftopic, fpart))
            gpos_add(targets, cur.v[i].topic, cur.v[i].partition, cur.v[i].position);
    if (targets->n == 0 && !*in_pg && ftopic)
        for (size_t i = 0; i < all.n; i++)
            if (match_filter(all.v[i].topic, all.v[i].partition, ftopic, fpart))
                gpos_add(targets, all.v[i].topic, all.v[i].partition, -1);
    rc = 0;
    goto done;
failed:
    fprintf(stderr, "rollcall status: %s\n", err);
done:
    free(cur.v);
    free(all.v);
    return rc;
}

/* The service must be stopped: a running one would overwrite the new
 * positions with its own at its next commit.  Sets *active to what the
 * broker says (1 active, 0 idle, -1 it could not say; then PostgreSQL's
 * sessions decide).  Returns 0 when nothing runs, or -1 after saying why. */
static int refuse_if_running(rd_kafka_t *rk, rc_pg *pg, const char *group, int *active)
{
    char err[1024], who[1024];

    *active = kafka_group_active(rk, group, who, sizeof who);
    if (*active > 0) {
        fprintf(stderr, "rollcall status: refusing to rewind %s: it has active members (%s). "
                        "Stop the service first.\n", group, who);
        return -1;
    }
    if (*active < 0 && pg) {
        int n = pg_active_sessions(pg, group, who, sizeof who, err, sizeof err);
        if (n < 0) {
            fprintf(stderr, "rollcall status: %s\n", err);
            return -1;
        }
        if (n > 0) {
            fprintf(stderr, "rollcall status: refusing to rewind %s: its service is connected to "
                            "PostgreSQL: %s. Stop the service first.\n", group, who);
            return -1;
        }
    }
    return 0;
}

/* Sets each target's new position (the earliest offset held, or to_offset),
 * keeping the old one in .lo for the report.  Refuses an offset outside what
 * the partition holds.  Returns 0, or -1 after saying why. */
static int choose_positions(rd_kafka_t *rk, gpos_list *targets, bool earliest, int64_t to_offset)
{
    for (size_t i = 0; i < targets->n; i++) {
        int64_t lo = -1, hi = -1;
        rd_kafka_resp_err_t kerr = rd_kafka_query_watermark_offsets(
            rk, targets->v[i].topic, targets->v[i].partition, &lo, &hi, KAFKA_TIMEOUT_MS);
        int64_t want = earliest ? lo : to_offset;

        if (kerr) {
            fprintf(stderr, "rollcall status: watermarks of %s[%d]: %s\n", targets->v[i].topic,
                    (int)targets->v[i].partition, rd_kafka_err2str(kerr));
            return -1;
        }
        if (want < lo || want > hi) {
            fprintf(stderr, "rollcall status: refusing: offset %lld is outside what %s[%d] holds "
                            "(%lld..%lld)\n", (long long)want, targets->v[i].topic,
                    (int)targets->v[i].partition, (long long)lo, (long long)hi);
            return -1;
        }
        targets->v[i].lo = targets->v[i].position;   /* the old position, for the report */
        targets->v[i].position = want;
    }
    return 0;
}

/* Writes the targets' new positions to rollcall.consumer_offset in one
 * transaction.  Returns 0, or -1 with err set and nothing changed. */
static int store_pg_positions(rc_pg *pg, const char *group, const gpos_list *targets,
                              char *err, size_t errlen)
{
    if (rc_pg_begin(pg, err, errlen) < 0)
        goto failed;
    for (size_t i = 0; i < targets->n; i++) {
        char part[16], off[24];
        const char *params[4] = {group, targets->v[i].topic, part, off};
        PGresult *res;

        snprintf(part, sizeof part, "%d", (int)targets->v[i].partition);
        snprintf(off, sizeof off, "%lld", (long long)targets->v[i].position);
        res = rc_pg_exec_params(pg,
                                "UPDATE rollcall.consumer_offset SET next_offset = $4::bigint, "
                                "updated_at = now() WHERE consumer_group = $1 AND topic = $2 "
                                "AND partition = $3::int",
                                4, params, err, errlen);
        if (!res)
            goto failed;
        PQclear(res);
    }
    if (rc_pg_commit(pg, err, errlen) < 0)
        goto failed;
    return 0;
failed:
    if (rc_pg_in_transaction(pg))
        rc_pg_rollback(pg, NULL, 0);
    return -1;
}

static int rewind_group(rc_pg *pg, const char *brokers, const char *group, bool earliest,
                        int64_t to_offset, const char *ftopic, int fpart, int join_timeout_s)
{
    char err[1024];
    rd_kafka_t *rk = NULL;
    gpos_list targets = {0};
    bool in_pg = false;
    int active, rc = CLI_FAILED, nparts;

    rk = kafka_handle(brokers, NULL, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "rollcall status: %s\n", err);
        return CLI_FAILED;
    }
    if (rewind_targets(pg, rk, brokers, group, ftopic, fpart, &targets, &in_pg) < 0)
        goto done;
    if (targets.n == 0) {
        fprintf(stderr, "rollcall status: group %s has no position%s%s%s to rewind\n", group,
                ftopic ? " on " : "", ftopic ? ftopic : "",
                fpart >= 0 ? " (that partition)" : "");
        goto done;
    }
    if (refuse_if_running(rk, pg, group, &active) < 0 ||
        choose_positions(rk, &targets, earliest, to_offset) < 0)
        goto done;

    nparts = count_partitions(rk, &targets, err, sizeof err);
    if (nparts < 0) {
        fprintf(stderr, "rollcall status: %s\n", err);
        goto done;
    }
    if (in_pg) {
        /* The broker could not say (or said idle): a short join proves no
         * other member holds the group's partitions before PostgreSQL is
         * changed.  Nothing is committed in Kafka. */
        if (active < 0 &&
            join_and_commit(brokers, group, &targets, nparts, false, join_timeout_s, err,
                            sizeof err) < 0) {
            fprintf(stderr, "rollcall status: refusing to rewind: %s\n", err);
            goto done;
        }
        if (store_pg_positions(pg, group, &targets, err, sizeof err) < 0) {
            fprintf(stderr, "rollcall status: rewind in PostgreSQL failed, nothing changed: %s\n",
                    err);
            goto done;
        }
        print_rewound(group, &targets);
        printf("rewound %zu partition(s) of %s in rollcall.consumer_offset\n", targets.n, group);
    } else {
        if (join_and_commit(brokers, group, &targets, nparts, true, join_timeout_s, err,
                            sizeof err) < 0) {
            fprintf(stderr, "rollcall status: refusing to rewind: %s\n", err);
            goto done;
        }
        print_rewound(group, &targets);
        printf("rewound %zu partition(s) of %s in Kafka\n", targets.n, group);
    }
    rc = CLI_OK;
done:
    free(targets.v);
    rd_kafka_destroy(rk);
    return rc;
}

int cmd_status(int argc, char **argv)
{
    static const struct option opts[] = {
        {"group", required_argument, NULL, 'g'},
        {"rewind", required_argument, NULL, 'r'},
        {"earliest", no_argument, NULL, 'e'},
        {"to-offset", required_argument, NULL, 'o'},
        {"topic", required_argument, NULL, 't'},
        {"partition", required_argument, NULL, 'p'},
        {"join-timeout", required_argument, NULL, 'j'},
        {"brokers", required_argument, NULL, 'b'},
        {"dsn", required_argument, NULL, 'D'},
        {NULL, 0, NULL, 0},
    };
    char groups[MAX_GROUPS][128];
    const char *rewind = NULL, *ftopic = NULL, *dsn = NULL, *brokers_opt = NULL, *brokers;
    bool earliest = false, have_offset = false;
    long long to_offset = -1;
    int ngroups = 0, fpart = -1, join_timeout = 60, c, rc;
    char *end;
    rc_pg *pg = NULL;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'g':
            if (ngroups == MAX_GROUPS)
                return cli_usage_error("status", "too many --group");
            snprintf(groups[ngroups++], 128, "%s", optarg);
            break;
        case 'r': rewind = optarg; break;
        case 'e': earliest = true; break;
        case 'o':
            to_offset = strtoll(optarg, &end, 10);
            if (*end || to_offset < 0)
                return cli_usage_error("status", "--to-offset needs an offset >= 0");
            have_offset = true;
            break;
        case 't': ftopic = optarg; break;
        case 'p':
            fpart = (int)strtol(optarg, &end, 10);
            if (*end || fpart < 0)
                return cli_usage_error("status", "--partition needs a number >= 0");
            break;
        case 'j':
            join_timeout = (int)strtol(optarg, &end, 10);
            if (*end || join_timeout < 1)
                return cli_usage_error("status", "--join-timeout needs seconds >= 1");
            break;
        case 'b': brokers_opt = optarg; break;
        case 'D': dsn = optarg; break;
        default: return cli_usage_error("status", "bad option");
        }
    }
    if (optind < argc)
        return cli_usage_error("status", "unexpected argument '%s'", argv[optind]);
    if (rewind && earliest == have_offset)
        return cli_usage_error("status", "--rewind needs exactly one of --earliest and --to-offset");
    if (!rewind && (earliest || have_offset))
        return cli_usage_error("status", "--earliest/--to-offset only with --rewind GROUP");
    if (fpart >= 0 && !ftopic)
        return cli_usage_error("status", "--partition needs --topic");
    brokers = cli_brokers(brokers_opt);
    if (!brokers) {
        fprintf(stderr, "rollcall status: no Kafka brokers: give --brokers or set "
                        "ROLLCALL_KAFKA_BROKERS\n");
        return CLI_FAILED;
    }
    pg = cli_connect(dsn, "status");
    if (!pg)
        return CLI_FAILED;
    if (rewind)
        rc = rewind_group(pg, brokers, rewind, earliest, to_offset, ftopic, fpart, join_timeout);
    else
        rc = show_status(pg, brokers, groups, ngroups, ftopic, fpart);
    rc_pg_free(pg);
    return rc;
}
