/*
 * test_money.c - money_parse accepts exactly the decimals the header promises
 * (no sign, exponent, spaces, grouping or third decimal) up to max_cents, and
 * money_format groups thousands and always shows two decimals.
 */
#include "testenv.h"

#include "money.h"

#include <string.h>

#define UNTOUCHED (-777)

/* Parses text against max_cents and asserts OMS_OK with the exact cents. */
static void assert_parses(const char *text, int64_t max_cents, int64_t want)
{
    int64_t cents = UNTOUCHED;
    oms_status s = money_parse(text, max_cents, &cents);
    if (s != OMS_OK)
        fail_msg("money_parse(\"%s\") = %d, want OMS_OK", text, (int)s);
    assert_int_equal(cents, want);
}

/* Asserts OMS_EINVAL and that *cents is not written on failure. */
static void assert_rejects(const char *text, int64_t max_cents)
{
    int64_t cents = UNTOUCHED;
    oms_status s = money_parse(text, max_cents, &cents);
    if (s != OMS_EINVAL)
        fail_msg("money_parse(\"%s\") = %d (cents %lld), want OMS_EINVAL", text, (int)s,
                 (long long)cents);
    assert_int_equal(cents, UNTOUCHED);
}

static void test_parse_accepts_plain_decimals(void **state)
{
    (void)state;
    assert_parses("0", MONEY_MAX_CENTS, 0);
    assert_parses("12", MONEY_MAX_CENTS, 1200);
    assert_parses("12.3", MONEY_MAX_CENTS, 1230);
    assert_parses("12.34", MONEY_MAX_CENTS, 1234);
    assert_parses("1299.99", MONEY_MAX_CENTS, 129999);
    assert_parses("0.05", MONEY_MAX_CENTS, 5);
    assert_parses("0.5", MONEY_MAX_CENTS, 50);
    assert_parses("0.00", MONEY_MAX_CENTS, 0);
    assert_parses("007.10", MONEY_MAX_CENTS, 710);
}

/* The header lists "7." explicitly; ".5" has digits and only a fraction,
 * which the code accepts as 0.50 (the header's "0.5" spelled short). */
static void test_parse_accepts_trailing_or_leading_point(void **state)
{
    (void)state;
    assert_parses("7.", MONEY_MAX_CENTS, 700);
    assert_parses(".5", MONEY_MAX_CENTS, 50);
    assert_parses(".05", MONEY_MAX_CENTS, 5);
}

static void test_parse_rejects_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "-1",    "+1",    "1e3",  "12.345", " 12",   "12 ", "",    "1,000", "abc", ".",
        "1.2.3", "12..3", "0x10", "1 000",  "12.3a", "\t1", "1\n", "..5",   "-0",  "NaN",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_rejects(bad[i], MONEY_MAX_CENTS);
}

static void test_parse_max_is_inclusive(void **state)
{
    (void)state;
    assert_parses("10000000", MONEY_MAX_CENTS, MONEY_MAX_CENTS);
    assert_parses("10000000.00", MONEY_MAX_CENTS, MONEY_MAX_CENTS);
    assert_parses("10000000.0", MONEY_MAX_CENTS, MONEY_MAX_CENTS);
    assert_parses("9999999.99", MONEY_MAX_CENTS, MONEY_MAX_CENTS - 1);
    assert_rejects("10000000.01", MONEY_MAX_CENTS);
    assert_rejects("10000000.1", MONEY_MAX_CENTS);
    assert_rejects("10000001", MONEY_MAX_CENTS);
    assert_rejects("100000000", MONEY_MAX_CENTS);
    /* A custom bound. */
    assert_parses("12.34", 1234, 1234);
    assert_rejects("12.35", 1234);
    assert_rejects("13", 1234);
}

/* Digits that would overflow int64 must be refused, not wrap (UBSan checks). */
static void test_parse_rejects_overflow(void **state)
{
    (void)state;
    assert_parses("92233720368547758.07", INT64_MAX, INT64_MAX);
    assert_rejects("92233720368547758.08", INT64_MAX);
    assert_rejects("92233720368547759", INT64_MAX);
    assert_rejects("9223372036854775807", INT64_MAX);
    assert_rejects("99999999999999999999999999999999", INT64_MAX);
    assert_rejects("99999999999999999999999999999999", MONEY_MAX_CENTS);
}

