/* The topic plan of `rollcall topics`: every topic the pipeline uses, with
 * its partition count and retention, as a config table (so the counts come
 * from a file, the environment or flags like any service setting) and as a
 * pure function from those settings to the list of topics to create.  No
 * broker is contacted here; cmd_topics.c does that. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

/* Partition counts follow the development broker's (services/devbroker):
 * reports.village carries every village report of the day, keyed by
 * township, so it has the most; each level above carries fewer, larger
 * messages.  A consumer group can use at most one instance per partition,
 * so these counts are also the ceiling on instances per service. */
const cli_topic_default cli_topic_defaults[CLI_NTOPICS] = {
    {"reports.village", 32, false, "village reports from the intake (rollup reads)"},
    {"reports.urgent", 4, false, "urgent reports, every hop (rollup and level desks)"},
    {"reports.township", 8, false, "filed township reports (rollup reads)"},
    {"reports.county", 4, false, "filed county reports (rollup reads)"},
    {"reports.province", 2, false, "filed province reports (rollup reads)"},
    {"rollups.township", 16, false, "live township aggregates (township desks read)"},
    {"rollups.county", 8, false, "live county aggregates (county desks read)"},
    {"rollups.province", 4, false, "live province aggregates (province desks read)"},
    {"reports.dlq", 4, true, "dead letters with their reason (operators read)"},
    {"reminders", 4, false, "reminders to units that have not reported (notifiers read)"},
    {"escalations", 4, false, "escalations raised by the desks (notifiers read)"},
};

static int topic_index(const char *name)
{
    for (int i = 0; i < CLI_NTOPICS; i++)
        if (strcmp(cli_topic_defaults[i].name, name) == 0)
            return i;
    return -1;
}

int cli_topics_config_items(cli_topics_opts *o, rc_cfg_item *items, size_t cap)
{
    size_t n = 0;

    if (cap < CLI_NTOPICS + 7)
        return -1;
    memset(o, 0, sizeof *o);
    items[n++] = (rc_cfg_item){"kafka_brokers", RC_CFG_STRING, &o->kafka_brokers, NULL, 0, 4096,
                               "Kafka bootstrap list (host:port,...)", 0};
    items[n++] = (rc_cfg_item){"replication_factor", RC_CFG_INT, &o->replication_factor, "-1",
                               -1, 32, "replicas per partition; -1 = the broker's "
                               "default.replication.factor", 0};
    items[n++] = (rc_cfg_item){"retention", RC_CFG_MS, &o->retention_ms, "168h", 3600000,
                               2147483647, "retention.ms of every topic but reports.dlq: "
                               "Kafka is transport, PostgreSQL the record", 0};
    items[n++] = (rc_cfg_item){"dlq_retention", RC_CFG_MS, &o->dlq_retention_ms, "336h",
                               3600000, 2147483647, "retention.ms of reports.dlq", 0};
    items[n++] = (rc_cfg_item){"add_partitions", RC_CFG_BOOL, &o->add_partitions, "no", 0, 0,
                               "create: grow an existing topic that has fewer partitions than "
                               "planned (CreatePartitions); partitions are never removed", 0};
    items[n++] = (rc_cfg_item){"timeout", RC_CFG_MS, &o->timeout_ms, "30s", 1000, 600000,
                               "how long to wait for the broker's answer", 0};
    for (int i = 0; i < CLI_NTOPICS; i++) {
        snprintf(o->keys[i], sizeof o->keys[i], "partitions.%s", cli_topic_defaults[i].name);
        snprintf(o->defs[i], sizeof o->defs[i], "%d", cli_topic_defaults[i].partitions);
        items[n++] = (rc_cfg_item){o->keys[i], RC_CFG_INT, &o->partitions[i], o->defs[i], 1,
                                   10000, cli_topic_defaults[i].help, 0};
    }
    items[n] = (rc_cfg_item){NULL};
    return 0;
}

size_t cli_topics_plan(const cli_topics_opts *o, cli_topic_spec *out, size_t cap)
{
    size_t n = 0;

    for (int i = 0; i < CLI_NTOPICS && n < cap; i++) {
        cli_topic_spec *t = &out[n++];
        memset(t, 0, sizeof *t);
        t->name = cli_topic_defaults[i].name;
        t->partitions = o->partitions[i];
        t->replication_factor = o->replication_factor;
        snprintf(t->retention_ms, sizeof t->retention_ms, "%d",
                 cli_topic_defaults[i].dead_letters ? o->dlq_retention_ms : o->retention_ms);
    }
    return n;
}

int cli_topics_partitions(const cli_topics_opts *o, const char *topic)
{
    int i = topic_index(topic);
    return i < 0 ? -1 : o->partitions[i];
}
