/*
 * test_proto.c - the event contract (proto/oms_events.proto) through the
 * generated protobuf-c code: every field of every event survives pack and
 * unpack, defaults stay off the wire, and garbage is refused.
 */
#include "testenv.h"

#include "oms_events.pb-c.h"

#include <stdlib.h>
#include <string.h>

/* Packs msg into a fresh buffer; caller frees. */
static uint8_t *pack(const ProtobufCMessage *msg, size_t *len)
{
    size_t size = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(size ? size : 1);
    assert_non_null(buf);
    *len = protobuf_c_message_pack(msg, buf);
    assert_int_equal(*len, size);
    return buf;
}

static Oms__V1__EventMeta make_meta(const char *event_id, const char *correlation_id)
{
    Oms__V1__EventMeta meta = OMS__V1__EVENT_META__INIT;
    meta.event_id = (char *)event_id;
    meta.occurred_at_ms = 1793614500123LL;
    meta.correlation_id = (char *)correlation_id;
    meta.causation_id = "0b7e3a8c-1d2f-4e5a-9b6c-7d8e9f0a1b2c";
    meta.producer = "ingest";
    return meta;
}

static void assert_meta(const Oms__V1__EventMeta *got, const Oms__V1__EventMeta *want)
{
    assert_non_null(got);
    assert_string_equal(got->event_id, want->event_id);
    assert_int_equal(got->occurred_at_ms, want->occurred_at_ms);
    assert_string_equal(got->correlation_id, want->correlation_id);
    assert_string_equal(got->causation_id, want->causation_id);
    assert_string_equal(got->producer, want->producer);
}

static void test_order_created_round_trip(void **state)
{
    (void)state;
    Oms__V1__EventMeta meta = make_meta("5f1c2d3e-4a5b-4c6d-8e7f-901234567890", "A-1001");
    Oms__V1__OrderLine l0 = OMS__V1__ORDER_LINE__INIT, l1 = OMS__V1__ORDER_LINE__INIT,
                       l2 = OMS__V1__ORDER_LINE__INIT;
    l0.sku = "SKU-1";
    l0.product_name = "Widget";
    l0.qty = 2;
    l0.unit_price_cents = 1999;
    l1.sku = "SKU,2";
    l1.product_name = "Caf\xc3\xa9 \"grande\"";
    l1.qty = 100000;
    l1.unit_price_cents = 1000000000LL;
    l2.sku = "SKU-3";
    l2.product_name = "";
    l2.qty = 1;
    l2.unit_price_cents = 0;
    Oms__V1__OrderLine *lines[] = {&l0, &l1, &l2};

    Oms__V1__OrderCreated oc = OMS__V1__ORDER_CREATED__INIT;
    oc.meta = &meta;
    oc.order_id = "A-1001";
    oc.customer_id = "C-7";
    oc.customer_email = "ada@example.com";
    oc.customer_name = "Ada Lovelace";
    oc.n_lines = 3;
    oc.lines = lines;
    oc.total_cents = 2 * 1999 + 100000 * 1000000000LL;
    oc.currency = "USD";
    oc.placed_at_ms = 1793614500250LL;
    oc.import_id = "imp-42";

    size_t len;
    uint8_t *buf = pack(&oc.base, &len);
    Oms__V1__OrderCreated *got = oms__v1__order_created__unpack(NULL, len, buf);
    assert_non_null(got);
    assert_meta(got->meta, &meta);
    assert_string_equal(got->order_id, "A-1001");
    assert_string_equal(got->customer_id, "C-7");
    assert_string_equal(got->customer_email, "ada@example.com");
    assert_string_equal(got->customer_name, "Ada Lovelace");
    assert_int_equal(got->n_lines, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(got->lines[i]->sku, lines[i]->sku);
        assert_string_equal(got->lines[i]->product_name, lines[i]->product_name);
        assert_int_equal(got->lines[i]->qty, lines[i]->qty);
        assert_int_equal(got->lines[i]->unit_price_cents, lines[i]->unit_price_cents);
    }
    assert_int_equal(got->total_cents, 100000000003998LL);
    assert_string_equal(got->currency, "USD");
    assert_int_equal(got->placed_at_ms, 1793614500250LL);
    assert_string_equal(got->import_id, "imp-42");

    /* Packing what was unpacked gives the same bytes. */
    size_t len2;
    uint8_t *buf2 = pack(&got->base, &len2);
    assert_int_equal(len2, len);
    assert_memory_equal(buf2, buf, len);
    free(buf2);
    oms__v1__order_created__free_unpacked(got, NULL);
    free(buf);
}

