/*
 * test_order_csv.c - the order CSV contract: header mapping (case, aliases,
 * any order, unknown columns), the exact error sentence and column for each
 * invalid value, and placed_at parsing to UTC milliseconds.
 *
 * Expected epoch values were computed independently with
 * `date -u -d 2026-11-02T10:15:00Z +%s` (= 1793614500) and friends.
 */
#include "testenv.h"

#include "order_csv.h"

#include <stdio.h>
#include <string.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))

#define T_2026_11_02_1015Z 1793614500000LL
#define T_2026_11_02_0815Z 1793607300000LL
#define T_2026_11_02_1445Z 1793630700000LL
#define T_2026_11_02_0000Z 1793577600000LL
#define T_2024_02_29_0000Z 1709164800000LL

/* ---- header ------------------------------------------------------------ */

static void test_column_names(void **state)
{
    (void)state;
    static const char *const want[OC_COUNT] = {
        "order_id",       "customer_id",      "sku",          "qty",
        "unit_price",     "unit_price_cents", "placed_at",    "currency",
        "customer_email", "customer_name",    "product_name", "products",
        "phone",          "address",
    };
    for (int c = 0; c < OC_COUNT; c++)
        assert_string_equal(order_csv_column_name((order_col)c), want[c]);
    assert_string_equal(order_csv_column_name(OC_COUNT), "?");
    assert_string_equal(order_csv_column_name((order_col)-1), "?");
}

static void test_header_default(void **state)
{
    (void)state;
    order_csv_header h;
    memset(&h, 0x5a, sizeof h);
    order_csv_header_default(&h);
    static const int want[OC_COUNT] = {0, 1, 2, 3, 4, -1, -1, -1, -1, -1, -1, -1, -1, -1};
    for (int c = 0; c < OC_COUNT; c++)
        assert_int_equal(h.index[c], want[c]);
}

static void test_is_header(void **state)
{
    (void)state;
    char *canonical[] = {"order_id", "customer_id", "sku", "qty", "unit_price"};
    char *alias_upper[] = {"whatever", "EXTERNAL_ORDER_ID", "Product_SKU"};
    /* A data row whose SKU happens to be called "sku" is still data. */
    char *sku_named_sku[] = {"A-1001", "C-7", "sku", "2", "9.99"};
    char *data[] = {"A-1001", "C-7", "SKU-1", "2", "9.99"};
    char *unknown[] = {"id", "customer", "item", "quantity"};
    assert_true(order_csv_is_header(canonical, N(canonical)));
    assert_true(order_csv_is_header(alias_upper, N(alias_upper)));
    assert_false(order_csv_is_header(data, N(data)));
    assert_false(order_csv_is_header(unknown, N(unknown)));
    assert_false(order_csv_is_header(data, 0));
    assert_false(order_csv_is_header(sku_named_sku, N(sku_named_sku)));
}

static void test_header_canonical(void **state)
{
    (void)state;
    char *names[] = {"order_id", "customer_id", "sku", "qty", "unit_price"};
    order_csv_header h;
    order_col missing = OC_COUNT;
    char err[ORDER_ERR_LEN] = "";
    assert_int_equal(order_csv_header_parse(names, N(names), &h, &missing, err), OMS_OK);
    static const int want[OC_COUNT] = {0, 1, 2, 3, 4, -1, -1, -1, -1, -1, -1, -1, -1, -1};
    for (int c = 0; c < OC_COUNT; c++)
        assert_int_equal(h.index[c], want[c]);
    assert_int_equal(missing, OC_COUNT);
    assert_string_equal(err, "");
}

/* Any case, the aliases, any order; unknown columns are skipped. */
static void test_header_aliases_case_order_unknown(void **state)
{
    (void)state;
    char *names[] = {"Product_Name",
                     "QTY",
                     "notes",
                     "External_Order_ID",
                     "CUSTOMER_ID",
                     "product_sku",
                     "Unit_Price_Cents",
                     "ORDER_PLACED_AT",
                     "warehouse",
                     "Currency",
                     "customer_EMAIL",
                     "Customer_Name"};
    order_csv_header h;
    order_col missing = OC_COUNT;
    char err[ORDER_ERR_LEN] = "";
    assert_int_equal(order_csv_header_parse(names, N(names), &h, &missing, err), OMS_OK);
    assert_int_equal(h.index[OC_ORDER_ID], 3);
    assert_int_equal(h.index[OC_CUSTOMER_ID], 4);
    assert_int_equal(h.index[OC_SKU], 5);
    assert_int_equal(h.index[OC_QTY], 1);
    assert_int_equal(h.index[OC_UNIT_PRICE], -1);
    assert_int_equal(h.index[OC_UNIT_PRICE_CENTS], 6);
    assert_int_equal(h.index[OC_PLACED_AT], 7);
    assert_int_equal(h.index[OC_CURRENCY], 9);
    assert_int_equal(h.index[OC_CUSTOMER_EMAIL], 10);
    assert_int_equal(h.index[OC_CUSTOMER_NAME], 11);
    assert_int_equal(h.index[OC_PRODUCT_NAME], 0);
}

/* A column named twice (directly or through an alias): the first one wins. */
static void test_header_first_duplicate_wins(void **state)
{
    (void)state;
    char *names[] = {"sku",        "order_id",    "customer_id",      "qty",
                     "unit_price", "product_sku", "external_order_id"};
    order_csv_header h;
    order_col missing = OC_COUNT;
    char err[ORDER_ERR_LEN] = "";
    assert_int_equal(order_csv_header_parse(names, N(names), &h, &missing, err), OMS_OK);
    assert_int_equal(h.index[OC_SKU], 0);
    assert_int_equal(h.index[OC_ORDER_ID], 1);
}

