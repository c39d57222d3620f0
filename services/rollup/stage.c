/* The message-to-stage path of the rollup (see stage.h): no session, no
 * Kafka, so that the fuzz harness runs exactly this code. */
#include "stage.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <uuid/uuid.h>

void stage_validate_opts(int max_past_days, rc_validate_opts *village, rc_validate_opts *filed)
{
    rc_validate_opts_default(village);
    village->max_past_days = max_past_days;
    village->max_future_days = 1;
    village->require_report_id = true;
    *filed = *village;
    for (size_t i = 0; i < RC_INDICATORS_MAX; i++)
        filed->max_value[i] = INT64_MAX / 4;
    filed->max_extra_value = INT64_MAX / 4;
}

int stage_check(const Rollcall__Report *r, int topic_level, const char *topic, uint8_t id[16],
                int32_t *day, char *detail, size_t len)
{
    if ((int)r->level != topic_level) {
        snprintf(detail, len, "level %d does not belong on topic %s", (int)r->level, topic);
        return -1;
    }
    if (r->version <= 0) {
        snprintf(detail, len, "version: missing (must be > 0)");
        return -1;
    }
    if (!r->report_id || uuid_parse(r->report_id, id) != 0 || !r->period ||
        rc_period_parse(r->period, day) != 0) {
        snprintf(detail, len, "report_id or period unreadable");
        return -1;
    }
    return 0;
}

/* The extra map as JSON text.  Validated names are snake_case (nothing to
 * escape), at most 64 of at most 63 bytes, with int64 values: 5.6 kB at
 * most, well inside the buffer. */
static void extra_json(const Rollcall__Report *r, char *buf, size_t len)
{
    size_t n = 0;
    n += (size_t)snprintf(buf + n, len - n, "{");
    for (size_t i = 0; i < r->n_extra && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s\"%s\":%" PRId64, i ? "," : "",
                              r->extra[i]->key, r->extra[i]->value);
    if (n < len)
        snprintf(buf + n, len - n, "}");
}

void stage_row(rc_pgcopy *c, const Rollcall__Report *r, const uint8_t id[16], int32_t day,
               const stage_source *src)
{
    const Rollcall__Indicators *ind = r->indicators;

    rc_pgcopy_row(c, ROLLUP_STAGE_FIELDS);
    rc_pgcopy_uuid(c, id);
    rc_pgcopy_text(c, r->unit_code);
    rc_pgcopy_int2(c, (int16_t)r->level);
    rc_pgcopy_date(c, day);
    rc_pgcopy_int2(c, (int16_t)r->kind);
    rc_pgcopy_int8(c, r->version);
    rc_pgcopy_timestamptz(c, src->received_us);
    if (r->submitted_at > 0)
        rc_pgcopy_timestamptz(c, r->submitted_at);
    else
        rc_pgcopy_null(c);
    rc_pgcopy_text(c, r->submitter && r->submitter[0] ? r->submitter : NULL);
    rc_pgcopy_text(c, src->topic);
    rc_pgcopy_int4(c, src->partition);
    rc_pgcopy_int8(c, src->offset);
    rc_pgcopy_bytes(c, src->payload, src->len);
    rc_pgcopy_bool(c, src->late);
    rc_pgcopy_int2(c, (int16_t)r->zone_status);
    for (size_t i = 0; i < rc_indicator_count(); i++)
        rc_pgcopy_int8(c, rc_indicator_get(ind, i));
    if (r->n_extra) {
        char json[8192];
        extra_json(r, json, sizeof json);
        rc_pgcopy_jsonb(c, json, strlen(json));
    } else {
        rc_pgcopy_jsonb(c, "{}", 2);
    }
    rc_pgcopy_bool(c, src->repeat);
}
