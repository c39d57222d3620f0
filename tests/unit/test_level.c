/* Unit tests for rc_level, rc_rule and rc_clock: level relations and
 * deadlines, the filing decision table, filed reports (id, key, kind,
 * borrowed fields), the urgent hop, every escalation rule on its case and
 * its near miss, and each clock mode. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rc_clock.h"
#include "rc_level.h"
#include "rc_report.h"
#include "rc_rule.h"
#include "rc_time.h"

static int64_t ts(const char *s)
{
    int64_t us = 0;
    if (rc_time_parse_rfc3339(s, &us) != 0)
        fail_msg("bad timestamp in test: %s", s);
    return us;
}

static int32_t day_of(const char *s)
{
    int32_t d = 0;
    assert_int_equal(rc_period_parse(s, &d), 0);
    return d;
}

/* A township aggregate on the stack: fields point at static storage. */
typedef struct {
    Rollcall__Report r;
    Rollcall__Indicators ind;
    Rollcall__Completeness c;
    char *missing[4];
    Rollcall__Report__ExtraEntry e0;
    Rollcall__Report__ExtraEntry *extra[1];
} agg_buf;

static void make_agg(agg_buf *a, int expected, int reported, int zero, const char *const *missing,
                     size_t nmissing)
{
    memset(a, 0, sizeof *a);
    rollcall__report__init(&a->r);
    rollcall__indicators__init(&a->ind);
    rollcall__completeness__init(&a->c);
    a->r.report_id = (char *)"0f1e2d3c-4b5a-4697-8887-a6b5c4d3e2f1";
    a->r.unit_code = (char *)"130102001";
    a->r.level = ROLLCALL__LEVEL__LEVEL_TOWNSHIP;
    a->r.period = (char *)"2021-08-01";
    a->r.kind = ROLLCALL__KIND__KIND_DAILY;
    a->r.version = 1627780000000000;
    a->r.indicators = &a->ind;
    a->r.completeness = &a->c;
    a->c.expected = expected;
    a->c.reported = reported;
    a->c.zero = zero;
    for (size_t i = 0; i < nmissing && i < 4; i++)
        a->missing[i] = (char *)missing[i];
    a->c.missing = a->missing;
    a->c.n_missing = nmissing;
}

/* ---------------------------------------------------------------- levels */

static void test_levels(void **state)
{
    char out[13];
    (void)state;

    assert_int_equal(rc_level_parse("township"), 2);
    assert_int_equal(rc_level_parse("county"), 3);
    assert_int_equal(rc_level_parse("province"), 5);
    assert_int_equal(rc_level_parse("5"), 5);
    assert_int_equal(rc_level_parse("town"), 0);
    assert_int_equal(rc_level_parse(NULL), 0);
    assert_string_equal(rc_level_name(3), "county");
    assert_string_equal(rc_level_name(9), "unknown");
    assert_int_equal(rc_level_child(2), 1);
    assert_int_equal(rc_level_child(3), 2);
    assert_int_equal(rc_level_child(5), 3);
    assert_int_equal(rc_level_child(1), 0);
    assert_int_equal(rc_level_parent(2), 3);
    assert_int_equal(rc_level_parent(3), 5);
    assert_int_equal(rc_level_parent(5), 0);

    assert_int_equal(rc_level_unit_of("130102001001", 2, out), 0);
    assert_string_equal(out, "130102001");
    assert_int_equal(rc_level_unit_of("130102001001", 3, out), 0);
    assert_string_equal(out, "130102");
    assert_int_equal(rc_level_unit_of("130102001001", 5, out), 0);
    assert_string_equal(out, "13");
    assert_int_equal(rc_level_unit_of("130102", 2, out), -1);
    assert_string_equal(out, "");
    assert_int_equal(rc_level_unit_of("13010200100x", 2, out), -1);
    assert_int_equal(rc_level_unit_of("130102001001", 4, out), -1);
}