/* Drops one required column from a full header and checks the message. */
static void assert_missing(const char *drop, order_col want_col, const char *want_err)
{
    char *all[] = {"order_id", "customer_id", "sku", "qty", "unit_price"};
    char *names[N(all)];
    size_t n = 0;
    for (size_t i = 0; i < N(all); i++)
        if (strcmp(all[i], drop) != 0)
            names[n++] = all[i];
    order_csv_header h;
    order_col missing = OC_COUNT;
    char err[ORDER_ERR_LEN] = "";
    assert_int_equal(order_csv_header_parse(names, n, &h, &missing, err), OMS_EINVAL);
    assert_int_equal(missing, want_col);
    assert_string_equal(err, want_err);
}

static void test_header_missing_required_names_it(void **state)
{
    (void)state;
    assert_missing("order_id", OC_ORDER_ID,
                   "header has no order_id column (required: order_id, customer_id, sku, qty, "
                   "and unit_price or unit_price_cents)");
    assert_missing("customer_id", OC_CUSTOMER_ID,
                   "header has no customer_id column (required: order_id, customer_id, sku, qty, "
                   "and unit_price or unit_price_cents)");
    assert_missing("sku", OC_SKU,
                   "header has no sku column (required: order_id, customer_id, sku, qty, and "
                   "unit_price or unit_price_cents)");
    assert_missing("qty", OC_QTY,
                   "header has no qty column (required: order_id, customer_id, sku, qty, and "
                   "unit_price or unit_price_cents)");
    assert_missing("unit_price", OC_UNIT_PRICE,
                   "header has neither a unit_price nor a unit_price_cents column (one is "
                   "required)");
}

static void test_header_either_price_column_is_enough(void **state)
{
    (void)state;
    char *decimal[] = {"order_id", "customer_id", "sku", "qty", "unit_price"};
    char *cents[] = {"order_id", "customer_id", "sku", "qty", "unit_price_cents"};
    char *both[] = {"unit_price_cents", "order_id", "customer_id", "sku", "qty", "unit_price"};
    order_csv_header h;
    order_col missing = OC_COUNT;
    char err[ORDER_ERR_LEN] = "";
    assert_int_equal(order_csv_header_parse(decimal, N(decimal), &h, &missing, err), OMS_OK);
    assert_int_equal(h.index[OC_UNIT_PRICE], 4);
    assert_int_equal(h.index[OC_UNIT_PRICE_CENTS], -1);
    assert_int_equal(order_csv_header_parse(cents, N(cents), &h, &missing, err), OMS_OK);
    assert_int_equal(h.index[OC_UNIT_PRICE], -1);
    assert_int_equal(h.index[OC_UNIT_PRICE_CENTS], 4);
    assert_int_equal(order_csv_header_parse(both, N(both), &h, &missing, err), OMS_OK);
    assert_int_equal(h.index[OC_UNIT_PRICE], 5);
    assert_int_equal(h.index[OC_UNIT_PRICE_CENTS], 0);
    assert_int_equal(missing, OC_COUNT);
}

/* ---- rows -------------------------------------------------------------- */

/* The full header used by most row tests. */
static char *const FULL[] = {"order_id",     "customer_id",     "sku",
                             "qty",          "unit_price",      "placed_at",
                             "currency",     "customer_email",  "customer_name",
                             "product_name", "unit_price_cents"};
enum {
    F_ORDER,
    F_CUST,
    F_SKU,
    F_QTY,
    F_PRICE,
    F_PLACED,
    F_CUR,
    F_EMAIL,
    F_CNAME,
    F_PNAME,
    F_CENTS
};

static void full_header(order_csv_header *h)
{
    order_col missing;
    char err[ORDER_ERR_LEN];
    assert_int_equal(order_csv_header_parse(FULL, N(FULL), h, &missing, err), OMS_OK);
}

/* A valid row for FULL that a test then spoils one field of. */
static void good_row(char *f[N(FULL)])
{
    f[F_ORDER] = "A-1001";
    f[F_CUST] = "C-7";
    f[F_SKU] = "SKU-1";
    f[F_QTY] = "2";
    f[F_PRICE] = "19.99";
    f[F_PLACED] = "2026-11-02T10:15:00Z";
    f[F_CUR] = "USD";
    f[F_EMAIL] = "ada@example.com";
    f[F_CNAME] = "Ada Lovelace";
    f[F_PNAME] = "Widget";
    f[F_CENTS] = "";
}

/* Parses a FULL row with one field replaced, as row 17, currency USD, and
 * asserts the exact error sentence and column. */
static void assert_row_error(int col, const char *value, const char *want_field,
                             const char *want_error)
{
    order_csv_header h;
    full_header(&h);
    char *f[N(FULL)];
    good_row(f);
    f[col] = (char *)value;
    order_row r;
    oms_status s = order_csv_row_parse(&h, f, N(f), 17, "USD", &r);
    if (s != OMS_EINVAL)
        fail_msg("%s=\"%s\": status %d, want OMS_EINVAL", FULL[col], value, (int)s);
    assert_int_equal(r.row, 17);
    assert_string_equal(r.error, want_error);
    assert_string_equal(r.field, want_field);
}

/* Parses a FULL row with one field replaced and asserts it is accepted. */
static void parse_ok(int col, const char *value, order_row *r)
{
    order_csv_header h;
    full_header(&h);
    char *f[N(FULL)];
    good_row(f);
    f[col] = (char *)value;
    oms_status s = order_csv_row_parse(&h, f, N(f), 17, "USD", r);
    if (s != OMS_OK)
        fail_msg("%s=\"%s\": %s", FULL[col], value, r->error);
    assert_string_equal(r->field, "");
    assert_string_equal(r->error, "");
}

