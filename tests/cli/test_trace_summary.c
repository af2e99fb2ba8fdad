/*
 * test_trace_summary.c - the one-line summaries of cli/trace.c, on events
 * decoded by pbjson as `omsctl trace` reads them: lines with quantities,
 * money with its currency, reasons and gateway references, and the refund
 * amounts (this one and the total so far).
 */
#include "testenv.h"

#include "pbjson.h"
#include "trace.h"

#include <string.h>

static void expect(const char *subject, const char *event_json, const char *want)
{
    char out[512];
    json_error_t err;
    json_t *ev = json_loads(event_json, 0, &err);
    if (ev == NULL)
        fail_msg("bad fixture for %s: %s", subject, err.text);
    trace_summary(subject, ev, out, sizeof out);
    assert_string_equal(out, want);
    json_decref(ev);
}

static void test_lines_and_totals(void **state)
{
    (void)state;
    expect("order.created",
           "{\"lines\":[{\"sku\":\"A\",\"qty\":2},{\"sku\":\"B\",\"qty\":1}],"
           "\"total_cents\":123456,\"currency\":\"USD\"}",
           "2 lines: A x2, B x1; total 1,234.56 USD");
    expect("stock.committed", "{\"lines\":[{\"sku\":\"A\",\"qty\":3}]}", "1 line: A x3");
    expect("order.paid", "{\"total_cents\":700,\"currency\":\"EUR\"}", "paid 7.00 EUR");
}

static void test_payments_and_reasons(void **state)
{
    (void)state;
    expect("payment.settled",
           "{\"status\":\"PAYMENT_STATUS_SUCCEEDED\",\"amount_cents\":995,\"currency\":\"USD\","
           "\"reason\":\"\",\"gateway_ref\":\"ch_1\"}",
           "succeeded 9.95 USD; gateway ref ch_1");
    expect("payment.settled",
           "{\"status\":\"PAYMENT_STATUS_FAILED\",\"amount_cents\":995,\"currency\":\"USD\","
           "\"reason\":\"card declined\",\"gateway_ref\":\"\"}",
           "failed 9.95 USD: card declined");
    expect("stock.rejected", "{\"reason\":\"SKU-7: 3 requested, 1 available\"}",
           "SKU-7: 3 requested, 1 available");
    expect("order.failed", "{\"reason\":\"payment failed: card declined\"}",
           "payment failed: card declined");
    expect(
        "import.completed",
        "{\"import_id\":\"imp-1\",\"rows\":10,\"valid_rows\":9,\"rejected_rows\":1,\"orders\":4}",
        "import imp-1: 10 rows, 9 valid, 1 rejected, 4 orders");
}

static void test_refunds(void **state)
{
    (void)state;
    expect("refund.requested", "{\"idempotency_key\":\"k1\",\"amount_cents\":0}",
           "key k1, everything left");
    expect("refund.requested", "{\"idempotency_key\":\"k2\",\"amount_cents\":250}", "key k2, 2.50");
    expect("refund.processed",
           "{\"amount_cents\":250,\"refunded_total_cents\":750,\"currency\":\"USD\","
           "\"gateway_ref\":\"re_9\"}",
           "refunded 2.50 USD, total 7.50 USD; gateway ref re_9");
    expect("order.refunded",
           "{\"status\":\"refunded\",\"amount_cents\":250,\"refunded_total_cents\":1000,"
           "\"currency\":\"USD\"}",
           "refunded, 2.50 USD (refunded so far 10.00 USD)");
    expect("refund.rejected", "{\"reason\":\"refund of 80.00 USD exceeds 50.00 USD\"}",
           "refund of 80.00 USD exceeds 50.00 USD");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines_and_totals),
        cmocka_unit_test(test_payments_and_reasons),
        cmocka_unit_test(test_refunds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
