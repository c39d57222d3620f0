/* Unit tests for rc_loadgen (the plan is deterministic, shares come out as
 * asked, reports are valid or invalid as planned) and rc_ledger (records
 * round-trip, and the expected rows of a hand-made ledger are the
 * hand-computed ones: ties, retries, corrections, late, zero, missing). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "rc_ledger.h"
#include "rc_loadgen.h"
#include "rc_registry.h"
#include "rc_report.h"
#include "rc_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* 40 townships of 250 villages under county 130102: 10,000 villages. */
#define NTOWN 40
#define PER_TOWN 250
#define NVIL (NTOWN * PER_TOWN)

static uint64_t *villages(void)
{
    uint64_t *v = malloc(NVIL * sizeof *v);

    assert_non_null(v);
    for (size_t t = 0; t < NTOWN; t++)
        for (size_t k = 0; k < PER_TOWN; k++)
            v[t * PER_TOWN + k] = (130102001ULL + t) * 1000 + k + 1;
    return v;
}

static int32_t period_of(const char *s)
{
    int32_t d = 0;

    assert_int_equal(rc_period_parse(s, &d), 0);
    return d;
}

static rc_loadgen *plan(uint64_t seed, bool http)
{
    rc_loadgen_opts o;
    uint64_t *v = villages();
    char err[256];
    rc_loadgen *lg;

    rc_loadgen_opts_default(&o);
    o.seed = seed;
    o.period = period_of("2021-08-01");
    o.http = http;
    lg = rc_loadgen_new(&o, v, NVIL, err, sizeof err);
    free(v);
    assert_non_null(lg);
    return lg;
}

static uint8_t *pack_item(const rc_loadgen *lg, const rc_lg_item *it, size_t *len)
{
    rc_lg_report r;
    uint8_t *buf;

    rc_loadgen_build(lg, it, &r);
    *len = rollcall__report__get_packed_size(&r.report);
    buf = malloc(*len ? *len : 1);
    assert_non_null(buf);
    rollcall__report__pack(&r.report, buf);
    return buf;
}

static void test_deterministic(void **state)
{
    rc_loadgen *a = plan(42, false), *b = plan(42, false), *c = plan(43, false);
    size_t n = rc_loadgen_count(a), differ = 0;

    (void)state;
    assert_int_equal(n, rc_loadgen_count(b));
    for (size_t i = 0; i < n; i++) {
        const rc_lg_item *x = rc_loadgen_item(a, i), *y = rc_loadgen_item(b, i);
        size_t lx, ly;
        uint8_t *px = pack_item(a, x, &lx), *py = pack_item(b, y, &ly);

        assert_memory_equal(x, y, sizeof *x);
        assert_int_equal(lx, ly);
        assert_memory_equal(px, py, lx);
        free(px);
        free(py);
    }
    /* Another seed, another day. */
    for (size_t i = 0; i < n && i < rc_loadgen_count(c); i++)
        differ += memcmp(rc_loadgen_item(a, i)->report_id, rc_loadgen_item(c, i)->report_id, 16) != 0;
    assert_true(differ > n / 2);
    rc_loadgen_free(a);
    rc_loadgen_free(b);
    rc_loadgen_free(c);
}

