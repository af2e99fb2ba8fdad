/*
 * ingest_refunds.c - refund.processed: the order's refunded status and the
 * integration event order.refunded, once per refund.
 *
 * A batch per transaction: lock the batch's orders in order-id order (the
 * order the status consumers of ingest_status.c lock in, so they never
 * deadlock), record the refunds in order_refunds (INSERT ... ON CONFLICT DO
 * NOTHING RETURNING: a refund already applied, even under another event id,
 * comes back empty and changes nothing), then walk the new refunds in event
 * order carrying each order's refunded sum: the order becomes refunded when
 * the sum reaches its total (or the refund says it is full), else
 * partially_refunded; it never goes back from refunded. One UPDATE of the
 * orders, one INSERT of history rows, one order.refunded per refund.
 * Only paid (or already refunded) orders move; a refund of any other order is
 * logged and ignored.
 */
#include "ingest.h"

#include "log.h"
#include "money.h"
#include "strs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REASON_LEN 1024

typedef struct locked_order {
    const char *id; /* borrowed from the lock result */
    int row;        /* its row there */
    int64_t refunded;
    const char *status;
    bool changed;
} locked_order;

typedef struct refund_batch {
    consumer_batch *b;
    Oms__V1__RefundProcessed **events; /* per message; NULL when not applied */
    PGresult *locked;                  /* order_id, customer_id, email, name, total, currency,
                                          import_id, kind, status, refunded_cents */
    locked_order *orders;              /* sorted by id (strcmp) */
    const char **ids;
    size_t n_orders;
    PGresult *fresh;        /* refund ids applied for the first time */
    const char **fresh_ids; /* sorted */
    bool *fresh_used;       /* per fresh id: applied in this batch already */
    size_t n_fresh;
} refund_batch;

static int cmp_locked(const void *a, const void *b)
{
    return strcmp(((const locked_order *)a)->id, ((const locked_order *)b)->id);
}

static void decode(refund_batch *rb, size_t i)
{
    oms_msg *m = &rb->b->msgs[i];
    Oms__V1__RefundProcessed *ev = oms__v1__refund_processed__unpack(NULL, m->len, m->data);
    if (ev == NULL || ev->meta == NULL || *ev->order_id == '\0' || *ev->refund_id == '\0' ||
        ev->amount_cents <= 0) {
        consumer_reject(rb->b, i,
                        "%s: not a valid oms.v1.RefundProcessed (order_id, refund_id and a "
                        "positive amount_cents are required)",
                        m->subject);
        oms__v1__refund_processed__free_unpacked(ev, NULL);
        return;
    }
    rb->events[i] = ev;
}

/* The order_refunds columns; $1 alone also selects the orders to lock. */
static const char *const *collect(refund_batch *rb, pg_cols *c)
{
    for (size_t i = 0; i < rb->b->n; i++) {
        const Oms__V1__RefundProcessed *ev = rb->events[i];
        if (ev == NULL)
            continue;
        pg_cols_text(c, 0, ev->order_id);
        pg_cols_text(c, 1, ev->refund_id);
        pg_cols_int(c, 2, ev->amount_cents);
        pg_cols_text(c, 3, ev->meta->event_id);
    }
    return pg_cols_params(c);
}

static oms_status index_orders(refund_batch *rb)
{
    int n = PQntuples(rb->locked);
    rb->orders = calloc(n ? (size_t)n : 1, sizeof *rb->orders);
    rb->ids = calloc(n ? (size_t)n : 1, sizeof *rb->ids);
    if (rb->orders == NULL || rb->ids == NULL)
        return OMS_ENOMEM;
    for (int r = 0; r < n; r++)
        rb->orders[r] = (locked_order){PQgetvalue(rb->locked, r, 0), r,
                                       atoll(PQgetvalue(rb->locked, r, 9)),
                                       PQgetvalue(rb->locked, r, 8), false};
    qsort(rb->orders, (size_t)n, sizeof *rb->orders, cmp_locked);
    for (int r = 0; r < n; r++)
        rb->ids[r] = rb->orders[r].id;
    rb->n_orders = (size_t)n;
    int f = PQntuples(rb->fresh);
    rb->fresh_ids = calloc(f ? (size_t)f : 1, sizeof *rb->fresh_ids);
    rb->fresh_used = calloc(f ? (size_t)f : 1, sizeof *rb->fresh_used);
    if (rb->fresh_ids == NULL || rb->fresh_used == NULL)
        return OMS_ENOMEM;
    for (int r = 0; r < f; r++)
        rb->fresh_ids[r] = PQgetvalue(rb->fresh, r, 0);
    rb->n_fresh = (size_t)f;
    strs_sort_unique(rb->fresh_ids, &rb->n_fresh);
    return OMS_OK;
}

