/*
 * ingest_catalog.c - ingest's projection of the catalogue's prices.
 *
 * inventory owns the catalogue; ingest keeps only what it needs to price a
 * product-list line the file gives no price for: sku -> price_cents, from
 * every catalog.product event, in its own schema (catalog_prices). An event
 * older than the price held (by its occurred_at_ms) changes nothing, so a
 * redelivery or a replay of the stream never brings an old price back.
 */
#include "ingest.h"

#include <stdio.h>
#include <string.h>

#define CATALOG_SKU_MAX_BYTES ORDER_FIELD_MAX

static const char *const SQL_UPSERT_PRICE =
    "INSERT INTO catalog_prices AS p (sku, price_cents, occurred_at_ms)"
    " VALUES ($1, $2::bigint, $3::bigint) ON CONFLICT (sku) DO UPDATE"
    " SET price_cents = EXCLUDED.price_cents, occurred_at_ms = EXCLUDED.occurred_at_ms,"
    "  updated_at = now() WHERE p.occurred_at_ms <= EXCLUDED.occurred_at_ms";

/* Stores the price of message i, or dead-letters a message that is not a
 * product with a price. */
static oms_status apply_product(consumer_batch *b, size_t i)
{
    const oms_msg *m = &b->msgs[i];
    Oms__V1__ProductUpserted *ev = oms__v1__product_upserted__unpack(NULL, m->len, m->data);
    oms_status s = OMS_OK;
    char price[24], at[24];
    if (ev == NULL) {
        consumer_reject(b, i, "%s: payload (%zu bytes) is not a valid oms.v1.ProductUpserted",
                        m->subject, m->len);
        goto out;
    }
    size_t sku_len = strlen(ev->sku);
    if (sku_len == 0 || sku_len > CATALOG_SKU_MAX_BYTES || ev->price_cents < 0) {
        consumer_reject(b, i,
                        "%s: sku must be 1 to %d bytes (got %zu) and price_cents 0 or more "
                        "(got %lld)",
                        m->subject, CATALOG_SKU_MAX_BYTES, sku_len, (long long)ev->price_cents);
        goto out;
    }
    snprintf(price, sizeof price, "%lld", (long long)ev->price_cents);
    snprintf(at, sizeof at, "%lld", (long long)(ev->meta ? ev->meta->occurred_at_ms : 0));
    const char *params[] = {ev->sku, price, at};
    s = pg_query(b->conn, "catalog price upsert", SQL_UPSERT_PRICE, 3, params, PGRES_COMMAND_OK,
                 NULL);
out:
    if (ev != NULL)
        oms__v1__product_upserted__free_unpacked(ev, NULL);
    return s;
}

oms_status ingest_apply_catalog_product(void *ctx, consumer_batch *b)
{
    oms_status s = OMS_OK;
    (void)ctx;
    for (size_t i = 0; i < b->n && s == OMS_OK; i++)
        if (!b->msgs[i].duplicate && !b->msgs[i].rejected)
            s = apply_product(b, i);
    return s;
}
