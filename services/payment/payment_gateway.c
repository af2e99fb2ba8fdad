/*
 * payment_gateway.c - the http gateway's client, on libcurl (the only file
 * of the service that calls it).
 *
 * A claimed group of charges is sent in parallel through one curl multi
 * handle, so a slow gateway costs one timeout per group, not per payment.
 * Each request carries Idempotency-Key: <payment_id>: a charge re-sent after
 * a timeout or a crash is one charge to the gateway.
 */
#include "payment.h"

#include "curlrun.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RESPONSE_MAX_BYTES 4096
#define POLL_MS 100

typedef struct request {
    payment_charge *charge;
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    char response[RESPONSE_MAX_BYTES + 1];
    size_t response_len;
} request;

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

/* Keeps the first RESPONSE_MAX_BYTES of the answer; the rest is read and dropped. */
static size_t on_response(char *data, size_t size, size_t n, void *arg)
{
    request *rq = arg;
    size_t len = size * n, room = RESPONSE_MAX_BYTES - rq->response_len;
    size_t take = len < room ? len : room;
    memcpy(rq->response + rq->response_len, data, take);
    rq->response_len += take;
    rq->response[rq->response_len] = '\0';
    return len;
}

static void request_fini(request *rq)
{
    if (rq->easy != NULL)
        curl_easy_cleanup(rq->easy);
    curl_slist_free_all(rq->headers);
    free(rq->body);
}

/* Prepares one POST; OMS_EINVAL when the charge cannot be encoded as JSON
 * (text that is not UTF-8), OMS_ENOMEM otherwise. */
static oms_status request_init(request *rq, const payment_settings *cfg, payment_charge *c)
{
    char key[64 + PAYMENT_ID_MAX];
    struct curl_slist *h;
    memset(rq, 0, sizeof *rq);
    rq->charge = c;
    json_t *json = json_pack("{s:s,s:s,s:I,s:s,s:s}", "payment_id", c->payment_id, "order_id",
                             c->order_id, "amount_cents", (json_int_t)c->amount_cents,
                             "currency", c->currency, "callback_url", cfg->callback_url);
    if (json == NULL)
        return OMS_EINVAL;
    rq->body = json_dumps(json, JSON_COMPACT);
    json_decref(json);
    snprintf(key, sizeof key, "Idempotency-Key: %s", c->payment_id);
    if (rq->body == NULL || (rq->easy = curl_easy_init()) == NULL)
        return OMS_ENOMEM;
    /* An empty Expect: the body is small; do not wait for 100-continue. */
    const char *headers[] = {"Content-Type: application/json", "Accept: application/json", key,
                             "Expect:"};
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        if ((h = curl_slist_append(rq->headers, headers[i])) == NULL)
            return OMS_ENOMEM;
        rq->headers = h;
    }
    CURL *e = rq->easy;
    curl_easy_setopt(e, CURLOPT_URL, cfg->charges_url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, rq->body);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, rq->headers);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)cfg->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)cfg->timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_response);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, rq);
    curl_easy_setopt(e, CURLOPT_PRIVATE, rq);
    return OMS_OK;
}

static void record_answer(void *priv, CURLcode rc)
{
    request *rq = priv;
    payment_charge *c = rq->charge;
    long status = 0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(rq->easy, CURLINFO_RESPONSE_CODE, &status);
    c->http_status = status;
    c->result = payment_gateway_classify(rc == CURLE_OK, status);
    if (c->result == PAYMENT_GW_REJECTED)
        payment_gateway_reason(rq->response, rq->response_len, status, c->detail,
                               sizeof c->detail);
    else if (rc != CURLE_OK)
        snprintf(c->detail, sizeof c->detail, "%s", curl_easy_strerror(rc));
    else
        snprintf(c->detail, sizeof c->detail, "HTTP %ld", status);
}

