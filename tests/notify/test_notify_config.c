/*
 * test_notify_config.c - the notify settings: defaults, the channel list,
 * what each channel requires, and a message naming the variable for every
 * value refused.
 */
#include "testenv.h"

#include "notify.h"

#include <stdlib.h>
#include <string.h>

static const char *const VARS[] = {"OMS_NOTIFY_CHANNELS",
                                   "OMS_NOTIFY_MAX_ATTEMPTS",
                                   "OMS_NOTIFY_RETRY_BASE_MS",
                                   "OMS_NOTIFY_RETRY_MAX_MS",
                                   "OMS_NOTIFY_TIMEOUT_MS",
                                   "OMS_NOTIFY_CONNECT_TIMEOUT_MS",
                                   "OMS_SMTP_URL",
                                   "OMS_SMTP_FROM",
                                   "OMS_SMTP_USER",
                                   "OMS_SMTP_PASSWORD",
                                   "OMS_SMTP_TLS",
                                   "OMS_WEBHOOK_URL",
                                   "OMS_WEBHOOK_SECRET",
                                   "OMS_NOTIFY_RETENTION_DAYS",
                                   "OMS_NOTIFY_MAX_AGE_H",
                                   NULL};

static int clear_env(void **state)
{
    (void)state;
    for (const char *const *v = VARS; *v; v++)
        unsetenv(*v);
    return 0;
}

static void refused(const char *want)
{
    notify_settings cfg;
    char err[CONFIG_ERR_LEN] = "";
    assert_int_equal(notify_config(&cfg, err), OMS_EINVAL);
    if (strstr(err, want) == NULL)
        fprintf(stderr, "want \"%s\" in \"%s\"\n", want, err);
    assert_non_null(strstr(err, want));
}

static void test_defaults(void **state)
{
    (void)state;
    notify_settings cfg;
    char err[CONFIG_ERR_LEN];
    assert_int_equal(notify_config(&cfg, err), OMS_OK);
    assert_true(cfg.enabled[NOTIFY_LOG]);
    assert_false(cfg.enabled[NOTIFY_EMAIL]);
    assert_false(cfg.enabled[NOTIFY_WEBHOOK]);
    assert_int_equal(cfg.max_attempts, 6);
    assert_int_equal(cfg.retry_base_ms, 60000);
    assert_int_equal(cfg.retry_max_ms, 3600000);
    assert_int_equal(cfg.timeout_ms, 10000);
    assert_int_equal(cfg.connect_timeout_ms, 3000);
    assert_int_equal(cfg.smtp_tls, NOTIFY_TLS_AUTO);
    assert_int_equal(cfg.retention_days, 90);
    assert_int_equal(cfg.max_age_ms, 48LL * 3600 * 1000);
}

static void test_every_channel(void **state)
{
    (void)state;
    notify_settings cfg;
    char err[CONFIG_ERR_LEN];
    setenv("OMS_NOTIFY_CHANNELS", " webhook , email,log,email", 1);
    setenv("OMS_SMTP_URL", "smtp://127.0.0.1:1025", 1);
    setenv("OMS_SMTP_FROM", "orders@example.com", 1);
    setenv("OMS_WEBHOOK_URL", "https://hooks.example.com/oms", 1);
    setenv("OMS_WEBHOOK_SECRET", "0123456789abcdef0123456789abcdef", 1);
    assert_int_equal(notify_config(&cfg, err), OMS_OK);
    assert_true(cfg.enabled[NOTIFY_LOG] && cfg.enabled[NOTIFY_EMAIL] &&
                cfg.enabled[NOTIFY_WEBHOOK]);
    assert_string_equal(cfg.smtp_url, "smtp://127.0.0.1:1025");
    assert_string_equal(cfg.webhook_secret, "0123456789abcdef0123456789abcdef");
    setenv("OMS_SMTP_TLS", "require", 1);
    assert_int_equal(notify_config(&cfg, err), OMS_OK);
    assert_int_equal(cfg.smtp_tls, NOTIFY_TLS_REQUIRE);
    setenv("OMS_SMTP_TLS", "starttls", 1);
    refused("OMS_SMTP_TLS=\"starttls\" is invalid: expected auto, require or off");
}

