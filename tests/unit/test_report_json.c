/* Unit tests for rc_report_from_json_plain (lib/report_json.c): whatever it
 * decodes packs to exactly the bytes jansson's path (rc_report_from_json)
 * gives for the same text, the common reports are decoded by it, and every
 * text it must leave to jansson (escapes, UTF-8, nulls, doubles, unknown or
 * repeated keys, syntax errors) is left. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rc_report.h"

/* The report jansson's path gives, or NULL. */
static Rollcall__Report *by_jansson(const char *text)
{
    json_error_t jerr;
    json_t *obj = json_loadb(text, strlen(text), JSON_REJECT_DUPLICATES, &jerr);
    rc_errors errs;
    Rollcall__Report *r;

    errs.n = 0;
    if (!obj)
        return NULL;
    r = rc_report_from_json(obj, &errs);
    json_decref(obj);
    return r;
}

/* Decoded by the plain path, and identical to jansson's. */
static void assert_same(const char *text)
{
    Rollcall__Report *a = rc_report_from_json_plain(text, strlen(text)), *b = by_jansson(text);
    size_t la = 0, lb = 0;
    uint8_t *pa, *pb;

    if (!a)
        fail_msg("left to jansson: %s", text);
    if (!b)
        fail_msg("decoded, but jansson refuses it: %s", text);
    pa = rc_report_pack(a, &la);
    pb = rc_report_pack(b, &lb);
    assert_non_null(pa);
    assert_non_null(pb);
    if (la != lb || memcmp(pa, pb, la) != 0)
        fail_msg("differs from jansson's decoding: %s", text);
    free(pa);
    free(pb);
    rc_report_free(a);
    rc_report_free(b);
}

static void assert_left(const char *text)
{
    Rollcall__Report *a = rc_report_from_json_plain(text, strlen(text));
    if (a) {
        rc_report_free(a);
        fail_msg("decoded, should be left to jansson: %s", text);
    }
}

static void test_common_reports_same_as_jansson(void **state)
{
    (void)state;
    assert_same("{\"unit_code\":\"130102001001\",\"period\":\"2026-12-07\",\"kind\":\"daily\","
                "\"submitter\":\"bench\",\"zone_status\":\"normal\",\"indicators\":{\"households_visited\":12,"
                "\"persons_screened\":36,\"temperature_checks\":24,\"staff_on_duty\":4,\"volunteers\":7,\"masks\":1200}}");
    assert_same(" {\n \"unit_code\" : \"130102001001\" ,\t\"period\":\"2026-12-07\",\"kind\":\"KIND_ZERO\","
                "\"level\":\"village\",\"indicators\":{}}\r\n");
    assert_same("{\"unit_code\":\"130102001001\",\"period\":\"2026-12-07\",\"kind\":\"urgent\","
                "\"incident\":{\"type\":\"fever_cluster\",\"severity\":3,\"occurred_at\":\"2026-12-07T09:30:00+08:00\","
                "\"description\":\"three with fever\"},\"submitted_at\":\"2026-12-07T01:31:00Z\"}");
    assert_same("{\"report_id\":\"0f8fad5b-d9cb-469f-a165-70867728950e\",\"unit_code\":\"130102001001\","
                "\"period\":\"2026-12-07\",\"kind\":\"daily\",\"extra\":{\"fever_clinics\":2,\"x\":-5},"
                "\"indicators\":{\"confirmed\":0,\"suspected\":-1},\"revised\":false,\"note\":\"\"}");
    assert_same("{}");
    assert_same("{\"extra\":{}}");
    /* decoded as jansson does even where validation will refuse it later */
    assert_same("{\"version\":123456789012345678,\"level\":\"province\"}");
    assert_same("{\"revised\":true,\"version\":-0}");
}

static void test_left_to_jansson(void **state)
{
    (void)state;
    assert_left("");
    assert_left("[]");
    assert_left("{\"unit_code\":\"13010\\u0032001001\"}");             /* escape */
    assert_left("{\"submitter\":\"\xe5\xbc\xa0\xe4\xb8\x89\"}");        /* UTF-8 */
    assert_left("{\"note\":null}");
    assert_left("{\"indicators\":{\"masks\":1.5}}");
    assert_left("{\"indicators\":{\"masks\":1e3}}");
    assert_left("{\"indicators\":{\"masks\":012}}");
    assert_left("{\"indicators\":{\"masks\":1234567890123456789}}");
    assert_left("{\"unit_code\":\"1\",\"unit_code\":\"2\"}");
    assert_left("{\"extra\":{\"a\":1,\"a\":2}}");
    assert_left("{\"no_such_field\":1}");
    assert_left("{\"kind\":\"weekly\"}");
    assert_left("{\"kind\":3}");
    assert_left("{\"unit_code\":130102001001}");
    assert_left("{\"incident\":{\"occurred_at\":1700000000}}");
    assert_left("{\"incident\":{\"occurred_at\":\"yesterday\"}}");
    assert_left("{\"incident\":{\"hops\":[]}}");
    assert_left("{\"unit_code\":\"1\",}");
    assert_left("{\"unit_code\":\"1\"} x");
    assert_left("{\"unit_code\":\"1\"");
    assert_left("{\"completeness\":{\"expected\":4294967296}}");
    assert_left("{\"revised\":1}");
    assert_left("{\"unit_code\":\"tab\there\"}");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_common_reports_same_as_jansson),
        cmocka_unit_test(test_left_to_jansson),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
