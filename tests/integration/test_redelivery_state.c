/*
 * test_redelivery_state.c - the durables that keep no inbox row
 * (CONSUMER_DEDUPE_BY_STATE: payment, refund-order-paid, notify-order-paid/
 * failed, inventory-orders, inventory-payments, ingest-stock-reserved/
 * rejected, ingest-payments) apply a message a second time as a no-op.
 *
 * The whole pipeline runs once; then every message those durables consumed
 * is delivered again twice over: (1) with the same event id, by killing
 * every service with kill -9 and deleting the durables, so each restarted
 * service receives the stream from the start exactly as after a crash
 * between COMMIT and ack; (2) re-published under a new Nats-Msg-Id with the
 * same payload. After each, every table holds the same rows and no service
 * published a single new event.
 */
#include "testenv.h"

#include "oms_events.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_ORDERS 10
#define ON_HAND 6 /* the first 6 orders are paid, the last 4 fail for stock */

static const char *const SCHEMAS[] = {"ingest", "inventory", "payment", "notify", "refund", NULL};
static const char *const SERVICES[] = {"ingest", "inventory", "payment", "notify", "refund"};
#define N_SERVICES 5

static const char *const INGEST_ENV[] = {"OMS_INGEST_SEAL_MS=200", NULL};
static const char *const PAYMENT_ENV[] = {"OMS_PAYMENT_SUCCESS_RATE=1", NULL};

/* The durables switched to CONSUMER_DEDUPE_BY_STATE, with the subject each reads. */
static const struct {
    const char *stream, *durable, *subject;
} BY_STATE[] = {
    {"STOCK", "payment", "stock.reserved"},
    {"ORDERS", "refund-order-paid", "order.paid"},
    {"ORDERS", "notify-order-paid", "order.paid"},
    {"ORDERS", "notify-order-failed", "order.failed"},
    {"ORDERS", "inventory-orders", "order.created"},
    {"PAYMENTS", "inventory-payments", "payment.settled"},
    {"STOCK", "ingest-stock-reserved", "stock.reserved"},
    {"STOCK", "ingest-stock-rejected", "stock.rejected"},
    {"PAYMENTS", "ingest-payments", "payment.settled"},
};
#define N_BY_STATE (sizeof BY_STATE / sizeof BY_STATE[0])

/* What must not change, and its value after the first pass. */
static const struct {
    const char *sql;
    long want;
} STATE[] = {
    {"SELECT count(*) FROM ingest.orders WHERE status = 'paid'", ON_HAND},
    {"SELECT count(*) FROM ingest.orders WHERE status = 'failed'", N_ORDERS - ON_HAND},
    /* created, then reserved and paid, or failed */
    {"SELECT count(*) FROM ingest.order_status_history WHERE status <> 'created'",
     2 * ON_HAND + (N_ORDERS - ON_HAND)},
    {"SELECT count(*) FROM inventory.reservations WHERE status = 'committed'", ON_HAND},
    {"SELECT count(*) FROM inventory.reservations WHERE status = 'rejected'", N_ORDERS - ON_HAND},
    {"SELECT on_hand FROM inventory.products", 0},
    {"SELECT reserved FROM inventory.products", 0},
    {"SELECT count(*) FROM payment.payments WHERE status = 'succeeded'", ON_HAND},
    {"SELECT count(*) FROM payment.payments", ON_HAND},
    {"SELECT count(*) FROM notify.notifications", N_ORDERS}, /* the log channel */
    {"SELECT count(*) FROM refund.paid_orders", ON_HAND},
    /* Durables whose every consumer keeps no inbox write none. */
    {"SELECT count(*) FROM payment.inbox", 0},
    {"SELECT count(*) FROM notify.inbox", 0},
    {"SELECT count(*) FROM refund.inbox", 0},
    /* inventory-catalog keeps its inbox: the one catalog.product. */
    {"SELECT count(*) FROM inventory.inbox", 1},
    {"SELECT count(*) FROM ingest.dead_letters", 0},
    {"SELECT count(*) FROM inventory.dead_letters", 0},
    {"SELECT count(*) FROM payment.dead_letters", 0},
};
#define N_STATE (sizeof STATE / sizeof STATE[0])

/* What the services publish, and how many of each after the first pass. */
static const struct {
    const char *stream, *subject;
    long want;
    const ProtobufCMessageDescriptor *type; /* for the re-publish; NULL: not consumed */
} EVENTS[] = {
    {"ORDERS", "order.created", N_ORDERS, &oms__v1__order_created__descriptor},
    {"STOCK", "stock.reserved", ON_HAND, &oms__v1__stock_reserved__descriptor},
    {"STOCK", "stock.rejected", N_ORDERS - ON_HAND, &oms__v1__stock_rejected__descriptor},
    {"PAYMENTS", "payment.settled", ON_HAND, &oms__v1__payment_settled__descriptor},
    {"STOCK", "stock.committed", ON_HAND, NULL},
    {"ORDERS", "order.paid", ON_HAND, &oms__v1__order_paid__descriptor},
    {"ORDERS", "order.failed", N_ORDERS - ON_HAND, &oms__v1__order_failed__descriptor},
};
#define N_EVENTS (sizeof EVENTS / sizeof EVENTS[0])

static int port_of(size_t k)
{
    const char *base = getenv("OMS_HTTP_PORT_BASE");
    /* Ports no other test uses, or the engineer's own range. */
    return (base ? atoi(base) + 90 : 19390) + (int)k;
}

