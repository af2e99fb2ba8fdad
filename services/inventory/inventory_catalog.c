/*
 * inventory_catalog.c - applying catalog.product: a product's name, price and
 * stock level. on_hand takes the event's value: a stock load sets the level,
 * it does not add to it.
 *
 * The batch's products are locked in SKU order and each event is checked, in
 * event order, against what open reservations hold. A level below that would
 * break on_hand >= reserved, so such an event is dead-lettered with both
 * numbers (an operator retries it once the reservations have settled) rather
 * than refused by the CHECK, which would fail the whole batch. The last
 * accepted event of each SKU is then written with one upsert.
 */
#include "inventory.h"

#include "log.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SKU_MAX_BYTES 256

typedef struct catalog_batch {
    consumer_batch *b;
    Oms__V1__ProductUpserted **events; /* per message; NULL when not applied */
    const char **skus;                 /* distinct, sorted */
    size_t n_skus;
    int64_t *reserved; /* per SKU, 0 for a new product */
    size_t *winner;    /* per SKU: message applied last, SIZE_MAX none */
} catalog_batch;

static void decode(catalog_batch *cb, size_t i)
{
    consumer_batch *b = cb->b;
    const oms_msg *m = &b->msgs[i];
    Oms__V1__ProductUpserted *ev = oms__v1__product_upserted__unpack(NULL, m->len, m->data);
    if (ev == NULL) {
        consumer_reject(b, i, "%s: payload (%zu bytes) is not a valid oms.v1.ProductUpserted",
                        m->subject, m->len);
        return;
    }
    size_t sku_len = strlen(ev->sku);
    if (sku_len == 0 || sku_len > SKU_MAX_BYTES)
        consumer_reject(b, i, "%s: sku must be 1 to %d bytes, got %zu", m->subject, SKU_MAX_BYTES,
                        sku_len);
    else if (ev->on_hand < 0)
        consumer_reject(b, i, "%s %s: on_hand %lld must be 0 or more", m->subject, ev->sku,
                        (long long)ev->on_hand);
    else if (ev->price_cents < 0)
        consumer_reject(b, i, "%s %s: price_cents %lld must be 0 or more", m->subject, ev->sku,
                        (long long)ev->price_cents);
    if (b->msgs[i].rejected) {
        oms__v1__product_upserted__free_unpacked(ev, NULL);
        return;
    }
    cb->events[i] = ev;
    cb->skus[cb->n_skus++] = ev->sku;
}

/* Locks the batch's existing products in SKU order; reads what they hold. */
static oms_status lock_products(catalog_batch *cb)
{
    pg_array skus;
    PGresult *res = NULL;
    oms_status s = OMS_OK;
    pg_array_init(&skus);
    for (size_t k = 0; k < cb->n_skus && s == OMS_OK; k++)
        s = pg_array_add(&skus, cb->skus[k]);
    const char *params[] = {pg_array_literal(&skus)};
    if (s == OMS_OK)
        s = pg_query(cb->b->conn, "catalog lock",
                     "SELECT sku, reserved FROM products WHERE sku = ANY($1::text[])"
                     " ORDER BY sku COLLATE \"C\" FOR UPDATE",
                     1, params, PGRES_TUPLES_OK, &res);
    for (int r = 0; s == OMS_OK && r < PQntuples(res); r++) {
        long k = strs_find(cb->skus, cb->n_skus, PQgetvalue(res, r, 0));
        if (k >= 0)
            cb->reserved[k] = atoll(PQgetvalue(res, r, 1));
    }
    PQclear(res);
    pg_array_fini(&skus);
    return s;
}

/* In event order: refuse a level below what is reserved, else it wins. */
static void decide(catalog_batch *cb)
{
    consumer_batch *b = cb->b;
    for (size_t i = 0; i < b->n; i++) {
        const Oms__V1__ProductUpserted *ev = cb->events[i];
        if (ev == NULL)
            continue;
        size_t k = (size_t)strs_find(cb->skus, cb->n_skus, ev->sku);
        if (ev->on_hand < cb->reserved[k]) {
            consumer_reject(b, i,
                            "%s %s: on_hand %lld is below the %lld units reserved by open "
                            "orders; load at least %lld, or retry once they have settled",
                            b->msgs[i].subject, ev->sku, (long long)ev->on_hand,
                            (long long)cb->reserved[k], (long long)cb->reserved[k]);
            continue;
        }
        cb->winner[k] = i;
    }
}

static oms_status upsert(catalog_batch *cb)
{
    pg_cols c;
    oms_status s;
    pg_cols_init(&c, 4);
    for (size_t k = 0; k < cb->n_skus; k++) {
        if (cb->winner[k] == SIZE_MAX)
            continue;
        const Oms__V1__ProductUpserted *ev = cb->events[cb->winner[k]];
        pg_cols_text(&c, 0, ev->sku);
        pg_cols_text(&c, 1, ev->name);
        pg_cols_int(&c, 2, ev->on_hand);
        pg_cols_int(&c, 3, ev->price_cents);
    }
    /* Sorted input: two processes inserting new SKUs take them in one order. */
    if ((s = c.status) == OMS_OK && pg_cols_rows(&c) > 0)
        s = pg_cols_query(cb->b->conn, "catalog upsert",
                          "INSERT INTO products AS p (sku, name, on_hand, price_cents)"
                          " SELECT sku, name, on_hand, price_cents"
                          " FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[])"
                          " WITH ORDINALITY AS t(sku, name, on_hand, price_cents, n) ORDER BY n"
                          " ON CONFLICT (sku) DO UPDATE SET name = EXCLUDED.name,"
                          " on_hand = EXCLUDED.on_hand, price_cents = EXCLUDED.price_cents,"
                          " updated_at = now()",
                          &c, PGRES_COMMAND_OK, NULL);
    pg_cols_fini(&c);
    return s;
}

oms_status inv_apply_products(void *ctx, consumer_batch *b)
{
    catalog_batch cb = {.b = b};
    oms_status s = OMS_ENOMEM;
    size_t n = b->n ? b->n : 1;
    (void)ctx;
    cb.events = calloc(n, sizeof *cb.events);
    cb.skus = calloc(n, sizeof *cb.skus);
    cb.reserved = calloc(n, sizeof *cb.reserved);
    cb.winner = calloc(n, sizeof *cb.winner);
    if (!cb.events || !cb.skus || !cb.reserved || !cb.winner)
        goto out;
    for (size_t i = 0; i < b->n; i++) {
        cb.winner[i] = SIZE_MAX;
        if (!b->msgs[i].duplicate && !b->msgs[i].rejected)
            decode(&cb, i);
    }
    strs_sort_unique(cb.skus, &cb.n_skus);
    s = OMS_OK;
    if (cb.n_skus == 0)
        goto out;
    if ((s = lock_products(&cb)) != OMS_OK)
        goto out;
    decide(&cb);
    s = upsert(&cb);
out:
    for (size_t i = 0; cb.events && i < b->n; i++)
        if (cb.events[i] != NULL)
            oms__v1__product_upserted__free_unpacked(cb.events[i], NULL);
    free(cb.events);
    free(cb.skus);
    free(cb.reserved);
    free(cb.winner);
    return s;
}
