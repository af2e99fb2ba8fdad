/*
 * payment_consume.c - stock.reserved: one payment per order, per batch one
 * set-based INSERT ... ON CONFLICT (order_id) DO NOTHING, so an order already
 * charged (a stock.reserved redelivered under another event id, or twice in
 * one batch) is ignored.
 *
 * With the mock gateway the charge is decided here, in the batch's
 * transaction, and payment.settled goes into the outbox with it; only rows
 * the INSERT returned (new payments) publish. With the http gateway the rows
 * are inserted pending and the charger sends them: no network call ever runs
 * inside this transaction.
 */
#include "payment.h"

#include "log.h"
#include "money.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ORDER_ID_MAX 256

/* The columns of the new payments of one batch, in $n order. */
enum {
    NP_PAYMENT_ID,
    NP_ORDER_ID,
    NP_AMOUNT,
    NP_CURRENCY,
    NP_STATUS,
    NP_ATTEMPTS,
    NP_GATEWAY_REF,
    NP_REASON,
    NP_CAUSE,
    NP_NCOLS
};

const char *payment_reserved_invalid(const Oms__V1__StockReserved *ev)
{
    if (ev == NULL || ev->meta == NULL)
        return "not a valid oms.v1.StockReserved";
    if (*ev->order_id == '\0' || strlen(ev->order_id) > ORDER_ID_MAX)
        return "order_id must be 1 to 256 bytes";
    if (ev->total_cents < 0)
        return "total_cents must not be negative";
    if (*ev->currency != '\0' && !money_currency_valid(ev->currency))
        return "currency must be an ISO 4217 code such as USD";
    return NULL;
}

/* Adds one new payment; the charge is decided now with the mock gateway.
 * A free order (total 0) has nothing to charge: it succeeds here in either
 * mode, without asking a gateway that would refuse a zero amount. */
static oms_status add_payment(payment_ctx *ctx, pg_cols *p, const Oms__V1__StockReserved *ev,
                              const char *cause)
{
    char payment_id[37], ref[16];
    const char *status = "pending", *reason = "", *gateway_ref = "";
    int attempts = 0;
    oms_uuid4(payment_id);
    if (ev->total_cents == 0) {
        status = "succeeded";
        gateway_ref = "free";
    } else if (ctx->cfg.gateway == PAYMENT_GATEWAY_MOCK) {
        bool ok = payment_mock_succeeds(ctx->cfg.seed, ev->order_id, ctx->cfg.success_rate);
        status = ok ? "succeeded" : "failed";
        reason = ok ? "" : PAYMENT_MOCK_DECLINED;
        snprintf(ref, sizeof ref, "mock-%.8s", payment_id);
        gateway_ref = ref;
        attempts = 1;
    }
    pg_cols_text(p, NP_PAYMENT_ID, payment_id);
    pg_cols_text(p, NP_ORDER_ID, ev->order_id);
    pg_cols_int(p, NP_AMOUNT, ev->total_cents);
    pg_cols_text(p, NP_CURRENCY, *ev->currency ? ev->currency : ctx->currency);
    pg_cols_text(p, NP_STATUS, status);
    pg_cols_int(p, NP_ATTEMPTS, attempts);
    pg_cols_text(p, NP_GATEWAY_REF, gateway_ref);
    pg_cols_text(p, NP_REASON, reason);
    pg_cols_text(p, NP_CAUSE, cause);
    return p->status;
}

/* Decodes and validates the batch into p; invalid messages are rejected. */
static oms_status collect(payment_ctx *ctx, consumer_batch *b, pg_cols *p)
{
    oms_status s = OMS_OK;
    for (size_t i = 0; i < b->n && s == OMS_OK; i++) {
        oms_msg *m = &b->msgs[i];
        if (m->duplicate || m->rejected)
            continue;
        Oms__V1__StockReserved *ev = oms__v1__stock_reserved__unpack(NULL, m->len, m->data);
        const char *why = payment_reserved_invalid(ev);
        if (why != NULL)
            consumer_reject(b, i, "%s: %s", m->subject, why);
        else
            s = add_payment(ctx, p, ev, ev->meta->event_id);
        oms__v1__stock_reserved__free_unpacked(ev, NULL);
    }
    return s;
}

static oms_status insert_payments(consumer_batch *b, pg_cols *p)
{
    PGresult *res = NULL;
    payment_tally tally = {0, 0};
    oms_status s = pg_cols_query(
        b->conn, "payment insert",
        "INSERT INTO payments AS p (payment_id, order_id, amount_cents, currency, status,"
        " attempts, gateway_ref, reason, reserved_event_id)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[],"
        "  $6::int[], $7::text[], $8::text[], $9::text[])"
        " ON CONFLICT (order_id) DO NOTHING RETURNING " PAYMENT_RETURNING,
        p, PGRES_TUPLES_OK, &res);
    for (int r = 0; s == OMS_OK && r < PQntuples(res); r++)
        s = payment_emit_settled(b->outbox, res, r, &tally);
    if (s == OMS_OK && (size_t)PQntuples(res) < pg_cols_rows(p)) {
        char ignored[24];
        snprintf(ignored, sizeof ignored, "%zu", pg_cols_rows(p) - (size_t)PQntuples(res));
        log_info("stock.reserved for orders already charged ignored", "orders", ignored, NULL);
    }
    if (s == OMS_OK) {
        consumer_count(b, "oms_payments_total", "status=\"succeeded\"", (double)tally.succeeded);
        consumer_count(b, "oms_payments_total", "status=\"failed\"", (double)tally.failed);
    }
    PQclear(res);
    return s;
}

oms_status payment_apply_stock_reserved(void *arg, consumer_batch *b)
{
    payment_ctx *ctx = arg;
    pg_cols p; /* the new payments of the batch */
    pg_cols_init(&p, NP_NCOLS);
    oms_status s = collect(ctx, b, &p);
    if (s == OMS_OK && pg_cols_rows(&p) > 0) {
        /* A gateway that charges a whole batch in parallel takes about one
         * call's latency per batch, not per payment. */
        if (ctx->cfg.gateway == PAYMENT_GATEWAY_MOCK && ctx->cfg.latency_ms > 0)
            oms_sleep_ms(ctx->cfg.latency_ms, ctx->stopping);
        s = insert_payments(b, &p);
    }
    pg_cols_fini(&p);
    return s;
}
