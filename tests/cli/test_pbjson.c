/*
 * test_pbjson.c - cli/pbjson.c turns contract events into JSON with the
 * .proto field names, every field present, int64 values exact (beyond
 * 2^53), nested and repeated messages walked, and anything it cannot
 * decode shown as base64 rather than dropped; and its table knows every
 * message of proto/oms_events.proto (read from the source tree, so a
 * message added to the contract but not to the table fails here).
 */
#include "testenv.h"

#include "oms_events.pb-c.h"
#include "pbjson.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROTO_NAME_LEN 256

/* Packs msg and decodes it back through pbjson as type. */
static json_t *round_trip(const ProtobufCMessage *msg, const char *type)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(len ? len : 1);
    assert_non_null(buf);
    protobuf_c_message_pack(msg, buf);
    json_t *j = pbjson_decode(type, buf, len);
    free(buf);
    assert_non_null(j);
    return j;
}

static json_int_t int_at(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v))
        fail_msg("\"%s\" is not an integer", key);
    return json_integer_value(v);
}

static const char *str_at(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    if (s == NULL)
        fail_msg("\"%s\" is not a string", key);
    return s;
}

static void test_order_created_nested_and_repeated(void **state)
{
    (void)state;
    Oms__V1__EventMeta meta = OMS__V1__EVENT_META__INIT;
    Oms__V1__OrderLine l1 = OMS__V1__ORDER_LINE__INIT, l2 = OMS__V1__ORDER_LINE__INIT;
    Oms__V1__OrderLine *lines[] = {&l1, &l2};
    Oms__V1__OrderCreated ev = OMS__V1__ORDER_CREATED__INIT;
    meta.event_id = "e-1";
    meta.occurred_at_ms = 1795317662024;
    meta.producer = "ingest";
    l1.sku = "SKU-1", l1.qty = 2, l1.unit_price_cents = 1299;
    l2.sku = "SKU-2", l2.product_name = "Gadget, large", l2.qty = 1, l2.unit_price_cents = 5;
    ev.meta = &meta;
    ev.order_id = "ORD-1";
    ev.n_lines = 2;
    ev.lines = lines;
    ev.total_cents = 9007199254740993LL; /* 2^53 + 1: not representable as a double */
    ev.currency = "USD";

    json_t *j = round_trip(&ev.base, "oms.v1.OrderCreated");
    assert_string_equal(str_at(j, "order_id"), "ORD-1");
    assert_true(int_at(j, "total_cents") == 9007199254740993LL);
    assert_string_equal(str_at(j, "customer_email"), ""); /* defaults are printed */
    assert_true(int_at(j, "placed_at_ms") == 0);
    const json_t *m = json_object_get(j, "meta");
    assert_string_equal(str_at(m, "event_id"), "e-1");
    assert_true(int_at(m, "occurred_at_ms") == 1795317662024LL);
    assert_string_equal(str_at(m, "causation_id"), "");
    const json_t *arr = json_object_get(j, "lines");
    assert_int_equal(json_array_size(arr), 2);
    assert_string_equal(str_at(json_array_get(arr, 1), "product_name"), "Gadget, large");
    assert_int_equal(int_at(json_array_get(arr, 0), "qty"), 2);
    assert_int_equal(int_at(json_array_get(arr, 0), "unit_price_cents"), 1299);
    assert_int_equal(json_object_size(j), 12); /* every field of OrderCreated */
    assert_string_equal(str_at(j, "customer_phone"), "");
    json_decref(j);
}

static void test_import_completed_bools_and_null_meta(void **state)
{
    (void)state;
    Oms__V1__ImportCompleted ev = OMS__V1__IMPORT_COMPLETED__INIT;
    ev.import_id = "imp-1";
    ev.rows = 40000, ev.valid_rows = 39990, ev.rejected_rows = 10, ev.orders = 12000;
    ev.missing_rows = 3;
    ev.timed_out = 1;

    json_t *j = round_trip(&ev.base, "oms.v1.ImportCompleted");
    assert_true(json_is_null(json_object_get(j, "meta")));
    assert_true(json_is_true(json_object_get(j, "timed_out")));
    assert_int_equal(int_at(j, "rows"), 40000);
    assert_int_equal(int_at(j, "valid_rows"), 39990);
    assert_int_equal(int_at(j, "rejected_rows"), 10);
    assert_int_equal(int_at(j, "orders"), 12000);
    assert_int_equal(int_at(j, "missing_rows"), 3);
    json_decref(j);
}

static void test_unknown_type_is_base64(void **state)
{
    (void)state;
    json_t *j = pbjson_decode("oms.v1.NoSuchEvent", "a,b\n", 4);
    assert_string_equal(str_at(j, "raw_base64"), "YSxiCg==");
    assert_null(json_object_get(j, "error"));
    json_decref(j);

    j = pbjson_decode(NULL, "", 0);
    assert_string_equal(str_at(j, "raw_base64"), "");
    json_decref(j);
}

static void test_undecodable_payload_keeps_bytes(void **state)
{
    (void)state;
    /* Field 2 as a length-delimited string that claims 100 bytes: truncated. */
    static const unsigned char bad[] = {0x12, 0x64, 'x'};
    json_t *j = pbjson_decode("oms.v1.OrderCreated", bad, sizeof bad);
    assert_string_equal(str_at(j, "raw_base64"), "EmR4");
    assert_non_null(json_object_get(j, "error"));
    json_decref(j);
}

