/*
 * config_gateway.c - the payment gateway's request timeouts, read by every
 * service that calls the gateway (payment's charges, refund's refunds), so
 * both read the same variables with the same defaults and limits.
 */
#include "config.h"

#include <stdio.h>

oms_status config_gateway_timeouts(int64_t *timeout_ms, int64_t *connect_timeout_ms,
                                   char err[CONFIG_ERR_LEN])
{
    int64_t total, connect;
    if (config_int("OMS_PAYMENT_GATEWAY_TIMEOUT_MS", 10000, 100, 120000, &total, err) != OMS_OK ||
        config_int("OMS_PAYMENT_GATEWAY_CONNECT_TIMEOUT_MS", 2000, 100, 60000, &connect, err) !=
            OMS_OK)
        return OMS_EINVAL;
    if (connect > total) {
        snprintf(err, CONFIG_ERR_LEN,
                 "OMS_PAYMENT_GATEWAY_CONNECT_TIMEOUT_MS=%lld is invalid: it must not exceed "
                 "OMS_PAYMENT_GATEWAY_TIMEOUT_MS (%lld)",
                 (long long)connect, (long long)total);
        return OMS_EINVAL;
    }
    *timeout_ms = total;
    *connect_timeout_ms = connect;
    return OMS_OK;
}
