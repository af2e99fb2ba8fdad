/*
 * test_inventory.c - the inventory service against the real stack: stock
 * that runs out at a known order, two processes on one durable never
 * overselling 5,000 orders, settlements committing and releasing exactly
 * what was reserved (and ignoring what they should), poison dead-lettered
 * without blocking, and kill -9 in the middle of 5,000 orders losing and
 * duplicating nothing.
 */
#include "testenv.h"

#include "oms_events.pb-c.h"
#include "pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PORT 19082
#define PORT2 19092
#define N(a) (sizeof(a) / sizeof((a)[0]))

static const char *const SCHEMAS[] = {"inventory", NULL};

/* ---- publishing --------------------------------------------------------- */

/* Publishes payload on subject with Nats-Msg-Id and Oms-Type, waiting for the
 * PubAck (sync) or not (then call js_publish_wait). */
static void publish_raw(js_conn *js, const char *subject, const char *type, const char *event_id,
                        const void *data, size_t len, bool sync)
{
    if (!sync) {
        assert_int_equal(js_publish_async(js, subject, type, event_id, data, len), OMS_OK);
        return;
    }
    const char *headers[] = {JS_HDR_MSG_ID, event_id, JS_HDR_TYPE, type, NULL};
    testenv_publish(js, subject, data, len, headers);
}

static void publish_pb(js_conn *js, const char *subject, const char *event_id,
                       const ProtobufCMessage *msg, bool sync)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(len ? len : 1);
    assert_non_null(buf);
    protobuf_c_message_pack(msg, buf);
    publish_raw(js, subject, msg->descriptor->name, event_id, buf, len, sync);
    free(buf);
}

/* Fills meta with a fresh event id (written to id). */
static void meta_init(Oms__V1__EventMeta *meta, char id[37], const char *correlation)
{
    oms__v1__event_meta__init(meta);
    oms_uuid4(id);
    meta->event_id = id;
    meta->occurred_at_ms = oms_now_ms();
    meta->correlation_id = (char *)correlation;
    meta->producer = "test";
}

static void publish_product(js_conn *js, const char *sku, const char *name, int64_t on_hand,
                            int64_t price_cents)
{
    Oms__V1__ProductUpserted ev = OMS__V1__PRODUCT_UPSERTED__INIT;
    Oms__V1__EventMeta meta;
    char id[37];
    meta_init(&meta, id, sku);
    ev.meta = &meta;
    ev.sku = (char *)sku;
    ev.name = (char *)name;
    ev.on_hand = on_hand;
    ev.price_cents = price_cents;
    publish_pb(js, "catalog.product", id, &ev.base, true);
}

/* Publishes order.created for order_id with lines (sku[i], qty[i]) at 100
 * cents a unit; the event id goes to event_id when not NULL. */
static void publish_order(js_conn *js, const char *order_id, const char *const *skus,
                          const int *qty, size_t n, bool sync, char *event_id)
{
    Oms__V1__OrderCreated ev = OMS__V1__ORDER_CREATED__INIT;
    Oms__V1__OrderLine lines[4], *ptrs[4];
    Oms__V1__EventMeta meta;
    char id[37], customer[32];
    assert_true(n <= N(lines));
    meta_init(&meta, id, order_id);
    snprintf(customer, sizeof customer, "CUST-%s", order_id);
    ev.meta = &meta;
    ev.order_id = (char *)order_id;
    ev.customer_id = customer;
    ev.customer_email = "buyer@example.com";
    ev.currency = "USD";
    ev.import_id = "imp-inventory";
    for (size_t i = 0; i < n; i++) {
        oms__v1__order_line__init(&lines[i]);
        lines[i].sku = (char *)skus[i];
        lines[i].product_name = "Thing";
        lines[i].qty = qty[i];
        lines[i].unit_price_cents = 100;
        ev.total_cents += 100 * qty[i];
        ptrs[i] = &lines[i];
    }
    ev.n_lines = n;
    ev.lines = ptrs;
    publish_pb(js, "order.created", id, &ev.base, sync);
    if (event_id != NULL)
        memcpy(event_id, id, sizeof id);
}

static void publish_one_line(js_conn *js, const char *order_id, const char *sku, int qty)
{
    publish_order(js, order_id, &sku, &qty, 1, true, NULL);
}

