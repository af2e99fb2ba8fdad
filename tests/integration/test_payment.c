/*
 * test_payment.c - the payment service against the real stack: stock.reserved
 * in, exactly one payment.settled per order out. The mock gateway settles
 * 1,000 orders as the documented hash predicts; the http gateway (the fake
 * gateway of tests/support/fake_gateway.c, a real HTTP server) settles
 * through signed callbacks, with retries, refusals, forged, stale and
 * replayed callbacks, and a kill -9 between the charge and its callback.
 */
#include "testenv.h"

#include "hmac.h"
#include "oms_events.pb-c.h"
#include "outbox.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define PORT 19083
#define GATEWAY_PORT 19583
#define DEAD_PORT 19584 /* nothing listens there */
#define SECRET "whsec_integration_0123456789abcdef0123"
#define CALLBACK_URL "http://127.0.0.1:19083/callbacks/payment"

#ifndef OMS_FAKE_GATEWAY
#define OMS_FAKE_GATEWAY "tests/fake_gateway"
#endif

static const char *const SCHEMAS[] = {"payment", NULL};

#define HTTP_MODE "OMS_PAYMENT_GATEWAY=http", "OMS_PAYMENT_WEBHOOK_SECRET=" SECRET
#define GATEWAY_URL "OMS_PAYMENT_GATEWAY_URL=http://127.0.0.1:19583"

static const char *const HTTP_ENV[] = {HTTP_MODE, GATEWAY_URL, NULL};

/* The fake gateway this test started, killed by teardown if a test failed. */
static pid_t gateway_pid;

/* ---- publishing stock.reserved --------------------------------------- */

static void publish_reserved(js_conn *js, const char *order_id, int64_t total_cents,
                             char event_id[37])
{
    Oms__V1__StockReserved ev = OMS__V1__STOCK_RESERVED__INIT;
    Oms__V1__EventMeta meta;
    outbox_meta_init(&meta, event_id, "test", order_id, "");
    ev.meta = &meta;
    ev.order_id = (char *)order_id;
    ev.customer_id = "C-1";
    ev.total_cents = total_cents;
    ev.currency = "USD";
    testenv_publish_event(js, "stock.reserved", event_id, &ev.base);
}

static void publish_raw(js_conn *js, const char *event_id, const void *data, size_t len)
{
    const char *headers[] = {"Nats-Msg-Id", event_id, "Oms-Type", "oms.v1.StockReserved", NULL};
    testenv_publish(js, "stock.reserved", data, len, headers);
}

/* ---- reading back ----------------------------------------------------- */

typedef struct settled {
    size_t n;
    Oms__V1__PaymentSettled **ev;
} settled;

/* The payment.settled events of this test's orders (ids starting "PT"):
 * other people's tests share the stack and publish their own. */
static settled read_settled(js_conn *js)
{
    settled s = {0, NULL};
    testenv_msg *msgs = NULL;
    size_t n = testenv_stream_read(js, "PAYMENTS", "payment.settled", &msgs);
    s.ev = calloc(n ? n : 1, sizeof *s.ev);
    for (size_t i = 0; i < n; i++) {
        Oms__V1__PaymentSettled *ev = oms__v1__payment_settled__unpack(NULL, msgs[i].len,
                                                                       msgs[i].data);
        if (ev == NULL || ev->meta == NULL || strcmp(ev->meta->producer, "payment") != 0 ||
            strncmp(ev->order_id, "PT", 2) != 0) {
            fprintf(stderr, "ignoring a payment.settled this test did not cause\n");
            oms__v1__payment_settled__free_unpacked(ev, NULL);
            continue;
        }
        assert_string_equal(ev->meta->event_id, msgs[i].msg_id);
        assert_string_equal(ev->meta->correlation_id, ev->order_id);
        s.ev[s.n++] = ev;
    }
    testenv_msgs_free(msgs, n);
    return s;
}

static void settled_free(settled *s)
{
    for (size_t i = 0; i < s->n; i++)
        oms__v1__payment_settled__free_unpacked(s->ev[i], NULL);
    free(s->ev);
}

static long settled_count(js_conn *js)
{
    settled s = read_settled(js);
    long n = (long)s.n;
    settled_free(&s);
    return n;
}

static Oms__V1__PaymentSettled *settled_for(const settled *s, const char *order_id)
{
    Oms__V1__PaymentSettled *found = NULL;
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->ev[i]->order_id, order_id) != 0)
            continue;
        assert_null(found); /* one per order */
        found = s->ev[i];
    }
    assert_non_null(found);
    return found;
}

/* A column of the order's payment, as text; caller frees. */
static char *payment_text(PGconn *pg, const char *column, const char *order_id)
{
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT %s FROM payment.payments WHERE order_id = '%s'", column,
             order_id);
    PGresult *r = PQexec(pg, sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(r), 1);
    char *v = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

