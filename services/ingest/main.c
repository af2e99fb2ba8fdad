/*
 * main.c - the ingest service: wiring only (see ingest.h for the domain).
 */
#include "ingest.h"
#include "log.h"
#include "ports.h"

#include <stdio.h>
#include <stdlib.h>

static oms_status ingest_init(oms_service *svc, void **out)
{
    ingest_ctx *ctx = calloc(1, sizeof *ctx);
    char err[CONFIG_ERR_LEN];
    if (ctx == NULL)
        return OMS_ENOMEM;
    if (ingest_config(ctx, err) != OMS_OK) {
        log_error("configuration error", "error", err, NULL);
        free(ctx);
        return OMS_EINVAL;
    }
    ctx->currency = service_config(svc)->currency;
    ctx->dsn = service_config(svc)->pg_dsn;
    ctx->m = service_metrics(svc);
    oms_status s = ingest_sealer_start(ctx);
    if (s != OMS_OK) {
        free(ctx);
        return s;
    }
    *out = ctx;
    return OMS_OK;
}

static void ingest_fini(void *arg)
{
    ingest_ctx *ctx = arg;
    ingest_sealer_stop(ctx);
    free(ctx);
}

static const consumer_spec CONSUMERS[] = {
    {.pull = {.name = "ingest-rows",
              .stream = "INGEST",
              .durable = "ingest",
              .filter = "ingest.rows",
              /* A chunk holds up to a few thousand rows: a handful per transaction. */
              .batch_max = INGEST_BATCH_MAX},
     .apply = ingest_apply_rows},
    /* Order status: one consumer per subject, each its own durable. */
    {.pull = {.name = "ingest-stock-reserved",
              .stream = "STOCK",
              .durable = "ingest-stock-reserved",
              .filter = "stock.reserved"},
     /* No inbox row: UPDATE orders ... WHERE status IN (<from>) RETURNING
      * moves an order once (no status returns to created or reserved);
      * history and order.paid/failed come only from the returned rows. */
     .dedupe = CONSUMER_DEDUPE_BY_STATE,
     .apply = ingest_apply_stock_reserved},
    {.pull = {.name = "ingest-stock-rejected",
              .stream = "STOCK",
              .durable = "ingest-stock-rejected",
              .filter = "stock.rejected"},
     /* No inbox row: UPDATE orders ... WHERE status IN (<from>) RETURNING
      * moves an order once (no status returns to created or reserved);
      * history and order.paid/failed come only from the returned rows. */
     .dedupe = CONSUMER_DEDUPE_BY_STATE,
     .apply = ingest_apply_stock_rejected},
    {.pull = {.name = "ingest-payments",
              .stream = "PAYMENTS",
              .durable = "ingest-payments",
              .filter = "payment.settled"},
     /* No inbox row: UPDATE orders ... WHERE status IN (<from>) RETURNING
      * moves an order once (no status returns to created or reserved);
      * history and order.paid/failed come only from the returned rows. */
     .dedupe = CONSUMER_DEDUPE_BY_STATE,
     .apply = ingest_apply_payment_settled},
    {.pull = {.name = "ingest-refunds",
              .stream = "REFUNDS",
              .durable = "ingest-refunds",
              .filter = "refund.processed"},
     .apply = ingest_apply_refund_processed},
    /* Catalogue prices for product-list rows without prices (inventory
     * owns CATALOG; ingest only reads it). */
    {.pull = {.name = "ingest-catalog",
              .stream = "CATALOG",
              .durable = "ingest-catalog",
              .filter = "catalog.product"},
     .apply = ingest_apply_catalog_product},
};

int main(void)
{
    service_def def = {
        .name = "ingest",
        .http_port = OMS_PORT_INGEST,
        .migrations = ingest_migrations,
        .consumers = CONSUMERS,
        .n_consumers = sizeof CONSUMERS / sizeof CONSUMERS[0],
        .init = ingest_init,
        .fini = ingest_fini,
        .routes = ingest_routes,
    };
    return service_main(&def);
}
