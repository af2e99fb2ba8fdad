/*
 * test_bad_input.c - hostile input on every surface OMS offers, against the
 * real stack with all six services running: CSV rows and ingest.rows
 * headers, the payload of every consumed subject, the HTTP endpoints and
 * omsctl's arguments.
 *
 * Design: one table, one line per case (macros below name what each field
 * means per surface), and one small runner per surface. Everything that is
 * published is published first; then each case is checked against what the
 * stack stored (import.rejected, dead_letters, the durables' acks, orders). One line per
 * case is printed (id, surface, outcome), so a failure names its case; all
 * cases are checked before the test fails. Cases marked pending describe a
 * rule being added elsewhere: they are printed with their TODO and skipped.
 * A good import published around the hostile inputs must come out whole.
 */
#include "testenv.h"

#include "oms_events.pb-c.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define INGEST_PORT 19881
#define INVENTORY_PORT 19882
#define PAYMENT_PORT 19883
#define NOTIFY_PORT 19884
#define REFUND_PORT 19885
#define ANALYTICS_PORT 19886
#define REDIS_DB "7"
#define GOOD_ORDERS 40 /* the known good import: 2 rows per order */

static const char *const SCHEMAS[] = {"ingest", "inventory", "payment", "notify",
                                      "refund", "analytics", NULL};

typedef enum surface { SURF_CSV, SURF_HEADER, SURF_EVENT, SURF_HTTP, SURF_CLI } surface;

static const char *const SURFACE_NAME[] = {"csv", "header", "event", "http", "cli"};

/* One hostile input and what must come of it. */
typedef struct bad_case {
    const char *id; /* unique; also the import id, Nats-Msg-Id or event id */
    surface where;
    bool pending;       /* a rule being added elsewhere: skipped, see todo */
    const char *todo;   /* pending: the rule that will decide the outcome */
    const char *input;  /* csv/header: the message body; event: payload spec;
                           http: request body; cli: omsctl's arguments */
    const char *expect; /* the exact reason / error text; "" = none */
    /* csv: rows announced, the row and field of the expected rejection,
     * orders the import must create, rows it must reject */
    int rows, row, orders, rejected;
    const char *field;
    /* header: Oms-Import-Id, Oms-First-Row, Oms-Import-End (NULL: absent) */
    const char *import_id, *first_row, *end_rows;
    /* event: subject and the service whose dead_letters and acks decide;
     * http: the service's port, method and path; cli: exit status */
    const char *subject, *service;
    const ProtobufCMessageDescriptor *type;
    int port;
    const char *method, *path, *header;
    size_t big_path, big_header, big_body; /* http: pad path/header/body to this size */
    long status;                           /* http status, cli exit status */
    /* any surface: a query that must give check_value afterwards */
    const char *check_sql;
    long check_value;
} bad_case;

#define CSV_HDR "order_id,customer_id,customer_email,sku,qty,unit_price\n"

/* A CSV import: body, data rows announced, the rejected row/field/reason,
 * orders created, rows rejected. */
#define CSV(id_, body_, rows_, row_, field_, reason_, orders_, rejected_)                          \
    {                                                                                              \
        .id = id_, .where = SURF_CSV, .input = body_, .rows = rows_, .row = row_, .field = field_, \
        .expect = reason_, .orders = orders_, .rejected = rejected_                                \
    }
#define CSV_PENDING(id_, todo_, body_, rows_, row_, field_, reason_, orders_, rejected_)   \
    {                                                                                      \
        .id = id_, .where = SURF_CSV, .pending = true, .todo = todo_, .input = body_,      \
        .rows = rows_, .row = row_, .field = field_, .expect = reason_, .orders = orders_, \
        .rejected = rejected_                                                              \
    }
/* An ingest.rows message with these headers and the dead letter it becomes
 * ("" with a check: it is accepted, and the check says what it did). */
#define HDR(id_, import_, first_, end_, body_, reason_, sql_, value_)               \
    {                                                                               \
        .id = id_, .where = SURF_HEADER, .import_id = import_, .first_row = first_, \
        .end_rows = end_, .input = body_, .expect = reason_, .check_sql = sql_,     \
        .check_value = value_                                                       \
    }
#define HDR_PENDING(id_, todo_, import_, first_, end_, body_, reason_)                         \
    {                                                                                          \
        .id = id_, .where = SURF_HEADER, .pending = true, .todo = todo_, .import_id = import_, \
        .first_row = first_, .end_rows = end_, .input = body_, .expect = reason_               \
    }
/* An event on subject: payload spec (see build_payload) of type; the dead
 * letter reason in service's schema ("" = applied or ignored: acked by the
 * service, no dead letter, and the check holds). */
#define EV(id_, subject_, type_, spec_, service_, reason_, sql_, value_)                   \
    {                                                                                      \
        .id = id_, .where = SURF_EVENT, .subject = subject_, .type = &type_##__descriptor, \
        .input = spec_, .service = service_, .expect = reason_, .check_sql = sql_,         \
        .check_value = value_                                                              \
    }
#define EV_PENDING(id_, todo_, subject_, type_, spec_, service_, reason_)                    \
    {                                                                                        \
        .id = id_, .where = SURF_EVENT, .pending = true, .todo = todo_, .subject = subject_, \
        .type = &type_##__descriptor, .input = spec_, .service = service_, .expect = reason_ \
    }
/* An HTTP request and the exact status and error text of the answer. */
#define HTTP(id_, port_, method_, path_, body_, status_, error_)                        \
    {                                                                                   \
        .id = id_, .where = SURF_HTTP, .port = port_, .method = method_, .path = path_, \
        .input = body_, .status = status_, .expect = error_                             \
    }
#define HTTP_X(id_, port_, method_, path_, header_, big_path_, big_header_, big_body_, status_, \
               error_)                                                                          \
    {                                                                                           \
        .id = id_, .where = SURF_HTTP, .port = port_, .method = method_, .path = path_,         \
        .header = header_, .big_path = big_path_, .big_header = big_header_,                    \
        .big_body = big_body_, .input = "", .status = status_, .expect = error_                 \
    }
#define HTTP_PENDING(id_, todo_, port_, method_, path_, status_, error_)                   \
    {                                                                                      \
        .id = id_, .where = SURF_HTTP, .pending = true, .todo = todo_, .port = port_,      \
        .method = method_, .path = path_, .input = "", .status = status_, .expect = error_ \
    }
/* omsctl with these arguments (run in a directory holding the files below):
 * exit status and a line its output must hold. */
#define CLI(id_, args_, status_, line_)                                                  \
    {                                                                                    \
        .id = id_, .where = SURF_CLI, .input = args_, .status = status_, .expect = line_ \
    }

#define FIRST_ROW_ERR(v) "header Oms-First-Row \"" v "\" must be a row number from 1 to 1000000000"
#define END_ERR(v) "header Oms-Import-End \"" v "\" must be a row count from 0 to 1000000000"
#define HDR_ID_ERR(v)                                                                          \
    "header Oms-Import-Id \"" v "\" must be 1 to 128 printable characters and must not start " \
    "with \"live:\""
#define NO_ORDER_ID_HDR                                                                         \
    "header has no order_id column (required: order_id, customer_id, sku, qty, and unit_price " \
    "or unit_price_cents)"
#define LONG_257                                                                               \
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" \
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" \
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
#define ID_129                                                                                 \
    "iiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiii" \
    "iiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiii"
#define ID_80 "iiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiii"
#define ZEROS_64 "0000000000000000000000000000000000000000000000000000000000000000"
#define ORDERS_OF(imp) "SELECT count(*) FROM ingest.orders WHERE import_id = '" imp "'"