static void test_refused(void **state)
{
    (void)state;
    setenv("OMS_NOTIFY_CHANNELS", "log,sms", 1);
    refused("OMS_NOTIFY_CHANNELS=\"log,sms\" is invalid: \"sms\" is not a channel");
    setenv("OMS_NOTIFY_CHANNELS", " , ", 1);
    refused("OMS_NOTIFY_CHANNELS=\" , \" is invalid: \"\" is not a channel");
    setenv("OMS_NOTIFY_CHANNELS", "email", 1);
    refused("OMS_SMTP_URL=\"\" is invalid: the email channel needs");
    setenv("OMS_SMTP_URL", "http://mail", 1);
    refused("OMS_SMTP_URL=\"http://mail\" is invalid");
    setenv("OMS_SMTP_URL", "smtps://mail.example.com", 1);
    refused("OMS_SMTP_FROM=\"\" is invalid");
    setenv("OMS_SMTP_FROM", "orders", 1);
    refused("OMS_SMTP_FROM=\"orders\" is invalid");
    setenv("OMS_NOTIFY_CHANNELS", "webhook", 1);
    refused("OMS_WEBHOOK_URL=\"\" is invalid");
    setenv("OMS_WEBHOOK_URL", "http://hooks", 1);
    refused("OMS_WEBHOOK_SECRET is not set");
    setenv("OMS_WEBHOOK_SECRET", "short", 1);
    refused("OMS_WEBHOOK_SECRET is too short: 5 bytes, at least 32 needed (openssl rand -hex 32)");
    setenv("OMS_WEBHOOK_SECRET", "0123456789abcdef0123456789abcde", 1);
    refused("OMS_WEBHOOK_SECRET is too short: 31 bytes, at least 32 needed");
    setenv("OMS_WEBHOOK_SECRET", "change-me-webhook-secret-0123456789", 1);
    refused("OMS_WEBHOOK_SECRET is a placeholder, not a secret: set it to a random value of at "
            "least 32 bytes (openssl rand -hex 32)");
    /* With the channel off, a secret that is set must still be sound. */
    setenv("OMS_NOTIFY_CHANNELS", "log", 1);
    refused("OMS_WEBHOOK_SECRET is a placeholder, not a secret");
    unsetenv("OMS_WEBHOOK_SECRET");
    /* An SMTP login needs its password, and not a placeholder. */
    setenv("OMS_SMTP_USER", "oms", 1);
    refused("OMS_SMTP_PASSWORD is not set: OMS_SMTP_USER is set and needs its password");
    setenv("OMS_SMTP_PASSWORD", "", 1);
    refused("OMS_SMTP_PASSWORD is empty: set the password, or leave it out");
    setenv("OMS_SMTP_PASSWORD", "Password1", 1);
    refused("OMS_SMTP_PASSWORD is a placeholder, not a password");
    unsetenv("OMS_SMTP_USER");
    unsetenv("OMS_SMTP_PASSWORD");
    setenv("OMS_NOTIFY_MAX_ATTEMPTS", "0", 1);
    refused("OMS_NOTIFY_MAX_ATTEMPTS");
    unsetenv("OMS_NOTIFY_MAX_ATTEMPTS");
    setenv("OMS_NOTIFY_RETRY_BASE_MS", "5000", 1);
    setenv("OMS_NOTIFY_RETRY_MAX_MS", "1000", 1);
    refused("OMS_NOTIFY_RETRY_MAX_MS=1000 is invalid: it must not be below "
            "OMS_NOTIFY_RETRY_BASE_MS (5000)");
    unsetenv("OMS_NOTIFY_RETRY_MAX_MS");
    unsetenv("OMS_NOTIFY_RETRY_BASE_MS");
    setenv("OMS_NOTIFY_TIMEOUT_MS", "1000", 1);
    setenv("OMS_NOTIFY_CONNECT_TIMEOUT_MS", "2000", 1);
    refused("OMS_NOTIFY_CONNECT_TIMEOUT_MS=2000 is invalid: it must not exceed");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults, clear_env),
        cmocka_unit_test_setup(test_every_channel, clear_env),
        cmocka_unit_test_setup(test_refused, clear_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
