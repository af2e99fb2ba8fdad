/*
 * notify_config.c - the notify settings, validated once at start.
 *
 * main.c reads them before service_main, so a bad value is reported (exit 2)
 * even while NATS or PostgreSQL are still unreachable. A channel that is
 * enabled must have everything it needs: an email channel without a server
 * would only fill the table with notifications bound to die.
 */
#include "notify.h"

#include "backoff.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const CHANNEL_NAMES[NOTIFY_N_CHANNELS] = {"log", "email", "webhook"};

const char *notify_channel_name(notify_channel c)
{
    return c < NOTIFY_N_CHANNELS ? CHANNEL_NAMES[c] : "?";
}

bool notify_channel_parse(const char *name, size_t len, notify_channel *out)
{
    for (int c = 0; c < NOTIFY_N_CHANNELS; c++)
        if (strlen(CHANNEL_NAMES[c]) == len && strncmp(CHANNEL_NAMES[c], name, len) == 0) {
            *out = (notify_channel)c;
            return true;
        }
    return false;
}

/* Parses "log,email" (spaces around names allowed). An empty variable means
 * the default, so at least one channel is always enabled. */
static oms_status read_channels(notify_settings *cfg, char err[CONFIG_ERR_LEN])
{
    const char *text = config_str("OMS_NOTIFY_CHANNELS", "log");
    const char *p = text;
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        size_t skip = strspn(p, " ");
        notify_channel c;
        len -= skip < len ? skip : len;
        p += skip;
        while (len > 0 && p[len - 1] == ' ')
            len--;
        if (!notify_channel_parse(p, len, &c)) {
            snprintf(err, CONFIG_ERR_LEN,
                     "OMS_NOTIFY_CHANNELS=\"%s\" is invalid: \"%.*s\" is not a channel "
                     "(expected a comma list of log, email, webhook)",
                     text, (int)(len > 32 ? 32 : len), p);
            return OMS_EINVAL;
        }
        cfg->enabled[c] = true;
        p += len;
        p += strspn(p, " ");
        if (*p == ',')
            p++;
    }
    return OMS_OK;
}

static oms_status read_numbers(notify_settings *cfg, char err[CONFIG_ERR_LEN])
{
    int64_t attempts, max_age_h;
    if (config_int("OMS_NOTIFY_MAX_ATTEMPTS", 6, 1, 100, &attempts, err) != OMS_OK ||
        config_int("OMS_NOTIFY_RETRY_BASE_MS", 60000, 10, 86400000, &cfg->retry_base_ms, err) !=
            OMS_OK ||
        config_int("OMS_NOTIFY_RETRY_MAX_MS", 3600000, 10, 7 * 86400000LL, &cfg->retry_max_ms,
                   err) != OMS_OK ||
        config_int("OMS_NOTIFY_TIMEOUT_MS", 10000, 100, 120000, &cfg->timeout_ms, err) != OMS_OK ||
        config_int("OMS_NOTIFY_CONNECT_TIMEOUT_MS", 3000, 100, 60000, &cfg->connect_timeout_ms,
                   err) != OMS_OK ||
        config_int("OMS_NOTIFY_RETENTION_DAYS", 90, 0, 36500, &cfg->retention_days, err) !=
            OMS_OK ||
        config_int("OMS_NOTIFY_MAX_AGE_H", 48, 0, 87600, &max_age_h, err) != OMS_OK)
        return OMS_EINVAL;
    cfg->max_attempts = (int)attempts;
    cfg->max_age_ms = max_age_h * 3600 * 1000;
    if (cfg->retry_max_ms < cfg->retry_base_ms) {
        snprintf(err, CONFIG_ERR_LEN,
                 "OMS_NOTIFY_RETRY_MAX_MS=%lld is invalid: it must not be below "
                 "OMS_NOTIFY_RETRY_BASE_MS (%lld)",
                 (long long)cfg->retry_max_ms, (long long)cfg->retry_base_ms);
        return OMS_EINVAL;
    }
    if (cfg->connect_timeout_ms > cfg->timeout_ms) {
        snprintf(err, CONFIG_ERR_LEN,
                 "OMS_NOTIFY_CONNECT_TIMEOUT_MS=%lld is invalid: it must not exceed "
                 "OMS_NOTIFY_TIMEOUT_MS (%lld)",
                 (long long)cfg->connect_timeout_ms, (long long)cfg->timeout_ms);
        return OMS_EINVAL;
    }
    return OMS_OK;
}

static bool has_prefix(const char *s, const char *prefix)
{
    return s != NULL && strncmp(s, prefix, strlen(prefix)) == 0;
}

