/*
 * inventory.h - the inventory service: products and their stock levels in
 * (catalog.product), a reservation per order (order.created ->
 * stock.reserved | stock.rejected), and its settlement (payment.settled ->
 * stock.committed | stock.released).
 *
 * Every consumer works a fetched batch at a time, in the batch's one
 * transaction, with set-based SQL: decode and validate every message, lock
 * the rows the batch touches in a fixed order (reservations by order id,
 * then products by SKU, both in byte order), decide in memory, then write
 * the decisions with a handful of statements whatever the batch size. Two
 * inventory processes on the same durables therefore never deadlock, and
 * never sell a unit twice: a product row is decided on only under its lock.
 */
#ifndef OMS_INVENTORY_H
#define OMS_INVENTORY_H

#include "consumer.h"
#include "service.h"
#include "strs.h"

#include "inventory_plan.h"

#define INV_PRODUCER "inventory"

extern const pg_migration inventory_migrations[];

typedef struct inv_ctx {
    struct metrics *m; /* borrowed from the service */
} inv_ctx;

/* Declares the inventory metrics on m (help texts, before first use). */
void inv_metrics_declare(struct metrics *m);

/* consumer_apply_fn for catalog.product: upserts products, on_hand set to the
 * event's level; a level below what is reserved is dead-lettered. */
oms_status inv_apply_products(void *ctx, consumer_batch *b);

/* consumer_apply_fn for order.created: reserves every line of each order or
 * none (see inventory_plan.h); orders already decided on are ignored. */
oms_status inv_apply_orders(void *ctx, consumer_batch *b);

/* consumer_apply_fn for payment.settled: commits (SUCCEEDED) or releases
 * (FAILED) a reserved order's units; any other settlement is ignored. */
oms_status inv_apply_payments(void *ctx, consumer_batch *b);

/* consumer_apply_fn for refund.processed (inventory_refunds.c): with restock,
 * puts the refunded units of a sold order back on hand, once per refund. */
oms_status inv_apply_refunds(void *ctx, consumer_batch *b);

/* Registers GET /products and GET /products/{sku}; ctx is unused. */
void inv_routes(oms_service *svc, http_server *http, void *ctx);

/* ---- helpers shared by the consumers (inventory_events.c) ---- */

/* The causation id of an event caused by m: its meta.event_id, or the
 * message's event id when the producer left meta out. Borrowed. */
const char *inv_causation(const Oms__V1__EventMeta *meta, const oms_msg *m);

/* Adds stock.reserved for order (borrowed), carrying the order's lines. */
oms_status inv_emit_reserved(outbox_batch *ob, const Oms__V1__OrderCreated *order,
                             const char *causation);

/* Rejects message i of b (consumer_reject) when ev is not an order inventory
 * can decide on; true when it is. Borrows everything. */
bool inv_order_valid(consumer_batch *b, size_t i, const Oms__V1__OrderCreated *ev);

/* Adds stock.rejected for order_id from a rejected plan outcome. */
oms_status inv_emit_rejected(outbox_batch *ob, const char *order_id, const inv_outcome *o,
                             const char *causation);

/* Adds stock.committed (committed) or stock.released with reason, carrying
 * lines[0..n) (borrowed). */
oms_status inv_emit_settled(outbox_batch *ob, const char *order_id, bool committed,
                            Oms__V1__OrderLine **lines, size_t n, const char *reason,
                            const char *causation);

#endif
