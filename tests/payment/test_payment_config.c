/*
 * test_payment_config.c - the OMS_PAYMENT_* settings: defaults, and a
 * message naming the variable for every value refused.
 */
#include "testenv.h"

#include "payment.h"

#include <stdlib.h>
#include <string.h>

static const char *const VARS[] = {"OMS_PAYMENT_GATEWAY",
                                   "OMS_PAYMENT_SEED",
                                   "OMS_PAYMENT_SUCCESS_RATE",
                                   "OMS_PAYMENT_LATENCY_MS",
                                   "OMS_PAYMENT_GATEWAY_URL",
                                   "OMS_PAYMENT_WEBHOOK_SECRET",
                                   "OMS_PAYMENT_CALLBACK_URL",
                                   "OMS_PAYMENT_MAX_ATTEMPTS",
                                   "OMS_PAYMENT_GATEWAY_TIMEOUT_MS",
                                   "OMS_PAYMENT_GATEWAY_CONNECT_TIMEOUT_MS",
                                   NULL};

static int clear_env(void **state)
{
    (void)state;
    for (const char *const *v = VARS; *v; v++)
        unsetenv(*v);
    return 0;
}

static void use_http(void)
{
    setenv("OMS_PAYMENT_GATEWAY", "http", 1);
    setenv("OMS_PAYMENT_GATEWAY_URL", "http://gateway.example:9000/", 1);
    setenv("OMS_PAYMENT_WEBHOOK_SECRET", "0123456789abcdef0123456789abcdef", 1);
}

static void test_defaults(void **state)
{
    (void)state;
    payment_settings cfg;
    char err[CONFIG_ERR_LEN];
    assert_int_equal(payment_config(&cfg, err), OMS_OK);
    assert_int_equal(cfg.gateway, PAYMENT_GATEWAY_MOCK);
    assert_string_equal(cfg.seed, "oms");
    assert_true(cfg.success_rate == 0.9);
    assert_int_equal(cfg.latency_ms, 0);
    assert_int_equal(cfg.max_attempts, 5);
    assert_int_equal(cfg.timeout_ms, 10000);
    assert_int_equal(cfg.connect_timeout_ms, 2000);
    assert_null(cfg.webhook_secret);
}

static void test_http_settings(void **state)
{
    (void)state;
    payment_settings cfg;
    char err[CONFIG_ERR_LEN];
    use_http();
    assert_int_equal(payment_config(&cfg, err), OMS_OK);
    assert_int_equal(cfg.gateway, PAYMENT_GATEWAY_HTTP);
    assert_string_equal(cfg.charges_url, "http://gateway.example:9000/charges");
    assert_string_equal(cfg.callback_url, "");
    payment_callback_url_default(&cfg, "127.0.0.1:18083");
    assert_string_equal(cfg.callback_url, "http://127.0.0.1:18083/callbacks/payment");
    cfg.callback_url[0] = '\0';
    payment_callback_url_default(&cfg, ":18083");
    assert_string_equal(cfg.callback_url, "http://127.0.0.1:18083/callbacks/payment");
    cfg.callback_url[0] = '\0';
    payment_callback_url_default(&cfg, "0.0.0.0:18083");
    assert_string_equal(cfg.callback_url, "http://127.0.0.1:18083/callbacks/payment");
    cfg.callback_url[0] = '\0';
    payment_callback_url_default(&cfg, "payment.internal:8080");
    assert_string_equal(cfg.callback_url, "http://payment.internal:8080/callbacks/payment");

    setenv("OMS_PAYMENT_CALLBACK_URL", "https://oms.example/callbacks/payment", 1);
    assert_int_equal(payment_config(&cfg, err), OMS_OK);
    payment_callback_url_default(&cfg, "127.0.0.1:18083");
    assert_string_equal(cfg.callback_url, "https://oms.example/callbacks/payment");
}

/* Sets name=value (after the http settings when http is true) and expects
 * a refusal whose message contains want. */
static void refused(bool http, const char *name, const char *value, const char *want)
{
    payment_settings cfg;
    char err[CONFIG_ERR_LEN] = "";
    clear_env(NULL);
    if (http)
        use_http();
    if (value)
        setenv(name, value, 1);
    else
        unsetenv(name);
    assert_int_equal(payment_config(&cfg, err), OMS_EINVAL);
    if (strstr(err, want) == NULL)
        fprintf(stderr, "%s=%s: want \"%s\" in \"%s\"\n", name, value ? value : "(unset)", want,
                err);
    assert_non_null(strstr(err, want));
}

