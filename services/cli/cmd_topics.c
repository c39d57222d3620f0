/* rollcall topics — prints the topic plan, or creates every topic the
 * pipeline uses on any Kafka through librdkafka's Admin API (CreateTopics,
 * and CreatePartitions to grow one).  Creating is idempotent: a topic that
 * exists is reported with its partition count and left alone. */
#include "cli.h"
#include "rc_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PLAN_CAP 16

static void print_plan(const cli_topic_spec *plan, size_t n)
{
    printf("%-18s %10s %12s %14s\n", "topic", "partitions", "replication", "retention.ms");
    for (size_t i = 0; i < n; i++) {
        char rf[16];
        if (plan[i].replication_factor < 0)
            snprintf(rf, sizeof rf, "default");
        else
            snprintf(rf, sizeof rf, "%d", plan[i].replication_factor);
        printf("%-18s %10d %12s %14s\n", plan[i].name, plan[i].partitions, rf,
               plan[i].retention_ms);
    }
}

/* Why a whole admin request failed, in the operator's words.  The
 * development broker (librdkafka's mock cluster) does not implement
 * CreateTopics; librdkafka then refuses the request locally. */
static void explain_request_error(const char *what, rd_kafka_resp_err_t err, const char *msg,
                                  const char *brokers)
{
    fprintf(stderr, "rollcall topics: %s failed: %s (%s)\n", what, msg ? msg : rd_kafka_err2str(err),
            rd_kafka_err2name(err));
    if (err == RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE ||
        err == RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION)
        fprintf(stderr, "rollcall topics: the broker at %s does not support %s.  The development\n"
                        "broker (rollcall-devbroker) cannot create topics: it creates the pipeline's\n"
                        "topics itself at start (--topic NAME:PARTITIONS adds more).  Use this command\n"
                        "against Apache Kafka.\n", brokers, what);
    else if (err == RD_KAFKA_RESP_ERR__TIMED_OUT || err == RD_KAFKA_RESP_ERR__TRANSPORT)
        fprintf(stderr, "rollcall topics: no answer from %s: is kafka_brokers right, and do\n"
                        "kafka.security.protocol / kafka.sasl.* match the broker's listener?\n",
                brokers);
}

/* Waits for the result event of one admin request.  Returns the event (the
 * caller destroys it) or NULL after printing why. */
static rd_kafka_event_t *wait_result(rd_kafka_queue_t *q, int timeout_ms, const char *what,
                                     const char *brokers)
{
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms + 2000);

    if (!ev) {
        explain_request_error(what, RD_KAFKA_RESP_ERR__TIMED_OUT, NULL, brokers);
        return NULL;
    }
    if (rd_kafka_event_error(ev)) {
        explain_request_error(what, rd_kafka_event_error(ev), rd_kafka_event_error_string(ev),
                              brokers);
        rd_kafka_event_destroy(ev);
        return NULL;
    }
    return ev;
}

/* Admin requests go to the controller.  librdkafka waits for one until the
 * request times out, so a cluster that names none — the development broker
 * (librdkafka's mock cluster) names none and does not implement CreateTopics
 * — would cost the whole timeout and end in "Timed out".  Asking first
 * gives each case its own clear answer.  Returns 0, or -1 after printing
 * why. */
static int check_broker(rd_kafka_t *rk, const cli_topics_opts *o)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, NULL, &md, o->timeout_ms);

    if (err) {
        explain_request_error("Metadata", err, NULL, o->kafka_brokers);
        return -1;
    }
    /* The mock cluster names controller 0 while numbering its brokers from
     * 1: a controller that is not one of the brokers is none. */
    int32_t controller = rd_kafka_controllerid(rk, 2000);
    bool listed = false;
    for (int i = 0; i < md->broker_cnt; i++)
        listed = listed || md->brokers[i].id == controller;
    rd_kafka_metadata_destroy(md);
    if (!listed) {
        char why[128];
        snprintf(why, sizeof why, "the cluster names no broker as its controller (controller id %d)",
                 (int)controller);
        explain_request_error("CreateTopics", RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE, why,
                              o->kafka_brokers);
        return -1;
    }
    return 0;
}

/* Partition count of `topic` in the cluster's metadata, -1 if absent. */
static int partitions_of(const struct rd_kafka_metadata *md, const char *topic)
{
    for (int i = 0; md && i < md->topic_cnt; i++)
        if (strcmp(md->topics[i].topic, topic) == 0 && !md->topics[i].err)
            return md->topics[i].partition_cnt;
    return -1;
}

/* One NewTopic per planned topic, with the configuration every topic gets.
 * Returns 0, or -1 after saying why (what was made is in nt, for the
 * caller to destroy). */
