/*
 * money.c - decimal text <-> integer cents, exactly.
 */
#include "money.h"

#include <stdio.h>
#include <string.h>

oms_status money_parse(const char *text, int64_t max_cents, int64_t *cents)
{
    int64_t units = 0;
    int frac_digits = 0, int_digits = 0;
    int64_t frac = 0;
    const char *p = text;

    for (; *p >= '0' && *p <= '9'; p++, int_digits++) {
        /* Bail out before units * 100 can overflow. */
        if (units > max_cents / 100)
            return OMS_EINVAL;
        units = units * 10 + (*p - '0');
    }
    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9'; p++, frac_digits++) {
            if (frac_digits == 2)
                return OMS_EINVAL;
            frac = frac * 10 + (*p - '0');
        }
    }
    if (*p != '\0' || (int_digits == 0 && frac_digits == 0))
        return OMS_EINVAL;
    if (frac_digits == 1)
        frac *= 10;
    /* units <= max_cents / 100 here, so units * 100 cannot overflow. */
    if (units > max_cents / 100 || units * 100 > max_cents - frac)
        return OMS_EINVAL;
    *cents = units * 100 + frac;
    return OMS_OK;
}

void money_format(int64_t cents, char *out, size_t out_len)
{
    char digits[32];
    bool negative = cents < 0;
    /* Work on the magnitude as unsigned so INT64_MIN does not overflow. */
    uint64_t mag = negative ? (uint64_t)0 - (uint64_t)cents : (uint64_t)cents;
    int n = snprintf(digits, sizeof digits, "%llu", (unsigned long long)(mag / 100));
    char grouped[48];
    size_t g = 0;
    for (int i = 0; i < n; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            grouped[g++] = ',';
        grouped[g++] = digits[i];
    }
    grouped[g] = '\0';
    snprintf(out, out_len, "%s%s.%02u", negative ? "-" : "", grouped, (unsigned)(mag % 100));
}

void money_format_currency(int64_t cents, const char *currency, char *out, size_t out_len)
{
    char amount[48];
    money_format(cents, amount, sizeof amount);
    snprintf(out, out_len, "%s %s", amount, currency);
}

bool money_currency_valid(const char *code)
{
    if (strlen(code) != 3)
        return false;
    for (int i = 0; i < 3; i++)
        if (code[i] < 'A' || code[i] > 'Z')
            return false;
    return true;
}
