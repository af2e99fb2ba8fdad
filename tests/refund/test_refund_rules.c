/*
 * test_refund_rules.c - the refund rules without a database: how much a
 * request refunds (exact cents, the last cent, one cent too many, 0 for the
 * full remaining amount, amounts held by refunds in flight), the sentences
 * that say why not, the idempotency key and field checks, the restock lines
 * as stored, and the worker's backoff.
 */
#include "testenv.h"

#include "refund.h"

#include <stdlib.h>
#include <string.h>

static void test_exact_amounts(void **state)
{
    (void)state;
    int64_t amount = -1;
    assert_int_equal(refund_decide(5000, 0, 0, 1234, &amount), REFUND_ACCEPT);
    assert_int_equal(amount, 1234);
    assert_int_equal(refund_decide(5000, 0, 0, 5000, &amount), REFUND_ACCEPT);
    assert_int_equal(amount, 5000);
    assert_int_equal(refund_decide(5000, 1000, 2000, 1999, &amount), REFUND_ACCEPT);
    assert_int_equal(amount, 1999);
}

static void test_last_cent_and_one_too_many(void **state)
{
    (void)state;
    int64_t amount = -1;
    /* 49.99 refunded: the last cent can go, two cannot. */
    assert_int_equal(refund_decide(5000, 4999, 0, 1, &amount), REFUND_ACCEPT);
    assert_int_equal(amount, 1);
    amount = -1;
    assert_int_equal(refund_decide(5000, 4999, 0, 2, &amount), REFUND_EXCEEDS);
    assert_int_equal(amount, -1); /* untouched when refused */
    assert_int_equal(refund_decide(5000, 0, 0, 5001, &amount), REFUND_EXCEEDS);
    /* A pending refund holds its amount. */
    assert_int_equal(refund_decide(5000, 0, 4999, 2, &amount), REFUND_EXCEEDS);
    assert_int_equal(refund_decide(5000, 4000, 1000, 1, &amount), REFUND_NOTHING_LEFT);
    assert_int_equal(refund_decide(5000, 5000, 0, 0, &amount), REFUND_NOTHING_LEFT);
    assert_int_equal(refund_decide(0, 0, 0, 0, &amount), REFUND_NOTHING_LEFT);
}

static void test_zero_means_full_remaining(void **state)
{
    (void)state;
    int64_t amount = -1;
    assert_int_equal(refund_decide(5000, 0, 0, 0, &amount), REFUND_ACCEPT);
    assert_int_equal(amount, 5000);
    assert_int_equal(refund_decide(5000, 1234, 66, 0, &amount), REFUND_ACCEPT);
    assert_int_equal(amount, 3700);
    assert_int_equal(refund_decide(5000, 4999, 0, 0, &amount), REFUND_ACCEPT);
    assert_int_equal(amount, 1);
}

static void test_sentences(void **state)
{
    (void)state;
    char out[REFUND_TEXT_LEN];
    refund_verdict_text(REFUND_EXCEEDS, "ORD-1001", "USD", 5000, 0, 0, 8000, out, sizeof out);
    assert_string_equal(out, "refund of 80.00 USD exceeds the 50.00 USD still refundable on "
                             "ORD-1001");
    refund_verdict_text(REFUND_EXCEEDS, "ORD-7", "EUR", 123456, 100000, 3456, 20001, out,
                        sizeof out);
    assert_string_equal(out, "refund of 200.01 EUR exceeds the 200.00 EUR still refundable on "
                             "ORD-7");
    refund_verdict_text(REFUND_NOTHING_LEFT, "ORD-2", "USD", 5000, 4000, 1000, 1, out, sizeof out);
    assert_string_equal(out, "nothing is left to refund on ORD-2: 50.00 USD paid, 50.00 USD "
                             "refunded or being refunded");
}

static void test_keys(void **state)
{
    (void)state;
    char long_key[200];
    memset(long_key, 'k', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = '\0';
    assert_null(refund_key_invalid("a"));
    assert_null(refund_key_invalid("order 17 / refund #2"));
    assert_string_equal(refund_key_invalid(""), "idempotency_key is empty");
    assert_non_null(refund_key_invalid(long_key));
    long_key[REFUND_KEY_MAX] = '\0';
    assert_null(refund_key_invalid(long_key));
    assert_non_null(refund_key_invalid("tab\there"));
    assert_non_null(refund_key_invalid("caf\xc3\xa9"));
}

static Oms__V1__RefundRequested request(const char *order_id, int64_t amount_cents)
{
    Oms__V1__RefundRequested ev = OMS__V1__REFUND_REQUESTED__INIT;
    ev.idempotency_key = "k";
    ev.order_id = (char *)order_id;
    ev.amount_cents = amount_cents;
    return ev;
}

static void test_fields(void **state)
{
    (void)state;
    char why[256];
    Oms__V1__RefundRequested ev = request("ORD-1", 100);
    assert_true(refund_request_valid(&ev, why, sizeof why));
    ev = request("", 100);
    assert_false(refund_request_valid(&ev, why, sizeof why));
    assert_string_equal(why, "order_id is empty");
    ev = request("ORD-1", -1);
    assert_false(refund_request_valid(&ev, why, sizeof why));
    assert_string_equal(why, "amount_cents -1 must be from 0 (the full remaining amount) to "
                             "100000000000000");
    Oms__V1__RefundLine line = OMS__V1__REFUND_LINE__INIT, *lines[] = {&line};
    line.sku = "SKU-1";
    line.qty = 0;
    ev = request("ORD-1", 0);
    ev.lines = lines;
    ev.n_lines = 1;
    assert_false(refund_request_valid(&ev, why, sizeof why));
    assert_string_equal(why, "lines name goods to put back on hand, but restock is false");
    ev.restock = true;
    assert_false(refund_request_valid(&ev, why, sizeof why));
    assert_string_equal(why, "lines[0].qty 0 must be a positive number of units");
    line.qty = 2;
    assert_true(refund_request_valid(&ev, why, sizeof why));
    char *json = refund_lines_json(&ev);
    assert_string_equal(json, "[{\"sku\":\"SKU-1\",\"qty\":2}]");
    free(json);
}

static void test_backoff(void **state)
{
    (void)state;
    static const int64_t want[] = {200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000};
    for (int n = 1; n <= 10; n++)
        assert_int_equal(refund_backoff_ms(n), want[n - 1]);
    assert_int_equal(refund_backoff_ms(1000000), 30000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_amounts),
        cmocka_unit_test(test_last_cent_and_one_too_many),
        cmocka_unit_test(test_zero_means_full_remaining),
        cmocka_unit_test(test_sentences),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_backoff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