static void test_shares(void **state)
{
    rc_loadgen *lg = plan(7, false);
    const int64_t deadline = rc_expect_deadline_us(period_of("2021-08-01"), 10 * 3600);
    size_t firsts = 0, zero = 0, late = 0, corr = 0, ties = 0, retries = 0, urgent = 0, invalid = 0;
    size_t bad[8] = {0};
    int64_t prev_send = INT64_MIN;
    const uint64_t *vil;
    char *seen = calloc(NVIL, 1);

    (void)state;
    assert_int_equal(rc_loadgen_villages(lg, &vil), NVIL);
    for (size_t i = 0; i < rc_loadgen_count(lg); i++) {
        const rc_lg_item *it = rc_loadgen_item(lg, i);
        const rc_lg_item *first = rc_loadgen_item(lg, it->original);

        assert_true(it->send_at >= prev_send);   /* sorted in sending order */
        prev_send = it->send_at;
        switch (it->role) {
        case RC_LG_FIRST:
            firsts++;
            zero += it->kind == ROLLCALL__KIND__KIND_ZERO;
            late += it->received_at > deadline;
            seen[(it->unit / 1000 - 130102001) * PER_TOWN + it->unit % 1000 - 1]++;
            break;
        case RC_LG_CORRECTION:
            corr++;
            assert_int_equal(first->role, RC_LG_FIRST);
            assert_int_equal(first->unit, it->unit);
            assert_memory_not_equal(first->report_id, it->report_id, 16);
            assert_true(it->received_at >= first->received_at);
            ties += it->received_at == first->received_at;
            break;
        case RC_LG_RETRY: {
            size_t la, lb;
            uint8_t *pa = pack_item(lg, first, &la), *pb = pack_item(lg, it, &lb);

            retries++;
            assert_int_equal(first->role, RC_LG_FIRST);
            assert_memory_equal(first->report_id, it->report_id, 16);
            assert_true(it->send_at > first->send_at);
            assert_int_equal(la, lb);
            assert_memory_equal(pa, pb, la);   /* the very same message */
            free(pa);
            free(pb);
            break;
        }
        case RC_LG_URGENT:
            urgent++;
            assert_int_equal(it->kind, ROLLCALL__KIND__KIND_URGENT);
            break;
        case RC_LG_INVALID:
            invalid++;
            bad[it->bad]++;
            break;
        default:
            fail();
        }
    }
    /* round(share * 10,000) exactly */
    assert_int_equal(firsts, NVIL - 200);
    assert_int_equal(rc_loadgen_planned(lg, -1), 200);
    for (size_t i = 0; i < NVIL; i++)
        assert_true(seen[i] <= 1);
    assert_int_equal(zero, 1000);
    assert_int_equal(late, 500);
    assert_int_equal(corr, 300);
    assert_int_equal(ties, 10);
    assert_int_equal(retries, 200);
    assert_int_equal(urgent, 10);
    assert_int_equal(invalid, 20);
    assert_int_equal(bad[RC_LG_BAD_UNKNOWN_UNIT], 4);
    assert_int_equal(bad[RC_LG_BAD_UNDECODABLE], 4);
    assert_int_equal(rc_loadgen_planned(lg, RC_LG_CORRECTION), 300);
    free(seen);
    rc_loadgen_free(lg);
}

/* Every planned report passes or fails validation as planned. */
static void test_reports_valid(void **state)
{
    rc_loadgen *lg = plan(3, false);
    rc_registry *reg = rc_registry_new(false);
    rc_validate_opts vo;
    const uint64_t *vil;
    char err[256], code[13];
    size_t n = rc_loadgen_villages(lg, &vil), zero_with_values = 0, cases = 0;

    (void)state;
    assert_int_equal(rc_registry_add(reg, "13", NULL, 0, err, sizeof err), 0);
    assert_int_equal(rc_registry_add(reg, "1301", NULL, 0, err, sizeof err), 0);
    assert_int_equal(rc_registry_add(reg, "130102", NULL, 0, err, sizeof err), 0);
    for (size_t t = 0; t < NTOWN; t++) {
        snprintf(code, sizeof code, "%llu", 130102001ULL + t);
        assert_int_equal(rc_registry_add(reg, code, NULL, 0, err, sizeof err), 0);
    }
    for (size_t i = 0; i < n; i++) {
        snprintf(code, sizeof code, "%012llu", (unsigned long long)vil[i]);
        assert_int_equal(rc_registry_add(reg, code, NULL, 0, err, sizeof err), 0);
    }
    assert_int_equal(rc_registry_finish(reg, err, sizeof err), 0);
    rc_validate_opts_default(&vo);
    vo.now_us = rc_expect_deadline_us(period_of("2021-08-02"), 0);

    for (size_t i = 0; i < rc_loadgen_count(lg); i++) {
        const rc_lg_item *it = rc_loadgen_item(lg, i);
        rc_lg_report r;
        rc_errors errs = {0};
        int rc;

        rc_loadgen_build(lg, it, &r);
        rc = rc_report_validate(&r.report, &vo, reg, &errs);
        if (it->role == RC_LG_INVALID && it->bad != RC_LG_BAD_UNDECODABLE) {
            if (rc == 0)
                print_error("invalid item %zu (%s) passed validation\n", i,
                            rc_loadgen_bad_name(it->bad));
            assert_int_equal(rc, -1);
        } else if (it->role != RC_LG_INVALID) {
            if (rc != 0) {
                char msg[512];

                rc_errors_format(&errs, msg, sizeof msg);
                print_error("item %zu (%s): %s\n", i, rc_loadgen_role_name(it->role), msg);
            }
            assert_int_equal(rc, 0);
            if (it->kind == ROLLCALL__KIND__KIND_ZERO)
                for (size_t k = 0; k < rc_indicator_count(); k++)
                    zero_with_values += rc_indicator_get(r.report.indicators, k) != 0;
            if (it->kind == ROLLCALL__KIND__KIND_DAILY &&
                rc_indicator_get(r.report.indicators, (size_t)rc_indicator_index("confirmed")) > 0)
                cases++;
        } else {
            uint8_t buf[64];
            size_t len = rc_loadgen_garbage(it, buf, sizeof buf);

            assert_null(rc_report_unpack(buf, len, &errs));
        }
    }
    assert_int_equal(zero_with_values, 0);
    /* "most small, a few villages with cases": about 0.3 % of the DAILY reports */
    assert_true(cases > 5 && cases < 100);
    rc_registry_free(reg);
    rc_loadgen_free(lg);
}