static const bad_case CASES[] = {
    /* ---- CSV rows: each case is one import; its good rows must all become orders */
    CSV("csv-money-letters", CSV_HDR "M1-A,C1,,SKU-A,1,1.00\nM1-B,C1,,SKU-A,1,abc\n", 2, 3,
        "unit_price",
        "row 3: unit_price \"abc\" must be an amount from 0 to 10000000.00 with at "
        "most 2 decimals",
        1, 1),
    CSV("csv-money-3-decimals", CSV_HDR "M2-A,C1,,SKU-A,1,1.00\nM2-B,C1,,SKU-A,1,1.001\n", 2, 3,
        "unit_price",
        "row 3: unit_price \"1.001\" must be an amount from 0 to 10000000.00 with "
        "at most 2 decimals",
        1, 1),
    CSV("csv-money-negative", CSV_HDR "M3-A,C1,,SKU-A,1,1.00\nM3-B,C1,,SKU-A,1,-1.00\n", 2, 3,
        "unit_price",
        "row 3: unit_price \"-1.00\" must be an amount from 0 to 10000000.00 with "
        "at most 2 decimals",
        1, 1),
    CSV("csv-money-huge", CSV_HDR "M4-A,C1,,SKU-A,1,1.00\nM4-B,C1,,SKU-A,1,10000000.01\n", 2, 3,
        "unit_price",
        "row 3: unit_price \"10000000.01\" must be an amount from 0 to "
        "10000000.00 with at most 2 decimals",
        1, 1),
    CSV("csv-cents-float",
        "order_id,customer_id,sku,qty,unit_price_cents\n"
        "M5-A,C1,SKU-A,1,100\nM5-B,C1,SKU-A,1,1.5\n",
        2, 3, "unit_price_cents",
        "row 3: unit_price_cents \"1.5\" must be an integer from 0 to "
        "1000000000",
        1, 1),
    CSV("csv-qty-negative", CSV_HDR "Q1-A,C1,,SKU-A,1,1.00\nQ1-B,C1,,SKU-A,-2,1.00\n", 2, 3, "qty",
        "row 3: qty \"-2\" must be an integer from 1 to 100000", 1, 1),
    CSV("csv-qty-zero", CSV_HDR "Q2-A,C1,,SKU-A,1,1.00\nQ2-B,C1,,SKU-A,0,1.00\n", 2, 3, "qty",
        "row 3: qty \"0\" must be an integer from 1 to 100000", 1, 1),
    CSV("csv-qty-huge", CSV_HDR "Q3-A,C1,,SKU-A,1,1.00\nQ3-B,C1,,SKU-A,99999999999999999999,1.00\n",
        2, 3, "qty", "row 3: qty \"99999999999999999999\" must be an integer from 1 to 100000", 1,
        1),
    CSV("csv-qty-fraction", CSV_HDR "Q4-A,C1,,SKU-A,1,1.00\nQ4-B,C1,,SKU-A,1.5,1.00\n", 2, 3, "qty",
        "row 3: qty \"1.5\" must be an integer from 1 to 100000", 1, 1),
    CSV("csv-missing-cells", CSV_HDR "MC-A,C1,,SKU-A,1,1.00\nMC-B,C1\n", 2, 3, "sku",
        "row 3: sku is empty", 1, 1),
    CSV("csv-empty-order-id", CSV_HDR "EO-A,C1,,SKU-A,1,1.00\n,C1,,SKU-A,1,1.00\n", 2, 3,
        "order_id", "row 3: order_id is empty", 1, 1),
    CSV("csv-missing-column", "order_id,customer_id,sku,unit_price\nMCOL-A,C1,SKU-A,1.00\n", 1, 2,
        "qty",
        "row 2: header has no qty column (required: order_id, customer_id, sku, qty, and "
        "unit_price or unit_price_cents)",
        0, 1),
    CSV("csv-no-price-column", "order_id,customer_id,sku,qty\nNP-A,C1,SKU-A,1\n", 1, 2,
        "unit_price",
        "row 2: header has neither a unit_price nor a unit_price_cents column (one "
        "is required)",
        0, 1),
    CSV("csv-bad-email", CSV_HDR "BE-A,C1,,SKU-A,1,1.00\nBE-B,C1,not an email,SKU-A,1,1.00\n", 2, 3,
        "customer_email", "row 3: customer_email \"not an email\" is not an email address", 1, 1),
    CSV("csv-email-no-at", CSV_HDR "BE2-A,C1,,SKU-A,1,1.00\nBE2-B,C1,example.com,SKU-A,1,1.00\n", 2,
        3, "customer_email", "row 3: customer_email \"example.com\" is not an email address", 1, 1),
    CSV("csv-too-long-sku", CSV_HDR "TL-A,C1,,SKU-A,1,1.00\nTL-B,C1,," LONG_257 ",1,1.00\n", 2, 3,
        "sku", "row 3: sku is longer than 256 bytes", 1, 1),
    CSV("csv-too-long-order-id", CSV_HDR "TL2-A,C1,,SKU-A,1,1.00\n" LONG_257 ",C1,,SKU-A,1,1.00\n",
        2, 3, "order_id", "row 3: order_id is longer than 256 bytes", 1, 1),
    CSV("csv-not-utf8", CSV_HDR "U8-A,C1,,SKU-A,1,1.00\nU8-B,C1,,SKU-\xff,1,1.00\n", 2, 3, "sku",
        "row 3: sku is not valid UTF-8", 1, 1),
    CSV("csv-bad-time",
        "order_id,customer_id,sku,qty,unit_price,placed_at\n"
        "BT-A,C1,SKU-A,1,1.00,2026-11-02\nBT-B,C1,SKU-A,1,1.00,2026-02-31\n",
        2, 3, "placed_at",
        "row 3: placed_at \"2026-02-31\" is not a UTC time like 2026-11-02T10:15:00Z "
        "or 2026-11-02 10:15:00",
        1, 1),
    CSV("csv-bad-currency",
        "order_id,customer_id,sku,qty,unit_price,currency\n"
        "BC-A,C1,SKU-A,1,1.00,usd\nBC-B,C1,SKU-A,1,1.00,EUR\n",
        2, 3, "currency", "row 3: currency \"EUR\" is not accepted: this system runs in USD", 1, 1),
    CSV("csv-dup-order-other-customer",
        CSV_HDR "DO-A,C1,,SKU-A,1,1.00\nDO-A,C2,,SKU-B,1,1.00\n"
                "DO-B,C3,,SKU-A,1,1.00\n",
        3, 3, "customer_id",
        "row 3: customer_id \"C2\" contradicts row 2 of order DO-A (customer_id \"C1\")", 1, 2),
    CSV("csv-dup-order-cascade",
        CSV_HDR "DC-A,C1,,SKU-A,1,1.00\nDC-A,C2,,SKU-B,1,1.00\n"
                "DC-B,C3,,SKU-A,1,1.00\n",
        3, 2, "", "row 2: order DC-A not created: row 3 was rejected", 1, 2),
    CSV("csv-bom", "\xef\xbb\xbforder_id,customer_id,sku,qty,unit_price\nBOM-A,C1,SKU-A,1,1.00\n",
        1, 2, "order_id", "row 2: " NO_ORDER_ID_HDR, 0, 1),
    CSV("csv-crlf",
        "order_id,customer_id,sku,qty,unit_price\r\nCR-A,C1,SKU-A,1,1.00\r\n"
        "CR-B,C1,SKU-A,0,1.00\r\n",
        2, 3, "qty", "row 3: qty \"0\" must be an integer from 1 to 100000", 1, 1),
    CSV("csv-quoted-newline",
        "order_id,customer_id,sku,qty,unit_price,customer_name\n"
        "QN-A,C1,SKU-A,1,1.00,\"Doe,\nJane\"\nQN-B,C1,SKU-A,x,1.00,\n",
        2, 3, "qty", "row 3: qty \"x\" must be an integer from 1 to 100000", 1, 1),
    CSV("csv-order-total-huge",
        CSV_HDR "OT-A,C1,,SKU-A,1,1.00\nOT-B,C1,,SKU-A,100000,10000000.00\n"
                "OT-B,C1,,SKU-B,100000,10000000.00\n",
        3, 3, "", "row 3: order OT-B not created: its total exceeds 1,000,000,000,000.00", 1, 2),
    CSV("csv-bad-offset",
        "order_id,customer_id,sku,qty,unit_price,placed_at\n"
        "BO-A,C1,SKU-A,1,1.00,\nBO-B,C1,SKU-A,1,1.00,2026-11-02T10:00:00+25:00\n",
        2, 3, "placed_at",
        "row 3: placed_at \"2026-11-02T10:00:00+25:00\" is not a UTC time like "
        "2026-11-02T10:15:00Z or 2026-11-02 10:15:00",
        1, 1),
    CSV("csv-extra-cells", CSV_HDR "EX-A,C1,,SKU-A,1,1.00,surplus,cells\n", 1, 0, "", "", 1, 0),
    CSV("csv-no-header-default-order", "ND-A,C1,SKU-A,2,1.50\nND-B,C1,SKU-A,two,1.50\n", 2, 3,
        "qty", "row 3: qty \"two\" must be an integer from 1 to 100000", 1, 1),
    CSV("csv-empty-file", "", 0, 0, "", "", 0, 0),
    CSV("csv-header-only", CSV_HDR, 0, 0, "", "", 0, 0),
    CSV("csv-blank-lines", CSV_HDR "\n\nBL-A,C1,,SKU-A,1,1.00\n\n", 1, 0, "", "", 1, 0),
    CSV("csv-qty-not-utf8", CSV_HDR "U8Q-A,C1,,SKU-A,1,1.00\nU8Q-B,C1,,SKU-A,\xff,1.00\n", 2, 3,
        "qty", "row 3: qty \"\\xff\" must be an integer from 1 to 100000", 1, 1),
    CSV("csv-control-in-field", CSV_HDR "CC-A,C1,,SKU-A,1,1.00\nCC-B,C1,,SKU-\x01X,1,1.00\n", 2, 3,
        "sku", "row 3: sku contains control character 0x01 at byte 5", 1, 1),
    CSV("csv-unterminated-quote", CSV_HDR "UQ-A,C1,,SKU-A,1,1.00\nUQ-B,C1,,\"SKU-A,1,1.00\n", 2, 3,
        "sku",
        "row 3: sku starts a quoted field that is never properly closed; the rest of the "
        "message was not read",
        1, 1),

    /* ---- ingest.rows headers: unreadable messages go to ingest's dead letters */
    HDR("hdr-first-row-letters", "imp-h1", "abc", NULL, CSV_HDR "H1-A,C1,,SKU-A,1,1.00\n",
        FIRST_ROW_ERR("abc"), NULL, 0),
    HDR("hdr-first-row-zero", "imp-h2", "0", NULL, CSV_HDR "H2-A,C1,,SKU-A,1,1.00\n",
        FIRST_ROW_ERR("0"), NULL, 0),
    HDR("hdr-first-row-negative", "imp-h3", "-5", NULL, CSV_HDR "H3-A,C1,,SKU-A,1,1.00\n",
        FIRST_ROW_ERR("-5"), NULL, 0),
    HDR("hdr-first-row-huge", "imp-h4", "99999999999", NULL, CSV_HDR "H4-A,C1,,SKU-A,1,1.00\n",
        FIRST_ROW_ERR("99999999999"), NULL, 0),
    HDR("hdr-first-row-trailing", "imp-h5", "2x", NULL, CSV_HDR "H5-A,C1,,SKU-A,1,1.00\n",
        FIRST_ROW_ERR("2x"), NULL, 0),
    HDR("hdr-end-letters", "imp-h6", NULL, "ten", "", END_ERR("ten"), NULL, 0),
    HDR("hdr-end-negative", "imp-h7", NULL, "-1", "", END_ERR("-1"), NULL, 0),
    HDR("hdr-end-without-import", NULL, NULL, "3", "", "header Oms-Import-End needs Oms-Import-Id",
        NULL, 0),
    HDR("hdr-import-id-live", "live:X", "2", NULL, CSV_HDR "H9-A,C1,,SKU-A,1,1.00\n",
        HDR_ID_ERR("live:X"), NULL, 0),
    HDR("hdr-import-id-too-long", ID_129, "2", NULL, CSV_HDR "H10-A,C1,,SKU-A,1,1.00\n",
        HDR_ID_ERR(ID_80), NULL, 0),
    HDR("hdr-import-id-tab", "imp\tX", "2", NULL, CSV_HDR "H11-A,C1,,SKU-A,1,1.00\n",
        "header Oms-Import-Id contains control character U+0009 at offset 3", NULL, 0),
    HDR("hdr-no-import-id", NULL, NULL, NULL, "HLIVE-1,C1,SKU-A,1,2.50\n", "",
        "SELECT count(*) FROM ingest.orders WHERE order_id = 'HLIVE-1' AND import_id = "
        "'live:HLIVE-1' AND total_cents = 250",
        1),
    HDR("hdr-first-row-overflow", "imp-h13", "2147483647", NULL,
        CSV_HDR "H13-A,C1,,SKU-A,1,1.00\nH13-B,C1,,SKU-A,1,1.00\n", FIRST_ROW_ERR("2147483647"),
        NULL, 0),
    HDR("hdr-import-id-not-utf8", "imp-\xff", "2", NULL, CSV_HDR "H14-A,C1,,SKU-A,1,1.00\n",
        "header Oms-Import-Id is not valid UTF-8 (byte 0xff at offset 4)", NULL, 0),

    /* ---- payloads of consumed subjects */
    EV("ev-stock-reserved-garbage", "stock.reserved", oms__v1__stock_reserved, "hex:ffffffff0a",
       "ingest", "stock.reserved: not a valid oms.v1.StockReserved", NULL, 0),
    EV("ev-stock-reserved-no-meta", "stock.reserved", oms__v1__stock_reserved,
       "-meta order_id=EVX-1 total_cents=100", "payment",
       "stock.reserved: not a valid oms.v1.StockReserved", NULL, 0),
    EV("ev-stock-reserved-no-order", "stock.reserved", oms__v1__stock_reserved, "total_cents=100",
       "payment", "stock.reserved: order_id must be 1 to 256 bytes", NULL, 0),
    EV("ev-stock-reserved-negative", "stock.reserved", oms__v1__stock_reserved,
       "order_id=EVX-2 total_cents=-5", "payment",
       "stock.reserved: total_cents must not be negative", NULL, 0),
    EV("ev-stock-reserved-currency", "stock.reserved", oms__v1__stock_reserved,
       "order_id=EVX-3 total_cents=5 currency=dollars", "payment",
       "stock.reserved: currency must be an ISO 4217 code such as USD", NULL, 0),
    EV("ev-stock-reserved-unknown-order", "stock.reserved", oms__v1__stock_reserved,
       "order_id=NO-SUCH-1 total_cents=0", "ingest", "",
       "SELECT count(*) FROM ingest.orders WHERE order_id = 'NO-SUCH-1'", 0),
    EV("ev-stock-rejected-unknown-order", "stock.rejected", oms__v1__stock_rejected,
       "order_id=NO-SUCH-2 reason=gone", "ingest", "",
       "SELECT count(*) FROM ingest.orders WHERE order_id = 'NO-SUCH-2'", 0),
    EV("ev-stock-rejected-no-order", "stock.rejected", oms__v1__stock_rejected, "reason=gone",
       "ingest", "stock.rejected: not a valid oms.v1.StockRejected", NULL, 0),
    EV("ev-settled-garbage", "payment.settled", oms__v1__payment_settled, "hex:0aff01", "inventory",
       "payment.settled: payload (3 bytes) is not a valid oms.v1.PaymentSettled", NULL, 0),
    EV("ev-settled-no-order", "payment.settled", oms__v1__payment_settled, "status=1", "inventory",
       "payment.settled: order_id is empty", NULL, 0),
    EV("ev-settled-bad-status", "payment.settled", oms__v1__payment_settled,
       "order_id=EVX-4 status=7", "inventory",
       "payment.settled EVX-4: status 7; expected PAYMENT_STATUS_SUCCEEDED (1) or "
       "PAYMENT_STATUS_FAILED (2)",
       NULL, 0),
    EV("ev-settled-unknown-order", "payment.settled", oms__v1__payment_settled,
       "order_id=NO-SUCH-3 status=1", "ingest", "",
       "SELECT count(*) FROM ingest.orders WHERE order_id = 'NO-SUCH-3'", 0),
    EV("ev-catalog-garbage", "catalog.product", oms__v1__product_upserted, "hex:1a", "inventory",
       "catalog.product: payload (1 bytes) is not a valid oms.v1.ProductUpserted", NULL, 0),
    EV("ev-catalog-no-sku", "catalog.product", oms__v1__product_upserted, "on_hand=5", "inventory",
       "catalog.product: sku must be 1 to 256 bytes, got 0", NULL, 0),
    EV("ev-catalog-negative-stock", "catalog.product", oms__v1__product_upserted,
       "sku=SKU-NEG on_hand=-1", "inventory",
       "catalog.product SKU-NEG: on_hand -1 must be 0 or more",
       "SELECT count(*) FROM inventory.products WHERE sku = 'SKU-NEG'", 0),
    EV("ev-catalog-negative-price", "catalog.product", oms__v1__product_upserted,
       "sku=SKU-NEGP on_hand=1 price_cents=-1", "inventory",
       "catalog.product SKU-NEGP: price_cents -1 must be 0 or more", NULL, 0),
    EV("ev-order-created-no-lines", "order.created", oms__v1__order_created, "order_id=EVX-5",
       "inventory", "order.created EVX-5: the order has no lines", NULL, 0),
    EV("ev-order-created-qty-zero", "order.created", oms__v1__order_created,
       "order_id=EVX-6 lines=SKU-A*0", "inventory",
       "order.created EVX-6: line 1 (SKU-A): qty 0 must be 1 or more", NULL, 0),
    EV("ev-order-created-wrong-type", "order.created", oms__v1__payment_settled,
       "order_id=EVX-7 status=1 amount_cents=5", "inventory",
       "order.created: payload (55 bytes) is not a valid oms.v1.OrderCreated", NULL, 0),
    EV("ev-refund-requested-garbage", "refund.requested", oms__v1__refund_requested, "hex:ff",
       "refund", "refund.requested: payload is not a valid oms.v1.RefundRequested", NULL, 0),
    EV("ev-refund-requested-no-key", "refund.requested", oms__v1__refund_requested,
       "order_id=EVX-8 amount_cents=100", "refund", "refund.requested: idempotency_key is empty",
       NULL, 0),
    EV("ev-refund-requested-unknown-order", "refund.requested", oms__v1__refund_requested,
       "idempotency_key=bad-k1 order_id=NO-SUCH-4 amount_cents=100", "refund", "",
       "SELECT count(*) FROM refund.refunds WHERE idempotency_key = 'bad-k1' AND state = "
       "'rejected' AND reject_reason = 'order NO-SUCH-4 cannot be refunded: it is not a paid "
       "order (unknown, failed, or its payment is not recorded yet)'",
       1),
    EV("ev-refund-requested-key-too-long", "refund.requested", oms__v1__refund_requested,
       "idempotency_key=" ID_129 " order_id=EVX-14", "refund",
       "refund.requested: idempotency_key is longer than 128 bytes", NULL, 0),
    EV("ev-refund-requested-negative", "refund.requested", oms__v1__refund_requested,
       "idempotency_key=bad-k2 order_id=EVX-15 amount_cents=-100", "refund", "",
       "SELECT count(*) FROM refund.refunds WHERE idempotency_key = 'bad-k2' AND state = "
       "'rejected' AND reject_reason = 'amount_cents -100 must be from 0 (the full remaining "
       "amount) to 100000000000000'",
       1),
    EV("ev-refund-processed-negative", "refund.processed", oms__v1__refund_processed,
       "order_id=EVX-9 refund_id=r-1 amount_cents=-100", "ingest",
       "refund.processed: not a valid oms.v1.RefundProcessed (order_id, refund_id and a positive "
       "amount_cents are required)",
       NULL, 0),
    EV("ev-order-paid-garbage", "order.paid", oms__v1__order_paid, "hex:0a0a0a", "refund",
       "order.paid: not a valid oms.v1.OrderPaid", NULL, 0),
    EV("ev-order-paid-negative", "order.paid", oms__v1__order_paid,
       "order_id=EVX-10 customer_id=C1 total_cents=-1", "refund",
       "order.paid: total_cents must be from 0 to 100000000000000", NULL, 0),
    EV("ev-order-paid-notify-garbage", "order.paid", oms__v1__order_paid, "hex:0aff", "notify",
       "order.paid: payload is not a valid protobuf message of the subject's type", NULL, 0),
    EV("ev-order-failed-currency", "order.failed", oms__v1__order_failed,
       "order_id=EVX-11 customer_id=C1 total_cents=1 currency=EURO", "notify",
       "order.failed: currency must be an ISO 4217 code such as USD", NULL, 0),
    EV("ev-order-paid-no-customer", "order.paid", oms__v1__order_paid,
       "order_id=EVX-12 total_cents=1 currency=USD paid_at_ms=1790000000000", "analytics",
       "order.paid: order EVX-12: customer_id is empty", NULL, 0),
    {.id = "ev-payload-bytes",
     .where = SURF_EVENT,
     .subject = "catalog.product",
     .type = &oms__v1__product_upserted__descriptor,
     .input = "hex:00ff00ff",
     .service = "inventory",
     .expect = "catalog.product: payload (4 bytes) is not a valid oms.v1.ProductUpserted",
     .check_sql = "SELECT count(*) FROM inventory.dead_letters WHERE event_id = "
                  "'ev-payload-bytes' AND payload = '\\x00ff00ff'::bytea",
     .check_value = 1},

    /* ---- HTTP endpoints */
    HTTP("http-unknown-route", INGEST_PORT, "GET", "/nope", "", 404, "no route for /nope"),
    HTTP("http-wrong-method", INGEST_PORT, "POST", "/orders/X", "", 405,
         "POST is not allowed on /orders/X; allowed: GET"),
    HTTP("http-delete-method", REFUND_PORT, "DELETE", "/refunds", "", 405,
         "DELETE is not allowed on /refunds; allowed: POST, GET"),
    HTTP("http-no-token", INGEST_PORT, "POST", "/dead-letters/1/retry", "", 401,
         "missing \"Authorization: Bearer <admin token>\" header"),
    HTTP_X("http-bad-token", INGEST_PORT, "POST", "/dead-letters/1/retry",
           "Authorization: Bearer wrong", 0, 0, 0, 401, "invalid admin token"),
    HTTP_X("http-basic-auth", REFUND_PORT, "POST", "/refunds", "Authorization: Basic YTpi", 0, 0, 0,
           401, "missing \"Authorization: Bearer <admin token>\" header"),
    HTTP_X("http-oversized-body", REFUND_PORT, "POST", "/refunds", "@token", 0, 0,
           8 * 1024 * 1024 + 1, 413, "request body is larger than 8388608 bytes"),
    {.id = "http-bad-json",
     .where = SURF_HTTP,
     .port = REFUND_PORT,
     .method = "POST",
     .path = "/refunds",
     .header = "@token",
     .input = "{\"order_id\":",
     .status = 400,
     .expect = "the body is not JSON: unexpected token near end of file (line 1, column 12)"},
    {.id = "http-json-array",
     .where = SURF_HTTP,
     .port = REFUND_PORT,
     .method = "POST",
     .path = "/refunds",
     .header = "@token",
     .input = "[]",
     .status = 400,
     .expect = "the body must be a JSON object"},
    {.id = "http-missing-order-id",
     .where = SURF_HTTP,
     .port = REFUND_PORT,
     .method = "POST",
     .path = "/refunds",
     .header = "@token",
     .input = "{\"amount\":\"1.00\"}",
     .status = 400,
     .expect = "order_id is required"},
    {.id = "http-order-id-number",
     .where = SURF_HTTP,
     .port = REFUND_PORT,
     .method = "POST",
     .path = "/refunds",
     .header = "@token",
     .input = "{\"order_id\":5}",
     .status = 400,
     .expect = "order_id must be a string"},
    {.id = "http-negative-cents",
     .where = SURF_HTTP,
     .port = REFUND_PORT,
     .method = "POST",
     .path = "/refunds",
     .header = "@token",
     .input = "{\"order_id\":\"X\",\"amount_cents\":-1}",
     .status = 400,
     .expect = "amount_cents must be a non-negative integer"},
    {.id = "http-amount-and-cents",
     .where = SURF_HTTP,
     .port = REFUND_PORT,
     .method = "POST",
     .path = "/refunds",
     .header = "@token",
     .input = "{\"order_id\":\"X\",\"amount\":\"1.00\",\"amount_cents\":100}",
     .status = 400,
     .expect = "give amount or amount_cents, not both"},
    {.id = "http-restock-string",
     .where = SURF_HTTP,
     .port = REFUND_PORT,
     .method = "POST",
     .path = "/refunds",
     .header = "@token",
     .input = "{\"order_id\":\"X\",\"restock\":\"yes\"}",
     .status = 400,
     .expect = "restock must be true or false"},
    HTTP("http-refunds-no-query", REFUND_PORT, "GET", "/refunds", "", 400,
         "give exactly one of ?key=IDEMPOTENCY_KEY or ?order_id=ID"),
    HTTP("http-dlq-limit-zero", INVENTORY_PORT, "GET", "/dead-letters?limit=0", "", 400,
         "parameter limit must be an integer from 1 to 10000"),
    HTTP("http-dlq-limit-overflow", PAYMENT_PORT, "GET", "/dead-letters?limit=99999999999999999999",
         "", 400, "parameter limit must be an integer from 1 to 10000"),
    HTTP("http-dlq-state", INGEST_PORT, "GET", "/dead-letters?state=closed", "", 400,
         "parameter state must be open or all, got \"closed\""),
    HTTP_X("http-dlq-retry-id", INGEST_PORT, "POST", "/dead-letters/abc/retry", "@token", 0, 0, 0,
           400, "parameter id must be an integer from 1 to 9223372036854775807"),
    HTTP("http-notify-channel", NOTIFY_PORT, "GET", "/notifications?channel=sms", "", 400,
         "channel must be log, email or webhook, got \"sms\""),
    HTTP("http-notify-limit", NOTIFY_PORT, "GET", "/notifications?limit=-3", "", 400,
         "parameter limit must be an integer from 1 to 10000"),
    HTTP("http-kpi-date", ANALYTICS_PORT, "GET", "/kpi/2026-13-01", "", 400,
         "date \"2026-13-01\" is invalid: expected YYYY-MM-DD or today"),
    HTTP("http-kpi-range-missing", ANALYTICS_PORT, "GET", "/kpi?from=2026-01-01", "", 400,
         "parameter to is required (YYYY-MM-DD)"),
    HTTP("http-kpi-range-reversed", ANALYTICS_PORT, "GET", "/kpi?from=2026-02-01&to=2026-01-01", "",
         400, "parameter to=\"2026-01-01\" is before from=\"2026-02-01\""),
    HTTP("http-leaderboard-limit", ANALYTICS_PORT, "GET", "/leaderboard?limit=ten", "", 400,
         "parameter limit=\"ten\" is invalid: expected an integer from 1 to 1000"),
    HTTP("http-unknown-order", INGEST_PORT, "GET", "/orders/NO-SUCH", "", 404, "no order NO-SUCH"),
    HTTP("http-unknown-product", INVENTORY_PORT, "GET", "/products/NO-SUCH", "", 404,
         "no product with sku \"NO-SUCH\"; load it with omsctl stock load"),
    HTTP("http-callback-unsigned", PAYMENT_PORT, "POST", "/callbacks/payment", "{}", 401,
         "missing Oms-Signature header"),
    HTTP_X("http-callback-malformed-sig", PAYMENT_PORT, "POST", "/callbacks/payment",
           "Oms-Signature: sha256=abc", 0, 0, 0, 401,
           "malformed Oms-Signature header (expected t=<unix>,v1=<hex>)"),
    HTTP_X("http-callback-stale-sig", PAYMENT_PORT, "POST", "/callbacks/payment",
           "Oms-Signature: t=1,v1=" ZEROS_64, 0, 0, 0, 401,
           "signature timestamp is more than 15 minutes away"),
    HTTP_X("http-huge-url", INGEST_PORT, "GET", "/orders/", NULL, 200000, 0, 0, 414, ""),
    HTTP_X("http-huge-header", INGEST_PORT, "GET", "/healthz", NULL, 0, 200000, 0, 431, ""),
    HTTP("http-param-not-utf8", INGEST_PORT, "GET", "/dead-letters?state=%ff", "", 400,
         "parameter state is not valid UTF-8"),
    HTTP("http-kpi-limit-overflow", ANALYTICS_PORT, "GET",
         "/leaderboard?limit=99999999999999999999", "", 400,
         "parameter limit=\"99999999999999999999\" is invalid: expected an integer from 1 to 1000"),
    HTTP("http-nul-in-path", INGEST_PORT, "GET", "/orders/A%00B", "", 400,
         "parameter order_id holds a control character"),

    /* ---- omsctl arguments */
    CLI("cli-unknown-command", "frobnicate", 2,
        "omsctl: unknown command \"frobnicate\" (commands: import, order, stock, events, status, "
        "dlq, notifications, refund, kpi, leaderboard, trace, console)"),
    CLI("cli-import-no-file", "import", 2, "omsctl: which file? give the CSV to import"),
    CLI("cli-import-two-files", "import a.csv b.csv", 2,
        "omsctl: one FILE at a time, got \"b.csv\" too"),
    CLI("cli-import-missing-file", "import no-such.csv", 1,
        "omsctl: cannot open no-such.csv: No such file or directory"),
    CLI("cli-import-chunk-zero", "import --chunk-rows 0 good.csv", 2,
        "omsctl: --chunk-rows must be an integer from 1 to 10000, got \"0\"\n"
        "run `omsctl import --help` for usage"),
    CLI("cli-import-chunk-letters", "import --chunk-rows many good.csv", 2,
        "omsctl: --chunk-rows must be an integer from 1 to 10000, got \"many\""),
    CLI("cli-import-unknown-option", "import --frob good.csv", 2, "omsctl: unknown option --frob"),
    CLI("cli-import-timeout-no-value", "import good.csv --timeout", 2,
        "omsctl: option --timeout needs a value"),
    CLI("cli-import-empty-file", "import empty.csv", 1,
        "omsctl: empty.csv is empty: an order CSV starts with a header line"),
    CLI("cli-import-header-only", "import header.csv", 1,
        "omsctl: header.csv has a header but no rows: nothing to import"),
    CLI("cli-import-no-qty", "import noqty.csv", 1,
        "omsctl: cannot import noqty.csv: column qty is missing: header has no qty column "
        "(required: order_id, customer_id, sku, qty, and unit_price or unit_price_cents); "
        "accepted column names: order_id (or external_order_id), customer_id, sku (or "
        "product_sku), qty, unit_price or unit_price_cents; optional: placed_at (or "
        "order_placed_at), currency, customer_email, customer_name, product_name; nothing was "
        "sent"),
    CLI("cli-refund-no-order", "refund", 2, "omsctl: which order? give its ORDER_ID"),
    CLI("cli-refund-bad-amount", "refund ORD-1 1.001", 2,
        "omsctl: AMOUNT \"1.001\" must be a "
        "decimal"),
    CLI("cli-refund-negative", "refund ORD-1 -- -5.00", 2,
        "omsctl: AMOUNT \"-5.00\" must be a "
        "decimal"),
    CLI("cli-refund-bad-line", "refund ORD-1 --restock --line SKU", 2,
        "omsctl: --line \"SKU\" must be SKU:QTY, such as SKU-7:2"),
    CLI("cli-refund-line-no-restock", "refund ORD-1 --line SKU-A:1", 2,
        "omsctl: --line names goods to put back on hand: add --restock"),
    CLI("cli-refund-status-nothing", "refund status", 2,
        "omsctl: give exactly one of --order ORDER_ID or --key KEY"),
};

