/*
 * refund_events.c - refund.processed and refund.rejected from a decided
 * refund, and the metrics that count them.
 */
#include "refund.h"

#include "metrics.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define PROCESSED_SUBJECT "refund.processed"
#define REJECTED_SUBJECT "refund.rejected"

void refund_metrics_declare(metrics *m)
{
    metrics_counter_declare(m, "oms_refunds_total", "Refund requests decided, by outcome");
    metrics_counter_declare(m, "oms_refunded_cents_total", "Money refunded, in cents");
    metrics_counter_declare(m, "oms_refund_gateway_requests_total",
                            "Refund requests sent to the payment gateway, by result");
    metrics_counter_add(m, "oms_refunds_total", "outcome=\"processed\"", 0);
    metrics_counter_add(m, "oms_refunds_total", "outcome=\"rejected\"", 0);
    metrics_counter_add(m, "oms_refunds_total", "outcome=\"pending\"", 0);
    metrics_counter_add(m, "oms_refunds_total", "outcome=\"key_reuse\"", 0);
    metrics_counter_add(m, "oms_refunded_cents_total", "", 0);
}

static void lines_free(Oms__V1__RefundLine *lines, Oms__V1__RefundLine **ptrs, size_t n)
{
    for (size_t i = 0; lines != NULL && i < n; i++)
        free(lines[i].sku);
    free(lines), free(ptrs);
}

/* Restock lines from their JSON text; *out NULL when there are none. */
static oms_status lines_decode(const char *text, Oms__V1__RefundLine **out_lines,
                               Oms__V1__RefundLine ***out_ptrs, size_t *n)
{
    json_t *arr = text && *text ? json_loads(text, 0, NULL) : NULL;
    size_t count = json_is_array(arr) ? json_array_size(arr) : 0;
    *out_lines = NULL, *out_ptrs = NULL, *n = 0;
    if (count == 0) {
        json_decref(arr);
        return OMS_OK;
    }
    Oms__V1__RefundLine *lines = calloc(count, sizeof *lines);
    Oms__V1__RefundLine **ptrs = calloc(count, sizeof *ptrs);
    if (lines == NULL || ptrs == NULL) {
        free(lines), free(ptrs), json_decref(arr);
        return OMS_ENOMEM;
    }
    for (size_t i = 0; i < count; i++) {
        json_t *l = json_array_get(arr, i);
        oms__v1__refund_line__init(&lines[i]);
        /* The strings must outlive arr: copied, freed by lines_free. */
        const char *sku = json_string_value(json_object_get(l, "sku"));
        lines[i].sku = strdup(sku != NULL ? sku : "");
        lines[i].qty = (int32_t)json_integer_value(json_object_get(l, "qty"));
        ptrs[i] = &lines[i];
        if (lines[i].sku == NULL) {
            lines_free(lines, ptrs, i);
            json_decref(arr);
            return OMS_ENOMEM;
        }
    }
    json_decref(arr);
    *out_lines = lines, *out_ptrs = ptrs, *n = count;
    return OMS_OK;
}

oms_status refund_emit_processed(outbox_batch *ob, const refund_outcome *o)
{
    Oms__V1__RefundProcessed ev = OMS__V1__REFUND_PROCESSED__INIT;
    Oms__V1__EventMeta meta;
    Oms__V1__RefundLine *lines = NULL, **ptrs = NULL;
    size_t n = 0;
    char id[37];
    oms_status s = lines_decode(o->lines_json, &lines, &ptrs, &n);
    if (s != OMS_OK)
        return s;
    outbox_meta_init(&meta, id, REFUND_PRODUCER, o->order_id, o->cause);
    ev.meta = &meta;
    ev.refund_id = (char *)o->refund_id;
    ev.idempotency_key = (char *)o->key;
    ev.order_id = (char *)o->order_id;
    ev.customer_id = (char *)o->customer_id;
    ev.customer_email = (char *)o->customer_email;
    ev.customer_name = (char *)o->customer_name;
    ev.amount_cents = o->amount_cents;
    ev.currency = (char *)o->currency;
    ev.refunded_total_cents = o->refunded_total_cents;
    ev.paid_total_cents = o->paid_total_cents;
    ev.full = o->full;
    ev.reason = (char *)o->reason;
    ev.restock = o->restock;
    ev.lines = ptrs;
    ev.n_lines = n;
    ev.processed_at_ms = meta.occurred_at_ms;
    ev.gateway_ref = (char *)o->gateway_ref;
    s = outbox_batch_add_message(ob, PROCESSED_SUBJECT, id, &ev.base);
    lines_free(lines, ptrs, n);
    return s;
}

oms_status refund_emit_rejected(outbox_batch *ob, const refund_outcome *o)
{
    Oms__V1__RefundRejected ev = OMS__V1__REFUND_REJECTED__INIT;
    Oms__V1__EventMeta meta;
    char id[37];
    outbox_meta_init(&meta, id, REFUND_PRODUCER, o->order_id, o->cause);
    ev.meta = &meta;
    ev.idempotency_key = (char *)o->key;
    ev.order_id = (char *)o->order_id;
    ev.amount_cents = o->amount_cents;
    ev.reason = (char *)o->reject_reason;
    ev.key_reuse = o->key_reuse;
    return outbox_batch_add_message(ob, REJECTED_SUBJECT, id, &ev.base);
}