static void test_row_valid_all_columns(void **state)
{
    (void)state;
    order_row r;
    parse_ok(F_ORDER, "A-1001", &r);
    assert_int_equal(r.row, 17);
    assert_string_equal(r.order_id, "A-1001");
    assert_string_equal(r.customer_id, "C-7");
    assert_string_equal(r.sku, "SKU-1");
    assert_int_equal(r.qty, 2);
    assert_int_equal(r.unit_price_cents, 1999);
    assert_int_equal(r.placed_at_ms, T_2026_11_02_1015Z);
    assert_string_equal(r.currency, "USD");
    assert_string_equal(r.customer_email, "ada@example.com");
    assert_string_equal(r.customer_name, "Ada Lovelace");
    assert_string_equal(r.product_name, "Widget");
}

/* The headerless layout: order_id,customer_id,sku,qty,unit_price. Optional
 * columns come out as "" and placed_at as 0. */
static void test_row_default_header(void **state)
{
    (void)state;
    order_csv_header h;
    order_csv_header_default(&h);
    char *f[] = {"A-1", "C-1", "SKU-9", "100000", "10000000.00"};
    order_row r;
    assert_int_equal(order_csv_row_parse(&h, f, N(f), 3, "EUR", &r), OMS_OK);
    assert_string_equal(r.order_id, "A-1");
    assert_int_equal(r.qty, 100000);
    assert_int_equal(r.unit_price_cents, 1000000000LL);
    assert_int_equal(r.placed_at_ms, 0);
    assert_string_equal(r.currency, "EUR");
    assert_string_equal(r.customer_email, "");
    assert_string_equal(r.customer_name, "");
    assert_string_equal(r.product_name, "");
}

static void test_row_empty_required_text(void **state)
{
    (void)state;
    assert_row_error(F_ORDER, "", "order_id", "row 17: order_id is empty");
    assert_row_error(F_CUST, "", "customer_id", "row 17: customer_id is empty");
    assert_row_error(F_SKU, "", "sku", "row 17: sku is empty");
}

/* order_id is reported back when readable, "" when it is the fault. */
static void test_row_order_id_on_error(void **state)
{
    (void)state;
    order_csv_header h;
    full_header(&h);
    char *f[N(FULL)];
    order_row r;
    good_row(f);
    f[F_SKU] = "";
    assert_int_equal(order_csv_row_parse(&h, f, N(f), 5, "USD", &r), OMS_EINVAL);
    assert_string_equal(r.order_id, "A-1001");
    good_row(f);
    f[F_ORDER] = "";
    assert_int_equal(order_csv_row_parse(&h, f, N(f), 5, "USD", &r), OMS_EINVAL);
    assert_non_null(r.order_id);
    assert_string_equal(r.order_id, "");
}

static void test_row_qty(void **state)
{
    (void)state;
    static const char *const bad[] = {"-2", "0",  "100001", "1.5", "abc",  "",
                                      " 3", "+3", "3 ",     "1e2", "0x10", "99999999999999999999"};
    for (size_t i = 0; i < N(bad); i++) {
        char want[ORDER_ERR_LEN];
        snprintf(want, sizeof want, "row 17: qty \"%s\" must be an integer from 1 to 100000",
                 bad[i]);
        assert_row_error(F_QTY, bad[i], "qty", want);
    }
    /* The exact sentence the brief promises users, spelled out once. */
    assert_row_error(F_QTY, "-2", "qty", "row 17: qty \"-2\" must be an integer from 1 to 100000");
    order_row r;
    parse_ok(F_QTY, "1", &r);
    assert_int_equal(r.qty, 1);
    parse_ok(F_QTY, "100000", &r);
    assert_int_equal(r.qty, 100000);
    parse_ok(F_QTY, "007", &r);
    assert_int_equal(r.qty, 7);
}

static void test_row_unit_price(void **state)
{
    (void)state;
    static const char *const bad[] = {"12.345", "-1.00", "10000000.01", "1e3",
                                      "1,000",  "abc",   "$5"};
    for (size_t i = 0; i < N(bad); i++) {
        char want[ORDER_ERR_LEN];
        snprintf(want, sizeof want,
                 "row 17: unit_price \"%s\" must be an amount from 0 to 10000000.00 with at "
                 "most 2 decimals",
                 bad[i]);
        assert_row_error(F_PRICE, bad[i], "unit_price", want);
    }
    order_row r;
    parse_ok(F_PRICE, "10000000.00", &r);
    assert_int_equal(r.unit_price_cents, 1000000000LL);
    parse_ok(F_PRICE, "0", &r);
    assert_int_equal(r.unit_price_cents, 0);
    parse_ok(F_PRICE, "12.3", &r);
    assert_int_equal(r.unit_price_cents, 1230);
}

/* unit_price_cents is used when unit_price is absent or empty. */
static void test_row_unit_price_cents(void **state)
{
    (void)state;
    order_csv_header h;
    full_header(&h);
    char *f[N(FULL)];
    order_row r;

    good_row(f);
    f[F_PRICE] = "";
    f[F_CENTS] = "1000000000";
    assert_int_equal(order_csv_row_parse(&h, f, N(f), 17, "USD", &r), OMS_OK);
    assert_int_equal(r.unit_price_cents, 1000000000LL);

    f[F_CENTS] = "0";
    assert_int_equal(order_csv_row_parse(&h, f, N(f), 17, "USD", &r), OMS_OK);
    assert_int_equal(r.unit_price_cents, 0);

    /* A non-empty unit_price wins over unit_price_cents. */
    f[F_PRICE] = "1.00";
    f[F_CENTS] = "5";
    assert_int_equal(order_csv_row_parse(&h, f, N(f), 17, "USD", &r), OMS_OK);
    assert_int_equal(r.unit_price_cents, 100);

    static const char *const bad[] = {"1000000001",           "-5", "12.5", "abc",
                                      "99999999999999999999", " 5"};
    for (size_t i = 0; i < N(bad); i++) {
        good_row(f);
        f[F_PRICE] = "";
        f[F_CENTS] = (char *)bad[i];
        assert_int_equal(order_csv_row_parse(&h, f, N(f), 17, "USD", &r), OMS_EINVAL);
        char want[ORDER_ERR_LEN];
        snprintf(want, sizeof want,
                 "row 17: unit_price_cents \"%s\" must be an integer from 0 to 1000000000", bad[i]);
        assert_string_equal(r.error, want);
        assert_string_equal(r.field, "unit_price_cents");
    }
}

