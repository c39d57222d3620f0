/* Unit tests for rc_report and rc_time: a descriptor-driven round trip
 * (JSON -> protobuf -> bytes -> protobuf -> JSON) over every field of every
 * message, enum and timestamp spellings, JSON type errors, undecodable
 * bytes, and each validation rule against its near miss. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rc_registry.h"
#include "rc_report.h"
#include "rc_time.h"

/* ---- helpers ---- */

static int64_t ts(const char *s)
{
    int64_t us = 0;

    if (rc_time_parse_rfc3339(s, &us) != 0)
        fail_msg("bad timestamp in test: %s", s);
    return us;
}

static bool has_error(const rc_errors *e, const char *field, const char *reason_part)
{
    for (size_t i = 0; i < e->n && i < RC_ERRORS_MAX; i++)
        if (strcmp(e->e[i].field, field) == 0 &&
            (!reason_part || strstr(e->e[i].reason, reason_part)))
            return true;
    return false;
}

static void dump_errors(const rc_errors *e)
{
    char buf[2048];

    rc_errors_format(e, buf, sizeof buf);
    print_message("errors: %s\n", buf);
}

#define assert_error(errs, field, part) do { \
        if (!has_error((errs), (field), (part))) { dump_errors(errs); \
            fail_msg("expected error on %s (%s)", (field), (part) ? (part) : ""); } \
    } while (0)

/* ---- time ---- */

static void test_time(void **state)
{
    int32_t d = -1;
    int64_t us;
    char out[40], per[11];

    (void)state;
    assert_int_equal(rc_period_parse("1970-01-01", &d), 0);
    assert_int_equal(d, 0);
    assert_int_equal(rc_period_parse("2021-08-01", &d), 0);
    assert_int_equal(d, 18840);
    rc_period_format(d, per);
    assert_string_equal(per, "2021-08-01");
    assert_int_equal(rc_period_parse("2020-02-29", &d), 0);
    assert_int_equal(rc_period_parse("2000-02-29", &d), 0);
    d = 7;
    assert_int_equal(rc_period_parse("2021-02-29", &d), -1);
    assert_int_equal(rc_period_parse("1900-02-29", &d), -1);
    assert_int_equal(rc_period_parse("2021-04-31", &d), -1);
    assert_int_equal(rc_period_parse("2021-13-01", &d), -1);
    assert_int_equal(rc_period_parse("2021-8-01", &d), -1);
    assert_int_equal(rc_period_parse("2021-08-01 ", &d), -1);
    assert_int_equal(rc_period_parse("2021/08/01", &d), -1);
    assert_int_equal(rc_period_parse("", &d), -1);
    assert_int_equal(d, 7);   /* unchanged on failure */
    rc_period_format(-1, per);
    assert_string_equal(per, "1969-12-31");

    us = ts("2021-08-01T09:30:00+08:00");
    assert_true(us == 1627781400LL * 1000000);
    assert_true(ts("2021-08-01T01:30:00Z") == us);
    assert_true(ts("2021-08-01T01:30:00z") == us);
    assert_true(ts("2021-07-31T20:30:00-05:00") == us);
    assert_true(ts("2021-08-01T01:30:00.5Z") == us + 500000);
    assert_true(ts("2021-08-01T01:30:00.123456789Z") == us + 123456);
    rc_time_format_rfc3339(us, out);
    assert_string_equal(out, "2021-08-01T09:30:00+08:00");
    rc_time_format_rfc3339(us + 42, out);
    assert_string_equal(out, "2021-08-01T09:30:00.000042+08:00");
    rc_time_format_rfc3339(-1, out);
    assert_string_equal(out, "1970-01-01T07:59:59.999999+08:00");
    assert_true(ts(out) == -1);
    assert_int_equal(rc_time_parse_rfc3339("2021-08-01 09:30:00+08:00", &us), -1);
    assert_int_equal(rc_time_parse_rfc3339("2021-08-01T09:30:00", &us), -1);
    assert_int_equal(rc_time_parse_rfc3339("2021-08-01T24:00:00Z", &us), -1);
    assert_int_equal(rc_time_parse_rfc3339("2021-08-01T09:30:00.Z", &us), -1);
    assert_int_equal(rc_time_parse_rfc3339("2021-08-01T09:30:00+0800", &us), -1);
    assert_int_equal(rc_time_parse_rfc3339("2021-08-01T09:30:00Zjunk", &us), -1);

    /* the Asia/Shanghai day turns at 16:00 UTC */
    assert_int_equal(rc_period_of(ts("2021-07-31T16:00:00Z")), 18840);
    assert_int_equal(rc_period_of(ts("2021-07-31T15:59:59.999999Z")), 18839);
    assert_int_equal(rc_period_of(ts("1969-12-31T20:00:00Z")), 0);
    assert_int_equal(rc_period_of(ts("1969-12-31T15:59:59Z")), -1);

    {
        char id[37];

        rc_uuid_new(id);
        assert_int_equal(strlen(id), 36);
        assert_true(rc_uuid_valid(id));
    }
    assert_true(rc_uuid_valid("0b7e2c1a-58f4-4e0e-9d1c-2b8f0c7a9e11"));
    assert_false(rc_uuid_valid("0B7E2C1A-58F4-4E0E-9D1C-2B8F0C7A9E11"));
    assert_false(rc_uuid_valid("0b7e2c1a58f44e0e9d1c2b8f0c7a9e11"));
    assert_false(rc_uuid_valid("0b7e2c1a-58f4-4e0e-9d1c-2b8f0c7a9e1"));
    assert_false(rc_uuid_valid("0b7e2c1a-58f4-4e0e-9d1c-2b8f0c7a9e111"));
    assert_false(rc_uuid_valid("0b7e2c1a-58f4-4e0e-9d1c-2b8f0c7a9e1g"));
    assert_false(rc_uuid_valid(NULL));
}

