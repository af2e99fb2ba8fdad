/*
 * test_product_list.c - the product-list layout end to end (docs/csv.md):
 * `omsctl import` of a file with one order per row, the products in a JSON
 * cell and no prices or order ids. Prices come from the catalogue (ingest's
 * projection of catalog.product), the orders reach paid or failed with
 * totals to the cent, ids are generated from the file's SHA-256 and the
 * row, a SKU with no price anywhere rejects its row with the reason, bad
 * rows do not stop the good ones, and the same file again creates nothing.
 */
#include "testenv.h"

#include "oms_events.pb-c.h"
#include "outbox.h"

#include <jansson.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INGEST_PORT 19711
#define INVENTORY_PORT 19712
#define PAYMENT_PORT 19713

static const char *const SCHEMAS[] = {"ingest", "inventory", "payment", NULL};

/* Row 2: 2 x 12.34 + 5.00 (both catalogue prices) = 29.68, paid.
 * Row 3: 301 x 7.25 (PROD002 301 times, the file's price wins) + 3 x 12.34
 *        (PROD001 twice, summed) = 2219.27, paid; its cell is longer than
 *        the 4,096 bytes of any other column.
 * Row 4: NOPRICE has no price: rejected.
 * Row 5: quantity 0: rejected.
 * Row 6: 5 x 3.00 of a product with 1 on hand = 15.00, failed (out of stock). */
#define MANY_PROD002 300
#define JANE_CENTS (301 * 725 + 3 * 1234)
static char CSV[32768];

static const char CSV_HEAD[] =
    "customer_name,customer_email,phone,address,products,notes\n"
    "John Doe,John.Doe@example.com,123-456-7890,\"123 Main St, Anytown\","
    "\"[{\"\"sku\"\":\"\"PROD001\"\",\"\"quantity\"\":2},{\"\"sku\"\":\"\"PROD002\"\","
    "\"\"quantity\"\":1}]\",vip\n"
    "Jane Roe,jane@example.com,555-0100,1 Elm Rd,"
    "\"[{\"\"sku\"\":\"\"PROD002\"\",\"\"qty\"\":1,\"\"unit_price\"\":\"\"7.25\"\"},"
    "{\"\"sku\"\":\"\"PROD001\"\",\"\"qty\"\":1},{\"\"sku\"\":\"\"PROD001\"\",\"\"qty\"\":2}";

static const char CSV_TAIL[] =
    "]\",\n"
    "No Price,np@example.com,,,\"[{\"\"sku\"\":\"\"NOPRICE\"\",\"\"quantity\"\":1}]\",\n"
    "Zero Qty,zq@example.com,,,\"[{\"\"sku\"\":\"\"PROD001\"\",\"\"quantity\"\":0}]\",\n"
    "Low Stock,low@example.com,,,\"[{\"\"sku\"\":\"\"PROD-LOW\"\",\"\"quantity\"\":5}]\",\n";

static void build_csv(void)
{
    size_t len = (size_t)snprintf(CSV, sizeof CSV, "%s", CSV_HEAD);
    for (int i = 0; i < MANY_PROD002; i++)
        len += (size_t)snprintf(CSV + len, sizeof CSV - len,
                                ",{\"\"sku\"\":\"\"PROD002\"\",\"\"qty\"\":1}");
    len += (size_t)snprintf(CSV + len, sizeof CSV - len, "%s", CSV_TAIL);
    assert_true(len < sizeof CSV - 1);
}

static void load_priced(js_conn *js, const char *sku, long on_hand, long price_cents)
{
    Oms__V1__ProductUpserted ev = OMS__V1__PRODUCT_UPSERTED__INIT;
    Oms__V1__EventMeta meta;
    char id[37];
    outbox_meta_init(&meta, id, "test", sku, "");
    ev.meta = &meta;
    ev.sku = (char *)sku;
    ev.name = (char *)sku;
    ev.on_hand = on_hand;
    ev.price_cents = price_cents;
    testenv_publish_event(js, "catalog.product", id, &ev.base);
}

/* The id ingest must give row `row`, computed here from the bytes. */
static void expected_id(int row, char *out, size_t len)
{
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)CSV, strlen(CSV), d);
    snprintf(out, len, "pl-%02x%02x%02x%02x%02x%02x%02x%02x-%d", d[0], d[1], d[2], d[3], d[4], d[5],
             d[6], d[7], row);
}

/* omsctl import --json of path, chunk_rows rows per message. */
static json_t *import_json(const char *path, int chunk_rows, int want_rc)
{
    char args[1200], *out = NULL;
    snprintf(args, sizeof args, "import --json --timeout 60 --chunk-rows %d %s", chunk_rows, path);
    assert_int_equal(testenv_omsctl(NULL, args, &out), want_rc);
    json_t *j = json_loads(out, 0, NULL);
    assert_non_null(j);
    free(out);
    return j;
}