static void test_http_plan(void **state)
{
    rc_loadgen *lg = plan(9, true);
    size_t p1 = rc_loadgen_phase_start(lg, 1);

    (void)state;
    assert_true(p1 < rc_loadgen_count(lg));
    for (size_t i = 0; i < rc_loadgen_count(lg); i++) {
        const rc_lg_item *it = rc_loadgen_item(lg, i);
        bool later = it->role == RC_LG_CORRECTION;

        assert_int_equal(i >= p1, later);
        /* a retry follows its original soon, inside the intake's window */
        if (it->role == RC_LG_RETRY) {
            const rc_lg_item *first = rc_loadgen_item(lg, it->original);
            assert_true(it->original < i);
            assert_true(it->send_at - first->received_at <= 2 * 60 * 1000000LL);
        }
        assert_true(it->bad != RC_LG_BAD_UNKNOWN_UNIT && it->bad != RC_LG_BAD_UNDECODABLE);
        if (it->role == RC_LG_FIRST)   /* no late share through HTTP: the intake's clock decides */
            assert_true(it->received_at <= rc_expect_deadline_us(period_of("2021-08-01"), 36000));
    }
    rc_loadgen_free(lg);
}

static void test_bad_options(void **state)
{
    rc_loadgen_opts o;
    uint64_t v[2] = {130102001002ULL, 130102001001ULL};
    char err[256];

    (void)state;
    rc_loadgen_opts_default(&o);
    o.zero_share = 1.5;
    assert_null(rc_loadgen_new(&o, v, 1, err, sizeof err));
    assert_non_null(strstr(err, "zero share"));
    rc_loadgen_opts_default(&o);
    assert_null(rc_loadgen_new(&o, v, 2, err, sizeof err));   /* not ascending */
    assert_null(rc_loadgen_new(&o, v, 0, err, sizeof err));
}

/* ---- ledger and expectations ---- */

static rc_registry *small_registry(void)
{
    static const char *const units[] = {
        "13", "1301", "130102", "130103", "130104",
        "130102001", "130102001001", "130102001002", "130102001003",
        "130102002", "130102002001", "130102002002",
        "130103001", "130103001001",
        "130104001", "130104001001", "130104001002",
    };
    rc_registry *reg = rc_registry_new(false);
    char err[256];

    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        assert_int_equal(rc_registry_add(reg, units[i], NULL, 0, err, sizeof err), 0);
    assert_int_equal(rc_registry_finish(reg, err, sizeof err), 0);
    return reg;
}

static rc_ledger_rec rec(const char *rid, const char *unit, const char *period, int kind,
                         int64_t version, const char *received, int zone, int64_t households,
                         int status)
{
    rc_ledger_rec r;

    memset(&r, 0, sizeof r);
    snprintf(r.report_id, sizeof r.report_id, "%s", rid);
    snprintf(r.unit, sizeof r.unit, "%s", unit);
    r.period = period_of(period);
    r.kind = kind;
    r.role = -1;
    r.version = version;
    assert_int_equal(rc_time_parse_rfc3339(received, &r.received_at), 0);
    r.zone = zone;
    r.ind[0] = households;   /* households_visited */
    r.ind[31] = households * 2;   /* disinfectant_kg: the last column counts too */
    r.status = status;
    return r;
}

