/*
 * payment_events.c - payment.settled, built from a payment row, and the
 * metrics that count settled payments.
 */
#include "payment.h"

#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SETTLED_SUBJECT "payment.settled"

void payment_metrics_declare(metrics *m)
{
    static const char *const callbacks[] = {"applied", "replay", "unauthorized", "bad_request",
                                            "unknown"};
    static const char *const requests[] = {"accepted", "rejected", "error"};
    static const char *const lookups[] = {"settled", "open", "unknown", "error"};
    char labels[48];
    metrics_counter_declare(m, "oms_payments_total", "Payments settled, by status");
    metrics_counter_declare(m, "oms_payment_gateway_requests_total",
                            "Charge requests sent to the payment gateway, by result");
    metrics_counter_declare(m, "oms_payment_callbacks_total",
                            "Payment gateway callbacks received, by result");
    metrics_counter_declare(m, "oms_payment_lookups_total",
                            "Overdue charges looked up at the payment gateway, by answer");
    for (size_t i = 0; i < sizeof lookups / sizeof lookups[0]; i++) {
        snprintf(labels, sizeof labels, "result=\"%s\"", lookups[i]);
        metrics_counter_add(m, "oms_payment_lookups_total", labels, 0);
    }
    metrics_counter_add(m, "oms_payments_total", "status=\"succeeded\"", 0);
    metrics_counter_add(m, "oms_payments_total", "status=\"failed\"", 0);
    for (size_t i = 0; i < sizeof requests / sizeof requests[0]; i++) {
        snprintf(labels, sizeof labels, "result=\"%s\"", requests[i]);
        metrics_counter_add(m, "oms_payment_gateway_requests_total", labels, 0);
    }
    for (size_t i = 0; i < sizeof callbacks / sizeof callbacks[0]; i++) {
        snprintf(labels, sizeof labels, "result=\"%s\"", callbacks[i]);
        metrics_counter_add(m, "oms_payment_callbacks_total", labels, 0);
    }
}

oms_status payment_emit_settled(outbox_batch *ob, const PGresult *res, int r, payment_tally *t)
{
    Oms__V1__PaymentSettled ev = OMS__V1__PAYMENT_SETTLED__INIT;
    Oms__V1__EventMeta meta;
    char id[37];
    const char *status = PQgetvalue(res, r, 4);
    bool succeeded = strcmp(status, "succeeded") == 0;
    if (!succeeded && strcmp(status, "failed") != 0)
        return OMS_OK;
    /* Correlation: the order; causation: the stock.reserved that asked for the charge. */
    outbox_meta_init(&meta, id, PAYMENT_PRODUCER, PQgetvalue(res, r, 1), PQgetvalue(res, r, 8));
    ev.meta = &meta;
    ev.payment_id = PQgetvalue(res, r, 0);
    ev.order_id = PQgetvalue(res, r, 1);
    ev.amount_cents = atoll(PQgetvalue(res, r, 2));
    ev.currency = PQgetvalue(res, r, 3);
    ev.status = succeeded ? OMS__V1__PAYMENT_STATUS__PAYMENT_STATUS_SUCCEEDED
                          : OMS__V1__PAYMENT_STATUS__PAYMENT_STATUS_FAILED;
    ev.reason = PQgetvalue(res, r, 5);
    ev.gateway_ref = PQgetvalue(res, r, 6);
    ev.attempts = atoi(PQgetvalue(res, r, 7));
    if (succeeded)
        t->succeeded++;
    else
        t->failed++;
    return outbox_batch_add_message(ob, SETTLED_SUBJECT, id, &ev.base);
}

void payment_tally_report(metrics *m, const payment_tally *t)
{
    if (t->succeeded > 0)
        metrics_counter_add(m, "oms_payments_total", "status=\"succeeded\"", (double)t->succeeded);
    if (t->failed > 0)
        metrics_counter_add(m, "oms_payments_total", "status=\"failed\"", (double)t->failed);
}