static void test_refusals_name_the_variable(void **state)
{
    (void)state;
    refused(false, "OMS_PAYMENT_GATEWAY", "stripe",
            "OMS_PAYMENT_GATEWAY=\"stripe\" is invalid: expected mock or http");
    refused(false, "OMS_PAYMENT_SUCCESS_RATE", "1.5",
            "OMS_PAYMENT_SUCCESS_RATE=\"1.5\" is invalid: expected a number from 0 to 1");
    refused(false, "OMS_PAYMENT_SUCCESS_RATE", "-0.1", "OMS_PAYMENT_SUCCESS_RATE");
    refused(false, "OMS_PAYMENT_SUCCESS_RATE", "nan", "OMS_PAYMENT_SUCCESS_RATE");
    refused(false, "OMS_PAYMENT_SUCCESS_RATE", "90%", "OMS_PAYMENT_SUCCESS_RATE");
    refused(false, "OMS_PAYMENT_LATENCY_MS", "-5", "OMS_PAYMENT_LATENCY_MS");
    refused(false, "OMS_PAYMENT_MAX_ATTEMPTS", "0", "OMS_PAYMENT_MAX_ATTEMPTS");
    refused(false, "OMS_PAYMENT_GATEWAY_CONNECT_TIMEOUT_MS", "20000",
            "OMS_PAYMENT_GATEWAY_CONNECT_TIMEOUT_MS=20000 is invalid: it must not exceed "
            "OMS_PAYMENT_GATEWAY_TIMEOUT_MS (10000)");
    refused(true, "OMS_PAYMENT_GATEWAY_URL", NULL, "OMS_PAYMENT_GATEWAY_URL=\"\" is invalid");
    refused(true, "OMS_PAYMENT_GATEWAY_URL", "gateway:9000", "OMS_PAYMENT_GATEWAY_URL");
    refused(true, "OMS_PAYMENT_WEBHOOK_SECRET", NULL, "OMS_PAYMENT_WEBHOOK_SECRET is not set");
    refused(true, "OMS_PAYMENT_WEBHOOK_SECRET", NULL,
            "OMS_PAYMENT_WEBHOOK_SECRET is not set: OMS_PAYMENT_GATEWAY=http needs the secret the "
            "gateway signs its callbacks with (at least 32 bytes)");
    refused(true, "OMS_PAYMENT_WEBHOOK_SECRET", "short",
            "OMS_PAYMENT_WEBHOOK_SECRET is too short: 5 bytes, at least 32 needed (openssl rand "
            "-hex 32)");
    refused(true, "OMS_PAYMENT_WEBHOOK_SECRET", "0123456789abcdef",
            "OMS_PAYMENT_WEBHOOK_SECRET is too short: 16 bytes, at least 32 needed");
    refused(true, "OMS_PAYMENT_WEBHOOK_SECRET", "change-me-payment-webhook-secret-0000",
            "OMS_PAYMENT_WEBHOOK_SECRET is a placeholder, not a secret: set it to a random value "
            "of at least 32 bytes (openssl rand -hex 32)");
    /* In mock mode too: a secret that is set must be sound. */
    refused(false, "OMS_PAYMENT_WEBHOOK_SECRET", "secret",
            "OMS_PAYMENT_WEBHOOK_SECRET is a placeholder, not a secret");
    refused(false, "OMS_PAYMENT_WEBHOOK_SECRET", "kZ81pQv0-3t9Lm2x",
            "OMS_PAYMENT_WEBHOOK_SECRET is too short: 16 bytes");
    refused(true, "OMS_PAYMENT_CALLBACK_URL", "ftp://x", "OMS_PAYMENT_CALLBACK_URL");
}

/* The rate's bounds are valid values. */
static void test_rate_bounds(void **state)
{
    (void)state;
    payment_settings cfg;
    char err[CONFIG_ERR_LEN];
    setenv("OMS_PAYMENT_SUCCESS_RATE", "0", 1);
    assert_int_equal(payment_config(&cfg, err), OMS_OK);
    assert_true(cfg.success_rate == 0.0);
    setenv("OMS_PAYMENT_SUCCESS_RATE", "1", 1);
    assert_int_equal(payment_config(&cfg, err), OMS_OK);
    assert_true(cfg.success_rate == 1.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults, clear_env),
        cmocka_unit_test_setup(test_http_settings, clear_env),
        cmocka_unit_test_setup(test_refusals_name_the_variable, clear_env),
        cmocka_unit_test_setup(test_rate_bounds, clear_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