static void start_all(pid_t pids[N_SERVICES])
{
    for (size_t k = 0; k < N_SERVICES; k++) {
        const char *const *env = strcmp(SERVICES[k], "ingest") == 0    ? INGEST_ENV
                                 : strcmp(SERVICES[k], "payment") == 0 ? PAYMENT_ENV
                                                                       : NULL;
        pids[k] = testenv_service_start(SERVICES[k], port_of(k), env);
    }
}

static long subject_count(js_conn *js, const char *stream, const char *subject)
{
    testenv_msg *msgs = NULL;
    size_t n = testenv_stream_read(js, stream, subject, &msgs);
    testenv_msgs_free(msgs, n);
    return (long)n;
}

/* Waits until every outbox is empty: every event caused is in its stream. */
static void wait_outboxes_empty(PGconn *pg)
{
    for (size_t k = 0; k < N_SERVICES; k++) {
        char sql[96];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM %s.outbox", SERVICES[k]);
        assert_int_equal(testenv_wait_pg(pg, sql, 0, 20000), 0);
    }
}

static void wait_durables_settled(js_conn *js)
{
    for (size_t k = 0; k < N_BY_STATE; k++)
        assert_true(testenv_durable_settled(js, BY_STATE[k].stream, BY_STATE[k].durable, 30000));
}

static void assert_state(PGconn *pg)
{
    for (size_t k = 0; k < N_STATE; k++) {
        long got = testenv_pg_long(pg, STATE[k].sql);
        if (got != STATE[k].want)
            fprintf(stderr, "%s: %ld, want %ld\n", STATE[k].sql, got, STATE[k].want);
        assert_int_equal(got, STATE[k].want);
    }
}

/* times: 1 after the first pass, 2 once every consumed event was re-published. */
static void assert_events(js_conn *js, long times)
{
    for (size_t k = 0; k < N_EVENTS; k++) {
        long want = EVENTS[k].want * (EVENTS[k].type ? times : 1);
        long got = subject_count(js, EVENTS[k].stream, EVENTS[k].subject);
        if (got != want)
            fprintf(stderr, "%s: %ld messages, want %ld\n", EVENTS[k].subject, got, want);
        assert_int_equal(got, want);
    }
}

static void run_pipeline(js_conn *js, PGconn *pg)
{
    char *rows[N_ORDERS];
    testenv_load_product(js, "SKU-R", ON_HAND);
    assert_int_equal(testenv_wait_pg(pg, "SELECT count(*) FROM inventory.products", 1, 10000), 1);
    for (int i = 0; i < N_ORDERS; i++) {
        rows[i] = malloc(96);
        snprintf(rows[i], 96, "RED-%05d,C-%d,SKU-R,1,10.00", i + 1, i);
    }
    testenv_import_rows(js, "imp-redelivery", rows, N_ORDERS, 4);
    for (int i = 0; i < N_ORDERS; i++)
        free(rows[i]);
    assert_int_equal(testenv_wait_pg(pg, "SELECT count(*) FROM notify.notifications", N_ORDERS,
                                     30000),
                     N_ORDERS);
    assert_int_equal(testenv_wait_pg(pg, "SELECT count(*) FROM refund.paid_orders", ON_HAND, 30000),
                     ON_HAND);
    wait_durables_settled(js);
    wait_outboxes_empty(pg);
}

/* kill -9 every service, then delete the by-state durables: the restarted
 * services recreate them and receive every message again, same event id. */
static void redeliver_same_ids(js_conn *js, pid_t pids[N_SERVICES])
{
    for (size_t k = 0; k < N_SERVICES; k++)
        testenv_service_kill(pids[k]);
    for (size_t k = 0; k < N_BY_STATE; k++) {
        jsErrCode code = 0;
        natsStatus st = js_DeleteConsumer(js_ctx(js), BY_STATE[k].stream, BY_STATE[k].durable, NULL,
                                          &code);
        if (st != NATS_OK)
            fprintf(stderr, "delete %s: %s (%d)\n", BY_STATE[k].durable, natsStatus_GetText(st),
                    (int)code);
        assert_int_equal(st, NATS_OK);
    }
    start_all(pids);
}

/* Re-publishes every consumed event with a new Nats-Msg-Id, same payload. */
static void republish_new_ids(js_conn *js)
{
    for (size_t k = 0; k < N_EVENTS; k++) {
        if (EVENTS[k].type == NULL)
            continue;
        testenv_msg *msgs = NULL;
        size_t n = testenv_stream_read(js, EVENTS[k].stream, EVENTS[k].subject, &msgs);
        for (size_t i = 0; i < n; i++) {
            char id[160];
            snprintf(id, sizeof id, "%s-again", msgs[i].msg_id);
            const char *headers[] = {"Nats-Msg-Id", id, "Oms-Type", EVENTS[k].type->name, NULL};
            testenv_publish(js, msgs[i].subject, msgs[i].data, msgs[i].len, headers);
        }
        testenv_msgs_free(msgs, n);
    }
}

static void test_second_delivery_changes_nothing(void **state)
{
    (void)state;
    pid_t pids[N_SERVICES];
    testenv_reset(SCHEMAS);
    start_all(pids);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();

    run_pipeline(js, pg);
    assert_state(pg);
    assert_events(js, 1);

    redeliver_same_ids(js, pids);
    wait_durables_settled(js);
    wait_outboxes_empty(pg);
    assert_state(pg);
    assert_events(js, 1);

    republish_new_ids(js);
    wait_durables_settled(js);
    wait_outboxes_empty(pg);
    assert_state(pg);
    assert_events(js, 2);

    PQfinish(pg);
    js_conn_destroy(js);
    for (size_t k = 0; k < N_SERVICES; k++)
        testenv_service_stop(pids[k]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_second_delivery_changes_nothing, testenv_cleanup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