static void assert_payment(PGconn *pg, const char *order_id, const char *column, const char *want)
{
    char *got = payment_text(pg, column, order_id);
    if (strcmp(got, want) != 0)
        fprintf(stderr, "%s of %s: want \"%s\", got \"%s\"\n", column, order_id, want, got);
    assert_string_equal(got, want);
    free(got);
}

static char *payment_id_of(PGconn *pg, const char *order_id)
{
    return payment_text(pg, "payment_id", order_id);
}

/* Waits until the order's payment has status; fails the test otherwise. */
static void wait_status(PGconn *pg, const char *order_id, const char *status, int timeout_ms)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM payment.payments WHERE order_id = '%s' AND status = '%s'",
             order_id, status);
    assert_int_equal(testenv_wait_pg(pg, sql, 1, timeout_ms), 1);
}

static void wait_outbox_empty(PGconn *pg)
{
    assert_int_equal(testenv_wait_pg(pg, "SELECT count(*) FROM payment.outbox", 0, 10000), 0);
}

static void wait_settled_count(js_conn *js, long want)
{
    long n = -1;
    for (int i = 0; i < 100 && (n = settled_count(js)) != want; i++)
        usleep(100000);
    assert_int_equal(n, want);
}

static double metric(const char *series)
{
    return testenv_metric(PORT, series);
}

/* ---- posting callbacks ------------------------------------------------ */

static size_t keep_body(char *p, size_t size, size_t n, void *arg)
{
    char **body = arg;
    size_t old = *body ? strlen(*body) : 0;
    char *b = realloc(*body, old + size * n + 1);
    memcpy(b + old, p, size * n);
    b[old + size * n] = '\0';
    *body = b;
    return size * n;
}

/* POSTs body to the callback endpoint with Oms-Signature: signature (none
 * when NULL); returns the status, the answer in *answer (caller frees). */
static long post_callback(const char *body, const char *signature, char **answer)
{
    char url[128], header[256];
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    long status = 0;
    char *got = NULL;
    CURL *curl = curl_easy_init();
    snprintf(url, sizeof url, "http://127.0.0.1:%d/callbacks/payment", PORT);
    if (signature != NULL) {
        snprintf(header, sizeof header, "%s: %s", HMAC_HEADER, signature);
        headers = curl_slist_append(headers, header);
    }
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, keep_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &got);
    if (curl_easy_perform(curl) == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    if (answer != NULL)
        *answer = got ? got : strdup("");
    else
        free(got);
    return status;
}

/* Signs body with secret at now + offset_s and posts it; expects status and
 * an answer containing want (when not NULL). */
static void callback_expect(const char *body, const char *secret, int64_t offset_s, long status,
                            const char *want)
{
    char signature[HMAC_HEX_LEN + 64], *answer = NULL;
    const char *sig = NULL;
    if (secret != NULL) {
        assert_int_equal(hmac_header_value(secret, oms_now_ms() / 1000 + offset_s, body,
                                           strlen(body), signature, sizeof signature),
                         OMS_OK);
        sig = signature;
    }
    long got = post_callback(body, sig, &answer);
    if (got != status || (want != NULL && strstr(answer, want) == NULL))
        fprintf(stderr, "callback %s\n  want %ld \"%s\", got %ld %s\n", body, status,
                want ? want : "", got, answer);
    assert_int_equal(got, status);
    if (want != NULL)
        assert_non_null(strstr(answer, want));
    free(answer);
}

/* ---- the fake gateway ------------------------------------------------- */

static void gateway_start(const char *mode, int delay_ms)
{
    char port[32], delay[32], mode_arg[64];
    const char *path = getenv("OMS_FAKE_GATEWAY") ? getenv("OMS_FAKE_GATEWAY") : OMS_FAKE_GATEWAY;
    snprintf(port, sizeof port, "port=%d", GATEWAY_PORT);
    snprintf(delay, sizeof delay, "delay_ms=%d", delay_ms);
    snprintf(mode_arg, sizeof mode_arg, "mode=%s", mode);
    const char *args[] = {port, "secret=" SECRET, mode_arg, delay, NULL};
    gateway_pid = testenv_peer_start(path, "fake_gateway", GATEWAY_PORT, args);
}

/* SIGTERM and a clean exit (0: no leak under ASan either). */
static void gateway_stop(void)
{
    testenv_peer_stop(&gateway_pid);
}

static int teardown(void **state)
{
    testenv_peer_kill(&gateway_pid);
    return testenv_cleanup(state);
}

static json_t *gateway_stats(void)
{
    return testenv_http_json(GATEWAY_PORT, "/stats");
}

static json_t *charge_stats(json_t *stats, const char *payment_id)
{
    json_t *c = json_object_get(json_object_get(stats, "charges"), payment_id);
    assert_non_null(c);
    return c;
}

static long json_int_at(json_t *array, size_t i)
{
    return (long)json_integer_value(json_array_get(array, i));
}

/* The gateway saw exactly `attempts` charges for the payment, each with
 * Idempotency-Key = payment id and the right callback URL and amount. */
