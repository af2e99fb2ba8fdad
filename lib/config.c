/*
 * config.c - environment variables, validated once at start.
 */
#include "config.h"

#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *config_str(const char *name, const char *def)
{
    const char *v = getenv(name);
    return (v != NULL && *v != '\0') ? v : def;
}

oms_status config_int(const char *name, int64_t def, int64_t min, int64_t max, int64_t *out,
                      char err[CONFIG_ERR_LEN])
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0') {
        *out = def;
        return OMS_OK;
    }
    char *end = NULL;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || n < min || n > max) {
        snprintf(err, CONFIG_ERR_LEN, "%s=\"%s\" is invalid: expected an integer from %lld to %lld",
                 name, v, (long long)min, (long long)max);
        return OMS_EINVAL;
    }
    *out = n;
    return OMS_OK;
}

oms_status config_double(const char *name, double def, double min, double max, double *out,
                         char err[CONFIG_ERR_LEN])
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0') {
        *out = def;
        return OMS_OK;
    }
    char *end = NULL;
    errno = 0;
    double d = strtod(v, &end);
    if (errno != 0 || end == v || *end != '\0' || !(d >= min && d <= max)) {
        snprintf(err, CONFIG_ERR_LEN, "%s=\"%s\" is invalid: expected a number from %g to %g",
                 name, v, min, max);
        return OMS_EINVAL;
    }
    *out = d;
    return OMS_OK;
}

static oms_status check_prefix(const char *name, const char *value, const char *const *prefixes,
                               char err[CONFIG_ERR_LEN])
{
    for (const char *const *p = prefixes; *p != NULL; p++)
        if (strncmp(value, *p, strlen(*p)) == 0)
            return OMS_OK;
    snprintf(err, CONFIG_ERR_LEN, "%s=\"%s\" is invalid: expected a URL starting with %s", name,
             value, prefixes[0]);
    return OMS_EINVAL;
}

static oms_status check_currency(const char *value, char err[CONFIG_ERR_LEN])
{
    bool ok = strlen(value) == 3;
    for (size_t i = 0; ok && i < 3; i++)
        ok = value[i] >= 'A' && value[i] <= 'Z';
    if (ok)
        return OMS_OK;
    snprintf(err, CONFIG_ERR_LEN,
             "OMS_CURRENCY=\"%s\" is invalid: expected an ISO 4217 code such as USD", value);
    return OMS_EINVAL;
}

/* A subject prefix: tokens of [A-Za-z0-9_-] separated by single dots, no
 * wildcards, as nats.c appends ".<id>" to it. NULL (not set) is fine. */
static oms_status check_inbox_prefix(const char *value, char err[CONFIG_ERR_LEN])
{
    bool ok = value == NULL || (*value != '.' && strlen(value) <= 128);
    for (const char *p = value; ok && p && *p; p++) {
        bool word = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                    (*p >= '0' && *p <= '9') || *p == '_' || *p == '-';
        ok = word || (*p == '.' && p[1] != '.' && p[1] != '\0');
    }
    if (ok)
        return OMS_OK;
    snprintf(err, CONFIG_ERR_LEN,
             "OMS_NATS_INBOX_PREFIX=\"%s\" is invalid: expected a subject without wildcards "
             "such as _INBOX.ingest (letters, digits, '_', '-', single dots; at most 128)",
             value);
    return OMS_EINVAL;
}

static oms_status load_ints(oms_config *cfg, char err[CONFIG_ERR_LEN])
{
    int64_t v;
    if (config_int("OMS_STREAM_REPLICAS", 1, 1, 5, &v, err) != OMS_OK)
        return OMS_EINVAL;
    cfg->stream_replicas = (int)v;
    if (config_int("OMS_STREAM_MAX_AGE_H", 168, 1, 24 * 365 * 10, &v, err) != OMS_OK)
        return OMS_EINVAL;
    cfg->stream_max_age_ms = v * 3600 * 1000;
    if (config_int("OMS_DUPLICATE_WINDOW_S", 120, 1, 86400, &v, err) != OMS_OK)
        return OMS_EINVAL;
    cfg->dup_window_ms = v * 1000;
    if (config_int("OMS_BATCH_MAX", 256, 1, 4096, &v, err) != OMS_OK)
        return OMS_EINVAL;
    cfg->batch_max = (int)v;
    if (config_int("OMS_BATCH_WAIT_MS", 50, 1, 10000, &v, err) != OMS_OK)
        return OMS_EINVAL;
    cfg->batch_wait_ms = (int)v;
    if (config_int("OMS_ACK_WAIT_S", 30, 1, 3600, &v, err) != OMS_OK)
        return OMS_EINVAL;
    cfg->ack_wait_ms = v * 1000;
    return OMS_OK;
}

