/*
 * test_trace.c - `omsctl trace` against the real stack: ingest, inventory,
 * payment (mock, always succeeds) and refund make a paid order, an order
 * failed for stock and a refunded one; omsctl reads their events back from
 * the streams. Each trace must hold exactly the expected subjects, each
 * event after the one that caused it, with the fields that matter; an
 * unknown order says so and exits 1.
 */
#include "testenv.h"

#include "oms_events.pb-c.h"
#include "outbox.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define INGEST_PORT 19961
#define INVENTORY_PORT 19962
#define PAYMENT_PORT 19963
#define REFUND_PORT 19964
#define NOTIFY_PORT 19960
#define IMPORT_ID "imp-trace"

static const char *const SCHEMAS[] = {"ingest", "inventory", "payment", "refund", "notify", NULL};
static const char *const INGEST_ENV[] = {"OMS_INGEST_SEAL_MS=200", NULL};
static const char *const PAYMENT_ENV[] = {"OMS_PAYMENT_SUCCESS_RATE=1", NULL};
static const char *const NOTIFY_ENV[] = {"OMS_NOTIFY_CHANNELS=log", NULL};

/* Runs omsctl with args; returns its exit status, stdout in *out. */
static int omsctl(const char *args, char **out)
{
    return testenv_omsctl(NULL, args, out);
}

/* The trace of order_id as JSON (omsctl trace --json), asserting exit 0. */
static json_t *trace_json(const char *order_id)
{
    char args[256], *out = NULL;
    snprintf(args, sizeof args, "trace %s --json", order_id);
    assert_int_equal(omsctl(args, &out), 0);
    json_error_t err;
    json_t *trace = json_loads(out, 0, &err);
    free(out);
    if (trace == NULL)
        fail_msg("trace --json printed no JSON: %s", err.text);
    return trace;
}

/* The subjects of the trace, space-separated, into out. */
static void subjects(const json_t *trace, char *out, size_t out_len)
{
    size_t i;
    json_t *e;
    out[0] = '\0';
    json_array_foreach(json_object_get(trace, "events"), i, e)
    {
        size_t used = strlen(out);
        snprintf(out + used, out_len - used, "%s%s", i ? " " : "",
                 json_string_value(json_object_get(e, "subject")));
    }
}

/* Every event comes after the event its causation id names, if in the trace. */
static void assert_causal(const json_t *trace)
{
    const json_t *events = json_object_get(trace, "events");
    for (size_t i = 0; i < json_array_size(events); i++) {
        const char *cause = json_string_value(
            json_object_get(json_array_get(events, i), "causation_id"));
        for (size_t j = i + 1; j < json_array_size(events); j++) {
            const char *id = json_string_value(
                json_object_get(json_array_get(events, j), "event_id"));
            if (strcmp(cause, id) == 0)
                fail_msg("event %zu is caused by event %zu, which comes after it", i, j);
        }
    }
}

static const json_t *event_at(const json_t *trace, size_t i, const char *subject)
{
    const json_t *e = json_array_get(json_object_get(trace, "events"), i);
    assert_non_null(e);
    assert_string_equal(json_string_value(json_object_get(e, "subject")), subject);
    return e;
}

static const char *field(const json_t *e, const char *name)
{
    const char *s = json_string_value(json_object_get(json_object_get(e, "event"), name));
    assert_non_null(s);
    return s;
}

static long long number(const json_t *e, const char *name)
{
    return (long long)json_integer_value(json_object_get(json_object_get(e, "event"), name));
}

static void publish_refund(js_conn *js, const char *key, const char *order_id, int64_t cents)
{
    Oms__V1__RefundRequested ev = OMS__V1__REFUND_REQUESTED__INIT;
    Oms__V1__EventMeta meta;
    char id[37];
    outbox_meta_init(&meta, id, "omsctl", order_id, "");
    ev.meta = &meta;
    ev.idempotency_key = (char *)key;
    ev.order_id = (char *)order_id;
    ev.amount_cents = cents;
    ev.reason = "damaged in transit";
    ev.requested_by = "test";
    testenv_publish_event(js, "refund.requested", id, &ev.base);
}