#define N_CASES (sizeof CASES / sizeof CASES[0])

/* ---- reporting ---------------------------------------------------------- */

typedef struct tally {
    int passed, failed, pending;
} tally;

static void report(tally *t, const bad_case *c, bool ok, const char *got)
{
    if (c->pending) {
        t->pending++;
        printf("bad_input %-34s %-6s pending (TODO: %s)\n", c->id, SURFACE_NAME[c->where], c->todo);
    } else if (ok) {
        t->passed++;
        printf("bad_input %-34s %-6s ok\n", c->id, SURFACE_NAME[c->where]);
    } else {
        t->failed++;
        printf("bad_input %-34s %-6s FAIL\n    want: %s\n    got:  %s\n", c->id,
               SURFACE_NAME[c->where], c->expect ? c->expect : "", got ? got : "(nothing)");
    }
    fflush(stdout);
}

/* ---- PostgreSQL --------------------------------------------------------- */

/* The first value of a one-parameter query, malloc'd; NULL when no row. */
static char *pg_text(PGconn *pg, const char *sql, const char *param)
{
    const char *params[] = {param};
    PGresult *r = PQexecParams(pg, sql, 1, NULL, params, NULL, NULL, 0);
    char *v = NULL;
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fprintf(stderr, "%s: %s", sql, PQerrorMessage(pg));
    else if (PQntuples(r) > 0)
        v = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

static long pg_count(PGconn *pg, const char *sql, const char *param)
{
    char *v = pg_text(pg, sql, param);
    long n = v ? atol(v) : -1;
    free(v);
    return n;
}

/* Waits until service's dead_letters holds event_id; returns its reason. */
static char *wait_dead_letter(PGconn *pg, const char *service, const char *event_id, int timeout_ms)
{
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT reason FROM %s.dead_letters WHERE event_id = $1", service);
    for (int waited = 0;; waited += 50) {
        char *reason = pg_text(pg, sql, event_id);
        if (reason != NULL || waited >= timeout_ms)
            return reason;
        usleep(50000);
    }
}

/* The case's own check, if any: check_sql gives check_value. */
static bool check_holds(PGconn *pg, const bad_case *c, char *got, size_t got_len)
{
    if (c->check_sql == NULL)
        return true;
    long v = testenv_wait_pg(pg, c->check_sql, c->check_value, 10000);
    snprintf(got, got_len, "%s -> %ld (want %ld)", c->check_sql, v, c->check_value);
    return v == c->check_value;
}

/* ---- CSV ---------------------------------------------------------------- */

static void csv_send(js_conn *js, const bad_case *c)
{
    char msg_id[160], end_id[160], rows[16];
    snprintf(msg_id, sizeof msg_id, "%s:0", c->id);
    snprintf(end_id, sizeof end_id, "%s:end", c->id);
    snprintf(rows, sizeof rows, "%d", c->rows);
    testenv_publish_rows(js, msg_id, c->id, "2", NULL, c->input, strlen(c->input));
    testenv_publish_rows(js, end_id, c->id, NULL, rows, "", 0);
}

/* The import.rejected of import_id at row, or NULL. */
static Oms__V1__ImportRejected *rejection_at(testenv_msg *msgs, size_t n, const char *import_id,
                                             int row)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(msgs[i].subject, "import.rejected") != 0)
            continue;
        Oms__V1__ImportRejected *r = oms__v1__import_rejected__unpack(NULL, msgs[i].len,
                                                                      msgs[i].data);
        if (r != NULL && strcmp(r->import_id, import_id) == 0 && r->row == row)
            return r;
        oms__v1__import_rejected__free_unpacked(r, NULL);
    }
    return NULL;
}