static void test_row_no_price_at_all(void **state)
{
    (void)state;
    order_csv_header h;
    char *f[N(FULL)];
    order_row r;

    /* Both columns present, both empty: names unit_price. */
    full_header(&h);
    good_row(f);
    f[F_PRICE] = "";
    assert_int_equal(order_csv_row_parse(&h, f, N(f), 17, "USD", &r), OMS_EINVAL);
    assert_string_equal(r.error, "row 17: unit_price is empty");
    assert_string_equal(r.field, "unit_price");

    /* Only a unit_price_cents column, empty. */
    char *names[] = {"order_id", "customer_id", "sku", "qty", "unit_price_cents"};
    order_col missing;
    char err[ORDER_ERR_LEN];
    assert_int_equal(order_csv_header_parse(names, N(names), &h, &missing, err), OMS_OK);
    char *row[] = {"A-1", "C-1", "SKU-1", "1", ""};
    assert_int_equal(order_csv_row_parse(&h, row, N(row), 17, "USD", &r), OMS_EINVAL);
    assert_string_equal(r.error, "row 17: unit_price_cents is empty");
    assert_string_equal(r.field, "unit_price_cents");
}

/* A row shorter than the header names the price column the header maps. */
static void test_row_short_row_names_mapped_price_column(void **state)
{
    (void)state;
    order_csv_header h;
    order_csv_header_default(&h);
    char *f[] = {"A-1", "C-1", "SKU-1", "1"};
    order_row r;
    assert_int_equal(order_csv_row_parse(&h, f, N(f), 17, "USD", &r), OMS_EINVAL);
    assert_string_equal(r.error, "row 17: unit_price is empty");
    assert_string_equal(r.field, "unit_price");
}

/* Cells missing at the end of a short row count as empty. */
static void test_row_short_row_required_text(void **state)
{
    (void)state;
    order_csv_header h;
    order_csv_header_default(&h);
    char *f[] = {"A-1", "C-1"};
    order_row r;
    assert_int_equal(order_csv_row_parse(&h, f, N(f), 4, "USD", &r), OMS_EINVAL);
    assert_string_equal(r.error, "row 4: sku is empty");
    assert_string_equal(r.field, "sku");
    assert_string_equal(r.order_id, "A-1");
}

static void test_row_currency(void **state)
{
    (void)state;
    assert_row_error(F_CUR, "EUR", "currency",
                     "row 17: currency \"EUR\" is not accepted: this system runs in USD");
    assert_row_error(F_CUR, "US", "currency",
                     "row 17: currency \"US\" is not accepted: this system runs in USD");
    order_row r;
    parse_ok(F_CUR, "usd", &r);
    assert_string_equal(r.currency, "USD");
    parse_ok(F_CUR, "Usd", &r);
    assert_string_equal(r.currency, "USD");
    parse_ok(F_CUR, "", &r);
    assert_string_equal(r.currency, "USD");
}

static void test_row_email(void **state)
{
    (void)state;
    assert_row_error(F_EMAIL, "ada.example.com", "customer_email",
                     "row 17: customer_email \"ada.example.com\" is not an email address");
    assert_row_error(F_EMAIL, "ada @example.com", "customer_email",
                     "row 17: customer_email \"ada @example.com\" is not an email address");
    order_row r;
    parse_ok(F_EMAIL, "", &r);
    assert_string_equal(r.customer_email, "");
    parse_ok(F_EMAIL, "o'brien+orders@example.co.uk", &r);
    assert_string_equal(r.customer_email, "o'brien+orders@example.co.uk");
}

static void test_row_field_too_long(void **state)
{
    (void)state;
    char at_max[ORDER_FIELD_MAX + 1], too_long[ORDER_FIELD_MAX + 2];
    memset(at_max, 'x', ORDER_FIELD_MAX);
    at_max[ORDER_FIELD_MAX] = '\0';
    memset(too_long, 'x', ORDER_FIELD_MAX + 1);
    too_long[ORDER_FIELD_MAX + 1] = '\0';

    order_row r;
    parse_ok(F_CNAME, at_max, &r);
    assert_int_equal(strlen(r.customer_name), 256);
    parse_ok(F_ORDER, at_max, &r);

    assert_row_error(F_ORDER, too_long, "order_id", "row 17: order_id is longer than 256 bytes");
    assert_row_error(F_CUST, too_long, "customer_id",
                     "row 17: customer_id is longer than 256 bytes");
    assert_row_error(F_SKU, too_long, "sku", "row 17: sku is longer than 256 bytes");
    assert_row_error(F_CNAME, too_long, "customer_name",
                     "row 17: customer_name is longer than 256 bytes");
    assert_row_error(F_PNAME, too_long, "product_name",
                     "row 17: product_name is longer than 256 bytes");
    /* A long email is refused for its length before its form is looked at. */
    assert_row_error(F_EMAIL, too_long, "customer_email",
                     "row 17: customer_email is longer than 256 bytes");
}

/* A control character in a text column is refused naming the column, the
 * byte and where it is; a NUL never gets this far (csvrec refuses it). */