#define D ROLLCALL__KIND__KIND_DAILY
#define Z ROLLCALL__KIND__KIND_ZERO
#define U ROLLCALL__KIND__KIND_URGENT
#define NORMAL ROLLCALL__ZONE_STATUS__ZONE_STATUS_NORMAL
#define PREV ROLLCALL__ZONE_STATUS__ZONE_STATUS_PREVENTION
#define CTRL ROLLCALL__ZONE_STATUS__ZONE_STATUS_CONTROL
#define OK RC_LEDGER_ACCEPTED

static void write_hand_ledger(const char *path)
{
    rc_ledger_rec r[16];
    size_t n = 0;
    rc_ledger_writer *w;
    char err[256];

    /* 130102001001: timely first report, corrected after the deadline (not
     * late), the first one re-delivered after the correction. */
    r[n] = rec("00000000-0000-4000-8000-000000000001", "130102001001", "2021-08-01", D, 100,
               "2021-08-01T09:00:00+08:00", NORMAL, 10, OK);
    r[n].nextra = 1;
    strcpy(r[n].extra[0].name, "grid_patrols");
    r[n++].extra[0].value = 2;
    r[n] = rec("00000000-0000-4000-8000-000000000002", "130102001001", "2021-08-01", D, 200,
               "2021-08-01T11:00:00+08:00", PREV, 15, OK);
    r[n].nextra = 1;
    strcpy(r[n].extra[0].name, "grid_patrols");
    r[n++].extra[0].value = 5;
    r[n++] = rec("00000000-0000-4000-8000-000000000001", "130102001001", "2021-08-01", D, 100,
                 "2021-08-01T09:00:00+08:00", NORMAL, 10, OK);
    /* 130102001002: ZERO, first received after 10:00: late and zero. */
    r[n++] = rec("00000000-0000-4000-8000-000000000003", "130102001002", "2021-08-01", Z, 300,
                 "2021-08-01T10:30:00+08:00", NORMAL, 0, OK);
    /* 130102001003: two reports with the same version: the larger report_id
     * (bbbb...) wins whatever the order. */
    r[n++] = rec("bbbbbbbb-0000-4000-8000-000000000000", "130102001003", "2021-08-01", D, 400,
                 "2021-08-01T09:30:00+08:00", CTRL, 9, OK);
    r[n++] = rec("aaaaaaaa-0000-4000-8000-000000000000", "130102001003", "2021-08-01", D, 400,
                 "2021-08-01T09:30:00+08:00", NORMAL, 7, OK);
    /* 130102002001: accepted, then a rejected revision (excluded), then an
     * older version arriving late (never overwrites). */
    r[n++] = rec("00000000-0000-4000-8000-000000000005", "130102002001", "2021-08-01", D, 500,
                 "2021-08-01T09:00:00+08:00", NORMAL, 20, OK);
    r[n++] = rec("00000000-0000-4000-8000-000000000006", "130102002001", "2021-08-01", D, 600,
                 "2021-08-01T09:10:00+08:00", NORMAL, 1000, RC_LEDGER_REJECTED);
    r[n++] = rec("00000000-0000-4000-8000-000000000007", "130102002001", "2021-08-01", D, 450,
                 "2021-08-01T08:00:00+08:00", NORMAL, 99, OK);
    /* 130102002002: only an URGENT report: still missing. */
    r[n++] = rec("00000000-0000-4000-8000-000000000008", "130102002002", "2021-08-01", U, 550,
                 "2021-08-01T08:30:00+08:00", NORMAL, 1, OK);
    /* 130103001001: its only report failed: county 130103 has nothing. */
    r[n++] = rec("00000000-0000-4000-8000-000000000009", "130103001001", "2021-08-01", D, 560,
                 "2021-08-01T08:30:00+08:00", NORMAL, 3, RC_LEDGER_FAILED);
    /* 130104001: every village ZERO, on time: a complete, zero child. */
    r[n++] = rec("00000000-0000-4000-8000-00000000000a", "130104001001", "2021-08-01", Z, 150,
                 "2021-08-01T08:00:00+08:00", NORMAL, 0, OK);
    r[n++] = rec("00000000-0000-4000-8000-00000000000b", "130104001002", "2021-08-01", Z, 160,
                 "2021-08-01T09:59:59+08:00", NORMAL, 0, OK);
    /* Another day: ignored. */
    r[n++] = rec("00000000-0000-4000-8000-00000000000c", "130102002002", "2021-08-02", D, 700,
                 "2021-08-02T08:00:00+08:00", NORMAL, 50, OK);

    w = rc_ledger_writer_open(path, NULL, err, sizeof err);
    assert_non_null(w);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(rc_ledger_write(w, &r[i], err, sizeof err), 0);
    assert_int_equal(rc_ledger_writer_close(w, err, sizeof err), 0);
}

