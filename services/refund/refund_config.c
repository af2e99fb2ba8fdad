/*
 * refund_config.c - the refund settings, validated once at start.
 *
 * Refunds go to the gateway that took the payments, so refund reads the
 * payment gateway's variables (OMS_PAYMENT_GATEWAY, OMS_PAYMENT_GATEWAY_URL
 * and its timeouts); a refund is answered synchronously, so it needs no
 * webhook secret. OMS_REFUND_* variables are its own.
 */
#include "refund.h"

#include <stdio.h>
#include <string.h>

static oms_status read_gateway(refund_settings *cfg, char err[CONFIG_ERR_LEN])
{
    const char *gateway = config_str("OMS_PAYMENT_GATEWAY", "mock");
    if (strcmp(gateway, "mock") == 0) {
        cfg->gateway = REFUND_GATEWAY_MOCK;
        return OMS_OK;
    }
    if (strcmp(gateway, "http") != 0) {
        snprintf(err, CONFIG_ERR_LEN,
                 "OMS_PAYMENT_GATEWAY=\"%s\" is invalid: expected mock or http", gateway);
        return OMS_EINVAL;
    }
    cfg->gateway = REFUND_GATEWAY_HTTP;
    const char *url = config_str("OMS_PAYMENT_GATEWAY_URL", "");
    size_t len = strlen(url);
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        snprintf(err, CONFIG_ERR_LEN,
                 "OMS_PAYMENT_GATEWAY_URL=\"%.80s\" is invalid: OMS_PAYMENT_GATEWAY=http needs "
                 "the gateway's base URL, starting with http:// or https://",
                 url);
        return OMS_EINVAL;
    }
    while (len > 0 && url[len - 1] == '/')
        len--;
    if (len + sizeof "/refunds" > sizeof cfg->refunds_url) {
        snprintf(err, CONFIG_ERR_LEN, "OMS_PAYMENT_GATEWAY_URL is longer than %zu bytes",
                 sizeof cfg->refunds_url - sizeof "/refunds");
        return OMS_EINVAL;
    }
    snprintf(cfg->refunds_url, sizeof cfg->refunds_url, "%.*s/refunds", (int)len, url);
    return OMS_OK;
}

oms_status refund_config(refund_settings *cfg, char err[CONFIG_ERR_LEN])
{
    int64_t attempts;
    memset(cfg, 0, sizeof *cfg);
    if (read_gateway(cfg, err) != OMS_OK ||
        config_gateway_timeouts(&cfg->timeout_ms, &cfg->connect_timeout_ms, err) != OMS_OK ||
        config_int("OMS_REFUND_MAX_ATTEMPTS", 8, 1, 100, &attempts, err) != OMS_OK ||
        config_int("OMS_REFUND_LEASE_MARGIN_MS", 5000, 100, 600000, &cfg->lease_margin_ms, err) !=
            OMS_OK)
        return OMS_EINVAL;
    cfg->max_attempts = (int)attempts;
    return OMS_OK;
}