static void test_row_control_characters(void **state)
{
    (void)state;
    assert_row_error(F_ORDER,
                     "ORD-1\x01"
                     "EVIL",
                     "order_id", "row 17: order_id contains control character 0x01 at byte 6");
    assert_row_error(F_CUST, "\x1b[31mC-7", "customer_id",
                     "row 17: customer_id contains control character 0x1B at byte 1");
    assert_row_error(F_SKU, "SKU-1\n", "sku",
                     "row 17: sku contains control character 0x0A at byte 6");
    assert_row_error(F_ORDER, "ORD\t1", "order_id",
                     "row 17: order_id contains control character 0x09 at byte 4");
    assert_row_error(F_CNAME, "Ada\aLovelace", "customer_name",
                     "row 17: customer_name contains control character 0x07 at byte 4");
    assert_row_error(F_PNAME, "Wid\x1b[1mget", "product_name",
                     "row 17: product_name contains control character 0x1B at byte 4");
    assert_row_error(F_EMAIL, "ada@example.com\x7f", "customer_email",
                     "row 17: customer_email contains control character 0x7F at byte 16");
    /* Length is looked at first, then control characters, then UTF-8. */
    assert_row_error(F_CUST, "\x01\xff", "customer_id",
                     "row 17: customer_id contains control character 0x01 at byte 1");
    /* Names are free text: tabs and line ends (quoted CSV carries them) pass,
     * as do printable ASCII and UTF-8 (U+0085, NEL, is not a C0 control). */
    order_row r;
    parse_ok(F_CNAME, "Doe, Jane\nline two\r\n\tthree", &r);
    assert_string_equal(r.customer_name, "Doe, Jane\nline two\r\n\tthree");
    parse_ok(F_PNAME, "Ada ~ Lovelace \xc2\x85", &r);
}

static void test_row_utf8(void **state)
{
    (void)state;
    order_row r;
    parse_ok(F_PNAME, "Caf\xc3\xa9 cr\xc3\xa8me \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80", &r);
    parse_ok(F_CNAME, "\xf4\x8f\xbf\xbf", &r); /* U+10FFFF, the last code point */

    static const char *const bad[] = {
        "caf\xc3",      /* truncated 2-byte sequence at the end */
        "\xff",         /* never valid */
        "a\x80z",       /* lone continuation byte */
        "\xc0\xaf",     /* overlong '/' */
        "\xc3\x28",     /* bad continuation */
        "\xe6\x97",     /* truncated 3-byte sequence */
        "\xf0\x9f\x98", /* truncated 4-byte sequence */
    };
    for (size_t i = 0; i < N(bad); i++) {
        assert_row_error(F_PNAME, bad[i], "product_name",
                         "row 17: product_name is not valid UTF-8");
        assert_row_error(F_CUST, bad[i], "customer_id", "row 17: customer_id is not valid UTF-8");
    }
    assert_row_error(F_ORDER, "\xfe", "order_id", "row 17: order_id is not valid UTF-8");
}

/* Only strict UTF-8 passes: what PostgreSQL would refuse is refused here. */
static void test_row_utf8_overlong_surrogate_out_of_range(void **state)
{
    (void)state;
    static const struct {
        const char *bytes, *what;
    } bad[] = {
        {"\xe0\x80\xaf", "E0 80 AF (overlong 3-byte)"},
        {"\xed\xa0\x80", "ED A0 80 (surrogate U+D800)"},
        {"\xf0\x80\x80\xaf", "F0 80 80 AF (overlong 4-byte)"},
        {"\xf4\x90\x80\x80", "F4 90 80 80 (U+110000)"},
        {"\xf5\x80\x80\x80", "F5 80 80 80 (lead byte F5)"},
    };
    order_csv_header h;
    full_header(&h);
    char accepted[512] = "";
    for (size_t i = 0; i < N(bad); i++) {
        char *f[N(FULL)];
        good_row(f);
        f[F_PNAME] = (char *)bad[i].bytes;
        order_row r;
        if (order_csv_row_parse(&h, f, N(f), 17, "USD", &r) != OMS_EINVAL) {
            strncat(accepted, bad[i].what, sizeof accepted - strlen(accepted) - 1);
            strncat(accepted, "; ", sizeof accepted - strlen(accepted) - 1);
            continue;
        }
        assert_string_equal(r.error, "row 17: product_name is not valid UTF-8");
        assert_string_equal(r.field, "product_name");
    }
    if (accepted[0] != '\0')
        fail_msg("product_name accepted as UTF-8: %s", accepted);
}

static void test_row_placed_at(void **state)
{
    (void)state;
    order_row r;
    parse_ok(F_PLACED, "2026-11-02T10:15:00+02:00", &r);
    assert_int_equal(r.placed_at_ms, T_2026_11_02_0815Z);
    parse_ok(F_PLACED, "", &r);
    assert_int_equal(r.placed_at_ms, 0);
    assert_row_error(F_PLACED, "yesterday", "placed_at",
                     "row 17: placed_at \"yesterday\" is not a UTC time like "
                     "2026-11-02T10:15:00Z or 2026-11-02 10:15:00");
    assert_row_error(F_PLACED, "2026-02-30", "placed_at",
                     "row 17: placed_at \"2026-02-30\" is not a UTC time like "
                     "2026-11-02T10:15:00Z or 2026-11-02 10:15:00");
}

/* Several faults: the first column in validation order is the one reported. */
static void test_row_first_fault_reported(void **state)
{
    (void)state;
    order_csv_header h;
    full_header(&h);
    char *f[N(FULL)];
    order_row r;
    good_row(f);
    f[F_SKU] = "";
    f[F_QTY] = "0";
    f[F_CUR] = "EUR";
    assert_int_equal(order_csv_row_parse(&h, f, N(f), 9, "USD", &r), OMS_EINVAL);
    assert_string_equal(r.error, "row 9: sku is empty");
    assert_string_equal(r.field, "sku");
    good_row(f);
    f[F_QTY] = "0";
    f[F_PRICE] = "-1";
    assert_int_equal(order_csv_row_parse(&h, f, N(f), 9, "USD", &r), OMS_EINVAL);
    assert_string_equal(r.field, "qty");
}

