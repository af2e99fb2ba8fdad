/*
 * test_refund.c - refunds against the real stack: the refund service with
 * the real ingest, inventory and payment (mock) for the whole path (an order
 * paid, refunded in parts, its status, order.refunded, stock back on hand);
 * the refund service alone, fed order.paid, for the rules: idempotency keys,
 * 20 concurrent requests on one order split between two refund processes,
 * POST /refunds; and the http gateway (tests/support/fake_gateway.c, slowed
 * down) with the refund service killed by kill -9 while a refund is in
 * flight: one outcome after restart, refunded once by the gateway.
 */
#include "testenv.h"

#include "oms_events.pb-c.h"
#include "outbox.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define INGEST_PORT 19681
#define INVENTORY_PORT 19682
#define PAYMENT_PORT 19683
#define REFUND_PORT 19685
#define REFUND2_PORT 19686
#define GATEWAY_PORT 19690
#define SECRET "whsec_refund_test_0123456789"

#ifndef OMS_FAKE_GATEWAY
#define OMS_FAKE_GATEWAY "tests/fake_gateway"
#endif

static const char *const SCHEMAS[] = {"ingest", "inventory", "payment", "refund", NULL};
static const char *const INGEST_ENV[] = {"OMS_INGEST_SEAL_MS=200", NULL};
static const char *const PAYMENT_ENV[] = {"OMS_PAYMENT_SUCCESS_RATE=1", NULL};

static pid_t gateway_pid;

/* ---- publishing ----------------------------------------------------------- */

static void publish_paid(js_conn *js, const char *order_id, const char *customer_id,
                         int64_t total_cents)
{
    Oms__V1__OrderPaid ev = OMS__V1__ORDER_PAID__INIT;
    Oms__V1__EventMeta meta;
    char id[37];
    outbox_meta_init(&meta, id, "test", order_id, "");
    ev.meta = &meta;
    ev.order_id = (char *)order_id;
    ev.customer_id = (char *)customer_id;
    ev.customer_email = "buyer@example.com";
    ev.customer_name = "A Buyer";
    ev.status = "paid";
    ev.total_cents = total_cents;
    ev.currency = "USD";
    testenv_publish_event(js, "order.paid", id, &ev.base);
}

/* lines: "SKU:QTY" strings, NULL-terminated, or NULL. */
static void publish_request(js_conn *js, const char *key, const char *order_id,
                            int64_t amount_cents, bool restock, const char *const *lines)
{
    Oms__V1__RefundRequested ev = OMS__V1__REFUND_REQUESTED__INIT;
    Oms__V1__EventMeta meta;
    Oms__V1__RefundLine l[8], *ptrs[8];
    char skus[8][64], id[37];
    size_t n = 0;
    for (; lines != NULL && lines[n] != NULL && n < 8; n++) {
        const char *colon = strchr(lines[n], ':');
        oms__v1__refund_line__init(&l[n]);
        snprintf(skus[n], sizeof skus[n], "%.*s", (int)(colon - lines[n]), lines[n]);
        l[n].sku = skus[n];
        l[n].qty = atoi(colon + 1);
        ptrs[n] = &l[n];
    }
    outbox_meta_init(&meta, id, "test", order_id, "");
    ev.meta = &meta;
    ev.idempotency_key = (char *)key;
    ev.order_id = (char *)order_id;
    ev.amount_cents = amount_cents;
    ev.reason = "damaged in transit";
    ev.restock = restock;
    ev.lines = ptrs;
    ev.n_lines = n;
    ev.requested_by = "test";
    testenv_publish_event(js, "refund.requested", id, &ev.base);
}

/* ---- reading back --------------------------------------------------------- */