/* ---- round trip over every field ---- */

static json_t *sample_message(const ProtobufCMessageDescriptor *d, int depth, size_t *nfields);

static bool is_ts_field(const ProtobufCFieldDescriptor *f)
{
    size_t n = strlen(f->name);

    return f->type == PROTOBUF_C_TYPE_INT64 &&
           (strcmp(f->name, "at") == 0 || (n > 3 && strcmp(f->name + n - 3, "_at") == 0));
}

/* A non-default JSON value for one element of field f, distinct per field
 * and element so that a swapped or dropped value shows. */
static json_t *sample_value(const ProtobufCFieldDescriptor *f, int k, int depth, size_t *nfields)
{
    char buf[80];

    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
        return json_integer(100 * depth + (int)f->id + k);
    case PROTOBUF_C_TYPE_INT64:
        if (is_ts_field(f)) {
            rc_time_format_rfc3339(ts("2021-08-01T09:30:00+08:00") + f->id * 1000001LL +
                                   depth * 1000 + k, buf);
            return json_string(buf);
        }
        return json_integer(1000000000000LL + 1000 * depth + f->id + k);
    case PROTOBUF_C_TYPE_BOOL:
        return json_true();
    case PROTOBUF_C_TYPE_STRING:
        snprintf(buf, sizeof buf, "%s-%d 值", f->name, k);
        return json_string(buf);
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumDescriptor *e = f->descriptor;
        const char *name = e->values[e->n_values - 1 - (size_t)k % (e->n_values - 1)].name;
        const char *us = name;
        char low[64];
        size_t i = 0;

        /* strip the prefix (everything up to the part that names the value)
         * the way the JSON rules do: LEVEL_VILLAGE -> village */
        for (const char *p = e->short_name; *p; p++)
            us += (p != e->short_name && *p >= 'A' && *p <= 'Z') ? 2 : 1;
        us += 1;
        for (; *us && i + 1 < sizeof low; us++)
            low[i++] = (char)(*us >= 'A' && *us <= 'Z' ? *us + 32 : *us);
        low[i] = '\0';
        return json_string(low);
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        return sample_message(f->descriptor, depth + 1 + 10 * k, nfields);
    default:
        fail_msg("field %s: type %d has no sample; extend the test", f->name, f->type);
        return NULL;
    }
}

static json_t *sample_message(const ProtobufCMessageDescriptor *d, int depth, size_t *nfields)
{
    json_t *o = json_object();

    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        json_t *v;

        (*nfields)++;
        if (f->label == PROTOBUF_C_LABEL_REPEATED && f->type == PROTOBUF_C_TYPE_MESSAGE &&
            strstr(((const ProtobufCMessageDescriptor *)f->descriptor)->short_name, "Entry")) {
            const ProtobufCMessageDescriptor *ed = f->descriptor;

            v = json_object();
            json_object_set_new(v, "my_indicator", sample_value(&ed->fields[1], 0, depth, nfields));
            json_object_set_new(v, "another_one", sample_value(&ed->fields[1], 1, depth, nfields));
        } else if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            v = json_array();
            json_array_append_new(v, sample_value(f, 0, depth, nfields));
            json_array_append_new(v, sample_value(f, 1, depth, nfields));
        } else {
            v = sample_value(f, 0, depth, nfields);
        }
        json_object_set_new(o, f->name, v);
    }
    return o;
}

