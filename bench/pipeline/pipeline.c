/*
 * pipeline.c - end-to-end load: N orders of 4 lines (fixed seed) published
 * as imports onto ingest.rows, at a fixed offered rate or as fast as
 * possible, then waits until every order is paid or failed and reports
 * orders/s and the latency from order creation to terminal status (p50,
 * p99) from ingest's own timestamps. Progress is counted from the order.paid
 * and order.failed events, the way an integration sees them, so that the
 * bench's own polling costs the database nothing while it measures. Stock must have been loaded for
 * the SKUs BENCH-SKU-000..049 (bench/pipeline/run.sh does it).
 *
 *   bench-pipeline --orders N [--rate ORDERS_PER_S (0 = as fast as possible)] [--tag T]
 */
#include "js.h"
#include "oms.h"
#include "oms_events.pb-c.h"
#include "pg.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define IMPORT_ORDERS 100 /* orders per import message */

static unsigned long long rng_state = 42;

static unsigned rng(void)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (unsigned)(rng_state >> 33);
}

static void publish(js_conn *js, const char *msg_id, const char *import_id, const char *first,
                    const char *end, const char *body, size_t len)
{
    natsMsg *m = NULL;
    natsMsg_Create(&m, "ingest.rows", NULL, body, (int)len);
    natsMsgHeader_Set(m, "Nats-Msg-Id", msg_id);
    natsMsgHeader_Set(m, "Oms-Import-Id", import_id);
    if (first)
        natsMsgHeader_Set(m, "Oms-First-Row", first);
    if (end)
        natsMsgHeader_Set(m, "Oms-Import-End", end);
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MsgId = msg_id;
    if (js_PublishMsgAsync(js_ctx(js), &m, &po) != NATS_OK) {
        fprintf(stderr, "publish failed\n");
        exit(1);
    }
}

/* One import of `orders` orders starting at order number `base`. */
static void send_import(js_conn *js, const char *tag, int seq, int base, int orders)
{
    char import_id[96], id[128], body[IMPORT_ORDERS * 4 * 64 + 64], total[16];
    size_t len = 0;
    snprintf(import_id, sizeof import_id, "bench-%s-%06d", tag, seq);
    len += (size_t)snprintf(body, sizeof body, "order_id,customer_id,sku,qty,unit_price_cents\n");
    for (int o = 0; o < orders; o++) {
        unsigned customer = rng() % 5000;
        for (int l = 0; l < 4; l++)
            len += (size_t)snprintf(body + len, sizeof body - len,
                                    "P-%s-%07d,C-%04u,BENCH-SKU-%03u,%u,%u\n", tag, base + o,
                                    customer, rng() % 50, 1 + rng() % 3, 100 + rng() % 10000);
    }
    snprintf(id, sizeof id, "%s:0", import_id);
    publish(js, id, import_id, "2", NULL, body, len);
    snprintf(id, sizeof id, "%s:end", import_id);
    snprintf(total, sizeof total, "%d", orders * 4);
    publish(js, id, import_id, NULL, total, "", 0);
}

static char order_prefix[96];
static atomic_long terminal_events;

/* order.paid / order.failed: counts the events of this run's orders (a
 * re-published event counts twice; the database has the last word). */
static void on_terminal(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc, (void)sub, (void)closure;
    const uint8_t *data = (const uint8_t *)natsMsg_GetData(msg);
    size_t len = (size_t)natsMsg_GetDataLength(msg);
    const char *order_id = NULL;
    Oms__V1__OrderPaid *paid = NULL;
    Oms__V1__OrderFailed *failed = NULL;
    if (strcmp(natsMsg_GetSubject(msg), "order.paid") == 0)
        order_id = (paid = oms__v1__order_paid__unpack(NULL, len, data)) ? paid->order_id : NULL;
    else
        order_id = (failed = oms__v1__order_failed__unpack(NULL, len, data)) ? failed->order_id
                                                                             : NULL;
    if (order_id != NULL && strncmp(order_id, order_prefix, strlen(order_prefix)) == 0)
        atomic_fetch_add(&terminal_events, 1);
    oms__v1__order_paid__free_unpacked(paid, NULL);
    oms__v1__order_failed__free_unpacked(failed, NULL);
    natsMsg_Destroy(msg);
}

