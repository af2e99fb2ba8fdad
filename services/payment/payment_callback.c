/*
 * payment_callback.c - POST /callbacks/payment: the gateway's final answer.
 *
 * No bearer token: the HMAC signature over timestamp and body is the
 * authentication, checked before the body is even parsed. A callback for a
 * payment already settled answers 200 and changes nothing, so a gateway's
 * retries and replays are harmless; the settling UPDATE is conditional on the
 * payment not being settled, so two callbacks racing on two connections
 * still settle it once.
 */
#include "payment.h"

#include "hmac.h"
#include "log.h"
#include "metrics.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#define DEFAULT_DECLINE "declined by the payment gateway"

/* Copies an optional string member into out (max bytes); "" when absent. */
static oms_status optional_string(json_t *obj, const char *key, char *out, size_t max,
                                  char err[PAYMENT_ERR_LEN])
{
    json_t *v = json_object_get(obj, key);
    out[0] = '\0';
    if (v == NULL || json_is_null(v))
        return OMS_OK;
    if (!json_is_string(v)) {
        snprintf(err, PAYMENT_ERR_LEN, "%s must be a string", key);
        return OMS_EINVAL;
    }
    if (json_string_length(v) > max) {
        snprintf(err, PAYMENT_ERR_LEN, "%s is longer than %zu bytes", key, max);
        return OMS_EINVAL;
    }
    snprintf(out, max + 1, "%s", json_string_value(v));
    return OMS_OK;
}

static oms_status parse_object(json_t *obj, payment_callback *out, char err[PAYMENT_ERR_LEN])
{
    json_t *id = json_object_get(obj, "payment_id");
    const char *status = json_string_value(json_object_get(obj, "status"));
    if (!json_is_string(id) || json_string_length(id) == 0) {
        snprintf(err, PAYMENT_ERR_LEN, "payment_id is required: a non-empty string");
        return OMS_EINVAL;
    }
    /* Without JSON_ALLOW_NUL, jansson refuses "\u0000": the length is strlen's. */
    if (json_string_length(id) > PAYMENT_ID_MAX) {
        snprintf(err, PAYMENT_ERR_LEN, "payment_id is longer than %d bytes", PAYMENT_ID_MAX);
        return OMS_EINVAL;
    }
    if (status == NULL || (strcmp(status, "succeeded") != 0 && strcmp(status, "failed") != 0)) {
        snprintf(err, PAYMENT_ERR_LEN, "status is required: \"succeeded\" or \"failed\"");
        return OMS_EINVAL;
    }
    snprintf(out->payment_id, sizeof out->payment_id, "%s", json_string_value(id));
    out->succeeded = strcmp(status, "succeeded") == 0;
    if (optional_string(obj, "gateway_ref", out->gateway_ref, PAYMENT_REF_MAX, err) != OMS_OK ||
        optional_string(obj, "reason", out->reason, PAYMENT_REASON_MAX, err) != OMS_OK)
        return OMS_EINVAL;
    if (out->succeeded)
        out->reason[0] = '\0';
    else if (out->reason[0] == '\0')
        snprintf(out->reason, sizeof out->reason, "%s", DEFAULT_DECLINE);
    return OMS_OK;
}

oms_status payment_callback_parse(const char *body, size_t len, payment_callback *out,
                                  char err[PAYMENT_ERR_LEN])
{
    json_error_t jerr;
    payment_callback cb;
    memset(&cb, 0, sizeof cb);
    json_t *obj = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    oms_status s = OMS_EINVAL;
    if (obj == NULL)
        snprintf(err, PAYMENT_ERR_LEN, "body is not valid JSON: %s (line %d, column %d)", jerr.text,
                 jerr.line, jerr.column);
    else if (!json_is_object(obj))
        snprintf(err, PAYMENT_ERR_LEN, "body must be a JSON object");
    else
        s = parse_object(obj, &cb, err);
    json_decref(obj);
    if (s == OMS_OK)
        *out = cb;
    return s;
}

/* ---- applying one ----------------------------------------------------- */