/* A max below one unit still bounds the fraction (0.99 > 50 cents). */
static void test_parse_fraction_above_small_max(void **state)
{
    (void)state;
    int64_t c99 = UNTOUCHED, c1 = UNTOUCHED;
    assert_parses("0.50", 50, 50);
    oms_status s99 = money_parse("0.99", 50, &c99);
    oms_status s1 = money_parse("0.01", 0, &c1);
    if (s99 != OMS_EINVAL || s1 != OMS_EINVAL)
        fail_msg("money_parse(\"0.99\", max 50) = %d cents %lld; money_parse(\"0.01\", max 0) = "
                 "%d cents %lld; want OMS_EINVAL (%d) for both",
                 (int)s99, (long long)c99, (int)s1, (long long)c1, (int)OMS_EINVAL);
}

/* Formats cents and compares with the expected text. */
static void assert_formats(int64_t cents, const char *want)
{
    char out[64];
    memset(out, 'X', sizeof out);
    money_format(cents, out, sizeof out);
    assert_string_equal(out, want);
}

static void test_format_groups_and_pads(void **state)
{
    (void)state;
    assert_formats(0, "0.00");
    assert_formats(5, "0.05");
    assert_formats(50, "0.50");
    assert_formats(99, "0.99");
    assert_formats(100, "1.00");
    assert_formats(99999, "999.99");
    assert_formats(100000, "1,000.00");
    assert_formats(123456, "1,234.56");
    assert_formats(12345678, "123,456.78");
    assert_formats(100000000, "1,000,000.00");
    assert_formats(MONEY_MAX_CENTS, "10,000,000.00");
    assert_formats(INT64_MAX, "92,233,720,368,547,758.07");
}

static void test_format_negative(void **state)
{
    (void)state;
    assert_formats(-1, "-0.01");
    assert_formats(-5, "-0.05");
    assert_formats(-123456, "-1,234.56");
    assert_formats(-100000000, "-1,000,000.00");
    /* The magnitude of INT64_MIN does not fit int64: must not overflow. */
    assert_formats(INT64_MIN, "-92,233,720,368,547,758.08");
}

static void test_format_truncates_to_buffer(void **state)
{
    (void)state;
    char out[6];
    money_format(123456, out, sizeof out);
    assert_string_equal(out, "1,234");
    char one[1] = {'X'};
    money_format(123456, one, sizeof one);
    assert_int_equal(one[0], '\0');
}

static void test_format_currency(void **state)
{
    (void)state;
    char out[64];
    money_format_currency(123456, "USD", out, sizeof out);
    assert_string_equal(out, "1,234.56 USD");
    money_format_currency(0, "EUR", out, sizeof out);
    assert_string_equal(out, "0.00 EUR");
    money_format_currency(-5, "USD", out, sizeof out);
    assert_string_equal(out, "-0.05 USD");
    money_format_currency(INT64_MIN, "USD", out, sizeof out);
    assert_string_equal(out, "-92,233,720,368,547,758.08 USD");
    char small[8];
    money_format_currency(123456, "USD", small, sizeof small);
    assert_string_equal(small, "1,234.5");
}

/* Every amount money_format prints (without commas) parses back to itself. */
static void test_format_parse_round_trip(void **state)
{
    (void)state;
    static const int64_t amounts[] = {0, 1, 9, 10, 99, 100, 101, 123456, 99999999, MONEY_MAX_CENTS};
    for (size_t i = 0; i < sizeof amounts / sizeof amounts[0]; i++) {
        char out[64], plain[64];
        size_t k = 0;
        money_format(amounts[i], out, sizeof out);
        for (const char *p = out; *p; p++)
            if (*p != ',')
                plain[k++] = *p;
        plain[k] = '\0';
        assert_parses(plain, MONEY_MAX_CENTS, amounts[i]);
    }
}

static void test_currency_valid(void **state)
{
    (void)state;
    assert_true(money_currency_valid("USD"));
    assert_true(money_currency_valid("EUR"));
    assert_false(money_currency_valid(""));
    assert_false(money_currency_valid("usd"));
    assert_false(money_currency_valid("US"));
    assert_false(money_currency_valid("USDX"));
    assert_false(money_currency_valid("U1D"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_accepts_plain_decimals),
        cmocka_unit_test(test_parse_accepts_trailing_or_leading_point),
        cmocka_unit_test(test_parse_rejects_malformed),
        cmocka_unit_test(test_parse_max_is_inclusive),
        cmocka_unit_test(test_parse_rejects_overflow),
        cmocka_unit_test(test_parse_fraction_above_small_max),
        cmocka_unit_test(test_format_groups_and_pads),
        cmocka_unit_test(test_format_negative),
        cmocka_unit_test(test_format_truncates_to_buffer),
        cmocka_unit_test(test_format_currency),
        cmocka_unit_test(test_format_parse_round_trip),
        cmocka_unit_test(test_currency_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