static void test_descriptor_table(void **state)
{
    (void)state;
    assert_ptr_equal(pbjson_descriptor("oms.v1.ProductUpserted"),
                     &oms__v1__product_upserted__descriptor);
    assert_ptr_equal(pbjson_descriptor("oms.v1.ImportRejected"),
                     &oms__v1__import_rejected__descriptor);
    assert_null(pbjson_descriptor("ProductUpserted")); /* full names only */
    assert_null(pbjson_descriptor(NULL));
}

static void test_lifecycle_types_known(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        const ProtobufCMessageDescriptor *d;
    } lifecycle[] = {
        {"oms.v1.StockReserved", &oms__v1__stock_reserved__descriptor},
        {"oms.v1.StockRejected", &oms__v1__stock_rejected__descriptor},
        {"oms.v1.PaymentSettled", &oms__v1__payment_settled__descriptor},
        {"oms.v1.StockCommitted", &oms__v1__stock_committed__descriptor},
        {"oms.v1.StockReleased", &oms__v1__stock_released__descriptor},
        {"oms.v1.OrderPaid", &oms__v1__order_paid__descriptor},
        {"oms.v1.OrderFailed", &oms__v1__order_failed__descriptor},
    };
    for (size_t i = 0; i < sizeof lifecycle / sizeof lifecycle[0]; i++)
        if (pbjson_descriptor(lifecycle[i].name) != lifecycle[i].d)
            fail_msg("pbjson does not know %s", lifecycle[i].name);
}

/* proto/oms_events.proto: from OMS_SOURCE_DIR (set by ctest), else next to
 * this file (the compiler is given its absolute path). */
static FILE *open_proto(void)
{
    char path[4096];
    const char *root = getenv("OMS_SOURCE_DIR");
    if (root != NULL) {
        snprintf(path, sizeof path, "%s/proto/oms_events.proto", root);
    } else {
        const char *cut = strstr(__FILE__, "tests/cli/");
        assert_non_null(cut);
        snprintf(path, sizeof path, "%.*sproto/oms_events.proto", (int)(cut - __FILE__), __FILE__);
    }
    FILE *f = fopen(path, "r");
    if (f == NULL)
        fail_msg("cannot open %s", path);
    return f;
}

/* Every top-level `message X {` of the contract must decode by its full
 * name, or `omsctl events tail` shows it as raw base64. */
static void test_every_proto_message_known(void **state)
{
    (void)state;
    FILE *f = open_proto();
    char line[1024], package[PROTO_NAME_LEN] = "", name[PROTO_NAME_LEN], full[2 * PROTO_NAME_LEN];
    int messages = 0, missing = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        if (sscanf(line, "package %255[A-Za-z0-9_.]", package) == 1)
            continue;
        if (sscanf(line, "message %255[A-Za-z0-9_]", name) != 1)
            continue;
        messages++;
        snprintf(full, sizeof full, "%s.%s", package, name);
        const ProtobufCMessageDescriptor *d = pbjson_descriptor(full);
        if (d == NULL || strcmp(d->name, full) != 0) {
            print_error("pbjson's table lacks %s (cli/pbjson.c KNOWN)\n", full);
            missing++;
        }
    }
    fclose(f);
    assert_string_equal(package, "oms.v1");
    assert_true(messages >= 13); /* the contract as of the order lifecycle */
    assert_int_equal(missing, 0);
}

static void test_payment_settled_enum_and_order_failed(void **state)
{
    (void)state;
    Oms__V1__PaymentSettled ps = OMS__V1__PAYMENT_SETTLED__INIT;
    ps.order_id = "ORD-9";
    ps.status = OMS__V1__PAYMENT_STATUS__PAYMENT_STATUS_FAILED;
    ps.amount_cents = 2598;
    ps.reason = "card declined";
    ps.attempts = 2;
    json_t *j = round_trip(&ps.base, "oms.v1.PaymentSettled");
    assert_string_equal(str_at(j, "status"), "PAYMENT_STATUS_FAILED");
    assert_int_equal(int_at(j, "amount_cents"), 2598);
    assert_int_equal(int_at(j, "attempts"), 2);
    json_decref(j);

    Oms__V1__OrderFailed of = OMS__V1__ORDER_FAILED__INIT;
    of.order_id = "ORD-9";
    of.status = "failed";
    of.reason = "payment failed: card declined";
    of.import_id = "imp-1";
    of.failed_at_ms = 1795317662024;
    j = round_trip(&of.base, "oms.v1.OrderFailed");
    assert_string_equal(str_at(j, "reason"), "payment failed: card declined");
    assert_string_equal(str_at(j, "import_id"), "imp-1");
    assert_true(int_at(j, "failed_at_ms") == 1795317662024LL);
    assert_null(json_object_get(j, "raw_base64"));
    assert_int_equal(json_object_size(j), 12); /* every field of OrderFailed */
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_created_nested_and_repeated),
        cmocka_unit_test(test_import_completed_bools_and_null_meta),
        cmocka_unit_test(test_unknown_type_is_base64),
        cmocka_unit_test(test_undecodable_payload_keeps_bytes),
        cmocka_unit_test(test_descriptor_table),
        cmocka_unit_test(test_lifecycle_types_known),
        cmocka_unit_test(test_every_proto_message_known),
        cmocka_unit_test(test_payment_settled_enum_and_order_failed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