static void assert_missing(const rc_expect_row *row, const char *const *codes, size_t n)
{
    char c[13];

    assert_int_equal(row->nmissing, n);
    for (size_t i = 0; i < n; i++) {
        /* children: villages of a township, townships of a county, counties of a province */
        rc_expect_code_format(row->missing[i], row->level == 2 ? 1 : row->level == 3 ? 2 : 3, c);
        assert_string_equal(c, codes[i]);
    }
}

static void test_expect_hand_ledger(void **state)
{
    char path[] = "/tmp/rollcall-test-ledger-XXXXXX", err[256];
    int fd = mkstemp(path);
    rc_registry *reg = small_registry();
    rc_expect *e = rc_expect_new(period_of("2021-08-01"), 10 * 3600);
    const rc_expect_stats *st;
    rc_expect_row row;
    int gp;

    (void)state;
    assert_true(fd >= 0);
    close(fd);
    write_hand_ledger(path);
    assert_int_equal(rc_expect_load(e, path, err, sizeof err), 0);
    unlink(path);
    assert_int_equal(rc_expect_compute(e, reg, err, sizeof err), 0);
    st = rc_expect_stats_of(e);
    assert_int_equal(st->records, 14);
    assert_int_equal(st->excluded, 2);
    assert_int_equal(st->other_period, 1);
    assert_int_equal(st->duplicates, 1);
    assert_int_equal(st->conflicts, 0);
    assert_int_equal(st->urgent, 1);
    assert_int_equal(st->villages, 6);
    assert_int_equal(st->late_villages, 1);
    assert_int_equal(st->unknown_units, 0);
    assert_int_equal(rc_expect_extra_count(e), 1);
    assert_string_equal(rc_expect_extra_name(e, 0), "grid_patrols");
    gp = 0;

    /* villages */
    assert_int_equal(rc_expect_find(e, "130102001001", &row), 0);
    assert_int_equal(row.kind, D);
    assert_int_equal(row.version, 200);
    assert_int_equal(row.ind[0], 15);
    assert_int_equal(row.extra[gp], 5);
    assert_int_equal(row.villages_late, 0);
    assert_int_equal(rc_expect_find(e, "130102001002", &row), 0);
    assert_int_equal(row.kind, Z);
    assert_int_equal(row.villages_late, 1);
    assert_int_equal(rc_expect_find(e, "130102001003", &row), 0);
    assert_int_equal(row.version, 400);
    assert_int_equal(row.ind[0], 9);           /* the tie goes to bbbb... */
    assert_int_equal(row.zone[CTRL], 1);
    assert_int_equal(rc_expect_find(e, "130102002001", &row), 0);
    assert_int_equal(row.version, 500);
    assert_int_equal(row.ind[0], 20);
    assert_int_equal(rc_expect_find(e, "130102002002", &row), -1);
    assert_int_equal(rc_expect_find(e, "130103001001", &row), -1);

    /* An aggregate's version: the period's start plus, per village beneath,
     * its version's distance from the start, at least 1 — these hand-made
     * versions lie before the start, so each village counts 1. */
    int32_t day;
    assert_int_equal(rc_period_parse("2021-08-01", &day), 0);
    const int64_t start = rc_expect_deadline_us(day, 0);

    /* township 130102001: all three in, one zero, one late */
    assert_int_equal(rc_expect_find(e, "130102001", &row), 0);
    assert_true(row.present);
    assert_int_equal(row.level, 2);
    assert_int_equal(row.expected, 3);
    assert_int_equal(row.reported, 3);
    assert_int_equal(row.zero, 1);
    assert_int_equal(row.late, 1);
    assert_int_equal(row.nmissing, 0);
    assert_int_equal(row.version, start + 3);
    assert_int_equal(row.ind[0], 15 + 0 + 9);
    assert_int_equal(row.ind[31], 2 * (15 + 0 + 9));
    assert_int_equal(row.extra[gp], 5);
    assert_int_equal(row.zone[NORMAL], 1);
    assert_int_equal(row.zone[PREV], 1);
    assert_int_equal(row.zone[CTRL], 1);

    /* township 130102002: one of two; the urgent-only village is missing */
    assert_int_equal(rc_expect_find(e, "130102002", &row), 0);
    assert_true(row.present);
    assert_int_equal(row.expected, 2);
    assert_int_equal(row.reported, 1);
    assert_int_equal(row.zero, 0);
    assert_int_equal(row.late, 0);
    assert_int_equal(row.version, start + 1);
    assert_int_equal(row.ind[0], 20);
    {
        const char *m[] = {"130102002002"};
        assert_missing(&row, m, 1);
    }

    /* township 130103001 and county 130103: nothing beneath, no row */
    assert_int_equal(rc_expect_find(e, "130103001", &row), 0);
    assert_false(row.present);
    assert_int_equal(rc_expect_find(e, "130103", &row), 0);
    assert_false(row.present);
    assert_int_equal(row.expected, 1);
    assert_int_equal(row.villages_expected, 1);

    /* county 130102: township 001 complete (late), 002 incomplete */
    assert_int_equal(rc_expect_find(e, "130102", &row), 0);
    assert_true(row.present);
    assert_int_equal(row.level, 3);
    assert_int_equal(row.expected, 2);
    assert_int_equal(row.reported, 1);
    assert_int_equal(row.zero, 0);
    assert_int_equal(row.late, 1);
    assert_int_equal(row.villages_expected, 5);
    assert_int_equal(row.villages_reported, 4);
    assert_int_equal(row.villages_zero, 1);
    assert_int_equal(row.villages_late, 1);
    assert_int_equal(row.version, start + 4);
    assert_int_equal(row.ind[0], 44);
    assert_int_equal(row.extra[gp], 5);
    {
        const char *m[] = {"130102002"};
        assert_missing(&row, m, 1);
    }

    /* county 130104: complete and all ZERO */
    assert_int_equal(rc_expect_find(e, "130104", &row), 0);
    assert_int_equal(row.expected, 1);
    assert_int_equal(row.reported, 1);
    assert_int_equal(row.zero, 1);
    assert_int_equal(row.late, 0);
    assert_int_equal(row.version, start + 2);

    /* province 13: only 130104 complete */
    assert_int_equal(rc_expect_find(e, "13", &row), 0);
    assert_true(row.present);
    assert_int_equal(row.level, 5);
    assert_int_equal(row.expected, 3);
    assert_int_equal(row.reported, 1);
    assert_int_equal(row.zero, 1);
    assert_int_equal(row.late, 0);
    assert_int_equal(row.villages_expected, 8);
    assert_int_equal(row.villages_reported, 6);
    assert_int_equal(row.villages_zero, 3);
    assert_int_equal(row.villages_late, 1);
    assert_int_equal(row.zone[NORMAL], 4);
    assert_int_equal(row.version, start + 6);
    assert_int_equal(row.ind[0], 44);
    {
        const char *m[] = {"130102", "130103"};
        assert_missing(&row, m, 2);
    }
    /* rows in order: 6 villages, 4 townships, 3 counties, 1 province */
    assert_int_equal(rc_expect_count(e), 6 + 4 + 3 + 1);
    assert_int_equal(rc_expect_at(e, 0, &row), 0);
    assert_int_equal(row.code, 130102001001ULL);
    assert_int_equal(rc_expect_at(e, 13, &row), 0);
    assert_int_equal(row.code, 13);
    assert_int_equal(row.index, 13);
    assert_int_equal(rc_expect_find(e, "130102001003", &row), 0);
    assert_int_equal(row.index, 2);
    assert_int_equal(rc_expect_find(e, "130103", &row), 0);
    assert_int_equal(row.index, 6 + 4 + 1);
    assert_int_equal(rc_expect_at(e, 14, &row), -1);

    rc_expect_free(e);
    rc_registry_free(reg);
}