static void publish_payment(js_conn *js, const char *order_id, bool succeeded, const char *reason,
                            bool sync, char *event_id)
{
    Oms__V1__PaymentSettled ev = OMS__V1__PAYMENT_SETTLED__INIT;
    Oms__V1__EventMeta meta;
    char id[37];
    meta_init(&meta, id, order_id);
    ev.meta = &meta;
    ev.order_id = (char *)order_id;
    ev.payment_id = "pay-1";
    ev.status = succeeded ? OMS__V1__PAYMENT_STATUS__PAYMENT_STATUS_SUCCEEDED
                          : OMS__V1__PAYMENT_STATUS__PAYMENT_STATUS_FAILED;
    ev.amount_cents = 100;
    ev.currency = "USD";
    ev.reason = (char *)reason;
    publish_pb(js, "payment.settled", id, &ev.base, sync);
    if (event_id != NULL)
        memcpy(event_id, id, sizeof id);
}

/* ---- reading back ----------------------------------------------------- */

static bool outbox_empty(void *arg)
{
    (void)arg;
    PGconn *c = testenv_pg();
    long n = testenv_pg_long(c, "SELECT count(*) FROM inventory.outbox");
    PQfinish(c);
    return n == 0;
}

/* Waits until a one-value query reaches want, then until every event is out. */
static void wait_applied(PGconn *pg, const char *sql, long want, int timeout_ms)
{
    long got = testenv_wait_pg(pg, sql, want, timeout_ms);
    if (got != want)
        fprintf(stderr, "%s\n  want %ld, got %ld\n", sql, want, got);
    assert_int_equal(got, want);
    assert_true(testenv_wait(outbox_empty, NULL, 20000));
}

/* The single text value of sql (malloc'd). */
static char *pg_text(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        fprintf(stderr, "query failed: %s\n%s", sql, PQerrorMessage(c));
        PQclear(r);
        fail();
    }
    char *v = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

static void assert_pg_text(PGconn *c, const char *sql, const char *want)
{
    char *got = pg_text(c, sql);
    if (strcmp(got, want) != 0)
        fprintf(stderr, "%s\n  want \"%s\"\n  got  \"%s\"\n", sql, want, got);
    assert_string_equal(got, want);
    free(got);
}

static void exec_ok(PGconn *c, const char *sql, int n, const char *const *params)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fprintf(stderr, "%s\n%s", sql, PQerrorMessage(c));
    assert_true(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK);
    PQclear(r);
}

/* Value of one series in the /metrics text of the service on port, 0 when absent. */
static long metric(int port, const char *series)
{
    char *body = NULL, prefix[256];
    assert_int_equal(testenv_http("GET", port, "/metrics", NULL, &body), 200);
    snprintf(prefix, sizeof prefix, "\n%s ", series);
    const char *at = strstr(body, prefix);
    long v = at ? atol(at + strlen(prefix)) : 0;
    free(body);
    return v;
}

/* Every SKU and order id of these tests starts with this: other tests on
 * the same stack publish their own orders (and SKU-A, SKU-B...) and settle
 * what they find in STOCK; the assertions here are about ours. */
#define OURS "INV-"

static bool ours(const char *order_id)
{
    return strncmp(order_id, OURS, strlen(OURS)) == 0;
}

/* The order id of one of our stock events (malloc'd), checking what every
 * event of its type must satisfy; NULL for another test's event. */
static char *stock_event_order_id(const testenv_msg *m)
{
    char *order_id = NULL;
    if (strcmp(m->subject, "stock.reserved") == 0) {
        Oms__V1__StockReserved *e = oms__v1__stock_reserved__unpack(NULL, m->len, m->data);
        assert_non_null(e);
        if (ours(e->order_id)) {
            assert_string_equal(e->meta->event_id, m->msg_id);
            assert_string_equal(e->meta->producer, "inventory");
            assert_string_equal(e->meta->correlation_id, e->order_id);
            order_id = strdup(e->order_id);
        }
        oms__v1__stock_reserved__free_unpacked(e, NULL);
    } else if (strcmp(m->subject, "stock.rejected") == 0) {
        Oms__V1__StockRejected *e = oms__v1__stock_rejected__unpack(NULL, m->len, m->data);
        char want[256];
        assert_non_null(e);
        if (ours(e->order_id)) {
            if (e->available_qty < 0)
                snprintf(want, sizeof want, "%s: unknown product", e->sku);
            else
                snprintf(want, sizeof want, "%s: %lld requested, %lld available", e->sku,
                         (long long)e->requested_qty, (long long)e->available_qty);
            assert_string_equal(e->reason, want);
            assert_true(e->available_qty >= -1 && e->available_qty < e->requested_qty);
            assert_string_equal(e->meta->event_id, m->msg_id);
            assert_string_equal(e->meta->producer, "inventory");
            order_id = strdup(e->order_id);
        }
        oms__v1__stock_rejected__free_unpacked(e, NULL);
    } else {
        /* stock.committed and stock.released share fields 1-3. */
        Oms__V1__StockCommitted *e = oms__v1__stock_committed__unpack(NULL, m->len, m->data);
        assert_non_null(e);
        if (ours(e->order_id)) {
            assert_true(e->n_lines >= 1);
            assert_string_equal(e->meta->producer, "inventory");
            order_id = strdup(e->order_id);
        }
        oms__v1__stock_committed__free_unpacked(e, NULL);
    }
    return order_id;
}

