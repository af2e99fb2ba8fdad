/*
 * main.c - the notify service: wiring only (see notify.h for the domain).
 */
#include "notify.h"

#include "log.h"
#include "ports.h"

#include <stdio.h>
#include <string.h>

/* The domain context: the settings, read in main before service_main (so a
 * bad one exits 2 at once), plus what init borrows from the service. */
static notify_ctx domain;

static oms_status notify_init(oms_service *svc, void **out)
{
    notify_ctx *ctx = &domain;
    char channels[64] = "";
    ctx->svc = svc;
    ctx->currency = service_config(svc)->currency;
    ctx->dsn = service_config(svc)->pg_dsn;
    ctx->m = service_metrics(svc);
    ctx->stopping = service_stopping(svc);
    notify_metrics_declare(ctx->m, &ctx->cfg);
    for (int c = 0; c < NOTIFY_N_CHANNELS; c++)
        if (ctx->cfg.enabled[c])
            snprintf(channels + strlen(channels), sizeof channels - strlen(channels), "%s%s",
                     *channels ? "," : "", notify_channel_name((notify_channel)c));
    oms_status s = notify_sender_start(ctx);
    if (s != OMS_OK)
        return s;
    log_info("notify channels", "channels", channels, NULL);
    *out = ctx;
    return OMS_OK;
}

static void notify_fini(void *ctx)
{
    notify_sender_stop(ctx);
}

/* One durable per subject: the server (2.9) filters a consumer on one
 * subject, and order.created, the bulk of ORDERS, is none of notify's. */
static const consumer_spec CONSUMERS[] = {
    {.pull = {.name = "notify-order-paid",
              .stream = "ORDERS",
              .durable = "notify-order-paid",
              .filter = "order.paid"},
     /* No inbox row: notifications are keyed UNIQUE (event_id, channel)
      * (ON CONFLICT DO NOTHING) and the consumer publishes nothing; the
      * prune keeps rows 90 days, longer than the stream keeps events. */
     .dedupe = CONSUMER_DEDUPE_BY_STATE,
     .apply = notify_apply_orders},
    {.pull = {.name = "notify-order-failed",
              .stream = "ORDERS",
              .durable = "notify-order-failed",
              .filter = "order.failed"},
     /* No inbox row: notifications are keyed UNIQUE (event_id, channel)
      * (ON CONFLICT DO NOTHING) and the consumer publishes nothing; the
      * prune keeps rows 90 days, longer than the stream keeps events. */
     .dedupe = CONSUMER_DEDUPE_BY_STATE,
     .apply = notify_apply_orders},
    {.pull = {.name = "notify-order-refunded",
              .stream = "ORDERS",
              .durable = "notify-order-refunded",
              .filter = "order.refunded"},
     .apply = notify_apply_orders},
};

int main(void)
{
    char err[CONFIG_ERR_LEN];
    /* Before service_main, which waits for NATS and PostgreSQL: a bad setting
     * is reported at once, with the exit status of a configuration error. */
    if (notify_config(&domain.cfg, err) != OMS_OK) {
        fprintf(stderr, "notify: configuration error: %s\n", err);
        return 2;
    }
    service_def def = {
        .name = "notify",
        .http_port = OMS_PORT_NOTIFY,
        .migrations = notify_migrations,
        .consumers = CONSUMERS,
        .n_consumers = sizeof CONSUMERS / sizeof CONSUMERS[0],
        .init = notify_init,
        .fini = notify_fini,
        .routes = notify_routes,
    };
    return service_main(&def);
}