oms_status payment_settle(PGconn *c, const payment_callback *cb, payment_settle_result *result,
                          payment_tally *tally)
{
    const char *params[] = {cb->payment_id, cb->succeeded ? "succeeded" : "failed", cb->gateway_ref,
                            cb->reason};
    PGresult *res = NULL;
    outbox_batch ob;
    oms_status s;
    outbox_batch_init(&ob);
    if ((s = pg_exec(c, "BEGIN")) != OMS_OK)
        goto out;
    s = pg_query(c, "payment callback",
                 "UPDATE payments p SET status = $2, gateway_ref = $3, reason = $4,"
                 " updated_at = now()"
                 " WHERE p.payment_id = $1 AND p.status IN ('pending', 'submitted')"
                 " RETURNING " PAYMENT_RETURNING,
                 4, params, PGRES_TUPLES_OK, &res);
    if (s == OMS_OK && PQntuples(res) == 0) {
        PQclear(res);
        res = NULL;
        s = pg_query(c, "payment lookup", "SELECT 1 FROM payments WHERE payment_id = $1", 1, params,
                     PGRES_TUPLES_OK, &res);
        if (s == OMS_OK)
            *result = PQntuples(res) > 0 ? PAYMENT_SETTLED_BEFORE : PAYMENT_SETTLE_UNKNOWN;
        goto out;
    }
    if (s != OMS_OK || (s = payment_emit_settled(&ob, res, 0, tally)) != OMS_OK ||
        (s = outbox_batch_flush(&ob, c)) != OMS_OK || (s = pg_exec(c, "COMMIT")) != OMS_OK)
        goto out;
    *result = PAYMENT_SETTLED_NOW;
out:
    pg_rollback(c);
    PQclear(res);
    outbox_batch_fini(&ob);
    return s;
}

static void count(metrics *m, const char *result)
{
    char labels[48];
    snprintf(labels, sizeof labels, "result=\"%s\"", result);
    metrics_counter_add(m, "oms_payment_callbacks_total", labels, 1);
}

/* Answers a verified, parsed callback. */
static void settle(payment_ctx *ctx, const payment_callback *cb, http_response *resp)
{
    payment_settle_result result = PAYMENT_SETTLE_UNKNOWN;
    payment_tally tally = {0, 0};
    PGconn *c = service_pg_acquire(ctx->svc, resp);
    if (c == NULL)
        return;
    oms_status s = payment_settle(c, cb, &result, &tally);
    service_pg_release(ctx->svc, c);
    if (s != OMS_OK) {
        http_respond_error(resp, 503, "cannot record the callback; retry later");
    } else if (result == PAYMENT_SETTLE_UNKNOWN) {
        count(ctx->m, "unknown");
        http_respond_error(resp, 404, "no payment %s", cb->payment_id);
    } else {
        count(ctx->m, result == PAYMENT_SETTLED_NOW ? "applied" : "replay");
        payment_tally_report(ctx->m, &tally);
        if (result == PAYMENT_SETTLED_NOW)
            log_info("payment settled by callback", "payment_id", cb->payment_id, "status",
                     cb->succeeded ? "succeeded" : "failed", NULL);
        http_respond_json(resp, 200,
                          json_pack("{s:s,s:s}", "payment_id", cb->payment_id, "result",
                                    result == PAYMENT_SETTLED_NOW ? "applied" : "already settled"));
    }
}

void payment_h_callback(void *arg, const http_request *req, http_response *resp)
{
    payment_ctx *ctx = arg;
    size_t len = 0;
    const char *body = http_body(req, &len);
    payment_callback cb;
    char err[PAYMENT_ERR_LEN];
    if (ctx->cfg.webhook_secret == NULL) {
        count(ctx->m, "unauthorized");
        http_respond_error(resp, 401,
                           "callbacks are disabled: OMS_PAYMENT_WEBHOOK_SECRET is not set");
        return;
    }
    hmac_result v = hmac_verify(ctx->cfg.webhook_secret, http_header(req, HMAC_HEADER), body, len,
                                oms_now_ms() / 1000, HMAC_TOLERANCE_S);
    if (v != HMAC_VALID) {
        count(ctx->m, "unauthorized");
        log_warn("payment callback refused", "reason", hmac_result_text(v), NULL);
        http_respond_error(resp, 401, "%s", hmac_result_text(v));
        return;
    }
    if (payment_callback_parse(body, len, &cb, err) != OMS_OK) {
        count(ctx->m, "bad_request");
        http_respond_error(resp, 400, "%s", err);
        return;
    }
    settle(ctx, &cb, resp);
}