static void assert_charged(json_t *stats, const char *payment_id, long attempts, long amount)
{
    json_t *c = charge_stats(stats, payment_id);
    json_t *keys = json_object_get(c, "idempotency_keys");
    assert_int_equal(json_integer_value(json_object_get(c, "attempts")), attempts);
    assert_int_equal(json_array_size(keys), 1);
    assert_string_equal(json_string_value(json_array_get(keys, 0)), payment_id);
    assert_string_equal(json_string_value(json_object_get(c, "callback_url")), CALLBACK_URL);
    assert_int_equal(json_integer_value(json_object_get(c, "amount_cents")), amount);
    assert_string_equal(json_string_value(json_object_get(c, "currency")), "USD");
}

/* The callbacks the gateway sent for payment_id, as "kind:status,..." */
static char *callbacks_of(json_t *stats, const char *payment_id)
{
    char *out = calloc(1, 1024);
    size_t i, len = 0;
    json_t *cb;
    json_array_foreach(json_object_get(stats, "callbacks"), i, cb)
    {
        if (strcmp(json_string_value(json_object_get(cb, "payment_id")), payment_id) != 0)
            continue;
        len += (size_t)snprintf(out + len, 1024 - len, "%s%s:%lld", len ? "," : "",
                                json_string_value(json_object_get(cb, "kind")),
                                (long long)json_integer_value(json_object_get(cb, "status")));
    }
    return out;
}

static bool gateway_done(void *arg)
{
    (void)arg;
    json_t *stats = gateway_stats();
    bool done = json_integer_value(json_object_get(stats, "deliveries_pending")) == 0;
    json_decref(stats);
    return done;
}

static void assert_callbacks(const char *payment_id, const char *want)
{
    assert_true(testenv_wait(gateway_done, NULL, 10000));
    json_t *stats = gateway_stats();
    char *got = callbacks_of(stats, payment_id);
    if (strcmp(got, want) != 0)
        fprintf(stderr, "callbacks for %s: want %s, got %s\n", payment_id, want, got);
    assert_string_equal(got, want);
    free(got);
    json_decref(stats);
}

/* ---- the mock gateway ------------------------------------------------- */

/* The documented draw, written again here: FNV-1a-64 of "<seed>:<order>",
 * MurmurHash3 fmix64, top 53 bits over 2^53, below the rate. */
static bool predicted_success(const char *seed, const char *order_id, double rate)
{
    char key[128];
    uint64_t h = 0xcbf29ce484222325ULL;
    snprintf(key, sizeof key, "%s:%s", seed, order_id);
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return (double)(h >> 11) / 9007199254740992.0 < rate;
}

#define MOCK_ORDERS 1000

static void check_mock_event(const Oms__V1__PaymentSettled *ev, const char *cause, int64_t amount,
                             bool success)
{
    char ref[32];
    snprintf(ref, sizeof ref, "mock-%.8s", ev->payment_id);
    assert_string_equal(ev->meta->causation_id, cause);
    assert_int_equal(ev->amount_cents, amount);
    assert_string_equal(ev->currency, "USD");
    assert_int_equal(ev->attempts, 1);
    assert_string_equal(ev->gateway_ref, ref);
    assert_int_equal(strlen(ev->payment_id), 36);
    assert_int_equal(ev->status, success ? OMS__V1__PAYMENT_STATUS__PAYMENT_STATUS_SUCCEEDED
                                         : OMS__V1__PAYMENT_STATUS__PAYMENT_STATUS_FAILED);
    assert_string_equal(ev->reason, success ? "" : "card declined (mock gateway)");
}

/* An undecodable message ("poison-garbage") and a negative total (its id in
 * neg), for dead letters. */
static void publish_poison(js_conn *js, char neg[37])
{
    uint8_t buf[256];
    Oms__V1__StockReserved bad = OMS__V1__STOCK_RESERVED__INIT;
    Oms__V1__EventMeta meta;
    publish_raw(js, "poison-garbage", "garbage", 7);
    outbox_meta_init(&meta, neg, "test", "PTM-NEG", "");
    bad.meta = &meta;
    bad.order_id = "PTM-NEG";
    bad.total_cents = -5;
    size_t len = oms__v1__stock_reserved__pack(&bad, buf);
    publish_raw(js, neg, buf, len);
}

/* Every order settled once, as predicted; returns how many succeeded. */
static long check_mock_stream(js_conn *js, char causes[][37])
{
    char order_id[32];
    long succeeded = 0;
    settled s = read_settled(js);
    assert_int_equal(s.n, MOCK_ORDERS);
    for (int i = 0; i < MOCK_ORDERS; i++) {
        snprintf(order_id, sizeof order_id, "PTM-%04d", i);
        bool want = predicted_success("it-seed", order_id, 0.9);
        check_mock_event(settled_for(&s, order_id), causes[i], 100 + i, want);
        succeeded += want;
    }
    settled_free(&s);
    return succeeded;
}

/* 1,000 orders: exactly 1,000 payment.settled, the succeeded ones exactly
 * those the documented hash predicts; a stock.reserved redelivered under a
 * new event id charges nothing; poison is dead-lettered. */