static void make_orders(js_conn *js, PGconn *pg)
{
    char *rows[] = {"TR-PAID,C1,TR-SKU,2,3.50", "TR-FAIL,C2,TR-SHORT,5,3.50",
                    "TR-REF,C3,TR-SKU,1,3.50", "TR-REF,C3,TR-OTHER,1,1.25"};
    testenv_load_product(js, "TR-SKU", 10);
    testenv_load_product(js, "TR-OTHER", 10);
    testenv_load_product(js, "TR-SHORT", 1);
    assert_int_equal(testenv_wait_pg(pg, "SELECT count(*) FROM inventory.products", 3, 10000), 3);
    testenv_import_rows(js, IMPORT_ID, rows, 4, 4);
    assert_int_equal(testenv_wait_pg(pg,
                                     "SELECT count(*) FROM ingest.orders"
                                     " WHERE status IN ('paid', 'failed')",
                                     3, 30000),
                     3);
    /* refund decides only on an order it has seen paid. */
    assert_int_equal(testenv_wait_pg(pg,
                                     "SELECT count(*) FROM refund.paid_orders"
                                     " WHERE order_id = 'TR-REF'",
                                     1, 30000),
                     1);
    publish_refund(js, "trace-refund-1", "TR-REF", 200);
    assert_int_equal(testenv_wait_pg(pg,
                                     "SELECT count(*) FROM ingest.orders WHERE order_id ="
                                     " 'TR-REF' AND status = 'partially_refunded'",
                                     1, 30000),
                     1);
    /* paid, failed, paid + refunded: one log line each, sent. */
    assert_int_equal(testenv_wait_pg(pg,
                                     "SELECT count(*) FROM notify.notifications"
                                     " WHERE state = 'sent'",
                                     4, 30000),
                     4);
}

/* The trace's notifications: want of them, each after the event it told
 * of (which notify names as its event id) and of that event's type, sent
 * on the log channel. They
 * are taken out of the trace so the checks of the events that follow see
 * the streams' events only. */
static void take_notifications(json_t *t, size_t want)
{
    json_t *events = json_object_get(t, "events");
    size_t found = 0;
    for (size_t i = 0; i < json_array_size(events);) {
        const json_t *e = json_array_get(events, i);
        if (strcmp(json_string_value(json_object_get(e, "producer")), "notify") != 0) {
            i++;
            continue;
        }
        const char *cause = json_string_value(json_object_get(e, "causation_id"));
        size_t at = SIZE_MAX;
        for (size_t k = 0; k < i; k++)
            if (strcmp(json_string_value(json_object_get(json_array_get(events, k), "event_id")),
                       cause) == 0)
                at = k;
        if (at == SIZE_MAX)
            fail_msg("notification %zu comes before the event %s it told of", i, cause);
        assert_string_equal(json_string_value(json_object_get(e, "subject")), "notification.log");
        assert_string_equal(field(e, "type"),
                            json_string_value(
                                json_object_get(json_array_get(events, at), "subject")));
        assert_string_equal(field(e, "state"), "sent");
        found++;
        json_array_remove(events, i);
    }
    assert_int_equal(found, want);
}

/* What the paid part of a trace holds: created, reserved, settled, then
 * committed and paid (both caused by the settlement, in either order). */
static void check_paid_part(const json_t *t, size_t first, long long cents)
{
    const json_t *created = event_at(t, first, "order.created");
    assert_int_equal(json_integer_value(json_object_get(created, "since_created_ms")), 0);
    assert_string_equal(json_string_value(json_object_get(created, "producer")), "ingest");
    assert_int_equal(number(created, "total_cents"), cents);
    const json_t *reserved = event_at(t, first + 1, "stock.reserved");
    assert_string_equal(json_string_value(json_object_get(reserved, "producer")), "inventory");
    const json_t *settled = event_at(t, first + 2, "payment.settled");
    assert_string_equal(field(settled, "status"), "PAYMENT_STATUS_SUCCEEDED");
    assert_int_equal(number(settled, "amount_cents"), cents);
    assert_true(json_integer_value(json_object_get(settled, "since_created_ms")) >= 0);
    const char *a = json_string_value(
        json_object_get(json_array_get(json_object_get(t, "events"), first + 3), "subject"));
    bool committed_first = strcmp(a, "stock.committed") == 0;
    event_at(t, first + 3, committed_first ? "stock.committed" : "order.paid");
    event_at(t, first + 4, committed_first ? "order.paid" : "stock.committed");
}

static size_t import_completed_at(const json_t *t)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(t, "events"), i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "subject")), "import.completed") == 0) {
            assert_string_equal(field(e, "import_id"), IMPORT_ID);
            assert_int_equal(number(e, "rows"), 4);
            assert_int_equal(number(e, "orders"), 3);
            return i;
        }
    }
    fail_msg("no import.completed in the trace");
    return 0;
}