static int collect_rec(const rc_ledger_rec *r, void *opaque)
{
    struct { rc_ledger_rec *out; size_t n; } *ctx = opaque;

    ctx->out[ctx->n++] = *r;
    return 0;
}

static void test_ledger_roundtrip(void **state)
{
    rc_ledger_rec a = rec("0f0e0d0c-0000-4000-8000-000000000001", "130102001001", "2021-08-01",
                          D, 1627781400123456LL, "2021-08-01T09:30:00.123456+08:00", PREV, 12, OK);
    rc_ledger_rec b;
    json_t *o;
    char err[256];

    (void)state;
    a.role = RC_LG_CORRECTION;
    a.http = 202;
    a.nextra = 1;
    strcpy(a.extra[0].name, "market_checks");
    a.extra[0].value = 4;
    o = rc_ledger_rec_to_json(&a);
    assert_non_null(o);
    assert_int_equal(rc_ledger_rec_from_json(o, NULL, 0, &b, err, sizeof err), 0);
    json_decref(o);
    assert_memory_equal(&a, &b, sizeof a);

    o = json_pack("{s:s, s:s}", "report_id", "x", "unit", "1");
    assert_int_equal(rc_ledger_rec_from_json(o, NULL, 0, &b, err, sizeof err), -1);
    assert_non_null(strstr(err, "period"));
    json_decref(o);
}