static Oms__V1__ImportCompleted *completion_of(testenv_msg *msgs, size_t n, const char *import_id)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(msgs[i].subject, "import.completed") != 0)
            continue;
        Oms__V1__ImportCompleted *d = oms__v1__import_completed__unpack(NULL, msgs[i].len,
                                                                        msgs[i].data);
        if (d != NULL && strcmp(d->import_id, import_id) == 0)
            return d;
        oms__v1__import_completed__free_unpacked(d, NULL);
    }
    return NULL;
}

/* The rejection at the case's row (reason and field), the import's counts,
 * and its orders in ingest.orders. */
static bool csv_check(PGconn *pg, testenv_msg *msgs, size_t n, const bad_case *c, char *got,
                      size_t got_len)
{
    Oms__V1__ImportCompleted *done = completion_of(msgs, n, c->id);
    bool ok = done != NULL;
    if (!ok) {
        snprintf(got, got_len, "no import.completed for %s", c->id);
        return false;
    }
    if (c->row > 0) {
        Oms__V1__ImportRejected *r = rejection_at(msgs, n, c->id, c->row);
        ok = r != NULL && strcmp(r->reason, c->expect) == 0 && strcmp(r->field, c->field) == 0;
        snprintf(got, got_len, "%s (field \"%s\")", r ? r->reason : "no rejection at that row",
                 r ? r->field : "");
        oms__v1__import_rejected__free_unpacked(r, NULL);
    }
    long orders = pg_count(pg, "SELECT count(*) FROM ingest.orders WHERE import_id = $1", c->id);
    if (ok && (done->orders != c->orders || done->rejected_rows != c->rejected ||
               orders != c->orders || done->missing_rows != 0)) {
        snprintf(got, got_len,
                 "import.completed orders %d rejected_rows %d missing_rows %d; %ld in "
                 "ingest.orders (want %d orders, %d rejected)",
                 done->orders, done->rejected_rows, done->missing_rows, orders, c->orders,
                 c->rejected);
        ok = false;
    }
    oms__v1__import_completed__free_unpacked(done, NULL);
    return ok;
}