/* Our events now in STOCK, as (subject, order id) in the temp table
 * stock_events of pg, which is (re)created. Returns the number of events. */
static size_t load_stock_events(js_conn *js, PGconn *pg)
{
    testenv_msg *msgs = NULL;
    size_t n = testenv_stream_read(js, "STOCK", NULL, &msgs), n_ours = 0;
    pg_array subjects, ids;
    pg_array_init(&subjects), pg_array_init(&ids);
    for (size_t i = 0; i < n; i++) {
        char *order_id = stock_event_order_id(&msgs[i]);
        if (order_id == NULL)
            continue;
        n_ours++;
        assert_int_equal(pg_array_add(&subjects, msgs[i].subject), OMS_OK);
        assert_int_equal(pg_array_add(&ids, order_id), OMS_OK);
        free(order_id);
    }
    testenv_msgs_free(msgs, n);
    exec_ok(pg, "DROP TABLE IF EXISTS stock_events", 0, NULL);
    exec_ok(pg, "CREATE TEMP TABLE stock_events (subject text, order_id text)", 0, NULL);
    const char *params[] = {pg_array_literal(&subjects), pg_array_literal(&ids)};
    if (n_ours > 0)
        exec_ok(pg, "INSERT INTO stock_events SELECT * FROM unnest($1::text[], $2::text[])", 2,
                params);
    pg_array_fini(&subjects), pg_array_fini(&ids);
    return n_ours;
}

/* ---- (a) stock runs out at a known order -------------------------------- */

typedef struct want_rejection {
    const char *order_id, *reason, *sku;
    int64_t requested, available;
} want_rejection;

static const want_rejection REJECTIONS[] = {
    {"INV-O-11", "INV-A: 1 requested, 0 available", "INV-A", 1, 0},
    {"INV-O-12", "INV-A: 1 requested, 0 available", "INV-A", 1, 0},
    {"INV-O-13", "INV-A: 1 requested, 0 available", "INV-A", 1, 0},
    {"INV-O-15", "INV-B: 2 requested, 1 available", "INV-B", 2, 1},
    {"INV-O-16", "INV-9: unknown product", "INV-9", 1, -1},
};

static void check_rejected_event(const testenv_msg *m)
{
    Oms__V1__StockRejected *e = oms__v1__stock_rejected__unpack(NULL, m->len, m->data);
    assert_non_null(e);
    const want_rejection *w = NULL;
    for (size_t k = 0; k < N(REJECTIONS); k++)
        if (strcmp(REJECTIONS[k].order_id, e->order_id) == 0)
            w = &REJECTIONS[k];
    if (w == NULL)
        fprintf(stderr, "unexpected stock.rejected for %s: %s\n", e->order_id, e->reason);
    assert_non_null(w);
    assert_string_equal(e->reason, w->reason);
    assert_string_equal(e->sku, w->sku);
    assert_int_equal(e->requested_qty, w->requested);
    assert_int_equal(e->available_qty, w->available);
    assert_string_equal(e->meta->producer, "inventory");
    assert_string_equal(e->meta->correlation_id, e->order_id);
    oms__v1__stock_rejected__free_unpacked(e, NULL);
}

/* O-14 ordered INV-B twice (2 + 2): the event carries both lines as ordered. */
static void check_reserved_event(const testenv_msg *m, const char *o14_event_id, int *reserved)
{
    Oms__V1__StockReserved *e = oms__v1__stock_reserved__unpack(NULL, m->len, m->data);
    assert_non_null(e);
    int k = atoi(e->order_id + strlen("INV-O-"));
    assert_true((k >= 1 && k <= 10) || k == 14);
    reserved[k]++;
    assert_string_equal(e->meta->producer, "inventory");
    assert_string_equal(e->meta->correlation_id, e->order_id);
    assert_string_equal(e->meta->event_id, m->msg_id);
    assert_string_equal(e->currency, "USD");
    assert_string_equal(e->import_id, "imp-inventory");
    if (k == 14) {
        assert_string_equal(e->meta->causation_id, o14_event_id);
        assert_string_equal(e->customer_id, "CUST-INV-O-14");
        assert_int_equal(e->total_cents, 400);
        assert_int_equal(e->n_lines, 2);
        assert_string_equal(e->lines[0]->sku, "INV-B");
        assert_int_equal(e->lines[0]->qty, 2);
        assert_string_equal(e->lines[1]->sku, "INV-B");
        assert_int_equal(e->lines[1]->qty, 2);
    } else {
        assert_int_equal(e->n_lines, 1);
        assert_int_equal(e->total_cents, 100);
    }
    oms__v1__stock_reserved__free_unpacked(e, NULL);
}

