/*
 * test_config.c - defaults with an empty environment, values taken from the
 * environment, and for each bad value OMS_EINVAL with a message that names
 * the variable, the value and what is expected. Each test starts from an
 * environment without any OMS_ variable the module reads.
 */
#include "testenv.h"

#include "config.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const VARS[] = {
    "OMS_NATS_URL",          "OMS_NATS_USER",        "OMS_NATS_PASSWORD",      "OMS_PG_DSN",
    "OMS_REDIS_URL",         "OMS_HTTP_ADDR",        "OMS_ADMIN_TOKEN",        "OMS_CURRENCY",
    "OMS_STREAM_REPLICAS",   "OMS_STREAM_MAX_AGE_H", "OMS_DUPLICATE_WINDOW_S", "OMS_BATCH_MAX",
    "OMS_BATCH_WAIT_MS",     "OMS_LOG_LEVEL",        "OMS_TEST_INT",           "OMS_TEST_DBL",
    "OMS_NATS_INBOX_PREFIX", "OMS_NATS_TLS_CA",      "OMS_NATS_TLS_CERT",      "OMS_NATS_TLS_KEY",
};

/* 64 bytes, as `openssl rand -hex 32` gives. */
#define GOOD_TOKEN "3f9c1e7a5b2d4f6081a3c5e7092b4d6f8a1c3e5f7092b4d6e8f0a2c4e6f8091b"

static int clear_env(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof VARS / sizeof VARS[0]; i++)
        unsetenv(VARS[i]);
    return 0;
}

static void set(const char *name, const char *value)
{
    assert_int_equal(setenv(name, value, 1), 0);
}

static void test_defaults(void **state)
{
    (void)state;
    oms_config cfg;
    char err[CONFIG_ERR_LEN] = "";
    assert_int_equal(config_load(&cfg, "ingest", 18081, err), OMS_OK);
    assert_string_equal(err, "");
    assert_string_equal(cfg.service, "ingest");
    assert_string_equal(cfg.nats_url, "nats://127.0.0.1:14222");
    assert_null(cfg.nats_user);
    assert_null(cfg.nats_password);
    assert_string_equal(cfg.pg_dsn, "postgresql://oms@127.0.0.1:15432/oms");
    assert_string_equal(cfg.redis_url, "redis://127.0.0.1:16379/0");
    assert_string_equal(cfg.http_addr, "127.0.0.1:18081");
    assert_null(cfg.admin_token);
    assert_string_equal(cfg.currency, "USD");
    assert_int_equal(cfg.stream_replicas, 1);
    assert_int_equal(cfg.stream_max_age_ms, 168LL * 3600 * 1000);
    assert_int_equal(cfg.dup_window_ms, 120000);
    assert_int_equal(cfg.batch_max, 256);
    assert_int_equal(cfg.batch_wait_ms, 50);
    assert_int_equal(cfg.log_level, LOG_INFO);
}

/* An empty variable counts as unset. */
static void test_empty_means_default(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof VARS / sizeof VARS[0]; i++)
        set(VARS[i], "");
    oms_config cfg;
    char err[CONFIG_ERR_LEN] = "";
    assert_int_equal(config_load(&cfg, "payment", 18083, err), OMS_OK);
    assert_string_equal(cfg.nats_url, "nats://127.0.0.1:14222");
    assert_null(cfg.nats_user);
    assert_null(cfg.admin_token);
    assert_string_equal(cfg.http_addr, "127.0.0.1:18083");
    assert_string_equal(cfg.currency, "USD");
    assert_int_equal(cfg.stream_replicas, 1);
    assert_int_equal(cfg.batch_max, 256);
    assert_int_equal(cfg.log_level, LOG_INFO);
}