static void test_round_trip_every_field(void **state)
{
    size_t nfields = 0, len = 0;
    json_t *in = sample_message(&rollcall__report__descriptor, 0, &nfields), *out;
    rc_errors errs = {0};
    Rollcall__Report *r, *r2;
    uint8_t *bytes;
    char *text;

    (void)state;
    assert_true(nfields > 16 + 32 + 9);   /* the walk reached the nested messages */
    r = rc_report_from_json(in, &errs);
    if (!r) {
        dump_errors(&errs);
        fail();
    }
    /* spot checks against the protobuf side */
    assert_int_equal(r->level, ROLLCALL__LEVEL__LEVEL_PROVINCE);
    assert_int_equal(r->n_extra, 2);
    assert_string_equal(r->extra[0]->key, "my_indicator");
    assert_int_equal(r->incident->n_hops, 2);
    assert_true(r->submitted_at == ts("2021-08-01T09:30:00+08:00") + 7 * 1000001LL);
    /* incident is at depth 1, its second hop at 1 + 1 + 10 */
    assert_true(r->incident->hops[0]->at == ts("2021-08-01T09:30:00+08:00") + 3 * 1000001LL + 2000);
    assert_true(r->incident->hops[1]->at == ts("2021-08-01T09:30:00+08:00") + 3 * 1000001LL + 12000);
    assert_true(r->indicators->disinfectant_kg == 1000000001032LL);
    assert_int_equal(r->completeness->n_missing, 2);
    assert_true(r->revised);

    bytes = rc_report_pack(r, &len);
    assert_non_null(bytes);
    r2 = rc_report_unpack(bytes, len, &errs);
    assert_non_null(r2);
    out = rc_report_to_json(r2);
    if (!json_equal(in, out)) {
        char *a = json_dumps(in, JSON_SORT_KEYS), *b = json_dumps(out, JSON_SORT_KEYS);

        print_message("in:  %s\nout: %s\n", a, b);
        free(a);
        free(b);
        fail_msg("round trip changed the report");
    }
    /* the text form decodes to the same bytes */
    text = rc_report_to_json_text(r2);
    {
        Rollcall__Report *r3 = rc_report_from_json_text(text, strlen(text), &errs);
        size_t len3;
        uint8_t *bytes3;

        assert_non_null(r3);
        bytes3 = rc_report_pack(r3, &len3);
        assert_int_equal(len3, len);
        assert_memory_equal(bytes3, bytes, len);
        free(bytes3);
        rc_report_free(r3);
    }
    assert_int_equal(errs.n, 0);
    free(text);
    json_decref(out);
    json_decref(in);
    free(bytes);
    rc_report_free(r);
    rc_report_free(r2);
    rc_report_free(NULL);
}

static void test_defaults_and_whole_indicators(void **state)
{
    const char *text = "{\"unit_code\":\"130102001001\",\"level\":\"village\",\"period\":\"2021-08-01\","
                       "\"kind\":\"ZERO\",\"indicators\":{},\"report_id\":null}";
    rc_errors errs = {0};
    Rollcall__Report *r;
    json_t *out, *ind;

    (void)state;
    /* "ZERO" is neither spelling: rejected, and the message lists the choices */
    assert_null(rc_report_from_json_text(text, strlen(text), &errs));
    assert_error(&errs, "kind", "daily, zero, urgent");
    errs.n = 0;
    text = "{\"unit_code\":\"130102001001\",\"level\":\"LEVEL_VILLAGE\",\"period\":\"2021-08-01\","
           "\"kind\":\"KIND_ZERO\",\"indicators\":{},\"completeness\":{},\"zone_status\":\"lockdown\","
           "\"report_id\":null}";
    r = rc_report_from_json_text(text, strlen(text), &errs);
    assert_non_null(r);
    assert_int_equal(r->level, ROLLCALL__LEVEL__LEVEL_VILLAGE);
    assert_int_equal(r->kind, ROLLCALL__KIND__KIND_ZERO);
    assert_int_equal(r->zone_status, ROLLCALL__ZONE_STATUS__ZONE_STATUS_LOCKDOWN);
    assert_string_equal(r->report_id, "");
    out = rc_report_to_json(r);
    assert_string_equal(json_string_value(json_object_get(out, "kind")), "zero");
    assert_string_equal(json_string_value(json_object_get(out, "level")), "village");
    assert_null(json_object_get(out, "report_id"));      /* empty: omitted */
    assert_null(json_object_get(out, "version"));        /* zero: omitted */
    assert_null(json_object_get(out, "incident"));
    assert_null(json_object_get(out, "extra"));
    ind = json_object_get(out, "indicators");
    assert_int_equal(json_object_size(ind), rc_indicator_count());   /* whole, zeros included */
    assert_int_equal(json_integer_value(json_object_get(ind, "masks")), 0);
    assert_non_null(json_object_get(json_object_get(out, "completeness"), "expected"));
    assert_true(json_is_array(json_object_get(json_object_get(out, "completeness"), "missing")));
    json_decref(out);
    rc_report_free(r);

    /* without indicators there is no indicators object */
    text = "{\"unit_code\":\"13\"}";
    r = rc_report_from_json_text(text, strlen(text), &errs);
    out = rc_report_to_json(r);
    assert_null(json_object_get(out, "indicators"));
    assert_int_equal(json_object_size(out), 1);
    json_decref(out);
    rc_report_free(r);
}

