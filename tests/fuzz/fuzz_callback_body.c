/*
 * fuzz_callback_body.c - the JSON body of POST /callbacks/payment
 * (payment_callback_parse, services/payment/payment_callback.c).
 *
 * Properties: an accepted callback has a payment id of 1 to PAYMENT_ID_MAX
 * bytes, a reason exactly when it failed, and fields that the handler's JSON
 * answer and PostgreSQL's text columns accept (valid UTF-8, no NUL cut).
 */
#include "fuzz.h"

#include "payment.h"
#include "utf8.h"

#include <jansson.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    payment_callback cb;
    char err[PAYMENT_ERR_LEN] = "";
    if (payment_callback_parse((const char *)data, size, &cb, err) != OMS_OK) {
        FUZZ_CHECK(err[0] != '\0');
        return 0;
    }
    size_t id_len = strlen(cb.payment_id);
    FUZZ_CHECK(id_len >= 1 && id_len <= PAYMENT_ID_MAX);
    FUZZ_CHECK(cb.succeeded == (cb.reason[0] == '\0'));
    FUZZ_CHECK(strlen(cb.gateway_ref) <= PAYMENT_REF_MAX &&
               strlen(cb.reason) <= PAYMENT_REASON_MAX);
    FUZZ_CHECK(utf8_valid(cb.payment_id) && utf8_valid(cb.gateway_ref) && utf8_valid(cb.reason));
    /* settle() answers with the id in JSON: it must be encodable. */
    json_t *answer = json_pack("{s:s,s:s}", "payment_id", cb.payment_id, "result", "applied");
    FUZZ_CHECK(answer != NULL);
    json_decref(answer);
    /* The id is what the body said, not a truncation of it. */
    json_t *body = json_loadb((const char *)data, size, 0, NULL);
    FUZZ_CHECK(body != NULL);
    FUZZ_CHECK(strcmp(json_string_value(json_object_get(body, "payment_id")), cb.payment_id) == 0);
    json_decref(body);
    return 0;
}
