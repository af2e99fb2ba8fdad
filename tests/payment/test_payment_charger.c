/*
 * test_payment_charger.c - the http gateway's retry rules: the backoff
 * schedule, what each answer does to a payment, how answers are classified,
 * and the charge requests themselves, sent to a local server.
 */
#include "testenv.h"

#include "http.h"
#include "payment.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define GATEWAY_PORT 19684

static void test_backoff_schedule(void **state)
{
    (void)state;
    static const int64_t want[] = {100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000};
    for (int n = 1; n <= 10; n++)
        assert_int_equal(payment_backoff_ms(n), want[n - 1]);
    assert_int_equal(payment_backoff_ms(0), 100);
    assert_int_equal(payment_backoff_ms(64), 30000);
    assert_int_equal(payment_backoff_ms(1000000), 30000);
}

static payment_charge charge(payment_gateway_result r, int attempts, const char *detail)
{
    payment_charge c;
    memset(&c, 0, sizeof c);
    c.result = r;
    c.attempts = attempts;
    snprintf(c.detail, sizeof c.detail, "%s", detail);
    return c;
}

static void test_outcomes(void **state)
{
    (void)state;
    payment_outcome o;
    payment_charge c = charge(PAYMENT_GW_ACCEPTED, 3, "");
    payment_charge_outcome(&c, 5, &o);
    assert_string_equal(o.status, "submitted");
    assert_string_equal(o.reason, "");

    c = charge(PAYMENT_GW_REJECTED, 1, "card expired");
    payment_charge_outcome(&c, 5, &o);
    assert_string_equal(o.status, "failed");
    assert_string_equal(o.reason, "card expired");

    c = charge(PAYMENT_GW_ERROR, 1, "HTTP 503");
    payment_charge_outcome(&c, 5, &o);
    assert_string_equal(o.status, "pending");
    assert_int_equal(o.retry_in_ms, 100);
    c.attempts = 4;
    payment_charge_outcome(&c, 5, &o);
    assert_string_equal(o.status, "pending");
    assert_int_equal(o.retry_in_ms, 800);
    c.attempts = 5;
    payment_charge_outcome(&c, 5, &o);
    assert_string_equal(o.status, "failed");
    assert_string_equal(o.reason, "payment gateway unavailable after 5 attempts");
    c.attempts = 1;
    payment_charge_outcome(&c, 1, &o);
    assert_string_equal(o.reason, "payment gateway unavailable after 1 attempt");
}

static void test_classify(void **state)
{
    (void)state;
    assert_int_equal(payment_gateway_classify(false, 0), PAYMENT_GW_ERROR);
    static const long accepted[] = {200, 201, 202, 204};
    static const long rejected[] = {400, 401, 402, 404, 409, 422};
    static const long retried[] = {408, 429, 500, 502, 503, 504, 301, 100};
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(payment_gateway_classify(true, accepted[i]), PAYMENT_GW_ACCEPTED);
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(payment_gateway_classify(true, rejected[i]), PAYMENT_GW_REJECTED);
    for (size_t i = 0; i < 8; i++)
        assert_int_equal(payment_gateway_classify(true, retried[i]), PAYMENT_GW_ERROR);
}

static void reason_of(const char *body, long status, const char *want)
{
    char out[PAYMENT_REASON_MAX + 1];
    payment_gateway_reason(body, strlen(body), status, out, sizeof out);
    assert_string_equal(out, want);
}

static void test_reason_from_refusal_body(void **state)
{
    (void)state;
    reason_of("{\"error\":\"amount_cents must be positive\"}", 422,
              "amount_cents must be positive");
    reason_of("{\"message\":\"m\",\"error\":\"e\",\"reason\":\"r\"}", 402, "r");
    reason_of("{\"message\":\"card expired\"}", 402, "card expired");
    reason_of("{\"error\":5}", 400, "payment gateway refused the charge (HTTP 400)");
    reason_of("{\"error\":\"\"}", 400, "payment gateway refused the charge (HTTP 400)");
    reason_of("<html>nope</html>", 404, "payment gateway refused the charge (HTTP 404)");
    reason_of("", 403, "payment gateway refused the charge (HTTP 403)");
}

/* ---- requests, against a local server -------------------------------- */

typedef struct seen {
    pthread_mutex_t lock;
    int requests;
    char keys[4][64];
    char bodies[4][512];
} seen;