static void test_values_from_environment(void **state)
{
    (void)state;
    set("OMS_NATS_URL", "tls://nats.example:4222");
    set("OMS_NATS_USER", "svc");
    set("OMS_NATS_PASSWORD", "n8Qw2vLp");
    set("OMS_PG_DSN", "postgres://u:pw-u@db.example:5432/oms");
    set("OMS_REDIS_URL", "redis://cache:6379/2");
    set("OMS_HTTP_ADDR", "0.0.0.0:9000");
    set("OMS_ADMIN_TOKEN", GOOD_TOKEN);
    set("OMS_CURRENCY", "EUR");
    set("OMS_STREAM_REPLICAS", "3");
    set("OMS_STREAM_MAX_AGE_H", "1");
    set("OMS_DUPLICATE_WINDOW_S", "86400");
    set("OMS_BATCH_MAX", "4096");
    set("OMS_BATCH_WAIT_MS", "10000");
    set("OMS_LOG_LEVEL", "debug");
    oms_config cfg;
    char err[CONFIG_ERR_LEN] = "";
    assert_int_equal(config_load(&cfg, "notify", 18084, err), OMS_OK);
    assert_string_equal(cfg.nats_url, "tls://nats.example:4222");
    assert_string_equal(cfg.nats_user, "svc");
    assert_string_equal(cfg.nats_password, "n8Qw2vLp");
    assert_string_equal(cfg.pg_dsn, "postgres://u:pw-u@db.example:5432/oms");
    assert_string_equal(cfg.redis_url, "redis://cache:6379/2");
    assert_string_equal(cfg.http_addr, "0.0.0.0:9000");
    assert_string_equal(cfg.admin_token, GOOD_TOKEN);
    assert_string_equal(cfg.currency, "EUR");
    assert_int_equal(cfg.stream_replicas, 3);
    assert_int_equal(cfg.stream_max_age_ms, 3600000);
    assert_int_equal(cfg.dup_window_ms, 86400000);
    assert_int_equal(cfg.batch_max, 4096);
    assert_int_equal(cfg.batch_wait_ms, 10000);
    assert_int_equal(cfg.log_level, LOG_DEBUG);

    set("OMS_LOG_LEVEL", "warn");
    assert_int_equal(config_load(&cfg, "notify", 18084, err), OMS_OK);
    assert_int_equal(cfg.log_level, LOG_WARN);
    set("OMS_LOG_LEVEL", "error");
    assert_int_equal(config_load(&cfg, "notify", 18084, err), OMS_OK);
    assert_int_equal(cfg.log_level, LOG_ERROR);
}

/* Sets one variable to a bad value on a clean environment and checks the
 * exact message; the variable is unset again afterwards. */
static void assert_load_fails(const char *name, const char *value, const char *want_err)
{
    set(name, value);
    oms_config cfg;
    char err[CONFIG_ERR_LEN] = "";
    oms_status s = config_load(&cfg, "ingest", 18081, err);
    if (s != OMS_EINVAL)
        fail_msg("%s=\"%s\": status %d, want OMS_EINVAL", name, value, (int)s);
    assert_string_equal(err, want_err);
    unsetenv(name);
}

static void test_bad_urls(void **state)
{
    (void)state;
    assert_load_fails("OMS_NATS_URL", "http://127.0.0.1:4222",
                      "OMS_NATS_URL=\"http://127.0.0.1:4222\" is invalid: expected a URL "
                      "starting with nats://");
    assert_load_fails("OMS_NATS_URL", "127.0.0.1:4222",
                      "OMS_NATS_URL=\"127.0.0.1:4222\" is invalid: expected a URL starting "
                      "with nats://");
    assert_load_fails("OMS_PG_DSN", "host=localhost dbname=oms",
                      "OMS_PG_DSN=\"host=localhost dbname=oms\" is invalid: expected a URL "
                      "starting with postgresql://");
    assert_load_fails("OMS_PG_DSN", "mysql://oms@db/oms",
                      "OMS_PG_DSN=\"mysql://oms@db/oms\" is invalid: expected a URL starting "
                      "with postgresql://");
    assert_load_fails("OMS_REDIS_URL", "cache:6379",
                      "OMS_REDIS_URL=\"cache:6379\" is invalid: expected a URL starting with "
                      "redis://");
    assert_load_fails("OMS_HTTP_ADDR", "8080",
                      "OMS_HTTP_ADDR=\"8080\" is invalid: expected host:port such as "
                      "127.0.0.1:18081");
}

/* OMS_NATS_INBOX_PREFIX: absent is NULL (nats.c's default); a subject
 * without wildcards or empty tokens is taken as is; anything else names the
 * variable, the value and the rule. */
static void test_inbox_prefix(void **state)
{
    (void)state;
    oms_config cfg;
    char err[CONFIG_ERR_LEN] = "";
    assert_int_equal(config_load(&cfg, "ingest", 18081, err), OMS_OK);
    assert_null(cfg.nats_inbox_prefix);
    set("OMS_NATS_INBOX_PREFIX", "_INBOX.ingest-2");
    assert_int_equal(config_load(&cfg, "ingest", 18081, err), OMS_OK);
    assert_string_equal(cfg.nats_inbox_prefix, "_INBOX.ingest-2");
    static const char *const bad[] = {"_INBOX.>", "_INBOX.*", "_INBOX..a", ".a", "a.", "a b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char want[CONFIG_ERR_LEN];
        snprintf(want, sizeof want,
                 "OMS_NATS_INBOX_PREFIX=\"%s\" is invalid: expected a subject without "
                 "wildcards such as _INBOX.ingest (letters, digits, '_', '-', single dots; at "
                 "most 128)",
                 bad[i]);
        assert_load_fails("OMS_NATS_INBOX_PREFIX", bad[i], want);
    }
}