static void check_http_products(void)
{
    char *body = NULL;
    assert_int_equal(testenv_http("GET", PORT, "/products", NULL, &body), 200);
    assert_string_equal(body,
                        "[{\"sku\":\"INV-A\",\"name\":\"Widget A\",\"on_hand\":10,\"reserved\":10,"
                        "\"available\":0,\"price_cents\":250},"
                        "{\"sku\":\"INV-B\",\"name\":\"Widget B\",\"on_hand\":5,\"reserved\":4,"
                        "\"available\":1,\"price_cents\":1000}]");
    free(body);
    assert_int_equal(testenv_http("GET", PORT, "/products/INV-B", NULL, &body), 200);
    assert_string_equal(body, "{\"sku\":\"INV-B\",\"name\":\"Widget B\",\"on_hand\":5,"
                              "\"reserved\":4,\"available\":1,\"price_cents\":1000}");
    free(body);
    assert_int_equal(testenv_http("GET", PORT, "/products/INV-9", NULL, &body), 404);
    assert_string_equal(body, "{\"error\":\"no product with sku \\\"INV-9\\\"; load it with "
                              "omsctl stock load\"}");
    free(body);
}

static void test_stock_runs_out_at_a_known_order(void **state)
{
    (void)state;
    testenv_reset(SCHEMAS);
    pid_t pid = testenv_service_start("inventory", PORT, NULL);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();
    char o14_event_id[37];

    publish_product(js, "INV-A", "Widget A", 10, 250);
    publish_product(js, "INV-B", "Widget B", 5, 1000);
    wait_applied(pg, "SELECT count(*) FROM inventory.products", 2, 10000);
    /* Twelve orders of one unit for ten units. */
    for (int i = 1; i <= 12; i++) {
        char id[16];
        snprintf(id, sizeof id, "INV-O-%02d", i);
        publish_one_line(js, id, "INV-A", 1);
    }
    /* All or nothing: INV-B is there, INV-A no longer. */
    publish_order(js, "INV-O-13", (const char *[]){"INV-B", "INV-A"}, (int[]){2, 1}, 2, true, NULL);
    /* Lines of one SKU summed: 4 of the 5 INV-B, then 1 + 1 > 1 left. */
    publish_order(js, "INV-O-14", (const char *[]){"INV-B", "INV-B"}, (int[]){2, 2}, 2, true,
                  o14_event_id);
    publish_order(js, "INV-O-15", (const char *[]){"INV-B", "INV-B"}, (int[]){1, 1}, 2, true, NULL);
    publish_one_line(js, "INV-O-16", "INV-9", 1);
    /* order.created for INV-O-01 again, under another event id: ignored. */
    char dup_event_id[37];
    publish_order(js, "INV-O-01", (const char *[]){"INV-B"}, (int[]){1}, 1, true, dup_event_id);
    assert_true(testenv_durable_settled(js, "ORDERS", "inventory-orders", 20000));
    wait_applied(pg, "SELECT count(*) FROM inventory.reservations WHERE order_id LIKE 'INV-O-%'",
                 16, 20000);

    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM inventory.reservations"
                                         " WHERE order_id LIKE 'INV-O-%'"
                                         " AND status = 'reserved'"),
                     11);
    assert_pg_text(pg,
                   "SELECT string_agg(order_id || '=' || reason, '; ' ORDER BY order_id)"
                   " FROM inventory.reservations"
                   " WHERE order_id LIKE 'INV-O-%' AND status = 'rejected'",
                   "INV-O-11=INV-A: 1 requested, 0 available; "
                   "INV-O-12=INV-A: 1 requested, 0 available; "
                   "INV-O-13=INV-A: 1 requested, 0 available; "
                   "INV-O-15=INV-B: 2 requested, 1 available; "
                   "INV-O-16=INV-9: unknown product");
    assert_pg_text(pg,
                   "SELECT string_agg(sku || ':' || on_hand || '/' || reserved, ' '"
                   " ORDER BY sku) FROM inventory.products",
                   "INV-A:10/10 INV-B:5/4");
    assert_pg_text(pg,
                   "SELECT string_agg(sku || ':' || qty, ' ' ORDER BY order_id)"
                   " FROM inventory.reservation_lines"
                   " WHERE order_id IN ('INV-O-01', 'INV-O-13', 'INV-O-14', 'INV-O-15')",
                   "INV-A:1 INV-B:4");
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM inventory.reservation_lines"), 11);

    testenv_msg *msgs = NULL;
    size_t n = testenv_stream_read(js, "STOCK", NULL, &msgs);
    int reserved[17] = {0}, rejected = 0;
    for (size_t i = 0; i < n; i++) {
        char *order_id = stock_event_order_id(&msgs[i]);
        if (order_id == NULL)
            continue;
        if (strcmp(msgs[i].subject, "stock.rejected") == 0) {
            check_rejected_event(&msgs[i]);
            rejected++;
        } else {
            assert_string_equal(msgs[i].subject, "stock.reserved");
            check_reserved_event(&msgs[i], o14_event_id, reserved);
        }
        free(order_id);
    }
    assert_int_equal(rejected, 5);
    for (int k = 1; k <= 16; k++)
        assert_int_equal(reserved[k], (k <= 10 || k == 14) ? 1 : 0);
    testenv_msgs_free(msgs, n);

    check_http_products();
    /* Only our orders can hold our SKUs; another test's orders would be
     * rejected (unknown products), so rejections are compared with the table. */
    assert_int_equal(metric(PORT, "oms_inventory_reservations_total{result=\"reserved\"}"), 11);
    assert_int_equal(metric(PORT, "oms_inventory_reservations_total{result=\"rejected\"}"),
                     testenv_pg_long(pg, "SELECT count(*) FROM inventory.reservations"
                                         " WHERE status = 'rejected'"));

    /* A stock load sets the level; it does not add to it. */
    publish_product(js, "INV-A", "Widget A", 25, 250);
    assert_int_equal(testenv_wait_pg(pg,
                                     "SELECT on_hand FROM inventory.products"
                                     " WHERE sku = 'INV-A'",
                                     25, 10000),
                     25);
    assert_int_equal(testenv_pg_long(pg, "SELECT reserved FROM inventory.products"
                                         " WHERE sku = 'INV-A'"),
                     10);
    PQfinish(pg);
    js_conn_destroy(js);
    testenv_service_stop(pid);
}