static void format_sql(char *sql, size_t len, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void format_sql(char *sql, size_t len, const char *fmt, va_list ap)
{
    vsnprintf(sql, len, fmt, ap);
}

static long pg_long(PGconn *pg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static long pg_long(PGconn *pg, const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    format_sql(sql, sizeof sql, fmt, ap);
    va_end(ap);
    return testenv_pg_long(pg, sql);
}

static long wait_pg(PGconn *pg, long want, int timeout_ms, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static long wait_pg(PGconn *pg, long want, int timeout_ms, const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    format_sql(sql, sizeof sql, fmt, ap);
    va_end(ap);
    return testenv_wait_pg(pg, sql, want, timeout_ms);
}

static char *pg_text(PGconn *pg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *pg_text(PGconn *pg, const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    format_sql(sql, sizeof sql, fmt, ap);
    va_end(ap);
    PGresult *r = PQexec(pg, sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(r), 1);
    char *v = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

/* Prints every refund row, so a timed-out wait says where each one stood. */
static void dump_refunds(PGconn *pg)
{
    PGresult *r = PQexec(pg, "SELECT idempotency_key, state, attempts,"
                             " round(extract(epoch FROM next_attempt_at - now()) * 1000)"
                             " FROM refund.refunds ORDER BY created_at");
    fprintf(stderr, "refund.refunds (key, state, attempts, next attempt in ms):\n");
    for (int i = 0; PQresultStatus(r) == PGRES_TUPLES_OK && i < PQntuples(r); i++)
        fprintf(stderr, "  %s %s %s %s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
                PQgetvalue(r, i, 2), PQgetvalue(r, i, 3));
    PQclear(r);
}

/* Waits until the key has a final outcome; returns its state. */
static char *wait_outcome(PGconn *pg, const char *key)
{
    long n = wait_pg(pg, 1, 20000,
                     "SELECT count(*) FROM refund.refunds WHERE idempotency_key = '%s'"
                     " AND state <> 'pending'",
                     key);
    if (n != 1) {
        fprintf(stderr, "refund %s has no outcome after 20 s\n", key);
        dump_refunds(pg);
    }
    assert_int_equal(n, 1);
    return pg_text(pg, "SELECT state FROM refund.refunds WHERE idempotency_key = '%s'", key);
}

static void expect_outcome(PGconn *pg, const char *key, const char *state)
{
    char *got = wait_outcome(pg, key);
    assert_string_equal(got, state);
    free(got);
}

typedef struct refund_events {
    size_t n_processed, n_rejected;
    Oms__V1__RefundProcessed *processed[64];
    Oms__V1__RefundRejected *rejected[64];
} refund_events;

static void read_refund_events(js_conn *js, const char *order_id, refund_events *out)
{
    testenv_msg *msgs = NULL;
    size_t n = testenv_stream_read(js, "REFUNDS", NULL, &msgs);
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(msgs[i].subject, "refund.processed") == 0) {
            Oms__V1__RefundProcessed *p = oms__v1__refund_processed__unpack(NULL, msgs[i].len,
                                                                            msgs[i].data);
            assert_non_null(p);
            if (strcmp(p->order_id, order_id) == 0 && out->n_processed < 64)
                out->processed[out->n_processed++] = p;
            else
                oms__v1__refund_processed__free_unpacked(p, NULL);
        } else if (strcmp(msgs[i].subject, "refund.rejected") == 0) {
            Oms__V1__RefundRejected *r = oms__v1__refund_rejected__unpack(NULL, msgs[i].len,
                                                                          msgs[i].data);
            assert_non_null(r);
            if (strcmp(r->order_id, order_id) == 0 && out->n_rejected < 64)
                out->rejected[out->n_rejected++] = r;
            else
                oms__v1__refund_rejected__free_unpacked(r, NULL);
        }
    }
    testenv_msgs_free(msgs, n);
}

static void refund_events_free(refund_events *e)
{
    for (size_t i = 0; i < e->n_processed; i++)
        oms__v1__refund_processed__free_unpacked(e->processed[i], NULL);
    for (size_t i = 0; i < e->n_rejected; i++)
        oms__v1__refund_rejected__free_unpacked(e->rejected[i], NULL);
}

/* ---- the fake gateway ------------------------------------------------------ */

static void gateway_start(const char *refund_option)
{
    char port[32];
    const char *path = getenv("OMS_FAKE_GATEWAY") ? getenv("OMS_FAKE_GATEWAY") : OMS_FAKE_GATEWAY;
    snprintf(port, sizeof port, "port=%d", GATEWAY_PORT);
    const char *args[] = {port, "secret=" SECRET, refund_option, NULL};
    gateway_pid = testenv_peer_start(path, "fake_gateway", GATEWAY_PORT, args);
}

static void gateway_stop(void)
{
    testenv_peer_stop(&gateway_pid);
}

static json_t *gateway_stats(void)
{
    return testenv_http_json(GATEWAY_PORT, "/stats");
}

static int teardown(void **state)
{
    testenv_peer_kill(&gateway_pid);
    return testenv_cleanup(state);
}

/* ---- the whole path -------------------------------------------------------- */

static void load_product(js_conn *js, const char *sku, long on_hand)
{
    Oms__V1__ProductUpserted ev = OMS__V1__PRODUCT_UPSERTED__INIT;
    Oms__V1__EventMeta meta;
    char id[37];
    outbox_meta_init(&meta, id, "test", sku, "");
    ev.meta = &meta;
    ev.sku = (char *)sku;
    ev.name = (char *)sku;
    ev.on_hand = on_hand;
    ev.price_cents = 1000;
    testenv_publish_event(js, "catalog.product", id, &ev.base);
}

static long on_hand(PGconn *pg, const char *sku)
{
    return pg_long(pg, "SELECT on_hand FROM inventory.products WHERE sku = '%s'", sku);
}

/* The order.refunded events of order_id, in stream order. */
static size_t read_order_refunded(js_conn *js, const char *order_id, Oms__V1__OrderRefunded **out,
                                  size_t max)
{
    testenv_msg *msgs = NULL;
    size_t n = testenv_stream_read(js, "ORDERS", "order.refunded", &msgs), got = 0;
    for (size_t i = 0; i < n; i++) {
        Oms__V1__OrderRefunded *ev = oms__v1__order_refunded__unpack(NULL, msgs[i].len,
                                                                     msgs[i].data);
        assert_non_null(ev);
        if (strcmp(ev->order_id, order_id) == 0 && got < max)
            out[got++] = ev;
        else
            oms__v1__order_refunded__free_unpacked(ev, NULL);
    }
    testenv_msgs_free(msgs, n);
    return got;
}

/* Imports R-1 (3 x SKU-RA at 10.00 + 1 x SKU-RB at 20.00 = 50.00, paid) and
 * R-F (an unknown SKU: failed), and waits for both outcomes. */
static void import_two_orders(js_conn *js, PGconn *pg)
{
    static const char rows[] = "order_id,customer_id,sku,qty,unit_price,customer_email\n"
                               "R-1,C-R,SKU-RA,3,10.00,r@example.com\n"
                               "R-1,C-R,SKU-RB,1,20.00,r@example.com\n"
                               "R-F,C-F,SKU-NONE,1,5.00,f@example.com\n";
    load_product(js, "SKU-RA", 10);
    load_product(js, "SKU-RB", 5);
    assert_int_equal(testenv_wait_pg(pg, "SELECT count(*) FROM inventory.products", 2, 10000), 2);
    testenv_publish_rows(js, "refund-import:0", "refund-import", "2", NULL, rows, sizeof rows - 1);
    testenv_publish_rows(js, "refund-import:end", "refund-import", NULL, "3", "", 0);
    assert_int_equal(wait_pg(pg, 1, 30000,
                             "SELECT count(*) FROM ingest.orders WHERE order_id = '%s'"
                             " AND status = 'paid'",
                             "R-1"),
                     1);
    assert_int_equal(wait_pg(pg, 1, 30000,
                             "SELECT count(*) FROM ingest.orders WHERE order_id = '%s'"
                             " AND status = 'failed'",
                             "R-F"),
                     1);
    /* The sale is committed: 3 and 1 units left on hand. */
    assert_int_equal(wait_pg(pg, 1, 10000,
                             "SELECT count(*) FROM inventory.reservations WHERE order_id = '%s'"
                             " AND status = 'committed'",
                             "R-1"),
                     1);
    assert_int_equal(on_hand(pg, "SKU-RA"), 7);
    assert_int_equal(on_hand(pg, "SKU-RB"), 4);
    assert_int_equal(wait_pg(pg, 1, 10000,
                             "SELECT count(*) FROM refund.paid_orders WHERE order_id = '%s'",
                             "R-1"),
                     1);
}

static void check_order_refunded_events(js_conn *js)
{
    Oms__V1__OrderRefunded *ev[8];
    size_t n = 0;
    for (int i = 0; i < 100 && n < 3; i++) {
        for (size_t k = 0; k < n; k++)
            oms__v1__order_refunded__free_unpacked(ev[k], NULL);
        n = read_order_refunded(js, "R-1", ev, 8);
        if (n < 3)
            usleep(100000);
    }
    assert_int_equal(n, 3);
    static const char *const statuses[] = {"partially_refunded", "partially_refunded", "refunded"};
    static const int64_t amounts[] = {1000, 1500, 2500}, totals[] = {1000, 2500, 5000};
    for (size_t k = 0; k < 3; k++) {
        assert_string_equal(ev[k]->status, statuses[k]);
        assert_int_equal(ev[k]->amount_cents, amounts[k]);
        assert_int_equal(ev[k]->refunded_total_cents, totals[k]);
        assert_int_equal(ev[k]->total_cents, 5000);
        assert_string_equal(ev[k]->customer_id, "C-R");
        assert_string_equal(ev[k]->import_id, "refund-import");
        oms__v1__order_refunded__free_unpacked(ev[k], NULL);
    }
}

/* Polls a counter on a service's /metrics until it reaches want. */
static bool metric_reaches(int port, const char *series, long want)
{
    for (int i = 0; i < 100; i++) {
        char *body = NULL;
        assert_int_equal(testenv_http("GET", port, "/metrics", NULL, &body), 200);
        const char *line = strstr(body, series);
        long v = line ? atol(line + strlen(series)) : 0;
        free(body);
        if (v >= want)
            return v == want;
        usleep(100000);
    }
    return false;
}

/* The first refund.processed of R-1 again, under another event id (as a
 * producer bug or a replayed stream would send it): ingest and inventory
 * apply a refund once per refund id. */
static void redeliver_first_refund(js_conn *js, PGconn *pg)
{
    refund_events ev;
    char id[37];
    read_refund_events(js, "R-1", &ev);
    assert_true(ev.n_processed >= 1);
    Oms__V1__RefundProcessed *first = ev.processed[0];
    char *original = first->meta->event_id;
    oms_uuid4(id);
    first->meta->event_id = id;
    testenv_publish_event(js, "refund.processed", id, &first->base);
    first->meta->event_id = original;
    assert_true(metric_reaches(INGEST_PORT, "\noms_ingest_refunds_ignored_total ", 1));
    assert_true(metric_reaches(INVENTORY_PORT, "\noms_inventory_restocks_ignored_total ", 1));
    refund_events_free(&ev);
    assert_int_equal(pg_long(pg, "SELECT count(*) FROM ingest.order_refunds WHERE order_id = '%s'",
                             "R-1"),
                     3);
    assert_int_equal(pg_long(pg, "SELECT refunded_cents FROM ingest.orders WHERE order_id = '%s'",
                             "R-1"),
                     5000);
    assert_int_equal(on_hand(pg, "SKU-RB"), 5);
    check_order_refunded_events(js);
}

static void test_partial_partial_full_with_restock(void **state)
{
    (void)state;
    testenv_reset(SCHEMAS);
    pid_t ingest = testenv_service_start("ingest", INGEST_PORT, INGEST_ENV);
    pid_t inventory = testenv_service_start("inventory", INVENTORY_PORT, NULL);
    pid_t payment = testenv_service_start("payment", PAYMENT_PORT, PAYMENT_ENV);
    pid_t refund = testenv_service_start("refund", REFUND_PORT, NULL);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();
    import_two_orders(js, pg);

    /* 10.00 back, with the one SKU-RB named for restock. */
    const char *const rb[] = {"SKU-RB:1", NULL};
    publish_request(js, "R-1-a", "R-1", 1000, true, rb);
    expect_outcome(pg, "R-1-a", "processed");
    assert_int_equal(wait_pg(pg, 1, 10000,
                             "SELECT count(*) FROM ingest.orders WHERE order_id = '%s'"
                             " AND status = 'partially_refunded'",
                             "R-1"),
                     1);
    assert_int_equal(wait_pg(pg, 5, 10000,
                             "SELECT on_hand FROM inventory.products WHERE sku = '%s'", "SKU-RB"),
                     5);
    assert_int_equal(on_hand(pg, "SKU-RA"), 7);

    /* 15.00 without restock: stock does not move. */
    publish_request(js, "R-1-b", "R-1", 1500, false, NULL);
    expect_outcome(pg, "R-1-b", "processed");
    assert_int_equal(wait_pg(pg, 2500, 10000,
                             "SELECT refunded_cents FROM ingest.orders WHERE order_id = '%s'",
                             "R-1"),
                     2500);
    assert_int_equal(pg_long(pg,
                             "SELECT count(*) FROM ingest.orders WHERE order_id = '%s'"
                             " AND status = 'partially_refunded'",
                             "R-1"),
                     1);

    /* The rest (amount 0), with restock: the 3 SKU-RA; SKU-RB is back already. */
    publish_request(js, "R-1-c", "R-1", 0, true, NULL);
    expect_outcome(pg, "R-1-c", "processed");
    assert_int_equal(pg_long(pg,
                             "SELECT amount_cents FROM refund.refunds WHERE"
                             " idempotency_key = '%s'",
                             "R-1-c"),
                     2500);
    assert_int_equal(wait_pg(pg, 1, 10000,
                             "SELECT count(*) FROM ingest.orders WHERE order_id = '%s'"
                             " AND status = 'refunded'",
                             "R-1"),
                     1);
    assert_int_equal(wait_pg(pg, 10, 10000,
                             "SELECT on_hand FROM inventory.products WHERE sku = '%s'", "SKU-RA"),
                     10);
    assert_int_equal(on_hand(pg, "SKU-RB"), 5);
    assert_int_equal(pg_long(pg,
                             "SELECT count(*) FROM ingest.order_status_history WHERE"
                             " order_id = '%s' AND status LIKE '%%refunded'",
                             "R-1"),
                     3);
    check_order_refunded_events(js);
    redeliver_first_refund(js, pg);

    /* Nothing is left; a failed order and an unknown one cannot be refunded. */
    publish_request(js, "R-1-d", "R-1", 500, false, NULL);
    publish_request(js, "R-F-a", "R-F", 0, false, NULL);
    publish_request(js, "R-X-a", "NO-SUCH-ORDER", 100, false, NULL);
    expect_outcome(pg, "R-1-d", "rejected");
    expect_outcome(pg, "R-F-a", "rejected");
    expect_outcome(pg, "R-X-a", "rejected");
    char *why = pg_text(pg, "SELECT reject_reason FROM refund.refunds WHERE idempotency_key = '%s'",
                        "R-1-d");
    assert_string_equal(why, "nothing is left to refund on R-1: 50.00 USD paid, 50.00 USD "
                             "refunded or being refunded");
    free(why);
    why = pg_text(pg, "SELECT reject_reason FROM refund.refunds WHERE idempotency_key = '%s'",
                  "R-F-a");
    assert_non_null(strstr(why, "R-F cannot be refunded: it is not a paid order"));
    free(why);
    refund_events ev;
    /* Decided is committed; published is the outbox relay's next round. */
    for (int i = 0; i < 50; i++) {
        read_refund_events(js, "R-F", &ev);
        if (ev.n_rejected > 0)
            break;
        refund_events_free(&ev);
        usleep(100000);
    }
    assert_int_equal(ev.n_processed, 0);
    assert_int_equal(ev.n_rejected, 1);
    assert_string_equal(ev.rejected[0]->idempotency_key, "R-F-a");
    refund_events_free(&ev);
    assert_int_equal(pg_long(pg,
                             "SELECT count(*) FROM ingest.orders WHERE order_id = '%s'"
                             " AND status = 'failed'",
                             "R-F"),
                     1);
    /* ingest saw each refund once. */
    assert_int_equal(pg_long(pg, "SELECT count(*) FROM ingest.order_refunds WHERE order_id = '%s'",
                             "R-1"),
                     3);
    js_conn_destroy(js);
    PQfinish(pg);
    testenv_service_stop(refund);
    testenv_service_stop(payment);
    testenv_service_stop(inventory);
    testenv_service_stop(ingest);
}

/* ---- a refund that overtakes its sale ------------------------------------- */

/* refund.processed may reach inventory before the payment.settled that
 * commits the sale (different streams): inventory waits for the sale rather
 * than skipping the restock. Events published straight to inventory. */
static void test_restock_waits_for_the_sale(void **state)
{
    (void)state;
    testenv_reset(SCHEMAS);
    pid_t inventory = testenv_service_start("inventory", INVENTORY_PORT, NULL);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();
    char id[37];
    load_product(js, "SKU-W", 10);
    assert_int_equal(wait_pg(pg, 1, 10000,
                             "SELECT count(*) FROM inventory.products WHERE"
                             " sku = '%s'",
                             "SKU-W"),
                     1);
    Oms__V1__OrderCreated order = OMS__V1__ORDER_CREATED__INIT;
    Oms__V1__OrderLine line = OMS__V1__ORDER_LINE__INIT, *lines[] = {&line};
    Oms__V1__EventMeta meta;
    outbox_meta_init(&meta, id, "test", "RW-1", "");
    line.sku = "SKU-W";
    line.qty = 4;
    line.unit_price_cents = 250;
    order.meta = &meta;
    order.order_id = "RW-1";
    order.customer_id = "C-W";
    order.total_cents = 1000;
    order.currency = "USD";
    order.lines = lines;
    order.n_lines = 1;
    testenv_publish_event(js, "order.created", id, &order.base);
    assert_int_equal(wait_pg(pg, 1, 10000,
                             "SELECT count(*) FROM inventory.reservations WHERE"
                             " order_id = '%s' AND status = 'reserved'",
                             "RW-1"),
                     1);

    Oms__V1__RefundProcessed refund = OMS__V1__REFUND_PROCESSED__INIT;
    outbox_meta_init(&meta, id, "test", "RW-1", "");
    refund.meta = &meta;
    refund.refund_id = "refund-rw-1";
    refund.order_id = "RW-1";
    refund.amount_cents = 1000;
    refund.full = true;
    refund.restock = true;
    testenv_publish_event(js, "refund.processed", id, &refund.base);
    usleep(1500 * 1000);
    assert_int_equal(pg_long(pg, "SELECT count(*) FROM inventory.restocks WHERE refund_id = '%s'",
                             "refund-rw-1"),
                     0);
    assert_int_equal(on_hand(pg, "SKU-W"), 10);

    Oms__V1__PaymentSettled paid = OMS__V1__PAYMENT_SETTLED__INIT;
    outbox_meta_init(&meta, id, "test", "RW-1", "");
    paid.meta = &meta;
    paid.order_id = "RW-1";
    paid.payment_id = "pay-rw-1";
    paid.status = OMS__V1__PAYMENT_STATUS__PAYMENT_STATUS_SUCCEEDED;
    paid.amount_cents = 1000;
    paid.currency = "USD";
    testenv_publish_event(js, "payment.settled", id, &paid.base);
    /* Sold (10 -> 6), then the retried refund puts the 4 back. */
    assert_int_equal(wait_pg(pg, 1, 15000,
                             "SELECT count(*) FROM inventory.restocks WHERE"
                             " refund_id = '%s' AND units = 4",
                             "refund-rw-1"),
                     1);
    assert_int_equal(on_hand(pg, "SKU-W"), 10);
    assert_int_equal(pg_long(pg,
                             "SELECT restocked FROM inventory.reservation_lines WHERE"
                             " order_id = '%s'",
                             "RW-1"),
                     4);
    js_conn_destroy(js);
    PQfinish(pg);
    testenv_service_stop(inventory);
}

/* ---- idempotency keys and POST /refunds ----------------------------------- */

static void test_same_key_twice(void **state)
{
    (void)state;
    testenv_reset(SCHEMAS);
    pid_t refund = testenv_service_start("refund", REFUND_PORT, NULL);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();
    publish_paid(js, "RK-1", "C-K", 10000);
    assert_int_equal(wait_pg(pg, 1, 10000,
                             "SELECT count(*) FROM refund.paid_orders WHERE order_id = '%s'",
                             "RK-1"),
                     1);
    publish_request(js, "key-A", "RK-1", 3000, false, NULL);
    expect_outcome(pg, "key-A", "processed");
    /* The same request again (another event id): nothing happens. */
    publish_request(js, "key-A", "RK-1", 3000, false, NULL);
    /* Another amount under the same key: refused as a key reuse. */
    publish_request(js, "key-A", "RK-1", 4000, false, NULL);
    /* A marker after both: once it is decided, both were. */
    publish_request(js, "key-B", "RK-1", 100, false, NULL);
    expect_outcome(pg, "key-B", "processed");
    assert_int_equal(pg_long(pg,
                             "SELECT refunded_cents FROM refund.paid_orders WHERE"
                             " order_id = '%s'",
                             "RK-1"),
                     3100);
    refund_events ev;
    for (int i = 0; i < 50; i++) {
        read_refund_events(js, "RK-1", &ev);
        if (ev.n_processed == 2 && ev.n_rejected == 1)
            break;
        refund_events_free(&ev);
        usleep(100000);
    }
    assert_int_equal(ev.n_processed, 2);
    assert_int_equal(ev.n_rejected, 1);
    assert_string_equal(ev.processed[0]->idempotency_key, "key-A");
    assert_int_equal(ev.processed[0]->amount_cents, 3000);
    assert_int_equal(ev.processed[0]->refunded_total_cents, 3000);
    assert_false(ev.processed[0]->full);
    assert_string_equal(ev.processed[0]->customer_id, "C-K");
    assert_int_equal(ev.processed[1]->refunded_total_cents, 3100);
    assert_true(ev.rejected[0]->key_reuse);
    assert_int_equal(ev.rejected[0]->amount_cents, 4000);
    assert_string_equal(ev.rejected[0]->reason,
                        "idempotency key \"key-A\" already names a refund of 30.00 USD on RK-1 "
                        "(processed); this request for 40.00 USD on RK-1 is refused and changes "
                        "nothing");
    refund_events_free(&ev);

    /* The key's status says the first outcome. */
    char *body = NULL;
    assert_int_equal(testenv_http("GET", REFUND_PORT, "/refunds?key=key-A", NULL, &body), 200);
    json_t *j = json_loads(body, 0, NULL);
    free(body);
    assert_string_equal(json_string_value(json_object_get(j, "state")), "processed");
    assert_int_equal(json_integer_value(json_object_get(j, "amount_cents")), 3000);
    json_decref(j);
    assert_int_equal(testenv_http("GET", REFUND_PORT, "/refunds?key=nope", NULL, NULL), 404);
    js_conn_destroy(js);
    PQfinish(pg);
    testenv_service_stop(refund);
}

static void expect_400(const char *token, const char *request, const char *want)
{
    char *body = NULL;
    assert_int_equal(testenv_http_post_json("POST", REFUND_PORT, "/refunds", token, request, &body),
                     400);
    if (strstr(body, want) == NULL)
        fail_msg("400 body %s does not mention %s", body, want);
    free(body);
}

static void test_http_requests(void **state)
{
    (void)state;
    testenv_reset(SCHEMAS);
    const char *token = testenv_require("OMS_ADMIN_TOKEN");
    pid_t refund = testenv_service_start("refund", REFUND_PORT, NULL);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();
    publish_paid(js, "RH-1", "C-H", 5000);
    assert_int_equal(wait_pg(pg, 1, 10000,
                             "SELECT count(*) FROM refund.paid_orders WHERE order_id = '%s'",
                             "RH-1"),
                     1);
    char *body = NULL;
    const char *good = "{\"order_id\": \"RH-1\", \"amount\": \"12.34\", \"idempotency_key\": "
                       "\"http-1\", \"reason\": \"late\"}";
    assert_int_equal(testenv_http_post_json("POST", REFUND_PORT, "/refunds", NULL, good, NULL),
                     401);
    assert_int_equal(testenv_http_post_json("POST", REFUND_PORT, "/refunds", token, good, &body),
                     202);
    assert_non_null(strstr(body, "\"idempotency_key\":\"http-1\""));
    free(body);
    expect_outcome(pg, "http-1", "processed");
    assert_int_equal(pg_long(pg,
                             "SELECT amount_cents FROM refund.refunds WHERE"
                             " idempotency_key = '%s'",
                             "http-1"),
                     1234);
    /* Without a key the service makes one and answers with it. */
    assert_int_equal(testenv_http_post_json("POST", REFUND_PORT, "/refunds", token,
                                            "{\"order_id\": \"RH-1\", \"amount_cents\": 66}",
                                            &body),
                     202);
    json_t *j = json_loads(body, 0, NULL);
    free(body);
    char key[64];
    snprintf(key, sizeof key, "%s", json_string_value(json_object_get(j, "idempotency_key")));
    json_decref(j);
    assert_int_equal(strlen(key), 36);
    expect_outcome(pg, key, "processed");

    expect_400(token, "{\"amount\": \"1.00\"}", "order_id is required");
    expect_400(token, "{\"order_id\": \"RH-1\", \"amount\": \"1.234\"}", "amount must be");
    expect_400(token, "{\"order_id\": \"RH-1\", \"amount_cents\": -5}", "amount_cents");
    expect_400(token, "{\"order_id\": \"RH-1\", \"restock\": \"yes\"}", "restock");
    expect_400(token, "{\"order_id\": \"RH-1\", \"restock\": true, \"lines\": [{\"sku\": \"A\"}]}",
               "lines[0]");
    expect_400(token, "{\"order_id\": \"RH-1\", \"lines\": [{\"sku\": \"A\", \"qty\": 1}]}",
               "restock is false");
    expect_400(token, "not json", "not JSON");

    assert_int_equal(testenv_http("GET", REFUND_PORT, "/refunds?order_id=RH-1", NULL, &body), 200);
    j = json_loads(body, 0, NULL);
    free(body);
    assert_int_equal(json_integer_value(json_object_get(j, "refunded_cents")), 1300);
    assert_int_equal(json_array_size(json_object_get(j, "refunds")), 2);
    json_decref(j);
    assert_int_equal(testenv_http("GET", REFUND_PORT, "/refunds", NULL, NULL), 400);
    js_conn_destroy(js);
    PQfinish(pg);
    testenv_service_stop(refund);
}

/* ---- omsctl refund ---------------------------------------------------------- */

static void test_omsctl_refund(void **state)
{
    (void)state;
    testenv_reset(SCHEMAS);
    setenv("OMS_REFUND_URL", "http://127.0.0.1:19685", 1);
    pid_t refund = testenv_service_start("refund", REFUND_PORT, NULL);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();
    publish_paid(js, "RO-1", "C-O", 5000);
    assert_int_equal(wait_pg(pg, 1, 10000,
                             "SELECT count(*) FROM refund.paid_orders WHERE order_id = '%s'",
                             "RO-1"),
                     1);
    testenv_expect_omsctl("refund RO-1 12.50 --key cli-1 --reason 'wrong size'", 0,
                          "refunded 12.50 USD (12.50 USD refunded on the order in total)");
    /* The same command again: the first outcome, nothing refunded twice. */
    testenv_expect_omsctl("refund RO-1 12.50 --key cli-1 --reason 'wrong size'", 0,
                          "refund cli-1 on RO-1: processed");
    testenv_expect_omsctl(
        "refund RO-1 40.00 --key cli-2", 1,
        "rejected: refund of 40.00 USD exceeds the 37.50 USD still refundable on RO-1");
    testenv_expect_omsctl("refund RO-1", 0, "(50.00 USD refunded on the order in total, in full)");
    testenv_expect_omsctl("refund status --order RO-1", 0,
                          "order RO-1: paid 50.00 USD, refunded 50.00 USD");
    testenv_expect_omsctl("refund status --key cli-2", 0, "refund cli-2 on RO-1: rejected");
    testenv_expect_omsctl("refund status --key no-such-key", 1,
                          "no refund request with key no-such-key");
    testenv_expect_omsctl("refund RO-1 1.001", 2, "AMOUNT \"1.001\" must be a decimal");
    assert_int_equal(pg_long(pg,
                             "SELECT refunded_cents FROM refund.paid_orders WHERE"
                             " order_id = '%s'",
                             "RO-1"),
                     5000);
    assert_int_equal(pg_long(pg, "SELECT count(*) FROM refund.refunds WHERE order_id = '%s'",
                             "RO-1"),
                     3);
    js_conn_destroy(js);
    PQfinish(pg);
    testenv_service_stop(refund);
}

/* ---- concurrency ----------------------------------------------------------- */

/* 20 requests of 7.00 on an order paid 100.00, published at once and shared
 * by two refund processes: 14 go through (98.00), 6 are refused, and the
 * last 2.00 can still be refunded: never more than was paid. */
static void test_concurrent_requests_never_exceed_paid(void **state)
{
    (void)state;
    testenv_reset(SCHEMAS);
    /* Small batches, so the two processes really interleave. */
    const char *const env[] = {"OMS_BATCH_MAX=2", NULL};
    pid_t one = testenv_service_start("refund", REFUND_PORT, env);
    pid_t two = testenv_service_start("refund", REFUND2_PORT, env);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();
    publish_paid(js, "RC-1", "C-C", 10000);
    assert_int_equal(wait_pg(pg, 1, 10000,
                             "SELECT count(*) FROM refund.paid_orders WHERE order_id = '%s'",
                             "RC-1"),
                     1);
    char key[32];
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof key, "race-%02d", i);
        publish_request(js, key, "RC-1", 700, false, NULL);
    }
    assert_int_equal(wait_pg(pg, 20, 20000,
                             "SELECT count(*) FROM refund.refunds WHERE order_id = '%s'"
                             " AND state <> 'pending'",
                             "RC-1"),
                     20);
    assert_int_equal(pg_long(pg,
                             "SELECT count(*) FROM refund.refunds WHERE order_id = '%s'"
                             " AND state = 'processed'",
                             "RC-1"),
                     14);
    assert_int_equal(pg_long(pg,
                             "SELECT sum(amount_cents) FROM refund.refunds WHERE"
                             " order_id = '%s' AND state = 'processed'",
                             "RC-1"),
                     9800);
    publish_request(js, "race-rest", "RC-1", 0, false, NULL);
    expect_outcome(pg, "race-rest", "processed");
    assert_int_equal(pg_long(pg,
                             "SELECT refunded_cents FROM refund.paid_orders WHERE"
                             " order_id = '%s'",
                             "RC-1"),
                     10000);
    refund_events ev;
    for (int i = 0; i < 50; i++) {
        read_refund_events(js, "RC-1", &ev);
        if (ev.n_processed + ev.n_rejected == 21)
            break;
        refund_events_free(&ev);
        usleep(100000);
    }
    assert_int_equal(ev.n_processed, 15);
    assert_int_equal(ev.n_rejected, 6);
    int64_t sum = 0, max_total = 0;
    int full = 0;
    for (size_t i = 0; i < ev.n_processed; i++) {
        sum += ev.processed[i]->amount_cents;
        if (ev.processed[i]->refunded_total_cents > max_total)
            max_total = ev.processed[i]->refunded_total_cents;
        full += ev.processed[i]->full;
    }
    assert_int_equal(sum, 10000);
    assert_int_equal(max_total, 10000);
    assert_int_equal(full, 1);
    for (size_t i = 0; i < ev.n_rejected; i++)
        assert_non_null(strstr(ev.rejected[i]->reason, "refund of 7.00 USD exceeds the"));
    refund_events_free(&ev);
    /* Both processes decided some. */
    char *body = NULL;
    long decided[2];
    int ports[2] = {REFUND_PORT, REFUND2_PORT};
    for (int p = 0; p < 2; p++) {
        assert_int_equal(testenv_http("GET", ports[p], "/metrics", NULL, &body), 200);
        const char *line = strstr(body, "oms_refunds_total{outcome=\"processed\"} ");
        assert_non_null(line);
        decided[p] = atol(line + strlen("oms_refunds_total{outcome=\"processed\"} "));
        free(body);
    }
    assert_int_equal(decided[0] + decided[1], 15);
    js_conn_destroy(js);
    PQfinish(pg);
    testenv_service_stop(one);
    testenv_service_stop(two);
}

/* ---- kill -9 in the middle of a batch (mock gateway) ----------------------- */

#define CRASH_ORDERS 150

static long count_events(js_conn *js, const char *subject)
{
    testenv_msg *msgs = NULL;
    size_t n = testenv_stream_read(js, "REFUNDS", subject, &msgs);
    testenv_msgs_free(msgs, n);
    return (long)n;
}

/* Two requests of 6.00 per order paid 10.00, decided a few at a time; the
 * service is killed while it works through them and restarted: every key
 * gets one outcome, one of each pair is processed, and every outcome is
 * published once. */
static void test_kill9_mid_batch_decides_each_key_once(void **state)
{
    (void)state;
    testenv_reset(SCHEMAS);
    const char *const env[] = {"OMS_BATCH_MAX=4", "OMS_ACK_WAIT_S=2", NULL};
    char order[32], key[48];
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();
    pid_t refund = testenv_service_start("refund", REFUND_PORT, env);
    for (int i = 0; i < CRASH_ORDERS; i++) {
        snprintf(order, sizeof order, "RX-%03d", i);
        publish_paid(js, order, "C-X", 1000);
    }
    assert_int_equal(testenv_wait_pg(pg, "SELECT count(*) FROM refund.paid_orders", CRASH_ORDERS,
                                     20000),
                     CRASH_ORDERS);
    testenv_service_stop(refund);
    for (int i = 0; i < CRASH_ORDERS; i++)
        for (int k = 0; k < 2; k++) {
            snprintf(order, sizeof order, "RX-%03d", i);
            snprintf(key, sizeof key, "crash-%03d-%d", i, k);
            publish_request(js, key, order, 600, false, NULL);
        }
    refund = testenv_service_start("refund", REFUND_PORT, env);
    long decided = 0;
    for (int i = 0; i < 200 && decided < CRASH_ORDERS / 2; i++) {
        decided = testenv_pg_long(pg, "SELECT count(*) FROM refund.refunds");
        usleep(10000);
    }
    testenv_service_kill(refund);
    fprintf(stderr, "killed refund with %ld of %d requests decided\n", decided, 2 * CRASH_ORDERS);
    assert_true(decided < 2 * CRASH_ORDERS);
    refund = testenv_service_start("refund", REFUND_PORT, env);
    assert_int_equal(testenv_wait_pg(pg, "SELECT count(*) FROM refund.refunds", 2 * CRASH_ORDERS,
                                     30000),
                     2 * CRASH_ORDERS);
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM refund.refunds"
                                         " WHERE state = 'processed'"),
                     CRASH_ORDERS);
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM refund.paid_orders"
                                         " WHERE refunded_cents <> 600"),
                     0);
    for (int i = 0; i < 100 && count_events(js, "refund.rejected") < CRASH_ORDERS; i++)
        usleep(100000);
    assert_int_equal(count_events(js, "refund.processed"), CRASH_ORDERS);
    assert_int_equal(count_events(js, "refund.rejected"), CRASH_ORDERS);
    js_conn_destroy(js);
    PQfinish(pg);
    testenv_service_stop(refund);
}