static void test_bad_currency(void **state)
{
    (void)state;
    static const char *const bad[] = {"usd", "US", "EURO", "U1D", "U D"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char want[CONFIG_ERR_LEN];
        snprintf(want, sizeof want,
                 "OMS_CURRENCY=\"%s\" is invalid: expected an ISO 4217 code such as USD", bad[i]);
        assert_load_fails("OMS_CURRENCY", bad[i], want);
    }
}

static void test_bad_replicas(void **state)
{
    (void)state;
    static const char *const bad[] = {"0",   "abc", "9", "-1",
                                      "1.5", "3 ",  "6", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char want[CONFIG_ERR_LEN];
        snprintf(want, sizeof want,
                 "OMS_STREAM_REPLICAS=\"%s\" is invalid: expected an integer from 1 to 5", bad[i]);
        assert_load_fails("OMS_STREAM_REPLICAS", bad[i], want);
    }
    oms_config cfg;
    char err[CONFIG_ERR_LEN];
    set("OMS_STREAM_REPLICAS", "5");
    assert_int_equal(config_load(&cfg, "ingest", 18081, err), OMS_OK);
    assert_int_equal(cfg.stream_replicas, 5);
}

static void test_bad_other_ints(void **state)
{
    (void)state;
    assert_load_fails("OMS_STREAM_MAX_AGE_H", "0",
                      "OMS_STREAM_MAX_AGE_H=\"0\" is invalid: expected an integer from 1 to 87600");
    assert_load_fails("OMS_STREAM_MAX_AGE_H", "87601",
                      "OMS_STREAM_MAX_AGE_H=\"87601\" is invalid: expected an integer from 1 to "
                      "87600");
    assert_load_fails("OMS_DUPLICATE_WINDOW_S", "86401",
                      "OMS_DUPLICATE_WINDOW_S=\"86401\" is invalid: expected an integer from 1 "
                      "to 86400");
    assert_load_fails("OMS_BATCH_MAX", "4097",
                      "OMS_BATCH_MAX=\"4097\" is invalid: expected an integer from 1 to 4096");
    assert_load_fails("OMS_BATCH_WAIT_MS", "0",
                      "OMS_BATCH_WAIT_MS=\"0\" is invalid: expected an integer from 1 to 10000");
}

static void test_bad_log_level(void **state)
{
    (void)state;
    assert_load_fails("OMS_LOG_LEVEL", "verbose",
                      "OMS_LOG_LEVEL=\"verbose\" is invalid: expected debug, info, warn or error");
    assert_load_fails("OMS_LOG_LEVEL", "trace",
                      "OMS_LOG_LEVEL=\"trace\" is invalid: expected debug, info, warn or error");
}

static void test_config_int_bounds(void **state)
{
    (void)state;
    int64_t v = -1;
    char err[CONFIG_ERR_LEN] = "";
    assert_int_equal(config_int("OMS_TEST_INT", 15, 10, 20, &v, err), OMS_OK);
    assert_int_equal(v, 15);
    set("OMS_TEST_INT", "");
    assert_int_equal(config_int("OMS_TEST_INT", 15, 10, 20, &v, err), OMS_OK);
    assert_int_equal(v, 15);
    set("OMS_TEST_INT", "10");
    assert_int_equal(config_int("OMS_TEST_INT", 15, 10, 20, &v, err), OMS_OK);
    assert_int_equal(v, 10);
    set("OMS_TEST_INT", "20");
    assert_int_equal(config_int("OMS_TEST_INT", 15, 10, 20, &v, err), OMS_OK);
    assert_int_equal(v, 20);

    static const char *const bad[] = {"9",     "21",  "-10",  "abc",
                                      "12abc", "1e1", "0x10", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        set("OMS_TEST_INT", bad[i]);
        v = -7;
        assert_int_equal(config_int("OMS_TEST_INT", 15, 10, 20, &v, err), OMS_EINVAL);
        assert_int_equal(v, -7);
        char want[CONFIG_ERR_LEN];
        snprintf(want, sizeof want,
                 "OMS_TEST_INT=\"%s\" is invalid: expected an integer from 10 to 20", bad[i]);
        assert_string_equal(err, want);
    }

    /* The full int64 range, and one past it. */
    set("OMS_TEST_INT", "-9223372036854775808");
    assert_int_equal(config_int("OMS_TEST_INT", 0, INT64_MIN, INT64_MAX, &v, err), OMS_OK);
    assert_true(v == INT64_MIN);
    set("OMS_TEST_INT", "9223372036854775807");
    assert_int_equal(config_int("OMS_TEST_INT", 0, INT64_MIN, INT64_MAX, &v, err), OMS_OK);
    assert_true(v == INT64_MAX);
    set("OMS_TEST_INT", "9223372036854775808");
    assert_int_equal(config_int("OMS_TEST_INT", 0, INT64_MIN, INT64_MAX, &v, err), OMS_EINVAL);
    assert_string_equal(err, "OMS_TEST_INT=\"9223372036854775808\" is invalid: expected an "
                             "integer from -9223372036854775808 to 9223372036854775807");
}