/* ---- (b, c, e) many orders -------------------------------------------- */

#define MANY_ORDERS 5000
#define UNITS_PER_SKU 1000

static const char *const SKUS[] = {"INV-1", "INV-2", "INV-3"};

/* Orders of ours decided on; only ours can be reserved (they alone name our SKUs). */
#define DECIDED_SQL "SELECT count(*) FROM inventory.reservations WHERE order_id LIKE 'INV-M-%'"

static uint32_t next_random(uint32_t *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return (*seed >> 16) & 0x7fff;
}

static void load_three_products(js_conn *js, PGconn *pg)
{
    for (size_t k = 0; k < N(SKUS); k++)
        publish_product(js, SKUS[k], SKUS[k], UNITS_PER_SKU, 500);
    wait_applied(pg, "SELECT count(*) FROM inventory.products", 3, 10000);
}

/* Publishes MANY_ORDERS orders of 1-3 units of 1-2 distinct SKUs (fixed
 * seed), without waiting for each PubAck; records every line in the temp
 * table ordered_lines. */
static void publish_many_orders(js_conn *js, PGconn *pg)
{
    uint32_t seed = 20261102;
    pg_array ids, skus, qtys;
    pg_array_init(&ids), pg_array_init(&skus), pg_array_init(&qtys);
    for (int i = 0; i < MANY_ORDERS; i++) {
        char id[16];
        const char *line_skus[2];
        int qty[2];
        size_t n = 1 + next_random(&seed) % 2;
        size_t first = next_random(&seed) % N(SKUS);
        snprintf(id, sizeof id, "INV-M-%05d", i);
        for (size_t l = 0; l < n; l++) {
            line_skus[l] = SKUS[(first + l) % N(SKUS)];
            qty[l] = 1 + (int)(next_random(&seed) % 3);
            pg_array_add(&ids, id), pg_array_add(&skus, line_skus[l]);
            pg_array_add_int(&qtys, qty[l]);
        }
        publish_order(js, id, line_skus, qty, n, false, NULL);
    }
    assert_int_equal(js_publish_wait(js, 30000), OMS_OK);
    exec_ok(pg, "CREATE TEMP TABLE ordered_lines (order_id text, sku text, qty bigint)", 0, NULL);
    const char *params[] = {pg_array_literal(&ids), pg_array_literal(&skus),
                            pg_array_literal(&qtys)};
    exec_ok(pg,
            "INSERT INTO ordered_lines"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])",
            3, params);
    pg_array_fini(&ids), pg_array_fini(&skus), pg_array_fini(&qtys);
}

/* Every order has exactly one outcome, in the stream and in the database,
 * and nothing is oversold. Returns the number of reserved orders. */