static void test_mock_settles_each_order_once_as_predicted(void **state)
{
    (void)state;
    static const char *const env[] = {"OMS_PAYMENT_GATEWAY=mock", "OMS_PAYMENT_SEED=it-seed",
                                      "OMS_PAYMENT_SUCCESS_RATE=0.9", "OMS_PAYMENT_LATENCY_MS=20",
                                      NULL};
    static char causes[MOCK_ORDERS][37];
    char order_id[32], again[37], neg[37];
    long predicted = 0;
    testenv_reset(SCHEMAS);
    pid_t pid = testenv_service_start("payment", PORT, env);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();
    for (int i = 0; i < MOCK_ORDERS; i++) {
        snprintf(order_id, sizeof order_id, "PTM-%04d", i);
        publish_reserved(js, order_id, 100 + i, causes[i]);
        predicted += predicted_success("it-seed", order_id, 0.9);
    }
    assert_in_range(predicted, 850, 950);
    /* Counted by this test's order ids: the stack is shared, and another
     * team's test may publish stock.reserved of its own meanwhile. */
    assert_int_equal(testenv_wait_pg(pg,
                                     "SELECT count(*) FROM payment.payments"
                                     " WHERE order_id LIKE 'PTM-%'",
                                     MOCK_ORDERS, 30000),
                     MOCK_ORDERS);
    wait_settled_count(js, MOCK_ORDERS);

    /* Order PTM-0007 again under a new event id, and two poison messages. */
    publish_reserved(js, "PTM-0007", 999999, again);
    publish_poison(js, neg);
    assert_true(testenv_durable_settled(js, "STOCK", "payment", 10000));
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM payment.payments"
                                         " WHERE order_id LIKE 'PTM-%'"),
                     MOCK_ORDERS);
    assert_payment(pg, "PTM-0007", "amount_cents", "107");
    wait_outbox_empty(pg);
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM payment.dead_letters"), 2);
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM payment.dead_letters WHERE reason ="
                                         " 'stock.reserved: total_cents must not be negative'"),
                     1);
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM payment.dead_letters WHERE reason ="
                                         " 'stock.reserved: not a valid oms.v1.StockReserved'"),
                     1);

    long succeeded = check_mock_stream(js, causes);
    assert_int_equal(succeeded, predicted);
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM payment.payments"
                                         " WHERE status = 'succeeded' AND order_id LIKE 'PTM-%'"),
                     predicted);
    /* Exact when no one else's stock.reserved reached this service. */
    assert_true(metric("oms_payments_total{status=\"succeeded\"}") == (double)succeeded);
    assert_true(metric("oms_payments_total{status=\"failed\"}") ==
                (double)(MOCK_ORDERS - succeeded));
    /* Nothing left behind on the durable once every order is settled; the
     * lag gauge holds the age of the last event applied (at most a minute). */
    double pending = -1;
    for (int i = 0; i < 100 && pending != 0; i++, usleep(50000))
        pending = metric("oms_consumer_pending{consumer=\"payment-stock-reserved\"}");
    assert_true(pending == 0);
    double lag = metric("oms_consumer_lag_seconds{consumer=\"payment-stock-reserved\"}");
    assert_true(lag >= 0 && lag < 60);

    char *body = NULL;
    assert_int_equal(testenv_http("GET", PORT, "/payments/PTM-0007", NULL, &body), 200);
    assert_non_null(
        strstr(body, "\"order_id\":\"PTM-0007\",\"amount_cents\":107,\"currency\":\"USD\""));
    assert_non_null(strstr(body, "\"attempts\":1,\"gateway_ref\":\"mock-"));
    free(body);
    assert_int_equal(testenv_http("GET", PORT, "/payments/NO-SUCH-ORDER", NULL, NULL), 404);
    PQfinish(pg);
    js_conn_destroy(js);
    testenv_service_stop(pid);
}

/* ---- the http gateway ------------------------------------------------- */

/* What the callback endpoint refuses, naming the field, and the replay it
 * accepts without change; ok is the payment of order_id, succeeded. */
static void check_callback_refusals(PGconn *pg, const char *order_id, const char *ok)
{
    char body[256];
    snprintf(body, sizeof body, "{\"payment_id\":\"%s\",\"status\":\"failed\"}", ok);
    callback_expect(body, NULL, 0, 401, "missing Oms-Signature header");
    callback_expect("not json", SECRET, 0, 400, "body is not valid JSON");
    callback_expect("{\"status\":\"succeeded\"}", SECRET, 0, 400, "payment_id is required");
    snprintf(body, sizeof body, "{\"payment_id\":\"%s\",\"status\":\"maybe\"}", ok);
    callback_expect(body, SECRET, 0, 400, "status is required");
    callback_expect("{\"payment_id\":\"no-such-payment\",\"status\":\"succeeded\"}", SECRET, 0, 404,
                    "no payment no-such-payment");
    snprintf(body, sizeof body, "{\"payment_id\":\"%s\",\"status\":\"failed\"}", ok);
    callback_expect(body, SECRET, 0, 200, "already settled");
    assert_payment(pg, order_id, "status || '/' || reason", "succeeded/");
    assert_true(metric("oms_payment_callbacks_total{result=\"unauthorized\"}") == 1);
    assert_true(metric("oms_payment_callbacks_total{result=\"bad_request\"}") == 3);
    assert_true(metric("oms_payment_callbacks_total{result=\"unknown\"}") == 1);
    assert_true(metric("oms_payment_callbacks_total{result=\"replay\"}") == 1);
}

