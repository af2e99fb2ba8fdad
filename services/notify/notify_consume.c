/*
 * notify_consume.c - order.paid, order.failed and order.refunded: one row
 * per (event, enabled channel), per batch one set-based INSERT ... SELECT
 * FROM unnest ... ON CONFLICT (event_id, channel) DO NOTHING.
 *
 * The key is the event's meta.event_id, so an event published again under
 * another Nats-Msg-Id (which the inbox cannot recognise) still notifies
 * once. Nothing goes on the network here: email and webhook rows are
 * pending and the sender delivers them after COMMIT. The log channel is
 * delivered here, because writing a line on our own log cannot be slow or
 * fail: its rows are inserted sent (attempt 1), and the line of each row
 * the INSERT returned (a new one) is written before COMMIT. A crash or a
 * failed COMMIT after the line brings the message back and writes it
 * again: at least once, as every channel; no row is ever updated for it.
 * A notification that must not go out is written failed at once, with the
 * reason: an email for a customer without a usable address, or any
 * notification of an event older than OMS_NOTIFY_MAX_AGE_H (a first start
 * on a stream holding days of events must not mail them all).
 */
#include "notify.h"

#include "log.h"
#include "money.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TIME_MS 253402300799999LL /* 9999-12-31T23:59:59.999Z, PostgreSQL's limit is later */

enum column {
    COL_EVENT_ID,
    COL_CHANNEL,
    COL_SUBJECT,
    COL_ORDER_ID,
    COL_CUSTOMER_ID,
    COL_EMAIL,
    COL_NAME,
    COL_STATUS,
    COL_TOTAL,
    COL_CURRENCY,
    COL_REASON,
    COL_REFUND_ID,
    COL_REFUND,
    COL_REFUNDED,
    COL_OCCURRED,
    COL_STATE,
    COL_ERROR,
    N_COLUMNS
};

/* The INSERT's RETURNING: NOTIFY_MSG_COLUMNS, attempts, then the state. */
#define INSERT_STATE 17

/* One event of any of the three types, its strings borrowed from the
 * unpacked message. */
typedef struct order_event {
    const char *event_id, *order_id, *customer_id, *email, *name, *status, *currency, *reason;
    const char *refund_id;
    int64_t total_cents, refund_cents, refunded_total_cents, occurred_at_ms;
} order_event;

/* The fields the three event types share (same names in each). */
#define VIEW_COMMON(e, ev, m, default_status)                                             \
    do {                                                                                  \
        (e)->event_id = *(ev)->meta->event_id ? (ev)->meta->event_id : (m)->event_id;     \
        (e)->occurred_at_ms = (ev)->meta->occurred_at_ms > 0 ? (ev)->meta->occurred_at_ms \
                                                             : oms_now_ms();              \
        (e)->order_id = (ev)->order_id, (e)->customer_id = (ev)->customer_id;             \
        (e)->email = (ev)->customer_email, (e)->name = (ev)->customer_name;               \
        (e)->status = *(ev)->status ? (ev)->status : (default_status);                    \
        (e)->currency = (ev)->currency, (e)->reason = (ev)->reason;                       \
        (e)->total_cents = (ev)->total_cents, (e)->refund_id = "";                        \
    } while (0)

/* Unpacks m into *e (strings borrowed from the returned message, which the
 * caller frees). e->order_id stays NULL when the payload is not the
 * subject's message or has no meta. */
static ProtobufCMessage *unpack(const oms_msg *m, order_event *e)
{
    memset(e, 0, sizeof *e);
    if (strcmp(m->subject, "order.paid") == 0) {
        Oms__V1__OrderPaid *ev = oms__v1__order_paid__unpack(NULL, m->len, m->data);
        if (ev != NULL && ev->meta != NULL)
            VIEW_COMMON(e, ev, m, "paid");
        return ev ? &ev->base : NULL;
    }
    if (strcmp(m->subject, "order.failed") == 0) {
        Oms__V1__OrderFailed *ev = oms__v1__order_failed__unpack(NULL, m->len, m->data);
        if (ev != NULL && ev->meta != NULL)
            VIEW_COMMON(e, ev, m, "failed");
        return ev ? &ev->base : NULL;
    }
    if (strcmp(m->subject, "order.refunded") != 0)
        return NULL;
    Oms__V1__OrderRefunded *ev = oms__v1__order_refunded__unpack(NULL, m->len, m->data);
    if (ev != NULL && ev->meta != NULL) {
        VIEW_COMMON(e, ev, m, "refunded");
        e->refund_id = ev->refund_id;
        e->refund_cents = ev->amount_cents;
        e->refunded_total_cents = ev->refunded_total_cents;
    }
    return ev ? &ev->base : NULL;
}

