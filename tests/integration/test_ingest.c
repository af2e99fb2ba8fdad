/*
 * test_ingest.c - the ingest service against the real stack: imports become
 * exactly the expected order.created / import.rejected / import.completed
 * events, re-imports and redeliveries change nothing, kill -9 in the middle
 * of an import loses and duplicates nothing, poison goes to dead letters.
 */
#include "testenv.h"

#include "oms_events.pb-c.h"
#include "outbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PORT 19081

static const char *const SCHEMAS[] = {"ingest", NULL};

static const char *const FAST_SEAL[] = {"OMS_INGEST_SEAL_MS=200", NULL};

/* ---- sending ---------------------------------------------------------- */

static void publish(js_conn *js, const char *msg_id, const char *import_id, const char *first_row,
                    const char *end_rows, const char *body)
{
    testenv_publish_rows(js, msg_id, import_id, first_row, end_rows, body, strlen(body));
}

/* Sends csv (header line + one row per line) as an import in chunks of
 * chunk_rows rows, each chunk with the header, then the end marker. */
static void send_import(js_conn *js, const char *import_id, const char *csv, int chunk_rows)
{
    const char *nl = strchr(csv, '\n');
    size_t header_len = (size_t)(nl - csv) + 1;
    const char *p = nl + 1;
    int row = 2, chunk = 0, total = 0;
    while (*p) {
        char *body = malloc(strlen(csv) + 1), id[160], first[16];
        memcpy(body, csv, header_len);
        size_t len = header_len;
        int first_row = row, rows = 0;
        while (*p && rows < chunk_rows) {
            const char *e = strchr(p, '\n');
            size_t l = e ? (size_t)(e - p) + 1 : strlen(p);
            memcpy(body + len, p, l);
            len += l;
            p += l;
            rows++, row++;
        }
        body[len] = '\0';
        snprintf(id, sizeof id, "%s:%d", import_id, chunk++);
        snprintf(first, sizeof first, "%d", first_row);
        publish(js, id, import_id, first, NULL, body);
        total += rows;
        free(body);
    }
    char id[160], n[16];
    snprintf(id, sizeof id, "%s:end", import_id);
    snprintf(n, sizeof n, "%d", total);
    publish(js, id, import_id, NULL, n, "");
}

/* ---- reading back ----------------------------------------------------- */

typedef struct seen {
    size_t created, rejected, completed;
    Oms__V1__ImportCompleted *last_completed;
} seen;

static bool import_sealed(void *arg)
{
    const char *import_id = arg;
    PGconn *c = testenv_pg();
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM ingest.imports WHERE import_id = '%s' AND sealed_at IS NOT NULL",
             import_id);
    long n = testenv_pg_long(c, sql);
    PQfinish(c);
    return n == 1;
}

static bool outbox_empty(void *arg)
{
    (void)arg;
    PGconn *c = testenv_pg();
    long n = testenv_pg_long(c, "SELECT count(*) FROM ingest.outbox");
    PQfinish(c);
    return n == 0;
}

static void wait_import(const char *import_id, int timeout_ms)
{
    assert_true(testenv_wait(import_sealed, (void *)import_id, timeout_ms));
    assert_true(testenv_wait(outbox_empty, NULL, 10000));
}

/* Finds the import.rejected reason for row `row` of import_id ("" if none). */
static char *rejection_for(testenv_msg *msgs, size_t n, const char *import_id, int row)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(msgs[i].subject, "import.rejected") != 0)
            continue;
        Oms__V1__ImportRejected *r = oms__v1__import_rejected__unpack(NULL, msgs[i].len,
                                                                      msgs[i].data);
        assert_non_null(r);
        char *reason = NULL;
        if (strcmp(r->import_id, import_id) == 0 && r->row == row)
            reason = strdup(r->reason);
        oms__v1__import_rejected__free_unpacked(r, NULL);
        if (reason)
            return reason;
    }
    return strdup("");
}