static long query_long(PGconn *c, const char *sql, const char *tag)
{
    const char *params[] = {tag};
    PGresult *r = PQexecParams(c, sql, 1, NULL, params, NULL, NULL, 0);
    long v = (PQresultStatus(r) == PGRES_TUPLES_OK && !PQgetisnull(r, 0, 0))
                 ? atol(PQgetvalue(r, 0, 0))
                 : -1;
    PQclear(r);
    return v;
}

int main(int argc, char **argv)
{
    int orders = 10000;
    double rate = 0;
    const char *tag = "run";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--orders") == 0)
            orders = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--rate") == 0)
            rate = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--tag") == 0)
            tag = argv[i + 1];
    }
    const char *url = getenv("OMS_NATS_URL"), *dsn = getenv("OMS_PG_DSN");
    js_conn *js = NULL;
    /* .oms/env names the stack's NATS user (omsctl) and its password. */
    if (url == NULL || dsn == NULL ||
        js_connect(&js, url, getenv("OMS_NATS_USER"), getenv("OMS_NATS_PASSWORD"), "bench") !=
            OMS_OK) {
        fprintf(stderr, "bench-pipeline: run `. .oms/env` with the stack up (make up)\n");
        return 1;
    }
    PGconn *pg = PQconnectdb(dsn);
    natsSubscription *paid_sub = NULL, *failed_sub = NULL;
    snprintf(order_prefix, sizeof order_prefix, "P-%s-", tag);
    natsConnection_Subscribe(&paid_sub, js_nats(js), "order.paid", on_terminal, NULL);
    natsConnection_Subscribe(&failed_sub, js_nats(js), "order.failed", on_terminal, NULL);
    natsSubscription_SetPendingLimits(paid_sub, -1, -1);
    natsSubscription_SetPendingLimits(failed_sub, -1, -1);
    int64_t t0 = oms_mono_ms();
    for (int sent = 0, seq = 0; sent < orders; seq++) {
        int n = orders - sent < IMPORT_ORDERS ? orders - sent : IMPORT_ORDERS;
        send_import(js, tag, seq, sent, n);
        sent += n;
        if (rate > 0) {
            int64_t due = t0 + (int64_t)(sent * 1000.0 / rate);
            int64_t now = oms_mono_ms();
            if (due > now)
                usleep((useconds_t)(due - now) * 1000);
        }
    }
    js_publish_wait(js, 30000);
    int64_t sent_ms = oms_mono_ms() - t0;
    char like[96];
    snprintf(like, sizeof like, "P-%s-%%", tag);
    const char *done_sql =
        "SELECT count(*) FROM ingest.orders WHERE order_id LIKE $1 AND status IN ('paid','failed')";
    long done = 0;
    while (oms_mono_ms() - t0 < 600000) {
        if (atomic_load(&terminal_events) < orders) {
            usleep(5000);
            continue;
        }
        if ((done = query_long(pg, done_sql, like)) >= orders)
            break;
        usleep(200000);
    }
    int64_t total_ms = oms_mono_ms() - t0;
    const char *params[] = {like};
    PGresult *r = PQexecParams(
        pg,
        "SELECT count(*) FILTER (WHERE status = 'paid'), count(*) FILTER (WHERE status = 'failed'),"
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM updated_at - created_at)) "
        "* 1000,"
        " percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM updated_at - "
        "created_at)) * 1000"
        " FROM ingest.orders WHERE order_id LIKE $1",
        1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        printf("orders=%d offered_orders_per_s=%.0f sent_s=%.2f total_s=%.2f orders_per_s=%.0f "
               "paid=%s failed=%s "
               "latency_p50_ms=%.0f latency_p99_ms=%.0f\n",
               orders, rate, sent_ms / 1000.0, total_ms / 1000.0,
               orders * 1000.0 / (double)total_ms, PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1),
               atof(PQgetvalue(r, 0, 2)), atof(PQgetvalue(r, 0, 3)));
    PQclear(r);
    natsSubscription_Destroy(paid_sub);
    natsSubscription_Destroy(failed_sub);
    PQfinish(pg);
    js_conn_destroy(js);
    return done == orders ? 0 : 1;
}