/* Answers by amount: 1000 -> 202, 1422 -> 422 with a reason, else 503. */
static void h_charges(void *ctx, const http_request *req, http_response *resp)
{
    seen *s = ctx;
    size_t len = 0;
    const char *body = http_body(req, &len);
    const char *key = http_header(req, "Idempotency-Key");
    json_t *json = json_loadb(body, len, 0, NULL);
    json_int_t amount = json_integer_value(json_object_get(json, "amount_cents"));
    json_decref(json);
    pthread_mutex_lock(&s->lock);
    if (s->requests < 4) {
        snprintf(s->keys[s->requests], 64, "%s", key ? key : "");
        snprintf(s->bodies[s->requests], 512, "%s", body);
    }
    s->requests++;
    pthread_mutex_unlock(&s->lock);
    if (amount == 1000)
        http_respond_json(resp, 202, json_pack("{s:s}", "status", "pending"));
    else if (amount == 1422)
        http_respond_error(resp, 422, "card number is invalid");
    else
        http_respond_error(resp, 503, "down for maintenance");
}

static const char *body_for(seen *s, const char *key)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s->keys[i], key) == 0)
            return s->bodies[i];
    return "";
}

static void test_charges_sent_in_parallel(void **state)
{
    (void)state;
    seen s = {.requests = 0};
    http_server *srv = NULL;
    char addr[32];
    pthread_mutex_init(&s.lock, NULL);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", GATEWAY_PORT);
    assert_int_equal(http_server_create(&srv, addr, NULL), OMS_OK);
    assert_int_equal(http_route(srv, "POST", "/charges", false, h_charges, &s), OMS_OK);
    assert_int_equal(http_server_start(srv), OMS_OK);

    payment_settings cfg;
    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.charges_url, sizeof cfg.charges_url, "http://%s/charges", addr);
    snprintf(cfg.callback_url, sizeof cfg.callback_url, "http://127.0.0.1:1/callbacks/payment");
    cfg.timeout_ms = 5000;
    cfg.connect_timeout_ms = 1000;
    payment_charge c[3];
    memset(c, 0, sizeof c);
    const char *ids[] = {"pay-accepted", "pay-refused", "pay-down"};
    const int64_t amounts[] = {1000, 1422, 1503};
    for (int i = 0; i < 3; i++) {
        c[i].payment_id = ids[i];
        c[i].order_id = "ORD-\"1\"";
        c[i].currency = "EUR";
        c[i].amount_cents = amounts[i];
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    assert_int_equal(payment_gateway_send(&cfg, c, 3), OMS_OK);
    http_server_destroy(srv);

    assert_int_equal(s.requests, 3);
    assert_int_equal(c[0].result, PAYMENT_GW_ACCEPTED);
    assert_int_equal(c[0].http_status, 202);
    assert_int_equal(c[1].result, PAYMENT_GW_REJECTED);
    assert_int_equal(c[1].http_status, 422);
    assert_string_equal(c[1].detail, "card number is invalid");
    assert_int_equal(c[2].result, PAYMENT_GW_ERROR);
    assert_int_equal(c[2].http_status, 503);
    assert_string_equal(c[2].detail, "HTTP 503");
    /* Idempotency-Key is the payment id; the body is the documented JSON. */
    assert_string_equal(body_for(&s, "pay-accepted"),
                        "{\"payment_id\":\"pay-accepted\",\"order_id\":\"ORD-\\\"1\\\"\","
                        "\"amount_cents\":1000,\"currency\":\"EUR\","
                        "\"callback_url\":\"http://127.0.0.1:1/callbacks/payment\"}");
    assert_non_null(strstr(body_for(&s, "pay-down"), "\"payment_id\":\"pay-down\""));

    /* Nobody listening: an error without an HTTP status, retried later. */
    snprintf(cfg.charges_url, sizeof cfg.charges_url, "http://%s/charges", addr);
    assert_int_equal(payment_gateway_send(&cfg, c, 1), OMS_OK);
    assert_int_equal(c[0].result, PAYMENT_GW_ERROR);
    assert_int_equal(c[0].http_status, 0);
    assert_string_equal(c[0].detail, curl_easy_strerror(CURLE_COULDNT_CONNECT));
    curl_global_cleanup();
    pthread_mutex_destroy(&s.lock);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_schedule),
        cmocka_unit_test(test_outcomes),
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_reason_from_refusal_body),
        cmocka_unit_test(test_charges_sent_in_parallel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
