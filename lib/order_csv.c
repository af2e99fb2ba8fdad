/*
 * order_csv.c - header mapping and row validation for order CSV.
 */
#include "order_csv.h"

#include "money.h"

#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

typedef struct column_name {
    const char *name;
    order_col col;
} column_name;

static const column_name NAMES[] = {
    {"order_id", OC_ORDER_ID},           {"external_order_id", OC_ORDER_ID},
    {"customer_id", OC_CUSTOMER_ID},     {"sku", OC_SKU},
    {"product_sku", OC_SKU},             {"qty", OC_QTY},
    {"unit_price", OC_UNIT_PRICE},       {"unit_price_cents", OC_UNIT_PRICE_CENTS},
    {"placed_at", OC_PLACED_AT},         {"order_placed_at", OC_PLACED_AT},
    {"currency", OC_CURRENCY},           {"customer_email", OC_CUSTOMER_EMAIL},
    {"customer_name", OC_CUSTOMER_NAME}, {"product_name", OC_PRODUCT_NAME},
};

static const char *const CANONICAL[OC_COUNT] = {
    "order_id",    "customer_id", "sku",           "qty",           "unit_price",  "unit_price_cents",
    "placed_at",   "currency",    "customer_email", "customer_name", "product_name",
};

const char *order_csv_column_name(order_col c)
{
    return (c >= 0 && c < OC_COUNT) ? CANONICAL[c] : "?";
}

static int lookup(const char *name)
{
    for (size_t i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++)
        if (strcasecmp(name, NAMES[i].name) == 0)
            return (int)NAMES[i].col;
    return -1;
}

void order_csv_header_default(order_csv_header *h)
{
    for (int i = 0; i < OC_COUNT; i++)
        h->index[i] = -1;
    h->index[OC_ORDER_ID] = 0;
    h->index[OC_CUSTOMER_ID] = 1;
    h->index[OC_SKU] = 2;
    h->index[OC_QTY] = 3;
    h->index[OC_UNIT_PRICE] = 4;
}

bool order_csv_is_header(char *const *fields, size_t n)
{
    /* Two distinct column names: one could be data (a SKU named "sku"). */
    int seen = -1;
    for (size_t i = 0; i < n; i++) {
        int col = lookup(fields[i]);
        if (col >= 0 && seen >= 0 && col != seen)
            return true;
        if (col >= 0)
            seen = col;
    }
    return false;
}

oms_status order_csv_header_parse(char *const *fields, size_t n, order_csv_header *h,
                                  order_col *missing, char err[ORDER_ERR_LEN])
{
    static const order_col required[] = {OC_ORDER_ID, OC_CUSTOMER_ID, OC_SKU, OC_QTY};
    for (int i = 0; i < OC_COUNT; i++)
        h->index[i] = -1;
    for (size_t i = 0; i < n; i++) {
        int col = lookup(fields[i]);
        if (col >= 0 && h->index[col] < 0)
            h->index[col] = (int)i;
    }
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        if (h->index[required[i]] < 0) {
            *missing = required[i];
            snprintf(err, ORDER_ERR_LEN,
                     "header has no %s column (required: order_id, customer_id, sku, qty, and "
                     "unit_price or unit_price_cents)",
                     CANONICAL[required[i]]);
            return OMS_EINVAL;
        }
    }
    if (h->index[OC_UNIT_PRICE] < 0 && h->index[OC_UNIT_PRICE_CENTS] < 0) {
        *missing = OC_UNIT_PRICE;
        snprintf(err, ORDER_ERR_LEN,
                 "header has neither a unit_price nor a unit_price_cents column (one is required)");
        return OMS_EINVAL;
    }
    return OMS_OK;
}

/* ---- values ---------------------------------------------------------- */

static const char *field_of(const order_csv_header *h, char *const *fields, size_t n, order_col c)
{
    int i = h->index[c];
    return (i >= 0 && (size_t)i < n) ? fields[i] : NULL;
}

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing past
 * U+10FFFF -- exactly what PostgreSQL accepts, so a row that passes here
 * can be stored by every consumer. */
