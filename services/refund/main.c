/*
 * main.c - the refund service: wiring only (see refund.h for the domain).
 */
#include "refund.h"

#include "log.h"
#include "ports.h"

#include <stdio.h>

/* Static, as in payment: HTTP handlers may still run after fini while the
 * outbox drains, so the context lives until exit. */
static refund_ctx domain;

static oms_status refund_init(oms_service *svc, void **out)
{
    refund_ctx *ctx = &domain;
    ctx->svc = svc;
    ctx->currency = service_config(svc)->currency;
    ctx->dsn = service_config(svc)->pg_dsn;
    ctx->m = service_metrics(svc);
    refund_metrics_declare(ctx->m);
    log_info("refund gateway", "gateway", ctx->cfg.gateway == REFUND_GATEWAY_HTTP ? "http" : "mock",
             NULL);
    if (ctx->cfg.gateway == REFUND_GATEWAY_HTTP) {
        oms_status s = refund_worker_start(ctx);
        if (s != OMS_OK)
            return s;
    }
    *out = ctx;
    return OMS_OK;
}

static void refund_fini(void *ctx)
{
    refund_worker_stop(ctx);
}

static const consumer_spec CONSUMERS[] = {
    {.pull = {.name = "refund-order-paid",
              .stream = "ORDERS",
              .durable = "refund-order-paid",
              .filter = "order.paid"},
     /* No inbox row: paid_orders is keyed by order_id (ON CONFLICT DO
      * NOTHING, never deleted) and the consumer publishes nothing. */
     .dedupe = CONSUMER_DEDUPE_BY_STATE,
     .apply = refund_apply_order_paid},
    {.pull = {.name = "refund-requested",
              .stream = "REFUNDS",
              .durable = "refund-requested",
              .filter = "refund.requested"},
     .apply = refund_apply_requested},
};

int main(void)
{
    char err[CONFIG_ERR_LEN];
    if (refund_config(&domain.cfg, err) != OMS_OK) {
        fprintf(stderr, "refund: configuration error: %s\n", err);
        return 2;
    }
    service_def def = {
        .name = "refund",
        .http_port = OMS_PORT_REFUND,
        .migrations = refund_migrations,
        .consumers = CONSUMERS,
        .n_consumers = sizeof CONSUMERS / sizeof CONSUMERS[0],
        .init = refund_init,
        .fini = refund_fini,
        .routes = refund_routes,
    };
    return service_main(&def);
}