static long check_one_outcome_each(js_conn *js, PGconn *pg)
{
    assert_int_equal(load_stock_events(js, pg), MANY_ORDERS);
    assert_int_equal(testenv_pg_long(pg, "SELECT count(DISTINCT order_id) FROM stock_events"),
                     MANY_ORDERS);
    /* The stream and the database tell the same story, order by order. */
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM stock_events e"
                                         " JOIN inventory.reservations r USING (order_id)"
                                         " WHERE e.subject = 'stock.' || r.status"),
                     MANY_ORDERS);
    long reserved = testenv_pg_long(pg, "SELECT count(*) FROM inventory.reservations"
                                        " WHERE status = 'reserved'");
    /* Each reserved order holds at least one unit of 3 x 1,000. */
    assert_true(reserved > 0 && reserved <= (long)N(SKUS) * UNITS_PER_SKU);
    /* A reserved order holds exactly what it ordered; a rejected one nothing. */
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM (SELECT l.order_id, l.sku, l.qty"
                                         " FROM inventory.reservation_lines l EXCEPT"
                                         " SELECT o.order_id, o.sku, o.qty FROM ordered_lines o"
                                         " JOIN inventory.reservations r USING (order_id)"
                                         " WHERE r.status = 'reserved') d"),
                     0);
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM ordered_lines o"
                                         " JOIN inventory.reservations r USING (order_id)"
                                         " WHERE r.status = 'reserved'"),
                     testenv_pg_long(pg, "SELECT count(*) FROM inventory.reservation_lines"));
    /* Never oversold; products.reserved is exactly what reservations hold. */
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM inventory.products p"
                                         " WHERE p.on_hand = 1000 AND p.reserved <= p.on_hand"
                                         " AND p.reserved = (SELECT coalesce(sum(qty), 0)"
                                         "  FROM inventory.reservation_lines l"
                                         "  WHERE l.sku = p.sku)"),
                     (long)N(SKUS));
    return reserved;
}

/* (c) SUCCEEDED for every other reserved order, FAILED for the rest. */
static void settle_all(js_conn *js, PGconn *pg, long reserved)
{
    PGresult *r = PQexec(pg, "SELECT order_id FROM inventory.reservations"
                             " WHERE status = 'reserved' ORDER BY order_id");
    assert_int_equal(PQntuples(r), reserved);
    for (int i = 0; i < PQntuples(r); i++)
        publish_payment(js, PQgetvalue(r, i, 0), i % 2 == 0, i % 2 ? "card declined" : "", false,
                        NULL);
    PQclear(r);
    assert_int_equal(js_publish_wait(js, 30000), OMS_OK);
    wait_applied(pg, "SELECT count(*) FROM inventory.reservations WHERE status = 'reserved'", 0,
                 60000);
    long committed = (reserved + 1) / 2, released = reserved / 2;
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM inventory.reservations"
                                         " WHERE status = 'committed' AND settled_at IS NOT NULL"),
                     committed);
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM inventory.reservations"
                                         " WHERE status = 'released' AND settled_at IS NOT NULL"),
                     released);
    /* At rest nothing is held, and every unit sold left on_hand exactly once. */
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM inventory.products p"
                                         " WHERE p.reserved = 0 AND p.on_hand + (SELECT"
                                         "  coalesce(sum(l.qty), 0)"
                                         "  FROM inventory.reservation_lines l"
                                         "  JOIN inventory.reservations r USING (order_id)"
                                         "  WHERE r.status = 'committed' AND l.sku = p.sku)"
                                         " = 1000"),
                     (long)N(SKUS));
    assert_true(testenv_pg_long(pg, "SELECT sum(on_hand) FROM inventory.products") <
                (long)N(SKUS) * UNITS_PER_SKU);
    load_stock_events(js, pg);
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM stock_events e JOIN"
                                         " inventory.reservations r USING (order_id)"
                                         " WHERE e.subject = 'stock.committed'"
                                         " AND r.status = 'committed'"),
                     committed);
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM stock_events e JOIN"
                                         " inventory.reservations r USING (order_id)"
                                         " WHERE e.subject = 'stock.released'"
                                         " AND r.status = 'released'"),
                     released);
}