static void expect_json_error(const char *text, const char *field, const char *part)
{
    rc_errors errs = {0};
    Rollcall__Report *r = rc_report_from_json_text(text, strlen(text), &errs);

    if (r) {
        rc_report_free(r);
        fail_msg("accepted: %s", text);
    }
    assert_error(&errs, field, part);
}

static void test_json_errors(void **state)
{
    rc_errors errs = {0};
    Rollcall__Report *r;
    const char *many;

    (void)state;
    expect_json_error("{\"unit_code\": 12}", "unit_code", "must be a string");
    expect_json_error("{\"indicators\": {\"confirmed\": 1.5}}", "indicators.confirmed", "integer");
    expect_json_error("{\"indicators\": {\"confirmed\": 2.0}}", "indicators.confirmed", "integer");
    expect_json_error("{\"indicators\": {\"confirmed\": \"3\"}}", "indicators.confirmed", "integer");
    expect_json_error("{\"indicators\": {\"confirmd\": 3}}", "indicators.confirmd", "unknown field");
    expect_json_error("{\"indicators\": [1]}", "indicators", "object");
    expect_json_error("{\"bogus\": 1}", "bogus", "unknown field");
    expect_json_error("{\"level\": \"town\"}", "level", "must be one of village, township");
    expect_json_error("{\"level\": 1}", "level", "must be one of");
    expect_json_error("{\"zone_status\": \"Lockdown\"}", "zone_status", "lockdown");
    expect_json_error("{\"submitted_at\": 1627781400000000}", "submitted_at", "RFC 3339");
    expect_json_error("{\"received_at\": \"2021-08-01\"}", "received_at", "RFC 3339");
    expect_json_error("{\"incident\": {\"hops\": [{\"at\": \"2021-08-01T09:30:00Z\"}, {\"at\": \"x\"}]}}",
                      "incident.hops[1].at", "RFC 3339");
    expect_json_error("{\"incident\": {\"hops\": {}}}", "incident.hops", "array");
    expect_json_error("{\"incident\": {\"severity\": 3000000000}}", "incident.severity", "range");
    expect_json_error("{\"completeness\": {\"missing\": [\"1\", 2]}}", "completeness.missing[1]",
                      "string");
    expect_json_error("{\"extra\": {\"my_indicator\": \"b\"}}", "extra.my_indicator", "integer");
    expect_json_error("{\"extra\": [1]}", "extra", "object");
    expect_json_error("{\"revised\": 1}", "revised", "true or false");
    expect_json_error("{\"version\": 99999999999999999999}", "", "line 1");
    expect_json_error("{\"unit_code\": \"1\",}", "", "line 1 column");
    expect_json_error("{\"unit_code\": \"1\", \"unit_code\": \"2\"}", "", "duplicate");
    expect_json_error("[1]", "", "must be an object");
    expect_json_error("", "", "invalid JSON");

    /* every problem is listed, not only the first */
    many = "{\"unit_code\": 1, \"level\": \"x\", \"kind\": 2, \"oops\": 0}";
    assert_null(rc_report_from_json_text(many, strlen(many), &errs));
    assert_int_equal(errs.n, 4);

    /* near misses decode */
    many = "{\"version\": 9223372036854775807, \"incident\": {\"severity\": 2147483647,"
           "\"hops\": [{\"level\": \"county\", \"unit_code\": \"130102\", \"at\": \"2021-08-01T09:30:00.000001+08:00\"}]},"
           "\"extra\": {}, \"indicators\": {\"confirmed\": -4}}";
    errs.n = 0;
    r = rc_report_from_json_text(many, strlen(many), &errs);
    assert_non_null(r);
    assert_true(r->version == INT64_MAX);
    assert_true(r->indicators->confirmed == -4);   /* decoding is not validating */
    assert_true(r->incident->hops[0]->at == ts("2021-08-01T01:30:00.000001Z"));
    rc_report_free(r);
}

static void test_errors_json(void **state)
{
    rc_errors errs = {0};
    json_t *j;
    char buf[64];

    (void)state;
    rc_errors_add(&errs, "indicators.confirmed", "must not be %s", "negative");
    j = rc_errors_to_json(&errs);
    assert_string_equal(json_string_value(json_object_get(j, "error")), "invalid report");
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(j, "fields"), 0), "field")),
                        "indicators.confirmed");
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(j, "fields"), 0), "reason")),
                        "must not be negative");
    assert_null(json_object_get(j, "more"));
    json_decref(j);
    for (int i = 0; i < 40; i++)
        rc_errors_add(&errs, "x", "n%d", i);
    assert_int_equal(errs.n, 41);
    j = rc_errors_to_json(&errs);
    assert_int_equal(json_array_size(json_object_get(j, "fields")), RC_ERRORS_MAX);
    assert_int_equal(json_integer_value(json_object_get(j, "more")), 41 - RC_ERRORS_MAX);
    json_decref(j);
    rc_errors_format(&errs, buf, sizeof buf);
    assert_int_equal(strncmp(buf, "indicators.confirmed: must not be negative; x: n0", 49), 0);
}

