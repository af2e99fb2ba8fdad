/*
 * test_lifecycle.c - the order lifecycle end to end with the real services:
 * ingest -> inventory -> payment -> inventory -> ingest, over the real stack.
 * Every order reaches exactly one terminal status with one order.paid or
 * order.failed event, and stock is conserved, also when each service is
 * killed with kill -9 in the middle of an import.
 */
#include "testenv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define INGEST_PORT 19181
#define INVENTORY_PORT 19182
#define PAYMENT_PORT 19183

static const char *const SCHEMAS[] = {"ingest", "inventory", "payment", NULL};

typedef struct stack {
    pid_t ingest, inventory, payment;
    const char *const *payment_env;
} stack;

static const char *const INGEST_ENV[] = {"OMS_INGEST_SEAL_MS=200", NULL};

static void start_all(stack *s, const char *const *payment_env)
{
    s->payment_env = payment_env;
    s->ingest = testenv_service_start("ingest", INGEST_PORT, INGEST_ENV);
    s->inventory = testenv_service_start("inventory", INVENTORY_PORT, NULL);
    s->payment = testenv_service_start("payment", PAYMENT_PORT, payment_env);
}

static void stop_all(stack *s)
{
    testenv_service_stop(s->ingest);
    testenv_service_stop(s->inventory);
    testenv_service_stop(s->payment);
}

static char **make_rows(int n, const char *fmt_prefix)
{
    char **rows = calloc((size_t)n, sizeof *rows);
    for (int i = 0; i < n; i++) {
        rows[i] = malloc(96);
        snprintf(rows[i], 96, "%s-%05d,C-%d,SKU-A,1,10.00", fmt_prefix, i + 1, i % 17);
    }
    return rows;
}

static void free_rows(char **rows, int n)
{
    for (int i = 0; i < n; i++)
        free(rows[i]);
    free(rows);
}

static void wait_products(PGconn *pg, long n)
{
    char sql[] = "SELECT count(*) FROM inventory.products";
    assert_int_equal(testenv_wait_pg(pg, sql, n, 10000), n);
}

/* Stock that runs out exactly at a known order: the first orders (in order
 * id order, the order ingest publishes them) are paid, the rest fail for
 * stock; on_hand goes down by exactly what was sold and nothing stays
 * reserved. */
static void test_stock_runs_out_at_a_known_order(void **state)
{
    (void)state;
    static const char *const pay[] = {"OMS_PAYMENT_SUCCESS_RATE=1", NULL};
    stack s;
    testenv_reset(SCHEMAS);
    start_all(&s, pay);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();
    testenv_load_product(js, "SKU-A", 5);
    wait_products(pg, 1);
    char **rows = make_rows(8, "RUN");
    testenv_import_rows(js, "imp-runout", rows, 8, 3);
    free_rows(rows, 8);
    const char *terminal = "SELECT count(*) FROM ingest.orders WHERE status IN ('paid','failed')";
    assert_int_equal(testenv_wait_pg(pg, terminal, 8, 30000), 8);
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM ingest.orders WHERE status = 'paid'"
                                         " AND order_id <= 'RUN-00005'"),
                     5);
    assert_int_equal(
        testenv_pg_long(pg, "SELECT count(*) FROM ingest.orders WHERE status = 'failed'"
                            " AND status_reason = 'out of stock: SKU-A: 1 requested, 0 available'"),
        3);
    assert_int_equal(testenv_wait_pg(pg, "SELECT on_hand FROM inventory.products", 0, 10000), 0);
    assert_int_equal(testenv_wait_pg(pg, "SELECT reserved FROM inventory.products", 0, 10000), 0);
    assert_int_equal(testenv_wait_pg(pg, "SELECT count(*) FROM ingest.outbox", 0, 10000), 0);
    long paid, failed;
    testenv_terminal_events(js, pg, &paid, &failed);
    assert_int_equal(paid, 5);
    assert_int_equal(failed, 3);
    PQfinish(pg);
    js_conn_destroy(js);
    stop_all(&s);
}

/* Every payment fails: every reservation is released, stock is back. */
static void test_failed_payment_restores_stock(void **state)
{
    (void)state;
    static const char *const pay[] = {"OMS_PAYMENT_SUCCESS_RATE=0", NULL};
    stack s;
    testenv_reset(SCHEMAS);
    start_all(&s, pay);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();
    testenv_load_product(js, "SKU-A", 100);
    wait_products(pg, 1);
    char **rows = make_rows(20, "PF");
    testenv_import_rows(js, "imp-payfail", rows, 20, 7);
    free_rows(rows, 20);
    assert_int_equal(testenv_wait_pg(pg,
                                     "SELECT count(*) FROM ingest.orders WHERE status = 'failed'"
                                     " AND status_reason LIKE 'payment failed: %'",
                                     20, 30000),
                     20);
    assert_int_equal(testenv_wait_pg(pg, "SELECT reserved FROM inventory.products", 0, 10000), 0);
    assert_int_equal(testenv_pg_long(pg, "SELECT on_hand FROM inventory.products"), 100);
    PQfinish(pg);
    js_conn_destroy(js);
    stop_all(&s);
}