static Oms__V1__ImportCompleted *completed_for(testenv_msg *msgs, size_t n, const char *import_id)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(msgs[i].subject, "import.completed") != 0)
            continue;
        Oms__V1__ImportCompleted *c = oms__v1__import_completed__unpack(NULL, msgs[i].len,
                                                                        msgs[i].data);
        assert_non_null(c);
        if (strcmp(c->import_id, import_id) == 0)
            return c;
        oms__v1__import_completed__free_unpacked(c, NULL);
    }
    return NULL;
}

static void assert_reason(testenv_msg *msgs, size_t n, const char *import_id, int row,
                          const char *want)
{
    char *got = rejection_for(msgs, n, import_id, row);
    if (strcmp(got, want) != 0)
        fprintf(stderr, "row %d: want \"%s\"\n        got  \"%s\"\n", row, want, got);
    assert_string_equal(got, want);
    free(got);
}

/* ---- tests ------------------------------------------------------------ */

static const char *const SAMPLE =
    "order_id,customer_id,customer_email,sku,qty,unit_price,placed_at\n"
    "ORD-1,C1,c1@example.com,SKU-A,2,10.50,2026-11-02T10:00:00Z\n" /* row 2 */
    "ORD-1,C1,,SKU-B,1,0.99,2026-11-02T10:00:00Z\n"                /* row 3 */
    "ORD-2,C2,c2@example.com,SKU-A,1,10.50,2026-11-02 11:00:00\n"  /* row 4 */
    "ORD-3,C3,c3@example.com,\"SKU,C\",3,1299.99,\n"               /* row 5 */
    "ORD-4,C4,c4@example.com,SKU-A,-2,10.50,\n"                    /* row 6 */
    "ORD-4,C4,c4@example.com,SKU-B,1,0.99,\n"                      /* row 7 */
    "ORD-5,C5,c5@example.com,SKU-A,1,10.50,\n"                     /* row 8 */
    "ORD-5,C9,c9@example.com,SKU-B,1,0.99,\n"                      /* row 9 */
    "ORD-2,C2,c2@example.com,SKU-C,2,5.00,\n";                     /* row 10 */

