/*
 * notify_load.c - notify's throughput: publishes N order.paid events as fast
 * as possible and reports how fast notify recorded them (consumption) and
 * delivered them (the sender), from its own table. Runs against the stack
 * of .oms/env with notify running (whatever channels it has).
 *
 *   bench-notify --events N [--tag T]
 */
#include "js.h"
#include "oms.h"
#include "outbox.h"
#include "pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define POLL_MS 100

static void publish(js_conn *js, const char *tag, int i)
{
    char event_id[37], order_id[96], email[96];
    Oms__V1__OrderPaid ev = OMS__V1__ORDER_PAID__INIT;
    Oms__V1__EventMeta meta;
    snprintf(order_id, sizeof order_id, "BN-%s-%07d", tag, i);
    snprintf(email, sizeof email, "buyer%d@example.com", i % 5000);
    outbox_meta_init(&meta, event_id, "bench", order_id, "");
    ev.meta = &meta;
    ev.order_id = order_id;
    ev.customer_id = "C-BENCH";
    ev.customer_email = email;
    ev.customer_name = "Bench";
    ev.status = "paid";
    ev.total_cents = 1000 + i % 100000;
    ev.currency = "USD";
    size_t len = oms__v1__order_paid__get_packed_size(&ev);
    uint8_t buf[1024];
    oms__v1__order_paid__pack(&ev, buf);
    if (js_publish_async(js, "order.paid", "oms.v1.OrderPaid", event_id, buf, len) != OMS_OK) {
        fprintf(stderr, "bench-notify: publish failed\n");
        exit(1);
    }
}

/* Rows of this run (in state, or all), or its channels with what "channels". */
static long count(PGconn *pg, const char *tag, const char *state)
{
    char like[96], sql[256];
    bool channels = state != NULL && strcmp(state, "channels") == 0;
    snprintf(like, sizeof like, "BN-%s-%%", tag);
    snprintf(sql, sizeof sql, "SELECT count(%s) FROM notify.notifications WHERE order_id LIKE $1%s",
             channels ? "DISTINCT channel" : "*", state && !channels ? " AND state = $2" : "");
    if (channels)
        state = NULL;
    const char *params[] = {like, state};
    PGresult *res = NULL;
    long n = -1;
    if (pg_query(pg, "bench count", sql, state ? 2 : 1, params, PGRES_TUPLES_OK, &res) == OMS_OK)
        n = atol(PQgetvalue(res, 0, 0));
    PQclear(res);
    return n;
}

int main(int argc, char **argv)
{
    long events = 0;
    char tag[32];
    snprintf(tag, sizeof tag, "%lld", (long long)(oms_now_ms() / 1000));
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--events") == 0)
            events = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--tag") == 0)
            snprintf(tag, sizeof tag, "%s", argv[i + 1]);
    }
    if (events <= 0) {
        fprintf(stderr, "usage: bench-notify --events N [--tag T]\n");
        return 2;
    }
    js_conn *js = NULL;
    PGconn *pg = NULL;
    const char *nats = getenv("OMS_NATS_URL"), *dsn = getenv("OMS_PG_DSN");
    if (js_connect(&js, nats ? nats : "nats://127.0.0.1:14222", getenv("OMS_NATS_USER"),
                   getenv("OMS_NATS_PASSWORD"), "bench-notify") != OMS_OK ||
        pg_connect(&pg, dsn ? dsn : "postgresql://oms@127.0.0.1:15432/oms", "notify",
                   "bench-notify") != OMS_OK) {
        fprintf(stderr, "bench-notify: cannot reach NATS or PostgreSQL (run `. .oms/env`)\n");
        return 1;
    }
    int64_t start = oms_mono_ms();
    for (long i = 0; i < events; i++)
        publish(js, tag, (int)i);
    js_publish_wait(js, 60000);
    int64_t published = oms_mono_ms();
    long rows = 0, sent = 0, per_event = 0;
    int64_t recorded_at = 0;
    while (true) {
        rows = count(pg, tag, NULL);
        sent = count(pg, tag, "sent");
        if (per_event == 0 && rows > 0)
            per_event = count(pg, tag, "channels");
        if (recorded_at == 0 && per_event > 0 && rows >= events * per_event)
            recorded_at = oms_mono_ms();
        if (recorded_at != 0 && sent + count(pg, tag, "failed") + count(pg, tag, "dead") >= rows)
            break;
        usleep(POLL_MS * 1000);
    }
    int64_t done = oms_mono_ms();
    printf("events %ld, notifications per event %ld, published in %lld ms\n", events, per_event,
           (long long)(published - start));
    printf("recorded: %lld ms after the first publish, %.0f events/s\n",
           (long long)(recorded_at - start), events * 1000.0 / (double)(recorded_at - start));
    printf("delivered: %ld sent of %ld in %lld ms, %.0f notifications/s\n", sent, rows,
           (long long)(done - start), rows * 1000.0 / (double)(done - start));
    PQfinish(pg);
    js_conn_destroy(js);
    return 0;
}
