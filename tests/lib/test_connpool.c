/*
 * test_connpool.c - the shared-connection pool against a real PostgreSQL:
 * a pool of two answers "busy" (OMS_ETIMEOUT) to a third taker after its
 * wait, a connection killed by the server is replaced by the next taker, a
 * connection given back inside a transaction is not lent again, and many
 * threads sharing two connections never hold more than two at once.
 */
#include "testenv.h"

#include "connpool.h"
#include "pg.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#define THREADS 8
#define ROUNDS 25

typedef struct counted {
    const char *dsn;
    atomic_int connects; /* connect callbacks that succeeded */
    atomic_int lent;     /* connections held by a test thread right now */
    atomic_int most_lent;
} counted;

static oms_status t_connect(void *ctx, void **conn)
{
    counted *c = ctx;
    PGconn *pg = NULL;
    oms_status s = pg_connect(&pg, c->dsn, "public", "test-connpool");
    if (s != OMS_OK)
        return s;
    atomic_fetch_add(&c->connects, 1);
    *conn = pg;
    return OMS_OK;
}

static bool t_ok(void *ctx, void *conn)
{
    (void)ctx;
    return pg_ok(conn);
}

static bool t_reusable(void *ctx, void *conn)
{
    (void)ctx;
    return PQtransactionStatus(conn) == PQTRANS_IDLE;
}

static void t_close(void *ctx, void *conn)
{
    (void)ctx;
    PQfinish(conn);
}

static const connpool_ops ops = {t_connect, t_ok, t_reusable, t_close};

static void test_exhausted_pool_answers_busy(void **state)
{
    (void)state;
    counted ctx = {.dsn = testenv_require("OMS_PG_DSN")};
    connpool *p = NULL;
    void *a = NULL, *b = NULL, *c = (void *)0x1;
    assert_int_equal(connpool_create(&p, 2, &ops, &ctx), OMS_OK);
    assert_int_equal(connpool_take(p, 0, &a), OMS_OK);
    assert_int_equal(connpool_take(p, 0, &b), OMS_OK);
    assert_ptr_not_equal(a, b);
    int64_t start = oms_mono_ms();
    assert_int_equal(connpool_take(p, 300, &c), OMS_ETIMEOUT);
    int64_t waited = oms_mono_ms() - start;
    assert_true(waited >= 290 && waited < 2000);
    assert_ptr_equal(c, (void *)0x1); /* untouched when busy */
    assert_int_equal(connpool_take(p, 0, &c), OMS_ETIMEOUT);
    connpool_give(p, b);
    assert_int_equal(connpool_take(p, 0, &c), OMS_OK);
    assert_ptr_equal(c, b); /* the idle one, not a new connection */
    assert_int_equal(atomic_load(&ctx.connects), 2);
    assert_true(connpool_up(p));
    connpool_give(p, a);
    connpool_give(p, c);
    connpool_give(p, NULL);
    connpool_destroy(p);
    connpool_destroy(NULL);
}

static void test_broken_connection_is_replaced(void **state)
{
    (void)state;
    counted ctx = {.dsn = testenv_require("OMS_PG_DSN")};
    connpool *p = NULL;
    void *c = NULL;
    PGconn *killer = NULL;
    assert_int_equal(pg_connect(&killer, ctx.dsn, "public", "test-connpool-killer"), OMS_OK);
    assert_int_equal(connpool_create(&p, 1, &ops, &ctx), OMS_OK);
    assert_int_equal(connpool_take(p, 0, &c), OMS_OK);
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d)::int", PQbackendPID(c));
    assert_int_equal(testenv_pg_long(killer, sql), 1);
    /* The lent connection finds out on its next use. */
    PGresult *res = PQexec(c, "SELECT 1");
    assert_int_not_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    PQclear(res);
    connpool_give(p, c);
    assert_false(connpool_up(p));
    assert_int_equal(connpool_take(p, 0, &c), OMS_OK);
    assert_true(connpool_up(p));
    assert_int_equal(atomic_load(&ctx.connects), 2);
    assert_int_equal(testenv_pg_long(c, "SELECT 41 + 1"), 42);
    /* Left inside a transaction: closed, and the pool stays up. */
    assert_int_equal(pg_exec(c, "BEGIN"), OMS_OK);
    connpool_give(p, c);
    assert_true(connpool_up(p));
    assert_int_equal(connpool_take(p, 0, &c), OMS_OK);
    assert_int_equal(atomic_load(&ctx.connects), 3);
    assert_int_equal(PQtransactionStatus(c), PQTRANS_IDLE);
    connpool_give(p, c);
    connpool_destroy(p);
    PQfinish(killer);
}

static void test_unreachable_server_is_transient(void **state)
{
    (void)state;
    counted ctx = {.dsn = "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1"};
    connpool *p = NULL;
    void *c = NULL;
    assert_int_equal(connpool_create(&p, 1, &ops, &ctx), OMS_OK);
    assert_int_equal(connpool_take(p, 0, &c), OMS_ETRANSIENT);
    assert_null(c);
    assert_false(connpool_up(p));
    /* The failed connect gave its slot back: the next taker tries again. */
    assert_int_equal(connpool_take(p, 0, &c), OMS_ETRANSIENT);
    connpool_destroy(p);
    assert_int_equal(connpool_create(&p, 0, &ops, &ctx), OMS_EINVAL);
}

typedef struct worker_arg {
    connpool *p;
    counted *ctx;
    atomic_int *sum;
} worker_arg;

static void *worker(void *arg)
{
    worker_arg *w = arg;
    for (int i = 0; i < ROUNDS; i++) {
        void *c = NULL;
        if (connpool_take(w->p, CONNPOOL_WAIT_FOREVER, &c) != OMS_OK)
            continue;
        int now = atomic_fetch_add(&w->ctx->lent, 1) + 1;
        for (int most = atomic_load(&w->ctx->most_lent);
             now > most && !atomic_compare_exchange_weak(&w->ctx->most_lent, &most, now);)
            ;
        PGresult *res = PQexec(c, "SELECT 1, pg_sleep(0.002)");
        if (PQresultStatus(res) == PGRES_TUPLES_OK)
            atomic_fetch_add(w->sum, atoi(PQgetvalue(res, 0, 0)));
        PQclear(res);
        atomic_fetch_sub(&w->ctx->lent, 1);
        connpool_give(w->p, c);
    }
    return NULL;
}

static void test_threads_share_a_bounded_pool(void **state)
{
    (void)state;
    counted ctx = {.dsn = testenv_require("OMS_PG_DSN")};
    connpool *p = NULL;
    atomic_int sum = 0;
    pthread_t threads[THREADS];
    worker_arg arg = {NULL, &ctx, &sum};
    assert_int_equal(connpool_create(&p, 2, &ops, &ctx), OMS_OK);
    arg.p = p;
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, worker, &arg), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(threads[i], NULL);
    assert_int_equal(atomic_load(&sum), THREADS * ROUNDS);
    assert_int_equal(atomic_load(&ctx.most_lent), 2);
    assert_int_equal(atomic_load(&ctx.connects), 2);
    connpool_destroy(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exhausted_pool_answers_busy),
        cmocka_unit_test(test_broken_connection_is_replaced),
        cmocka_unit_test(test_unreachable_server_is_transient),
        cmocka_unit_test(test_threads_share_a_bounded_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