/* ---- ingest.rows headers ------------------------------------------------ */

static void header_send(js_conn *js, const bad_case *c)
{
    testenv_publish_rows(js, c->id, c->import_id, c->first_row, c->end_rows, c->input,
                         strlen(c->input));
}

/* A dead letter with the exact reason, or (expect "") none and the check. */
static bool dead_letter_check(PGconn *pg, js_conn *js, const char *service, const bad_case *c,
                              char *got, size_t got_len)
{
    if (*c->expect == '\0') {
        char *reason = NULL;
        /* Every case is sent before any is checked, so the service's
         * durables settled means this event was acked: applied or ignored
         * unless a dead letter says otherwise. Not its inbox row: durables
         * keyed by their own state keep none (docs/architecture.md, Inbox). */
        if (!testenv_service_settled(js, service, 10000)) {
            snprintf(got, got_len, "%s still has events pending after 10 s", service);
            return false;
        }
        if ((reason = wait_dead_letter(pg, service, c->id, 0)) != NULL) {
            snprintf(got, got_len, "dead-lettered: %s", reason);
            free(reason);
            return false;
        }
        return check_holds(pg, c, got, got_len);
    }
    char *reason = wait_dead_letter(pg, service, c->id, 10000);
    bool ok = reason != NULL && strcmp(reason, c->expect) == 0;
    snprintf(got, got_len, "%s", reason ? reason : "no dead letter after 10 s");
    free(reason);
    return ok && check_holds(pg, c, got, got_len);
}

