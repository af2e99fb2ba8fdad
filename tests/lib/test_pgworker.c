/*
 * test_pgworker.c - the worker thread without a database: it keeps trying
 * to connect (backing off), never runs a round without a connection, and
 * stops promptly when asked, even in the middle of its backoff.
 */
#include "testenv.h"

#include "pgworker.h"

#include <stdatomic.h>

static atomic_int rounds;

static oms_status round_fn(void *ctx, PGconn **conn, bool *more)
{
    (void)ctx, (void)conn;
    atomic_fetch_add(&rounds, 1);
    *more = false;
    return OMS_OK;
}

static void test_no_database_no_round_and_prompt_stop(void **state)
{
    (void)state;
    pgworker *w = NULL;
    /* Port 1 on loopback: nothing listens, the connection is refused at once. */
    assert_int_equal(pgworker_start(&w, "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1",
                                    "test", "test-pgworker", 50, round_fn, NULL),
                     OMS_OK);
    oms_sleep_ms(1200, NULL); /* several attempts, backoff grown past 400 ms */
    int64_t start = oms_mono_ms();
    pgworker_stop(w);
    assert_true(oms_mono_ms() - start < 500);
    assert_int_equal(atomic_load(&rounds), 0);
    pgworker_stop(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_database_no_round_and_prompt_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
