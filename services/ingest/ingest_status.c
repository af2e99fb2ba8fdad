/*
 * ingest_status.c - order status from the lifecycle events.
 *
 * ingest owns orders, so it turns stock.reserved, stock.rejected and
 * payment.settled into the order's status and publishes the integration
 * events order.paid / order.failed. Each transition is one conditional
 * UPDATE per batch (... WHERE status IN (<allowed from>) RETURNING): the
 * row lock serialises replicas, and only the update that actually moved an
 * order to a terminal status publishes its event, so each order reaches
 * exactly one terminal status, once, whatever the order events arrive in.
 * payment.settled may overtake stock.reserved (they travel on different
 * streams): paid and failed are reachable from created too.
 */
#include "ingest.h"

#include "log.h"
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Transitions decided for one batch, applied set-based. */
typedef struct transitions {
    pg_array ids, reasons, causes;
} transitions;

static void transitions_init(transitions *t)
{
    pg_array_init(&t->ids), pg_array_init(&t->reasons), pg_array_init(&t->causes);
}

static void transitions_fini(transitions *t)
{
    pg_array_fini(&t->ids), pg_array_fini(&t->reasons), pg_array_fini(&t->causes);
}

static oms_status transitions_add(transitions *t, const char *order_id, const char *reason,
                                  const char *cause)
{
    if (pg_array_add(&t->ids, order_id) || pg_array_add(&t->reasons, reason) ||
        pg_array_add(&t->causes, cause))
        return OMS_ENOMEM;
    return OMS_OK;
}

/* Columns returned by every transition, for the events. */
#define RETURNED "o.order_id, o.customer_id, o.customer_email, o.customer_name, o.total_cents," \
                 " o.currency, o.placed_at_ms, o.import_id, o.status_reason, i.kind"

static oms_status emit_terminal(outbox_batch *ob, PGresult *res, int r, const char *status,
                                const char *cause)
{
    char id[37];
    Oms__V1__EventMeta meta;
    const char *import_id = strcmp(PQgetvalue(res, r, 9), "live") == 0 ? "" : PQgetvalue(res, r, 7);
    outbox_meta_init(&meta, id, "ingest", PQgetvalue(res, r, 0), cause);
    if (strcmp(status, "paid") == 0) {
        Oms__V1__OrderPaid ev = OMS__V1__ORDER_PAID__INIT;
        ev.meta = &meta;
        ev.order_id = PQgetvalue(res, r, 0);
        ev.customer_id = PQgetvalue(res, r, 1);
        ev.customer_email = PQgetvalue(res, r, 2);
        ev.customer_name = PQgetvalue(res, r, 3);
        ev.total_cents = atoll(PQgetvalue(res, r, 4));
        ev.currency = PQgetvalue(res, r, 5);
        ev.placed_at_ms = atoll(PQgetvalue(res, r, 6));
        ev.import_id = (char *)import_id;
        ev.status = "paid";
        ev.reason = "";
        ev.paid_at_ms = meta.occurred_at_ms;
        return outbox_batch_add_message(ob, "order.paid", id, &ev.base);
    }
    Oms__V1__OrderFailed ev = OMS__V1__ORDER_FAILED__INIT;
    ev.meta = &meta;
    ev.order_id = PQgetvalue(res, r, 0);
    ev.customer_id = PQgetvalue(res, r, 1);
    ev.customer_email = PQgetvalue(res, r, 2);
    ev.customer_name = PQgetvalue(res, r, 3);
    ev.total_cents = atoll(PQgetvalue(res, r, 4));
    ev.currency = PQgetvalue(res, r, 5);
    ev.placed_at_ms = atoll(PQgetvalue(res, r, 6));
    ev.import_id = (char *)import_id;
    ev.status = "failed";
    ev.reason = PQgetvalue(res, r, 8);
    ev.failed_at_ms = meta.occurred_at_ms;
    return outbox_batch_add_message(ob, "order.failed", id, &ev.base);
}

/* Moves the orders of t from one of `from` (a SQL list) to `to`, records the
 * history, and publishes order.<to> when to is terminal. */