/* The trace without import.completed (sealed with the order, its place
 * among the order's first events is the clock's). */
static json_t *order_events(json_t *trace)
{
    json_array_remove(json_object_get(trace, "events"), import_completed_at(trace));
    return trace;
}

static void check_paid(void)
{
    json_t *t = trace_json("TR-PAID");
    char s[1024];
    assert_true(json_is_true(json_object_get(t, "found")));
    assert_true(json_is_null(json_object_get(t, "notifications_note")));
    take_notifications(t, 1);
    assert_causal(t);
    order_events(t);
    subjects(t, s, sizeof s);
    assert_int_equal(json_array_size(json_object_get(t, "events")), 5);
    check_paid_part(t, 0, 700);
    const json_t *reserved = event_at(t, 1, "stock.reserved");
    assert_string_equal(json_string_value(json_object_get(reserved, "summary")),
                        "1 line: TR-SKU x2; total 7.00 USD");
    json_decref(t);
}

static void check_failed(void)
{
    json_t *t = trace_json("TR-FAIL");
    char s[1024];
    take_notifications(t, 1);
    assert_causal(t);
    order_events(t);
    subjects(t, s, sizeof s);
    assert_string_equal(s, "order.created stock.rejected order.failed");
    const json_t *rejected = event_at(t, 1, "stock.rejected");
    assert_string_equal(field(rejected, "reason"), "TR-SHORT: 5 requested, 1 available");
    const json_t *failed = event_at(t, 2, "order.failed");
    assert_string_equal(json_string_value(json_object_get(failed, "summary")),
                        "out of stock: TR-SHORT: 5 requested, 1 available");
    json_decref(t);
}

static void check_refunded(void)
{
    json_t *t = trace_json("TR-REF");
    take_notifications(t, 2);
    assert_causal(t);
    order_events(t);
    assert_int_equal(json_array_size(json_object_get(t, "events")), 8);
    check_paid_part(t, 0, 475);
    event_at(t, 5, "refund.requested");
    const json_t *processed = event_at(t, 6, "refund.processed");
    assert_string_equal(json_string_value(json_object_get(processed, "producer")), "refund");
    assert_int_equal(number(processed, "amount_cents"), 200);
    assert_int_equal(number(processed, "refunded_total_cents"), 200);
    const json_t *refunded = event_at(t, 7, "order.refunded");
    assert_string_equal(field(refunded, "status"), "partially_refunded");
    assert_string_equal(json_string_value(json_object_get(refunded, "summary")),
                        "partially_refunded, 2.00 USD (refunded so far 2.00 USD)");
    json_decref(t);
}

static void check_text_and_missing(void)
{
    char *out = NULL;
    assert_int_equal(omsctl("trace TR-FAIL", &out), 0);
    const char *created = strstr(out, "order.created");
    const char *rejected = strstr(out, "stock.rejected");
    assert_non_null(created);
    assert_non_null(rejected);
    assert_true(created < rejected);
    assert_non_null(strstr(out, "+0 ms"));
    assert_non_null(strstr(out, "TR-SHORT: 5 requested, 1 available"));
    free(out);
    assert_int_equal(omsctl("trace NO-SUCH-ORDER 2>&1", &out), 1);
    assert_non_null(
        strstr(out, "no event in the streams names order NO-SUCH-ORDER: there is no such order"));
    free(out);
    assert_int_equal(omsctl("trace 2>&1", &out), 2);
    free(out);
}

static void test_trace_of_paid_failed_refunded(void **state)
{
    (void)state;
    testenv_reset(SCHEMAS);
    pid_t ingest = testenv_service_start("ingest", INGEST_PORT, INGEST_ENV);
    pid_t inventory = testenv_service_start("inventory", INVENTORY_PORT, NULL);
    pid_t payment = testenv_service_start("payment", PAYMENT_PORT, PAYMENT_ENV);
    pid_t refund = testenv_service_start("refund", REFUND_PORT, NULL);
    pid_t notify = testenv_service_start("notify", NOTIFY_PORT, NOTIFY_ENV);
    setenv("OMS_NOTIFY_URL", "http://127.0.0.1:19960", 1);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();

    make_orders(js, pg);
    check_paid();
    check_failed();
    check_refunded();
    check_text_and_missing();

    PQfinish(pg);
    js_conn_destroy(js);
    testenv_service_stop(notify);
    testenv_service_stop(refund);
    testenv_service_stop(payment);
    testenv_service_stop(inventory);
    testenv_service_stop(ingest);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_trace_of_paid_failed_refunded, testenv_cleanup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