static void test_import_creates_exactly_the_orders(void **state)
{
    (void)state;
    testenv_reset(SCHEMAS);
    pid_t pid = testenv_service_start("ingest", PORT, FAST_SEAL);
    js_conn *js = testenv_js();
    send_import(js, "imp-sample", SAMPLE, 4);
    wait_import("imp-sample", 20000);

    testenv_msg *orders = NULL;
    size_t n = testenv_stream_read(js, "ORDERS", "order.created", &orders);
    assert_int_equal(n, 3);
    int64_t totals[4] = {0};
    for (size_t i = 0; i < n; i++) {
        Oms__V1__OrderCreated *o = oms__v1__order_created__unpack(NULL, orders[i].len,
                                                                  orders[i].data);
        assert_non_null(o);
        assert_string_equal(o->import_id, "imp-sample");
        assert_string_equal(o->currency, "USD");
        assert_string_equal(o->meta->event_id, orders[i].msg_id);
        assert_string_equal(o->meta->producer, "ingest");
        int k = o->order_id[4] - '0';
        assert_true(k >= 1 && k <= 3);
        totals[k] = o->total_cents;
        if (k == 1) {
            assert_int_equal(o->n_lines, 2);
            assert_string_equal(o->customer_email, "c1@example.com");
            assert_int_equal(o->placed_at_ms, 1793613600000LL);
        }
        if (k == 3) {
            assert_int_equal(o->n_lines, 1);
            assert_string_equal(o->lines[0]->sku, "SKU,C");
        }
        oms__v1__order_created__free_unpacked(o, NULL);
    }
    assert_int_equal(totals[1], 2 * 1050 + 99);
    assert_int_equal(totals[2], 1050 + 2 * 500);
    assert_int_equal(totals[3], 3 * 129999);
    testenv_msgs_free(orders, n);

    testenv_msg *imp = NULL;
    size_t m = testenv_stream_read(js, "IMPORTS", NULL, &imp);
    assert_int_equal(m, 5); /* 4 rejections + 1 completion */
    assert_reason(imp, m, "imp-sample", 6, "row 6: qty \"-2\" must be an integer from 1 to 100000");
    assert_reason(imp, m, "imp-sample", 7, "row 7: order ORD-4 not created: row 6 was rejected");
    assert_reason(
        imp, m, "imp-sample", 9,
        "row 9: customer_id \"C9\" contradicts row 8 of order ORD-5 (customer_id \"C5\")");
    assert_reason(imp, m, "imp-sample", 8, "row 8: order ORD-5 not created: row 9 was rejected");
    Oms__V1__ImportCompleted *c = completed_for(imp, m, "imp-sample");
    assert_non_null(c);
    assert_int_equal(c->rows, 9);
    assert_int_equal(c->valid_rows, 5);
    assert_int_equal(c->rejected_rows, 4);
    assert_int_equal(c->orders, 3);
    assert_int_equal(c->missing_rows, 0);
    assert_false(c->timed_out);
    oms__v1__import_completed__free_unpacked(c, NULL);
    testenv_msgs_free(imp, m);

    /* The same file again: nothing new, every row a duplicate or cascade. */
    send_import(js, "imp-sample-again", SAMPLE, 100);
    wait_import("imp-sample-again", 20000);
    assert_int_equal(testenv_stream_count(js, "ORDERS"), 3);
    m = testenv_stream_read(js, "IMPORTS", NULL, &imp);
    c = completed_for(imp, m, "imp-sample-again");
    assert_non_null(c);
    assert_int_equal(c->orders, 0);
    assert_int_equal(c->rejected_rows, 9);
    assert_reason(imp, m, "imp-sample-again", 2,
                  "row 2: order ORD-1 already exists (created by an earlier import); a row for an "
                  "existing order is a duplicate");
    oms__v1__import_completed__free_unpacked(c, NULL);
    testenv_msgs_free(imp, m);

    js_conn_destroy(js);
    testenv_service_stop(pid);
}

/* Two imports carrying the same order, sealed in one go (both arrived while
 * ingest was down): the earlier keeps the order, the other's rows are
 * duplicates, and the seal goes through instead of failing forever. */
static void test_same_order_in_imports_sealed_together(void **state)
{
    (void)state;
    testenv_reset(SCHEMAS);
    pid_t pid = testenv_service_start("ingest", PORT, FAST_SEAL);
    testenv_service_stop(pid); /* streams and schema exist; ingest is down */
    js_conn *js = testenv_js();
    send_import(js, "imp-twin-a",
                "order_id,customer_id,sku,qty,unit_price_cents\n"
                "TWIN-1,C1,SKU-A,1,100\nSOLO-A,C2,SKU-A,2,100\n",
                10);
    send_import(js, "imp-twin-b",
                "order_id,customer_id,sku,qty,unit_price_cents\n"
                "TWIN-1,C1,SKU-B,5,100\nSOLO-B,C3,SKU-B,1,100\n",
                10);
    pid = testenv_service_start("ingest", PORT, FAST_SEAL);
    wait_import("imp-twin-a", 20000);
    wait_import("imp-twin-b", 20000);

    PGconn *c = testenv_pg();
    assert_int_equal(testenv_pg_long(c, "SELECT count(DISTINCT sealed_at) FROM ingest.imports"), 1);
    assert_int_equal(
        testenv_pg_long(c, "SELECT total_cents FROM ingest.orders WHERE order_id = 'TWIN-1'"), 100);
    PQfinish(c);
    testenv_msg *imp = NULL;
    size_t m = testenv_stream_read(js, "IMPORTS", NULL, &imp);
    Oms__V1__ImportCompleted *a = completed_for(imp, m, "imp-twin-a");
    Oms__V1__ImportCompleted *b = completed_for(imp, m, "imp-twin-b");
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(a->orders, 2);
    assert_int_equal(b->orders, 1);
    assert_int_equal(b->rejected_rows, 1);
    assert_reason(
        imp, m, "imp-twin-b", 2,
        "row 2: order TWIN-1 is also in import imp-twin-a, received earlier; a row for an "
        "existing order is a duplicate");
    oms__v1__import_completed__free_unpacked(a, NULL);
    oms__v1__import_completed__free_unpacked(b, NULL);
    testenv_msgs_free(imp, m);
    assert_int_equal(testenv_stream_count(js, "ORDERS"), 3);
    js_conn_destroy(js);
    testenv_service_stop(pid);
}