static oms_status apply_transitions(consumer_batch *b, transitions *t, const char *to,
                                    const char *from)
{
    char sql[1024];
    PGresult *res = NULL;
    if (t->ids.count == 0)
        return OMS_OK;
    snprintf(sql, sizeof sql,
             "WITH moved AS ("
             "  UPDATE orders o SET status = '%s', status_reason = x.reason, updated_at = now()"
             "  FROM unnest($1::text[], $2::text[], $3::text[]) AS x(order_id, reason, cause)"
             "  WHERE o.order_id = x.order_id AND o.status IN (%s)"
             "  RETURNING o.*, x.cause),"
             " hist AS (INSERT INTO order_status_history (order_id, status, reason, event_id)"
             "  SELECT order_id, status, status_reason, cause FROM moved)"
             " SELECT " RETURNED ", o.cause FROM moved o JOIN imports i USING (import_id)",
             to, from);
    const char *params[] = {pg_array_literal(&t->ids), pg_array_literal(&t->reasons),
                            pg_array_literal(&t->causes)};
    /* Lock in order-id order first: the three status consumers (and other
     * replicas) update overlapping orders, and UPDATE ... FROM unnest locks
     * rows in whatever order the join yields them. */
    oms_status s = pg_query(b->conn, "order transition lock",
                            "SELECT 1 FROM orders WHERE order_id = ANY($1::text[])"
                            " ORDER BY order_id FOR UPDATE",
                            1, params, PGRES_TUPLES_OK, NULL);
    if (s == OMS_OK)
        s = pg_query(b->conn, "order transition", sql, 3, params, PGRES_TUPLES_OK, &res);
    bool terminal = strcmp(to, "paid") == 0 || strcmp(to, "failed") == 0;
    for (int r = 0; s == OMS_OK && terminal && r < PQntuples(res); r++)
        s = emit_terminal(b->outbox, res, r, to, PQgetvalue(res, r, 10));
    if (s == OMS_OK && res != NULL) {
        char labels[48];
        snprintf(labels, sizeof labels, "status=\"%s\"", to);
        consumer_count(b, "oms_ingest_order_transitions_total", labels, PQntuples(res));
    }
    PQclear(res);
    return s;
}

oms_status ingest_apply_stock_reserved(void *arg, consumer_batch *b)
{
    (void)arg; /* counters go through consumer_count */
    transitions t;
    oms_status s = OMS_OK;
    transitions_init(&t);
    for (size_t i = 0; i < b->n && s == OMS_OK; i++) {
        oms_msg *m = &b->msgs[i];
        if (m->duplicate || m->rejected)
            continue;
        Oms__V1__StockReserved *ev = oms__v1__stock_reserved__unpack(NULL, m->len, m->data);
        if (ev == NULL || ev->meta == NULL || *ev->order_id == '\0') {
            consumer_reject(b, i, "%s: not a valid oms.v1.StockReserved", m->subject);
        } else {
            s = transitions_add(&t, ev->order_id, "", ev->meta->event_id);
        }
        oms__v1__stock_reserved__free_unpacked(ev, NULL);
    }
    if (s == OMS_OK)
        s = apply_transitions(b, &t, "reserved", "'created'");
    transitions_fini(&t);
    return s;
}

oms_status ingest_apply_stock_rejected(void *arg, consumer_batch *b)
{
    (void)arg; /* counters go through consumer_count */
    transitions t;
    oms_status s = OMS_OK;
    transitions_init(&t);
    for (size_t i = 0; i < b->n && s == OMS_OK; i++) {
        oms_msg *m = &b->msgs[i];
        if (m->duplicate || m->rejected)
            continue;
        Oms__V1__StockRejected *ev = oms__v1__stock_rejected__unpack(NULL, m->len, m->data);
        if (ev == NULL || ev->meta == NULL || *ev->order_id == '\0') {
            consumer_reject(b, i, "%s: not a valid oms.v1.StockRejected", m->subject);
        } else {
            char reason[512];
            snprintf(reason, sizeof reason, "out of stock: %s", ev->reason);
            s = transitions_add(&t, ev->order_id, reason, ev->meta->event_id);
        }
        oms__v1__stock_rejected__free_unpacked(ev, NULL);
    }
    if (s == OMS_OK)
        s = apply_transitions(b, &t, "failed", "'created', 'reserved'");
    transitions_fini(&t);
    return s;
}

oms_status ingest_apply_payment_settled(void *arg, consumer_batch *b)
{
    (void)arg; /* counters go through consumer_count */
    transitions paid, failed;
    oms_status s = OMS_OK;
    transitions_init(&paid);
    transitions_init(&failed);
    for (size_t i = 0; i < b->n && s == OMS_OK; i++) {
        oms_msg *m = &b->msgs[i];
        if (m->duplicate || m->rejected)
            continue;
        Oms__V1__PaymentSettled *ev = oms__v1__payment_settled__unpack(NULL, m->len, m->data);
        if (ev == NULL || ev->meta == NULL || *ev->order_id == '\0' ||
            (ev->status != OMS__V1__PAYMENT_STATUS__PAYMENT_STATUS_SUCCEEDED &&
             ev->status != OMS__V1__PAYMENT_STATUS__PAYMENT_STATUS_FAILED)) {
            consumer_reject(b, i, "%s: not a valid oms.v1.PaymentSettled (status SUCCEEDED or FAILED)",
                            m->subject);
        } else if (ev->status == OMS__V1__PAYMENT_STATUS__PAYMENT_STATUS_SUCCEEDED) {
            s = transitions_add(&paid, ev->order_id, "", ev->meta->event_id);
        } else {
            char reason[512];
            snprintf(reason, sizeof reason, "payment failed: %s", ev->reason);
            s = transitions_add(&failed, ev->order_id, reason, ev->meta->event_id);
        }
        oms__v1__payment_settled__free_unpacked(ev, NULL);
    }
    if (s == OMS_OK)
        s = apply_transitions(b, &paid, "paid", "'created', 'reserved'");
    if (s == OMS_OK)
        s = apply_transitions(b, &failed, "failed", "'created', 'reserved'");
    transitions_fini(&paid);
    transitions_fini(&failed);
    return s;
}