/* Checks an event fully before anything is written for it; NULL when valid,
 * else the reason (static text). */
static const char *invalid_reason(const oms_msg *m, const ProtobufCMessage *pb,
                                  const order_event *e)
{
    if (pb == NULL)
        return "payload is not a valid protobuf message of the subject's type";
    if (e->order_id == NULL)
        return "meta is missing";
    if (*e->order_id == '\0' || strlen(e->order_id) > NOTIFY_ID_MAX)
        return "order_id must be 1 to 256 bytes";
    if (strlen(e->customer_id) > NOTIFY_ID_MAX)
        return "customer_id must be at most 256 bytes";
    if (strlen(e->event_id) >= CONSUMER_EVENT_ID_LEN)
        return "meta.event_id must be shorter than 128 bytes";
    if (e->occurred_at_ms > MAX_TIME_MS)
        return "meta.occurred_at_ms is after the year 9999";
    if (e->total_cents < 0)
        return "total_cents must not be negative";
    if (*e->currency != '\0' && !money_currency_valid(e->currency))
        return "currency must be an ISO 4217 code such as USD";
    if (strcmp(m->subject, "order.refunded") == 0 &&
        (e->refund_cents < 0 || e->refunded_total_cents < 0))
        return "amount_cents and refunded_total_cents must not be negative";
    return NULL;
}

const char *notify_message_invalid(const oms_msg *m)
{
    order_event e;
    ProtobufCMessage *pb = unpack(m, &e);
    const char *why = invalid_reason(m, pb, &e);
    if (pb != NULL)
        protobuf_c_message_free_unpacked(pb, NULL);
    return why;
}

/* Why a notification of e on ch must not be sent, or NULL. */
static const char *refusal(const notify_ctx *ctx, const order_event *e, notify_channel ch)
{
    if (ctx->cfg.max_age_ms > 0 && oms_now_ms() - e->occurred_at_ms > ctx->cfg.max_age_ms)
        return "event is older than OMS_NOTIFY_MAX_AGE_H: not sent";
    if (ch == NOTIFY_EMAIL && (e->email == NULL || *e->email == '\0'))
        return "customer has no email address";
    if (ch == NOTIFY_EMAIL && !notify_email_valid(e->email))
        return "customer_email is not a valid address";
    return NULL;
}

/* Appends one notification row to the batch's columns (enum column order). */
static oms_status add_row(const notify_ctx *ctx, pg_cols *c, const order_event *e,
                          const char *subject, notify_channel ch)
{
    const char *error = refusal(ctx, e, ch), *currency = ctx->currency;
    const char *state = error ? "failed" : ch == NOTIFY_LOG ? "sent" : "pending";
    pg_cols_text(c, COL_EVENT_ID, e->event_id);
    pg_cols_text(c, COL_CHANNEL, notify_channel_name(ch));
    pg_cols_text(c, COL_SUBJECT, subject);
    pg_cols_text(c, COL_ORDER_ID, e->order_id);
    pg_cols_text(c, COL_CUSTOMER_ID, e->customer_id);
    pg_cols_text(c, COL_EMAIL, e->email);
    pg_cols_text(c, COL_NAME, e->name);
    pg_cols_text(c, COL_STATUS, e->status);
    pg_cols_int(c, COL_TOTAL, e->total_cents);
    pg_cols_text(c, COL_CURRENCY, e->currency != NULL && *e->currency ? e->currency : currency);
    pg_cols_text(c, COL_REASON, e->reason);
    pg_cols_text(c, COL_REFUND_ID, e->refund_id);
    pg_cols_int(c, COL_REFUND, e->refund_cents);
    pg_cols_int(c, COL_REFUNDED, e->refunded_total_cents);
    pg_cols_int(c, COL_OCCURRED, e->occurred_at_ms);
    pg_cols_text(c, COL_STATE, state);
    pg_cols_text(c, COL_ERROR, error ? error : "");
    return c->status;
}

