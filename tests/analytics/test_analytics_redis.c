/*
 * test_analytics_redis.c - the Redis connection analytics' query handlers
 * and snapshot thread share, against the real Redis: one connection reused
 * while it works, a second thread waits its turn, a connection killed by the
 * server is replaced on the next acquire, an unreachable Redis gives NULL.
 */
#include "testenv.h"

#include "analytics.h"

#include <pthread.h>
#include <stdatomic.h>

static long long client_id(redis_conn *r)
{
    redisReply *rep = redisCommand(redis_context(r), "CLIENT ID");
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_INTEGER);
    long long id = rep->integer;
    freeReplyObject(rep);
    return id;
}

static void test_reused_then_replaced_when_killed(void **state)
{
    (void)state;
    analytics_redis *ar = NULL;
    assert_int_equal(analytics_redis_create(&ar, testenv_require("OMS_REDIS_URL")), OMS_OK);
    redis_conn *r = analytics_redis_acquire(ar);
    assert_non_null(r);
    long long first = client_id(r);
    analytics_redis_release(ar, r);
    r = analytics_redis_acquire(ar);
    assert_non_null(r);
    assert_true(client_id(r) == first); /* the same connection, not a new one */

    char err[REDIS_ERR_LEN];
    redis_conn *killer = NULL;
    assert_int_equal(redis_connect(&killer, testenv_require("OMS_REDIS_URL"), 2000, err), OMS_OK);
    redisReply *rep = redisCommand(redis_context(killer), "CLIENT KILL ID %lld", first);
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_INTEGER);
    assert_int_equal(rep->integer, 1);
    freeReplyObject(rep);
    redis_conn_destroy(killer);
    /* The next command on it fails, which marks it broken. */
    rep = redisCommand(redis_context(r), "PING");
    freeReplyObject(rep);
    assert_false(redis_ok(r));
    analytics_redis_release(ar, r);

    r = analytics_redis_acquire(ar);
    assert_non_null(r);
    assert_true(redis_ok(r));
    assert_true(client_id(r) > first);
    analytics_redis_release(ar, r);
    analytics_redis_release(ar, NULL);
    analytics_redis_destroy(ar);
    analytics_redis_destroy(NULL);
}

typedef struct holder {
    analytics_redis *ar;
    atomic_int holding;
} holder;

static void *hold_300ms(void *arg)
{
    holder *h = arg;
    redis_conn *r = analytics_redis_acquire(h->ar);
    atomic_store(&h->holding, 1);
    oms_sleep_ms(300, NULL);
    analytics_redis_release(h->ar, r);
    return NULL;
}

static void test_second_thread_waits_its_turn(void **state)
{
    (void)state;
    holder h = {NULL, 0};
    pthread_t t;
    assert_int_equal(analytics_redis_create(&h.ar, testenv_require("OMS_REDIS_URL")), OMS_OK);
    assert_int_equal(pthread_create(&t, NULL, hold_300ms, &h), 0);
    while (!atomic_load(&h.holding))
        oms_sleep_ms(5, NULL);
    int64_t start = oms_mono_ms();
    redis_conn *r = analytics_redis_acquire(h.ar);
    int64_t waited = oms_mono_ms() - start;
    assert_non_null(r);
    assert_true(waited >= 200 && waited < 2000);
    analytics_redis_release(h.ar, r);
    pthread_join(t, NULL);
    analytics_redis_destroy(h.ar);
}

static void test_unreachable_redis_gives_null(void **state)
{
    (void)state;
    analytics_redis *ar = NULL;
    /* Port 1 on loopback: nothing listens, the connection is refused at once. */
    assert_int_equal(analytics_redis_create(&ar, "redis://127.0.0.1:1"), OMS_OK);
    assert_null(analytics_redis_acquire(ar));
    assert_null(analytics_redis_acquire(ar)); /* the slot was given back */
    analytics_redis_destroy(ar);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reused_then_replaced_when_killed),
        cmocka_unit_test(test_second_thread_waits_its_turn),
        cmocka_unit_test(test_unreachable_redis_gives_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