static void test_import_rejected_round_trip(void **state)
{
    (void)state;
    Oms__V1__EventMeta meta = make_meta("11111111-2222-4333-8444-555555555555", "imp-42");
    Oms__V1__ImportRejected ir = OMS__V1__IMPORT_REJECTED__INIT;
    ir.meta = &meta;
    ir.import_id = "imp-42";
    ir.row = 17;
    ir.order_id = "A-1001";
    ir.field = "qty";
    ir.reason = "row 17: qty \"-2\" must be an integer from 1 to 100000";
    size_t len;
    uint8_t *buf = pack(&ir.base, &len);
    Oms__V1__ImportRejected *got = oms__v1__import_rejected__unpack(NULL, len, buf);
    assert_non_null(got);
    assert_meta(got->meta, &meta);
    assert_string_equal(got->import_id, "imp-42");
    assert_int_equal(got->row, 17);
    assert_string_equal(got->order_id, "A-1001");
    assert_string_equal(got->field, "qty");
    assert_string_equal(got->reason, "row 17: qty \"-2\" must be an integer from 1 to 100000");
    oms__v1__import_rejected__free_unpacked(got, NULL);
    free(buf);
}

static void test_import_completed_round_trip(void **state)
{
    (void)state;
    Oms__V1__EventMeta meta = make_meta("aaaaaaaa-bbbb-4ccc-9ddd-eeeeeeeeeeee", "imp-42");
    Oms__V1__ImportCompleted ic = OMS__V1__IMPORT_COMPLETED__INIT;
    ic.meta = &meta;
    ic.import_id = "imp-42";
    ic.rows = 1000;
    ic.valid_rows = 990;
    ic.rejected_rows = 7;
    ic.orders = 400;
    ic.missing_rows = 3;
    ic.timed_out = 1;
    size_t len;
    uint8_t *buf = pack(&ic.base, &len);
    Oms__V1__ImportCompleted *got = oms__v1__import_completed__unpack(NULL, len, buf);
    assert_non_null(got);
    assert_meta(got->meta, &meta);
    assert_string_equal(got->import_id, "imp-42");
    assert_int_equal(got->rows, 1000);
    assert_int_equal(got->valid_rows, 990);
    assert_int_equal(got->rejected_rows, 7);
    assert_int_equal(got->orders, 400);
    assert_int_equal(got->missing_rows, 3);
    assert_true(got->timed_out);
    oms__v1__import_completed__free_unpacked(got, NULL);
    free(buf);
}

static void test_product_upserted_round_trip(void **state)
{
    (void)state;
    Oms__V1__EventMeta meta = make_meta("12345678-9abc-4def-a012-3456789abcde", "SKU-1");
    meta.causation_id = "";
    meta.producer = "omsctl";
    Oms__V1__ProductUpserted pu = OMS__V1__PRODUCT_UPSERTED__INIT;
    pu.meta = &meta;
    pu.sku = "SKU-1";
    pu.name = "Widget \xe6\x97\xa5";
    pu.on_hand = -3; /* oversold stock is representable */
    pu.price_cents = INT64_MAX;
    size_t len;
    uint8_t *buf = pack(&pu.base, &len);
    Oms__V1__ProductUpserted *got = oms__v1__product_upserted__unpack(NULL, len, buf);
    assert_non_null(got);
    assert_meta(got->meta, &meta);
    assert_string_equal(got->sku, "SKU-1");
    assert_string_equal(got->name, "Widget \xe6\x97\xa5");
    assert_int_equal(got->on_hand, -3);
    assert_true(got->price_cents == INT64_MAX);
    oms__v1__product_upserted__free_unpacked(got, NULL);
    free(buf);
}

/* proto3 defaults are not sent: an empty event packs to zero bytes and
 * unpacks to "" strings, zeros and no meta. */