/* A released order's lines and reason, from its stock.released event. */
static void check_one_released_event(js_conn *js, PGconn *pg)
{
    char *order_id = pg_text(pg, "SELECT min(order_id) FROM inventory.reservations"
                                 " WHERE status = 'released'");
    char *want_lines = pg_text(pg, "SELECT string_agg(sku || ':' || qty, ' ' ORDER BY sku)"
                                   " FROM inventory.reservation_lines WHERE order_id ="
                                   " (SELECT min(order_id) FROM inventory.reservations"
                                   "  WHERE status = 'released')");
    testenv_msg *msgs = NULL;
    size_t n = testenv_stream_read(js, "STOCK", "stock.released", &msgs), found = 0;
    for (size_t i = 0; i < n; i++) {
        Oms__V1__StockReleased *e = oms__v1__stock_released__unpack(NULL, msgs[i].len,
                                                                    msgs[i].data);
        assert_non_null(e);
        if (strcmp(e->order_id, order_id) == 0) {
            char lines[128] = "";
            for (size_t l = 0; l < e->n_lines; l++)
                snprintf(lines + strlen(lines), sizeof lines - strlen(lines), "%s%s:%d",
                         l ? " " : "", e->lines[l]->sku, e->lines[l]->qty);
            assert_string_equal(lines, want_lines);
            assert_string_equal(e->reason, "card declined");
            assert_string_equal(e->lines[0]->product_name, e->lines[0]->sku);
            assert_string_equal(e->meta->producer, "inventory");
            assert_string_equal(e->meta->correlation_id, order_id);
            found++;
        }
        oms__v1__stock_released__free_unpacked(e, NULL);
    }
    assert_int_equal(found, 1);
    testenv_msgs_free(msgs, n);
    free(order_id);
    free(want_lines);
}

static long ignored_settlements(void)
{
    const char *series = "oms_inventory_settlements_total{result=\"ignored\"}";
    return metric(PORT, series) + metric(PORT2, series);
}

/* A settlement for an unknown order, and one replayed after the release,
 * change nothing. */
static void check_ignored_settlements(js_conn *js, PGconn *pg)
{
    const char *state_sql = "SELECT string_agg(sku || ':' || on_hand || '/' || reserved, ' '"
                            " ORDER BY sku) || ' ' || (SELECT string_agg(status || '=' || n, ' '"
                            " ORDER BY status) FROM (SELECT status, count(*) n FROM"
                            " inventory.reservations WHERE order_id LIKE 'INV-%'"
                            " GROUP BY status) s) FROM inventory.products";
    char *before = pg_text(pg, state_sql);
    char *released = pg_text(pg, "SELECT min(order_id) FROM inventory.reservations"
                                 " WHERE status = 'released'");
    size_t events = load_stock_events(js, pg);
    long ignored = ignored_settlements();
    char unknown_id[37], replay_id[37];
    publish_payment(js, "INV-NO-SUCH-ORDER", true, "", true, unknown_id);
    publish_payment(js, released, true, "", true, replay_id);
    assert_true(testenv_durable_settled(js, "PAYMENTS", "inventory-payments", 10000));
    char *after = pg_text(pg, state_sql);
    assert_string_equal(after, before);
    assert_int_equal(load_stock_events(js, pg), events);
    assert_int_equal(ignored_settlements() - ignored, 2);
    free(before), free(after), free(released);
}

static void test_two_processes_never_oversell_then_settle(void **state)
{
    (void)state;
    testenv_reset(SCHEMAS);
    pid_t a = testenv_service_start("inventory", PORT, NULL);
    pid_t b = testenv_service_start("inventory", PORT2, NULL);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();

    load_three_products(js, pg);
    publish_many_orders(js, pg);
    wait_applied(pg, DECIDED_SQL, MANY_ORDERS, 120000);
    long reserved = check_one_outcome_each(js, pg);
    fprintf(stderr, "%ld of %d orders reserved\n", reserved, MANY_ORDERS);

    /* Both processes reserved orders, and their counts add up exactly. */
    const char *res = "oms_inventory_reservations_total{result=\"reserved\"}";
    long a_reserved = metric(PORT, res), b_reserved = metric(PORT2, res);
    fprintf(stderr, "process 1 reserved %ld orders, process 2 %ld\n", a_reserved, b_reserved);
    assert_true(a_reserved > 0 && b_reserved > 0);
    assert_int_equal(a_reserved + b_reserved, reserved);
    /* Locks taken in one order: no deadlock, so no batch was ever rolled back. */
    assert_int_equal(metric(PORT, "oms_consumer_retries_total"), 0);
    assert_int_equal(metric(PORT2, "oms_consumer_retries_total"), 0);

    settle_all(js, pg, reserved);
    check_one_released_event(js, pg);
    check_ignored_settlements(js, pg);

    PQfinish(pg);
    js_conn_destroy(js);
    testenv_service_stop(a);
    testenv_service_stop(b);
}

/* ---- (d) poison ------------------------------------------------------------ */

#define DEAD_LETTERS_SQL "SELECT count(*) FROM inventory.dead_letters"