static void test_config_double_bounds(void **state)
{
    (void)state;
    double d = -1;
    char err[CONFIG_ERR_LEN] = "";
    assert_int_equal(config_double("OMS_TEST_DBL", 0.25, 0, 1, &d, err), OMS_OK);
    assert_true(d == 0.25);
    set("OMS_TEST_DBL", "0.5");
    assert_int_equal(config_double("OMS_TEST_DBL", 0.25, 0, 1, &d, err), OMS_OK);
    assert_true(d == 0.5);
    set("OMS_TEST_DBL", "1");
    assert_int_equal(config_double("OMS_TEST_DBL", 0.25, 0, 1, &d, err), OMS_OK);
    assert_true(d == 1.0);
    static const char *const bad[] = {"1.5", "-0.1", "nan", "inf", "abc", "0.5x", "1e999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        set("OMS_TEST_DBL", bad[i]);
        d = -7;
        assert_int_equal(config_double("OMS_TEST_DBL", 0.25, 0, 1, &d, err), OMS_EINVAL);
        assert_true(d == -7);
        char want[CONFIG_ERR_LEN];
        snprintf(want, sizeof want, "OMS_TEST_DBL=\"%s\" is invalid: expected a number from 0 to 1",
                 bad[i]);
        assert_string_equal(err, want);
    }
}

static void test_config_str(void **state)
{
    (void)state;
    assert_string_equal(config_str("OMS_TEST_INT", "fallback"), "fallback");
    assert_null(config_str("OMS_TEST_INT", NULL));
    set("OMS_TEST_INT", "");
    assert_string_equal(config_str("OMS_TEST_INT", "fallback"), "fallback");
    set("OMS_TEST_INT", "given");
    assert_string_equal(config_str("OMS_TEST_INT", "fallback"), "given");
}

