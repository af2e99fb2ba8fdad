/*
 * test_payment_mock.c - the mock gateway's decision: FNV-1a as published,
 * deterministic, bounded by the rate, and close to it over many orders.
 */
#include "testenv.h"

#include "payment.h"

#include <stdio.h>
#include <string.h>

static uint64_t fnv(const char *s)
{
    return payment_fnv1a64(PAYMENT_FNV_OFFSET, s, strlen(s));
}

/* The reference vectors of the FNV-1a 64-bit specification. */
static void test_fnv1a64_reference_vectors(void **state)
{
    (void)state;
    assert_true(fnv("") == 0xcbf29ce484222325ULL);
    assert_true(fnv("a") == 0xaf63dc4c8601ec8cULL);
    assert_true(fnv("foobar") == 0x85944171f73967e8ULL);
    /* Hashing in pieces is hashing the concatenation. */
    uint64_t h = payment_fnv1a64(PAYMENT_FNV_OFFSET, "foo", 3);
    assert_true(payment_fnv1a64(h, "bar", 3) == fnv("foobar"));
}

/* fmix64 is a bijection with fixed point 0; one bit in moves about half out. */
static void test_fmix64(void **state)
{
    (void)state;
    assert_true(payment_fmix64(0) == 0);
    uint64_t a = payment_fmix64(0x1000), b = payment_fmix64(0x1001);
    assert_in_range(__builtin_popcountll(a ^ b), 16, 48);
    /* The top bits FNV-1a leaves almost alone now differ. */
    assert_true((payment_fmix64(fnv("oms:ORD-000001")) >> 56) !=
                    (payment_fmix64(fnv("oms:ORD-000002")) >> 56) ||
                (payment_fmix64(fnv("oms:ORD-000002")) >> 56) !=
                    (payment_fmix64(fnv("oms:ORD-000003")) >> 56));
}

/* The draw is fmix64(FNV-1a("<seed>:<order_id>")), top 53 bits over 2^53. */
static void test_draw_is_the_documented_mapping(void **state)
{
    (void)state;
    uint64_t h = payment_fmix64(fnv("oms:ORD-1"));
    double want = (double)(h >> 11) / 9007199254740992.0;
    assert_true(payment_mock_draw("oms", "ORD-1") == want);
    assert_true(payment_mock_draw("oms", "ORD-1") == payment_mock_draw("oms", "ORD-1"));
    assert_true(payment_mock_draw("oms", "ORD-1") != payment_mock_draw("other", "ORD-1"));
    assert_true(payment_mock_draw("oms", "ORD-1") != payment_mock_draw("oms", "ORD-2"));
}

static void order_id(int i, char out[32])
{
    snprintf(out, 32, "ORD-%06d", i);
}

static void test_rate_zero_fails_all_and_one_succeeds_all(void **state)
{
    (void)state;
    char id[32];
    for (int i = 0; i < 10000; i++) {
        order_id(i, id);
        double d = payment_mock_draw("oms", id);
        assert_true(d >= 0.0 && d < 1.0);
        assert_false(payment_mock_succeeds("oms", id, 0.0));
        assert_true(payment_mock_succeeds("oms", id, 1.0));
    }
}

/* Same seed and order, same answer; and an order that succeeds at a rate
 * succeeds at every higher rate (a threshold on one draw). */
static void test_decision_is_deterministic_and_monotonic(void **state)
{
    (void)state;
    char id[32];
    for (int i = 0; i < 2000; i++) {
        order_id(i, id);
        bool at_half = payment_mock_succeeds("seed-a", id, 0.5);
        assert_int_equal(at_half, payment_mock_succeeds("seed-a", id, 0.5));
        if (at_half)
            assert_true(payment_mock_succeeds("seed-a", id, 0.75));
    }
}

/* 10,000 sequential order ids at 0.9 with a fixed seed: within 1% of 9,000
 * (the binomial standard deviation is 30), every block of 1,000 within 5% of
 * 900 (no runs of similar ids deciding alike), and exactly the count this
 * hash gives, so a change to the documented hash cannot go unnoticed. */
static void test_rate_is_met_over_many_orders(void **state)
{
    (void)state;
    char id[32];
    int succeeded = 0, seeded_differently = 0, block = 0;
    for (int i = 0; i < 10000; i++) {
        order_id(i, id);
        bool ok = payment_mock_succeeds("oms-test", id, 0.9);
        succeeded += ok;
        block += ok;
        seeded_differently += payment_mock_succeeds("oms-test-2", id, 0.9);
        if (i % 1000 == 999) {
            assert_in_range(block, 850, 950);
            block = 0;
        }
    }
    fprintf(stderr, "succeeded at 0.9: %d and %d of 10000\n", succeeded, seeded_differently);
    assert_in_range(succeeded, 8900, 9100);
    assert_in_range(seeded_differently, 8900, 9100);
    assert_int_equal(succeeded, 8967);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fnv1a64_reference_vectors),
        cmocka_unit_test(test_fmix64),
        cmocka_unit_test(test_draw_is_the_documented_mapping),
        cmocka_unit_test(test_rate_zero_fails_all_and_one_succeeds_all),
        cmocka_unit_test(test_decision_is_deterministic_and_monotonic),
        cmocka_unit_test(test_rate_is_met_over_many_orders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