/* ---- the http gateway and kill -9 ------------------------------------------ */

/* OMS_ACK_WAIT_S=2: a message the server handed to the killed process (a
 * pull request it had not yet seen closed) comes back in 2 s, not 30. */
static const char *const HTTP_ENV[] = {"OMS_PAYMENT_GATEWAY=http",
                                       "OMS_PAYMENT_GATEWAY_URL=http://127.0.0.1:19690",
                                       "OMS_PAYMENT_GATEWAY_TIMEOUT_MS=4000",
                                       "OMS_REFUND_LEASE_MARGIN_MS=500",
                                       "OMS_ACK_WAIT_S=2",
                                       NULL};

static void test_kill9_while_the_gateway_answers(void **state)
{
    (void)state;
    testenv_reset(SCHEMAS);
    gateway_start("refund_delay_ms=2500");
    pid_t refund = testenv_service_start("refund", REFUND_PORT, HTTP_ENV);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();
    publish_paid(js, "RG-1", "C-G", 9000);
    assert_int_equal(wait_pg(pg, 1, 10000,
                             "SELECT count(*) FROM refund.paid_orders WHERE order_id = '%s'",
                             "RG-1"),
                     1);
    publish_request(js, "gw-1", "RG-1", 2500, false, NULL);
    /* The gateway has it and is still answering: kill the service. */
    json_t *stats = NULL;
    for (int i = 0; i < 100; i++) {
        json_decref(stats);
        stats = gateway_stats();
        if (json_integer_value(json_object_get(stats, "refunds_total")) >= 1)
            break;
        usleep(50000);
    }
    assert_int_equal(json_integer_value(json_object_get(stats, "refunds_total")), 1);
    json_decref(stats);
    testenv_service_kill(refund);
    assert_int_equal(pg_long(pg,
                             "SELECT count(*) FROM refund.refunds WHERE idempotency_key = '%s'"
                             " AND state = 'pending'",
                             "gw-1"),
                     1);
    assert_int_equal(pg_long(pg,
                             "SELECT pending_cents FROM refund.paid_orders WHERE"
                             " order_id = '%s'",
                             "RG-1"),
                     2500);
    /* Meanwhile a request the gateway declines (amount ends in 13 cents). */
    publish_request(js, "gw-2", "RG-1", 1013, false, NULL);

    refund = testenv_service_start("refund", REFUND_PORT, HTTP_ENV);
    expect_outcome(pg, "gw-1", "processed");
    expect_outcome(pg, "gw-2", "rejected");
    assert_int_equal(pg_long(pg,
                             "SELECT refunded_cents FROM refund.paid_orders WHERE"
                             " order_id = '%s'",
                             "RG-1"),
                     2500);
    assert_int_equal(pg_long(pg,
                             "SELECT pending_cents FROM refund.paid_orders WHERE"
                             " order_id = '%s'",
                             "RG-1"),
                     0);
    char *ref = pg_text(pg, "SELECT gateway_ref FROM refund.refunds WHERE idempotency_key = '%s'",
                        "gw-1");
    assert_int_equal(strncmp(ref, "fgr-", 4), 0);
    free(ref);
    /* The gateway was asked at least twice under one key and refunded once. */
    stats = gateway_stats();
    assert_int_equal(json_integer_value(json_object_get(stats, "refunded_cents")), 2500);
    assert_int_equal(json_object_size(json_object_get(stats, "refunds")), 2);
    json_decref(stats);
    refund_events ev;
    for (int i = 0; i < 50; i++) {
        read_refund_events(js, "RG-1", &ev);
        if (ev.n_processed + ev.n_rejected >= 2)
            break;
        refund_events_free(&ev);
        usleep(100000);
    }
    assert_int_equal(ev.n_processed, 1);
    assert_int_equal(ev.n_rejected, 1);
    assert_string_equal(ev.processed[0]->idempotency_key, "gw-1");
    assert_int_equal(strncmp(ev.processed[0]->gateway_ref, "fgr-", 4), 0);
    assert_non_null(strstr(ev.rejected[0]->reason, "refund declined by the card issuer"));
    refund_events_free(&ev);
    js_conn_destroy(js);
    PQfinish(pg);
    testenv_service_stop(refund);
    gateway_stop();
}

