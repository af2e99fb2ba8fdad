/*
 * refund.c - refund load: N paid orders (order.paid) of 100.00, then three
 * refund requests per order published as fast as JetStream takes them
 * (40.00, 40.00 and 40.00: two processed, the third refused), and waits until
 * the refund service decided all 3N; reports requests/s from the first
 * request published to the last decided, and checks nothing was refunded
 * beyond what was paid. Needs the refund service (`make up`).
 *
 *   bench-refund --orders N [--tag T]
 */
#include "js.h"
#include "oms.h"
#include "outbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void publish(js_conn *js, const char *subject, const char *event_id,
                    const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(len ? len : 1);
    protobuf_c_message_pack(msg, buf);
    if (js_publish_async(js, subject, msg->descriptor->name, event_id, buf, len) != OMS_OK) {
        fprintf(stderr, "bench-refund: publish failed\n");
        exit(1);
    }
    free(buf);
}

static void publish_paid(js_conn *js, const char *order_id)
{
    Oms__V1__OrderPaid ev = OMS__V1__ORDER_PAID__INIT;
    Oms__V1__EventMeta meta;
    char id[37];
    outbox_meta_init(&meta, id, "bench", order_id, "");
    ev.meta = &meta;
    ev.order_id = (char *)order_id;
    ev.customer_id = "C-BENCH";
    ev.status = "paid";
    ev.total_cents = 10000;
    ev.currency = "USD";
    publish(js, "order.paid", id, &ev.base);
}

static void publish_request(js_conn *js, const char *order_id, const char *key)
{
    Oms__V1__RefundRequested ev = OMS__V1__REFUND_REQUESTED__INIT;
    Oms__V1__EventMeta meta;
    char id[37];
    outbox_meta_init(&meta, id, "bench", order_id, "");
    ev.meta = &meta;
    ev.idempotency_key = (char *)key;
    ev.order_id = (char *)order_id;
    ev.amount_cents = 4000;
    ev.requested_by = "bench";
    publish(js, "refund.requested", id, &ev.base);
}

static long query_long(PGconn *c, const char *sql, const char *like)
{
    const char *params[] = {like};
    PGresult *r = PQexecParams(c, sql, 1, NULL, params, NULL, NULL, 0);
    long v = PQresultStatus(r) == PGRES_TUPLES_OK && !PQgetisnull(r, 0, 0)
                 ? atol(PQgetvalue(r, 0, 0))
                 : -1;
    PQclear(r);
    return v;
}

int main(int argc, char **argv)
{
    int orders = 5000;
    const char *tag = "run";
    char order_id[64], key[96], like[80];
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--orders") == 0)
            orders = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--tag") == 0)
            tag = argv[i + 1];
    }
    const char *url = getenv("OMS_NATS_URL"), *dsn = getenv("OMS_PG_DSN");
    js_conn *js = NULL;
    if (url == NULL || dsn == NULL ||
        js_connect(&js, url, getenv("OMS_NATS_USER"), getenv("OMS_NATS_PASSWORD"), "bench") !=
            OMS_OK) {
        fprintf(stderr, "bench-refund: run `. .oms/env` with the stack up (make up)\n");
        return 1;
    }
    PGconn *pg = PQconnectdb(dsn);
    snprintf(like, sizeof like, "RB-%s-%%", tag);
    for (int o = 0; o < orders; o++) {
        snprintf(order_id, sizeof order_id, "RB-%s-%07d", tag, o);
        publish_paid(js, order_id);
    }
    js_publish_wait(js, 60000);
    while (query_long(pg, "SELECT count(*) FROM refund.paid_orders WHERE order_id LIKE $1", like) <
           orders)
        usleep(20000);
    int64_t t0 = oms_mono_ms();
    for (int round = 0; round < 3; round++)
        for (int o = 0; o < orders; o++) {
            snprintf(order_id, sizeof order_id, "RB-%s-%07d", tag, o);
            snprintf(key, sizeof key, "%s-%d", order_id, round);
            publish_request(js, order_id, key);
        }
    js_publish_wait(js, 60000);
    int64_t sent_ms = oms_mono_ms() - t0;
    long done = 0;
    while ((done = query_long(pg, "SELECT count(*) FROM refund.refunds WHERE order_id LIKE $1",
                              like)) < 3L * orders &&
           oms_mono_ms() - t0 < 600000)
        usleep(20000);
    int64_t total_ms = oms_mono_ms() - t0;
    long processed = query_long(pg,
                                "SELECT count(*) FROM refund.refunds WHERE order_id LIKE $1"
                                " AND state = 'processed'",
                                like);
    long over = query_long(pg,
                           "SELECT count(*) FROM refund.paid_orders WHERE order_id LIKE $1"
                           " AND refunded_cents + pending_cents > paid_total_cents",
                           like);
    printf("orders=%d requests=%d sent_s=%.2f total_s=%.2f requests_per_s=%.0f processed=%ld "
           "over_refunded_orders=%ld\n",
           orders, 3 * orders, sent_ms / 1000.0, total_ms / 1000.0,
           3.0 * orders * 1000.0 / (double)total_ms, processed, over);
    PQfinish(pg);
    js_conn_destroy(js);
    return done == 3L * orders && processed == 2L * orders && over == 0 ? 0 : 1;
}