static void restart(pid_t *pid, const char *name, int port, const char *const *env, PGconn *pg,
                    const char *progress_sql, long at_least)
{
    /* Kill once there is work in flight: progress has started. */
    for (int i = 0; i < 3000 && testenv_pg_long(pg, progress_sql) < at_least; i++)
        usleep(10000);
    testenv_service_kill(*pid);
    fprintf(stderr, "killed %s at %ld\n", name, testenv_pg_long(pg, progress_sql));
    *pid = testenv_service_start(name, port, env);
}

/* OMS_ACK_WAIT_S=2 in the kill test: a message the server had handed to a
 * killed process (a pull request it had not yet seen closed) comes back in
 * 2 s, not 30, inside the test's waits. */
static const char *const INGEST_KILL_ENV[] = {"OMS_INGEST_SEAL_MS=200", "OMS_ACK_WAIT_S=2", NULL};
static const char *const INVENTORY_KILL_ENV[] = {"OMS_ACK_WAIT_S=2", NULL};

/* kill -9 of each service in turn during an import: every order terminal
 * exactly once, one event each, stock conserved. */
static void test_kill9_each_service_during_an_import(void **state)
{
    (void)state;
    static const char *const pay[] = {"OMS_PAYMENT_SUCCESS_RATE=0.9", "OMS_ACK_WAIT_S=2", NULL};
    const int n = 3000;
    stack s = {.payment_env = pay};
    testenv_reset(SCHEMAS);
    s.ingest = testenv_service_start("ingest", INGEST_PORT, INGEST_KILL_ENV);
    s.inventory = testenv_service_start("inventory", INVENTORY_PORT, INVENTORY_KILL_ENV);
    s.payment = testenv_service_start("payment", PAYMENT_PORT, pay);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();
    testenv_load_product(js, "SKU-A", 2700);
    wait_products(pg, 1);
    char **rows = make_rows(n, "KILL");
    testenv_import_rows(js, "imp-kill-all", rows, n, 250);
    free_rows(rows, n);
    const char *terminal = "SELECT count(*) FROM ingest.orders WHERE status IN ('paid','failed')";
    restart(&s.ingest, "ingest", INGEST_PORT, INGEST_KILL_ENV, pg,
            "SELECT count(*) FROM ingest.import_rows", 1);
    restart(&s.inventory, "inventory", INVENTORY_PORT, INVENTORY_KILL_ENV, pg,
            "SELECT count(*) FROM inventory.reservations", 200);
    restart(&s.payment, "payment", PAYMENT_PORT, pay, pg, "SELECT count(*) FROM payment.payments",
            400);
    restart(&s.ingest, "ingest", INGEST_PORT, INGEST_KILL_ENV, pg, terminal, 600);
    assert_int_equal(testenv_wait_pg(pg, terminal, n, 120000), n);
    assert_int_equal(testenv_wait_pg(pg, "SELECT reserved FROM inventory.products", 0, 20000), 0);
    /* Conservation: initial stock = on hand now + sold. */
    long sold = testenv_pg_long(
        pg, "SELECT coalesce(sum(l.qty), 0) FROM inventory.reservation_lines l"
            " JOIN inventory.reservations r USING (order_id) WHERE r.status = 'committed'");
    assert_int_equal(testenv_pg_long(pg, "SELECT on_hand FROM inventory.products") + sold, 2700);
    assert_int_equal(sold,
                     testenv_pg_long(pg,
                                     "SELECT count(*) FROM ingest.orders WHERE status = 'paid'"));
    long paid, failed;
    assert_int_equal(testenv_wait_pg(pg, "SELECT count(*) FROM ingest.outbox", 0, 20000), 0);
    testenv_terminal_events(js, pg, &paid, &failed);
    assert_int_equal(paid + failed, n);
    assert_int_equal(paid, sold);
    PQfinish(pg);
    js_conn_destroy(js);
    stop_all(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_stock_runs_out_at_a_known_order, testenv_cleanup),
        cmocka_unit_test_teardown(test_failed_payment_restores_stock, testenv_cleanup),
        cmocka_unit_test_teardown(test_kill9_each_service_during_an_import, testenv_cleanup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