/* Locks the orders and records the refunds not applied before. */
static oms_status lock_and_record(refund_batch *rb)
{
    pg_cols c;
    oms_status s = OMS_OK;
    pg_cols_init(&c, 4);
    const char *const *params = collect(rb, &c);
    if (params == NULL)
        s = c.status != OMS_OK ? c.status : OMS_ENOMEM;
    if (s == OMS_OK)
        s = pg_query(rb->b->conn, "refund orders lock",
                     "SELECT o.order_id, o.customer_id, o.customer_email, o.customer_name,"
                     " o.total_cents, o.currency, o.import_id, i.kind, o.status, o.refunded_cents"
                     " FROM orders o JOIN imports i USING (import_id)"
                     " WHERE o.order_id = ANY($1::text[])"
                     " AND o.status IN ('paid', 'partially_refunded', 'refunded')"
                     " ORDER BY o.order_id FOR UPDATE OF o",
                     1, params, PGRES_TUPLES_OK, &rb->locked);
    if (s == OMS_OK)
        s = pg_query(
            rb->b->conn, "order refunds insert",
            "INSERT INTO order_refunds (refund_id, order_id, amount_cents, event_id)"
            " SELECT x.r, x.o, x.a, x.c"
            " FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[]) AS x(o, r, a, c)"
            " JOIN orders o ON o.order_id = x.o"
            " WHERE o.status IN ('paid', 'partially_refunded', 'refunded')"
            " ON CONFLICT (refund_id) DO NOTHING RETURNING refund_id",
            4, params, PGRES_TUPLES_OK, &rb->fresh);
    if (s == OMS_OK)
        s = index_orders(rb);
    pg_cols_fini(&c);
    return s;
}

static oms_status emit(refund_batch *rb, const Oms__V1__RefundProcessed *ev, const locked_order *o)
{
    PGresult *l = rb->locked;
    int r = o->row;
    char id[37];
    Oms__V1__EventMeta meta;
    Oms__V1__OrderRefunded out = OMS__V1__ORDER_REFUNDED__INIT;
    outbox_meta_init(&meta, id, "ingest", ev->order_id, ev->meta->event_id);
    out.meta = &meta;
    out.order_id = ev->order_id;
    out.customer_id = PQgetvalue(l, r, 1);
    out.customer_email = PQgetvalue(l, r, 2);
    out.customer_name = PQgetvalue(l, r, 3);
    out.status = (char *)o->status;
    out.total_cents = atoll(PQgetvalue(l, r, 4));
    out.currency = PQgetvalue(l, r, 5);
    out.refund_id = ev->refund_id;
    out.amount_cents = ev->amount_cents;
    out.refunded_total_cents = o->refunded;
    out.reason = ev->reason;
    out.refunded_at_ms = meta.occurred_at_ms;
    out.import_id = strcmp(PQgetvalue(l, r, 7), "live") == 0 ? "" : PQgetvalue(l, r, 6);
    return outbox_batch_add_message(rb->b->outbox, "order.refunded", id, &out.base);
}