/* Success, a decline by callback, a refusal (4xx) at charge time; then the
 * callback endpoint refuses what it must, naming the field. */
static void test_http_success_decline_and_refusal(void **state)
{
    (void)state;
    char e1[37], e2[37], e3[37], e4[37];
    testenv_reset(SCHEMAS);
    gateway_start("normal", 100);
    pid_t pid = testenv_service_start("payment", PORT, HTTP_ENV);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();
    publish_reserved(js, "PTH-OK", 2500, e1);
    publish_reserved(js, "PTH-FUNDS", 1013, e2);
    publish_reserved(js, "PTH-REFUSED", 742, e3);
    publish_reserved(js, "PTH-FREE", 0, e4);
    wait_status(pg, "PTH-OK", "succeeded", 15000);
    wait_status(pg, "PTH-FUNDS", "failed", 15000);
    wait_status(pg, "PTH-REFUSED", "failed", 15000);
    wait_status(pg, "PTH-FREE", "succeeded", 15000);
    wait_outbox_empty(pg);
    wait_settled_count(js, 4);

    char *ok = payment_id_of(pg, "PTH-OK"), *funds = payment_id_of(pg, "PTH-FUNDS");
    char *zero = payment_id_of(pg, "PTH-REFUSED"), ref[32];
    settled s = read_settled(js);
    assert_int_equal(s.n, 4);
    Oms__V1__PaymentSettled *ev = settled_for(&s, "PTH-OK");
    snprintf(ref, sizeof ref, "fgw-%.8s", ok);
    assert_int_equal(ev->status, OMS__V1__PAYMENT_STATUS__PAYMENT_STATUS_SUCCEEDED);
    assert_string_equal(ev->payment_id, ok);
    assert_string_equal(ev->gateway_ref, ref);
    assert_string_equal(ev->reason, "");
    assert_string_equal(ev->meta->causation_id, e1);
    assert_int_equal(ev->amount_cents, 2500);
    assert_int_equal(ev->attempts, 1);
    ev = settled_for(&s, "PTH-FUNDS");
    assert_int_equal(ev->status, OMS__V1__PAYMENT_STATUS__PAYMENT_STATUS_FAILED);
    assert_string_equal(ev->reason, "insufficient funds");
    assert_string_equal(ev->meta->causation_id, e2);
    ev = settled_for(&s, "PTH-REFUSED");
    assert_int_equal(ev->status, OMS__V1__PAYMENT_STATUS__PAYMENT_STATUS_FAILED);
    assert_string_equal(ev->reason, "card rejected");
    assert_string_equal(ev->gateway_ref, "");
    assert_int_equal(ev->attempts, 1);
    /* A free order has nothing to charge: settled without the gateway. */
    ev = settled_for(&s, "PTH-FREE");
    assert_int_equal(ev->status, OMS__V1__PAYMENT_STATUS__PAYMENT_STATUS_SUCCEEDED);
    assert_string_equal(ev->gateway_ref, "free");
    assert_string_equal(ev->meta->causation_id, e4);
    assert_int_equal(ev->amount_cents, 0);
    assert_int_equal(ev->attempts, 0);
    settled_free(&s);

    json_t *stats = gateway_stats();
    assert_int_equal(json_integer_value(json_object_get(stats, "charges_total")), 3);
    assert_charged(stats, ok, 1, 2500);
    assert_charged(stats, funds, 1, 1013);
    assert_charged(stats, zero, 1, 742);
    json_decref(stats);
    assert_callbacks(ok, "valid:200");
    assert_callbacks(funds, "valid:200");
    assert_callbacks(zero, "");
    assert_true(metric("oms_payment_gateway_requests_total{result=\"accepted\"}") == 2);
    assert_true(metric("oms_payment_gateway_requests_total{result=\"rejected\"}") == 1);
    assert_true(metric("oms_payment_callbacks_total{result=\"applied\"}") == 2);

    check_callback_refusals(pg, "PTH-OK", ok);
    usleep(300000);
    assert_int_equal(settled_count(js), 4);

    char *answer = NULL;
    assert_int_equal(testenv_http("GET", PORT, "/payments/PTH-FUNDS", NULL, &answer), 200);
    assert_non_null(strstr(answer, "\"status\":\"failed\",\"attempts\":1"));
    assert_non_null(strstr(answer, "\"reason\":\"insufficient funds\",\"next_attempt_at\":null"));
    free(answer);
    free(ok), free(funds), free(zero);
    PQfinish(pg);
    js_conn_destroy(js);
    testenv_service_stop(pid);
    gateway_stop();
}

