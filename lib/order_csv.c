/*
 * order_csv.c - header mapping and row validation for order CSV.
 */
#include "order_csv.h"

#include "money.h"
#include "utf8.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
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
    {"order_id", OC_ORDER_ID},
    {"external_order_id", OC_ORDER_ID},
    {"customer_id", OC_CUSTOMER_ID},
    {"sku", OC_SKU},
    {"product_sku", OC_SKU},
    {"qty", OC_QTY},
    {"unit_price", OC_UNIT_PRICE},
    {"unit_price_cents", OC_UNIT_PRICE_CENTS},
    {"placed_at", OC_PLACED_AT},
    {"order_placed_at", OC_PLACED_AT},
    {"currency", OC_CURRENCY},
    {"customer_email", OC_CUSTOMER_EMAIL},
    {"customer_name", OC_CUSTOMER_NAME},
    {"product_name", OC_PRODUCT_NAME},
    {"quantity", OC_QTY},
    {"products", OC_PRODUCTS},
    {"phone", OC_PHONE},
    {"address", OC_ADDRESS},
};

static const char *const CANONICAL[OC_COUNT] = {
    "order_id",       "customer_id",      "sku",          "qty",
    "unit_price",     "unit_price_cents", "placed_at",    "currency",
    "customer_email", "customer_name",    "product_name", "products",
    "phone",          "address",
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
    h->layout = ORDER_LAYOUT_LINES;
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

/* The product-list layout needs its products and a customer; the order id
 * is optional (generated from the file and the row). */
static oms_status products_header_check(const order_csv_header *h, order_col *missing,
                                        char err[ORDER_ERR_LEN])
{
    if (h->index[OC_CUSTOMER_ID] >= 0 || h->index[OC_CUSTOMER_EMAIL] >= 0)
        return OMS_OK;
    *missing = OC_CUSTOMER_ID;
    snprintf(err, ORDER_ERR_LEN,
             "header has neither a customer_id nor a customer_email column (the product-list "
             "layout, with a products column, needs one)");
    return OMS_EINVAL;
}

oms_status order_csv_header_parse(char *const *fields, size_t n, order_csv_header *h,
                                  order_col *missing, char err[ORDER_ERR_LEN])
{
    static const order_col required[] = {OC_ORDER_ID, OC_CUSTOMER_ID, OC_SKU, OC_QTY};
    for (int i = 0; i < OC_COUNT; i++)
        h->index[i] = -1;
    h->layout = ORDER_LAYOUT_LINES;
    for (size_t i = 0; i < n; i++) {
        int col = lookup(fields[i]);
        if (col >= 0 && h->index[col] < 0)
            h->index[col] = (int)i;
    }
    if (h->index[OC_PRODUCTS] >= 0 && h->index[OC_SKU] < 0) {
        h->layout = ORDER_LAYOUT_PRODUCTS;
        return products_header_check(h, missing, err);
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
static oms_status text_col(const order_csv_header *h, char *const *fields, size_t n, order_col c,
                           bool required, const char **value, order_row *out)
{
    const char *v = field_of(h, fields, n, c);
    *value = v ? v : "";
    if (required && **value == '\0')
        return fail(out, c, "%s is empty", CANONICAL[c]);
    if (strlen(*value) > ORDER_FIELD_MAX)
        return fail(out, c, "%s is longer than %d bytes", CANONICAL[c], ORDER_FIELD_MAX);
    size_t at = control_at(*value,
                           c == OC_CUSTOMER_NAME || c == OC_PRODUCT_NAME || c == OC_ADDRESS);
    if (at > 0)
        return fail(out, c, "%s contains control character 0x%02X at byte %zu", CANONICAL[c],
                    (unsigned)(unsigned char)(*value)[at - 1], at);
    if (!utf8_valid(*value))
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

/* customer_id when given, otherwise the email lowercased (one customer
 * whatever the case a shop exported it in). */
static oms_status products_customer(const order_csv_header *h, char *const *fields, size_t n,
                                    order_row *out)
{
    oms_status s;
    if ((s = text_col(h, fields, n, OC_CUSTOMER_ID, false, &out->customer_id, out)) ||
        (s = text_col(h, fields, n, OC_CUSTOMER_EMAIL, false, &out->customer_email, out)))
        return s;
    if (*out->customer_id != '\0')
        return OMS_OK;
    if (*out->customer_email == '\0')
        return fail(out, h->index[OC_CUSTOMER_ID] >= 0 ? OC_CUSTOMER_ID : OC_CUSTOMER_EMAIL,
                    "%s is empty: the row names no customer",
                    h->index[OC_CUSTOMER_ID] >= 0 ? "customer_id" : "customer_email");
    size_t i = 0;
    for (; out->customer_email[i] != '\0'; i++)
        out->customer_id_buf[i] = (char)tolower((unsigned char)out->customer_email[i]);
    out->customer_id_buf[i] = '\0';
    out->customer_id = out->customer_id_buf;
    return OMS_OK;
}

/* A row of the product-list layout: one order, its lines in products. */
static oms_status products_row_parse(const order_csv_header *h, char *const *fields, size_t n,
                                     const char *currency, order_row *out)
{
    oms_status s;
    if ((s = text_col(h, fields, n, OC_ORDER_ID, false, &out->order_id, out)) != OMS_OK) {
        out->order_id = "";
        return s;
    }
    out->sku = "";
    out->product_name = "";
    if ((s = products_customer(h, fields, n, out)) ||
        (s = text_col(h, fields, n, OC_CUSTOMER_NAME, false, &out->customer_name, out)) ||
        (s = text_col(h, fields, n, OC_PHONE, false, &out->phone, out)) ||
        (s = text_col(h, fields, n, OC_ADDRESS, false, &out->address, out)) ||
        (s = parse_optional(h, fields, n, currency, out)))
        return s;
    const char *cell = field_of(h, fields, n, OC_PRODUCTS);
    return order_csv_products_parse(cell ? cell : "", out);
}

void order_row_fini(order_row *r)
{
    for (size_t i = 0; i < r->n_items; i++)
        free(r->items[i].sku);
    free(r->items);
    r->items = NULL;
    r->n_items = 0;
}

oms_status order_csv_row_parse(const order_csv_header *h, char *const *fields, size_t n, int row,
                               const char *currency, order_row *out)
{
    memset(out, 0, sizeof *out);
    out->row = row;
    out->field = "";
    out->currency = currency;
    out->phone = "";
    out->address = "";
    oms_status s;
    if (h->layout == ORDER_LAYOUT_PRODUCTS)
        return products_row_parse(h, fields, n, currency, out);
    if ((s = text_col(h, fields, n, OC_ORDER_ID, true, &out->order_id, out)) != OMS_OK) {
        out->order_id = "";
        return s;
    }
    if ((s = text_col(h, fields, n, OC_CUSTOMER_ID, true, &out->customer_id, out)) ||
        (s = text_col(h, fields, n, OC_SKU, true, &out->sku, out)) ||
        (s = text_col(h, fields, n, OC_CUSTOMER_EMAIL, false, &out->customer_email, out)) ||
        (s = text_col(h, fields, n, OC_CUSTOMER_NAME, false, &out->customer_name, out)) ||
        (s = text_col(h, fields, n, OC_PRODUCT_NAME, false, &out->product_name, out)) ||
        (s = text_col(h, fields, n, OC_PHONE, false, &out->phone, out)) ||
        (s = text_col(h, fields, n, OC_ADDRESS, false, &out->address, out)))
        return s;
    const char *qty = field_of(h, fields, n, OC_QTY);
    if ((s = parse_qty(qty ? qty : "", out)) != OMS_OK ||
        (s = parse_price(h, fields, n, out)) != OMS_OK)
        return s;
    return parse_optional(h, fields, n, currency, out);
}

/* ---- the products cell (product-list layout) ---------------------------- */

/* The element's value as the user wrote it, for messages: "0", "-3",
 * "1.5", "\"two\"". */
static void json_text(const json_t *v, char *out, size_t out_len)
{
    char *dump = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    snprintf(out, out_len, "%.40s", dump ? dump : "?");
    free(dump);
}

static oms_status element_qty(const json_t *el, size_t i, order_row *out, int32_t *qty)
{
    const char *key = json_object_get(el, "quantity") ? "quantity" : "qty";
    const json_t *v = json_object_get(el, key);
    char text[48];
    if (v == NULL)
        return fail(out, OC_PRODUCTS, "products[%zu].quantity is missing", i);
    json_int_t q = json_is_integer(v) ? json_integer_value(v) : 0;
    if (!json_is_integer(v) || q < 1 || q > ORDER_QTY_MAX) {
        json_text(v, text, sizeof text);
        return fail(out, OC_PRODUCTS, "products[%zu].%s %s%s%s must be an integer from 1 to %d", i,
                    key, json_is_string(v) ? "" : "\"", text, json_is_string(v) ? "" : "\"",
                    ORDER_QTY_MAX);
    }
    *qty = (int32_t)q;
    return OMS_OK;
}

/* A decimal amount: a string ("12.50", parsed like the unit_price column)
 * or a JSON number, which must be a whole number of cents. */
static oms_status decimal_price(const json_t *v, int64_t *cents)
{
    if (json_is_string(v))
        return money_parse(json_string_value(v), MONEY_MAX_CENTS, cents);
    if (!json_is_number(v))
        return OMS_EINVAL;
    double scaled = json_number_value(v) * 100.0;
    double whole = round(scaled);
    if (scaled < 0 || whole > (double)MONEY_MAX_CENTS || fabs(scaled - whole) > 1e-6)
        return OMS_EINVAL;
    *cents = (int64_t)whole;
    return OMS_OK;
}

static oms_status element_price(const json_t *el, size_t i, order_row *out, int64_t *cents)
{
    const json_t *dec = json_object_get(el, "unit_price");
    const json_t *whole = json_object_get(el, "unit_price_cents");
    char text[48];
    *cents = -1;
    if (dec != NULL && !json_is_null(dec)) {
        if (decimal_price(dec, cents) == OMS_OK)
            return OMS_OK;
        json_text(dec, text, sizeof text);
        return fail(out, OC_PRODUCTS,
                    "products[%zu].unit_price %s must be an amount from 0 to 10000000.00 with at "
                    "most 2 decimals",
                    i, text);
    }
    if (whole != NULL && !json_is_null(whole)) {
        json_int_t c = json_is_integer(whole) ? json_integer_value(whole) : -1;
        if (c < 0 || c > MONEY_MAX_CENTS) {
            json_text(whole, text, sizeof text);
            return fail(out, OC_PRODUCTS,
                        "products[%zu].unit_price_cents %s must be an integer from 0 to %lld", i,
                        text, MONEY_MAX_CENTS);
        }
        *cents = c;
    }
    return OMS_OK;
}

static oms_status element_sku(const json_t *el, size_t i, order_row *out, const char **sku)
{
    const json_t *v = json_object_get(el, "sku");
    if (v == NULL)
        return fail(out, OC_PRODUCTS, "products[%zu].sku is missing", i);
    *sku = json_string_value(v);
    if (*sku == NULL || **sku == '\0')
        return fail(out, OC_PRODUCTS, "products[%zu].sku must be a non-empty string", i);
    if (strlen(*sku) > ORDER_FIELD_MAX)
        return fail(out, OC_PRODUCTS, "products[%zu].sku is longer than %d bytes", i,
                    ORDER_FIELD_MAX);
    size_t at = control_at(*sku, false);
    if (at > 0)
        return fail(out, OC_PRODUCTS,
                    "products[%zu].sku contains control character 0x%02X at "
                    "byte %zu",
                    i, (unsigned)(unsigned char)(*sku)[at - 1], at);
    return OMS_OK;
}

/* Adds the element's line to out->items, summed with an earlier line of
 * the same SKU (the total must stay in range, and the prices agree). */
static oms_status add_item(order_row *out, size_t i, const char *sku, int32_t qty, int64_t cents)
{
    for (size_t k = 0; k < out->n_items; k++) {
        order_item *it = &out->items[k];
        if (strcmp(it->sku, sku) != 0)
            continue;
        if (it->qty + qty > ORDER_QTY_MAX)
            return fail(out, OC_PRODUCTS, "products[%zu]: SKU %.80s totals %d, more than %d", i,
                        sku, it->qty + qty, ORDER_QTY_MAX);
        if (cents >= 0 && it->unit_price_cents >= 0 && cents != it->unit_price_cents)
            return fail(out, OC_PRODUCTS,
                        "products[%zu]: SKU %.80s has another price than "
                        "products[%d]",
                        i, sku, it->element);
        it->qty += qty;
        if (it->unit_price_cents < 0)
            it->unit_price_cents = cents;
        return OMS_OK;
    }
    order_item *it = &out->items[out->n_items];
    if ((it->sku = strdup(sku)) == NULL)
        return OMS_ENOMEM;
    it->qty = qty;
    it->unit_price_cents = cents;
    it->element = (int)i;
    out->n_items++;
    return OMS_OK;
}

static oms_status parse_elements(const json_t *arr, order_row *out)
{
    size_t n = json_array_size(arr), i;
    const json_t *el;
    if (n == 0)
        return fail(out, OC_PRODUCTS, "products is an empty array: an order needs a product");
    if (n > ORDER_PRODUCTS_MAX)
        return fail(out, OC_PRODUCTS, "products has %zu elements: at most %d", n,
                    ORDER_PRODUCTS_MAX);
    if ((out->items = calloc(n, sizeof *out->items)) == NULL)
        return OMS_ENOMEM;
    json_array_foreach(arr, i, el)
    {
        const char *sku = NULL;
        int32_t qty = 0;
        int64_t cents = -1;
        oms_status s;
        if (!json_is_object(el))
            return fail(out, OC_PRODUCTS, "products[%zu] is not an object with sku and quantity",
                        i);
        if ((s = element_sku(el, i, out, &sku)) || (s = element_qty(el, i, out, &qty)) ||
            (s = element_price(el, i, out, &cents)) || (s = add_item(out, i, sku, qty, cents)))
            return s;
    }
    return OMS_OK;
}

oms_status order_csv_products_parse(const char *cell, order_row *out)
{
    json_error_t jerr;
    out->field = "";
    if (*cell == '\0')
        return fail(out, OC_PRODUCTS, "products is empty");
    if (strlen(cell) > ORDER_CSV_PRODUCTS_BYTES_MAX)
        return fail(out, OC_PRODUCTS, "products is longer than %d bytes",
                    ORDER_CSV_PRODUCTS_BYTES_MAX);
    if (!utf8_valid(cell))
        return fail(out, OC_PRODUCTS, "products is not valid UTF-8");
    json_t *arr = json_loads(cell, JSON_REJECT_DUPLICATES, &jerr);
    oms_status s;
    if (arr == NULL)
        s = fail(out, OC_PRODUCTS, "products is not a JSON array: %.120s (at character %d)",
                 jerr.text, jerr.position);
    else if (!json_is_array(arr))
        s = fail(out, OC_PRODUCTS, "products is not a JSON array: it is a JSON %s",
                 json_is_object(arr)   ? "object"
                 : json_is_string(arr) ? "string"
                                       : "value");
    else
        s = parse_elements(arr, out);
    json_decref(arr);
    if (s != OMS_OK)
        order_row_fini(out);
    return s;
}

void order_csv_generated_id(const char *content_sha256_hex, int row, char *out, size_t out_len)
{
    snprintf(out, out_len, "pl-%.16s-%d", content_sha256_hex, row);
}
