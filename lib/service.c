/*
 * service.c - start-up, HTTP basics and shutdown for every service.
 *
 * Start-up waits for its peers rather than failing: NATS, PostgreSQL and the
 * streams are retried with backoff, so a whole stack can start in any order
 * (Kubernetes, systemd, `make up`). Signals are blocked in every thread and
 * taken synchronously by the main thread with sigwait.
 *
 * HTTP handlers share a small pool of PostgreSQL connections
 * (OMS_HTTP_PG_POOL, lib/connpool.c), so one slow query holds one
 * connection, not every handler. /healthz and /readyz never touch the
 * pool: readiness reads the state the service keeps (NATS connected,
 * consumers ready, the pool's last known PostgreSQL state, refreshed by the
 * main thread every few seconds).
 * They are also served on a small listener of their own (OMS_HEALTH_ADDR),
 * so probes are answered while clients saturate the API port.
 */
#include "service_int.h"

#include "backoff.h"
#include "connpool.h"
#include "log.h"
#include "outbox.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RELAY_DRAIN_MS 10000
#define PG_WAIT_MS 2000        /* a handler's wait for a free pooled connection */
#define PG_PROBE_EVERY_MS 5000 /* the main thread's check of the pool's PostgreSQL */
#define HEALTH_MAX_CONNECTIONS 16
#define HEALTH_MAX_PER_IP 8

struct oms_service {
    const service_def *def;
    oms_config cfg;
    metrics *m;
    js_conn *js;
    consumer_env env;
    consumer_spec *specs;
    consumer **consumers;
    outbox_relay *relay;
    http_server *http;
    http_server *health; /* NULL when OMS_HEALTH_ADDR=off */
    void *ctx;
    atomic_int stopping; /* set by the signal thread */
    connpool *pool;      /* the HTTP handlers' PostgreSQL connections */
};

const oms_config *service_config(oms_service *svc)
{
    return &svc->cfg;
}
metrics *service_metrics(oms_service *svc)
{
    return svc->m;
}
js_conn *service_js(oms_service *svc)
{
    return svc->js;
}
const consumer_env *service_consumer_env(oms_service *svc)
{
    return &svc->env;
}
const atomic_int *service_stopping(oms_service *svc)
{
    return &svc->stopping;
}

/* ---- the HTTP handlers' PostgreSQL pool ------------------------------- */

static oms_status pg_pool_connect(void *ctx, void **conn)
{
    oms_service *svc = ctx;
    PGconn *c = NULL;
    oms_status s = pg_connect(&c, svc->cfg.pg_dsn, svc->def->name, "http");
    if (s == OMS_OK)
        *conn = c;
    return s;
}

static bool pg_pool_ok(void *ctx, void *conn)
{
    (void)ctx;
    return pg_ok(conn);
}

/* A connection left inside a transaction would leak it into the next
 * request: close it, a later acquire opens a fresh one. */
static bool pg_pool_reusable(void *ctx, void *conn)
{
    (void)ctx;
    return PQtransactionStatus(conn) == PQTRANS_IDLE;
}

static void pg_pool_close(void *ctx, void *conn)
{
    (void)ctx;
    PQfinish(conn);
}

static const connpool_ops pg_pool_ops = {pg_pool_connect, pg_pool_ok, pg_pool_reusable,
                                         pg_pool_close};

static oms_status pool_take(oms_service *svc, int64_t wait_ms, PGconn **out)
{
    void *c = NULL;
    oms_status s = connpool_take(svc->pool, wait_ms, &c);
    if (s == OMS_OK)
        *out = c;
    return s;
}

PGconn *service_pg_acquire(oms_service *svc, http_response *resp)
{
    PGconn *c = NULL;
    oms_status s = pool_take(svc, PG_WAIT_MS, &c);
    if (s == OMS_OK)
        return c;
    if (resp != NULL && s == OMS_ETIMEOUT)
        http_respond_error(resp, 503,
                           "all %d PostgreSQL connections for HTTP requests are busy "
                           "(OMS_HTTP_PG_POOL); retry later",
                           svc->cfg.http_pg_pool);
    else if (resp != NULL)
        http_respond_error(resp, 503, "PostgreSQL is unavailable");
    return NULL;
}

void service_pg_release(oms_service *svc, PGconn *c)
{
    connpool_give(svc->pool, c);
}

/* Refreshes the pool's PostgreSQL state for /readyz when a connection is
 * idle; a busy pool is being used, so its state is fresh already. */