static long jint(const json_t *o, const char *key)
{
    return (long)json_integer_value(json_object_get(o, key));
}

static void check_first_import(const json_t *j, const char *id2)
{
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%.*s", (int)(strrchr(id2, '-') + 1 - id2), id2);
    assert_int_equal(jint(j, "rows"), 5);
    assert_int_equal(jint(j, "valid_rows"), 3);
    assert_int_equal(jint(j, "rejected_rows"), 2);
    assert_int_equal(jint(j, "orders"), 3);
    assert_int_equal(jint(j, "paid"), 2);
    assert_int_equal(jint(j, "failed"), 1);
    assert_int_equal(jint(j, "failed_out_of_stock"), 1);
    assert_int_equal(jint(j, "revenue_cents"), 2968 + JANE_CENTS);
    assert_string_equal(json_string_value(json_object_get(j, "ignored_columns")), "notes");
    assert_string_equal(json_string_value(json_object_get(j, "generated_order_id_prefix")), prefix);
    json_t *rej = json_object_get(j, "rejections");
    assert_int_equal(json_array_size(rej), 2);
    char want[300];
    snprintf(want, sizeof want,
             "row 4: products[0].sku \"NOPRICE\" has no price: it is not in "
             "the catalogue (omsctl stock load) and the file gives no "
             "unit_price");
    assert_string_equal(json_string_value(json_object_get(json_array_get(rej, 0), "reason")), want);
    assert_string_equal(json_string_value(json_object_get(json_array_get(rej, 0), "field")),
                        "products");
    assert_string_equal(json_string_value(json_object_get(json_array_get(rej, 1), "reason")),
                        "row 5: products[0].quantity \"0\" must be an integer from 1 to 100000");
}

static void check_order(const char *id2)
{
    char path[128];
    snprintf(path, sizeof path, "/orders/%s", id2);
    json_t *o = testenv_http_json(INGEST_PORT, path);
    assert_int_equal(jint(o, "total_cents"), 2968);
    assert_string_equal(json_string_value(json_object_get(o, "status")), "paid");
    assert_string_equal(json_string_value(json_object_get(o, "customer_id")),
                        "john.doe@example.com");
    assert_string_equal(json_string_value(json_object_get(o, "customer_phone")), "123-456-7890");
    assert_string_equal(json_string_value(json_object_get(o, "customer_address")),
                        "123 Main St, Anytown");
    json_t *lines = json_object_get(o, "lines");
    assert_int_equal(json_array_size(lines), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(lines, 0), "sku")),
                        "PROD001");
    assert_int_equal(jint(json_array_get(lines, 0), "qty"), 2);
    assert_int_equal(jint(json_array_get(lines, 0), "unit_price_cents"), 1234);
    assert_int_equal(jint(json_array_get(lines, 1), "unit_price_cents"), 500);
    json_decref(o);

    char args[200], *out = NULL;
    snprintf(args, sizeof args, "order show %s", id2);
    assert_int_equal(testenv_omsctl(NULL, args, &out), 0);
    assert_non_null(strstr(out, "phone      123-456-7890\n"));
    assert_non_null(strstr(out, "address    123 Main St, Anytown\n"));
    free(out);
}

/* order.created carries the new optional fields. */
static void check_event(js_conn *js, const char *id2)
{
    testenv_msg *msgs = NULL;
    size_t n = testenv_stream_read(js, "ORDERS", "order.created", &msgs);
    int seen = 0;
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        Oms__V1__OrderCreated *ev = oms__v1__order_created__unpack(NULL, msgs[i].len, msgs[i].data);
        assert_non_null(ev);
        if (strcmp(ev->order_id, id2) == 0) {
            assert_string_equal(ev->customer_phone, "123-456-7890");
            assert_string_equal(ev->customer_address, "123 Main St, Anytown");
            assert_int_equal(ev->total_cents, 2968);
            assert_int_equal(ev->n_lines, 2);
            seen++;
        }
        oms__v1__order_created__free_unpacked(ev, NULL);
    }
    testenv_msgs_free(msgs, n);
    assert_int_equal(seen, 1);
}