static void test_deadlines(void **state)
{
    int32_t d = day_of("2021-08-01");
    (void)state;

    /* 11:00 in Shanghai is 03:00 UTC */
    assert_int_equal(rc_level_deadline_us(d, 11 * 60), ts("2021-08-01T03:00:00Z"));
    assert_int_equal(rc_level_last_closed_period(ts("2021-08-01T11:00:00+08:00"), 11 * 60), d);
    assert_int_equal(rc_level_last_closed_period(ts("2021-08-01T10:59:59.999999+08:00"), 11 * 60), d - 1);
    /* just after midnight: yesterday's 11:00 has passed, today's has not */
    assert_int_equal(rc_level_last_closed_period(ts("2021-08-02T00:00:01+08:00"), 11 * 60), d);
}

/* ---------------------------------------------------------------- filing */

static rc_file_action decide(bool filed, bool ready, bool complete, bool past, bool signoff, bool signed_,
                             rc_file_reason *reason, bool *revised)
{
    rc_filing_state s = {filed, ready, complete, past, signoff, signed_, false};
    return rc_level_decide(&s, reason, revised);
}

static void test_decide(void **state)
{
    rc_file_reason reason;
    bool revised;
    (void)state;

    /* collecting: incomplete, before the deadline */
    assert_int_equal(decide(false, false, false, false, false, false, &reason, &revised), RC_FILE_NONE);
    /* complete early: filed, not revised */
    assert_int_equal(decide(false, false, true, false, false, false, &reason, &revised), RC_FILE_NOW);
    assert_int_equal(reason, RC_REASON_COMPLETE);
    assert_false(revised);
    /* the deadline with whatever arrived */
    assert_int_equal(decide(false, false, false, true, false, false, &reason, &revised), RC_FILE_NOW);
    assert_int_equal(reason, RC_REASON_DEADLINE);
    assert_false(revised);
    /* a change after a filing, before the deadline: a revision, not "revised" */
    assert_int_equal(decide(true, true, true, false, false, false, &reason, &revised), RC_FILE_NOW);
    assert_int_equal(reason, RC_REASON_REVISION);
    assert_false(revised);
    /* ... and after the deadline: revised */
    assert_int_equal(decide(true, true, false, true, false, false, &reason, &revised), RC_FILE_NOW);
    assert_int_equal(reason, RC_REASON_REVISION);
    assert_true(revised);
    /* manual sign-off: ready waits, a signature files, even early */
    assert_int_equal(decide(false, false, true, false, true, false, &reason, &revised), RC_FILE_WAIT);
    assert_int_equal(reason, RC_REASON_COMPLETE);
    assert_int_equal(decide(false, false, false, true, true, false, &reason, &revised), RC_FILE_WAIT);
    assert_int_equal(decide(false, false, false, false, true, false, &reason, &revised), RC_FILE_NONE);
    assert_int_equal(decide(false, false, false, false, true, true, &reason, &revised), RC_FILE_NOW);
    assert_int_equal(reason, RC_REASON_SIGNOFF);
    assert_int_equal(decide(true, true, true, true, true, false, &reason, &revised), RC_FILE_WAIT);
    assert_int_equal(decide(true, true, true, true, true, true, &reason, &revised), RC_FILE_NOW);
    assert_true(revised);
    assert_string_equal(rc_level_reason_name(RC_REASON_DEADLINE), "deadline");
}

/* A revision waits while the last filing is recent; a first filing and a
 * signature do not. */
static void test_decide_revise_every(void **state)
{
    rc_file_reason reason;
    bool revised;
    rc_filing_state s = {.filed = true, .ready = true, .past_deadline = true, .filed_recently = true};
    (void)state;

    assert_int_equal(rc_level_decide(&s, &reason, &revised), RC_FILE_NONE);
    s.filed_recently = false;
    assert_int_equal(rc_level_decide(&s, &reason, &revised), RC_FILE_NOW);
    assert_int_equal(reason, RC_REASON_REVISION);
    assert_true(revised);
    /* never filed: "recently" cannot hold it back */
    s = (rc_filing_state){.complete = true, .filed_recently = true};
    assert_int_equal(rc_level_decide(&s, &reason, &revised), RC_FILE_NOW);
    assert_int_equal(reason, RC_REASON_COMPLETE);
    /* an official's signature files at once */
    s = (rc_filing_state){.filed = true, .ready = true, .signoff_required = true,
                          .signed_current = true, .filed_recently = true};
    assert_int_equal(rc_level_decide(&s, &reason, &revised), RC_FILE_NOW);
    assert_int_equal(reason, RC_REASON_SIGNOFF);
}