static void test_unpack_errors(void **state)
{
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff};
    rc_errors errs = {0};
    Rollcall__Report r = ROLLCALL__REPORT__INIT, *back;
    Rollcall__Indicators ind = ROLLCALL__INDICATORS__INIT;
    uint8_t *bytes;
    size_t len;

    (void)state;
    assert_null(rc_report_unpack(junk, sizeof junk, &errs));
    assert_error(&errs, "", "undecodable");
    r.unit_code = "130102001001";
    r.indicators = &ind;
    ind.masks = 1234567;
    bytes = rc_report_pack(&r, &len);
    errs.n = 0;
    assert_null(rc_report_unpack(bytes, len - 1, &errs));   /* truncated */
    assert_error(&errs, "", "undecodable");
    back = rc_report_unpack(bytes, len, &errs);
    assert_non_null(back);
    assert_true(back->indicators->masks == 1234567);
    rc_report_free(back);
    free(bytes);
    back = rc_report_unpack((const uint8_t *)"", 0, &errs);   /* empty = all defaults */
    assert_non_null(back);
    rc_report_free(back);
}

static void test_indicators(void **state)
{
    Rollcall__Indicators ind = ROLLCALL__INDICATORS__INIT;

    (void)state;
    assert_int_equal(rc_indicator_count(), 32);
    assert_true(rc_indicator_count() <= RC_INDICATORS_MAX);
    assert_string_equal(rc_indicator_name(0), "households_visited");
    assert_string_equal(rc_indicator_name(14), "confirmed");
    assert_string_equal(rc_indicator_name(31), "disinfectant_kg");
    assert_null(rc_indicator_name(32));
    assert_int_equal(rc_indicator_index("households_visited"), 0);
    assert_int_equal(rc_indicator_index("masks"), 29);
    assert_int_equal(rc_indicator_index("mask"), -1);
    for (size_t i = 0; i < rc_indicator_count(); i++) {
        assert_int_equal(rollcall__indicators__descriptor.fields[i].type, PROTOBUF_C_TYPE_INT64);
        assert_int_equal(rc_indicator_index(rc_indicator_name(i)), (int)i);
        rc_indicator_set(&ind, i, (int64_t)i * 7 + 1);
    }
    assert_true(ind.households_visited == 1);
    assert_true(ind.confirmed == 14 * 7 + 1);
    assert_true(ind.disinfectant_kg == 31 * 7 + 1);
    for (size_t i = 0; i < rc_indicator_count(); i++)
        assert_true(rc_indicator_get(&ind, i) == (int64_t)i * 7 + 1);
    assert_true(rc_indicator_get(NULL, 0) == 0);
    assert_true(rc_indicator_get(&ind, 99) == 0);
    rc_indicator_set(&ind, 99, 5);   /* ignored */
}

/* ---- validation ---- */

static rc_registry *sample_registry(void)
{
    const char *d = getenv("ROLLCALL_TEST_DATA");
    char path[512], err[256];
    rc_registry *reg = rc_registry_new(false);

    snprintf(path, sizeof path, "%s/registry-130102.csv", d ? d : "tests/data");
    if (rc_registry_load_csv(reg, path, err, sizeof err) != 0)
        fail_msg("%s", err);
    return reg;
}

typedef struct {
    Rollcall__Report r;
    Rollcall__Indicators ind;
    Rollcall__Incident inc;
    Rollcall__Report__ExtraEntry e0, e1;
    Rollcall__Report__ExtraEntry *extra[2];
} fixture;

static void make_valid(fixture *f)
{
    rollcall__report__init(&f->r);
    rollcall__indicators__init(&f->ind);
    rollcall__incident__init(&f->inc);
    rollcall__report__extra_entry__init(&f->e0);
    rollcall__report__extra_entry__init(&f->e1);
    f->r.report_id = "0b7e2c1a-58f4-4e0e-9d1c-2b8f0c7a9e11";
    f->r.unit_code = "130102001001";
    f->r.level = ROLLCALL__LEVEL__LEVEL_VILLAGE;
    f->r.period = "2021-08-01";
    f->r.kind = ROLLCALL__KIND__KIND_DAILY;
    f->r.indicators = &f->ind;
    f->ind.persons_screened = 120;
    f->ind.masks = 500;
    f->e0.key = "my_indicator";
    f->e0.value = 3;
    f->e1.key = "other_count";
    f->e1.value = 0;
    f->extra[0] = &f->e0;
    f->extra[1] = &f->e1;
    f->r.extra = f->extra;
    f->r.n_extra = 2;
    f->inc.type = "confirmed_case";
    f->inc.severity = 3;
    f->inc.occurred_at = ts("2021-08-01T08:00:00+08:00");
}

