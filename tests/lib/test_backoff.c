/*
 * test_backoff.c - the one retry policy: each wait lies in [ceiling/2,
 * ceiling], the ceiling doubles to its cap, and a success starts it over;
 * a stored row's retry delay doubles exactly from its base to its cap.
 */
#include "testenv.h"

#include "backoff.h"

static void test_waits_double_to_the_cap_with_jitter(void **state)
{
    (void)state;
    oms_backoff b = OMS_BACKOFF_INIT;
    const int64_t ceilings[] = {100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000};
    for (size_t i = 0; i < sizeof ceilings / sizeof ceilings[0]; i++) {
        int64_t wait = oms_backoff_next(&b);
        if (wait < ceilings[i] / 2 || wait > ceilings[i])
            fail_msg("wait %zu is %lld ms, outside [%lld, %lld]", i, (long long)wait,
                     (long long)ceilings[i] / 2, (long long)ceilings[i]);
    }
    assert_int_equal(b.ceiling_ms, 5000);
    oms_backoff_reset(&b);
    assert_int_equal(b.ceiling_ms, 100);
    int64_t wait = oms_backoff_next(&b);
    assert_true(wait >= 50 && wait <= 100);
}

/* Jitter: many first waits do not all land on the same millisecond. */
static void test_waits_are_spread(void **state)
{
    (void)state;
    int64_t lo = INT64_MAX, hi = 0;
    for (int i = 0; i < 200; i++) {
        oms_backoff b = {1000, 8000, 1000};
        int64_t w = oms_backoff_next(&b);
        lo = w < lo ? w : lo;
        hi = w > hi ? w : hi;
    }
    assert_true(lo >= 500 && hi <= 1000);
    assert_true(hi - lo >= 100);
}

static void test_row_delay_doubles_to_the_cap(void **state)
{
    (void)state;
    static const int64_t want[] = {250, 250, 500, 1000, 2000, 4000, 5000, 5000};
    for (int n = 0; n <= 7; n++)
        assert_int_equal(oms_backoff_delay_ms(n, 250, 5000), want[n]);
    /* A cap that is not a power-of-two multiple of the base is still exact. */
    assert_int_equal(oms_backoff_delay_ms(3, 300, 1000), 1000);
    assert_int_equal(oms_backoff_delay_ms(2, 300, 1000), 600);
    /* Huge counts stop doubling at the cap instead of overflowing. */
    assert_int_equal(oms_backoff_delay_ms(1000000, 1, INT64_MAX / 2), INT64_MAX / 2);
    assert_int_equal(oms_backoff_delay_ms(-5, 100, 30000), 100);
    /* A base above the cap is clamped to the cap. */
    assert_int_equal(oms_backoff_delay_ms(1, 9000, 5000), 5000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_waits_double_to_the_cap_with_jitter),
        cmocka_unit_test(test_waits_are_spread),
        cmocka_unit_test(test_row_delay_doubles_to_the_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
