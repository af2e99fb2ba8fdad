/*
 * payment_gateway.c - the http gateway's client, on lib/httpc (libcurl).
 *
 * A claimed group of charges is sent in parallel (httpc_post_all), so a
 * slow gateway costs one timeout per group, not per payment.
 * Each request carries Idempotency-Key: <payment_id>: a charge re-sent after
 * a timeout or a crash is one charge to the gateway.
 */
#include "payment.h"

#include "httpc.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

payment_gateway_result payment_gateway_classify(bool curl_ok, long http_status)
{
    if (!curl_ok)
        return PAYMENT_GW_ERROR;
    if (http_status >= 200 && http_status < 300)
        return PAYMENT_GW_ACCEPTED;
    /* 408 and 429 say "not now", not "no". */
    if (http_status >= 400 && http_status < 500 && http_status != 408 && http_status != 429)
        return PAYMENT_GW_REJECTED;
    return PAYMENT_GW_ERROR;
}

void payment_gateway_reason(const char *body, size_t len, long http_status, char *out,
                            size_t out_len)
{
    static const char *const keys[] = {"reason", "error", "message"};
    json_t *json = len > 0 ? json_loadb(body, len, 0, NULL) : NULL;
    const char *given = NULL;
    for (size_t i = 0; json_is_object(json) && given == NULL && i < 3; i++) {
        const char *v = json_string_value(json_object_get(json, keys[i]));
        if (v != NULL && *v != '\0')
            given = v;
    }
    if (given != NULL)
        snprintf(out, out_len, "%s", given);
    else
        snprintf(out, out_len, "payment gateway refused the charge (HTTP %ld)", http_status);
    json_decref(json);
}

/* The charge as the gateway's JSON into *out (caller frees): OMS_EINVAL when
 * it cannot be encoded (text that is not UTF-8), OMS_ENOMEM otherwise. */
static oms_status charge_body(const payment_settings *cfg, const payment_charge *c, char **out)
{
    json_t *json = json_pack("{s:s,s:s,s:I,s:s,s:s}", "payment_id", c->payment_id, "order_id",
                             c->order_id, "amount_cents", (json_int_t)c->amount_cents, "currency",
                             c->currency, "callback_url", cfg->callback_url);
    if (json == NULL)
        return OMS_EINVAL;
    *out = json_dumps(json, JSON_COMPACT);
    json_decref(json);
    return *out != NULL ? OMS_OK : OMS_ENOMEM;
}

static void record_answer(payment_charge *c, const httpc_post *p)
{
    c->http_status = p->answered ? p->status : 0;
    c->result = payment_gateway_classify(p->answered, p->status);
    if (c->result == PAYMENT_GW_REJECTED)
        payment_gateway_reason(p->response, p->response_len, p->status, c->detail,
                               sizeof c->detail);
    else if (!p->answered)
        snprintf(c->detail, sizeof c->detail, "%s", p->error);
    else
        snprintf(c->detail, sizeof c->detail, "HTTP %ld", p->status);
}

oms_status payment_gateway_send(const payment_settings *cfg, payment_charge *charges, size_t n)
{
    oms_status s = OMS_OK;
    httpc_post *posts = calloc(n ? n : 1, sizeof *posts);
    char **bodies = calloc(n ? n : 1, sizeof *bodies);
    size_t *charge_of = calloc(n ? n : 1, sizeof *charge_of), m = 0;
    if (posts == NULL || bodies == NULL || charge_of == NULL) {
        s = OMS_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        payment_charge *c = &charges[i];
        c->result = PAYMENT_GW_ERROR;
        c->http_status = 0;
        snprintf(c->detail, sizeof c->detail, "no answer");
        oms_status bs = charge_body(cfg, c, &bodies[m]);
        if (bs == OMS_EINVAL) {
            /* Would fail the same way every time: a refusal, not an outage. */
            c->result = PAYMENT_GW_REJECTED;
            snprintf(c->detail, sizeof c->detail, "order id or currency is not valid UTF-8");
            continue;
        }
        if (bs != OMS_OK) {
            s = bs;
            goto out;
        }
        posts[m] = (httpc_post){.url = cfg->charges_url,
                                .body = bodies[m],
                                .idempotency_key = c->payment_id};
        charge_of[m++] = i;
    }
    if ((s = httpc_post_all(posts, m, (long)cfg->connect_timeout_ms, (long)cfg->timeout_ms)) !=
        OMS_OK)
        goto out;
    for (size_t k = 0; k < m; k++)
        record_answer(&charges[charge_of[k]], &posts[k]);
out:
    for (size_t k = 0; bodies != NULL && k < m; k++)
        free(bodies[k]);
    free(posts), free(bodies), free(charge_of);
    return s;
}

/* ---- looking a charge up ---------------------------------------------- */

payment_lookup payment_gateway_lookup(const payment_settings *cfg, const char *payment_id,
                                      payment_callback *out, char err[PAYMENT_ERR_LEN])
{
    httpc_post get = {.body = NULL};
    char url[PAYMENT_URL_LEN + 3 * PAYMENT_ID_MAX + 2];
    snprintf(url, sizeof url, "%s/", cfg->charges_url);
    /* Payment ids are ours (UUIDs): nothing to escape, but refuse anything else. */
    if (strspn(payment_id, "0123456789abcdef-") != strlen(payment_id)) {
        snprintf(err, PAYMENT_ERR_LEN, "payment id \"%.64s\" is not a UUID", payment_id);
        return PAYMENT_LOOKUP_ERROR;
    }
    strncat(url, payment_id, sizeof url - strlen(url) - 1);
    get.url = url;
    if (httpc_post_all(&get, 1, (long)cfg->connect_timeout_ms, (long)cfg->timeout_ms) != OMS_OK) {
        snprintf(err, PAYMENT_ERR_LEN, "out of memory");
        return PAYMENT_LOOKUP_ERROR;
    }
    if (!get.answered) {
        snprintf(err, PAYMENT_ERR_LEN, "%s", get.error);
        return PAYMENT_LOOKUP_ERROR;
    }
    if (get.status == 404)
        return PAYMENT_LOOKUP_UNKNOWN;
    if (get.status != 200) {
        snprintf(err, PAYMENT_ERR_LEN, "HTTP %ld", get.status);
        return PAYMENT_LOOKUP_ERROR;
    }
    if (payment_callback_parse(get.response, get.response_len, out, err) == OMS_OK) {
        if (strcmp(out->payment_id, payment_id) == 0)
            return PAYMENT_LOOKUP_SETTLED;
        snprintf(err, PAYMENT_ERR_LEN, "the answer names another payment");
        return PAYMENT_LOOKUP_ERROR;
    }
    /* A well-formed answer whose status is not final yet. */
    json_t *json = json_loadb(get.response, get.response_len, 0, NULL);
    payment_lookup result = json_is_string(json_object_get(json, "status")) ? PAYMENT_LOOKUP_OPEN
                                                                            : PAYMENT_LOOKUP_ERROR;
    json_decref(json);
    return result;
}