typedef struct { rc_registry *reg; rc_validate_opts opts; } vstate;

static int setup_validation(void **state)
{
    vstate *v = calloc(1, sizeof *v);

    v->reg = sample_registry();
    rc_validate_opts_default(&v->opts);
    v->opts.now_us = ts("2021-08-01T12:00:00+08:00");
    *state = v;
    return 0;
}

static int teardown_validation(void **state)
{
    vstate *v = *state;

    rc_registry_free(v->reg);
    free(v);
    return 0;
}

static void expect_valid(const vstate *v, const fixture *f)
{
    rc_errors errs = {0};

    if (rc_report_validate(&f->r, &v->opts, v->reg, &errs) != 0) {
        dump_errors(&errs);
        fail_msg("a valid report was refused");
    }
    assert_int_equal(errs.n, 0);
}

static void expect_invalid(const vstate *v, const fixture *f, const char *field, const char *part)
{
    rc_errors errs = {0};

    assert_int_equal(rc_report_validate(&f->r, &v->opts, v->reg, &errs), -1);
    assert_error(&errs, field, part);
}

static void test_validate_identity(void **state)
{
    vstate *v = *state;
    fixture f;

    make_valid(&f);
    expect_valid(v, &f);
    f.r.report_id = "0B7E2C1A-58F4-4E0E-9D1C-2B8F0C7A9E11";
    expect_invalid(v, &f, "report_id", "UUID");
    f.r.report_id = "not-a-uuid";
    expect_invalid(v, &f, "report_id", "UUID");
    f.r.report_id = "";
    expect_valid(v, &f);
    v->opts.require_report_id = true;
    expect_invalid(v, &f, "report_id", "required");
    v->opts.require_report_id = false;

    make_valid(&f);
    f.r.unit_code = "";
    expect_invalid(v, &f, "unit_code", "required");
    f.r.unit_code = "13010200100";
    expect_invalid(v, &f, "unit_code", "digits");
    f.r.unit_code = "13010200100a";
    expect_invalid(v, &f, "unit_code", "digits");
    f.r.unit_code = "130102001999";
    expect_invalid(v, &f, "unit_code", "unknown unit 130102001999");
    {
        rc_errors errs = {0};   /* without a registry the unit is not looked up */

        assert_int_equal(rc_report_validate(&f.r, &v->opts, NULL, &errs), 0);
    }

    make_valid(&f);
    f.r.level = ROLLCALL__LEVEL__LEVEL_UNSPECIFIED;
    expect_invalid(v, &f, "level", "required");
    f.r.level = ROLLCALL__LEVEL__LEVEL_COUNTY;
    expect_invalid(v, &f, "level", "12-digit code is a village");
    f.r.level = (Rollcall__Level)9;
    expect_invalid(v, &f, "level", "not a valid level");
    f.r.level = ROLLCALL__LEVEL__LEVEL_TOWNSHIP;
    f.r.unit_code = "130102001";
    expect_valid(v, &f);

    make_valid(&f);
    f.r.kind = ROLLCALL__KIND__KIND_UNSPECIFIED;
    expect_invalid(v, &f, "kind", "required");
    f.r.kind = (Rollcall__Kind)7;
    expect_invalid(v, &f, "kind", "not a valid kind");

    make_valid(&f);
    f.r.zone_status = (Rollcall__ZoneStatus)5;
    expect_invalid(v, &f, "zone_status", "not a valid");
    f.r.zone_status = ROLLCALL__ZONE_STATUS__ZONE_STATUS_LOCKDOWN;
    expect_valid(v, &f);
}

static void test_validate_period(void **state)
{
    vstate *v = *state;
    fixture f;

    make_valid(&f);
    f.r.period = "";
    expect_invalid(v, &f, "period", "required");
    f.r.period = "2021-02-29";
    expect_invalid(v, &f, "period", "real date");
    f.r.period = "2021-8-01";
    expect_invalid(v, &f, "period", "real date");
    f.r.period = "2021-08-02";
    expect_invalid(v, &f, "period", "future");
    f.r.period = "2021-07-25";   /* exactly 7 days back */
    expect_valid(v, &f);
    f.r.period = "2021-07-24";
    expect_invalid(v, &f, "period", "more than 7 days");
    /* at 23:59 Beijing time the UTC date is still the day before: the
     * Asia/Shanghai day decides */
    v->opts.now_us = ts("2021-08-01T16:30:00Z");   /* 00:30 on 08-02 in Shanghai */
    f.r.period = "2021-08-02";
    expect_valid(v, &f);
    v->opts.max_future_days = 1;
    f.r.period = "2021-08-03";
    expect_valid(v, &f);
    v->opts.now_us = ts("2021-08-01T12:00:00+08:00");
    v->opts.max_future_days = 0;
}

