/*
 * refund_rules.c - the refund rules that need no database: how much a
 * request refunds, the sentences that say why not, and the checks of a
 * request's fields. Amounts are integer cents throughout.
 */
#include "refund.h"

#include "money.h"
#include "utf8.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

refund_verdict refund_decide(int64_t paid_cents, int64_t refunded_cents, int64_t pending_cents,
                             int64_t requested_cents, int64_t *amount_cents)
{
    int64_t remaining = paid_cents - refunded_cents - pending_cents;
    if (remaining <= 0)
        return REFUND_NOTHING_LEFT;
    if (requested_cents > remaining)
        return REFUND_EXCEEDS;
    *amount_cents = requested_cents == 0 ? remaining : requested_cents;
    return REFUND_ACCEPT;
}

void refund_verdict_text(refund_verdict v, const char *order_id, const char *currency,
                         int64_t paid_cents, int64_t refunded_cents, int64_t pending_cents,
                         int64_t requested_cents, char *out, size_t out_len)
{
    char requested[48], remaining[48], paid[48], refunded[48];
    money_format_currency(requested_cents, currency, requested, sizeof requested);
    money_format_currency(paid_cents - refunded_cents - pending_cents, currency, remaining,
                          sizeof remaining);
    money_format_currency(paid_cents, currency, paid, sizeof paid);
    money_format_currency(refunded_cents + pending_cents, currency, refunded, sizeof refunded);
    switch (v) {
    case REFUND_ACCEPT:
        snprintf(out, out_len, "refund of %s on %s accepted", requested, order_id);
        break;
    case REFUND_NOTHING_LEFT:
        snprintf(out, out_len,
                 "nothing is left to refund on %s: %s paid, %s refunded or being refunded",
                 order_id, paid, refunded);
        break;
    case REFUND_EXCEEDS:
        snprintf(out, out_len, "refund of %s exceeds the %s still refundable on %s", requested,
                 remaining, order_id);
        break;
    }
}

const char *refund_key_invalid(const char *key)
{
    size_t len = strlen(key);
    if (len == 0)
        return "idempotency_key is empty";
    if (len > REFUND_KEY_MAX)
        return "idempotency_key is longer than 128 bytes";
    /* It travels in an HTTP header to the gateway: printable ASCII only. */
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)key[i] < 0x20 || (unsigned char)key[i] > 0x7e)
            return "idempotency_key must be printable ASCII characters";
    return NULL;
}

static bool text_valid(const char *name, const char *v, size_t max, bool required, char *why,
                       size_t why_len)
{
    if (required && *v == '\0')
        snprintf(why, why_len, "%s is empty", name);
    else if (strlen(v) > max)
        snprintf(why, why_len, "%s is longer than %zu bytes", name, max);
    else if (!utf8_valid(v))
        snprintf(why, why_len, "%s is not valid UTF-8", name);
    else
        return true;
    return false;
}

static bool lines_valid(const Oms__V1__RefundRequested *ev, char *why, size_t why_len)
{
    char name[48];
    if (ev->n_lines > 0 && !ev->restock) {
        snprintf(why, why_len, "lines name goods to put back on hand, but restock is false");
        return false;
    }
    if (ev->n_lines > REFUND_LINES_MAX) {
        snprintf(why, why_len, "lines has %zu entries; at most %d", ev->n_lines, REFUND_LINES_MAX);
        return false;
    }
    for (size_t i = 0; i < ev->n_lines; i++) {
        const Oms__V1__RefundLine *l = ev->lines[i];
        snprintf(name, sizeof name, "lines[%zu].sku", i);
        if (!text_valid(name, l->sku, REFUND_SKU_MAX, true, why, why_len))
            return false;
        if (l->qty <= 0) {
            snprintf(why, why_len, "lines[%zu].qty %d must be a positive number of units", i,
                     (int)l->qty);
            return false;
        }
    }
    return true;
}

bool refund_request_valid(const Oms__V1__RefundRequested *ev, char *why, size_t why_len)
{
    if (!text_valid("order_id", ev->order_id, REFUND_ORDER_ID_MAX, true, why, why_len) ||
        !text_valid("reason", ev->reason, REFUND_REASON_MAX, false, why, why_len) ||
        !text_valid("requested_by", ev->requested_by, REFUND_REQUESTED_BY_MAX, false, why, why_len))
        return false;
    if (ev->amount_cents < 0 || ev->amount_cents > REFUND_AMOUNT_MAX) {
        snprintf(why, why_len,
                 "amount_cents %lld must be from 0 (the full remaining amount) to %lld",
                 (long long)ev->amount_cents, REFUND_AMOUNT_MAX);
        return false;
    }
    return lines_valid(ev, why, why_len);
}

char *refund_lines_json(const Oms__V1__RefundRequested *ev)
{
    json_t *arr = json_array();
    char *text = NULL;
    for (size_t i = 0; arr != NULL && i < ev->n_lines; i++)
        if (json_array_append_new(arr, json_pack("{s:s,s:i}", "sku", ev->lines[i]->sku, "qty",
                                                 (int)ev->lines[i]->qty)) != 0)
            goto out;
    if (arr != NULL)
        text = json_dumps(arr, JSON_COMPACT);
out:
    json_decref(arr);
    return text;
}
