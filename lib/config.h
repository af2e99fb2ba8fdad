/*
 * config.h - configuration from environment variables only.
 *
 * Every value is validated at start; a bad one yields a message that names the
 * variable, the value and what is expected, and the process exits 2.
 */
#ifndef OMS_CONFIG_H
#define OMS_CONFIG_H

#include "oms.h"

#define CONFIG_ERR_LEN 256

/* Settings every service reads. Strings point into the environment or static
 * defaults and live as long as the process. */
typedef struct oms_config {
    const char *service;       /* set by the service, not the environment */
    const char *nats_url;      /* OMS_NATS_URL, default nats://127.0.0.1:14222 */
    const char *nats_user;     /* OMS_NATS_USER, optional */
    const char *nats_password; /* OMS_NATS_PASSWORD, optional */
    const char *pg_dsn;        /* OMS_PG_DSN, default postgresql://oms@127.0.0.1:15432/oms */
    const char *redis_url;     /* OMS_REDIS_URL, default redis://127.0.0.1:16379/0 */
    const char *http_addr;     /* OMS_HTTP_ADDR, default 127.0.0.1:<per-service port> */
    const char *admin_token;   /* OMS_ADMIN_TOKEN, required for state-changing endpoints */
    const char *currency;      /* OMS_CURRENCY, default USD */
    int stream_replicas;       /* OMS_STREAM_REPLICAS, 1..5, default 1 */
    int64_t stream_max_age_ms; /* OMS_STREAM_MAX_AGE_H, hours, default 168 (7 days) */
    int64_t dup_window_ms;     /* OMS_DUPLICATE_WINDOW_S, default 120 */
    int batch_max;             /* OMS_BATCH_MAX, 1..4096, default 256 */
    int batch_wait_ms;         /* OMS_BATCH_WAIT_MS, 1..10000, default 50 */
    int64_t ack_wait_ms;       /* OMS_ACK_WAIT_S, 1..3600, default 30: redelivery after a crash */
    int log_level;             /* OMS_LOG_LEVEL, default info */
    /* OMS_NATS_INBOX_PREFIX, optional: the subject prefix of this process's
     * reply inboxes (e.g. _INBOX.ingest), so a NATS user can be allowed to
     * subscribe to its own replies only. Default: nats.c's _INBOX. */
    const char *nats_inbox_prefix;
    /* OMS_NATS_TLS_CA, optional: the CA file (PEM) that signed the NATS
     * server's certificate; set, the connection uses TLS. OMS_NATS_TLS_CERT
     * and OMS_NATS_TLS_KEY, optional, both or neither: a client certificate
     * for a server that verifies clients. Each must be a readable file. */
    const char *nats_tls_ca;
    const char *nats_tls_cert;
    const char *nats_tls_key;
    /* HTTP (docs/operations.md, "HTTP limits and the health listener"). */
    const char *health_addr;        /* OMS_HEALTH_ADDR, default HTTP port + 100; NULL: off */
    int http_pg_pool;               /* OMS_HTTP_PG_POOL, 1..64, default 4 */
    int http_max_connections;       /* OMS_HTTP_MAX_CONNECTIONS, 1..4096, default 128 */
    int http_max_per_ip;            /* OMS_HTTP_MAX_PER_IP, 1..4096, default 32 */
    int64_t http_header_timeout_ms; /* OMS_HTTP_HEADER_TIMEOUT_MS, 100..300000, default 10000 */
} oms_config;

/* The least length of every HMAC key and of the admin token: 32 bytes, the
 * output size of SHA-256 (RFC 2104: a key shorter than the hash weakens the
 * MAC), and what `openssl rand -hex 16` or longer gives. */
#define CONFIG_MIN_SECRET_BYTES 32

/* Fills cfg from the environment. http_port is this service's default port.
 * On a bad value returns OMS_EINVAL and writes the reason into err. */
oms_status config_load(oms_config *cfg, const char *service, int http_port,
                       char err[CONFIG_ERR_LEN]);

/* Reads an integer variable in [min, max]; absent or empty gives def. */
oms_status config_int(const char *name, int64_t def, int64_t min, int64_t max, int64_t *out,
                      char err[CONFIG_ERR_LEN]);

/* Reads a decimal variable in [min, max]; absent or empty gives def. */
oms_status config_double(const char *name, double def, double min, double max, double *out,
                         char err[CONFIG_ERR_LEN]);

/* Returns the variable, or def when absent or empty. */
const char *config_str(const char *name, const char *def);

/* True when value is a known placeholder rather than a chosen secret:
 * change-me and its spellings (change_me, CHANGEME-admin...), replace-me,
 * words such as secret, password, example, placeholder, default (alone or
 * followed by digits), text containing "example" or "placeholder", or one
 * character repeated. Case, '-', '_' and '.' are ignored. */
bool config_is_placeholder(const char *value);

/* Checks secret `name` (an HMAC key or a bearer token): NULL is OMS_OK unless
 * needed_for says why it is required ("OMS_PAYMENT_GATEWAY=http needs ..."),
 * then "<name> is not set: <needed_for>". A placeholder or a value shorter
 * than CONFIG_MIN_SECRET_BYTES is refused naming the variable, never
 * quoting the value. */
oms_status config_check_secret(const char *name, const char *value, const char *needed_for,
                               char err[CONFIG_ERR_LEN]);

/* Checks password `name` (what names it in a message, e.g. "OMS_NATS_PASSWORD"
 * or "the password in OMS_PG_DSN"): NULL is OMS_OK unless needed_for is
 * given; empty or a placeholder is refused. */
oms_status config_check_password(const char *name, const char *value, const char *needed_for,
                                 char err[CONFIG_ERR_LEN]);

/* The payment gateway's request timeouts (config_gateway.c):
 * OMS_PAYMENT_GATEWAY_TIMEOUT_MS (default 10000, 100..120000) and
 * OMS_PAYMENT_GATEWAY_CONNECT_TIMEOUT_MS (default 2000, 100..60000, not more
 * than the timeout). Outputs set only on success. */
oms_status config_gateway_timeouts(int64_t *timeout_ms, int64_t *connect_timeout_ms,
                                   char err[CONFIG_ERR_LEN]);

#endif