/* Long values are cut in the message so it stays a readable sentence. */
static void test_row_error_quotes_at_most_40_chars_of_qty(void **state)
{
    (void)state;
    char qty[100];
    memset(qty, '9', sizeof qty - 1);
    qty[sizeof qty - 1] = '\0';
    char want[ORDER_ERR_LEN];
    snprintf(want, sizeof want, "row 2147483647: qty \"%.40s\" must be an integer from 1 to 100000",
             qty);
    order_csv_header h;
    full_header(&h);
    char *f[N(FULL)];
    good_row(f);
    f[F_QTY] = qty;
    order_row r;
    assert_int_equal(order_csv_row_parse(&h, f, N(f), 2147483647, "USD", &r), OMS_EINVAL);
    assert_string_equal(r.error, want);
}

/* ---- placed_at --------------------------------------------------------- */

static void assert_time(const char *text, int64_t want_ms)
{
    int64_t ms = -1;
    if (order_csv_parse_time(text, &ms) != OMS_OK)
        fail_msg("order_csv_parse_time(\"%s\") refused", text);
    if (ms != want_ms)
        fail_msg("order_csv_parse_time(\"%s\") = %lld, want %lld", text, (long long)ms,
                 (long long)want_ms);
}

static void test_time_accepted_forms(void **state)
{
    (void)state;
    assert_time("2026-11-02T10:15:00Z", T_2026_11_02_1015Z);
    assert_time("2026-11-02T10:15:00.250Z", T_2026_11_02_1015Z + 250);
    assert_time("2026-11-02T10:15:00.5Z", T_2026_11_02_1015Z + 500);
    assert_time("2026-11-02T10:15:00.123456789Z", T_2026_11_02_1015Z + 123);
    assert_time("2026-11-02T10:15:00+02:00", T_2026_11_02_0815Z);
    assert_time("2026-11-02T10:15:00+0200", T_2026_11_02_0815Z);
    assert_time("2026-11-02T10:15:00-04:30", T_2026_11_02_1445Z);
    assert_time("2026-11-02T10:15:00.250+02:00", T_2026_11_02_0815Z + 250);
    assert_time("2026-11-02T10:15:00+00:00", T_2026_11_02_1015Z);
    assert_time("2026-11-02T10:15:00", T_2026_11_02_1015Z);
    assert_time("2026-11-02 10:15:00", T_2026_11_02_1015Z);
    assert_time("2026-11-02T10:15Z", T_2026_11_02_1015Z);
    assert_time("2026-11-02", T_2026_11_02_0000Z);
    assert_time("2024-02-29", T_2024_02_29_0000Z);
    assert_time("1970-01-01T00:00:00Z", 0);
    /* An offset can carry the instant across midnight and the epoch. */
    assert_time("2026-11-02T01:00:00+02:00", T_2026_11_02_0000Z - 3600000LL);
    assert_time("1970-01-01T00:00:00+01:00", -3600000LL);
}

static void test_time_rejected(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "2026-02-30",
        "2026-02-29",
        "2026-04-31",
        "2026-13-01",
        "2026-00-10",
        "2026-11-00",
        "2026-11-32",
        "yesterday",
        "",
        "2026-11-02T25:00:00",
        "2026-11-02T24:00:00Z",
        "2026-11-02T10:60:00Z",
        "2026-11-02T10",
        "2026-11-02T10:15:00Q",
        "2026-11-02T10:15:00+25:00",
        "2026-11-02T10:15:00+02:60",
        "1969-12-31",
        "2026-11-2",
        "26-11-02",
        "2026/11/02",
        "20261102",
        "2026-11-02T10:15:00Z ",
        " 2026-11-02",
        "2026-11-02Z",
        "2026-11",
        "2026-11-02T",
    };
    for (size_t i = 0; i < N(bad); i++) {
        int64_t ms = -42;
        if (order_csv_parse_time(bad[i], &ms) != OMS_EINVAL)
            fail_msg("order_csv_parse_time(\"%s\") accepted as %lld", bad[i], (long long)ms);
        assert_int_equal(ms, -42);
    }
}

/* ---- the product-list layout ------------------------------------------- */

static char *const PL_HEADER[] = {"Customer_Name", "customer_email", "phone",
                                  "address",       "products",       "notes"};

static void pl_header(order_csv_header *h)
{
    order_col missing = OC_COUNT;
    char err[ORDER_ERR_LEN] = "";
    assert_int_equal(order_csv_header_parse(PL_HEADER, N(PL_HEADER), h, &missing, err), OMS_OK);
    assert_string_equal(err, "");
}

/* Parses one product-list row (row 7) with the given products cell. */
static oms_status pl_parse(const char *products, order_row *r)
{
    order_csv_header h;
    pl_header(&h);
    char *f[] = {"John Doe",       "John.Doe@Example.com",
                 "123-456-7890",   "123 Main St, Anytown",
                 (char *)products, "gift"};
    return order_csv_row_parse(&h, f, N(f), 7, "USD", r);
}

static void assert_products_error(const char *products, const char *want_error)
{
    order_row r;
    if (pl_parse(products, &r) != OMS_EINVAL)
        fail_msg("products %s accepted", products);
    assert_string_equal(r.error, want_error);
    assert_string_equal(r.field, "products");
    assert_null(r.items);
    assert_int_equal(r.n_items, 0);
}

