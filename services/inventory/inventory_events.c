/*
 * inventory_events.c - the events inventory publishes (through the outbox),
 * its metrics, and small helpers the consumers share.
 */
#include "inventory.h"

#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void inv_metrics_declare(metrics *m)
{
    metrics_counter_declare(m, "oms_inventory_reservations_total",
                            "Orders decided on, by result (reserved, rejected)");
    metrics_counter_declare(m, "oms_inventory_settlements_total",
                            "payment.settled events, by result (committed, released, ignored)");
}

const char *inv_causation(const Oms__V1__EventMeta *meta, const oms_msg *m)
{
    if (meta != NULL && meta->event_id != NULL && *meta->event_id != '\0')
        return meta->event_id;
    return m->event_id;
}

oms_status inv_emit_reserved(outbox_batch *ob, const Oms__V1__OrderCreated *order,
                             const char *causation)
{
    Oms__V1__StockReserved ev = OMS__V1__STOCK_RESERVED__INIT;
    Oms__V1__EventMeta meta;
    char id[37];
    outbox_meta_init(&meta, id, INV_PRODUCER, order->order_id, causation);
    ev.meta = &meta;
    ev.order_id = order->order_id;
    ev.customer_id = order->customer_id;
    ev.total_cents = order->total_cents;
    ev.currency = order->currency;
    ev.n_lines = order->n_lines;
    ev.lines = order->lines;
    ev.import_id = order->import_id;
    return outbox_batch_add_message(ob, "stock.reserved", id, &ev.base);
}

oms_status inv_emit_rejected(outbox_batch *ob, const char *order_id, const inv_outcome *o,
                             const char *causation)
{
    Oms__V1__StockRejected ev = OMS__V1__STOCK_REJECTED__INIT;
    Oms__V1__EventMeta meta;
    char id[37], reason[CONSUMER_REASON_LEN];
    inv_plan_reason(o, reason, sizeof reason);
    outbox_meta_init(&meta, id, INV_PRODUCER, order_id, causation);
    ev.meta = &meta;
    ev.order_id = (char *)order_id;
    ev.reason = reason;
    ev.sku = (char *)o->sku;
    ev.requested_qty = o->requested;
    ev.available_qty = o->available;
    return outbox_batch_add_message(ob, "stock.rejected", id, &ev.base);
}

oms_status inv_emit_settled(outbox_batch *ob, const char *order_id, bool committed,
                            Oms__V1__OrderLine **lines, size_t n, const char *reason,
                            const char *causation)
{
    Oms__V1__EventMeta meta;
    char id[37];
    outbox_meta_init(&meta, id, INV_PRODUCER, order_id, causation);
    if (committed) {
        Oms__V1__StockCommitted ev = OMS__V1__STOCK_COMMITTED__INIT;
        ev.meta = &meta;
        ev.order_id = (char *)order_id;
        ev.n_lines = n;
        ev.lines = lines;
        return outbox_batch_add_message(ob, "stock.committed", id, &ev.base);
    }
    Oms__V1__StockReleased ev = OMS__V1__STOCK_RELEASED__INIT;
    ev.meta = &meta;
    ev.order_id = (char *)order_id;
    ev.n_lines = n;
    ev.lines = lines;
    ev.reason = (char *)(reason ? reason : "");
    return outbox_batch_add_message(ob, "stock.released", id, &ev.base);
}