oms_status payment_gateway_send(const payment_settings *cfg, payment_charge *charges, size_t n)
{
    oms_status s = OMS_OK;
    request *rqs = calloc(n ? n : 1, sizeof *rqs);
    CURLM *multi = curl_multi_init();
    if (rqs == NULL || multi == NULL) {
        s = OMS_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        payment_charge *c = &charges[i];
        c->result = PAYMENT_GW_ERROR;
        c->http_status = 0;
        snprintf(c->detail, sizeof c->detail, "no answer");
        oms_status rs = request_init(&rqs[i], cfg, c);
        if (rs == OMS_EINVAL) {
            /* Would fail the same way every time: a refusal, not an outage. */
            c->result = PAYMENT_GW_REJECTED;
            snprintf(c->detail, sizeof c->detail, "order id or currency is not valid UTF-8");
            continue;
        }
        if (rs != OMS_OK || curl_multi_add_handle(multi, rqs[i].easy) != CURLM_OK) {
            s = OMS_ENOMEM;
            goto out;
        }
    }
    curlrun_perform(multi, POLL_MS, record_answer);
out:
    for (size_t i = 0; rqs != NULL && i < n; i++) {
        if (multi != NULL && rqs[i].easy != NULL)
            curl_multi_remove_handle(multi, rqs[i].easy);
        request_fini(&rqs[i]);
    }
    if (multi != NULL)
        curl_multi_cleanup(multi);
    free(rqs);
    return s;
}

/* ---- looking a charge up ---------------------------------------------- */

payment_lookup payment_gateway_lookup(const payment_settings *cfg, const char *payment_id,
                                      payment_callback *out, char err[PAYMENT_ERR_LEN])
{
    request rq;
    payment_lookup result = PAYMENT_LOOKUP_ERROR;
    long status = 0;
    char url[PAYMENT_URL_LEN + PAYMENT_ID_MAX + 2];
    memset(&rq, 0, sizeof rq);
    char *escaped = NULL;
    if ((rq.easy = curl_easy_init()) == NULL ||
        (escaped = curl_easy_escape(rq.easy, payment_id, 0)) == NULL) {
        snprintf(err, PAYMENT_ERR_LEN, "out of memory");
        goto out;
    }
    snprintf(url, sizeof url, "%s/%s", cfg->charges_url, escaped);
    curl_easy_setopt(rq.easy, CURLOPT_URL, url);
    curl_easy_setopt(rq.easy, CURLOPT_CONNECTTIMEOUT_MS, (long)cfg->connect_timeout_ms);
    curl_easy_setopt(rq.easy, CURLOPT_TIMEOUT_MS, (long)cfg->timeout_ms);
    curl_easy_setopt(rq.easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(rq.easy, CURLOPT_WRITEFUNCTION, on_response);
    curl_easy_setopt(rq.easy, CURLOPT_WRITEDATA, &rq);
    CURLcode rc = curl_easy_perform(rq.easy);
    if (rc != CURLE_OK) {
        snprintf(err, PAYMENT_ERR_LEN, "%s", curl_easy_strerror(rc));
        goto out;
    }
    curl_easy_getinfo(rq.easy, CURLINFO_RESPONSE_CODE, &status);
    if (status == 404) {
        result = PAYMENT_LOOKUP_UNKNOWN;
    } else if (status != 200) {
        snprintf(err, PAYMENT_ERR_LEN, "HTTP %ld", status);
    } else if (payment_callback_parse(rq.response, rq.response_len, out, err) == OMS_OK) {
        result = strcmp(out->payment_id, payment_id) == 0 ? PAYMENT_LOOKUP_SETTLED
                                                          : PAYMENT_LOOKUP_ERROR;
        if (result == PAYMENT_LOOKUP_ERROR)
            snprintf(err, PAYMENT_ERR_LEN, "the answer names another payment");
    } else {
        /* A well-formed answer whose status is not final yet. */
        json_t *json = json_loadb(rq.response, rq.response_len, 0, NULL);
        if (json_is_string(json_object_get(json, "status")))
            result = PAYMENT_LOOKUP_OPEN;
        json_decref(json);
    }
out:
    curl_free(escaped);
    request_fini(&rq);
    return result;
}