static void test_complete_and_zero(void **state)
{
    agg_buf a;
    const char *miss[] = {"130102001003"};
    (void)state;

    make_agg(&a, 3, 3, 3, NULL, 0);
    assert_true(rc_level_aggregate_complete(&a.r));
    assert_true(rc_level_aggregate_zero(&a.r));
    a.ind.home_observation = 1;       /* one indicator is enough to be a DAILY */
    assert_false(rc_level_aggregate_zero(&a.r));
    a.ind.home_observation = 0;
    a.e0.key = (char *)"my_indicator";
    a.e0.value = 2;
    a.extra[0] = &a.e0;
    a.r.extra = a.extra;
    a.r.n_extra = 1;
    assert_false(rc_level_aggregate_zero(&a.r));

    make_agg(&a, 3, 2, 2, miss, 1);
    assert_false(rc_level_aggregate_complete(&a.r));
    assert_false(rc_level_aggregate_zero(&a.r));  /* one child never said "zero" */
    make_agg(&a, 0, 0, 0, NULL, 0);
    assert_false(rc_level_aggregate_complete(&a.r));
    a.r.completeness = NULL;
    assert_false(rc_level_aggregate_complete(&a.r));
}

static void test_filed_report(void **state)
{
    agg_buf a;
    const char *miss[] = {"130102001002", "130102001003"};
    char id[37], id2[37], key[13];
    rc_filed_opts o = {"rollcall-township", "deadline", true, 1627786800000000};
    rc_errors errs = {0};
    uint8_t *buf;
    size_t len;
    Rollcall__Report *f;
    (void)state;

    make_agg(&a, 3, 1, 0, miss, 2);
    a.ind.confirmed = 2;
    a.ind.persons_screened = 77;
    buf = rc_level_pack_filed(&a.r, &o, &len, id);
    assert_non_null(buf);
    f = rc_report_unpack(buf, len, &errs);
    free(buf);
    assert_non_null(f);
    assert_string_equal(f->report_id, id);
    assert_true(rc_uuid_valid(id));
    rc_level_filed_id("130102001", "2021-08-01", 1627780000000000, id2);
    assert_string_equal(id, id2);
    rc_level_filed_id("130102001", "2021-08-01", 1627780000000001, id2);
    assert_string_not_equal(id, id2);
    assert_string_equal(f->unit_code, "130102001");
    assert_int_equal(f->level, ROLLCALL__LEVEL__LEVEL_TOWNSHIP);
    assert_string_equal(f->period, "2021-08-01");
    assert_int_equal(f->version, 1627780000000000);
    assert_int_equal(f->kind, ROLLCALL__KIND__KIND_DAILY);
    assert_string_equal(f->submitter, "rollcall-township");
    assert_string_equal(f->note, "deadline");
    assert_true(f->revised);
    assert_int_equal(f->submitted_at, 1627786800000000);
    assert_int_equal(f->indicators->confirmed, 2);
    assert_int_equal(f->indicators->persons_screened, 77);
    assert_int_equal(f->completeness->expected, 3);
    assert_int_equal(f->completeness->reported, 1);
    assert_int_equal((int)f->completeness->n_missing, 2);
    assert_string_equal(f->completeness->missing[1], "130102001003");
    rc_report_free(f);
    /* the input is untouched */
    assert_string_equal(a.r.report_id, "0f1e2d3c-4b5a-4697-8887-a6b5c4d3e2f1");
    assert_int_equal(a.r.revised, 0);

    make_agg(&a, 2, 2, 2, NULL, 0);
    buf = rc_level_pack_filed(&a.r, &o, &len, id);
    f = rc_report_unpack(buf, len, &errs);
    free(buf);
    assert_int_equal(f->kind, ROLLCALL__KIND__KIND_ZERO);
    rc_report_free(f);
    a.r.version = 0;
    assert_null(rc_level_pack_filed(&a.r, &o, &len, id));

    assert_int_equal(rc_level_filed_key("130102001", key), 0);
    assert_string_equal(key, "130102");
    assert_int_equal(rc_level_filed_key("130102", key), 0);
    assert_string_equal(key, "13");
    assert_int_equal(rc_level_filed_key("13", key), 0);
    assert_string_equal(key, "13");
    assert_int_equal(rc_level_filed_key("1301", key), -1);
}