/* The health listener's default: OMS_HTTP_ADDR's host, its port + 100. */
static oms_status default_health_addr(const char *http_addr, char *out, size_t size,
                                      char err[CONFIG_ERR_LEN])
{
    const char *colon = strrchr(http_addr, ':');
    char *end = NULL;
    long port = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end != '\0' || port < 1 || port + 100 > 65535 ||
        (size_t)snprintf(out, size, "%.*s:%ld", (int)(colon - http_addr), http_addr,
                         port + 100) >= size) {
        snprintf(err, CONFIG_ERR_LEN,
                 "OMS_HTTP_ADDR=\"%s\" gives no default for OMS_HEALTH_ADDR (its port + 100): "
                 "set OMS_HEALTH_ADDR to host:port or off",
                 http_addr);
        return OMS_EINVAL;
    }
    return OMS_OK;
}

static oms_status load_http(oms_config *cfg, char err[CONFIG_ERR_LEN])
{
    /* Lives for the process, like the default HTTP address. */
    static char default_health[96];
    int64_t v;
    const char *health = config_str("OMS_HEALTH_ADDR", NULL);
    if (health == NULL) {
        if (default_health_addr(cfg->http_addr, default_health, sizeof default_health, err) !=
            OMS_OK)
            return OMS_EINVAL;
        health = default_health;
    } else if (strcmp(health, "off") == 0) {
        health = NULL;
    } else if (strchr(health, ':') == NULL) {
        snprintf(err, CONFIG_ERR_LEN,
                 "OMS_HEALTH_ADDR=\"%s\" is invalid: expected host:port such as 0.0.0.0:8081, "
                 "or off",
                 health);
        return OMS_EINVAL;
    }
    cfg->health_addr = health;
    if (config_int("OMS_HTTP_PG_POOL", 4, 1, 64, &v, err) != OMS_OK)
        return OMS_EINVAL;
    cfg->http_pg_pool = (int)v;
    if (config_int("OMS_HTTP_MAX_CONNECTIONS", 128, 1, 4096, &v, err) != OMS_OK)
        return OMS_EINVAL;
    cfg->http_max_connections = (int)v;
    if (config_int("OMS_HTTP_MAX_PER_IP", 32, 1, 4096, &v, err) != OMS_OK)
        return OMS_EINVAL;
    cfg->http_max_per_ip = (int)v;
    return config_int("OMS_HTTP_HEADER_TIMEOUT_MS", 10000, 100, 300000,
                      &cfg->http_header_timeout_ms, err);
}

oms_status config_load(oms_config *cfg, const char *service, int http_port,
                       char err[CONFIG_ERR_LEN])
{
    static const char *const nats_schemes[] = {"nats://", "tls://", NULL};
    static const char *const pg_schemes[] = {"postgresql://", "postgres://", NULL};
    static const char *const redis_schemes[] = {"redis://", NULL};
    /* Lives for the process: the default address depends on the service. */
    static char default_addr[32];

    memset(cfg, 0, sizeof *cfg);
    cfg->service = service;
    cfg->nats_url = config_str("OMS_NATS_URL", "nats://127.0.0.1:14222");
    cfg->nats_user = config_str("OMS_NATS_USER", NULL);
    cfg->nats_password = config_str("OMS_NATS_PASSWORD", NULL);
    cfg->nats_inbox_prefix = config_str("OMS_NATS_INBOX_PREFIX", NULL);
    cfg->pg_dsn = config_str("OMS_PG_DSN", "postgresql://oms@127.0.0.1:15432/oms");
    cfg->redis_url = config_str("OMS_REDIS_URL", "redis://127.0.0.1:16379/0");
    snprintf(default_addr, sizeof default_addr, "127.0.0.1:%d", http_port);
    cfg->http_addr = config_str("OMS_HTTP_ADDR", default_addr);
    cfg->admin_token = config_str("OMS_ADMIN_TOKEN", NULL);
    cfg->currency = config_str("OMS_CURRENCY", "USD");

    if (check_prefix("OMS_NATS_URL", cfg->nats_url, nats_schemes, err) != OMS_OK ||
        check_prefix("OMS_PG_DSN", cfg->pg_dsn, pg_schemes, err) != OMS_OK ||
        check_prefix("OMS_REDIS_URL", cfg->redis_url, redis_schemes, err) != OMS_OK ||
        check_currency(cfg->currency, err) != OMS_OK)
        return OMS_EINVAL;
    if (check_inbox_prefix(cfg->nats_inbox_prefix, err) != OMS_OK)
        return OMS_EINVAL;
    if (strchr(cfg->http_addr, ':') == NULL) {
        snprintf(err, CONFIG_ERR_LEN,
                 "OMS_HTTP_ADDR=\"%s\" is invalid: expected host:port such as 127.0.0.1:18081",
                 cfg->http_addr);
        return OMS_EINVAL;
    }
    const char *level = config_str("OMS_LOG_LEVEL", "info");
    cfg->log_level = log_level_parse(level);
    if (cfg->log_level < 0) {
        snprintf(err, CONFIG_ERR_LEN,
                 "OMS_LOG_LEVEL=\"%s\" is invalid: expected debug, info, warn or error", level);
        return OMS_EINVAL;
    }
    if (load_ints(cfg, err) != OMS_OK)
        return OMS_EINVAL;
    return load_http(cfg, err);
}