static void test_products_header_layout(void **state)
{
    (void)state;
    order_csv_header h;
    pl_header(&h);
    assert_int_equal(h.layout, ORDER_LAYOUT_PRODUCTS);
    assert_int_equal(h.index[OC_PRODUCTS], 4);
    assert_int_equal(h.index[OC_PHONE], 2);
    assert_int_equal(h.index[OC_ADDRESS], 3);
    assert_int_equal(h.index[OC_ORDER_ID], -1);
    assert_int_equal(h.index[OC_SKU], -1);
    assert_true(order_csv_is_header(PL_HEADER, N(PL_HEADER)));

    /* A sku column keeps the line-per-item layout; products is then ignored. */
    char *lines[] = {"order_id", "customer_id", "sku", "quantity", "unit_price", "products"};
    order_col missing = OC_COUNT;
    char err[ORDER_ERR_LEN] = "";
    assert_int_equal(order_csv_header_parse(lines, N(lines), &h, &missing, err), OMS_OK);
    assert_int_equal(h.layout, ORDER_LAYOUT_LINES);
    assert_int_equal(h.index[OC_QTY], 3); /* quantity is qty's alias */

    char *no_customer[] = {"customer_name", "products"};
    assert_int_equal(order_csv_header_parse(no_customer, N(no_customer), &h, &missing, err),
                     OMS_EINVAL);
    assert_int_equal(missing, OC_CUSTOMER_ID);
    assert_string_equal(err, "header has neither a customer_id nor a customer_email column (the "
                             "product-list layout, with a products column, needs one)");
}

static void test_products_valid_row(void **state)
{
    (void)state;
    order_row r;
    assert_int_equal(pl_parse("[{\"sku\":\"PROD001\",\"quantity\":2},"
                              "{\"sku\":\"PROD002\",\"qty\":1,\"unit_price\":\"12.50\"},"
                              "{\"sku\":\"PROD003\",\"quantity\":3,\"unit_price_cents\":999},"
                              "{\"sku\":\"PROD004\",\"quantity\":1,\"unit_price\":0.1}]",
                              &r),
                     OMS_OK);
    assert_string_equal(r.error, "");
    assert_string_equal(r.order_id, "");
    /* No customer_id column: the email lowercased. */
    assert_string_equal(r.customer_id, "john.doe@example.com");
    assert_string_equal(r.customer_email, "John.Doe@Example.com");
    assert_string_equal(r.customer_name, "John Doe");
    assert_string_equal(r.phone, "123-456-7890");
    assert_string_equal(r.address, "123 Main St, Anytown");
    assert_int_equal(r.n_items, 4);
    assert_string_equal(r.items[0].sku, "PROD001");
    assert_int_equal(r.items[0].qty, 2);
    assert_int_equal(r.items[0].unit_price_cents, -1);
    assert_string_equal(r.items[1].sku, "PROD002");
    assert_int_equal(r.items[1].qty, 1);
    assert_int_equal(r.items[1].unit_price_cents, 1250);
    assert_int_equal(r.items[2].unit_price_cents, 999);
    assert_int_equal(r.items[2].qty, 3);
    assert_int_equal(r.items[3].unit_price_cents, 10);
    order_row_fini(&r);
    order_row_fini(&r); /* twice is harmless */
    assert_null(r.items);
}

static void test_products_duplicates_summed(void **state)
{
    (void)state;
    order_row r;
    assert_int_equal(pl_parse("[{\"sku\":\"A\",\"quantity\":2},{\"sku\":\"B\",\"quantity\":1},"
                              "{\"sku\":\"A\",\"quantity\":5,\"unit_price\":\"3.00\"}]",
                              &r),
                     OMS_OK);
    assert_int_equal(r.n_items, 2);
    assert_string_equal(r.items[0].sku, "A");
    assert_int_equal(r.items[0].qty, 7);
    assert_int_equal(r.items[0].unit_price_cents, 300);
    assert_int_equal(r.items[0].element, 0);
    assert_string_equal(r.items[1].sku, "B");
    assert_int_equal(r.items[1].element, 1);
    order_row_fini(&r);
    assert_products_error("[{\"sku\":\"A\",\"quantity\":60000},{\"sku\":\"A\",\"quantity\":40001}]",
                          "row 7: products[1]: SKU A totals 100001, more than 100000");
    assert_products_error("[{\"sku\":\"A\",\"quantity\":1,\"unit_price\":\"1.00\"},"
                          "{\"sku\":\"A\",\"quantity\":1,\"unit_price\":\"2.00\"}]",
                          "row 7: products[1]: SKU A has another price than products[0]");
}

static void test_products_bad_cells(void **state)
{
    (void)state;
    assert_products_error("", "row 7: products is empty");
    assert_products_error("{\"sku\":\"A\",\"quantity\":1}",
                          "row 7: products is not a JSON array: it is a JSON object");
    assert_products_error("[{\"sku\":\"A\",\"quantity\":1}",
                          "row 7: products is not a JSON array: ']' expected near end of file "
                          "(at character 25)");
    assert_products_error("PROD001 x2", "row 7: products is not a JSON array: '[' or '{' "
                                        "expected near 'PROD' (at character 4)");
    assert_products_error("[]", "row 7: products is an empty array: an order needs a product");
    assert_products_error("[{\"sku\":\"A\",\"quantity\":1},\"B\"]",
                          "row 7: products[1] is not an object with sku and quantity");
    assert_products_error("[{\"quantity\":1}]", "row 7: products[0].sku is missing");
    assert_products_error("[{\"sku\":7,\"quantity\":1}]",
                          "row 7: products[0].sku must be a non-empty string");
    assert_products_error("[{\"sku\":\"A\"}]", "row 7: products[0].quantity is missing");
    assert_products_error("[{\"sku\":\"A\",\"quantity\":1},{\"sku\":\"B\",\"quantity\":1},"
                          "{\"sku\":\"C\",\"quantity\":0}]",
                          "row 7: products[2].quantity \"0\" must be an integer from 1 to 100000");
    assert_products_error("[{\"sku\":\"A\",\"qty\":-3}]",
                          "row 7: products[0].qty \"-3\" must be an integer from 1 to 100000");
    assert_products_error("[{\"sku\":\"A\",\"quantity\":100001}]",
                          "row 7: products[0].quantity \"100001\" must be an integer from 1 to "
                          "100000");
    assert_products_error("[{\"sku\":\"A\",\"quantity\":1.5}]",
                          "row 7: products[0].quantity \"1.5\" must be an integer from 1 to "
                          "100000");
    assert_products_error("[{\"sku\":\"A\",\"quantity\":\"2\"}]",
                          "row 7: products[0].quantity \"2\" must be an integer from 1 to 100000");
    assert_products_error("[{\"sku\":\"A\",\"quantity\":1,\"unit_price\":\"1.234\"}]",
                          "row 7: products[0].unit_price \"1.234\" must be an amount from 0 to "
                          "10000000.00 with at most 2 decimals");
    assert_products_error("[{\"sku\":\"A\",\"quantity\":1,\"unit_price\":1.234}]",
                          "row 7: products[0].unit_price 1.234 must be an amount from 0 to "
                          "10000000.00 with at most 2 decimals");
    assert_products_error("[{\"sku\":\"A\",\"quantity\":1,\"unit_price_cents\":-1}]",
                          "row 7: products[0].unit_price_cents -1 must be an integer from 0 to "
                          "1000000000");
    assert_products_error("[{\"sku\":\"A\xff\",\"quantity\":1}]",
                          "row 7: products is not valid UTF-8");
    assert_products_error("[{\"sku\":\"A\\u0007\",\"quantity\":1}]",
                          "row 7: products[0].sku contains control character 0x07 at byte 2");
}