static void pool_probe(oms_service *svc)
{
    PGconn *c = NULL;
    if (pool_take(svc, 0, &c) != OMS_OK)
        return;
    PGresult *res = PQexec(c, "SELECT 1");
    connpool_mark(svc->pool, PQresultStatus(res) == PGRES_TUPLES_OK);
    PQclear(res);
    service_pg_release(svc, c);
}

/* ---- start-up, retried until the peers answer ------------------------ */

static bool wait_step(oms_service *svc, oms_backoff *backoff)
{
    oms_backoff_sleep(backoff, &svc->stopping);
    return !svc->stopping;
}

/* Waits until stream exists: another service owns it (js.c) and creates it
 * when it starts; this one only reads its info. */
static oms_status wait_stream(oms_service *svc, const char *stream)
{
    oms_backoff backoff = OMS_BACKOFF_INIT;
    oms_status s;
    while ((s = js_stream_exists(svc->js, stream)) != OMS_OK) {
        const char *owner = js_stream_owner(stream);
        log_warn("waiting for stream, created by its owner when it starts", "stream", stream,
                 "owner", owner ? owner : "?", NULL);
        if (!wait_step(svc, &backoff))
            return s;
    }
    return OMS_OK;
}

/* The streams this service creates, then those it only reads: its
 * consumers' and def->needs_streams. */
static oms_status ensure_streams(oms_service *svc)
{
    oms_backoff backoff = OMS_BACKOFF_INIT;
    oms_status s;
    while ((s = js_ensure_owned_streams(svc->js, svc->def->name, svc->cfg.stream_replicas,
                                        svc->cfg.stream_max_age_ms, svc->cfg.dup_window_ms)) !=
           OMS_OK) {
        log_warn("streams not ready, retrying", "nats_url", svc->cfg.nats_url, NULL);
        if (!wait_step(svc, &backoff))
            return s;
    }
    for (size_t i = 0; i < svc->def->n_consumers; i++)
        if ((s = wait_stream(svc, svc->def->consumers[i].pull.stream)) != OMS_OK)
            return s;
    for (const char *const *n = svc->def->needs_streams; n != NULL && *n != NULL; n++)
        if ((s = wait_stream(svc, *n)) != OMS_OK)
            return s;
    return OMS_OK;
}

static oms_status connect_nats(oms_service *svc)
{
    js_identity id = js_identity_of(&svc->cfg);
    oms_status s = js_connect_as(&svc->js, svc->cfg.nats_url, &id, svc->def->name);
    if (s != OMS_OK)
        return s;
    /* Requests made while disconnected would wait out their whole timeout:
     * wait for the connection first, listening for SIGTERM. */
    if (!js_connected(svc->js))
        log_warn("waiting for NATS", "nats_url", svc->cfg.nats_url, NULL);
    while (!js_connected(svc->js) && !svc->stopping)
        oms_sleep_ms(100, &svc->stopping);
    if (svc->stopping)
        return OMS_ETRANSIENT;
    return ensure_streams(svc);
}

static oms_status migrate(oms_service *svc)
{
    oms_backoff backoff = OMS_BACKOFF_INIT;
    for (;;) {
        PGconn *c = NULL;
        oms_status s = pg_connect(&c, svc->cfg.pg_dsn, svc->def->name, "migrate");
        if (s == OMS_OK)
            s = pg_migrate(c, svc->def->name, svc->def->migrations);
        PQfinish(c);
        if (s == OMS_OK || s == OMS_EDB)
            return s; /* a migration that fails on a live database will not fix itself */
        log_warn("PostgreSQL not ready, retrying", NULL);
        if (!wait_step(svc, &backoff))
            return s;
    }
}

static oms_status start_consumers(oms_service *svc)
{
    size_t n = svc->def->n_consumers;
    svc->specs = calloc(n ? n : 1, sizeof *svc->specs);
    svc->consumers = calloc(n ? n : 1, sizeof *svc->consumers);
    if (svc->specs == NULL || svc->consumers == NULL)
        return OMS_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        svc->specs[i] = svc->def->consumers[i];
        if (svc->specs[i].ctx == NULL)
            svc->specs[i].ctx = svc->ctx;
        if (svc->specs[i].pull.batch_max == 0)
            svc->specs[i].pull.batch_max = svc->cfg.batch_max;
        if (svc->specs[i].pull.wait_ms == 0)
            svc->specs[i].pull.wait_ms = svc->cfg.batch_wait_ms;
        if (svc->specs[i].pull.ack_wait_ms == 0)
            svc->specs[i].pull.ack_wait_ms = svc->cfg.ack_wait_ms;
        oms_status s = consumer_start(&svc->consumers[i], &svc->specs[i], &svc->env);
        if (s != OMS_OK)
            return s;
    }
    return OMS_OK;
}