/* The writer's fast path and its jansson path read back to the same records. */
static void test_ledger_file_roundtrip(void **state)
{
    rc_ledger_rec r[2], back[2];
    char path[] = "/tmp/rollcall-test-ledger-XXXXXX", err[256];
    int fd = mkstemp(path);
    rc_ledger_writer *w;
    struct { rc_ledger_rec *out; size_t n; } ctx = {back, 0};

    (void)state;
    assert_true(fd >= 0);
    close(fd);
    r[0] = rec("0f0e0d0c-0000-4000-8000-000000000001", "130102001001", "2021-08-01", D,
               1627781400123456LL, "2021-08-01T09:30:00.123456+08:00", PREV, 12, OK);
    r[0].role = RC_LG_FIRST;
    r[0].nextra = 2;
    strcpy(r[0].extra[0].name, "grid_patrols");
    r[0].extra[0].value = 7;
    strcpy(r[0].extra[1].name, "market_checks");
    r[0].extra[1].value = -3;
    r[0].ind[5] = INT64_MAX;
    r[1] = rec("0f0e0d0c-0000-4000-8000-000000000002", "130102001002", "2021-08-01", Z, 0,
               "2021-08-01T09:30:00+08:00", NORMAL, 0, RC_LEDGER_REJECTED);
    r[1].http = 400;
    strcpy(r[1].reason, "invalid report: \"indicators.x\": must not be negative\n");
    w = rc_ledger_writer_open(path, NULL, err, sizeof err);
    assert_non_null(w);
    for (int i = 0; i < 2; i++)
        assert_int_equal(rc_ledger_write(w, &r[i], err, sizeof err), 0);
    assert_int_equal(rc_ledger_writer_close(w, err, sizeof err), 0);
    assert_int_equal(rc_ledger_read(path, collect_rec, &ctx, err, sizeof err), 0);
    unlink(path);
    assert_int_equal(ctx.n, 2);
    assert_memory_equal(&r[0], &back[0], sizeof r[0]);
    assert_memory_equal(&r[1], &back[1], sizeof r[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_shares),
        cmocka_unit_test(test_reports_valid),
        cmocka_unit_test(test_http_plan),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_expect_hand_ledger),
        cmocka_unit_test(test_ledger_roundtrip),
        cmocka_unit_test(test_ledger_file_roundtrip),
    };

    return cmocka_run_group_tests_name("loadgen", tests, NULL, NULL);
}