/* ---- events ------------------------------------------------------------- */

/* Sets one scalar field of msg from text; false if the field is unknown. */
static bool set_field(ProtobufCMessage *msg, const char *name, char *value, void **owned,
                      size_t *n_owned)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(msg->descriptor, name);
    if (f == NULL)
        return false;
    char *at = (char *)msg + f->offset;
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset)
        *(protobuf_c_boolean *)((char *)msg + f->quantifier_offset) = 1;
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: *(char **)at = value; return true;
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_ENUM: *(int32_t *)at = (int32_t)strtol(value, NULL, 10); return true;
    case PROTOBUF_C_TYPE_INT64: *(int64_t *)at = strtoll(value, NULL, 10); return true;
    case PROTOBUF_C_TYPE_BOOL: *(protobuf_c_boolean *)at = strcmp(value, "true") == 0; return true;
    case PROTOBUF_C_TYPE_MESSAGE: {
        /* lines=SKU*QTY,SKU*QTY: repeated messages with a sku and a qty */
        const ProtobufCMessageDescriptor *d = f->descriptor;
        size_t n = 0;
        ProtobufCMessage **items = calloc(8, sizeof *items);
        owned[(*n_owned)++] = items;
        for (char *save = NULL, *tok = strtok_r(value, ",", &save); tok && n < 8;
             tok = strtok_r(NULL, ",", &save)) {
            char *star = strchr(tok, '*');
            ProtobufCMessage *item = calloc(1, d->sizeof_message);
            owned[(*n_owned)++] = item;
            protobuf_c_message_init(d, item);
            if (star != NULL)
                *star = '\0', set_field(item, "qty", star + 1, owned, n_owned);
            set_field(item, "sku", tok, owned, n_owned);
            items[n++] = item;
        }
        *(ProtobufCMessage ***)at = items;
        *(size_t *)((char *)msg + f->quantifier_offset) = n;
        return true;
    }
    default: return false;
    }
}

