/*
 * test_refund_config.c - the refund settings: the gateway and its URL (the
 * payment gateway's variables), the refund's own limits, and messages that
 * name the variable at fault.
 */
#include "testenv.h"

#include "refund.h"

#include <stdlib.h>
#include <string.h>

static void clear_env(void)
{
    static const char *const vars[] = {"OMS_PAYMENT_GATEWAY",
                                       "OMS_PAYMENT_GATEWAY_URL",
                                       "OMS_PAYMENT_GATEWAY_TIMEOUT_MS",
                                       "OMS_PAYMENT_GATEWAY_CONNECT_TIMEOUT_MS",
                                       "OMS_REFUND_MAX_ATTEMPTS",
                                       "OMS_REFUND_LEASE_MARGIN_MS"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
}

static void test_defaults_are_mock(void **state)
{
    (void)state;
    refund_settings cfg;
    char err[CONFIG_ERR_LEN];
    clear_env();
    assert_int_equal(refund_config(&cfg, err), OMS_OK);
    assert_int_equal(cfg.gateway, REFUND_GATEWAY_MOCK);
    assert_int_equal(cfg.max_attempts, 8);
    assert_int_equal(cfg.timeout_ms, 10000);
    assert_int_equal(cfg.connect_timeout_ms, 2000);
    assert_int_equal(cfg.lease_margin_ms, 5000);
}

static void test_http_gateway_url(void **state)
{
    (void)state;
    refund_settings cfg;
    char err[CONFIG_ERR_LEN];
    clear_env();
    setenv("OMS_PAYMENT_GATEWAY", "http", 1);
    assert_int_equal(refund_config(&cfg, err), OMS_EINVAL);
    assert_non_null(strstr(err, "OMS_PAYMENT_GATEWAY_URL=\"\" is invalid"));
    setenv("OMS_PAYMENT_GATEWAY_URL", "https://gw.example.com/v1//", 1);
    assert_int_equal(refund_config(&cfg, err), OMS_OK);
    assert_int_equal(cfg.gateway, REFUND_GATEWAY_HTTP);
    assert_string_equal(cfg.refunds_url, "https://gw.example.com/v1/refunds");
    setenv("OMS_PAYMENT_GATEWAY", "stripe", 1);
    assert_int_equal(refund_config(&cfg, err), OMS_EINVAL);
    assert_string_equal(err, "OMS_PAYMENT_GATEWAY=\"stripe\" is invalid: expected mock or http");
}

static void test_limits(void **state)
{
    (void)state;
    refund_settings cfg;
    char err[CONFIG_ERR_LEN];
    clear_env();
    setenv("OMS_REFUND_MAX_ATTEMPTS", "0", 1);
    assert_int_equal(refund_config(&cfg, err), OMS_EINVAL);
    assert_non_null(strstr(err, "OMS_REFUND_MAX_ATTEMPTS"));
    clear_env();
    setenv("OMS_PAYMENT_GATEWAY_TIMEOUT_MS", "1000", 1);
    setenv("OMS_PAYMENT_GATEWAY_CONNECT_TIMEOUT_MS", "2000", 1);
    assert_int_equal(refund_config(&cfg, err), OMS_EINVAL);
    assert_string_equal(err, "OMS_PAYMENT_GATEWAY_CONNECT_TIMEOUT_MS=2000 is invalid: it must "
                             "not exceed OMS_PAYMENT_GATEWAY_TIMEOUT_MS (1000)");
    clear_env();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_are_mock),
        cmocka_unit_test(test_http_gateway_url),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