static void test_validate_values(void **state)
{
    vstate *v = *state;
    fixture f;
    int masks = rc_indicator_index("masks"), confirmed = rc_indicator_index("confirmed");

    make_valid(&f);
    f.ind.confirmed = -1;
    expect_invalid(v, &f, "indicators.confirmed", "must not be negative");
    f.ind.confirmed = 0;
    expect_valid(v, &f);
    f.ind.confirmed = v->opts.max_value[confirmed] + 1;
    expect_invalid(v, &f, "indicators.confirmed", "must not exceed 1000000");
    f.ind.confirmed = v->opts.max_value[confirmed];
    expect_valid(v, &f);
    f.ind.masks = v->opts.max_value[masks] + 1;
    expect_invalid(v, &f, "indicators.masks", "must not exceed");
    f.ind.masks = v->opts.max_value[masks];
    expect_valid(v, &f);

    make_valid(&f);
    f.e0.key = "My-Indicator";
    expect_invalid(v, &f, "extra.My-Indicator", "snake_case");
    f.e0.key = "9lives";
    expect_invalid(v, &f, "extra.9lives", "snake_case");
    f.e0.key = "a23456789012345678901234567890123456789012345678901234567890abcd";   /* 64 */
    expect_invalid(v, &f, "extra.a23456789012345678901234567890123456789012345678901234567890abcd",
                   "snake_case");
    f.e0.key = "a23456789012345678901234567890123456789012345678901234567890abc";    /* 63 */
    expect_valid(v, &f);
    f.e0.key = "confirmed";
    expect_invalid(v, &f, "extra.confirmed", "core indicator");
    f.e0.key = "other_count";
    expect_invalid(v, &f, "extra.other_count", "twice");
    f.e0.key = "my_indicator";
    f.e0.value = -1;
    expect_invalid(v, &f, "extra.my_indicator", "must not be negative");
    f.e0.value = v->opts.max_extra_value + 1;
    expect_invalid(v, &f, "extra.my_indicator", "must not exceed");
    f.e0.value = v->opts.max_extra_value;
    expect_valid(v, &f);
}

static void test_validate_kinds(void **state)
{
    vstate *v = *state;
    fixture f;
    rc_errors errs = {0};

    /* ZERO: every value zero, no incident */
    make_valid(&f);
    f.r.kind = ROLLCALL__KIND__KIND_ZERO;
    expect_invalid(v, &f, "indicators.persons_screened", "a zero report must have every indicator 0");
    assert_int_equal(rc_report_validate(&f.r, &v->opts, v->reg, &errs), -1);
    assert_error(&errs, "indicators.masks", "a zero report");
    assert_error(&errs, "extra.my_indicator", "a zero report");
    assert_false(has_error(&errs, "extra.other_count", NULL));
    assert_int_equal(errs.n, 3);   /* each non-zero field named, nothing else */
    f.ind.persons_screened = f.ind.masks = 0;
    f.e0.value = 0;
    expect_valid(v, &f);
    f.r.indicators = NULL;   /* absent indicators are zero */
    expect_valid(v, &f);
    f.r.incident = &f.inc;
    expect_invalid(v, &f, "incident", "incident only with kind urgent");

    /* DAILY: no incident */
    make_valid(&f);
    f.r.incident = &f.inc;
    expect_invalid(v, &f, "incident", "incident only with kind urgent");

    /* URGENT: incident with type, severity 1..4, occurred_at not in the future */
    make_valid(&f);
    f.r.kind = ROLLCALL__KIND__KIND_URGENT;
    expect_invalid(v, &f, "incident", "required");
    f.r.incident = &f.inc;
    expect_valid(v, &f);
    f.inc.type = "";
    expect_invalid(v, &f, "incident.type", "required");
    f.inc.type = "fever_cluster";
    f.inc.severity = 0;
    expect_invalid(v, &f, "incident.severity", "1 (low) to 4");
    f.inc.severity = 5;
    expect_invalid(v, &f, "incident.severity", "1 (low) to 4");
    f.inc.severity = 1;
    expect_valid(v, &f);
    f.inc.severity = 4;
    expect_valid(v, &f);
    f.inc.occurred_at = 0;
    expect_invalid(v, &f, "incident.occurred_at", "required");
    f.inc.occurred_at = v->opts.now_us + 3600LL * 1000000;
    expect_invalid(v, &f, "incident.occurred_at", "future");
    f.inc.occurred_at = v->opts.now_us;
    expect_valid(v, &f);
}

