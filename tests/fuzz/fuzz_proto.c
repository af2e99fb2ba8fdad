/*
 * fuzz_proto.c - every message type of proto/oms_events.proto through
 * protobuf-c's decoder, and the decoded events through the validation the
 * services run before they store anything: refund's (refund_key_invalid,
 * refund_request_valid, refund_lines_json), analytics' (the three
 * analytics_encode_* functions, which check a message and build the Lua
 * script's arguments), inventory's (inv_order_valid on order.created),
 * payment's (payment_reserved_invalid on stock.reserved) and notify's
 * (notify_message_invalid on order.paid, order.failed, order.refunded).
 *
 * Input: the first byte picks the message type, the rest is its payload.
 *
 * Properties: a decoded message without unknown fields packs to the size protobuf-c announced and
 * decodes again to the same bytes; an event analytics accepts yields exactly
 * the 11 arguments its script checks; a refund request whose lines pass
 * refund's checks always has its lines' JSON.
 */
#include "fuzz.h"

#include "analytics.h"
#include "inventory.h"
#include "notify.h"
#include "payment.h"
#include "refund.h"
#include "utf8.h"

#include <jansson.h>

#define SCRIPT_ARGS 11 /* ANALYTICS_APPLY_SCRIPT checks #ARGV == 11 */

static const ProtobufCMessageDescriptor *const TYPES[] = {
    &oms__v1__event_meta__descriptor,       &oms__v1__order_line__descriptor,
    &oms__v1__order_created__descriptor,    &oms__v1__import_rejected__descriptor,
    &oms__v1__import_completed__descriptor, &oms__v1__product_upserted__descriptor,
    &oms__v1__stock_reserved__descriptor,   &oms__v1__stock_rejected__descriptor,
    &oms__v1__payment_settled__descriptor,  &oms__v1__stock_committed__descriptor,
    &oms__v1__stock_released__descriptor,   &oms__v1__order_paid__descriptor,
    &oms__v1__order_failed__descriptor,     &oms__v1__refund_line__descriptor,
    &oms__v1__refund_requested__descriptor, &oms__v1__refund_processed__descriptor,
    &oms__v1__refund_rejected__descriptor,  &oms__v1__order_refunded__descriptor,
};
#define N_TYPES (sizeof TYPES / sizeof TYPES[0])

/* True when msg or a message inside it kept fields its type does not have.
 * protobuf-c keeps them as they came and packs them back verbatim, field
 * number 0 included (which its own decoder then refuses), so the round trip
 * is only a property of messages without them. OMS never re-packs a received
 * message. */
static bool has_unknown_fields(const ProtobufCMessage *msg)
{
    if (msg->n_unknown_fields > 0)
        return true;
    for (unsigned i = 0; i < msg->descriptor->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &msg->descriptor->fields[i];
        const char *at = (const char *)msg + f->offset;
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)((const char *)msg + f->quantifier_offset);
            ProtobufCMessage *const *items = *(ProtobufCMessage *const *const *)at;
            for (size_t k = 0; k < n; k++)
                if (has_unknown_fields(items[k]))
                    return true;
        } else {
            const ProtobufCMessage *sub = *(ProtobufCMessage *const *)at;
            if (sub != NULL && has_unknown_fields(sub))
                return true;
        }
    }
    return false;
}

/* Packs msg; decodes and packs the result again: the same bytes. */
static void check_round_trip(const ProtobufCMessage *msg)
{
    size_t size = protobuf_c_message_get_packed_size(msg);
    uint8_t *once = malloc(size ? size : 1), *twice = NULL;
    ProtobufCMessage *again = NULL;
    if (once == NULL)
        return;
    FUZZ_CHECK(protobuf_c_message_pack(msg, once) == size);
    again = protobuf_c_message_unpack(msg->descriptor, NULL, size, once);
    FUZZ_CHECK(again != NULL);
    FUZZ_CHECK(protobuf_c_message_get_packed_size(again) == size);
    twice = malloc(size ? size : 1);
    if (twice != NULL) {
        FUZZ_CHECK(protobuf_c_message_pack(again, twice) == size);
        FUZZ_CHECK(size == 0 || memcmp(once, twice, size) == 0);
    }
    protobuf_c_message_free_unpacked(again, NULL);
    free(once);
    free(twice);
}

static void check_refund_request(const Oms__V1__RefundRequested *ev)
{
    char why[REFUND_TEXT_LEN];
    bool lines_storable = true;
    (void)refund_key_invalid(ev->idempotency_key);
    (void)refund_request_valid(ev, why, sizeof why);
    /* refund_requests.c's unstorable() refuses these before it asks for the
     * JSON; anything it lets through must have one (NULL means "no memory"
     * there, and the batch would be retried for ever). */
    for (size_t i = 0; i < ev->n_lines; i++)
        if (strlen(ev->lines[i]->sku) > REFUND_SKU_MAX || !utf8_valid(ev->lines[i]->sku))
            lines_storable = false;
    char *text = refund_lines_json(ev);
    if (lines_storable) {
        FUZZ_CHECK(text != NULL);
        json_t *arr = json_loads(text, 0, NULL);
        FUZZ_CHECK(arr != NULL && json_array_size(arr) == ev->n_lines);
        json_decref(arr);
    }
    free(text);
}