static void test_defaults_are_empty(void **state)
{
    (void)state;
    Oms__V1__OrderCreated oc = OMS__V1__ORDER_CREATED__INIT;
    assert_int_equal(oms__v1__order_created__get_packed_size(&oc), 0);
    Oms__V1__OrderCreated *got = oms__v1__order_created__unpack(NULL, 0, (const uint8_t *)"");
    assert_non_null(got);
    assert_null(got->meta);
    assert_string_equal(got->order_id, "");
    assert_string_equal(got->import_id, "");
    assert_int_equal(got->n_lines, 0);
    assert_int_equal(got->total_cents, 0);
    oms__v1__order_created__free_unpacked(got, NULL);
}

/* Field numbers are the public contract: pin the wire bytes of a small event. */
static void test_wire_bytes_pinned(void **state)
{
    (void)state;
    Oms__V1__ImportRejected ir = OMS__V1__IMPORT_REJECTED__INIT;
    ir.import_id = "i";
    ir.row = 3;
    ir.order_id = "o";
    ir.field = "f";
    ir.reason = "r";
    size_t len;
    uint8_t *buf = pack(&ir.base, &len);
    static const uint8_t want[] = {0x12, 1, 'i', 0x18, 3, 0x22, 1, 'o', 0x2a, 1, 'f', 0x32, 1, 'r'};
    assert_int_equal(len, sizeof want);
    assert_memory_equal(buf, want, sizeof want);
    free(buf);
}

static void test_garbage_is_refused(void **state)
{
    (void)state;
    /* A varint that never ends. */
    static const uint8_t endless[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                      0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    /* order_id (field 2) claims 16 bytes, 1 follows. */
    static const uint8_t short_string[] = {0x12, 0x10, 'a'};
    /* Wire type 7 does not exist. */
    static const uint8_t bad_wire_type[] = {0x0f, 0x00};
    /* meta (field 1) holding bytes that are not an EventMeta. */
    static const uint8_t bad_submessage[] = {0x0a, 0x02, 0xff, 0xff};
    /* A tag with field number 0. */
    static const uint8_t field_zero[] = {0x00, 0x01};
    const struct {
        const uint8_t *data;
        size_t len;
    } cases[] = {
        {endless, sizeof endless},
        {short_string, sizeof short_string},
        {bad_wire_type, sizeof bad_wire_type},
        {bad_submessage, sizeof bad_submessage},
        {field_zero, sizeof field_zero},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (oms__v1__order_created__unpack(NULL, cases[i].len, cases[i].data) != NULL)
            fail_msg("garbage case %zu unpacked as OrderCreated", i);
        assert_null(oms__v1__import_rejected__unpack(NULL, cases[i].len, cases[i].data));
        assert_null(oms__v1__import_completed__unpack(NULL, cases[i].len, cases[i].data));
        assert_null(oms__v1__product_upserted__unpack(NULL, cases[i].len, cases[i].data));
    }

    /* Every truncation of a real event inside a field is refused, and none
     * reads out of bounds (ASan). */
    Oms__V1__EventMeta meta = make_meta("5f1c2d3e-4a5b-4c6d-8e7f-901234567890", "A-1");
    Oms__V1__OrderCreated oc = OMS__V1__ORDER_CREATED__INIT;
    oc.meta = &meta;
    oc.order_id = "A-1";
    size_t len;
    uint8_t *buf = pack(&oc.base, &len);
    for (size_t cut = 1; cut < len; cut++) {
        uint8_t *part = malloc(cut);
        assert_non_null(part);
        memcpy(part, buf, cut);
        Oms__V1__OrderCreated *got = oms__v1__order_created__unpack(NULL, cut, part);
        /* Only the cut right after meta (before order_id's 5 bytes: tag,
         * length, "A-1") is a whole message. */
        if (cut == len - 5) {
            assert_non_null(got);
            assert_meta(got->meta, &meta);
            assert_string_equal(got->order_id, "");
            oms__v1__order_created__free_unpacked(got, NULL);
        } else if (got != NULL) {
            fail_msg("truncated to %zu of %zu bytes but unpacked", cut, len);
        }
        free(part);
    }
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_created_round_trip),
        cmocka_unit_test(test_import_rejected_round_trip),
        cmocka_unit_test(test_import_completed_round_trip),
        cmocka_unit_test(test_product_upserted_round_trip),
        cmocka_unit_test(test_defaults_are_empty),
        cmocka_unit_test(test_wire_bytes_pinned),
        cmocka_unit_test(test_garbage_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