static size_t hex_decode(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = 0;
    for (; hex[0] && hex[1] && n < cap; hex += 2) {
        char byte[3] = {hex[0], hex[1], '\0'};
        out[n++] = (uint8_t)strtoul(byte, NULL, 16);
    }
    return n;
}

/* Builds a case's payload into buf: "hex:..." is raw bytes; otherwise
 * "field=value ..." set on a c->type message with a meta (event_id = the
 * case id) unless the spec starts with "-meta". */
static size_t build_payload(const bad_case *c, uint8_t *buf, size_t cap)
{
    if (strncmp(c->input, "hex:", 4) == 0)
        return hex_decode(c->input + 4, buf, cap);
    char *spec = strdup(c->input), *save = NULL;
    void *owned[64];
    size_t n_owned = 0;
    ProtobufCMessage *msg = calloc(1, c->type->sizeof_message);
    protobuf_c_message_init(c->type, msg);
    Oms__V1__EventMeta meta = OMS__V1__EVENT_META__INIT;
    meta.event_id = (char *)c->id;
    meta.producer = "test";
    meta.occurred_at_ms = oms_now_ms();
    bool with_meta = strncmp(spec, "-meta", 5) != 0;
    const ProtobufCFieldDescriptor *mf = protobuf_c_message_descriptor_get_field_by_name(c->type,
                                                                                         "meta");
    if (with_meta && mf != NULL)
        *(Oms__V1__EventMeta **)((char *)msg + mf->offset) = &meta;
    for (char *tok = strtok_r(spec, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(tok, '=');
        if (eq == NULL)
            continue; /* -meta */
        *eq = '\0';
        if (!set_field(msg, tok, eq + 1, owned, &n_owned))
            fail_msg("case %s: %s has no field %s", c->id, c->type->name, tok);
    }
    size_t len = protobuf_c_message_get_packed_size(msg);
    assert_true(len <= cap);
    protobuf_c_message_pack(msg, buf);
    for (size_t i = 0; i < n_owned; i++)
        free(owned[i]);
    free(msg);
    free(spec);
    return len;
}

static void event_send(js_conn *js, const bad_case *c)
{
    uint8_t buf[4096];
    size_t len = build_payload(c, buf, sizeof buf);
    const char *headers[] = {"Nats-Msg-Id", c->id, "Oms-Type", c->type->name, NULL};
    testenv_publish(js, c->subject, buf, len, headers);
}

/* ---- HTTP --------------------------------------------------------------- */

typedef struct grown {
    char *data;
    size_t len;
} grown;

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    grown *g = arg;
    char *d = realloc(g->data, g->len + size * n + 1);
    if (d == NULL)
        return 0;
    memcpy(d + g->len, p, size * n);
    g->len += size * n;
    d[g->len] = '\0';
    g->data = d;
    return size * n;
}

static char *padded(const char *prefix, size_t total, char fill)
{
    size_t plen = strlen(prefix), n = total > plen ? total : plen;
    char *s = malloc(n + 1);
    memcpy(s, prefix, plen);
    memset(s + plen, fill, n - plen);
    s[n] = '\0';
    return s;
}

/* Sends the case's request; returns the status, *body the answer. */
static long http_send(const bad_case *c, char **body)
{
    char auth[300], *url_path = padded(c->path, c->big_path, 'a'), *url = NULL;
    char *pad_header = NULL, *big = NULL;
    grown g = {NULL, 0};
    struct curl_slist *headers = NULL;
    long status = 0;
    CURL *curl = curl_easy_init();
    size_t url_len = strlen(url_path) + 64;
    url = malloc(url_len);
    snprintf(url, url_len, "http://127.0.0.1:%d%s", c->port, url_path);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 20000L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &g);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, c->method);
    if (c->header != NULL && strcmp(c->header, "@token") == 0) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", testenv_require("OMS_ADMIN_TOKEN"));
        headers = curl_slist_append(headers, auth);
    } else if (c->header != NULL) {
        headers = curl_slist_append(headers, c->header);
    }
    if (c->big_header > 0) {
        pad_header = padded("X-Pad: ", c->big_header, 'p');
        headers = curl_slist_append(headers, pad_header);
    }
    if (c->big_body > 0) {
        big = padded("", c->big_body, ' ');
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, big);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->big_body);
    } else if (strcmp(c->method, "POST") == 0) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, c->input);
    }
    if (c->big_body > 0 || *c->input != '\0')
        headers = curl_slist_append(headers, "Content-Type: application/json");
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    if (curl_easy_perform(curl) == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    free(url), free(url_path), free(pad_header), free(big);
    *body = g.data ? g.data : strdup("");
    return status;
}

/* The exact status and, for a JSON answer, the exact "error" text. An
 * expectation of "" checks the status only (libmicrohttpd's own answers). */
static bool http_check(const bad_case *c, char *got, size_t got_len)
{
    char *body = NULL;
    long status = http_send(c, &body);
    json_t *j = json_loads(body, 0, NULL);
    const char *error = json_string_value(json_object_get(j, "error"));
    bool ok = status == c->status && (*c->expect == '\0' || (error && !strcmp(error, c->expect)));
    snprintf(got, got_len, "%ld %.300s", status, error ? error : body);
    json_decref(j);
    free(body);
    return ok;
}

/* ---- omsctl ------------------------------------------------------------- */

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Runs omsctl with the case's arguments in dir; its exit status and a line
 * of its output. */
static bool cli_check(const char *dir, const bad_case *c, char *got, size_t got_len)
{
    char prefix[1024], args[2048], *out = NULL;
    snprintf(prefix, sizeof prefix, "cd '%s' &&", dir);
    snprintf(args, sizeof args, "%s 2>&1", c->input);
    int rc = testenv_omsctl(prefix, args, &out);
    snprintf(got, got_len, "exit %d: %.600s", rc, out);
    bool ok = rc == c->status && strstr(out, c->expect) != NULL;
    free(out);
    return ok;
}

/* ---- the known good import around the table ---------------------------- */

static void good_chunk(js_conn *js, int part)
{
    char body[GOOD_ORDERS * 80 + 128], id[32], first[16];
    size_t len = (size_t)snprintf(body, sizeof body, "order_id,customer_id,sku,qty,unit_price\n");
    int from = part * GOOD_ORDERS / 2, to = from + GOOD_ORDERS / 2;
    for (int o = from; o < to; o++)
        for (int l = 0; l < 2; l++)
            len += (size_t)snprintf(body + len, sizeof body - len, "GOOD-%03d,C%d,SKU-%d,%d,1.25\n",
                                    o, o % 5, l, l + 1);
    snprintf(id, sizeof id, "imp-good:%d", part);
    snprintf(first, sizeof first, "%d", 2 + part * GOOD_ORDERS);
    testenv_publish_rows(js, id, "imp-good", first, NULL, body, len);
}

static void good_end(js_conn *js)
{
    char rows[16];
    snprintf(rows, sizeof rows, "%d", GOOD_ORDERS * 2);
    testenv_publish_rows(js, "imp-good:end", "imp-good", NULL, rows, "", 0);
}

/* ---- the test ----------------------------------------------------------- */

static const struct {
    const char *name;
    int port;
} SERVICES[6] = {
    {"ingest", INGEST_PORT}, {"inventory", INVENTORY_PORT}, {"payment", PAYMENT_PORT},
    {"notify", NOTIFY_PORT}, {"refund", REFUND_PORT},       {"analytics", ANALYTICS_PORT},
};

static char redis_setting[300]; /* OMS_REDIS_URL=redis://host:port/REDIS_DB */