/* ---------------------------------------------------------------- urgent */

static void test_urgent_forward(void **state)
{
    Rollcall__Report r;
    Rollcall__Incident inc;
    Rollcall__Hop h1, *hops[1] = {&h1};
    Rollcall__Report *f, *g;
    rc_errors errs = {0};
    uint8_t *out = NULL, *out2 = NULL;
    size_t len, len2;
    int64_t prev = 0;
    char err[128];
    (void)state;

    rollcall__report__init(&r);
    rollcall__incident__init(&inc);
    rollcall__hop__init(&h1);
    r.report_id = (char *)"0f1e2d3c-4b5a-4697-8887-a6b5c4d3e2f1";
    r.unit_code = (char *)"130102001001";
    r.level = ROLLCALL__LEVEL__LEVEL_VILLAGE;
    r.period = (char *)"2021-08-01";
    r.kind = ROLLCALL__KIND__KIND_URGENT;
    r.incident = &inc;
    inc.type = (char *)"confirmed_case";
    inc.severity = 4;
    h1.level = ROLLCALL__LEVEL__LEVEL_VILLAGE;
    h1.unit_code = (char *)"130102001001";
    h1.at = 1000;
    inc.hops = hops;
    inc.n_hops = 1;

    /* county and province leave a village-hop report alone */
    assert_int_equal(rc_level_urgent_forward(&r, 3, 2000, &out, &len, &prev, err, sizeof err), 0);
    assert_null(out);
    assert_int_equal(rc_level_urgent_forward(&r, 5, 2000, &out, &len, &prev, err, sizeof err), 0);
    /* the township forwards it with its hop */
    assert_int_equal(rc_level_urgent_forward(&r, 2, 2000, &out, &len, &prev, err, sizeof err), 1);
    assert_int_equal(prev, 1000);
    assert_int_equal((int)inc.n_hops, 1);   /* input untouched */
    f = rc_report_unpack(out, len, &errs);
    free(out);
    assert_non_null(f);
    assert_int_equal((int)f->incident->n_hops, 2);
    assert_int_equal(f->incident->hops[1]->level, ROLLCALL__LEVEL__LEVEL_TOWNSHIP);
    assert_string_equal(f->incident->hops[1]->unit_code, "130102001");
    assert_int_equal(f->incident->hops[1]->at, 2000);
    assert_string_equal(f->report_id, r.report_id);
    assert_string_equal(f->incident->type, "confirmed_case");
    /* now the township does not forward it again; the county does */
    assert_int_equal(rc_level_urgent_forward(f, 2, 3000, &out, &len, &prev, err, sizeof err), 0);
    assert_int_equal(rc_level_urgent_forward(f, 3, 3000, &out2, &len2, &prev, err, sizeof err), 1);
    g = rc_report_unpack(out2, len2, &errs);
    free(out2);
    assert_int_equal((int)g->incident->n_hops, 3);
    assert_string_equal(g->incident->hops[2]->unit_code, "130102");
    assert_int_equal(prev, 2000);
    rc_report_free(g);
    rc_report_free(f);

    /* not urgent, no hops, not a village */
    r.kind = ROLLCALL__KIND__KIND_DAILY;
    assert_int_equal(rc_level_urgent_forward(&r, 2, 2000, &out, &len, &prev, err, sizeof err), 0);
    r.kind = ROLLCALL__KIND__KIND_URGENT;
    inc.n_hops = 0;
    assert_int_equal(rc_level_urgent_forward(&r, 2, 2000, &out, &len, &prev, err, sizeof err), -1);
    inc.n_hops = 1;
    r.unit_code = (char *)"130102001";
    assert_int_equal(rc_level_urgent_forward(&r, 2, 2000, &out, &len, &prev, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a village"));
    assert_null(out);
    /* poison is not passed on: text PostgreSQL refuses, hops beyond the limit */
    r.unit_code = (char *)"130102001001";
    inc.description = (char *)"bad \xff bytes";
    assert_int_equal(rc_level_urgent_forward(&r, 2, 2000, &out, &len, &prev, err, sizeof err), -1);
    assert_non_null(strstr(err, "incident.description"));
    assert_null(out);
    inc.description = NULL;
    Rollcall__Hop *many[8];
    for (size_t i = 0; i < 8; i++)
        many[i] = &h1;
    inc.hops = many;
    inc.n_hops = 8;
    assert_int_equal(rc_level_urgent_forward(&r, 2, 2000, &out, &len, &prev, err, sizeof err), -1);
    assert_non_null(strstr(err, "hops"));
    assert_null(out);
    inc.hops = hops;
    inc.n_hops = 1;
}

/* ----------------------------------------------------------------- rules */

static rc_rule rule(const char *name, rc_rule_kind kind, const char *ind, const char *op, int64_t thr,
                    int days)
{
    rc_rule r;
    char err[128];
    memset(&r, 0, sizeof r);
    snprintf(r.name, sizeof r.name, "%s", name);
    r.kind = kind;
    snprintf(r.indicator, sizeof r.indicator, "%s", ind ? ind : "");
    r.threshold = thr;
    r.days = days;
    r.levels = (1u << 2) | (1u << 3) | (1u << 5);
    if (rc_rule_check(&r, op, err, sizeof err) != 0)
        fail_msg("rule %s refused: %s", name, err);
    return r;
}

static void test_rule_threshold(void **state)
{
    agg_buf a;
    int64_t v = -1;
    rc_rule confirmed = rule("confirmed", RC_RULE_THRESHOLD, "confirmed", ">", 0, 0);
    rc_rule fever = rule("fever", RC_RULE_THRESHOLD, "fever_referred", ">=", 10, 0);
    rc_rule extra = rule("extra", RC_RULE_THRESHOLD, "my_indicator", ">", 5, 0);
    (void)state;

    make_agg(&a, 3, 3, 0, NULL, 0);
    assert_false(rc_rule_eval_threshold(&confirmed, &a.r, &v));   /* near miss: 0 */
    a.ind.confirmed = 1;
    assert_true(rc_rule_eval_threshold(&confirmed, &a.r, &v));
    assert_int_equal(v, 1);
    a.ind.fever_referred = 9;
    assert_false(rc_rule_eval_threshold(&fever, &a.r, &v));       /* near miss: 9 < 10 */
    a.ind.fever_referred = 10;
    assert_true(rc_rule_eval_threshold(&fever, &a.r, &v));
    assert_int_equal(v, 10);
    a.e0.key = (char *)"my_indicator";
    a.e0.value = 5;
    a.extra[0] = &a.e0;
    a.r.extra = a.extra;
    a.r.n_extra = 1;
    assert_false(rc_rule_eval_threshold(&extra, &a.r, &v));
    a.e0.value = 6;
    assert_true(rc_rule_eval_threshold(&extra, &a.r, &v));
    assert_int_equal(rc_rule_raise_to(&confirmed, 2), 3);
    assert_int_equal(rc_rule_raise_to(&confirmed, 3), 5);
    assert_int_equal(rc_rule_raise_to(&confirmed, 5), 5);
    assert_true(rc_rule_applies(&confirmed, 3));
    assert_false(rc_rule_applies(&confirmed, 1));
}

static void test_rule_missing(void **state)
{
    agg_buf a;
    const char *miss[] = {"130102001002", "130102001003"};
    rc_rule r = rule("missing", RC_RULE_MISSING_AFTER_DEADLINE, NULL, NULL, 0, 0);
    int64_t v = 0;
    (void)state;

    make_agg(&a, 3, 1, 0, miss, 2);
    assert_false(rc_rule_eval_missing(&r, &a.r, false, &v));   /* before the deadline */
    assert_true(rc_rule_eval_missing(&r, &a.r, true, &v));
    assert_int_equal(v, 2);
    make_agg(&a, 3, 3, 0, NULL, 0);
    assert_false(rc_rule_eval_missing(&r, &a.r, true, &v));    /* all in */
}

static void test_rule_zero_after(void **state)
{
    agg_buf today, yesterday;
    rc_rule r = rule("zero_after_home_observation", RC_RULE_ZERO_AFTER, "home_observation", NULL, 0, 0);
    int64_t v = 0;
    (void)state;

    make_agg(&today, 3, 3, 3, NULL, 0);
    make_agg(&yesterday, 3, 3, 0, NULL, 0);
    yesterday.ind.home_observation = 4;
    assert_true(rc_rule_eval_zero_after(&r, &today.r, &yesterday.r, &v));
    assert_int_equal(v, 4);
    /* near misses: nobody under observation yesterday; not zero today; no yesterday */
    yesterday.ind.home_observation = 0;
    assert_false(rc_rule_eval_zero_after(&r, &today.r, &yesterday.r, &v));
    yesterday.ind.home_observation = 4;
    today.ind.home_observation = 1;
    assert_false(rc_rule_eval_zero_after(&r, &today.r, &yesterday.r, &v));
    today.ind.home_observation = 0;
    assert_false(rc_rule_eval_zero_after(&r, &today.r, NULL, &v));
    /* nobody reported at all is "missing", not "zero" */
    today.c.reported = 0;
    assert_false(rc_rule_eval_zero_after(&r, &today.r, &yesterday.r, &v));
}

static void test_rule_copied(void **state)
{
    agg_buf d0, d1, d2;
    rc_rule r = rule("copied_3_days", RC_RULE_COPIED, NULL, NULL, 0, 3);
    const Rollcall__Report *days[3] = {&d0.r, &d1.r, &d2.r};
    int64_t v = 0;
    (void)state;

    make_agg(&d0, 3, 3, 0, NULL, 0);
    make_agg(&d1, 3, 3, 0, NULL, 0);
    make_agg(&d2, 3, 3, 0, NULL, 0);
    d0.ind.persons_screened = d1.ind.persons_screened = d2.ind.persons_screened = 120;
    d0.ind.masks = d1.ind.masks = d2.ind.masks = 500;
    assert_true(rc_rule_eval_copied(&r, days, 3, &v));
    assert_int_equal(v, 3);
    /* near misses: one number differs on one day; only two days; all zero */
    d2.ind.persons_screened = 121;
    assert_false(rc_rule_eval_copied(&r, days, 3, &v));
    d2.ind.persons_screened = 120;
    days[2] = NULL;
    assert_false(rc_rule_eval_copied(&r, days, 3, &v));
    assert_false(rc_rule_eval_copied(&r, days, 2, &v));
    days[2] = &d2.r;
    memset(&d0.ind, 0, sizeof d0.ind);
    rollcall__indicators__init(&d0.ind);
    memset(&d1.ind, 0, sizeof d1.ind);
    rollcall__indicators__init(&d1.ind);
    memset(&d2.ind, 0, sizeof d2.ind);
    rollcall__indicators__init(&d2.ind);
    assert_false(rc_rule_eval_copied(&r, days, 3, &v));
}

static void test_rule_check(void **state)
{
    rc_rule r;
    rc_rule_kind k;
    char err[128];
    (void)state;

    assert_int_equal(rc_rule_kind_parse("zero_after", &k), 0);
    assert_int_equal(k, RC_RULE_ZERO_AFTER);
    assert_int_equal(rc_rule_kind_parse("sometimes", &k), -1);
    assert_string_equal(rc_rule_kind_name(RC_RULE_COPIED), "copied");
    memset(&r, 0, sizeof r);
    strcpy(r.name, "bad");
    r.kind = RC_RULE_THRESHOLD;
    strcpy(r.indicator, "confirmed");
    assert_int_equal(rc_rule_check(&r, "<", err, sizeof err), -1);
    assert_non_null(strstr(err, "op"));
    strcpy(r.indicator, "Confirmed Cases");
    assert_int_equal(rc_rule_check(&r, ">", err, sizeof err), -1);
    r.kind = RC_RULE_COPIED;
    r.days = 1;
    assert_int_equal(rc_rule_check(&r, NULL, err, sizeof err), -1);
    r.days = 2;
    assert_int_equal(rc_rule_check(&r, NULL, err, sizeof err), 0);
}

/* ----------------------------------------------------------------- clock */

static void test_clock_modes(void **state)
{
    char err[256], path[] = "/tmp/rc_clock_test_XXXXXX";
    rc_clock *c;
    int64_t before, now;
    FILE *f;
    int fd;
    (void)state;

    c = rc_clock_new("real", err, sizeof err);
    assert_non_null(c);
    before = rc_now_us();
    now = rc_clock_now(c);
    assert_true(now >= before && now - before < 1000000);
    assert_false(rc_clock_is_controlled(c));
    assert_int_equal(rc_clock_set(c, 5), -1);
    rc_clock_free(c);

    c = rc_clock_new("offset:-3600", err, sizeof err);
    assert_non_null(c);
    now = rc_clock_now(c);
    assert_true(llabs(rc_now_us() - 3600LL * 1000000 - now) < 1000000);
    assert_string_equal(rc_clock_mode(c), "offset");
    rc_clock_free(c);

    c = rc_clock_new("manual:2021-08-01T10:30:00+08:00", err, sizeof err);
    assert_non_null(c);
    assert_int_equal(rc_clock_now(c), ts("2021-08-01T10:30:00+08:00"));
    assert_int_equal(rc_clock_set(c, ts("2021-08-01T11:00:00+08:00")), 0);
    assert_int_equal(rc_clock_now(c), ts("2021-08-01T11:00:00+08:00"));
    rc_clock_free(c);

    fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    c = rc_clock_new(strcat(strcpy(err, "file:"), path), err, sizeof err);
    assert_non_null(c);
    before = rc_now_us();
    assert_true(rc_clock_now(c) >= before);             /* empty file: the wall clock */
    f = fopen(path, "w");
    fputs("2021-08-01T09:00:00+08:00\n", f);
    fclose(f);
    usleep(300000);                                      /* past the cache's lifetime */
    assert_int_equal(rc_clock_now(c), ts("2021-08-01T09:00:00+08:00"));
    f = fopen(path, "w");
    fputs("2021-08-01T11:00:01+08:00\n", f);
    fclose(f);
    usleep(300000);
    assert_int_equal(rc_clock_now(c), ts("2021-08-01T11:00:01+08:00"));
    rc_clock_free(c);
    unlink(path);

    assert_null(rc_clock_new("sundial", err, sizeof err));
    assert_non_null(strstr(err, "unknown mode"));
    assert_null(rc_clock_new("offset:soon", err, sizeof err));
    assert_null(rc_clock_new("manual:yesterday", err, sizeof err));
    assert_null(rc_clock_new("file:", err, sizeof err));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_levels),
        cmocka_unit_test(test_deadlines),
        cmocka_unit_test(test_decide),
        cmocka_unit_test(test_decide_revise_every),
        cmocka_unit_test(test_complete_and_zero),
        cmocka_unit_test(test_filed_report),
        cmocka_unit_test(test_urgent_forward),
        cmocka_unit_test(test_rule_threshold),
        cmocka_unit_test(test_rule_missing),
        cmocka_unit_test(test_rule_zero_after),
        cmocka_unit_test(test_rule_copied),
        cmocka_unit_test(test_rule_check),
        cmocka_unit_test(test_clock_modes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