/* ---- HTTP basics ----------------------------------------------------- */

static void h_healthz(void *ctx, const http_request *req, http_response *resp)
{
    (void)ctx, (void)req;
    http_respond_json(resp, 200, json_pack("{s:s}", "status", "ok"));
}

static void h_readyz(void *ctx, const http_request *req, http_response *resp)
{
    oms_service *svc = ctx;
    (void)req;
    bool nats = js_connected(svc->js), consumers = true;
    for (size_t i = 0; i < svc->def->n_consumers; i++)
        consumers = consumers && consumer_ready(svc->consumers[i]);
    if (svc->def->ready != NULL && svc->ctx != NULL)
        consumers = consumers && svc->def->ready(svc->ctx);
    bool pg = connpool_up(svc->pool);
    bool ready = nats && pg && consumers && !svc->stopping;
    http_respond_json(resp, ready ? 200 : 503,
                      json_pack("{s:s,s:b,s:b,s:b}", "status", ready ? "ready" : "not ready",
                                "nats", nats, "postgres", pg, "consumers", consumers));
}

/* Without waiting: when every pooled connection is busy the gauge keeps its
 * last value rather than holding up the scrape. */
static void refresh_dead_letter_gauge(oms_service *svc)
{
    PGconn *c = NULL;
    PGresult *res = NULL;
    if (pool_take(svc, 0, &c) != OMS_OK)
        return;
    if (pg_query(c, "dead letter count",
                 "SELECT count(*) FROM dead_letters WHERE resolved_at IS NULL", 0, NULL,
                 PGRES_TUPLES_OK, &res) == OMS_OK)
        metrics_gauge_set(svc->m, "oms_dead_letters", "", atof(PQgetvalue(res, 0, 0)));
    PQclear(res);
    service_pg_release(svc, c);
}

static void h_metrics(void *ctx, const http_request *req, http_response *resp)
{
    oms_service *svc = ctx;
    (void)req;
    char *text = NULL;
    size_t len = 0;
    refresh_dead_letter_gauge(svc);
    if (metrics_render(svc->m, &text, &len) != OMS_OK) {
        http_respond_error(resp, 500, "cannot render metrics");
        return;
    }
    resp->status = 200;
    resp->content_type = "text/plain; version=0.0.4";
    resp->body = text;
    resp->body_len = len;
}

const consumer_spec *service_consumer_for(oms_service *svc, const char *subject)
{
    for (size_t i = 0; i < svc->def->n_consumers; i++)
        if (consumer_subject_matches(svc->specs[i].pull.filter, subject))
            return &svc->specs[i];
    return NULL;
}

static http_limits configured_limits(const oms_config *cfg)
{
    return (http_limits){(unsigned)cfg->http_max_connections, (unsigned)cfg->http_max_per_ip,
                         cfg->http_header_timeout_ms};
}

/* The health listener: /healthz, /readyz and /metrics only, no admin token. */
static oms_status start_health(oms_service *svc)
{
    http_limits limits = {HEALTH_MAX_CONNECTIONS, HEALTH_MAX_PER_IP,
                          svc->cfg.http_header_timeout_ms};
    if (svc->cfg.health_addr == NULL)
        return OMS_OK;
    oms_status s = http_server_create(&svc->health, svc->cfg.health_addr, NULL);
    if (s != OMS_OK)
        return s;
    http_server_limits(svc->health, &limits);
    http_route(svc->health, "GET", "/healthz", false, h_healthz, svc);
    http_route(svc->health, "GET", "/readyz", false, h_readyz, svc);
    http_route(svc->health, "GET", "/metrics", false, h_metrics, svc);
    s = http_server_start(svc->health);
    if (s != OMS_OK)
        log_error("cannot listen for health checks (set OMS_HEALTH_ADDR, or off)", "addr",
                  svc->cfg.health_addr, NULL);
    return s;
}

static oms_status start_http(oms_service *svc)
{
    http_limits limits = configured_limits(&svc->cfg);
    oms_status s = http_server_create(&svc->http, svc->cfg.http_addr, svc->cfg.admin_token);
    if (s != OMS_OK)
        return s;
    http_server_limits(svc->http, &limits);
    http_route(svc->http, "GET", "/healthz", false, h_healthz, svc);
    http_route(svc->http, "GET", "/readyz", false, h_readyz, svc);
    http_route(svc->http, "GET", "/metrics", false, h_metrics, svc);
    service_dlq_routes(svc, svc->http);
    if (svc->def->routes != NULL)
        svc->def->routes(svc, svc->http, svc->ctx);
    s = http_server_start(svc->http);
    if (s != OMS_OK) {
        log_error("cannot listen", "addr", svc->cfg.http_addr, NULL);
        return s;
    }
    return start_health(svc);
}