bool order_csv_utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p++;
        int extra;
        unsigned min, cp;
        if (c < 0x80)
            continue;
        if ((c >> 5) == 6)
            extra = 1, min = 0x80, cp = c & 0x1f;
        else if ((c >> 4) == 14)
            extra = 2, min = 0x800, cp = c & 0x0f;
        else if ((c >> 3) == 30)
            extra = 3, min = 0x10000, cp = c & 0x07;
        else
            return false;
        for (int i = 0; i < extra; i++, p++) {
            if ((*p & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (*p & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
    }
    return true;
}

static oms_status fail(order_row *out, order_col col, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static oms_status fail(order_row *out, order_col col, const char *fmt, ...)
{
    int n = snprintf(out->error, sizeof out->error, "row %d: ", out->row);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->error + n, sizeof out->error - (size_t)n, fmt, ap);
    va_end(ap);
    out->field = CANONICAL[col];
    return OMS_EINVAL;
}

/* Position (from 1) of the first C0 control character or DEL in s, 0 when
 * none. Free text (a name) may hold tabs and line ends, which quoted CSV
 * carries faithfully; an id never means one, and escapes or bells are never
 * text: they would show as something else in every report downstream. */
static size_t control_at(const char *s, bool free_text)
{
    for (size_t i = 0; s[i] != '\0'; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (free_text && (ch == '\t' || ch == '\n' || ch == '\r'))
            continue;
        if (ch < 0x20 || ch == 0x7f)
            return i + 1;
    }
    return 0;
}

/* Checks a text column: required ones must be non-empty; all must be short,
 * free of control characters (names may hold tabs and line ends) and valid
 * UTF-8. Sets *value ("" when absent). */
static oms_status text_col(const order_csv_header *h, char *const *fields, size_t n,
                           order_col c, bool required, const char **value, order_row *out)
{
    const char *v = field_of(h, fields, n, c);
    *value = v ? v : "";
    if (required && **value == '\0')
        return fail(out, c, "%s is empty", CANONICAL[c]);
    if (strlen(*value) > ORDER_FIELD_MAX)
        return fail(out, c, "%s is longer than %d bytes", CANONICAL[c], ORDER_FIELD_MAX);
    size_t at = control_at(*value, c == OC_CUSTOMER_NAME || c == OC_PRODUCT_NAME);
    if (at > 0)
        return fail(out, c, "%s contains control character 0x%02X at byte %zu", CANONICAL[c],
                    (unsigned)(unsigned char)(*value)[at - 1], at);
    if (!order_csv_utf8_valid(*value))
        return fail(out, c, "%s is not valid UTF-8", CANONICAL[c]);
    return OMS_OK;
}

static oms_status parse_qty(const char *v, order_row *out)
{
    char *end = NULL;
    errno = 0;
    long q = strtol(v, &end, 10);
    if (*v == '\0' || !isdigit((unsigned char)*v) || *end != '\0' || errno != 0 || q < 1 ||
        q > ORDER_QTY_MAX)
        return fail(out, OC_QTY, "qty \"%.40s\" must be an integer from 1 to %d", v, ORDER_QTY_MAX);
    out->qty = (int32_t)q;
    return OMS_OK;
}

static oms_status parse_price(const order_csv_header *h, char *const *fields, size_t n,
                              order_row *out)
{
    const char *cents = field_of(h, fields, n, OC_UNIT_PRICE_CENTS);
    const char *dec = field_of(h, fields, n, OC_UNIT_PRICE);
    if (dec != NULL && *dec != '\0') {
        if (money_parse(dec, MONEY_MAX_CENTS, &out->unit_price_cents) != OMS_OK)
            return fail(out, OC_UNIT_PRICE,
                        "unit_price \"%.40s\" must be an amount from 0 to 10000000.00 with at "
                        "most 2 decimals",
                        dec);
        return OMS_OK;
    }
    if (cents != NULL && *cents != '\0') {
        char *end = NULL;
        errno = 0;
        long long c = strtoll(cents, &end, 10);
        if (!isdigit((unsigned char)*cents) || *end != '\0' || errno != 0 || c > MONEY_MAX_CENTS)
            return fail(out, OC_UNIT_PRICE_CENTS,
                        "unit_price_cents \"%.40s\" must be an integer from 0 to %lld", cents,
                        MONEY_MAX_CENTS);
        out->unit_price_cents = c;
        return OMS_OK;
    }
    /* Name the price column the header has (a short row has neither cell). */
    order_col col = h->index[OC_UNIT_PRICE] >= 0 ? OC_UNIT_PRICE : OC_UNIT_PRICE_CENTS;
    return fail(out, col, "%s is empty", CANONICAL[col]);
}

static int digits(const char **p, int count)
{
    int v = 0;
    for (int i = 0; i < count; i++, (*p)++) {
        if (!isdigit((unsigned char)**p))
            return -1;
        v = v * 10 + (**p - '0');
    }
    return v;
}

oms_status order_csv_parse_time(const char *text, int64_t *ms)
{
    const char *p = text;
    struct tm tm;
    int offset_min = 0, frac_ms = 0;
    memset(&tm, 0, sizeof tm);
    int y = digits(&p, 4), mo = (*p == '-') ? (p++, digits(&p, 2)) : -1,
        d = (*p == '-') ? (p++, digits(&p, 2)) : -1;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31)
        return OMS_EINVAL;
    int hh = 0, mi = 0, ss = 0;
    if (*p == 'T' || *p == ' ') {
        p++;
        hh = digits(&p, 2);
        mi = (*p == ':') ? (p++, digits(&p, 2)) : -1;
        ss = (*p == ':') ? (p++, digits(&p, 2)) : 0;
        if (hh < 0 || hh > 23 || mi < 0 || mi > 59 || ss < 0 || ss > 59)
            return OMS_EINVAL;
        if (*p == '.') {
            int scale = 100;
            if (!isdigit((unsigned char)p[1]))
                return OMS_EINVAL;
            for (p++; isdigit((unsigned char)*p); p++, scale /= 10)
                frac_ms += (*p - '0') * scale;
        }
        if (*p == 'Z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1;
            int oh = digits(&p, 2);
            if (*p == ':')
                p++;
            int om = digits(&p, 2);
            if (oh < 0 || oh > 23 || om < 0 || om > 59)
                return OMS_EINVAL;
            offset_min = sign * (oh * 60 + om);
        }
    }
    if (*p != '\0')
        return OMS_EINVAL;
    tm.tm_year = y - 1900, tm.tm_mon = mo - 1, tm.tm_mday = d;
    tm.tm_hour = hh, tm.tm_min = mi, tm.tm_sec = ss;
    time_t t = timegm(&tm);
    /* timegm normalises 2026-02-31 to March: refuse dates that moved. */
    if (t == (time_t)-1 || tm.tm_mday != d || tm.tm_mon != mo - 1)
        return OMS_EINVAL;
    *ms = ((int64_t)t - (int64_t)offset_min * 60) * 1000 + frac_ms;
    return OMS_OK;
}

static oms_status parse_optional(const order_csv_header *h, char *const *fields, size_t n,
                                 const char *currency, order_row *out)
{
    const char *v = field_of(h, fields, n, OC_PLACED_AT);
    if (v != NULL && *v != '\0' && order_csv_parse_time(v, &out->placed_at_ms) != OMS_OK)
        return fail(out, OC_PLACED_AT,
                    "placed_at \"%.60s\" is not a UTC time like 2026-11-02T10:15:00Z or "
                    "2026-11-02 10:15:00",
                    v);
    v = field_of(h, fields, n, OC_CURRENCY);
    out->currency = currency;
    if (v != NULL && *v != '\0' && strcasecmp(v, currency) != 0)
        return fail(out, OC_CURRENCY, "currency \"%.20s\" is not accepted: this system runs in %s",
                    v, currency);
    if (*out->customer_email != '\0' &&
        (strchr(out->customer_email, '@') == NULL || strchr(out->customer_email, ' ') != NULL))
        return fail(out, OC_CUSTOMER_EMAIL, "customer_email \"%.80s\" is not an email address",
                    out->customer_email);
    return OMS_OK;
}

oms_status order_csv_row_parse(const order_csv_header *h, char *const *fields, size_t n, int row,
                               const char *currency, order_row *out)
{
    memset(out, 0, sizeof *out);
    out->row = row;
    out->field = "";
    out->currency = currency;
    oms_status s;
    if ((s = text_col(h, fields, n, OC_ORDER_ID, true, &out->order_id, out)) != OMS_OK) {
        out->order_id = "";
        return s;
    }
    if ((s = text_col(h, fields, n, OC_CUSTOMER_ID, true, &out->customer_id, out)) ||
        (s = text_col(h, fields, n, OC_SKU, true, &out->sku, out)) ||
        (s = text_col(h, fields, n, OC_CUSTOMER_EMAIL, false, &out->customer_email, out)) ||
        (s = text_col(h, fields, n, OC_CUSTOMER_NAME, false, &out->customer_name, out)) ||
        (s = text_col(h, fields, n, OC_PRODUCT_NAME, false, &out->product_name, out)))
        return s;
    const char *qty = field_of(h, fields, n, OC_QTY);
    if ((s = parse_qty(qty ? qty : "", out)) != OMS_OK ||
        (s = parse_price(h, fields, n, out)) != OMS_OK)
        return s;
    return parse_optional(h, fields, n, currency, out);
}