static int new_topics(const cli_topic_spec *plan, size_t n, rd_kafka_NewTopic_t **nt)
{
    char why[512];

    for (size_t i = 0; i < n; i++) {
        nt[i] = rd_kafka_NewTopic_new(plan[i].name, plan[i].partitions,
                                      plan[i].replication_factor, why, sizeof why);
        if (!nt[i]) {
            fprintf(stderr, "rollcall topics: topic %s: %s\n", plan[i].name, why);
            return -1;
        }
        /* Kafka is the transport, never the record: bounded retention,
         * deletion (not compaction), the producer's lz4 kept as sent. */
        if (rd_kafka_NewTopic_set_config(nt[i], "retention.ms", plan[i].retention_ms) ||
            rd_kafka_NewTopic_set_config(nt[i], "cleanup.policy", "delete") ||
            rd_kafka_NewTopic_set_config(nt[i], "compression.type", "producer")) {
            fprintf(stderr, "rollcall topics: topic %s: cannot set its configuration\n",
                    plan[i].name);
            return -1;
        }
    }
    return 0;
}

typedef struct {
    int created, exists, failed;
} topic_counts;

/* Prints the outcome of CreateTopics topic by topic and counts it; the
 * names of those that already existed go to existing (borrowed from ev). */
static void report_created(rd_kafka_event_t *ev, const cli_topics_opts *o, const char **existing,
                           size_t *nexisting, topic_counts *c)
{
    size_t nres;
    const rd_kafka_topic_result_t **res =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &nres);

    for (size_t i = 0; i < nres; i++) {
        const char *name = rd_kafka_topic_result_name(res[i]);
        rd_kafka_resp_err_t err = rd_kafka_topic_result_error(res[i]);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            printf("created  %-18s partitions=%d\n", name, cli_topics_partitions(o, name));
            c->created++;
        } else if (err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
            existing[(*nexisting)++] = name;
            c->exists++;
        } else {
            const char *msg = rd_kafka_topic_result_error_string(res[i]);
            printf("FAILED   %-18s %s: %s\n", name, rd_kafka_err2name(err),
                   msg ? msg : rd_kafka_err2str(err));
            if (err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
                err == RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED)
                printf("         the principal needs CREATE on the cluster or the topic "
                       "(kafka-acls --operation Create)\n");
            c->failed++;
        }
    }
}

/* An existing topic is left as it is, but one with fewer partitions than
 * planned caps the instances of its consumers: say so, and (when asked)
 * add a NewPartitions for it to np.  Returns how many were added. */
static size_t check_existing(rd_kafka_t *rk, const cli_topics_opts *o, const char **existing,
                             size_t nexisting, rd_kafka_NewPartitions_t **np, topic_counts *c)
{
    const struct rd_kafka_metadata *md = NULL;
    size_t ngrow = 0;
    char why[512];

    if (nexisting > 0) {
        rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, NULL, &md, o->timeout_ms);
        if (err) {
            fprintf(stderr, "rollcall topics: metadata: %s\n", rd_kafka_err2str(err));
            c->failed++;
        }
    }
    for (size_t i = 0; i < nexisting; i++) {
        int have = partitions_of(md, existing[i]), want = cli_topics_partitions(o, existing[i]);
        printf("exists   %-18s partitions=%d", existing[i], have);
        if (have >= 0 && have < want) {
            if (o->add_partitions) {
                np[ngrow] = rd_kafka_NewPartitions_new(existing[i], (size_t)want, why, sizeof why);
                if (np[ngrow])
                    ngrow++;
                printf(" (growing to %d)\n", want);
            } else {
                printf(" (plan says %d: --add_partitions grows it)\n", want);
            }
        } else {
            if (have > want)
                printf(" (more than the plan's %d; partitions are never removed)", want);
            printf("\n");
        }
    }
    if (md)
        rd_kafka_metadata_destroy(md);
    return ngrow;
}

/* Grows the short topics and prints each outcome, counting failures.
 * Returns 0, or -1 when no answer came. */
static int grow_partitions(rd_kafka_t *rk, rd_kafka_queue_t *q, const cli_topics_opts *o,
                           rd_kafka_NewPartitions_t **np, size_t ngrow, topic_counts *c)
{
    rd_kafka_AdminOptions_t *opts;
    rd_kafka_event_t *ev;
    char why[512];
    size_t nres;

    opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATEPARTITIONS);
    rd_kafka_AdminOptions_set_request_timeout(opts, o->timeout_ms, why, sizeof why);
    rd_kafka_CreatePartitions(rk, np, ngrow, opts, q);
    ev = wait_result(q, o->timeout_ms, "CreatePartitions", o->kafka_brokers);
    rd_kafka_AdminOptions_destroy(opts);
    if (!ev)
        return -1;
    const rd_kafka_topic_result_t **gr =
        rd_kafka_CreatePartitions_result_topics(rd_kafka_event_CreatePartitions_result(ev), &nres);
    for (size_t i = 0; i < nres; i++) {
        rd_kafka_resp_err_t err = rd_kafka_topic_result_error(gr[i]);
        if (err) {
            printf("FAILED   %-18s grow: %s\n", rd_kafka_topic_result_name(gr[i]),
                   rd_kafka_topic_result_error_string(gr[i]));
            c->failed++;
        } else {
            printf("grown    %-18s partitions=%d\n", rd_kafka_topic_result_name(gr[i]),
                   cli_topics_partitions(o, rd_kafka_topic_result_name(gr[i])));
        }
    }
    rd_kafka_event_destroy(ev);
    return 0;
}