static void check_analytics(rconsumer_encode_fn encode, const char *subject, const uint8_t *data,
                            size_t size)
{
    analytics_ctx ctx;
    oms_msg m;
    redis_args args;
    memset(&ctx, 0, sizeof ctx);
    memset(&m, 0, sizeof m);
    ctx.currency = "USD";
    ctx.seen_ttl_s = 86400;
    m.subject = subject;
    m.data = data;
    m.len = size;
    snprintf(m.event_id, sizeof m.event_id, "ORDERS:1");
    redis_args_init(&args);
    oms_status s = encode(&ctx, &m, &args);
    if (s == OMS_OK && !m.rejected)
        FUZZ_CHECK(args.n == SCRIPT_ARGS);
    if (m.rejected)
        FUZZ_CHECK(m.reason[0] != '\0');
    redis_args_fini(&args);
}

/* An order inventory accepts has 1..256-byte ids and lines of at least one
 * unit; one it refuses is rejected with a reason. */
static void check_inventory_order(const Oms__V1__OrderCreated *ev)
{
    oms_msg m;
    memset(&m, 0, sizeof m);
    m.subject = "order.created";
    consumer_batch b = {.msgs = &m, .n = 1};
    bool ok = inv_order_valid(&b, 0, ev);
    FUZZ_CHECK(ok != m.rejected);
    if (!ok) {
        FUZZ_CHECK(m.reason[0] != '\0');
        return;
    }
    FUZZ_CHECK(*ev->order_id != '\0' && ev->n_lines > 0);
    for (size_t i = 0; i < ev->n_lines; i++)
        FUZZ_CHECK(*ev->lines[i]->sku != '\0' && ev->lines[i]->qty >= 1);
}

/* payment charges only a stock.reserved with an order id and a total that
 * is not negative; an undecodable one always has a reason. */
static void check_payment_reserved(const uint8_t *data, size_t len)
{
    Oms__V1__StockReserved *ev = oms__v1__stock_reserved__unpack(NULL, len, data);
    const char *why = payment_reserved_invalid(ev);
    if (ev == NULL || ev->meta == NULL)
        FUZZ_CHECK(why != NULL);
    else if (why == NULL)
        FUZZ_CHECK(*ev->order_id != '\0' && ev->total_cents >= 0);
    if (ev != NULL)
        oms__v1__stock_reserved__free_unpacked(ev, NULL);
}

/* notify refuses every payload its subject's type cannot decode. */
static void check_notify(const char *subject, const ProtobufCMessageDescriptor *type,
                         const uint8_t *data, size_t len)
{
    oms_msg m;
    memset(&m, 0, sizeof m);
    m.subject = subject;
    m.data = data;
    m.len = len;
    snprintf(m.event_id, sizeof m.event_id, "ORDERS:1");
    const char *why = notify_message_invalid(&m);
    ProtobufCMessage *msg = protobuf_c_message_unpack(type, NULL, len, data);
    if (msg == NULL)
        FUZZ_CHECK(why != NULL);
    else
        protobuf_c_message_free_unpacked(msg, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const ProtobufCMessageDescriptor *type = TYPES[data[0] % N_TYPES];
    const uint8_t *payload = data + 1;
    size_t len = size - 1;
    ProtobufCMessage *msg = protobuf_c_message_unpack(type, NULL, len, payload);
    if (msg != NULL) {
        if (!has_unknown_fields(msg))
            check_round_trip(msg);
        if (type == &oms__v1__refund_requested__descriptor)
            check_refund_request((const Oms__V1__RefundRequested *)msg);
        if (type == &oms__v1__order_created__descriptor)
            check_inventory_order((const Oms__V1__OrderCreated *)msg);
        protobuf_c_message_free_unpacked(msg, NULL);
    }
    if (type == &oms__v1__stock_reserved__descriptor)
        check_payment_reserved(payload, len);
    else if (type == &oms__v1__order_paid__descriptor)
        check_notify("order.paid", type, payload, len);
    else if (type == &oms__v1__order_failed__descriptor)
        check_notify("order.failed", type, payload, len);
    else if (type == &oms__v1__order_refunded__descriptor)
        check_notify("order.refunded", type, payload, len);
    if (type == &oms__v1__order_paid__descriptor)
        check_analytics(analytics_encode_paid, "order.paid", payload, len);
    else if (type == &oms__v1__order_failed__descriptor)
        check_analytics(analytics_encode_failed, "order.failed", payload, len);
    else if (type == &oms__v1__refund_processed__descriptor)
        check_analytics(analytics_encode_refund, "refund.processed", payload, len);
    return 0;
}