/* 503, 503, then 202: three attempts with the backoff between them, one
 * charge at the gateway (one key), one payment.settled. */
static void test_http_retries_after_503(void **state)
{
    (void)state;
    char e[37];
    testenv_reset(SCHEMAS);
    gateway_start("fail_first_n=2", 100);
    pid_t pid = testenv_service_start("payment", PORT, HTTP_ENV);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();
    publish_reserved(js, "PTR-1", 4200, e);
    wait_status(pg, "PTR-1", "succeeded", 15000);
    wait_outbox_empty(pg);
    wait_settled_count(js, 1);
    char *pay = payment_id_of(pg, "PTR-1");
    assert_payment(pg, "PTR-1", "attempts", "3");
    settled s = read_settled(js);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.ev[0]->attempts, 3);
    assert_int_equal(s.ev[0]->status, OMS__V1__PAYMENT_STATUS__PAYMENT_STATUS_SUCCEEDED);
    settled_free(&s);

    json_t *stats = gateway_stats();
    assert_charged(stats, pay, 3, 4200);
    json_t *c = charge_stats(stats, pay);
    json_t *answers = json_object_get(c, "answers"), *at = json_object_get(c, "attempt_ms");
    assert_int_equal(json_int_at(answers, 0), 503);
    assert_int_equal(json_int_at(answers, 1), 503);
    assert_int_equal(json_int_at(answers, 2), 202);
    long gap1 = json_int_at(at, 1) - json_int_at(at, 0);
    long gap2 = json_int_at(at, 2) - json_int_at(at, 1);
    fprintf(stderr, "attempts %ld ms and %ld ms apart\n", gap1, gap2);
    assert_in_range(gap1, 100, 2000); /* 100 ms * 2^0 */
    assert_in_range(gap2, 200, 2000); /* 100 ms * 2^1 */
    json_decref(stats);
    assert_callbacks(pay, "valid:200");
    assert_true(metric("oms_payment_gateway_requests_total{result=\"error\"}") == 2);
    assert_true(metric("oms_payment_gateway_requests_total{result=\"accepted\"}") == 1);
    free(pay);
    PQfinish(pg);
    js_conn_destroy(js);
    testenv_service_stop(pid);
    gateway_stop();
}

/* Nobody answers: failed after OMS_PAYMENT_MAX_ATTEMPTS, published once. */
static void test_http_gateway_down_fails_after_max_attempts(void **state)
{
    (void)state;
    static const char *const env[] = {HTTP_MODE, "OMS_PAYMENT_GATEWAY_URL=http://127.0.0.1:19584",
                                      "OMS_PAYMENT_MAX_ATTEMPTS=3", NULL};
    char e[37];
    testenv_reset(SCHEMAS);
    pid_t pid = testenv_service_start("payment", PORT, env);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();
    publish_reserved(js, "PTU-1", 700, e);
    wait_status(pg, "PTU-1", "failed", 15000);
    wait_outbox_empty(pg);
    wait_settled_count(js, 1);
    assert_payment(pg, "PTU-1", "reason", "payment gateway unavailable after 3 attempts");
    settled s = read_settled(js);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.ev[0]->status, OMS__V1__PAYMENT_STATUS__PAYMENT_STATUS_FAILED);
    assert_int_equal(s.ev[0]->attempts, 3);
    assert_string_equal(s.ev[0]->reason, "payment gateway unavailable after 3 attempts");
    assert_string_equal(s.ev[0]->meta->causation_id, e);
    settled_free(&s);
    assert_true(metric("oms_payment_gateway_requests_total{result=\"error\"}") == 3);
    assert_true(metric("oms_payments_total{status=\"failed\"}") == 1);
    PQfinish(pg);
    js_conn_destroy(js);
    testenv_service_stop(pid);
}

/* Runs one order through a gateway whose callback comes late
 * enough for the test to post its own forged one first (expecting 401 with
 * want); returns the payment id (caller frees). */
static char *forged_then_settled(const char *order_id, const char *secret, int64_t offset_s,
                                 const char *want, PGconn *pg, js_conn *js)
{
    char e[37], body[256];
    publish_reserved(js, order_id, 3000, e);
    wait_status(pg, order_id, "submitted", 15000);
    char *pay = payment_id_of(pg, order_id);
    snprintf(body, sizeof body,
             "{\"payment_id\":\"%s\",\"status\":\"failed\",\"reason\":\"forged\"}", pay);
    callback_expect(body, secret, offset_s, 401, want);
    assert_payment(pg, order_id, "status || '/' || reason", "submitted/");
    wait_status(pg, order_id, "succeeded", 15000);
    wait_outbox_empty(pg);
    return pay;
}