/* 1,000 elements are accepted, 1,001 are not. */
static void test_products_element_limit(void **state)
{
    (void)state;
    static char cell[32 * 1002];
    for (int n = 1000; n <= 1001; n++) {
        size_t len = 0;
        cell[len++] = '[';
        for (int i = 0; i < n; i++)
            len += (size_t)snprintf(cell + len, sizeof cell - len, "%s{\"sku\":\"S%d\",\"qty\":1}",
                                    i ? "," : "", i);
        cell[len++] = ']';
        cell[len] = '\0';
        assert_true(len < ORDER_CSV_PRODUCTS_BYTES_MAX);
        order_row r;
        if (n == 1000) {
            assert_int_equal(pl_parse(cell, &r), OMS_OK);
            assert_int_equal(r.n_items, 1000);
            order_row_fini(&r);
        } else {
            assert_products_error(cell, "row 7: products has 1001 elements: at most 1000");
        }
    }
}

static void test_products_customer_and_ids(void **state)
{
    (void)state;
    char *header[] = {"order_id", "customer_id", "customer_email", "products"};
    order_csv_header h;
    order_col missing;
    char err[ORDER_ERR_LEN];
    assert_int_equal(order_csv_header_parse(header, N(header), &h, &missing, err), OMS_OK);
    char *given[] = {"ORD-9", "C-42", "Ada@Example.com", "[{\"sku\":\"A\",\"qty\":1}]"};
    order_row r;
    assert_int_equal(order_csv_row_parse(&h, given, N(given), 3, "USD", &r), OMS_OK);
    assert_string_equal(r.order_id, "ORD-9");
    assert_string_equal(r.customer_id, "C-42");
    order_row_fini(&r);
    char *nobody[] = {"", "", "", "[{\"sku\":\"A\",\"qty\":1}]"};
    assert_int_equal(order_csv_row_parse(&h, nobody, N(nobody), 3, "USD", &r), OMS_EINVAL);
    assert_string_equal(r.error, "row 3: customer_id is empty: the row names no customer");
    assert_string_equal(r.field, "customer_id");

    char id[64];
    order_csv_generated_id("3f2a9c0d1e4b5a6c7d8e9f00112233445566778899aabbccddeeff0011223344", 12,
                           id, sizeof id);
    assert_string_equal(id, "pl-3f2a9c0d1e4b5a6c-12");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_column_names),
        cmocka_unit_test(test_header_default),
        cmocka_unit_test(test_is_header),
        cmocka_unit_test(test_header_canonical),
        cmocka_unit_test(test_header_aliases_case_order_unknown),
        cmocka_unit_test(test_header_first_duplicate_wins),
        cmocka_unit_test(test_header_missing_required_names_it),
        cmocka_unit_test(test_header_either_price_column_is_enough),
        cmocka_unit_test(test_row_valid_all_columns),
        cmocka_unit_test(test_row_default_header),
        cmocka_unit_test(test_row_empty_required_text),
        cmocka_unit_test(test_row_order_id_on_error),
        cmocka_unit_test(test_row_qty),
        cmocka_unit_test(test_row_unit_price),
        cmocka_unit_test(test_row_unit_price_cents),
        cmocka_unit_test(test_row_no_price_at_all),
        cmocka_unit_test(test_row_short_row_names_mapped_price_column),
        cmocka_unit_test(test_row_short_row_required_text),
        cmocka_unit_test(test_row_currency),
        cmocka_unit_test(test_row_email),
        cmocka_unit_test(test_row_field_too_long),
        cmocka_unit_test(test_row_control_characters),
        cmocka_unit_test(test_row_utf8),
        cmocka_unit_test(test_row_utf8_overlong_surrogate_out_of_range),
        cmocka_unit_test(test_row_placed_at),
        cmocka_unit_test(test_row_first_fault_reported),
        cmocka_unit_test(test_row_error_quotes_at_most_40_chars_of_qty),
        cmocka_unit_test(test_time_accepted_forms),
        cmocka_unit_test(test_time_rejected),
        cmocka_unit_test(test_products_header_layout),
        cmocka_unit_test(test_products_valid_row),
        cmocka_unit_test(test_products_duplicates_summed),
        cmocka_unit_test(test_products_bad_cells),
        cmocka_unit_test(test_products_element_limit),
        cmocka_unit_test(test_products_customer_and_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