/* A message redelivered after the server's duplicate window is recognised by
 * the inbox: its rows are not counted or stored twice. */
static void test_redelivered_message_is_applied_once(void **state)
{
    (void)state;
    static const char *const env[] = {"OMS_INGEST_SEAL_MS=200", "OMS_DUPLICATE_WINDOW_S=1", NULL};
    testenv_reset(SCHEMAS);
    pid_t pid = testenv_service_start("ingest", PORT, env);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();
    const char *chunk =
        "order_id,customer_id,sku,qty,unit_price\nR-1,C1,SKU-A,1,1.00\nR-2,C2,SKU-A,2,1.00\n";
    publish(js, "imp-redeliver:0", "imp-redeliver", "2", NULL, chunk);
    assert_int_equal(testenv_wait_pg(pg, "SELECT count(*) FROM ingest.import_rows", 2, 10000), 2);
    sleep(2); /* past the duplicate window: JetStream stores it again */
    publish(js, "imp-redeliver:0", "imp-redeliver", "2", NULL, chunk);
    publish(js, "imp-redeliver:end", "imp-redeliver", NULL, "2", "");
    wait_import("imp-redeliver", 20000);
    assert_int_equal(testenv_stream_count(js, "INGEST"), 0); /* work queue: all acked */
    assert_int_equal(testenv_pg_long(pg, "SELECT received_rows FROM ingest.imports"), 2);
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM ingest.import_rows"), 2);
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM ingest.orders"), 2);
    assert_int_equal(testenv_stream_count(js, "ORDERS"), 2);
    char *metrics = NULL;
    assert_int_equal(testenv_http("GET", PORT, "/metrics", NULL, &metrics), 200);
    assert_non_null(
        strstr(metrics,
               "oms_events_consumed_total{subject=\"ingest.rows\",result=\"duplicate\"} 1"));
    free(metrics);
    PQfinish(pg);
    js_conn_destroy(js);
    testenv_service_stop(pid);
}

/* Builds a CSV of n_orders orders with 4 lines each. */
static char *make_csv(int n_orders)
{
    size_t cap = (size_t)n_orders * 4 * 64 + 128, len = 0;
    char *csv = malloc(cap);
    len += (size_t)snprintf(csv, cap, "order_id,customer_id,sku,qty,unit_price_cents\n");
    for (int o = 0; o < n_orders; o++)
        for (int l = 0; l < 4; l++)
            len += (size_t)snprintf(csv + len, cap - len, "K-%06d,C%d,SKU-%d,%d,%d\n", o, o % 97, l,
                                    l + 1, 100 + o % 50);
    return csv;
}

/* kill -9 while chunks are being applied and again while the sealed orders
 * are being published: after restarts every order exists exactly once, in
 * the database and in the stream. */