/* Decodes and validates the batch into r; invalid messages are rejected. */
static oms_status collect(notify_ctx *ctx, consumer_batch *b, pg_cols *r)
{
    oms_status s = OMS_OK;
    for (size_t i = 0; i < b->n && s == OMS_OK; i++) {
        oms_msg *m = &b->msgs[i];
        order_event e;
        if (m->duplicate || m->rejected)
            continue;
        ProtobufCMessage *pb = unpack(m, &e);
        const char *why = invalid_reason(m, pb, &e);
        if (why != NULL)
            consumer_reject(b, i, "%s: %s", m->subject, why);
        for (int ch = 0; why == NULL && s == OMS_OK && ch < NOTIFY_N_CHANNELS; ch++)
            if (ctx->cfg.enabled[ch])
                s = add_row(ctx, r, &e, m->subject, (notify_channel)ch);
        if (pb != NULL)
            protobuf_c_message_free_unpacked(pb, NULL);
    }
    return s;
}

/* Settles what the INSERT returned (the rows new to the table): a log line
 * for each one inserted sent, and the counts, published after COMMIT. */
static void settle_inserted(consumer_batch *b, PGresult *res)
{
    for (int i = 0; i < PQntuples(res); i++) {
        const char *state = PQgetvalue(res, i, INSERT_STATE);
        char labels[64];
        notify_msg n;
        if (strcmp(state, "pending") == 0)
            continue;
        notify_msg_view(res, i, &n);
        if (strcmp(state, "sent") == 0)
            notify_log_write(&n);
        snprintf(labels, sizeof labels, "channel=\"%s\",state=\"%s\"",
                 notify_channel_name(n.channel), state);
        consumer_count(b, "oms_notifications_total", labels, 1);
    }
}

static oms_status insert_rows(consumer_batch *b, pg_cols *r)
{
    PGresult *res = NULL;
    oms_status s = pg_cols_query(
        b->conn, "notification insert",
        "INSERT INTO notifications AS n (event_id, channel, subject, order_id, customer_id,"
        " customer_email, customer_name, status, total_cents, currency, reason, refund_id,"
        " refund_cents, refunded_total_cents, occurred_at, state, last_error, attempts, sent_at)"
        " SELECT e, ch, su, o, cu, em, na, st, t, cur, re, ri, rc, rt,"
        "  to_timestamp(oc / 1000.0), sta, er, (sta = 'sent')::int,"
        "  CASE WHEN sta = 'sent' THEN now() END"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],"
        "  $7::text[], $8::text[], $9::bigint[], $10::text[], $11::text[], $12::text[],"
        "  $13::bigint[], $14::bigint[], $15::bigint[], $16::text[], $17::text[])"
        "  AS x(e, ch, su, o, cu, em, na, st, t, cur, re, ri, rc, rt, oc, sta, er)"
        " ON CONFLICT (event_id, channel) DO NOTHING"
        " RETURNING " NOTIFY_MSG_COLUMNS ", n.attempts, n.state",
        r, PGRES_TUPLES_OK, &res);
    if (s != OMS_OK)
        return s;
    int inserted = PQntuples(res);
    settle_inserted(b, res);
    if ((size_t)inserted < pg_cols_rows(r)) {
        char ignored[24];
        snprintf(ignored, sizeof ignored, "%zu", pg_cols_rows(r) - (size_t)inserted);
        log_info("notifications already recorded ignored", "notifications", ignored, NULL);
    }
    PQclear(res);
    return OMS_OK;
}

oms_status notify_apply_orders(void *arg, consumer_batch *b)
{
    notify_ctx *ctx = arg;
    pg_cols r; /* the new rows of the batch */
    pg_cols_init(&r, N_COLUMNS);
    oms_status s = collect(ctx, b, &r);
    if (s == OMS_OK && pg_cols_rows(&r) > 0)
        s = insert_rows(b, &r);
    pg_cols_fini(&r);
    return s;
}
