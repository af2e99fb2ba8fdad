/*
 * main.c - the payment service: wiring only (see payment.h for the domain).
 */
#include "payment.h"

#include "log.h"
#include "ports.h"

#include <stdio.h>

/* The domain context: the settings read once at start, plus what init
 * borrows from the service. service_main stops consumers and the HTTP
 * server (so no gateway callback runs any more) before fini; the context is
 * static only because a service has exactly one. */
static payment_ctx domain;

static oms_status payment_init(oms_service *svc, void **out)
{
    payment_ctx *ctx = &domain;
    ctx->svc = svc;
    ctx->currency = service_config(svc)->currency;
    ctx->dsn = service_config(svc)->pg_dsn;
    ctx->m = service_metrics(svc);
    ctx->stopping = service_stopping(svc);
    payment_callback_url_default(&ctx->cfg, service_config(svc)->http_addr);
    payment_metrics_declare(ctx->m);
    log_info("payment gateway", "gateway",
             ctx->cfg.gateway == PAYMENT_GATEWAY_HTTP ? "http" : "mock", NULL);
    if (ctx->cfg.gateway == PAYMENT_GATEWAY_HTTP) {
        oms_status s = payment_charger_start(ctx);
        if (s != OMS_OK)
            return s;
    }
    *out = ctx;
    return OMS_OK;
}

static void payment_fini(void *ctx)
{
    payment_charger_stop(ctx);
}

static const consumer_spec CONSUMERS[] = {
    {.pull = {.name = "payment-stock-reserved",
              .stream = "STOCK",
              .durable = "payment",
              .filter = "stock.reserved"},
     /* No inbox row: INSERT ... ON CONFLICT (order_id) DO NOTHING RETURNING,
      * and payment.settled only for returned rows, so a redelivered
      * stock.reserved inserts nothing and publishes nothing. */
     .dedupe = CONSUMER_DEDUPE_BY_STATE,
     .apply = payment_apply_stock_reserved},
};

int main(void)
{
    char err[CONFIG_ERR_LEN];
    /* Before service_main, which waits for NATS and PostgreSQL: a bad setting
     * is reported at once, with the exit status of a configuration error. */
    if (payment_config(&domain.cfg, err) != OMS_OK) {
        fprintf(stderr, "payment: configuration error: %s\n", err);
        return 2;
    }
    service_def def = {
        .name = "payment",
        .http_port = OMS_PORT_PAYMENT,
        .migrations = payment_migrations,
        .consumers = CONSUMERS,
        .n_consumers = sizeof CONSUMERS / sizeof CONSUMERS[0],
        .init = payment_init,
        .fini = payment_fini,
        .routes = payment_routes,
    };
    return service_main(&def);
}
