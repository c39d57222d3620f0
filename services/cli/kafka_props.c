/* The operator's Kafka settings for the commands that talk to Kafka
 * directly (replay, dlq, status, loadgen): the "kafka.*" lines of the file
 * named by ROLLCALL_CONFIG — the same file and format a service reads, so
 * one file (e.g. /etc/rollcall/ops.conf, or a docker secret) carries
 * kafka.security.protocol and kafka.sasl.* for both.  Other keys in the
 * file belong to the services and are skipped here. */
#include "cli.h"
#include "rc_config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PROPS 64

static char *props[MAX_PROPS];
static size_t nprops;
static bool loaded;

const char *const *cli_kafka_props(size_t *n, char *errbuf, size_t errlen)
{
    const char *path = getenv("ROLLCALL_CONFIG");
    FILE *f;
    char *line = NULL;
    size_t cap = 0;

    *n = 0;
    if (loaded || !path || !*path) {
        *n = nprops;
        return (const char *const *)props;
    }
    if (!(f = fopen(path, "r"))) {
        snprintf(errbuf, errlen, "cannot read %s (from ROLLCALL_CONFIG): %s", path, strerror(errno));
        return NULL;
    }
    while (getline(&line, &cap, f) >= 0) {
        char *key = rc_config_trim(line), *eq, *val;
        size_t vl;
        if (strncmp(key, "kafka.", 6) != 0 || !(eq = strchr(key, '=')))
            continue;
        *eq = '\0';
        key = rc_config_trim(key) + 6;
        val = rc_config_trim(eq + 1);
        vl = strlen(val);
        if (vl >= 2 && val[0] == '"' && val[vl - 1] == '"') {
            val[vl - 1] = '\0';
            val++;
        }
        if (nprops == MAX_PROPS || asprintf(&props[nprops], "%s=%s", key, val) < 0) {
            snprintf(errbuf, errlen, "%s: too many kafka.* settings (at most %d)", path, MAX_PROPS);
            free(line);
            fclose(f);
            return NULL;
        }
        nprops++;
    }
    free(line);
    fclose(f);
    loaded = true;
    *n = nprops;
    return (const char *const *)props;
}

rd_kafka_conf_t *cli_kafka_conf(const char *brokers, char *errbuf, size_t errlen)
{
    size_t n;
    const char *const *p = cli_kafka_props(&n, errbuf, errlen);
    return p ? rc_kafka_conf_new(brokers, p, n, errbuf, errlen) : NULL;
}