static void test_poison_is_dead_lettered_and_does_not_block(void **state)
{
    (void)state;
    static const uint8_t garbage[] = {0x12, 0x05, 'O'}; /* a string cut short */
    testenv_reset(SCHEMAS);
    pid_t pid = testenv_service_start("inventory", PORT, NULL);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();

    publish_product(js, "INV-P", "Pencil", 5, 120);
    wait_applied(pg, "SELECT count(*) FROM inventory.products", 1, 10000);
    publish_raw(js, "order.created", "oms.v1.OrderCreated", "bad-order-1", garbage, sizeof garbage,
                true);
    publish_one_line(js, "INV-P-1", "INV-P", 3);
    publish_raw(js, "payment.settled", "oms.v1.PaymentSettled", "bad-payment-1", garbage,
                sizeof garbage, true);
    wait_applied(pg, "SELECT count(*) FROM inventory.reservations WHERE status = 'reserved'", 1,
                 10000);
    assert_int_equal(testenv_wait_pg(pg, DEAD_LETTERS_SQL, 2, 10000), 2);
    assert_pg_text(pg, "SELECT reason FROM inventory.dead_letters WHERE event_id = 'bad-order-1'",
                   "order.created: payload (3 bytes) is not a valid oms.v1.OrderCreated");
    assert_pg_text(pg, "SELECT reason FROM inventory.dead_letters WHERE event_id = 'bad-payment-1'",
                   "payment.settled: payload (3 bytes) is not a valid oms.v1.PaymentSettled");
    assert_int_equal(testenv_pg_long(pg, "SELECT reserved FROM inventory.products"), 3);

    /* A level below what is reserved would oversell: dead-lettered, unchanged. */
    publish_product(js, "INV-P", "Pencil", 2, 120);
    assert_int_equal(testenv_wait_pg(pg, DEAD_LETTERS_SQL, 3, 10000), 3);
    assert_pg_text(pg,
                   "SELECT reason FROM inventory.dead_letters"
                   " WHERE subject = 'catalog.product'",
                   "catalog.product INV-P: on_hand 2 is below the 3 units reserved by open "
                   "orders; load at least 3, or retry once they have settled");
    assert_pg_text(pg, "SELECT on_hand || '/' || reserved FROM inventory.products", "5/3");

    /* Once the reservation is released, the operator's retry applies it. */
    publish_payment(js, "INV-P-1", false, "card expired", true, NULL);
    assert_int_equal(testenv_wait_pg(pg, "SELECT reserved FROM inventory.products", 0, 10000), 0);
    char path[64], *body = NULL;
    snprintf(path, sizeof path, "/dead-letters/%ld/retry",
             testenv_pg_long(pg, "SELECT id FROM inventory.dead_letters"
                                 " WHERE subject = 'catalog.product'"));
    assert_int_equal(testenv_http("POST", PORT, path, testenv_require("OMS_ADMIN_TOKEN"), &body),
                     200);
    free(body);
    assert_pg_text(pg, "SELECT on_hand || '/' || reserved FROM inventory.products", "2/0");
    assert_pg_text(pg, "SELECT status FROM inventory.reservations WHERE order_id = 'INV-P-1'",
                   "released");
    PQfinish(pg);
    js_conn_destroy(js);
    testenv_service_stop(pid);
}

/* ---- (e) kill -9 ----------------------------------------------------------- */

static void test_kill9_mid_batch_loses_and_duplicates_nothing(void **state)
{
    (void)state;
    /* Small batches: many transactions, so the kill lands between two. */
    static const char *const small_batches[] = {"OMS_BATCH_MAX=32", NULL};
    testenv_reset(SCHEMAS);
    pid_t pid = testenv_service_start("inventory", PORT, NULL);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();

    load_three_products(js, pg);
    /* The orders wait in the stream, so the kill comes while they are applied. */
    testenv_service_stop(pid);
    publish_many_orders(js, pg);
    pid = testenv_service_start("inventory", PORT, small_batches);
    long decided = 0;
    for (int i = 0; i < 20000 && decided < MANY_ORDERS / 5; i++) {
        usleep(500);
        decided = testenv_pg_long(pg, DECIDED_SQL);
    }
    testenv_service_kill(pid);
    fprintf(stderr, "killed inventory with %ld of %d orders decided\n", decided, MANY_ORDERS);
    assert_true(decided > 0 && decided < MANY_ORDERS);

    /* What the killed process had fetched comes back after the 30 s ack wait. */
    pid = testenv_service_start("inventory", PORT, NULL);
    wait_applied(pg, DECIDED_SQL, MANY_ORDERS, 120000);
    check_one_outcome_each(js, pg);
    PQfinish(pg);
    js_conn_destroy(js);
    testenv_service_stop(pid);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define TEST(fn) cmocka_unit_test_teardown(fn, testenv_cleanup)
        TEST(test_stock_runs_out_at_a_known_order),
        TEST(test_poison_is_dead_lettered_and_does_not_block),
        TEST(test_two_processes_never_oversell_then_settle),
        TEST(test_kill9_mid_batch_loses_and_duplicates_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