static void test_kill9_mid_import_loses_and_duplicates_nothing(void **state)
{
    (void)state;
    const int n_orders = 5000;
    testenv_reset(SCHEMAS);
    pid_t pid = testenv_service_start("ingest", PORT, FAST_SEAL);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();
    char *csv = make_csv(n_orders);

    send_import(js, "imp-kill", csv, 100);
    /* Kill as soon as some, not all, rows are stored. */
    long stored = 0;
    for (int i = 0; i < 400 && (stored == 0 || stored >= n_orders * 4); i++) {
        usleep(5000);
        stored = testenv_pg_long(pg, "SELECT coalesce(sum(received_rows), 0) FROM ingest.imports");
    }
    testenv_service_kill(pid);
    fprintf(stderr, "killed ingest with %ld of %d rows stored\n", stored, n_orders * 4);

    pid = testenv_service_start("ingest", PORT, FAST_SEAL);
    assert_true(testenv_wait(import_sealed, "imp-kill", 60000));
    /* Kill again while the relay may still be publishing order.created. */
    testenv_service_kill(pid);
    fprintf(stderr, "killed ingest with %ld events left in the outbox\n",
            testenv_pg_long(pg, "SELECT count(*) FROM ingest.outbox"));
    pid = testenv_service_start("ingest", PORT, FAST_SEAL);
    wait_import("imp-kill", 60000);

    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM ingest.orders"), n_orders);
    assert_int_equal(testenv_pg_long(pg, "SELECT received_rows FROM ingest.imports"), n_orders * 4);
    testenv_msg *msgs = NULL;
    size_t n = testenv_stream_read(js, "ORDERS", "order.created", &msgs);
    assert_int_equal(n, n_orders);
    /* Distinct order ids: count them through PostgreSQL. */
    PGresult *r = PQexec(pg, "CREATE TEMP TABLE seen (order_id text)");
    PQclear(r);
    for (size_t i = 0; i < n; i++) {
        Oms__V1__OrderCreated *o = oms__v1__order_created__unpack(NULL, msgs[i].len, msgs[i].data);
        assert_non_null(o);
        const char *p[] = {o->order_id};
        r = PQexecParams(pg, "INSERT INTO seen VALUES ($1)", 1, NULL, p, NULL, NULL, 0);
        PQclear(r);
        assert_int_equal(o->n_lines, 4);
        oms__v1__order_created__free_unpacked(o, NULL);
    }
    assert_int_equal(testenv_pg_long(pg, "SELECT count(DISTINCT order_id) FROM seen"), n_orders);
    testenv_msgs_free(msgs, n);
    free(csv);
    PQfinish(pg);
    js_conn_destroy(js);
    testenv_service_stop(pid);
}

/* A message ingest cannot read goes to dead_letters with the reason; the
 * service goes on; an operator can list it and retry it. */
static void test_poison_message_is_dead_lettered(void **state)
{
    (void)state;
    testenv_reset(SCHEMAS);
    pid_t pid = testenv_service_start("ingest", PORT, FAST_SEAL);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();
    publish(js, "poison-1", "imp-poison", "abc", NULL,
            "order_id,customer_id,sku,qty,unit_price\nP-1,C1,S,1,1\n");
    publish(js, "live-1", NULL, NULL, NULL, "P-2,C2,SKU-A,1,2.50\n");
    assert_int_equal(testenv_wait_pg(pg, "SELECT count(*) FROM ingest.orders", 1, 10000), 1);
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM ingest.dead_letters"), 1);
    char *body = NULL;
    assert_int_equal(testenv_http("GET", PORT, "/dead-letters", NULL, &body), 200);
    assert_non_null(strstr(body, "\"event_id\":\"poison-1\""));
    assert_non_null(strstr(body, "header Oms-First-Row \\\"abc\\\" must be a row number from 1 to "
                                 "1000000000"));
    free(body);
    const char *token = testenv_require("OMS_ADMIN_TOKEN");
    long id = testenv_pg_long(pg, "SELECT id FROM ingest.dead_letters");
    char path[64];
    snprintf(path, sizeof path, "/dead-letters/%ld/retry", id);
    assert_int_equal(testenv_http("POST", PORT, path, NULL, NULL), 401);
    assert_int_equal(testenv_http("POST", PORT, path, "wrong", NULL), 401);
    assert_int_equal(testenv_http("POST", PORT, path, token, &body), 409);
    assert_non_null(strstr(body, "still rejected"));
    free(body);
    assert_int_equal(testenv_pg_long(pg, "SELECT attempts FROM ingest.dead_letters"), 2);
    PQfinish(pg);
    js_conn_destroy(js);
    testenv_service_stop(pid);
}

