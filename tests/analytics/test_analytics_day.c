/*
 * test_analytics_day.c - UTC day bucketing, date parsing and the average
 * order value's rounding.
 */
#include "testenv.h"

#include "analytics.h"

#include <string.h>

#define DAY_MS 86400000LL
/* 2026-11-22T00:00:00Z */
#define NOV22 1795305600000LL

static void assert_day(int64_t ms, const char *day, const char *month)
{
    char d[ANALYTICS_DAY_LEN], m[ANALYTICS_MONTH_LEN];
    assert_int_equal(analytics_day_of(ms, d, m), OMS_OK);
    assert_string_equal(d, day);
    assert_string_equal(m, month);
}

static void test_midnight_utc(void **state)
{
    (void)state;
    assert_day(NOV22 - 1, "2026-11-21", "2026-11");
    assert_day(NOV22, "2026-11-22", "2026-11");
    assert_day(NOV22 + DAY_MS - 1, "2026-11-22", "2026-11");
    /* 2026-12-01T00:00:00Z starts a month; the millisecond before ends one. */
    assert_day(NOV22 + 9 * DAY_MS - 1, "2026-11-30", "2026-11");
    assert_day(NOV22 + 9 * DAY_MS, "2026-12-01", "2026-12");
    assert_day(0, "1970-01-01", "1970-01");
    assert_day(951782400000LL, "2000-02-29", "2000-02"); /* a leap day */
    assert_day(253402300799999LL, "9999-12-31", "9999-12");
}

static void test_out_of_range_times(void **state)
{
    (void)state;
    char d[ANALYTICS_DAY_LEN], m[ANALYTICS_MONTH_LEN];
    assert_int_equal(analytics_day_of(-1, d, m), OMS_EINVAL);
    assert_int_equal(analytics_day_of(253402300800000LL, d, m), OMS_EINVAL);
}

static void test_parse_round_trip(void **state)
{
    (void)state;
    int64_t days;
    char back[ANALYTICS_DAY_LEN];
    assert_int_equal(analytics_day_parse("2026-11-22", &days), OMS_OK);
    assert_int_equal(days, NOV22 / DAY_MS);
    analytics_day_format(days, back);
    assert_string_equal(back, "2026-11-22");
    assert_int_equal(analytics_day_parse("2024-02-29", &days), OMS_OK);
    analytics_day_format(days + 1, back);
    assert_string_equal(back, "2024-03-01");
}

static void test_parse_rejects(void **state)
{
    (void)state;
    static const char *const bad[] = {"2026-02-29",  "2026-13-01", "2026-00-10", "2026-11-31",
                                      "2026-1-22",   "2026/11/22", "20261122",   "2026-11-22x",
                                      " 2026-11-22", "1969-12-31", "",           "today"};
    int64_t days = 42;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(analytics_day_parse(bad[i], &days), OMS_EINVAL);
        assert_int_equal(days, 42); /* untouched on error */
    }
    assert_false(analytics_month_valid("2026-13"));
    assert_false(analytics_month_valid("2026-1"));
    assert_false(analytics_month_valid("all"));
    assert_true(analytics_month_valid("2026-01"));
}

static void test_aov_rounding(void **state)
{
    (void)state;
    assert_int_equal(analytics_aov_cents(0, 0), 0); /* no orders */
    assert_int_equal(analytics_aov_cents(12345, 0), 0);
    assert_int_equal(analytics_aov_cents(1000, 3), 333); /* 333.33 */
    assert_int_equal(analytics_aov_cents(2000, 3), 667); /* 666.67 */
    assert_int_equal(analytics_aov_cents(5, 2), 3);      /* 2.5 rounds half up */
    assert_int_equal(analytics_aov_cents(7, 2), 4);      /* 3.5 */
    assert_int_equal(analytics_aov_cents(-5, 2), -3);    /* symmetric */
    assert_int_equal(analytics_aov_cents(999999999999LL, 1), 999999999999LL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_midnight_utc),     cmocka_unit_test(test_out_of_range_times),
        cmocka_unit_test(test_parse_round_trip), cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_aov_rounding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
