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
    pg_cols cols; /* order_id, reason, cause */
} transitions;

static void transitions_init(transitions *t)
{
    pg_cols_init(&t->cols, 3);
}

static void transitions_fini(transitions *t)
{
    pg_cols_fini(&t->cols);
}

static oms_status transitions_add(transitions *t, const char *order_id, const char *reason,
                                  const char *cause)
{
    pg_cols_text(&t->cols, 0, order_id);
    pg_cols_text(&t->cols, 1, reason);
    pg_cols_text(&t->cols, 2, cause);
    return t->cols.status;
}

/* Columns returned by every transition, for the events. */
#define RETURNED                                                                   \
    "o.order_id, o.customer_id, o.customer_email, o.customer_name, o.total_cents," \
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
    if (pg_cols_rows(&t->cols) == 0)
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
    const char *const *params = pg_cols_params(&t->cols);
    if (params == NULL)
        return t->cols.status != OMS_OK ? t->cols.status : OMS_ENOMEM;
    /* The three status consumers (and other replicas) update overlapping
     * orders. The update locks its rows in the order of t, sorted by order
     * id (apply_events): the consumer's transaction plans keyed
     * (PG_KEYED_PLANS), so the join is a nested loop driven by the unnest.
     * Should a plan ever lock otherwise, PostgreSQL aborts one of two
     * deadlocked batches and the consumer retries it. A separate SELECT ...
     * FOR UPDATE in order-id order cost one more statement, and one more
     * heap lock and WAL record per row. */
    oms_status s = pg_query(b->conn, "order transition", sql, 3, params, PGRES_TUPLES_OK, &res);
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

/* ---- events to transitions -------------------------------------------- */

typedef enum target { TO_RESERVED, TO_PAID, TO_FAILED, TARGETS } target;

/* The status each target moves an order to, and from which (a SQL list). */
static const struct {
    const char *to, *from;
} TARGET_SQL[TARGETS] = {
    [TO_RESERVED] = {"reserved", "'created'"},
    [TO_PAID] = {"paid", "'created', 'reserved'"},
    [TO_FAILED] = {"failed", "'created', 'reserved'"},
};

/* What one event asks of its order. */
typedef struct wanted {
    const char *order_id, *cause; /* borrowed from the event */
    target to;
    char reason[512];
} wanted;

/* Reads a decoded event into *w; false when the event is not valid. */
typedef bool (*read_fn)(const ProtobufCMessage *msg, wanted *w);

/* A decoded event and what it asks; its order id and cause are borrowed from
 * the decoded message. */
typedef struct wanted_event {
    ProtobufCMessage *pm;
    wanted w;
} wanted_event;

static int by_order_id(const void *a, const void *b)
{
    const wanted_event *x = a, *y = b;
    return strcmp(x->w.order_id, y->w.order_id);
}

/* Decodes every message of the batch with d, rejects those read refuses
 * (the reason names the type: invalid), and applies the transitions, each
 * over its orders sorted by order id (the lock order apply_transitions
 * relies on). */
static oms_status apply_events(consumer_batch *b, const ProtobufCMessageDescriptor *d, read_fn read,
                               const char *invalid)
{
    transitions t[TARGETS];
    wanted_event *ev = calloc(b->n ? b->n : 1, sizeof *ev);
    size_t n = 0;
    oms_status s = ev != NULL ? OMS_OK : OMS_ENOMEM;
    for (int k = 0; k < TARGETS; k++)
        transitions_init(&t[k]);
    for (size_t i = 0; i < b->n && s == OMS_OK; i++) {
        oms_msg *m = &b->msgs[i];
        if (m->duplicate || m->rejected)
            continue;
        ev[n].pm = protobuf_c_message_unpack(d, NULL, m->len, m->data);
        ev[n].w = (wanted){.reason = ""};
        if (ev[n].pm == NULL || !read(ev[n].pm, &ev[n].w) || *ev[n].w.order_id == '\0') {
            consumer_reject(b, i, "%s: not a valid %s", m->subject, invalid);
            if (ev[n].pm != NULL)
                protobuf_c_message_free_unpacked(ev[n].pm, NULL);
            continue;
        }
        n++;
    }
    if (s == OMS_OK)
        qsort(ev, n, sizeof *ev, by_order_id);
    for (size_t i = 0; i < n && s == OMS_OK; i++)
        s = transitions_add(&t[ev[i].w.to], ev[i].w.order_id, ev[i].w.reason, ev[i].w.cause);
    for (int k = 0; k < TARGETS && s == OMS_OK; k++)
        if (pg_cols_rows(&t[k].cols) > 0)
            s = apply_transitions(b, &t[k], TARGET_SQL[k].to, TARGET_SQL[k].from);
    for (size_t i = 0; i < n; i++)
        protobuf_c_message_free_unpacked(ev[i].pm, NULL);
    free(ev);
    for (int k = 0; k < TARGETS; k++)
        transitions_fini(&t[k]);
    return s;
}

static bool read_reserved(const ProtobufCMessage *msg, wanted *w)
{
    const Oms__V1__StockReserved *ev = (const Oms__V1__StockReserved *)msg;
    if (ev->meta == NULL)
        return false;
    *w = (wanted){ev->order_id, ev->meta->event_id, TO_RESERVED, ""};
    return true;
}

static bool read_rejected(const ProtobufCMessage *msg, wanted *w)
{
    const Oms__V1__StockRejected *ev = (const Oms__V1__StockRejected *)msg;
    if (ev->meta == NULL)
        return false;
    *w = (wanted){ev->order_id, ev->meta->event_id, TO_FAILED, ""};
    snprintf(w->reason, sizeof w->reason, "out of stock: %s", ev->reason);
    return true;
}

static bool read_settled(const ProtobufCMessage *msg, wanted *w)
{
    const Oms__V1__PaymentSettled *ev = (const Oms__V1__PaymentSettled *)msg;
    bool paid = ev->status == OMS__V1__PAYMENT_STATUS__PAYMENT_STATUS_SUCCEEDED;
    if (ev->meta == NULL || (!paid && ev->status != OMS__V1__PAYMENT_STATUS__PAYMENT_STATUS_FAILED))
        return false;
    *w = (wanted){ev->order_id, ev->meta->event_id, paid ? TO_PAID : TO_FAILED, ""};
    if (!paid)
        snprintf(w->reason, sizeof w->reason, "payment failed: %s", ev->reason);
    return true;
}

/* Counters go through consumer_count: the context is not needed. */

oms_status ingest_apply_stock_reserved(void *arg, consumer_batch *b)
{
    (void)arg;
    return apply_events(b, &oms__v1__stock_reserved__descriptor, read_reserved,
                        "oms.v1.StockReserved");
}

oms_status ingest_apply_stock_rejected(void *arg, consumer_batch *b)
{
    (void)arg;
    return apply_events(b, &oms__v1__stock_rejected__descriptor, read_rejected,
                        "oms.v1.StockRejected");
}

oms_status ingest_apply_payment_settled(void *arg, consumer_batch *b)
{
    (void)arg;
    return apply_events(b, &oms__v1__payment_settled__descriptor, read_settled,
                        "oms.v1.PaymentSettled (status SUCCEEDED or FAILED)");
}