/* Placeholders, whatever their case or punctuation; chosen values are not. */
static void test_placeholders(void **state)
{
    (void)state;
    static const char *const placeholders[] = {"change-me",
                                               "changeme",
                                               "CHANGE_ME",
                                               "change-me-admin-token",
                                               "Change.Me.123",
                                               "replace-me-please",
                                               "secret",
                                               "Secret123",
                                               "password",
                                               "PASSWORD1",
                                               "example",
                                               "an-example-webhook-secret-of-40-bytes-xx",
                                               "placeholder",
                                               "my-placeholder-value",
                                               "default",
                                               "admin",
                                               "test",
                                               "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                                               "00000000",
                                               "----",
                                               "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                                               NULL};
    static const char *const chosen[] = {
        GOOD_TOKEN, "n8Qw2vLp", "pw-ingest", "secretariat-9f2", "testament-of-orders-0c1d",
        "p0a1b2c3", NULL};
    for (const char *const *p = placeholders; *p; p++)
        if (!config_is_placeholder(*p))
            fail_msg("\"%s\" is not taken as a placeholder", *p);
    for (const char *const *p = chosen; *p; p++)
        if (config_is_placeholder(*p))
            fail_msg("\"%s\" is taken as a placeholder", *p);
    assert_false(config_is_placeholder(NULL));
}

/* The admin token: a placeholder or fewer than 32 bytes stop the process,
 * named, the value never quoted; unset is fine (admin endpoints answer 401). */
static void test_admin_token_floor(void **state)
{
    (void)state;
    oms_config cfg;
    char err[CONFIG_ERR_LEN] = "";
    assert_int_equal(config_load(&cfg, "ingest", 18081, err), OMS_OK);
    assert_null(cfg.admin_token);
    assert_load_fails("OMS_ADMIN_TOKEN", "change-me-admin-token",
                      "OMS_ADMIN_TOKEN is a placeholder, not a secret: set it to a random value "
                      "of at least 32 bytes (openssl rand -hex 32)");
    assert_load_fails("OMS_ADMIN_TOKEN", "kZ81pQv0-3t9Lm2x",
                      "OMS_ADMIN_TOKEN is too short: 16 bytes, at least 32 needed (openssl rand "
                      "-hex 32)");
    /* 31 bytes is one short; 32 is enough. */
    assert_load_fails("OMS_ADMIN_TOKEN", "3f9c1e7a5b2d4f6081a3c5e7092b4d6",
                      "OMS_ADMIN_TOKEN is too short: 31 bytes, at least 32 needed (openssl rand "
                      "-hex 32)");
    set("OMS_ADMIN_TOKEN", "3f9c1e7a5b2d4f6081a3c5e7092b4d6f");
    assert_int_equal(config_load(&cfg, "ingest", 18081, err), OMS_OK);
}

/* The secret checks the services use for their HMAC keys. */
static void test_check_secret(void **state)
{
    (void)state;
    char err[CONFIG_ERR_LEN] = "";
    assert_int_equal(config_check_secret("OMS_X_SECRET", NULL, NULL, err), OMS_OK);
    assert_int_equal(config_check_secret("OMS_X_SECRET", NULL, "mode y signs with it", err),
                     OMS_EINVAL);
    assert_string_equal(err, "OMS_X_SECRET is not set: mode y signs with it (at least 32 bytes)");
    assert_int_equal(config_check_secret("OMS_X_SECRET", "secret", NULL, err), OMS_EINVAL);
    assert_string_equal(err, "OMS_X_SECRET is a placeholder, not a secret: set it to a random "
                             "value of at least 32 bytes (openssl rand -hex 32)");
    assert_int_equal(config_check_secret("OMS_X_SECRET", GOOD_TOKEN, "y", err), OMS_OK);
}

/* NATS: a user needs its password; empty or a placeholder is refused. */
static void test_nats_password(void **state)
{
    (void)state;
    oms_config cfg;
    char err[CONFIG_ERR_LEN] = "";
    set("OMS_NATS_USER", "payment");
    assert_int_equal(config_load(&cfg, "payment", 18083, err), OMS_EINVAL);
    assert_string_equal(err, "OMS_NATS_PASSWORD is not set: OMS_NATS_USER=payment needs its "
                             "password");
    assert_load_fails("OMS_NATS_PASSWORD", "",
                      "OMS_NATS_PASSWORD is empty: set the password, or leave it out");
    assert_load_fails("OMS_NATS_PASSWORD", "change-me",
                      "OMS_NATS_PASSWORD is a placeholder, not a password: set the real one "
                      "(generate it with openssl rand -hex 24)");
    set("OMS_NATS_PASSWORD", "p41c9be0d7a2f");
    assert_int_equal(config_load(&cfg, "payment", 18083, err), OMS_OK);
    assert_string_equal(cfg.nats_password, "p41c9be0d7a2f");
}

/* The passwords inside OMS_PG_DSN (read by libpq's parser, URL or query
 * parameter) and OMS_REDIS_URL. */
static void test_dsn_passwords(void **state)
{
    (void)state;
    oms_config cfg;
    char err[CONFIG_ERR_LEN] = "";
    static const char *const pg_placeholders[] = {
        "postgresql://ingest:change-me@127.0.0.1:5432/oms",
        "postgresql://ingest@db/oms?password=changeme",
        "postgres://ingest:password@db/oms",
    };
    for (size_t i = 0; i < sizeof pg_placeholders / sizeof pg_placeholders[0]; i++)
        assert_load_fails("OMS_PG_DSN", pg_placeholders[i],
                          "the password in OMS_PG_DSN is a placeholder, not a password: set the "
                          "real one (generate it with openssl rand -hex 24)");
    /* libpq reads "ingest:@db" as no password, "?password=" as an empty one. */
    assert_load_fails("OMS_PG_DSN", "postgresql://ingest@db/oms?password=",
                      "the password in OMS_PG_DSN is empty: set the password, or leave it out");
    assert_load_fails("OMS_PG_DSN", "postgresql://ingest@db/oms?nosuch=1",
                      "OMS_PG_DSN is invalid: invalid URI query parameter: \"nosuch\"");
    assert_load_fails("OMS_REDIS_URL", "redis://:change-me@cache:6379/0",
                      "the password in OMS_REDIS_URL is a placeholder, not a password: set the "
                      "real one (generate it with openssl rand -hex 24)");
    assert_load_fails("OMS_REDIS_URL", "redis://default:@cache:6379/0",
                      "the password in OMS_REDIS_URL is empty: set the password, or leave it out");
    set("OMS_PG_DSN", "postgresql://ingest:pw-ingest@db/oms");
    set("OMS_REDIS_URL", "redis://default:r9f2c1a0b@cache:6379/0");
    assert_int_equal(config_load(&cfg, "ingest", 18081, err), OMS_OK);
    set("OMS_PG_DSN", "postgresql://oms@127.0.0.1:15432/oms"); /* no password: peer, .pgpass */
    assert_int_equal(config_load(&cfg, "ingest", 18081, err), OMS_OK);
}

/* TLS files: each must be readable; a certificate needs its key. */
static void test_tls_files(void **state)
{
    (void)state;
    oms_config cfg;
    char err[CONFIG_ERR_LEN] = "";
    char dir[] = "/tmp/oms-config-tls-XXXXXX", ca[64], cert[64], key[64];
    assert_non_null(mkdtemp(dir));
    snprintf(ca, sizeof ca, "%s/ca.pem", dir);
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    const char *files[] = {ca, cert, key};
    for (size_t i = 0; i < 3; i++) {
        FILE *f = fopen(files[i], "w");
        assert_non_null(f);
        fclose(f);
    }
    assert_int_equal(config_load(&cfg, "ingest", 18081, err), OMS_OK);
    assert_null(cfg.nats_tls_ca);
    assert_null(cfg.nats_tls_cert);
    set("OMS_NATS_TLS_CA", ca);
    set("OMS_NATS_TLS_CERT", cert);
    set("OMS_NATS_TLS_KEY", key);
    assert_int_equal(config_load(&cfg, "ingest", 18081, err), OMS_OK);
    assert_string_equal(cfg.nats_tls_ca, ca);
    assert_string_equal(cfg.nats_tls_cert, cert);
    assert_string_equal(cfg.nats_tls_key, key);
    unsetenv("OMS_NATS_TLS_KEY");
    assert_int_equal(config_load(&cfg, "ingest", 18081, err), OMS_EINVAL);
    assert_string_equal(err, "OMS_NATS_TLS_KEY is not set: a client certificate needs both "
                             "OMS_NATS_TLS_CERT and OMS_NATS_TLS_KEY");
    unsetenv("OMS_NATS_TLS_CERT");
    char want[CONFIG_ERR_LEN];
    snprintf(want, sizeof want,
             "OMS_NATS_TLS_CA=\"%s/none.pem\" is invalid: No such file or directory", dir);
    char missing[80];
    snprintf(missing, sizeof missing, "%s/none.pem", dir);
    assert_load_fails("OMS_NATS_TLS_CA", missing, want);
    for (size_t i = 0; i < 3; i++)
        unlink(files[i]);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults, clear_env),
        cmocka_unit_test_setup(test_empty_means_default, clear_env),
        cmocka_unit_test_setup(test_values_from_environment, clear_env),
        cmocka_unit_test_setup(test_bad_urls, clear_env),
        cmocka_unit_test_setup(test_bad_currency, clear_env),
        cmocka_unit_test_setup(test_inbox_prefix, clear_env),
        cmocka_unit_test_setup(test_bad_replicas, clear_env),
        cmocka_unit_test_setup(test_bad_other_ints, clear_env),
        cmocka_unit_test_setup(test_bad_log_level, clear_env),
        cmocka_unit_test_setup(test_config_int_bounds, clear_env),
        cmocka_unit_test_setup(test_config_double_bounds, clear_env),
        cmocka_unit_test_setup(test_config_str, clear_env),
        cmocka_unit_test_setup(test_placeholders, clear_env),
        cmocka_unit_test_setup(test_admin_token_floor, clear_env),
        cmocka_unit_test_setup(test_check_secret, clear_env),
        cmocka_unit_test_setup(test_nats_password, clear_env),
        cmocka_unit_test_setup(test_dsn_passwords, clear_env),
        cmocka_unit_test_setup(test_tls_files, clear_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
