/* rc_time — see rc_time.h.  Calendar arithmetic is done by hand on the
 * proleptic Gregorian calendar so that it never depends on the process TZ. */
#include "rc_time.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <uuid.h>

int64_t rc_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Howard Hinnant's days_from_civil / civil_from_days. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int days_in_month(int64_t y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dm[m - 1];
}

/* Reads exactly n digits; -1 on anything else. */
static int digits(const char *s, int n)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static int parse_date(const char *s, int64_t *days)
{
    int y = digits(s, 4), m, d;

    if (y < 0 || s[4] != '-')
        return -1;
    m = digits(s + 5, 2);
    if (m < 1 || m > 12 || s[7] != '-')
        return -1;
    d = digits(s + 8, 2);
    if (d < 1 || d > days_in_month(y, m))
        return -1;
    *days = days_from_civil(y, m, d);
    return 0;
}

int rc_period_parse(const char *s, int32_t *day)
{
    int64_t days;

    if (!s || strlen(s) != 10 || parse_date(s, &days) < 0)
        return -1;
    *day = (int32_t)days;
    return 0;
}

void rc_period_format(int32_t day, char out[11])
{
    int64_t y;
    int m, d;
    char tmp[32];

    civil_from_days(day, &y, &m, &d);
    /* Years outside 0000..9999 never pass rc_period_parse; wrap them rather
     * than overflow out. */
    snprintf(tmp, sizeof tmp, "%04d-%02d-%02d", (int)((y % 10000 + 10000) % 10000), m, d);
    memcpy(out, tmp, 11);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

int32_t rc_period_of(int64_t us)
{
    return (int32_t)floor_div(us + RC_TZ_OFFSET_US, RC_DAY_US);
}

int rc_time_parse_rfc3339(const char *s, int64_t *us)
{
    int64_t days, frac = 0, off = 0;
    int hh, mi, ss;
    const char *p;

    if (!s || strlen(s) < 20 || parse_date(s, &days) < 0)
        return -1;
    if (s[10] != 'T' && s[10] != 't')
        return -1;
    hh = digits(s + 11, 2);
    mi = s[13] == ':' ? digits(s + 14, 2) : -1;
    ss = s[16] == ':' ? digits(s + 17, 2) : -1;
    if (hh < 0 || hh > 23 || mi < 0 || mi > 59 || ss < 0 || ss > 59)
        return -1;
    p = s + 19;
    if (*p == '.') {
        int n = 0;
        int64_t scale = 100000;

        for (p++; *p >= '0' && *p <= '9'; p++, n++) {
            frac += (*p - '0') * scale;
            scale /= 10;
        }
        if (n == 0)
            return -1;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh = digits(p + 1, 2), om = p[3] == ':' ? digits(p + 4, 2) : -1;

        if (oh < 0 || oh > 23 || om < 0 || om > 59)
            return -1;
        off = ((int64_t)oh * 3600 + om * 60) * 1000000;
        if (*p == '-')
            off = -off;
        p += 6;
    } else {
        return -1;
    }
    if (*p != '\0')
        return -1;
    *us = days * RC_DAY_US + ((int64_t)hh * 3600 + mi * 60 + ss) * 1000000 + frac - off;
    return 0;
}

void rc_time_format_rfc3339(int64_t us, char out[40])
{
    int64_t local = us + RC_TZ_OFFSET_US;
    int64_t days = floor_div(local, RC_DAY_US);
    int64_t rest = local - days * RC_DAY_US;  /* 0 .. day-1 */
    int64_t secs = rest / 1000000, micros = rest % 1000000, y;
    int m, d;

    civil_from_days(days, &y, &m, &d);
    if (micros)
        snprintf(out, 40, "%04d-%02d-%02dT%02d:%02d:%02d.%06d+08:00", (int)(y % 10000), m, d,
                 (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60), (int)micros);
    else
        snprintf(out, 40, "%04d-%02d-%02dT%02d:%02d:%02d+08:00", (int)(y % 10000), m, d,
                 (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60));
}

void rc_uuid_new(char out[37])
{
    uuid_t u;

    uuid_generate_random(u);
    uuid_unparse_lower(u, out);
}

bool rc_uuid_valid(const char *s)
{
    if (!s)
        return false;
    for (int i = 0; i < 36; i++) {
        char c = s[i];

        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    return s[36] == '\0';
}