static void test_http_bad_signature_is_refused(void **state)
{
    (void)state;
    testenv_reset(SCHEMAS);
    gateway_start("bad_signature", 1500);
    pid_t pid = testenv_service_start("payment", PORT, HTTP_ENV);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();
    char *pay = forged_then_settled("PTB-1", "not-the-secret-at-all", 0, "signature does not match",
                                    pg, js);
    assert_callbacks(pay, "bad_signature:401,valid:200");
    wait_settled_count(js, 1);
    settled s = read_settled(js);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.ev[0]->status, OMS__V1__PAYMENT_STATUS__PAYMENT_STATUS_SUCCEEDED);
    settled_free(&s);
    assert_true(metric("oms_payment_callbacks_total{result=\"unauthorized\"}") == 2);
    assert_true(metric("oms_payment_callbacks_total{result=\"applied\"}") == 1);
    free(pay);
    PQfinish(pg);
    js_conn_destroy(js);
    testenv_service_stop(pid);
    gateway_stop();
}

static void test_http_stale_signature_is_refused(void **state)
{
    (void)state;
    testenv_reset(SCHEMAS);
    gateway_start("stale", 1500);
    pid_t pid = testenv_service_start("payment", PORT, HTTP_ENV);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();
    char *pay = forged_then_settled("PTS-1", SECRET, -20 * 60,
                                    "signature timestamp is more than 15 minutes away", pg, js);
    assert_callbacks(pay, "stale:401,valid:200");
    wait_settled_count(js, 1);
    assert_true(metric("oms_payment_callbacks_total{result=\"unauthorized\"}") == 2);
    assert_true(metric("oms_payment_callbacks_total{result=\"applied\"}") == 1);
    free(pay);
    PQfinish(pg);
    js_conn_destroy(js);
    testenv_service_stop(pid);
    gateway_stop();
}

/* A gateway that decides but never calls back: once the callback is
 * overdue, the charges are looked up and settled, each exactly once. */
static void test_http_lost_callback_is_looked_up(void **state)
{
    (void)state;
    static const char *const env[] = {HTTP_MODE, GATEWAY_URL, "OMS_PAYMENT_CALLBACK_TIMEOUT_MS=400",
                                      NULL};
    char e1[37], e2[37];
    testenv_reset(SCHEMAS);
    gateway_start("no_callback", 100);
    pid_t pid = testenv_service_start("payment", PORT, env);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();
    publish_reserved(js, "PTL-OK", 1500, e1);
    publish_reserved(js, "PTL-FUNDS", 913, e2);
    wait_status(pg, "PTL-OK", "submitted", 10000);
    wait_status(pg, "PTL-OK", "succeeded", 15000);
    wait_status(pg, "PTL-FUNDS", "failed", 15000);
    wait_outbox_empty(pg);
    wait_settled_count(js, 2);

    settled s = read_settled(js);
    Oms__V1__PaymentSettled *ev = settled_for(&s, "PTL-FUNDS");
    assert_int_equal(ev->status, OMS__V1__PAYMENT_STATUS__PAYMENT_STATUS_FAILED);
    assert_string_equal(ev->reason, "insufficient funds");
    assert_string_equal(ev->meta->causation_id, e2);
    settled_free(&s);
    json_t *stats = gateway_stats();
    assert_int_equal(json_integer_value(json_object_get(stats, "charges_total")), 2);
    assert_true(json_integer_value(json_object_get(stats, "lookups")) >= 2);
    assert_int_equal(json_array_size(json_object_get(stats, "callbacks")), 0);
    json_decref(stats);
    assert_true(metric("oms_payment_lookups_total{result=\"settled\"}") == 2);
    assert_true(metric("oms_payments_total{status=\"succeeded\"}") == 1);
    usleep(1000 * 1000); /* past another timeout: nothing is looked up or settled again */
    assert_int_equal(settled_count(js), 2);
    assert_true(metric("oms_payment_lookups_total{result=\"settled\"}") == 2);
    PQfinish(pg);
    js_conn_destroy(js);
    testenv_service_stop(pid);
    gateway_stop();
}

/* The same signed callback twice: 200 both times, one payment.settled. */
static void test_http_replayed_callback_settles_once(void **state)
{
    (void)state;
    char e[37];
    testenv_reset(SCHEMAS);
    gateway_start("replay", 100);
    pid_t pid = testenv_service_start("payment", PORT, HTTP_ENV);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();
    publish_reserved(js, "PTP-1", 1999, e);
    wait_status(pg, "PTP-1", "succeeded", 15000);
    char *pay = payment_id_of(pg, "PTP-1");
    assert_callbacks(pay, "valid:200,replay:200");
    wait_outbox_empty(pg);
    usleep(300000);
    assert_int_equal(settled_count(js), 1);
    assert_true(metric("oms_payment_callbacks_total{result=\"applied\"}") == 1);
    assert_true(metric("oms_payment_callbacks_total{result=\"replay\"}") == 1);
    assert_true(metric("oms_payments_total{status=\"succeeded\"}") == 1);
    free(pay);
    PQfinish(pg);
    js_conn_destroy(js);
    testenv_service_stop(pid);
    gateway_stop();
}

