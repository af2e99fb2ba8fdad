/*
 * make_seeds.c - writes the seed inputs that cannot be typed: encoded
 * protobuf events (fuzz_proto: type byte + payload) and callbacks signed
 * with fuzz_signature's secret at its clock. The text seeds (CSV, JSON,
 * request targets, amounts) are committed as they are.
 *
 * usage: fuzz_make_seeds <tests/fuzz/corpus>
 */
#include "hmac.h"
#include "oms_events.pb-c.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SECRET "whsec_fuzz_0123456789" /* as fuzz_signature.c */
#define NOW_S 1765000000LL

static const char *corpus_dir;

static int write_seed(const char *target, const char *name, const void *a, size_t a_len,
                      const void *b, size_t b_len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", corpus_dir, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return -1;
    snprintf(path, sizeof path, "%s/%s/%s", corpus_dir, target, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return -1;
    fwrite(a, 1, a_len, f);
    fwrite(b, 1, b_len, f);
    return fclose(f);
}

/* fuzz_proto's input: the index of the type in its table, then the payload. */
static int proto_seed(const char *name, uint8_t type, const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(len ? len : 1);
    if (buf == NULL)
        return -1;
    protobuf_c_message_pack(msg, buf);
    int rc = write_seed("fuzz_proto", name, &type, 1, buf, len);
    free(buf);
    return rc;
}

static int proto_seeds(void)
{
    Oms__V1__EventMeta meta = OMS__V1__EVENT_META__INIT;
    meta.event_id = "5f0c7a1e-2b7d-4c1a-9d3e-8a6b4f2e1c00";
    meta.occurred_at_ms = 1762071300000;
    meta.correlation_id = "ORD-1001";
    meta.producer = "ingest";
    Oms__V1__OrderLine l1 = OMS__V1__ORDER_LINE__INIT, l2 = OMS__V1__ORDER_LINE__INIT;
    l1.sku = "SKU-HS-03", l1.product_name = "Headset", l1.qty = 3, l1.unit_price_cents = 5950;
    l2.sku = "SKU-LM-10", l2.product_name = "Desk lamp", l2.qty = 1, l2.unit_price_cents = 2990;
    Oms__V1__OrderLine *lines[] = {&l1, &l2};

    Oms__V1__OrderCreated created = OMS__V1__ORDER_CREATED__INIT;
    created.meta = &meta, created.order_id = "ORD-1001", created.customer_id = "CUST-007";
    created.customer_email = "guido@example.com", created.customer_name = "Guido";
    created.lines = lines, created.n_lines = 2, created.total_cents = 20840;
    created.currency = "USD", created.placed_at_ms = 1762071300000, created.import_id = "imp-1";

    Oms__V1__ProductUpserted product = OMS__V1__PRODUCT_UPSERTED__INIT;
    product.meta = &meta, product.sku = "SKU-KB-01", product.name = "Mechanical keyboard";
    product.on_hand = 300, product.price_cents = 8990;

    Oms__V1__StockReserved reserved = OMS__V1__STOCK_RESERVED__INIT;
    reserved.meta = &meta, reserved.order_id = "ORD-1001", reserved.customer_id = "CUST-007";
    reserved.total_cents = 20840, reserved.currency = "USD", reserved.lines = lines;
    reserved.n_lines = 2;

    Oms__V1__PaymentSettled settled = OMS__V1__PAYMENT_SETTLED__INIT;
    settled.meta = &meta, settled.order_id = "ORD-1001", settled.payment_id = "pay-1";
    settled.status = OMS__V1__PAYMENT_STATUS__PAYMENT_STATUS_SUCCEEDED;
    settled.amount_cents = 20840, settled.currency = "USD", settled.attempts = 1;

    Oms__V1__OrderPaid paid = OMS__V1__ORDER_PAID__INIT;
    paid.meta = &meta, paid.order_id = "ORD-1001", paid.customer_id = "CUST-007";
    paid.customer_email = "guido@example.com", paid.status = "paid", paid.total_cents = 20840;
    paid.currency = "USD", paid.customer_name = "Guido", paid.paid_at_ms = 1762071360000;

    Oms__V1__OrderFailed failed = OMS__V1__ORDER_FAILED__INIT;
    failed.meta = &meta, failed.order_id = "ORD-1002", failed.customer_id = "CUST-034";
    failed.status = "failed", failed.reason = "out of stock: SKU-7: 3 requested, 1 available";
    failed.currency = "USD", failed.failed_at_ms = 1762071360000;

    Oms__V1__RefundLine rl = OMS__V1__REFUND_LINE__INIT;
    rl.sku = "SKU-HS-03", rl.qty = 1;
    Oms__V1__RefundLine *rlines[] = {&rl};
    Oms__V1__RefundRequested requested = OMS__V1__REFUND_REQUESTED__INIT;
    requested.meta = &meta, requested.idempotency_key = "refund-ORD-1001-1";
    requested.order_id = "ORD-1001", requested.amount_cents = 5950, requested.reason = "damaged";
    requested.restock = 1, requested.lines = rlines, requested.n_lines = 1;
    requested.requested_by = "omsctl";

    Oms__V1__RefundProcessed processed = OMS__V1__REFUND_PROCESSED__INIT;
    processed.meta = &meta, processed.refund_id = "0b7e3f6a-1c2d-4e5f-8a9b-0c1d2e3f4a5b";
    processed.idempotency_key = "refund-ORD-1001-1", processed.order_id = "ORD-1001";
    processed.customer_id = "CUST-007", processed.amount_cents = 5950, processed.currency = "USD";
    processed.refunded_total_cents = 5950, processed.reason = "damaged";

    /* Indices into fuzz_proto.c's TYPES. */
    return proto_seed("event_meta", 0, &meta.base) | proto_seed("order_created", 2, &created.base) |
           proto_seed("product_upserted", 5, &product.base) |
           proto_seed("stock_reserved", 6, &reserved.base) |
           proto_seed("payment_settled", 8, &settled.base) |
           proto_seed("order_paid", 11, &paid.base) | proto_seed("order_failed", 12, &failed.base) |
           proto_seed("refund_requested", 14, &requested.base) |
           proto_seed("refund_processed", 15, &processed.base);
}

static int signed_seed(const char *name, int64_t t, const char *body)
{
    char value[128], line[130];
    if (hmac_header_value(SECRET, t, body, strlen(body), value, sizeof value) != OMS_OK)
        return -1;
    int n = snprintf(line, sizeof line, "%s\n", value);
    return write_seed("fuzz_signature", name, line, (size_t)n, body, strlen(body));
}

static int signature_seeds(void)
{
    return signed_seed(
               "succeeded", NOW_S,
               "{\"payment_id\":\"pay-1\",\"status\":\"succeeded\",\"gateway_ref\":\"gw-77\"}") |
           signed_seed(
               "failed", NOW_S - 60,
               "{\"payment_id\":\"pay-2\",\"status\":\"failed\",\"reason\":\"card declined\"}") |
           signed_seed("stale", NOW_S - 3600, "{\"payment_id\":\"pay-3\",\"status\":\"failed\"}") |
           signed_seed("webhook", NOW_S,
                       "{\"type\":\"order.paid\",\"order_id\":\"ORD-1001\",\"total_cents\":20840}");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s <tests/fuzz/corpus>\n", argv[0]);
        return 2;
    }
    corpus_dir = argv[1];
    if (proto_seeds() != 0 || signature_seeds() != 0) {
        fprintf(stderr, "fuzz_make_seeds: cannot write under %s: %s\n", corpus_dir,
                strerror(errno));
        return 1;
    }
    return 0;
}