/* One refund applied to its order in memory; its history row and event. */
static oms_status apply_one(refund_batch *rb, size_t i, pg_cols *history)
{
    const Oms__V1__RefundProcessed *ev = rb->events[i];
    long k = strs_find(rb->ids, rb->n_orders, ev->order_id);
    long f = strs_find(rb->fresh_ids, rb->n_fresh, ev->refund_id);
    char amount[64], reason[REASON_LEN];
    /* A second copy of a refund in this batch is a repeat too. */
    if (k < 0 || f < 0 || rb->fresh_used[f]) {
        log_info("refund.processed ignored: refund already applied or order not paid", "order_id",
                 ev->order_id, "refund_id", ev->refund_id, NULL);
        consumer_count(rb->b, "oms_ingest_refunds_ignored_total", "", 1);
        return OMS_OK;
    }
    rb->fresh_used[f] = true;
    locked_order *o = &rb->orders[k];
    int64_t total = atoll(PQgetvalue(rb->locked, o->row, 4));
    o->refunded += ev->amount_cents;
    o->changed = true;
    bool full = ev->full || o->refunded >= total || strcmp(o->status, "refunded") == 0;
    o->status = full ? "refunded" : "partially_refunded";
    money_format_currency(ev->amount_cents, PQgetvalue(rb->locked, o->row, 5), amount,
                          sizeof amount);
    snprintf(reason, sizeof reason, "refund of %s%s%.512s", amount, *ev->reason ? ": " : "",
             ev->reason);
    pg_cols_text(history, 0, ev->order_id);
    pg_cols_text(history, 1, o->status);
    pg_cols_text(history, 2, reason);
    pg_cols_text(history, 3, ev->meta->event_id);
    if (history->status != OMS_OK)
        return history->status;
    consumer_count(rb->b, "oms_ingest_order_transitions_total",
                   full ? "status=\"refunded\"" : "status=\"partially_refunded\"", 1);
    return emit(rb, ev, o);
}

static oms_status write_orders(refund_batch *rb, pg_cols *history)
{
    pg_cols c;
    oms_status s;
    pg_cols_init(&c, 3);
    for (size_t k = 0; k < rb->n_orders; k++) {
        const locked_order *o = &rb->orders[k];
        if (o->changed) {
            pg_cols_text(&c, 0, o->id);
            pg_cols_text(&c, 1, o->status);
            pg_cols_int(&c, 2, o->refunded);
        }
    }
    if ((s = c.status) == OMS_OK && pg_cols_rows(&c) > 0)
        s = pg_cols_query(
            rb->b->conn, "order refunded",
            "UPDATE orders o SET status = x.status, refunded_cents = x.refunded,"
            " updated_at = now()"
            " FROM unnest($1::text[], $2::text[], $3::bigint[]) AS x(id, status, refunded)"
            " WHERE o.order_id = x.id",
            &c, PGRES_COMMAND_OK, NULL);
    if (s == OMS_OK && pg_cols_rows(history) > 0)
        s = pg_cols_query(rb->b->conn, "order refunded history",
                          "INSERT INTO order_status_history (order_id, status, reason, event_id)"
                          " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])",
                          history, PGRES_COMMAND_OK, NULL);
    pg_cols_fini(&c);
    return s;
}

static oms_status apply(refund_batch *rb)
{
    pg_cols history; /* order_status_history rows, one per refund applied */
    oms_status s = lock_and_record(rb);
    pg_cols_init(&history, 4);
    for (size_t i = 0; s == OMS_OK && i < rb->b->n; i++)
        if (rb->events[i] != NULL)
            s = apply_one(rb, i, &history);
    if (s == OMS_OK)
        s = write_orders(rb, &history);
    pg_cols_fini(&history);
    return s;
}

oms_status ingest_apply_refund_processed(void *arg, consumer_batch *b)
{
    (void)arg; /* counters go through consumer_count */
    refund_batch rb = {.b = b};
    oms_status s = OMS_ENOMEM;
    bool any = false;
    rb.events = calloc(b->n ? b->n : 1, sizeof *rb.events);
    if (rb.events == NULL)
        goto out;
    for (size_t i = 0; i < b->n; i++) {
        if (!b->msgs[i].duplicate && !b->msgs[i].rejected)
            decode(&rb, i);
        any = any || rb.events[i] != NULL;
    }
    s = any ? apply(&rb) : OMS_OK;
out:
    for (size_t i = 0; rb.events != NULL && i < b->n; i++)
        oms__v1__refund_processed__free_unpacked(rb.events[i], NULL);
    free(rb.events), free(rb.orders), free(rb.ids), free(rb.fresh_ids);
    free(rb.fresh_used);
    PQclear(rb.locked);
    PQclear(rb.fresh);
    return s;
}
