/*
 * fuzz_refund_body.c - the JSON body of POST /refunds, read as the handler
 * reads it (json_loadb, then refund_request_parse of
 * services/refund/refund_http.c).
 *
 * Properties: an accepted request passes the checks the refund consumer
 * applies to refund.requested from JetStream (same key space, same rules),
 * and the event the handler would write to the outbox encodes and decodes
 * back to the same fields.
 */
#include "fuzz.h"

#include "order_csv.h"
#include "refund.h"

#include <jansson.h>

/* Packs ev as enqueue() does and checks what a consumer would decode. */
static void check_event(const Oms__V1__RefundRequested *ev)
{
    size_t size = oms__v1__refund_requested__get_packed_size(ev);
    uint8_t *buf = malloc(size ? size : 1);
    if (buf == NULL)
        return;
    FUZZ_CHECK(oms__v1__refund_requested__pack(ev, buf) == size);
    Oms__V1__RefundRequested *back = oms__v1__refund_requested__unpack(NULL, size, buf);
    FUZZ_CHECK(back != NULL);
    FUZZ_CHECK(strcmp(back->idempotency_key, ev->idempotency_key) == 0 &&
               strcmp(back->order_id, ev->order_id) == 0 && strcmp(back->reason, ev->reason) == 0 &&
               strcmp(back->requested_by, ev->requested_by) == 0 &&
               back->amount_cents == ev->amount_cents && back->restock == ev->restock &&
               back->n_lines == ev->n_lines);
    for (size_t i = 0; i < ev->n_lines; i++)
        FUZZ_CHECK(strcmp(back->lines[i]->sku, ev->lines[i]->sku) == 0 &&
                   back->lines[i]->qty == ev->lines[i]->qty);
    char why[REFUND_TEXT_LEN];
    FUZZ_CHECK(refund_key_invalid(back->idempotency_key) == NULL);
    FUZZ_CHECK(refund_request_valid(back, why, sizeof why));
    char *lines = refund_lines_json(back);
    FUZZ_CHECK(lines != NULL);
    free(lines);
    oms__v1__refund_requested__free_unpacked(back, NULL);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *body = json_loadb((const char *)data, size, 0, NULL);
    Oms__V1__RefundRequested ev = OMS__V1__REFUND_REQUESTED__INIT;
    Oms__V1__RefundLine *lines = calloc(REFUND_LINES_MAX, sizeof *lines);
    Oms__V1__RefundLine **ptrs = calloc(REFUND_LINES_MAX, sizeof *ptrs);
    char key[37] = "", err[REFUND_HTTP_ERR_LEN] = "";
    if (body == NULL || lines == NULL || ptrs == NULL)
        goto out;
    if (!refund_request_parse(body, &ev, lines, ptrs, key, err)) {
        FUZZ_CHECK(err[0] != '\0');
        goto out;
    }
    FUZZ_CHECK(ev.amount_cents >= 0 && ev.amount_cents <= REFUND_AMOUNT_MAX);
    FUZZ_CHECK(ev.n_lines <= REFUND_LINES_MAX);
    FUZZ_CHECK(*ev.order_id != '\0');
    /* The 202 answer carries both strings back as JSON. */
    json_t *answer = json_pack("{s:s,s:s}", "idempotency_key", ev.idempotency_key, "order_id",
                               ev.order_id);
    FUZZ_CHECK(answer != NULL);
    json_decref(answer);
    check_event(&ev);
out:
    json_decref(body);
    free(lines);
    free(ptrs);
    return 0;
}
