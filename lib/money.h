/*
 * money.h - exact money: integer minor units (cents), never floating point.
 */
#ifndef OMS_MONEY_H
#define OMS_MONEY_H

#include "oms.h"

#define MONEY_MAX_CENTS 1000000000LL /* 10,000,000.00: the largest unit price accepted */

/* Parses a non-negative decimal with at most 2 fraction digits ("1299.99",
 * "12", "0.5", "7.") into cents, up to max_cents. Returns OMS_EINVAL for
 * anything else: sign, exponent, more decimals, spaces, overflow. */
oms_status money_parse(const char *text, int64_t max_cents, int64_t *cents);

/* Formats cents as "1,234.56" (with a '-' when negative) into out. */
void money_format(int64_t cents, char *out, size_t out_len);

/* Formats cents as "1,234.56 USD". */
void money_format_currency(int64_t cents, const char *currency, char *out, size_t out_len);

/* True for a currency code of ISO 4217's form: three upper-case ASCII letters. */
bool money_currency_valid(const char *code);

#endif