static bool callback_missed(void *arg)
{
    json_t *stats = gateway_stats();
    char *seen = callbacks_of(stats, arg);
    bool missed = strstr(seen, "valid:0") != NULL;
    free(seen);
    json_decref(stats);
    return missed;
}

/* kill -9 after the gateway accepted the charge, before its callback: the
 * callback finds nobody, is retried by the gateway, and settles the payment
 * once after the restart; the charge is not sent again. */
static void test_kill9_between_charge_and_callback(void **state)
{
    (void)state;
    char e[37];
    testenv_reset(SCHEMAS);
    gateway_start("normal", 1500);
    pid_t pid = testenv_service_start("payment", PORT, HTTP_ENV);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();
    publish_reserved(js, "PTK-1", 5000, e);
    wait_status(pg, "PTK-1", "submitted", 15000);
    testenv_service_kill(pid);
    char *pay = payment_id_of(pg, "PTK-1");
    assert_true(testenv_wait(callback_missed, pay, 10000));
    pid = testenv_service_start("payment", PORT, HTTP_ENV);
    wait_status(pg, "PTK-1", "succeeded", 30000);
    wait_outbox_empty(pg);
    wait_settled_count(js, 1);
    json_t *stats = gateway_stats();
    assert_charged(stats, pay, 1, 5000);
    json_decref(stats);
    assert_true(testenv_wait(gateway_done, NULL, 10000));
    stats = gateway_stats();
    char *seen = callbacks_of(stats, pay);
    fprintf(stderr, "callbacks across the restart: %s\n", seen);
    assert_non_null(strstr(seen, "valid:0,"));
    assert_int_equal(strcmp(seen + strlen(seen) - strlen(",valid:200"), ",valid:200"), 0);
    free(seen);
    json_decref(stats);
    settled s = read_settled(js);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.ev[0]->payment_id, pay);
    assert_int_equal(s.ev[0]->status, OMS__V1__PAYMENT_STATUS__PAYMENT_STATUS_SUCCEEDED);
    assert_int_equal(s.ev[0]->attempts, 1);
    settled_free(&s);
    free(pay);
    PQfinish(pg);
    js_conn_destroy(js);
    testenv_service_stop(pid);
    gateway_stop();
}

/* ---- configuration ---------------------------------------------------- */

/* Runs the binary with env; expects exit status 2 and want on stderr. */
static void config_refused(const char *const *env, const char *want)
{
    char path[1024], out[2048];
    int fds[2];
    const char *bin = getenv("OMS_BIN_DIR") ? getenv("OMS_BIN_DIR") : getenv("OMS_BUILD_DIR");
    snprintf(path, sizeof path, "%s/services/payment/oms-payment", bin ? bin : ".");
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        unsetenv("OMS_PAYMENT_WEBHOOK_SECRET");
        for (const char *const *e = env; *e; e++)
            putenv((char *)*e);
        execl(path, path, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    ssize_t n, len = 0;
    while ((n = read(fds[0], out + len, sizeof out - 1 - (size_t)len)) > 0)
        len += n;
    out[len] = '\0';
    close(fds[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 2);
    if (strstr(out, want) == NULL)
        fprintf(stderr, "want \"%s\" in: %s\n", want, out);
    assert_non_null(strstr(out, want));
}

/* Bad settings stop the service at once, naming the variable, even with
 * the peers up (it never gets as far as connecting). */
static void test_bad_configuration_exits_2(void **state)
{
    (void)state;
    static const char *const no_secret[] = {"OMS_PAYMENT_GATEWAY=http", GATEWAY_URL, NULL};
    static const char *const rate[] = {"OMS_PAYMENT_SUCCESS_RATE=1.01", NULL};
    static const char *const gateway[] = {"OMS_PAYMENT_GATEWAY=paypal", NULL};
    config_refused(no_secret,
                   "payment: configuration error: OMS_PAYMENT_WEBHOOK_SECRET is not set");
    config_refused(rate,
                   "OMS_PAYMENT_SUCCESS_RATE=\"1.01\" is invalid: expected a number from 0 to 1");
    config_refused(gateway, "OMS_PAYMENT_GATEWAY=\"paypal\" is invalid: expected mock or http");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_configuration_exits_2),
        cmocka_unit_test_teardown(test_mock_settles_each_order_once_as_predicted, teardown),
        cmocka_unit_test_teardown(test_http_success_decline_and_refusal, teardown),
        cmocka_unit_test_teardown(test_http_retries_after_503, teardown),
        cmocka_unit_test_teardown(test_http_gateway_down_fails_after_max_attempts, teardown),
        cmocka_unit_test_teardown(test_http_bad_signature_is_refused, teardown),
        cmocka_unit_test_teardown(test_http_stale_signature_is_refused, teardown),
        cmocka_unit_test_teardown(test_http_replayed_callback_settles_once, teardown),
        cmocka_unit_test_teardown(test_http_lost_callback_is_looked_up, teardown),
        cmocka_unit_test_teardown(test_kill9_between_charge_and_callback, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
