/*
 * fuzz_money_time.c - money and time text: money_parse / money_format
 * (lib/money.c), the CSV's placed_at (order_csv_parse_time), analytics'
 * days and months (services/analytics/analytics_day.c) and the constant-time
 * secret comparison of lib/oms.c.
 *
 * Beyond "no crash", each parser is checked against a second implementation:
 * a parsed amount formats back to the same cents, a parsed day formats back
 * to the same text, and a placed_at without an offset falls on the day its
 * text names, as analytics' own calendar arithmetic computes it.
 */
#include "fuzz.h"

#include "analytics.h"
#include "money.h"
#include "oms.h"
#include "order_csv.h"

/* Drops the thousands separators of money_format's output. */
static void strip_commas(const char *in, char *out, size_t out_len)
{
    size_t n = 0;
    for (; *in != '\0' && n + 1 < out_len; in++)
        if (*in != ',')
            out[n++] = *in;
    out[n] = '\0';
}

static void check_money_text(const char *text)
{
    static const int64_t limits[] = {MONEY_MAX_CENTS, 100000000000000LL, INT64_MAX, 0};
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        int64_t cents = -1;
        if (money_parse(text, limits[i], &cents) != OMS_OK)
            continue;
        FUZZ_CHECK(cents >= 0 && cents <= limits[i]);
        char formatted[64], plain[64];
        int64_t again = -1;
        money_format(cents, formatted, sizeof formatted);
        strip_commas(formatted, plain, sizeof plain);
        FUZZ_CHECK(money_parse(plain, limits[i], &again) == OMS_OK && again == cents);
    }
}

/* Any int64 formats, and a non-negative one parses back to itself. */
static void check_money_value(int64_t cents)
{
    char formatted[64], plain[64];
    money_format(cents, formatted, sizeof formatted);
    FUZZ_CHECK(strlen(formatted) >= 4 && formatted[strlen(formatted) - 3] == '.');
    if (cents < 0) {
        FUZZ_CHECK(formatted[0] == '-');
        return;
    }
    int64_t again = -1;
    strip_commas(formatted, plain, sizeof plain);
    FUZZ_CHECK(money_parse(plain, INT64_MAX, &again) == OMS_OK && again == cents);
}

static void check_currency(const char *text)
{
    bool valid = strlen(text) == 3;
    for (size_t i = 0; valid && i < 3; i++)
        valid = text[i] >= 'A' && text[i] <= 'Z';
    FUZZ_CHECK(money_currency_valid(text) == valid);
}

static void check_placed_at(const char *text)
{
    int64_t ms = 0;
    char day[ANALYTICS_DAY_LEN], month[ANALYTICS_MONTH_LEN];
    if (order_csv_parse_time(text, &ms) != OMS_OK)
        return;
    bool has_offset = strchr(text, '+') != NULL || strchr(text + 10, '-') != NULL;
    if (has_offset || analytics_day_of(ms, day, month) != OMS_OK)
        return;
    FUZZ_CHECK(strncmp(day, text, 10) == 0);
}

static void check_days(const char *text)
{
    int64_t days = 0;
    char day[ANALYTICS_DAY_LEN];
    if (analytics_day_parse(text, &days) == OMS_OK) {
        analytics_day_format(days, day);
        FUZZ_CHECK(strcmp(day, text) == 0);
        char month[8];
        snprintf(month, sizeof month, "%.7s", text);
        FUZZ_CHECK(analytics_month_valid(month));
    }
    (void)analytics_month_valid(text);
}

/* The input split at its first NUL: two secrets. */
static void check_secret(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, '\0', size);
    if (nul == NULL)
        return;
    char *a = fuzz_strndup(data, (size_t)(nul - data));
    char *b = fuzz_strndup(nul + 1, size - (size_t)(nul - data) - 1);
    if (a != NULL && b != NULL)
        FUZZ_CHECK(oms_secret_equal(a, b) == (strcmp(a, b) == 0));
    free(a);
    free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_strndup(data, size);
    if (text == NULL)
        return 0;
    check_money_text(text);
    check_currency(text);
    check_placed_at(text);
    check_days(text);
    check_secret(data, size);
    if (size >= sizeof(int64_t)) {
        int64_t cents;
        memcpy(&cents, data, sizeof cents);
        check_money_value(cents);
    }
    free(text);
    return 0;
}
