/*
 * main.c - the inventory service: wiring only (see inventory.h for the domain).
 */
#include "inventory.h"
#include "ports.h"

#include <stdlib.h>

static oms_status inventory_init(oms_service *svc, void **out)
{
    inv_ctx *ctx = calloc(1, sizeof *ctx);
    if (ctx == NULL)
        return OMS_ENOMEM;
    ctx->m = service_metrics(svc);
    inv_metrics_declare(ctx->m);
    *out = ctx;
    return OMS_OK;
}

static void inventory_fini(void *ctx)
{
    free(ctx);
}

/* Batch sizes and waits come from OMS_BATCH_MAX / OMS_BATCH_WAIT_MS. */
static const consumer_spec CONSUMERS[] = {
    {.pull = {.name = "inventory-catalog",
              .stream = "CATALOG",
              .durable = "inventory-catalog",
              .filter = "catalog.product"},
     .apply = inv_apply_products},
    {.pull = {.name = "inventory-orders",
              .stream = "ORDERS",
              .durable = "inventory-orders",
              .filter = "order.created"},
     /* No inbox row: the claim INSERT INTO reservations ... ON CONFLICT
      * (order_id) DO NOTHING RETURNING decides which orders are new; only
      * those move stock and publish stock.reserved/rejected. */
     .dedupe = CONSUMER_DEDUPE_BY_STATE,
     .apply = inv_apply_orders},
    {.pull = {.name = "inventory-payments",
              .stream = "PAYMENTS",
              .durable = "inventory-payments",
              .filter = "payment.settled"},
     /* No inbox row: the decision reads the reservation FOR UPDATE and
      * settles only one still 'reserved' (nothing sets it back), so a
      * redelivery moves no unit and publishes no stock.committed/released. */
     .dedupe = CONSUMER_DEDUPE_BY_STATE,
     .apply = inv_apply_payments},
    {.pull = {.name = "inventory-refunds",
              .stream = "REFUNDS",
              .durable = "inventory-refunds",
              .filter = "refund.processed"},
     .apply = inv_apply_refunds},
};

int main(void)
{
    service_def def = {
        .name = "inventory",
        .http_port = OMS_PORT_INVENTORY,
        .migrations = inventory_migrations,
        .consumers = CONSUMERS,
        .n_consumers = sizeof CONSUMERS / sizeof CONSUMERS[0],
        .init = inventory_init,
        .fini = inventory_fini,
        .routes = inv_routes,
    };
    return service_main(&def);
}
