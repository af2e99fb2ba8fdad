/*
 * analytics_day.c - UTC days and months, and the average order value.
 *
 * Days are counted from 1970-01-01 with the civil-calendar arithmetic of
 * H. Hinnant's days_from_civil, so date ranges need no time zone and no libc
 * state.
 */
#include "analytics.h"

#include <stdio.h>
#include <string.h>

#define MS_PER_DAY 86400000LL
#define MAX_MS 253402300800000LL /* 10000-01-01T00:00:00Z */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

void analytics_day_format(int64_t days, char day[ANALYTICS_DAY_LEN])
{
    int64_t y;
    unsigned m, d;
    char text[48];
    civil_from_days(days, &y, &m, &d);
    snprintf(text, sizeof text, "%04lld-%02u-%02u", (long long)y, m, d);
    snprintf(day, ANALYTICS_DAY_LEN, "%.10s", text);
}

oms_status analytics_day_of(int64_t ms, char day[ANALYTICS_DAY_LEN],
                            char month[ANALYTICS_MONTH_LEN])
{
    if (ms < 0 || ms >= MAX_MS)
        return OMS_EINVAL;
    analytics_day_format(ms / MS_PER_DAY, day);
    snprintf(month, ANALYTICS_MONTH_LEN, "%.7s", day);
    return OMS_OK;
}

/* Reads exactly n digits. */
static bool digits(const char *s, size_t n, unsigned *out)
{
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    *out = v;
    return true;
}

static unsigned days_in_month(unsigned y, unsigned m)
{
    static const unsigned len[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : len[m - 1];
}

bool analytics_month_valid(const char *text)
{
    unsigned y, m;
    return text != NULL && strlen(text) == 7 && text[4] == '-' && digits(text, 4, &y) &&
           digits(text + 5, 2, &m) && y >= 1970 && m >= 1 && m <= 12;
}

oms_status analytics_day_parse(const char *text, int64_t *days)
{
    unsigned y, m, d;
    if (text == NULL || strlen(text) != 10 || text[4] != '-' || text[7] != '-' ||
        !digits(text, 4, &y) || !digits(text + 5, 2, &m) || !digits(text + 8, 2, &d) || y < 1970 ||
        m < 1 || m > 12 || d < 1 || d > days_in_month(y, m))
        return OMS_EINVAL;
    *days = days_from_civil(y, m, d);
    return OMS_OK;
}

int64_t analytics_aov_cents(int64_t revenue_cents, int64_t orders)
{
    if (orders <= 0)
        return 0;
    /* Half up, also for a negative total (refunds are not in revenue, but a
     * caller may pass net revenue). */
    if (revenue_cents >= 0)
        return (revenue_cents + orders / 2) / orders;
    return -((-revenue_cents + orders / 2) / orders);
}