static void test_product_list_import(void **state)
{
    (void)state;
    static const char *const pay[] = {"OMS_PAYMENT_SUCCESS_RATE=1", NULL};
    static const char *const ingest_env[] = {"OMS_INGEST_SEAL_MS=200", NULL};
    char csv[1024], url[64], id2[64], id3[64];
    testenv_reset(SCHEMAS);
    pid_t ingest = testenv_service_start("ingest", INGEST_PORT, ingest_env);
    pid_t inventory = testenv_service_start("inventory", INVENTORY_PORT, NULL);
    pid_t payment = testenv_service_start("payment", PAYMENT_PORT, pay);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", INGEST_PORT);
    setenv("OMS_INGEST_URL", url, 1);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();

    load_priced(js, "PROD001", 100, 1234);
    load_priced(js, "PROD002", 1000, 500);
    load_priced(js, "PROD-LOW", 1, 300);
    assert_int_equal(testenv_wait_pg(pg, "SELECT count(*) FROM ingest.catalog_prices", 3, 10000),
                     3);
    assert_int_equal(testenv_wait_pg(pg, "SELECT count(*) FROM inventory.products", 3, 10000), 3);

    build_csv();
    snprintf(csv, sizeof csv, "%s/Testing/product-list.csv", testenv_require("OMS_BUILD_DIR"));
    FILE *f = fopen(csv, "w");
    assert_non_null(f);
    fputs(CSV, f);
    fclose(f);
    expected_id(2, id2, sizeof id2);
    expected_id(3, id3, sizeof id3);

    json_t *j = import_json(csv, 1000, 0);
    check_first_import(j, id2);
    json_decref(j);
    check_order(id2);
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT total_cents FROM ingest.orders WHERE order_id = '%s'", id3);
    assert_int_equal(testenv_pg_long(pg, sql), JANE_CENTS);
    check_event(js, id2);

    /* The same file again, in messages of 2 rows: every chunk derives the
     * same ids from the file's hash, so every row is a duplicate. */
    j = import_json(csv, 2, 0);
    assert_int_equal(jint(j, "rows"), 5);
    assert_int_equal(jint(j, "orders"), 0);
    assert_int_equal(jint(j, "rejected_rows"), 5);
    json_decref(j);
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM ingest.orders"), 3);
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM ingest.orders WHERE status IN "
                                         "('paid', 'failed')"),
                     3);

    PQfinish(pg);
    js_conn_destroy(js);
    testenv_service_stop(payment);
    testenv_service_stop(inventory);
    testenv_service_stop(ingest);
}

/* Rows published without an import id (docs/integrations.md): the ids come
 * from the message's own bytes; the same message again is a duplicate. */
static void test_product_list_live_rows(void **state)
{
    (void)state;
    static const char *const ingest_env[] = {"OMS_INGEST_SEAL_MS=200", NULL};
    static const char body[] =
        "customer_id,products,address\n"
        "C-9,\"[{\"\"sku\"\":\"\"PROD001\"\",\"\"qty\"\":1},"
        "{\"\"sku\"\":\"\"PROD002\"\",\"\"qty\"\":4,\"\"unit_price_cents\"\":250}]\","
        "\"2 Line Road\nFlat 3\"\n";
    char id[64], sql[256];
    unsigned char d[SHA256_DIGEST_LENGTH];
    testenv_reset(SCHEMAS);
    pid_t ingest = testenv_service_start("ingest", INGEST_PORT, ingest_env);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();
    load_priced(js, "PROD001", 10, 1999);
    assert_int_equal(testenv_wait_pg(pg, "SELECT count(*) FROM ingest.catalog_prices", 1, 10000),
                     1);

    SHA256((const unsigned char *)body, strlen(body), d);
    snprintf(id, sizeof id, "pl-%02x%02x%02x%02x%02x%02x%02x%02x-2", d[0], d[1], d[2], d[3], d[4],
             d[5], d[6], d[7]);
    testenv_publish_rows(js, "live-pl-1", NULL, NULL, NULL, body, strlen(body));
    snprintf(sql, sizeof sql, "SELECT count(*) FROM ingest.orders WHERE order_id = '%s'", id);
    assert_int_equal(testenv_wait_pg(pg, sql, 1, 10000), 1);
    snprintf(sql, sizeof sql,
             "SELECT total_cents * 10 + line_count FROM ingest.orders WHERE order_id = '%s'"
             " AND customer_address = E'2 Line Road\\nFlat 3'",
             id);
    assert_int_equal(testenv_pg_long(pg, sql), (1999 + 4 * 250) * 10 + 2);

    /* The same rows again, under another message id: a duplicate, once. */
    testenv_publish_rows(js, "live-pl-2", NULL, NULL, NULL, body, strlen(body));
    assert_int_equal(testenv_wait_pg(pg,
                                     "SELECT count(*) FROM ingest.import_rows WHERE reason "
                                     "LIKE '%this row is a duplicate'",
                                     2, 10000),
                     2);
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM ingest.import_rows WHERE reason "
                                         "LIKE '%this row is a duplicate' AND line_no = 0"),
                     1);
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM ingest.orders"), 1);

    PQfinish(pg);
    js_conn_destroy(js);
    testenv_service_stop(ingest);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_product_list_import, testenv_cleanup),
        cmocka_unit_test_teardown(test_product_list_live_rows, testenv_cleanup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
