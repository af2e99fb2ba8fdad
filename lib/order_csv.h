/*
 * order_csv.h - the order CSV format of `ingest.rows` (docs/events.md):
 * header mapping with aliases, and the validation of one row into typed
 * values or an error that names the row, the field and the value.
 * Shared by the ingest service and omsctl, which checks a header before it
 * sends a file.
 */
#ifndef OMS_ORDER_CSV_H
#define OMS_ORDER_CSV_H

#include "oms.h"

typedef enum order_col {
    OC_ORDER_ID,
    OC_CUSTOMER_ID,
    OC_SKU,
    OC_QTY,
    OC_UNIT_PRICE,
    OC_UNIT_PRICE_CENTS,
    OC_PLACED_AT,
    OC_CURRENCY,
    OC_CUSTOMER_EMAIL,
    OC_CUSTOMER_NAME,
    OC_PRODUCT_NAME,
    OC_PRODUCTS, /* the product-list layout: a JSON array of the order's lines */
    OC_PHONE,
    OC_ADDRESS,
    OC_COUNT
} order_col;

/* How a file lays out its orders (docs/csv.md): a row per order line, or a
 * row per order whose `products` cell holds the lines (no `sku` column). */
typedef enum order_layout { ORDER_LAYOUT_LINES = 0, ORDER_LAYOUT_PRODUCTS } order_layout;

/* The subject and headers of ingest.rows messages (docs/events.md). */
#define ORDER_CSV_SUBJECT "ingest.rows"
#define ORDER_CSV_HDR_IMPORT_ID "Oms-Import-Id"
#define ORDER_CSV_HDR_CHUNK "Oms-Chunk"
#define ORDER_CSV_HDR_FIRST_ROW "Oms-First-Row"
#define ORDER_CSV_HDR_IMPORT_END "Oms-Import-End"
/* SHA-256 (64 lowercase hex digits) of the whole file, sent by omsctl import
 * with every chunk: the product-list layout derives its order ids from it. */
#define ORDER_CSV_HDR_CONTENT_SHA256 "Oms-Content-Sha256"

/* What one ingest.rows message may carry (docs/events.md, Limits); ingest
 * dead-letters a message past one, omsctl import chunks within them. */
#define ORDER_CSV_MSG_BYTES_MAX 1048576     /* CSV bytes: NATS's default max_payload */
#define ORDER_CSV_CHUNK_ROWS_MAX 10000      /* data rows, rejected ones too */
#define ORDER_CSV_ROW_NUMBER_MAX 1000000000 /* Oms-First-Row, Oms-Import-End, Oms-Chunk */
#define ORDER_CSV_HEADERS_MAX 32            /* header values, Nats-Msg-Id included */

/* Every accepted column, for messages that list them. */
#define ORDER_CSV_ACCEPTED_COLUMNS                                                            \
    "order_id (or external_order_id), customer_id, sku (or product_sku), qty, unit_price or " \
    "unit_price_cents; optional: placed_at (or order_placed_at), currency, customer_email, "  \
    "customer_name, product_name"
/* The product-list layout's (docs/csv.md). */
#define ORDER_CSV_PRODUCT_LIST_COLUMNS                                             \
    "products (a JSON array), customer_id or customer_email; optional: order_id, " \
    "customer_name, phone, address"

#define ORDER_QTY_MAX 100000
#define ORDER_FIELD_MAX 256 /* bytes in any text field */
/* What reading a CSV chunk may hold (docs/events.md, CSV limits): any field,
 * ignored columns too, is refused past ORDER_CSV_FIELD_BYTES_MAX while it is
 * read, so one record holds at most ORDER_CSV_FIELDS_MAX fields of it. */
#define ORDER_CSV_FIELD_BYTES_MAX 4096
#define ORDER_CSV_FIELDS_MAX 256
/* The products cell alone may be longer: 1,000 elements of up to 64 bytes
 * ({"sku":"PROD-000123","quantity":100000,"unit_price":"1234.56"} is 62). */
#define ORDER_CSV_PRODUCTS_BYTES_MAX 65536
#define ORDER_PRODUCTS_MAX 1000
#define ORDER_ERR_LEN 320

/* Where each column is in a record (-1 when absent). */
typedef struct order_csv_header {
    int index[OC_COUNT];
    order_layout layout;
} order_csv_header;

/* Canonical column name ("order_id"). */
const char *order_csv_column_name(order_col c);

/* The order used when a message has no header:
 * order_id,customer_id,sku,qty,unit_price. */
void order_csv_header_default(order_csv_header *h);

/* True when the record is a header: it names at least two known columns. */
bool order_csv_is_header(char *const *fields, size_t n);

/* Maps a header record (names matched case-insensitively, aliases accepted,
 * unknown columns ignored). On a missing required column returns OMS_EINVAL
 * with a message naming it in err and the column in *missing. */
oms_status order_csv_header_parse(char *const *fields, size_t n, order_csv_header *h,
                                  order_col *missing, char err[ORDER_ERR_LEN]);

/* One line of a product-list row; sku owned by the order_row. */
typedef struct order_item {
    char *sku;
    int32_t qty;
    int64_t unit_price_cents; /* -1: not in the file, the catalogue's price applies */
    int element;              /* index in the JSON array of its first element */
} order_item;

/* One validated row. Strings are borrowed from the record's fields, except
 * items (the product-list layout), owned: release with order_row_fini. */
typedef struct order_row {
    int row;
    const char *order_id, *customer_id, *customer_email, *customer_name;
    const char *sku, *product_name;
    int32_t qty;
    int64_t unit_price_cents;
    int64_t placed_at_ms; /* 0 when the column is absent or empty */
    const char *currency;
    const char *phone, *address;
    order_item *items; /* the product-list layout: n_items lines, SKUs distinct */
    size_t n_items;
    char customer_id_buf[ORDER_FIELD_MAX + 1]; /* the email lowercased, as customer_id */
    /* On error: the column at fault ("" for the row as a whole) and a
     * sentence starting "row N: ". */
    const char *field;
    char error[ORDER_ERR_LEN];
} order_row;

/* Validates record fields as row number `row` against header h. Returns
 * OMS_OK, or OMS_EINVAL with out->field and out->error set; the other
 * fields are then best effort (order_id is set when it was readable). */
oms_status order_csv_row_parse(const order_csv_header *h, char *const *fields, size_t n, int row,
                               const char *currency, order_row *out);

/* Frees what order_csv_row_parse allocated (the items); safe to call twice. */
void order_row_fini(order_row *r);

/* Parses a products cell (a JSON array of {"sku", "quantity" or "qty",
 * optional "unit_price" or "unit_price_cents"}) into out->items, lines of
 * one SKU summed. OMS_EINVAL with out->error naming the element
 * ("row 7: products[2].quantity ..."); OMS_ENOMEM. out->row must be set. */
oms_status order_csv_products_parse(const char *cell, order_row *out);

/* Writes the order id the product-list layout gives a row without order_id:
 * "pl-" + the first 16 hex digits of the file's SHA-256 + "-" + the row. */
void order_csv_generated_id(const char *content_sha256_hex, int row, char *out, size_t out_len);

/* Parses an ISO 8601 UTC timestamp ("2026-11-02T10:15:00Z", with optional
 * fraction and offset, "2026-11-02 10:15:00" or "2026-11-02") into ms. */
oms_status order_csv_parse_time(const char *text, int64_t *ms);

#endif