static const char *const *service_env(const char *name)
{
    static const char *const ingest[] = {"OMS_INGEST_SEAL_MS=200", NULL};
    static const char *const payment[] = {
        "OMS_PAYMENT_SUCCESS_RATE=1",
        "OMS_PAYMENT_WEBHOOK_SECRET=bad-input-webhook-secret-of-32-bytes", NULL};
    static const char *const notify[] = {"OMS_NOTIFY_CHANNELS=log", NULL};
    static const char *analytics[] = {redis_setting, NULL};
    if (strcmp(name, "ingest") == 0)
        return ingest;
    if (strcmp(name, "payment") == 0)
        return payment;
    if (strcmp(name, "notify") == 0)
        return notify;
    if (strcmp(name, "analytics") == 0) {
        const char *base = testenv_require("OMS_REDIS_URL");
        const char *slash = strchr(base + strlen("redis://"), '/');
        int len = slash ? (int)(slash - base) : (int)strlen(base);
        snprintf(redis_setting, sizeof redis_setting, "OMS_REDIS_URL=%.*s/" REDIS_DB, len, base);
        return analytics;
    }
    return NULL;
}

static void publish_all(js_conn *js)
{
    for (size_t i = 0; i < N_CASES; i++) {
        const bad_case *c = &CASES[i];
        if (c->pending)
            continue;
        if (c->where == SURF_CSV)
            csv_send(js, c);
        else if (c->where == SURF_HEADER)
            header_send(js, c);
        else if (c->where == SURF_EVENT)
            event_send(js, c);
    }
}

static bool csv_imports_sealed(void *arg)
{
    PGconn *pg = arg;
    long want = 0;
    for (size_t i = 0; i < N_CASES; i++)
        want += CASES[i].where == SURF_CSV && !CASES[i].pending;
    return testenv_pg_long(pg, "SELECT count(*) FROM ingest.imports WHERE import_id LIKE 'csv-%'"
                               " AND sealed_at IS NOT NULL") == want &&
           testenv_pg_long(pg, "SELECT count(*) FROM ingest.outbox") == 0;
}

static void check_all(PGconn *pg, js_conn *js, const char *dir, tally *t)
{
    testenv_msg *msgs = NULL;
    char got[1200];
    /* Not asserted: an import that never seals fails its own case. */
    if (!testenv_wait(csv_imports_sealed, pg, 20000))
        printf("bad_input: not every CSV import was sealed after 20 s\n");
    size_t n = testenv_stream_read(js, "IMPORTS", NULL, &msgs);
    for (size_t i = 0; i < N_CASES; i++) {
        const bad_case *c = &CASES[i];
        bool ok = false;
        got[0] = '\0';
        if (c->pending)
            ;
        else if (c->where == SURF_CSV)
            ok = csv_check(pg, msgs, n, c, got, sizeof got);
        else if (c->where == SURF_HEADER)
            ok = dead_letter_check(pg, js, "ingest", c, got, sizeof got);
        else if (c->where == SURF_EVENT)
            ok = dead_letter_check(pg, js, c->service, c, got, sizeof got);
        else if (c->where == SURF_HTTP)
            ok = http_check(c, got, sizeof got);
        else
            ok = cli_check(dir, c, got, sizeof got);
        report(t, c, ok, got);
    }
    testenv_msgs_free(msgs, n);
}

/* Nothing else was lost: the good import is whole and every service ready. */
static void check_nothing_lost(PGconn *pg)
{
    assert_int_equal(testenv_wait_pg(pg,
                                     "SELECT count(*) FROM ingest.imports WHERE import_id = "
                                     "'imp-good' AND sealed_at IS NOT NULL",
                                     1, 20000),
                     1);
    assert_int_equal(testenv_pg_long(pg, ORDERS_OF("imp-good")), GOOD_ORDERS);
    assert_int_equal(testenv_pg_long(pg, "SELECT sum(total_cents) FROM ingest.orders WHERE "
                                         "import_id = 'imp-good'"),
                     GOOD_ORDERS * 375);
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM ingest.import_rows WHERE import_id"
                                         " = 'imp-good' AND reason IS NOT NULL"),
                     0);
    /* ... and went on through the whole pipeline: reserved, charged, paid,
     * notified. */
    assert_int_equal(testenv_wait_pg(pg,
                                     "SELECT count(*) FROM ingest.orders WHERE import_id = "
                                     "'imp-good' AND status = 'paid'",
                                     GOOD_ORDERS, 30000),
                     GOOD_ORDERS);
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM payment.payments WHERE order_id "
                                         "LIKE 'GOOD-%' AND status = 'succeeded'"),
                     GOOD_ORDERS);
    assert_int_equal(testenv_wait_pg(pg,
                                     "SELECT count(*) FROM notify.notifications WHERE "
                                     "order_id LIKE 'GOOD-%'",
                                     GOOD_ORDERS, 20000),
                     GOOD_ORDERS);
    /* omsctl refused every file it was given: none of their orders exists. */
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM ingest.orders WHERE order_id IN "
                                         "('CLI-1', 'NQ-1')"),
                     0);
    for (size_t i = 0; i < 6; i++) {
        long status = testenv_http("GET", SERVICES[i].port, "/readyz", NULL, NULL);
        printf("bad_input %-34s %-6s %s\n", SERVICES[i].name, "ready",
               status == 200 ? "ok" : "FAIL");
        assert_int_equal(status, 200);
    }
}

/* The files the CLI cases name, in a directory of their own. */
static const struct {
    const char *name, *text;
} CLI_FILES[] = {
    {"good.csv", CSV_HDR "CLI-1,C1,,SKU-A,1,1.00\n"},
    {"empty.csv", ""},
    {"header.csv", CSV_HDR},
    {"noqty.csv", "order_id,customer_id,sku,unit_price\nNQ-1,C1,SKU-A,1.00\n"},
};

#define N_CLI_FILES (sizeof CLI_FILES / sizeof CLI_FILES[0])

static void cli_files_remove(const char *dir)
{
    char path[1024];
    for (size_t i = 0; i < N_CLI_FILES; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, CLI_FILES[i].name);
        unlink(path);
    }
    rmdir(dir);
}

/* Case ids name imports, messages and events: two cases must not share one. */
static void assert_ids_unique(void)
{
    for (size_t i = 0; i < N_CASES; i++)
        for (size_t j = i + 1; j < N_CASES; j++)
            if (strcmp(CASES[i].id, CASES[j].id) == 0)
                fail_msg("case id %s is used twice", CASES[i].id);
}

static void test_bad_input_table(void **state)
{
    (void)state;
    pid_t pids[6];
    tally t = {0, 0, 0};
    char dir[] = "/tmp/oms-bad-input-XXXXXX";
    assert_ids_unique();
    assert_non_null(mkdtemp(dir));
    for (size_t i = 0; i < N_CLI_FILES; i++)
        write_file(dir, CLI_FILES[i].name, CLI_FILES[i].text);
    testenv_reset(SCHEMAS);
    for (size_t i = 0; i < 6; i++)
        pids[i] = testenv_service_start(SERVICES[i].name, SERVICES[i].port,
                                        service_env(SERVICES[i].name));
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();

    testenv_load_product(js, "SKU-0", 1000);
    testenv_load_product(js, "SKU-1", 1000);
    assert_int_equal(testenv_wait_pg(pg,
                                     "SELECT count(*) FROM inventory.products WHERE sku IN "
                                     "('SKU-0', 'SKU-1')",
                                     2, 10000),
                     2);
    good_chunk(js, 0);
    publish_all(js);
    good_chunk(js, 1);
    good_end(js);
    check_all(pg, js, dir, &t);
    cli_files_remove(dir);
    printf("bad_input: %d cases ok, %d failed, %d pending\n", t.passed, t.failed, t.pending);
    check_nothing_lost(pg);
    assert_int_equal(t.failed, 0);
    assert_true(t.passed >= 60);
    PQfinish(pg);
    js_conn_destroy(js);
    for (size_t i = 6; i-- > 0;)
        testenv_service_stop(pids[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_bad_input_table, testenv_cleanup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
