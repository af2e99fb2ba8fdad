/*
 * payment_config.c - the OMS_PAYMENT_* settings, validated once at start.
 *
 * main.c reads them before service_main, so a bad value is reported (exit 2)
 * even while NATS or PostgreSQL are still unreachable.
 */
#include "payment.h"

#include <stdio.h>
#include <string.h>

/* Slept inside the batch's transaction: well under the consumer's 30 s ack wait. */
#define MAX_LATENCY_MS 10000

static bool is_http_url(const char *url)
{
    return strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0;
}

static oms_status read_gateway(payment_settings *cfg, char err[CONFIG_ERR_LEN])
{
    const char *gateway = config_str("OMS_PAYMENT_GATEWAY", "mock");
    if (strcmp(gateway, "mock") == 0) {
        cfg->gateway = PAYMENT_GATEWAY_MOCK;
    } else if (strcmp(gateway, "http") == 0) {
        cfg->gateway = PAYMENT_GATEWAY_HTTP;
    } else {
        snprintf(err, CONFIG_ERR_LEN,
                 "OMS_PAYMENT_GATEWAY=\"%s\" is invalid: expected mock or http", gateway);
        return OMS_EINVAL;
    }
    return OMS_OK;
}

static oms_status read_numbers(payment_settings *cfg, char err[CONFIG_ERR_LEN])
{
    int64_t v;
    if (config_double("OMS_PAYMENT_SUCCESS_RATE", 0.9, 0.0, 1.0, &cfg->success_rate, err) !=
            OMS_OK ||
        config_int("OMS_PAYMENT_LATENCY_MS", 0, 0, MAX_LATENCY_MS, &cfg->latency_ms, err) !=
            OMS_OK ||
        config_gateway_timeouts(&cfg->timeout_ms, &cfg->connect_timeout_ms, err) != OMS_OK ||
        config_int("OMS_PAYMENT_CALLBACK_TIMEOUT_MS", 300000, 100, 86400000,
                   &cfg->callback_timeout_ms, err) != OMS_OK ||
        config_int("OMS_PAYMENT_MAX_ATTEMPTS", 5, 1, 100, &v, err) != OMS_OK)
        return OMS_EINVAL;
    cfg->max_attempts = (int)v;
    return OMS_OK;
}

/* The settings only the http gateway needs; required when it is chosen. */
static oms_status read_http(payment_settings *cfg, char err[CONFIG_ERR_LEN])
{
    const char *url = config_str("OMS_PAYMENT_GATEWAY_URL", NULL);
    const char *callback = config_str("OMS_PAYMENT_CALLBACK_URL", NULL);
    cfg->webhook_secret = config_str("OMS_PAYMENT_WEBHOOK_SECRET", NULL);
    /* Checked in every mode: a secret set for later must already be sound. */
    if (cfg->gateway != PAYMENT_GATEWAY_HTTP)
        return config_check_secret("OMS_PAYMENT_WEBHOOK_SECRET", cfg->webhook_secret, NULL, err);
    if (url == NULL || !is_http_url(url)) {
        snprintf(err, CONFIG_ERR_LEN,
                 "OMS_PAYMENT_GATEWAY_URL=\"%s\" is invalid: OMS_PAYMENT_GATEWAY=http needs the "
                 "gateway's base URL, starting with http:// or https://",
                 url ? url : "");
        return OMS_EINVAL;
    }
    size_t len = strlen(url);
    while (len > 0 && url[len - 1] == '/')
        len--;
    if (len + sizeof "/charges" > sizeof cfg->charges_url) {
        snprintf(err, CONFIG_ERR_LEN, "OMS_PAYMENT_GATEWAY_URL is longer than %zu bytes",
                 sizeof cfg->charges_url - sizeof "/charges");
        return OMS_EINVAL;
    }
    snprintf(cfg->charges_url, sizeof cfg->charges_url, "%.*s/charges", (int)len, url);
    if (config_check_secret("OMS_PAYMENT_WEBHOOK_SECRET", cfg->webhook_secret,
                            "OMS_PAYMENT_GATEWAY=http needs the secret the gateway signs its "
                            "callbacks with",
                            err) != OMS_OK)
        return OMS_EINVAL;
    if (callback != NULL && (!is_http_url(callback) || strlen(callback) >= PAYMENT_URL_LEN)) {
        snprintf(err, CONFIG_ERR_LEN,
                 "OMS_PAYMENT_CALLBACK_URL=\"%.80s\" is invalid: expected an http:// or https:// "
                 "URL shorter than %d bytes",
                 callback, PAYMENT_URL_LEN);
        return OMS_EINVAL;
    }
    snprintf(cfg->callback_url, sizeof cfg->callback_url, "%s", callback ? callback : "");
    return OMS_OK;
}

oms_status payment_config(payment_settings *cfg, char err[CONFIG_ERR_LEN])
{
    memset(cfg, 0, sizeof *cfg);
    cfg->seed = config_str("OMS_PAYMENT_SEED", "oms");
    if (read_gateway(cfg, err) != OMS_OK || read_numbers(cfg, err) != OMS_OK ||
        read_http(cfg, err) != OMS_OK)
        return OMS_EINVAL;
    return OMS_OK;
}

void payment_callback_url_default(payment_settings *cfg, const char *http_addr)
{
    if (cfg->callback_url[0] != '\0')
        return;
    const char *colon = strrchr(http_addr, ':');
    size_t host_len = colon ? (size_t)(colon - http_addr) : 0;
    /* An address that listens everywhere names no host a gateway could use. */
    bool anywhere = host_len == 0 || (host_len == 7 && strncmp(http_addr, "0.0.0.0", 7) == 0);
    snprintf(cfg->callback_url, sizeof cfg->callback_url, "http://%.*s%s/callbacks/payment",
             anywhere ? 9 : (int)host_len, anywhere ? "127.0.0.1" : http_addr, colon ? colon : "");
}
