/*
 * config.c - environment variables, validated once at start.
 *
 * Secrets and passwords are checked here too, before anything connects: a
 * placeholder copied from an example (change-me) or a short HMAC key is a
 * deployment mistake that should stop the process with exit 2, naming the
 * variable, rather than run with a guessable credential. Messages never
 * quote a secret's value.
 */
#include "config.h"

#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PLACEHOLDER_MAX 256

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
        snprintf(err, CONFIG_ERR_LEN, "%s=\"%s\" is invalid: expected a number from %g to %g", name,
                 v, min, max);
        return OMS_EINVAL;
    }
    *out = d;
    return OMS_OK;
}

/* value lowercased with '-', '_', '.' and spaces removed, into out. */
static void placeholder_fold(const char *value, char out[PLACEHOLDER_MAX])
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)value; *p && n + 1 < PLACEHOLDER_MAX; p++)
        if (*p != '-' && *p != '_' && *p != '.' && *p != ' ')
            out[n++] = (char)tolower(*p);
    out[n] = '\0';
}

static bool all_same_char(const char *value)
{
    for (const char *p = value; *p; p++)
        if (*p != value[0])
            return false;
    return true;
}

bool config_is_placeholder(const char *value)
{
    static const char *const prefixes[] = {"changeme", "replaceme", "setme", "fillme", NULL};
    static const char *const inside[] = {"changeme", "placeholder", "example", NULL};
    static const char *const words[] = {"secret",  "password", "passwd", "pass",     "example",
                                        "default", "admin",    "token",  "test",     "dummy",
                                        "todo",    "fixme",    "xxx",    "qwerty",   "letmein",
                                        "none",    "null",     "empty",  "insecure", NULL};
    char folded[PLACEHOLDER_MAX];
    if (value == NULL)
        return false;
    placeholder_fold(value, folded);
    if (folded[0] == '\0' || all_same_char(value) || all_same_char(folded))
        return true;
    for (const char *const *p = prefixes; *p; p++)
        if (strncmp(folded, *p, strlen(*p)) == 0)
            return true;
    for (const char *const *p = inside; *p; p++)
        if (strstr(folded, *p) != NULL)
            return true;
    /* "secret", "password1", "admin123": a word, then digits at most. */
    for (const char *const *w = words; *w; w++) {
        size_t len = strlen(*w);
        if (strncmp(folded, *w, len) != 0)
            continue;
        const char *rest = folded + len; /* within folded: it starts with the word */
        if (strspn(rest, "0123456789") == strlen(rest))
            return true;
    }
    return false;
}

oms_status config_check_secret(const char *name, const char *value, const char *needed_for,
                               char err[CONFIG_ERR_LEN])
{
    if (value == NULL) {
        if (needed_for == NULL)
            return OMS_OK;
        snprintf(err, CONFIG_ERR_LEN, "%s is not set: %s (at least %d bytes)", name, needed_for,
                 CONFIG_MIN_SECRET_BYTES);
        return OMS_EINVAL;
    }
    if (config_is_placeholder(value)) {
        snprintf(err, CONFIG_ERR_LEN,
                 "%s is a placeholder, not a secret: set it to a random value of at least %d "
                 "bytes (openssl rand -hex 32)",
                 name, CONFIG_MIN_SECRET_BYTES);
        return OMS_EINVAL;
    }
    if (strlen(value) < CONFIG_MIN_SECRET_BYTES) {
        snprintf(err, CONFIG_ERR_LEN,
                 "%s is too short: %zu bytes, at least %d needed (openssl rand -hex 32)", name,
                 strlen(value), CONFIG_MIN_SECRET_BYTES);
        return OMS_EINVAL;
    }
    return OMS_OK;
}

oms_status config_check_password(const char *name, const char *value, const char *needed_for,
                                 char err[CONFIG_ERR_LEN])
{
    if (value == NULL) {
        if (needed_for == NULL)
            return OMS_OK;
        snprintf(err, CONFIG_ERR_LEN, "%s is not set: %s", name, needed_for);
        return OMS_EINVAL;
    }
    if (*value == '\0') {
        snprintf(err, CONFIG_ERR_LEN, "%s is empty: set the password, or leave it out", name);
        return OMS_EINVAL;
    }
    if (config_is_placeholder(value)) {
        snprintf(err, CONFIG_ERR_LEN,
                 "%s is a placeholder, not a password: set the real one (generate it with "
                 "openssl rand -hex 24)",
                 name);
        return OMS_EINVAL;
    }
    return OMS_OK;
}