/* Rows without an import id: one order per order id, sealed when quiet; a
 * row for it after that is rejected as a duplicate. */
static void test_live_rows_seal_per_order(void **state)
{
    (void)state;
    testenv_reset(SCHEMAS);
    pid_t pid = testenv_service_start("ingest", PORT, FAST_SEAL);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();
    publish(js, NULL, NULL, NULL, NULL, "L-1,C1,SKU-A,1,2.00\n");
    publish(js, NULL, NULL, NULL, NULL,
            "order_id,customer_id,sku,qty,unit_price\nL-1,C1,SKU-B,2,3.00\n");
    assert_int_equal(testenv_wait_pg(pg, "SELECT count(*) FROM ingest.orders", 1, 10000), 1);
    assert_int_equal(
        testenv_pg_long(pg, "SELECT total_cents FROM ingest.orders WHERE order_id = 'L-1'"), 800);
    assert_int_equal(testenv_pg_long(pg, "SELECT line_count FROM ingest.orders"), 2);
    publish(js, NULL, NULL, NULL, NULL, "L-1,C1,SKU-C,1,1.00\n");
    assert_true(testenv_wait(outbox_empty, NULL, 5000));
    assert_int_equal(
        testenv_wait_pg(pg, "SELECT count(*) FROM ingest.import_rows WHERE reason IS NOT NULL", 1,
                        5000),
        1);
    testenv_msg *imp = NULL;
    size_t m = 0;
    for (int i = 0; i < 100 && m == 0; i++) {
        usleep(50000);
        m = testenv_stream_read(js, "IMPORTS", "import.rejected", &imp);
        if (m == 0)
            testenv_msgs_free(imp, m);
    }
    assert_int_equal(m, 1);
    assert_reason(imp, m, "", 1, "row 1: order L-1 was already created; this row is a duplicate");
    testenv_msgs_free(imp, m);
    assert_int_equal(testenv_stream_count(js, "ORDERS"), 1);
    PQfinish(pg);
    js_conn_destroy(js);
    testenv_service_stop(pid);
}

/* An import whose publisher died half way is sealed after the timeout with
 * what arrived, and says how many rows are missing. */
static void test_incomplete_import_times_out(void **state)
{
    (void)state;
    static const char *const env[] = {"OMS_INGEST_SEAL_MS=200", "OMS_INGEST_IMPORT_TIMEOUT_S=2",
                                      NULL};
    testenv_reset(SCHEMAS);
    pid_t pid = testenv_service_start("ingest", PORT, env);
    js_conn *js = testenv_js();
    publish(js, "imp-half:0", "imp-half", "2", NULL,
            "order_id,customer_id,sku,qty,unit_price\nH-1,C1,SKU-A,1,1.00\nH-2,C1,SKU-A,1,1.00\n");
    publish(js, "imp-half:end", "imp-half", NULL, "6", "");
    wait_import("imp-half", 15000);
    testenv_msg *imp = NULL;
    size_t m = testenv_stream_read(js, "IMPORTS", NULL, &imp);
    Oms__V1__ImportCompleted *c = completed_for(imp, m, "imp-half");
    assert_non_null(c);
    assert_true(c->timed_out);
    assert_int_equal(c->rows, 6);
    assert_int_equal(c->missing_rows, 4);
    assert_int_equal(c->orders, 2);
    oms__v1__import_completed__free_unpacked(c, NULL);
    testenv_msgs_free(imp, m);
    js_conn_destroy(js);
    testenv_service_stop(pid);
}