static void test_validate_lists_everything(void **state)
{
    vstate *v = *state;
    fixture f;
    rc_errors errs = {0};
    json_t *j;

    make_valid(&f);
    f.r.report_id = "x";
    f.r.period = "2021-02-30";
    f.r.kind = ROLLCALL__KIND__KIND_UNSPECIFIED;
    f.ind.confirmed = -2;
    f.ind.suspected = -3;
    assert_int_equal(rc_report_validate(&f.r, &v->opts, v->reg, &errs), -1);
    assert_int_equal(errs.n, 5);
    assert_error(&errs, "report_id", NULL);
    assert_error(&errs, "period", NULL);
    assert_error(&errs, "kind", NULL);
    assert_error(&errs, "indicators.confirmed", "negative");
    assert_error(&errs, "indicators.suspected", "negative");
    j = rc_errors_to_json(&errs);
    assert_int_equal(json_array_size(json_object_get(j, "fields")), 5);
    json_decref(j);
}

static void test_validate_from_json(void **state)
{
    vstate *v = *state;
    const char *text = "{\"report_id\":\"0b7e2c1a-58f4-4e0e-9d1c-2b8f0c7a9e11\","
                       "\"unit_code\":\"130102001001\",\"level\":\"village\",\"period\":\"2021-08-01\","
                       "\"kind\":\"urgent\",\"submitted_at\":\"2021-08-01T09:30:00+08:00\","
                       "\"indicators\":{\"confirmed\":1},\"zone_status\":\"control\","
                       "\"incident\":{\"type\":\"confirmed_case\",\"severity\":4,"
                       "\"occurred_at\":\"2021-08-01T01:00:00Z\",\"description\":\"一例确诊\"},"
                       "\"extra\":{\"my_indicator\":2},\"note\":\"ok\"}";
    rc_errors errs = {0};
    Rollcall__Report *r = rc_report_from_json_text(text, strlen(text), &errs);

    assert_non_null(r);
    if (rc_report_validate(r, &v->opts, v->reg, &errs) != 0) {
        dump_errors(&errs);
        fail();
    }
    rc_report_free(r);
}

/* The rules of a report entering the system (the intake, replay --file):
 * a valid village report passes; each thing the system assigns, another
 * level or kind, and a protobuf field the schema lacks is named. */
static void test_check_submission(void **state)
{
    vstate *v = *state;
    fixture f;
    rc_errors errs = {0};
    Rollcall__Hop hop = ROLLCALL__HOP__INIT, *hops[1] = {&hop};
    ProtobufCMessageUnknownField unk = {.tag = 1000, .wire_type = PROTOBUF_C_WIRE_TYPE_VARINT,
                                        .len = 1, .data = (uint8_t *)"\x01"};

    make_valid(&f);
    f.r.kind = ROLLCALL__KIND__KIND_URGENT;
    f.r.incident = &f.inc;
    rc_report_check_submission(&f.r, v->reg, &errs);
    if (errs.n) {
        dump_errors(&errs);
        fail();
    }
    f.r.level = ROLLCALL__LEVEL__LEVEL_UNSPECIFIED;     /* counts as a village's */
    rc_report_check_submission(&f.r, v->reg, &errs);
    assert_int_equal(errs.n, 0);

    f.r.version = 5;
    f.r.received_at = 6;
    f.r.revised = true;
    f.r.level = ROLLCALL__LEVEL__LEVEL_TOWNSHIP;
    f.r.incident->n_hops = 1;
    f.r.incident->hops = hops;
    f.r.base.n_unknown_fields = 1;
    f.r.base.unknown_fields = &unk;
    rc_report_check_submission(&f.r, v->reg, &errs);
    assert_error(&errs, "version", "assigned");
    assert_error(&errs, "received_at", "assigned");
    assert_error(&errs, "revised", NULL);
    assert_error(&errs, "level", "village");
    assert_error(&errs, "incident.hops", NULL);
    assert_error(&errs, "", "unknown field number 1000");
    f.r.base.n_unknown_fields = 0;
    f.r.base.unknown_fields = NULL;
    f.r.incident->n_hops = 0;
    f.r.incident->hops = NULL;

    errs.n = 0;
    f.r.version = f.r.received_at = 0;
    f.r.revised = false;
    f.r.level = ROLLCALL__LEVEL__LEVEL_VILLAGE;
    f.r.unit_code = "130102001";                        /* a township's code */
    rc_report_check_submission(&f.r, v->reg, &errs);
    assert_error(&errs, "unit_code", "not a village");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_time),
        cmocka_unit_test(test_round_trip_every_field),
        cmocka_unit_test(test_defaults_and_whole_indicators),
        cmocka_unit_test(test_json_errors),
        cmocka_unit_test(test_errors_json),
        cmocka_unit_test(test_unpack_errors),
        cmocka_unit_test(test_indicators),
        cmocka_unit_test(test_validate_identity),
        cmocka_unit_test(test_validate_period),
        cmocka_unit_test(test_validate_values),
        cmocka_unit_test(test_validate_kinds),
        cmocka_unit_test(test_validate_lists_everything),
        cmocka_unit_test(test_validate_from_json),
        cmocka_unit_test(test_check_submission),
    };

    return cmocka_run_group_tests(tests, setup_validation, teardown_validation);
}