/* The password inside OMS_PG_DSN, as libpq reads it (URL or key=value). */
static oms_status check_pg_password(const char *dsn, char err[CONFIG_ERR_LEN])
{
    char *parse_err = NULL;
    PQconninfoOption *opts = PQconninfoParse(dsn, &parse_err);
    oms_status s = OMS_OK;
    if (opts == NULL) {
        const char *why = parse_err ? parse_err : "out of memory";
        size_t len = strcspn(why, "\n"); /* libpq ends its messages with one */
        snprintf(err, CONFIG_ERR_LEN, "OMS_PG_DSN is invalid: %.*s", (int)len, why);
        s = OMS_EINVAL;
        goto out;
    }
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++)
        if (strcmp(o->keyword, "password") == 0 && o->val != NULL)
            s = config_check_password("the password in OMS_PG_DSN", o->val, NULL, err);
out:
    PQfreemem(parse_err);
    PQconninfoFree(opts);
    return s;
}

/* The password of redis://[user]:password@host..., when there is one. */
static oms_status check_redis_password(const char *url, char err[CONFIG_ERR_LEN])
{
    const char *p = url + strlen("redis://");
    size_t authority = strcspn(p, "/");
    const char *at = memrchr(p, '@', authority);
    const char *colon = at ? memchr(p, ':', (size_t)(at - p)) : NULL;
    char password[PLACEHOLDER_MAX];
    if (colon == NULL)
        return OMS_OK;
    snprintf(password, sizeof password, "%.*s", (int)(at - colon - 1), colon + 1);
    return config_check_password("the password in OMS_REDIS_URL", password, NULL, err);
}

static oms_status check_readable(const char *name, const char *path, char err[CONFIG_ERR_LEN])
{
    if (path == NULL || access(path, R_OK) == 0)
        return OMS_OK;
    snprintf(err, CONFIG_ERR_LEN, "%s=\"%.150s\" is invalid: %s", name, path, strerror(errno));
    return OMS_EINVAL;
}

static oms_status load_tls(oms_config *cfg, char err[CONFIG_ERR_LEN])
{
    cfg->nats_tls_ca = config_str("OMS_NATS_TLS_CA", NULL);
    cfg->nats_tls_cert = config_str("OMS_NATS_TLS_CERT", NULL);
    cfg->nats_tls_key = config_str("OMS_NATS_TLS_KEY", NULL);
    if ((cfg->nats_tls_cert == NULL) != (cfg->nats_tls_key == NULL)) {
        snprintf(err, CONFIG_ERR_LEN,
                 "%s is not set: a client certificate needs both OMS_NATS_TLS_CERT and "
                 "OMS_NATS_TLS_KEY",
                 cfg->nats_tls_cert ? "OMS_NATS_TLS_KEY" : "OMS_NATS_TLS_CERT");
        return OMS_EINVAL;
    }
    if (check_readable("OMS_NATS_TLS_CA", cfg->nats_tls_ca, err) != OMS_OK ||
        check_readable("OMS_NATS_TLS_CERT", cfg->nats_tls_cert, err) != OMS_OK ||
        check_readable("OMS_NATS_TLS_KEY", cfg->nats_tls_key, err) != OMS_OK)
        return OMS_EINVAL;
    return OMS_OK;
}

/* Every credential the process was given: a placeholder or an empty
 * password stops it here rather than at its first connection. */
static oms_status check_credentials(const oms_config *cfg, char err[CONFIG_ERR_LEN])
{
    char needed[96];
    snprintf(needed, sizeof needed, "OMS_NATS_USER=%.40s needs its password",
             cfg->nats_user ? cfg->nats_user : "");
    /* With a user, an empty password is refused rather than taken as unset. */
    const char *nats_password = cfg->nats_user ? getenv("OMS_NATS_PASSWORD") : cfg->nats_password;
    if (config_check_password("OMS_NATS_PASSWORD", nats_password, cfg->nats_user ? needed : NULL,
                              err) != OMS_OK ||
        config_check_secret("OMS_ADMIN_TOKEN", cfg->admin_token, NULL, err) != OMS_OK ||
        check_pg_password(cfg->pg_dsn, err) != OMS_OK ||
        check_redis_password(cfg->redis_url, err) != OMS_OK)
        return OMS_EINVAL;
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
        (size_t)snprintf(out, size, "%.*s:%ld", (int)(colon - http_addr), http_addr, port + 100) >=
            size) {
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
    if (check_inbox_prefix(cfg->nats_inbox_prefix, err) != OMS_OK ||
        check_credentials(cfg, err) != OMS_OK || load_tls(cfg, err) != OMS_OK)
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
