/*
 * refund_orders.c - order.paid: the paid orders refund may refund, one
 * set-based INSERT ... ON CONFLICT DO NOTHING per batch, so an order.paid
 * seen again (under another event id) never resets what was refunded.
 */
#include "refund.h"

#include "utf8.h"

#include <string.h>

typedef struct paid_cols {
    pg_array ids, customers, emails, names, currencies, totals, causes;
} paid_cols;

static void cols_init(paid_cols *c)
{
    pg_array_init(&c->ids), pg_array_init(&c->customers), pg_array_init(&c->emails);
    pg_array_init(&c->names), pg_array_init(&c->currencies), pg_array_init(&c->totals);
    pg_array_init(&c->causes);
}

static void cols_fini(paid_cols *c)
{
    pg_array_fini(&c->ids), pg_array_fini(&c->customers), pg_array_fini(&c->emails);
    pg_array_fini(&c->names), pg_array_fini(&c->currencies), pg_array_fini(&c->totals);
    pg_array_fini(&c->causes);
}

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

static oms_status add(refund_ctx *ctx, paid_cols *c, const Oms__V1__OrderPaid *ev)
{
    if (pg_array_add(&c->ids, ev->order_id) || pg_array_add(&c->customers, ev->customer_id) ||
        pg_array_add(&c->emails, ev->customer_email) ||
        pg_array_add(&c->names, ev->customer_name) ||
        pg_array_add(&c->currencies, *ev->currency ? ev->currency : ctx->currency) ||
        pg_array_add_int(&c->totals, ev->total_cents) ||
        pg_array_add(&c->causes, ev->meta->event_id))
        return OMS_ENOMEM;
    return OMS_OK;
}

oms_status refund_apply_order_paid(void *arg, consumer_batch *b)
{
    refund_ctx *ctx = arg;
    paid_cols c;
    oms_status s = OMS_OK;
    cols_init(&c);
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
    const char *params[] = {pg_array_literal(&c.ids),        pg_array_literal(&c.customers),
                            pg_array_literal(&c.emails),     pg_array_literal(&c.names),
                            pg_array_literal(&c.currencies), pg_array_literal(&c.totals),
                            pg_array_literal(&c.causes)};
    /* Sorted, so that two processes inserting overlapping orders lock the
     * unique index entries in one order. */
    if (s == OMS_OK && c.ids.count > 0)
        s = pg_query(b->conn, "paid orders insert",
                     "INSERT INTO paid_orders (order_id, customer_id, customer_email,"
                     " customer_name, currency, paid_total_cents, paid_event_id)"
                     " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],"
                     "  $5::text[], $6::bigint[], $7::text[]) AS x(o, c, e, n, cur, t, ev)"
                     " ORDER BY o COLLATE \"C\""
                     " ON CONFLICT (order_id) DO NOTHING",
                     7, params, PGRES_COMMAND_OK, NULL);
    cols_fini(&c);
    return s;
}