/* 503s before the gateway answers: retried with backoff under one key;
 * never answered within OMS_REFUND_MAX_ATTEMPTS: rejected, and the held
 * amount is refundable again. */
static void test_gateway_retries_then_gives_up(void **state)
{
    (void)state;
    testenv_reset(SCHEMAS);
    gateway_start("refund_fail_first_n=2");
    pid_t refund = testenv_service_start("refund", REFUND_PORT, HTTP_ENV);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();
    publish_paid(js, "RR-1", "C-R", 3000);
    assert_int_equal(wait_pg(pg, 1, 10000,
                             "SELECT count(*) FROM refund.paid_orders WHERE"
                             " order_id = '%s'",
                             "RR-1"),
                     1);
    publish_request(js, "retry-1", "RR-1", 1000, false, NULL);
    expect_outcome(pg, "retry-1", "processed");
    assert_int_equal(pg_long(pg, "SELECT attempts FROM refund.refunds WHERE idempotency_key = '%s'",
                             "retry-1"),
                     3);
    char *refund_id = pg_text(pg,
                              "SELECT refund_id FROM refund.refunds WHERE"
                              " idempotency_key = '%s'",
                              "retry-1");
    json_t *stats = gateway_stats();
    json_t *rec = json_object_get(json_object_get(stats, "refunds"), refund_id);
    assert_non_null(rec);
    json_t *answers = json_object_get(rec, "answers");
    assert_int_equal(json_array_size(answers), 3);
    assert_int_equal(json_integer_value(json_array_get(answers, 0)), 503);
    assert_int_equal(json_integer_value(json_array_get(answers, 2)), 200);
    json_decref(stats);
    free(refund_id);
    testenv_service_stop(refund);

    const char *const give_up_env[] = {"OMS_PAYMENT_GATEWAY=http",
                                       "OMS_PAYMENT_GATEWAY_URL=http://127.0.0.1:19690",
                                       "OMS_REFUND_MAX_ATTEMPTS=2", NULL};
    refund = testenv_service_start("refund", REFUND_PORT, give_up_env);
    publish_request(js, "retry-2", "RR-1", 0, false, NULL);
    expect_outcome(pg, "retry-2", "rejected");
    char *why = pg_text(pg, "SELECT reject_reason FROM refund.refunds WHERE idempotency_key = '%s'",
                        "retry-2");
    assert_string_equal(why, "the payment gateway did not answer the refund after 2 attempts "
                             "(last: a 5xx answer)");
    free(why);
    assert_int_equal(pg_long(pg,
                             "SELECT pending_cents FROM refund.paid_orders WHERE"
                             " order_id = '%s'",
                             "RR-1"),
                     0);
    assert_int_equal(pg_long(pg,
                             "SELECT refunded_cents FROM refund.paid_orders WHERE"
                             " order_id = '%s'",
                             "RR-1"),
                     1000);
    js_conn_destroy(js);
    PQfinish(pg);
    testenv_service_stop(refund);
    gateway_stop();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_partial_partial_full_with_restock, teardown),
        cmocka_unit_test_teardown(test_restock_waits_for_the_sale, teardown),
        cmocka_unit_test_teardown(test_same_key_twice, teardown),
        cmocka_unit_test_teardown(test_http_requests, teardown),
        cmocka_unit_test_teardown(test_omsctl_refund, teardown),
        cmocka_unit_test_teardown(test_concurrent_requests_never_exceed_paid, teardown),
        cmocka_unit_test_teardown(test_kill9_mid_batch_decides_each_key_once, teardown),
        cmocka_unit_test_teardown(test_kill9_while_the_gateway_answers, teardown),
        cmocka_unit_test_teardown(test_gateway_retries_then_gives_up, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