/* ---- order status --------------------------------------------------- */

static void publish_event(js_conn *js, const char *subject, const ProtobufCMessage *msg,
                          const char *event_id)
{
    testenv_publish_event(js, subject, event_id, msg);
}

static void stock_reserved(js_conn *js, const char *order_id)
{
    Oms__V1__StockReserved ev = OMS__V1__STOCK_RESERVED__INIT;
    Oms__V1__EventMeta meta;
    char id[37];
    outbox_meta_init(&meta, id, "test", order_id, "");
    ev.meta = &meta;
    ev.order_id = (char *)order_id;
    publish_event(js, "stock.reserved", &ev.base, id);
}

static void stock_rejected(js_conn *js, const char *order_id, const char *reason)
{
    Oms__V1__StockRejected ev = OMS__V1__STOCK_REJECTED__INIT;
    Oms__V1__EventMeta meta;
    char id[37];
    outbox_meta_init(&meta, id, "test", order_id, "");
    ev.meta = &meta;
    ev.order_id = (char *)order_id;
    ev.reason = (char *)reason;
    publish_event(js, "stock.rejected", &ev.base, id);
}

static void payment_settled(js_conn *js, const char *order_id, bool ok, const char *reason)
{
    Oms__V1__PaymentSettled ev = OMS__V1__PAYMENT_SETTLED__INIT;
    Oms__V1__EventMeta meta;
    char id[37];
    outbox_meta_init(&meta, id, "test", order_id, "");
    ev.meta = &meta;
    ev.order_id = (char *)order_id;
    ev.status = ok ? OMS__V1__PAYMENT_STATUS__PAYMENT_STATUS_SUCCEEDED
                   : OMS__V1__PAYMENT_STATUS__PAYMENT_STATUS_FAILED;
    ev.reason = (char *)reason;
    publish_event(js, "payment.settled", &ev.base, id);
}

/* created -> reserved -> paid | failed, whatever order the events come in,
 * each terminal status once, its event published once. */
