/*
 * refund_orders.c - order.paid: the paid orders refund may refund, one
 * set-based INSERT ... ON CONFLICT DO NOTHING per batch, so an order.paid
 * seen again (under another event id) never resets what was refunded.
 */
#include "refund.h"

#include "utf8.h"

#include <string.h>

/* The paid_orders insert's columns, in $n order. */
enum { PC_ID, PC_CUSTOMER, PC_EMAIL, PC_NAME, PC_CURRENCY, PC_TOTAL, PC_CAUSE, PC_NCOLS };

static const char *invalid_reason(const Oms__V1__OrderPaid *ev)
{
    if (ev == NULL || ev->meta == NULL)
        return "not a valid oms.v1.OrderPaid";
    if (*ev->order_id == '\0' || strlen(ev->order_id) > REFUND_ORDER_ID_MAX)
        return "order_id must be 1 to 256 bytes";
    if (ev->total_cents < 0 || ev->total_cents > REFUND_AMOUNT_MAX)
        return "total_cents must be from 0 to 100000000000000";
    if (!utf8_valid(ev->order_id) || !utf8_valid(ev->customer_id) ||
        !utf8_valid(ev->customer_email) || !utf8_valid(ev->customer_name) ||
        !utf8_valid(ev->currency))
        return "a text field is not valid UTF-8";
    return NULL;
}

static oms_status add(refund_ctx *ctx, pg_cols *c, const Oms__V1__OrderPaid *ev)
{
    pg_cols_text(c, PC_ID, ev->order_id);
    pg_cols_text(c, PC_CUSTOMER, ev->customer_id);
    pg_cols_text(c, PC_EMAIL, ev->customer_email);
    pg_cols_text(c, PC_NAME, ev->customer_name);
    pg_cols_text(c, PC_CURRENCY, *ev->currency ? ev->currency : ctx->currency);
    pg_cols_int(c, PC_TOTAL, ev->total_cents);
    pg_cols_text(c, PC_CAUSE, ev->meta->event_id);
    return c->status;
}

oms_status refund_apply_order_paid(void *arg, consumer_batch *b)
{
    refund_ctx *ctx = arg;
    pg_cols c;
    oms_status s = OMS_OK;
    pg_cols_init(&c, PC_NCOLS);
    for (size_t i = 0; i < b->n && s == OMS_OK; i++) {
        oms_msg *m = &b->msgs[i];
        if (m->duplicate || m->rejected)
            continue;
        Oms__V1__OrderPaid *ev = oms__v1__order_paid__unpack(NULL, m->len, m->data);
        const char *why = invalid_reason(ev);
        if (why != NULL)
            consumer_reject(b, i, "%s: %s", m->subject, why);
        else
            s = add(ctx, &c, ev);
        oms__v1__order_paid__free_unpacked(ev, NULL);
    }
    /* Sorted, so that two processes inserting overlapping orders lock the
     * unique index entries in one order. */
    if (s == OMS_OK && pg_cols_rows(&c) > 0)
        s = pg_cols_query(b->conn, "paid orders insert",
                          "INSERT INTO paid_orders (order_id, customer_id, customer_email,"
                          " customer_name, currency, paid_total_cents, paid_event_id)"
                          " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],"
                          "  $5::text[], $6::bigint[], $7::text[]) AS x(o, c, e, n, cur, t, ev)"
                          " ORDER BY o COLLATE \"C\""
                          " ON CONFLICT (order_id) DO NOTHING",
                          &c, PGRES_COMMAND_OK, NULL);
    pg_cols_fini(&c);
    return s;
}
