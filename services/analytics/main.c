/*
 * main.c - the analytics service: wiring only (see analytics.h).
 *
 *   oms-analytics            runs the projection and the query API
 *   oms-analytics rebuild    rebuilds the projection from the streams, then exits
 */
#include "analytics.h"

#include "log.h"
#include "ports.h"

#include <stdio.h>
#include <string.h>

typedef struct analytics_service {
    analytics_ctx live;
    analytics_redis *redis; /* shared by the query handlers and the snapshotter */
    analytics_http http;
    rconsumer_env env;
    rconsumer_spec specs[ANALYTICS_N_CONSUMERS];
    rconsumer *consumers[ANALYTICS_N_CONSUMERS];
    analytics_snapshotter *snapshotter;
    int64_t snapshot_delay_s;
} analytics_service;

/* Static: HTTP handlers borrow it until the process exits. */
static analytics_service domain;

static void analytics_fini(void *ctx);

static oms_status analytics_init(oms_service *svc, void **out)
{
    analytics_service *a = &domain;
    const oms_config *cfg = service_config(svc);
    oms_status s;
    a->live.currency = cfg->currency;
    a->live.seen_ttl_s = cfg->stream_max_age_ms / 1000 + 86400;
    a->live.m = service_metrics(svc);
    analytics_metrics_declare(a->live.m);
    if ((s = analytics_redis_create(&a->redis, cfg->redis_url)) != OMS_OK)
        return s;
    /* From here a failure undoes what started: service_main does not call
     * fini when init fails. */
    a->http = (analytics_http){.svc = svc, .redis = a->redis, .currency = cfg->currency};
    a->env = (rconsumer_env){cfg->redis_url, cfg->pg_dsn, "analytics", service_js(svc),
                             service_metrics(svc)};
    analytics_specs_init(a->specs, &a->live, cfg, "analytics", false);
    for (size_t i = 0; s == OMS_OK && i < ANALYTICS_N_CONSUMERS; i++)
        s = rconsumer_start(&a->consumers[i], &a->specs[i], &a->env);
    if (s == OMS_OK)
        s = analytics_snapshotter_start(&a->snapshotter, svc, a->redis, cfg->currency,
                                        a->snapshot_delay_s, service_stopping(svc));
    if (s != OMS_OK) {
        analytics_fini(a);
        return s;
    }
    *out = a;
    return OMS_OK;
}

static void analytics_fini(void *ctx)
{
    analytics_service *a = ctx;
    analytics_snapshotter_stop(a->snapshotter);
    for (size_t i = 0; i < ANALYTICS_N_CONSUMERS; i++)
        rconsumer_stop(a->consumers[i]);
    /* HTTP is stopped before fini (service.c): nothing uses it any more. */
    analytics_redis_destroy(a->redis);
    a->redis = NULL;
}

static void routes(oms_service *svc, http_server *http, void *ctx)
{
    (void)svc;
    analytics_routes(http, &((analytics_service *)ctx)->http);
}

static bool analytics_ready(void *ctx)
{
    analytics_service *a = ctx;
    for (size_t i = 0; i < ANALYTICS_N_CONSUMERS; i++)
        if (!rconsumer_ready(a->consumers[i]))
            return false;
    return true;
}

int main(int argc, char **argv)
{
    char err[CONFIG_ERR_LEN];
    if (argc == 2 && strcmp(argv[1], "rebuild") == 0)
        return analytics_rebuild_main();
    if (argc != 1) {
        fprintf(stderr, "usage: oms-analytics [rebuild]\n");
        return 2;
    }
    if (config_int("OMS_ANALYTICS_SNAPSHOT_DELAY_S", 900, 0, 86399, &domain.snapshot_delay_s,
                   err) != OMS_OK) {
        fprintf(stderr, "analytics: configuration error: %s\n", err);
        return 2;
    }
    /* Its consumers are rconsumers: service.c waits for their streams
     * (created by ingest and refund) before init starts them. */
    static const char *const streams[] = {"ORDERS", "REFUNDS", NULL};
    service_def def = {
        .name = "analytics",
        .needs_streams = streams,
        .http_port = OMS_PORT_ANALYTICS,
        .migrations = analytics_migrations,
        .init = analytics_init,
        .fini = analytics_fini,
        .routes = routes,
        .ready = analytics_ready,
    };
    return service_main(&def);
}