static void test_order_status_follows_the_lifecycle(void **state)
{
    (void)state;
    testenv_reset(SCHEMAS);
    pid_t pid = testenv_service_start("ingest", PORT, FAST_SEAL);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();
    send_import(js, "imp-life",
                "order_id,customer_id,customer_email,sku,qty,unit_price\n"
                "S-1,C1,c1@example.com,SKU-A,2,5.00\n"
                "S-2,C2,c2@example.com,SKU-A,1,5.00\n"
                "S-3,C3,c3@example.com,SKU-B,1,7.00\n"
                "S-4,C4,c4@example.com,SKU-B,3,7.00\n",
                10);
    wait_import("imp-life", 20000);

    stock_reserved(js, "S-1");
    stock_reserved(js, "S-2");
    stock_rejected(js, "S-3", "SKU-B: 1 requested, 0 available");
    /* Streams are not ordered with each other: let S-1 and S-2 be reserved
     * before their payments, so their history shows every step. */
    assert_int_equal(testenv_wait_pg(pg,
                                     "SELECT count(*) FROM ingest.orders WHERE status = 'reserved'",
                                     2, 10000),
                     2);
    payment_settled(js, "S-1", true, "");
    payment_settled(js, "S-2", false, "card declined");
    payment_settled(js, "S-4", true, ""); /* overtakes its stock.reserved */
    stock_reserved(js, "S-4");
    /* stock.* and payment.* travel on different streams: wait until the
     * first outcomes are in before sending events that must come later. */
    assert_int_equal(
        testenv_wait_pg(pg, "SELECT count(*) FROM ingest.orders WHERE status IN ('paid','failed')",
                        4, 10000),
        4);
    payment_settled(js, "S-1", true, "");              /* a replay under a new id */
    payment_settled(js, "S-1", false, "late failure"); /* cannot undo paid */
    stock_rejected(js, "S-2", "too late");             /* cannot undo failed */
    stock_reserved(js, "NO-SUCH-ORDER");
    assert_int_equal(
        testenv_wait_pg(pg, "SELECT count(*) FROM ingest.orders WHERE status IN ('paid','failed')",
                        4, 10000),
        4);
    /* Give the late events time to be (not) applied: acked by ingest. */
    assert_true(testenv_service_settled(js, "ingest", 20000));
    assert_true(testenv_wait(outbox_empty, NULL, 5000));

    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM ingest.orders WHERE status = 'paid' "
                                         "AND order_id IN ('S-1','S-4')"),
                     2);
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM ingest.orders WHERE status = "
                                         "'failed' AND order_id IN ('S-2','S-3')"),
                     2);
    testenv_msg *msgs = NULL;
    size_t n = testenv_stream_read(js, "ORDERS", "order.paid", &msgs);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++) {
        Oms__V1__OrderPaid *p = oms__v1__order_paid__unpack(NULL, msgs[i].len, msgs[i].data);
        assert_non_null(p);
        assert_string_equal(p->status, "paid");
        assert_string_equal(p->import_id, "imp-life");
        assert_true(strcmp(p->order_id, "S-1") == 0 ? p->total_cents == 1000
                                                    : p->total_cents == 2100);
        oms__v1__order_paid__free_unpacked(p, NULL);
    }
    testenv_msgs_free(msgs, n);
    n = testenv_stream_read(js, "ORDERS", "order.failed", &msgs);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++) {
        Oms__V1__OrderFailed *f = oms__v1__order_failed__unpack(NULL, msgs[i].len, msgs[i].data);
        assert_non_null(f);
        if (strcmp(f->order_id, "S-2") == 0)
            assert_string_equal(f->reason, "payment failed: card declined");
        else
            assert_string_equal(f->reason, "out of stock: SKU-B: 1 requested, 0 available");
        assert_string_equal(f->customer_email,
                            strcmp(f->order_id, "S-2") == 0 ? "c2@example.com" : "c3@example.com");
        oms__v1__order_failed__free_unpacked(f, NULL);
    }
    testenv_msgs_free(msgs, n);

    char *body = NULL;
    assert_int_equal(testenv_http("GET", PORT, "/orders/S-1", NULL, &body), 200);
    assert_non_null(strstr(body, "\"status\":\"paid\""));
    assert_non_null(strstr(body, "\"history\":[{\"status\":\"created\""));
    assert_non_null(strstr(body, "{\"status\":\"reserved\""));
    assert_non_null(strstr(body, "\"sku\":\"SKU-A\""));
    free(body);
    assert_int_equal(testenv_http("GET", PORT, "/orders/NOPE", NULL, NULL), 404);
    PQfinish(pg);
    js_conn_destroy(js);
    testenv_service_stop(pid);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_import_creates_exactly_the_orders, testenv_cleanup),
        cmocka_unit_test_teardown(test_same_order_in_imports_sealed_together, testenv_cleanup),
        cmocka_unit_test_teardown(test_redelivered_message_is_applied_once, testenv_cleanup),
        cmocka_unit_test_teardown(test_poison_message_is_dead_lettered, testenv_cleanup),
        cmocka_unit_test_teardown(test_live_rows_seal_per_order, testenv_cleanup),
        cmocka_unit_test_teardown(test_incomplete_import_times_out, testenv_cleanup),
        cmocka_unit_test_teardown(test_order_status_follows_the_lifecycle, testenv_cleanup),
        cmocka_unit_test_teardown(test_kill9_mid_import_loses_and_duplicates_nothing,
                                  testenv_cleanup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
