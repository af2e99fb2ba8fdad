/*
 * service.h - the wiring every OMS service shares: configuration, logs,
 * PostgreSQL schema and migrations, JetStream streams, batch consumers, the
 * outbox relay, HTTP (/healthz, /readyz, /metrics, dead letters) and graceful
 * shutdown on SIGTERM. A service's main.c fills a service_def and calls
 * service_main; its domain logic lives in its consumers' apply functions.
 */
#ifndef OMS_SERVICE_H
#define OMS_SERVICE_H

#include "config.h"
#include "consumer.h"
#include "http.h"
#include "js.h"
#include "metrics.h"
#include "pg.h"

typedef struct oms_service oms_service;

typedef struct service_def {
    const char *name;               /* also the PostgreSQL schema */
    int http_port;                  /* default port of OMS_HTTP_ADDR */
    const pg_migration *migrations; /* the service's schema/NNN_*.sql */
    const consumer_spec *consumers; /* ctx NULL means "the domain context" */
    size_t n_consumers;
    /* NULL-terminated: streams other consumers of the service read (not
     * lib/consumer ones, e.g. analytics'), waited for at start like the
     * consumers' own. Optional. */
    const char *const *needs_streams;
    /* Builds the domain context after connections and migrations are in
     * place (may start threads). Optional. */
    oms_status (*init)(oms_service *svc, void **ctx);
    /* Stops what init started and frees the context. Optional. */
    void (*fini)(void *ctx);
    /* Registers the service's own HTTP routes. Optional. */
    void (*routes)(oms_service *svc, http_server *http, void *ctx);
    /* Whether the domain's own workers are ready, for /readyz (consumers
     * that are not lib/consumer ones). Optional. */
    bool (*ready)(void *ctx);
} service_def;

/* Runs the service until SIGTERM/SIGINT; returns the process exit status
 * (0 after a clean drain, 2 on bad configuration, 1 on a fatal error). */
int service_main(const service_def *def);

const oms_config *service_config(oms_service *svc);
metrics *service_metrics(oms_service *svc);
js_conn *service_js(oms_service *svc);
const consumer_env *service_consumer_env(oms_service *svc);

/* True once SIGTERM arrived; domain threads poll it. */
const atomic_int *service_stopping(oms_service *svc);

/* A PostgreSQL connection for HTTP handlers from a pool of OMS_HTTP_PG_POOL
 * (default 4), waiting at most 2 s for one to be free. Returns NULL when none
 * can be had, and then, when resp is not NULL, sets it to 503 naming why
 * (PostgreSQL unavailable, or every pooled connection busy). The caller
 * gives the connection back with service_pg_release, outside a transaction. */
PGconn *service_pg_acquire(oms_service *svc, http_response *resp);

/* Returns c to the pool; NULL is a no-op. A broken connection, or one left
 * inside a transaction, is closed and replaced by a later acquire. */
void service_pg_release(oms_service *svc, PGconn *c);

#endif
