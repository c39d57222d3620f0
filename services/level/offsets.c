/* Consumed offsets in rollcall.consumer_offset: PostgreSQL, not the broker,
 * decides where a restarted level service resumes (the development broker
 * forgets everything when it restarts, and stack.sh then clears the table). */
#include "level.h"
#include "rc_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int level_offsets_assign(rc_pg *pg, rd_kafka_t *rk, const char *group,
                         rd_kafka_topic_partition_list_t *parts, const char *start_from,
                         char *errbuf, size_t errlen)
{
    PGresult *res = NULL;
    int64_t start = strcmp(start_from, "end") == 0 ? RD_KAFKA_OFFSET_END : RD_KAFKA_OFFSET_BEGINNING;
    int rc = -1;

    for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &parts->elems[i];
        char part[16];
        snprintf(part, sizeof part, "%d", (int)tp->partition);
        const char *params[3] = {group, tp->topic, part};
        res = rc_pg_exec_params(pg,
                                "SELECT next_offset FROM rollcall.consumer_offset"
                                " WHERE consumer_group = $1 AND topic = $2 AND partition = $3::int",
                                3, params, errbuf, errlen);
        if (!res)
            goto done;
        tp->offset = PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : start;
        if (PQntuples(res) != 1 && rk) {
            /* A symbolic start would be resolved by librdkafka only after
             * the assignment, and anything produced meanwhile would fall
             * on the wrong side of it: resolve it now. */
            int64_t lo, hi;
            rd_kafka_resp_err_t err =
                rd_kafka_query_watermark_offsets(rk, tp->topic, tp->partition, &lo, &hi, 10000);
            if (err) {
                snprintf(errbuf, errlen, "watermarks of %s [%d]: %s", tp->topic, (int)tp->partition,
                         rd_kafka_err2str(err));
                goto done;
            }
            tp->offset = start == RD_KAFKA_OFFSET_END ? hi : lo;
        }
        rc_debug("partition assigned group=%s topic=%s partition=%d offset=%lld%s", group, tp->topic,
                (int)tp->partition, (long long)tp->offset,
                PQntuples(res) == 1 ? "" : " (never consumed: configured start)");
        PQclear(res);
        res = NULL;
    }
    rc_info("partitions assigned group=%s count=%d (offsets from rollcall.consumer_offset)", group,
            parts->cnt);
    rc = 0;
done:
    PQclear(res);
    return rc;
}

int level_offsets_store(rc_pg *pg, const char *group, const char *topic,
                        const int32_t *partitions, const int64_t *next, size_t n,
                        char *errbuf, size_t errlen)
{
    rc_sqlarr parts, offs;
    const char *params[4];
    PGresult *res = NULL;
    int rc = -1;

    if (n == 0)
        return 0;
    rc_sqlarr_init(&parts);
    rc_sqlarr_init(&offs);
    for (size_t i = 0; i < n; i++) {
        rc_sqlarr_int(&parts, partitions[i]);
        rc_sqlarr_int(&offs, next[i]);
    }
    params[0] = group;
    params[1] = topic;
    params[2] = rc_sqlarr_get(&parts);
    params[3] = rc_sqlarr_get(&offs);
    if (!params[2] || !params[3]) {
        snprintf(errbuf, errlen, "out of memory");
        goto done;
    }
    res = rc_pg_exec_params(pg,
                            "INSERT INTO rollcall.consumer_offset AS o"
                            " (consumer_group, topic, partition, next_offset, updated_at)"
                            " SELECT $1, $2, p, n, now() FROM unnest($3::int[], $4::bigint[]) AS t(p, n)"
                            " ON CONFLICT (consumer_group, topic, partition) DO UPDATE"
                            " SET next_offset = EXCLUDED.next_offset, updated_at = now()"
                            " WHERE o.next_offset < EXCLUDED.next_offset",
                            4, params, errbuf, errlen);
    if (!res)
        goto done;
    rc = 0;
done:
    PQclear(res);
    rc_sqlarr_free(&parts);
    rc_sqlarr_free(&offs);
    return rc;
}