static int create(rd_kafka_t *rk, const cli_topics_opts *o, const cli_topic_spec *plan, size_t n)
{
    rd_kafka_NewTopic_t *nt[PLAN_CAP] = {0};
    rd_kafka_NewPartitions_t *np[PLAN_CAP] = {0};
    rd_kafka_AdminOptions_t *opts = NULL;
    rd_kafka_queue_t *q = NULL;
    rd_kafka_event_t *ev = NULL;
    const char *existing[PLAN_CAP];
    size_t nexisting = 0, ngrow = 0;
    topic_counts c = {0, 0, 0};
    int rc = CLI_FAILED;
    char why[512];

    q = rd_kafka_queue_new(rk);
    opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    if (rd_kafka_AdminOptions_set_request_timeout(opts, o->timeout_ms, why, sizeof why) ||
        rd_kafka_AdminOptions_set_operation_timeout(opts, o->timeout_ms, why, sizeof why)) {
        fprintf(stderr, "rollcall topics: %s\n", why);
        goto done;
    }
    if (new_topics(plan, n, nt) < 0)
        goto done;
    rd_kafka_CreateTopics(rk, nt, n, opts, q);
    if (!(ev = wait_result(q, o->timeout_ms, "CreateTopics", o->kafka_brokers)))
        goto done;
    report_created(ev, o, existing, &nexisting, &c);
    ngrow = check_existing(rk, o, existing, nexisting, np, &c);
    if (ngrow > 0 && grow_partitions(rk, q, o, np, ngrow, &c) < 0)
        goto done;
    printf("topics: %d created, %d already existed, %d failed\n", c.created, c.exists, c.failed);
    if (c.failed == 0)
        rc = CLI_OK;
done:
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_NewTopic_destroy_array(nt, n);
    rd_kafka_NewPartitions_destroy_array(np, ngrow);
    if (opts)
        rd_kafka_AdminOptions_destroy(opts);
    if (q)
        rd_kafka_queue_destroy(q);
    return rc;
}

int cmd_topics(int argc, char **argv)
{
    cli_topics_opts o;
    rc_cfg_item items[CLI_NTOPICS + 8];
    cli_topic_spec plan[PLAN_CAP];
    rc_config *cfg = NULL;
    rd_kafka_conf_t *conf = NULL;
    rd_kafka_t *rk = NULL;
    char err[512];
    char *const *args;
    size_t nargs, n, nprops;
    int rc = CLI_FAILED;

    if (cli_topics_config_items(&o, items, sizeof items / sizeof items[0]) < 0)
        return CLI_FAILED;
    cfg = rc_config_load(items, argc, argv, err, sizeof err);
    if (!cfg)
        return cli_usage_error("topics", "%s", err);
    args = rc_config_args(cfg, &nargs);
    if (nargs != 1 || (strcmp(args[0], "plan") != 0 && strcmp(args[0], "create") != 0)) {
        rc = cli_usage_error("topics", "expected the subcommand 'plan' or 'create'");
        goto done;
    }
    n = cli_topics_plan(&o, plan, PLAN_CAP);
    if (strcmp(args[0], "plan") == 0) {
        print_plan(plan, n);
        rc = CLI_OK;
        goto done;
    }
    if (!o.kafka_brokers || !*o.kafka_brokers) {
        rc = cli_usage_error("topics", "no Kafka brokers: give --kafka_brokers or set "
                                       "ROLLCALL_KAFKA_BROKERS");
        goto done;
    }
    const char *const *props = rc_config_kafka_props(cfg, &nprops);
    if (!(conf = rc_kafka_conf_new(o.kafka_brokers, props, nprops, err, sizeof err))) {
        fprintf(stderr, "rollcall topics: %s\n", err);
        goto done;
    }
    rd_kafka_conf_set(conf, "client.id", "rollcall-topics", NULL, 0);
    if (!(rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err))) {
        fprintf(stderr, "rollcall topics: %s\n", err);
        goto done;
    }
    conf = NULL; /* rd_kafka_new took ownership */
    if (check_broker(rk, &o) < 0)
        goto done;
    rc = create(rk, &o, plan, n);
done:
    if (conf)
        rd_kafka_conf_destroy(conf);
    if (rk)
        rd_kafka_destroy(rk);
    rc_config_free(cfg);
    return rc;
}
