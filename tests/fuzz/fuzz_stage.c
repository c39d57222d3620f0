/* libFuzzer harness: the rollup's message-to-stage path, built from the
 * rollup's own sources (services/rollup/stage.c): a consumed payload
 * decoded, validated with the rollup's bounds for the level it names,
 * checked for the stage and written as a binary COPY row of rollup_stage;
 * then the row read back as PostgreSQL reads it.  What passes the checks
 * must be storable: 49 fields whose lengths add up to the row, text that
 * is UTF-8, an extra map whose JSON parses with every key in it. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rc_dlq.h"
#include "rc_time.h"
#include "stage.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t be32(const char *p)
{
    const uint8_t *u = (const uint8_t *)p;
    return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

/* Reads one row back (rc_pgcopy's layout: int16 field count, then per
 * field int32 length, -1 for NULL, and the bytes); aborts on anything
 * PostgreSQL would refuse. */
static void read_back(const char *buf, size_t len, const Rollcall__Report *r)
{
    const size_t text_fields[] = {1, 8, 9};     /* unit_code, submitter, topic */
    const size_t extra_field = 15 + rc_indicator_count();
    size_t off = 2;

    if (len < 2 || (((uint8_t)buf[0] << 8) | (uint8_t)buf[1]) != ROLLUP_STAGE_FIELDS)
        abort();
    for (size_t f = 0; f < ROLLUP_STAGE_FIELDS; f++) {
        if (off + 4 > len)
            abort();
        int32_t n = (int32_t)be32(buf + off);
        off += 4;
        if (n == -1)
            continue;
        if (n < 0 || (size_t)n > len - off)
            abort();
        for (size_t t = 0; t < sizeof text_fields / sizeof text_fields[0]; t++)
            if (f == text_fields[t] && !rc_utf8_valid(buf + off, (size_t)n))
                abort();
        if (f == extra_field) {
            json_t *o = n >= 1 && buf[off] == 1 ? json_loadb(buf + off + 1, (size_t)n - 1, 0, NULL)
                                                : NULL;
            if (!json_is_object(o) || json_object_size(o) != r->n_extra)
                abort();
            json_decref(o);
        }
        off += (size_t)n;
    }
    if (off != len)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rc_errors errs = {0};
    rc_validate_opts village, filed;
    uint8_t id[16];
    int32_t day;
    char detail[400];
    rc_pgcopy c;
    Rollcall__Report *r = rc_report_unpack(data, size, &errs);

    if (!r)
        return 0;
    /* every period since 1970 passes, so that the corpus never ages */
    stage_validate_opts(36500, &village, &filed);
    int level = r->level >= 1 && r->level <= 5 ? (int)r->level : 1;
    rc_validate_opts *opts = level == ROLLCALL__LEVEL__LEVEL_VILLAGE ? &village : &filed;
    if (rc_report_validate(r, opts, NULL, &errs) < 0 ||
        stage_check(r, level, "reports.village", id, &day, detail, sizeof detail) < 0) {
        rc_report_free(r);
        return 0;
    }
    stage_source src = {"reports.village", 3, 42, data, size, r->received_at, false, false};
    rc_pgcopy_init(&c);
    stage_row(&c, r, id, day, &src);
    if (c.failed)
        abort();
    read_back(c.buf, c.len, r);
    rc_pgcopy_release(&c);
    rc_report_free(r);
    return 0;
}
