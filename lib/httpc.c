/*
 * httpc.c - parallel JSON POSTs (and GETs) on one curl multi handle (see httpc.h).
 */
#include "httpc.h"

#include "curlrun.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POLL_MS 100
#define KEY_HEADER_MAX 512

typedef struct request {
    httpc_post *post;
    CURL *easy;
    struct curl_slist *headers;
} request;

/* Keeps the first HTTPC_RESPONSE_MAX bytes; the rest is read and dropped. */
static size_t on_response(char *data, size_t size, size_t n, void *arg)
{
    httpc_post *p = arg;
    size_t len = size * n, room = HTTPC_RESPONSE_MAX - p->response_len;
    size_t take = len < room ? len : room;
    memcpy(p->response + p->response_len, data, take);
    p->response_len += take;
    p->response[p->response_len] = '\0';
    return len;
}

static oms_status request_init(request *rq, httpc_post *p, long connect_timeout_ms,
                               long timeout_ms)
{
    char key[KEY_HEADER_MAX];
    memset(rq, 0, sizeof *rq);
    rq->post = p;
    if ((rq->easy = curl_easy_init()) == NULL)
        return OMS_ENOMEM;
    /* An empty Expect: the body is small; do not wait for 100-continue. */
    const char *headers[] = {"Content-Type: application/json", "Accept: application/json",
                             "Expect:", key};
    size_t n_headers = 3;
    if (p->idempotency_key != NULL) {
        snprintf(key, sizeof key, "Idempotency-Key: %s", p->idempotency_key);
        n_headers = 4;
    }
    for (size_t i = 0; i < n_headers; i++) {
        struct curl_slist *h = curl_slist_append(rq->headers, headers[i]);
        if (h == NULL)
            return OMS_ENOMEM;
        rq->headers = h;
    }
    CURL *e = rq->easy;
    curl_easy_setopt(e, CURLOPT_URL, p->url);
    if (p->body != NULL)
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, p->body);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, rq->headers);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_response);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, p);
    curl_easy_setopt(e, CURLOPT_PRIVATE, rq);
    return OMS_OK;
}

static void record_answer(void *priv, CURLcode rc)
{
    request *rq = priv;
    httpc_post *p = rq->post;
    p->answered = rc == CURLE_OK;
    if (p->answered)
        curl_easy_getinfo(rq->easy, CURLINFO_RESPONSE_CODE, &p->status);
    else
        snprintf(p->error, sizeof p->error, "%s", curl_easy_strerror(rc));
}

oms_status httpc_post_all(httpc_post *posts, size_t n, long connect_timeout_ms, long timeout_ms)
{
    oms_status s = OMS_OK;
    request *rqs = calloc(n ? n : 1, sizeof *rqs);
    CURLM *multi = curl_multi_init();
    if (rqs == NULL || multi == NULL) {
        s = OMS_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        httpc_post *p = &posts[i];
        p->answered = false;
        p->status = 0;
        p->response_len = 0;
        p->response[0] = '\0';
        snprintf(p->error, sizeof p->error, "no answer");
        if (request_init(&rqs[i], p, connect_timeout_ms, timeout_ms) != OMS_OK ||
            curl_multi_add_handle(multi, rqs[i].easy) != CURLM_OK) {
            s = OMS_ENOMEM;
            goto out;
        }
    }
    curlrun_perform(multi, POLL_MS, record_answer);
out:
    for (size_t i = 0; rqs != NULL && i < n; i++) {
        if (multi != NULL && rqs[i].easy != NULL)
            curl_multi_remove_handle(multi, rqs[i].easy);
        if (rqs[i].easy != NULL)
            curl_easy_cleanup(rqs[i].easy);
        curl_slist_free_all(rqs[i].headers);
    }
    if (multi != NULL)
        curl_multi_cleanup(multi);
    free(rqs);
    return s;
}

bool httpc_retryable(const httpc_post *p)
{
    if (!p->answered)
        return true;
    /* 408 and 429 say "not now", not "no". */
    return p->status >= 500 || p->status == 408 || p->status == 429 || p->status < 200;
}

void httpc_reason(const httpc_post *p, const char *fallback, char *out, size_t out_len)
{
    static const char *const keys[] = {"reason", "error", "message"};
    json_t *json = p->response_len > 0 ? json_loadb(p->response, p->response_len, 0, NULL) : NULL;
    const char *given = NULL;
    for (size_t i = 0; json_is_object(json) && given == NULL && i < 3; i++) {
        const char *v = json_string_value(json_object_get(json, keys[i]));
        if (v != NULL && *v != '\0')
            given = v;
    }
    snprintf(out, out_len, "%s", given != NULL ? given : fallback);
    json_decref(json);
}