static oms_status read_email(notify_settings *cfg, char err[CONFIG_ERR_LEN])
{
    cfg->smtp_url = config_str("OMS_SMTP_URL", NULL);
    cfg->smtp_from = config_str("OMS_SMTP_FROM", NULL);
    cfg->smtp_user = config_str("OMS_SMTP_USER", NULL);
    cfg->smtp_password = config_str("OMS_SMTP_PASSWORD", NULL);
    const char *tls = config_str("OMS_SMTP_TLS", "auto");
    if (strcmp(tls, "auto") == 0)
        cfg->smtp_tls = NOTIFY_TLS_AUTO;
    else if (strcmp(tls, "require") == 0)
        cfg->smtp_tls = NOTIFY_TLS_REQUIRE;
    else if (strcmp(tls, "off") == 0)
        cfg->smtp_tls = NOTIFY_TLS_OFF;
    else {
        snprintf(err, CONFIG_ERR_LEN,
                 "OMS_SMTP_TLS=\"%.32s\" is invalid: expected auto, require or off", tls);
        return OMS_EINVAL;
    }
    /* A login needs its password; a placeholder is refused either way. */
    if (config_check_password("OMS_SMTP_PASSWORD",
                              cfg->smtp_user ? getenv("OMS_SMTP_PASSWORD") : cfg->smtp_password,
                              cfg->smtp_user ? "OMS_SMTP_USER is set and needs its password" : NULL,
                              err) != OMS_OK)
        return OMS_EINVAL;
    if (!cfg->enabled[NOTIFY_EMAIL])
        return OMS_OK;
    if (!has_prefix(cfg->smtp_url, "smtp://") && !has_prefix(cfg->smtp_url, "smtps://")) {
        snprintf(err, CONFIG_ERR_LEN,
                 "OMS_SMTP_URL=\"%.100s\" is invalid: the email channel needs the SMTP "
                 "server's URL, e.g. smtp://127.0.0.1:1025 or smtps://mail.example.com",
                 cfg->smtp_url ? cfg->smtp_url : "");
        return OMS_EINVAL;
    }
    if (cfg->smtp_from == NULL || !notify_email_valid(cfg->smtp_from)) {
        snprintf(err, CONFIG_ERR_LEN,
                 "OMS_SMTP_FROM=\"%.100s\" is invalid: the email channel needs the sender's "
                 "address, e.g. orders@example.com",
                 cfg->smtp_from ? cfg->smtp_from : "");
        return OMS_EINVAL;
    }
    return OMS_OK;
}

static oms_status read_webhook(notify_settings *cfg, char err[CONFIG_ERR_LEN])
{
    cfg->webhook_url = config_str("OMS_WEBHOOK_URL", NULL);
    cfg->webhook_secret = config_str("OMS_WEBHOOK_SECRET", NULL);
    /* Checked even with the channel off: a secret set for later must be sound. */
    if (!cfg->enabled[NOTIFY_WEBHOOK])
        return config_check_secret("OMS_WEBHOOK_SECRET", cfg->webhook_secret, NULL, err);
    if (!has_prefix(cfg->webhook_url, "http://") && !has_prefix(cfg->webhook_url, "https://")) {
        snprintf(err, CONFIG_ERR_LEN,
                 "OMS_WEBHOOK_URL=\"%.100s\" is invalid: the webhook channel needs the URL to "
                 "POST to, starting with http:// or https://",
                 cfg->webhook_url ? cfg->webhook_url : "");
        return OMS_EINVAL;
    }
    return config_check_secret("OMS_WEBHOOK_SECRET", cfg->webhook_secret,
                               "the webhook channel signs every request with it", err);
}

oms_status notify_config(notify_settings *cfg, char err[CONFIG_ERR_LEN])
{
    memset(cfg, 0, sizeof *cfg);
    if (read_channels(cfg, err) != OMS_OK || read_numbers(cfg, err) != OMS_OK ||
        read_email(cfg, err) != OMS_OK || read_webhook(cfg, err) != OMS_OK)
        return OMS_EINVAL;
    return OMS_OK;
}

int64_t notify_backoff_ms(int64_t base_ms, int64_t max_ms, int failed_attempts)
{
    return oms_backoff_delay_ms(failed_attempts, base_ms, max_ms);
}

bool notify_email_valid(const char *addr)
{
    size_t len = strlen(addr);
    const char *at = strchr(addr, '@');
    if (len == 0 || len > NOTIFY_EMAIL_MAX || at == NULL || at == addr || at[1] == '\0' ||
        strchr(at + 1, '@') != NULL)
        return false;
    for (const unsigned char *p = (const unsigned char *)addr; *p != '\0'; p++)
        if (*p <= ' ' || *p == 0x7f || *p == '<' || *p == '>' || *p == '(' || *p == ')' ||
            *p == ',' || *p == ';' || *p == '"' || *p == '\\')
            return false;
    return true;
}