/* ---- main ------------------------------------------------------------ */

static void shutdown_all(oms_service *svc)
{
    /* Order matters: HTTP handlers finish their requests and consumers their
     * batch (both may write outbox rows, and handlers use the domain
     * context) before the domain context goes and the relay drains. HTTP
     * goes first because /readyz reads the consumers, which consumer_stop
     * frees. */
    http_server_destroy(svc->health);
    http_server_destroy(svc->http);
    svc->health = svc->http = NULL;
    for (size_t i = 0; svc->consumers && i < svc->def->n_consumers; i++)
        consumer_stop(svc->consumers[i]);
    if (svc->def->fini != NULL && svc->ctx != NULL)
        svc->def->fini(svc->ctx);
    outbox_relay_stop(svc->relay, RELAY_DRAIN_MS);
    js_conn_destroy(svc->js);
    connpool_destroy(svc->pool);
    svc->pool = NULL;
    metrics_destroy(svc->m);
    free(svc->consumers);
    free(svc->specs);
}

static oms_status start_all(oms_service *svc)
{
    oms_status s;
    if ((s = connect_nats(svc)) != OMS_OK || (s = migrate(svc)) != OMS_OK)
        return s;
    svc->env = (consumer_env){svc->cfg.pg_dsn, svc->def->name, svc->js, svc->m};
    /* Before init: domain threads it starts (analytics' snapshotter) use the pool. */
    /* Starts "up": migrations have just connected. */
    if ((s = connpool_create(&svc->pool, (size_t)svc->cfg.http_pg_pool, &pg_pool_ops, svc)) !=
        OMS_OK)
        return s;
    if (svc->def->init != NULL && (s = svc->def->init(svc, &svc->ctx)) != OMS_OK)
        return s;
    /* Inbox rows must outlive any redelivery: keep them a day past the streams' max age. */
    if ((s = outbox_relay_start(&svc->relay, svc->cfg.pg_dsn, svc->def->name, svc->js, svc->m,
                                svc->cfg.stream_max_age_ms + 86400000LL)) != OMS_OK)
        return s;
    if ((s = start_consumers(svc)) != OMS_OK)
        return s;
    return start_http(svc);
}

static void *signal_main(void *arg)
{
    oms_service *svc = arg;
    sigset_t sigs;
    int sig = 0;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigwait(&sigs, &sig);
    log_info("shutting down", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT", NULL);
    svc->stopping = 1;
    return NULL;
}

int service_main(const service_def *def)
{
    oms_service svc;
    char err[CONFIG_ERR_LEN];
    sigset_t sigs;
    pthread_t signal_thread;
    int rc = 0;

    memset(&svc, 0, sizeof svc);
    svc.def = def;
    if (config_load(&svc.cfg, def->name, def->http_port, err) != OMS_OK) {
        fprintf(stderr, "%s: configuration error: %s\n", def->name, err);
        return 2;
    }
    log_init(def->name, (log_level)svc.cfg.log_level);
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* Takes SIGTERM even during start-up, while peers are still retried. */
    pthread_create(&signal_thread, NULL, signal_main, &svc);
    pthread_detach(signal_thread);

    /* Every failure from here goes through shutdown_all, which frees what
     * start-up got to (the pool and its lock among them). */
    oms_status s = OMS_ENOMEM;
    if ((svc.m = metrics_create()) != NULL) {
        metrics_gauge_declare(svc.m, "oms_dead_letters", "Dead letters not yet resolved");
        s = start_all(&svc);
    }
    if (s == OMS_OK) {
        log_info("service started", "http_addr", svc.cfg.http_addr, "health_addr",
                 svc.cfg.health_addr ? svc.cfg.health_addr : "off", "nats_url", svc.cfg.nats_url,
                 NULL);
        for (int64_t probed_ms = oms_now_ms(); !svc.stopping;) {
            oms_sleep_ms(100, NULL);
            if (oms_now_ms() - probed_ms >= PG_PROBE_EVERY_MS) {
                pool_probe(&svc);
                probed_ms = oms_now_ms();
            }
        }
    } else if (svc.stopping) {
        log_info("stopped during start-up", NULL);
    } else {
        log_error("start-up failed", "error", oms_strstatus(s), NULL);
        rc = 1;
    }
    svc.stopping = 1;
    shutdown_all(&svc);
    if (rc == 0)
        log_info("stopped cleanly", NULL);
    return rc;
}
