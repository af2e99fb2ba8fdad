/*
 * httpc.c - HTTP requests and SMTP uploads on one curl multi handle (see
 * httpc.h). A request's easy handle, header lists and upload offset live in
 * a transfer for the length of one httpc_run; only the captured body
 * outlives it, in the request.
 */
#include "httpc.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POLL_MS 100
#define KEY_HEADER_MAX 512
#define FIRST_CAPACITY 4096
#define MIB (1024u * 1024u)

struct httpc_session {
    CURLM *multi;
    long max_idle_s;
};

typedef struct transfer {
    httpc_request *req;
    CURL *easy;
    struct curl_slist *headers;
    struct curl_slist *rcpt;
    size_t body_len;
    size_t sent;     /* bytes of an upload handed to curl */
    size_t capacity; /* of req->response */
    char errbuf[CURL_ERROR_SIZE];
} transfer;

oms_status httpc_session_create(httpc_session **out, long max_connections, long max_idle_s)
{
    httpc_session *s = calloc(1, sizeof *s);
    if (s == NULL || (s->multi = curl_multi_init()) == NULL ||
        curl_multi_setopt(s->multi, CURLMOPT_MAXCONNECTS, max_connections) != CURLM_OK) {
        httpc_session_destroy(s);
        return OMS_ENOMEM;
    }
    s->max_idle_s = max_idle_s;
    *out = s;
    return OMS_OK;
}

void httpc_session_destroy(httpc_session *s)
{
    if (s == NULL)
        return;
    if (s->multi != NULL)
        curl_multi_cleanup(s->multi);
    free(s);
}

void httpc_request_fini(httpc_request *r)
{
    if (r == NULL)
        return;
    free(r->response);
    r->response = NULL;
    r->response_len = 0;
}

static bool reserve(transfer *t, size_t need)
{
    httpc_request *r = t->req;
    if (need <= t->capacity)
        return true;
    size_t capacity = t->capacity ? t->capacity : FIRST_CAPACITY;
    while (capacity < need)
        capacity *= 2;
    char *p = realloc(r->response, capacity);
    if (p == NULL)
        return false;
    r->response = p;
    t->capacity = capacity;
    return true;
}

/* Keeps the first response_max_bytes; the rest is read and dropped, or
 * ends the transfer when the request refuses larger bodies. */
static size_t on_response(char *data, size_t size, size_t n, void *arg)
{
    transfer *t = arg;
    httpc_request *r = t->req;
    size_t len = size * n, room = r->response_max_bytes - r->response_len;
    size_t take = len < room ? len : room;
    if (len > room) {
        r->too_big = true;
        if (r->refuse_larger)
            return 0;
    }
    if (take == 0)
        return len;
    if (!reserve(t, r->response_len + take + 1))
        return 0; /* a write error ends the transfer */
    memcpy(r->response + r->response_len, data, take);
    r->response_len += take;
    r->response[r->response_len] = '\0';
    return len;
}

/* Hands the upload to libcurl, which dot-stuffs a mail on the way. */
static size_t on_upload(char *buf, size_t size, size_t n, void *arg)
{
    transfer *t = arg;
    size_t room = size * n, left = t->body_len - t->sent;
    size_t take = left < room ? left : room;
    memcpy(buf, t->req->body + t->sent, take);
    t->sent += take;
    return take;
}

/* Lets libcurl start the upload again, e.g. when a reused SMTP session
 * turns out to be closed and it retries on a new connection. */
static int on_seek(void *arg, curl_off_t offset, int origin)
{
    transfer *t = arg;
    if (origin != SEEK_SET || offset < 0 || (size_t)offset > t->body_len)
        return CURL_SEEKFUNC_CANTSEEK;
    t->sent = (size_t)offset;
    return CURL_SEEKFUNC_OK;
}

static oms_status list_add(struct curl_slist **list, const char *item)
{
    struct curl_slist *l = curl_slist_append(*list, item);
    if (l == NULL)
        return OMS_ENOMEM;
    *list = l;
    return OMS_OK;
}

static oms_status mail_options(transfer *t, const httpc_mail *m)
{
    CURL *e = t->easy;
    if (list_add(&t->rcpt, m->rcpt) != OMS_OK)
        return OMS_ENOMEM;
    curl_easy_setopt(e, CURLOPT_MAIL_FROM, m->from);
    curl_easy_setopt(e, CURLOPT_MAIL_RCPT, t->rcpt);
    curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, on_upload);
    curl_easy_setopt(e, CURLOPT_READDATA, t);
    curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, on_seek);
    curl_easy_setopt(e, CURLOPT_SEEKDATA, t);
    curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)t->body_len);
    curl_easy_setopt(e, CURLOPT_USE_SSL,
                     m->tls == HTTPC_TLS_REQUIRE ? (long)CURLUSESSL_ALL
                     : m->tls == HTTPC_TLS_OFF   ? (long)CURLUSESSL_NONE
                                                 : (long)CURLUSESSL_TRY);
    if (m->user != NULL) {
        curl_easy_setopt(e, CURLOPT_USERNAME, m->user);
        curl_easy_setopt(e, CURLOPT_PASSWORD, m->password ? m->password : "");
    }
    return OMS_OK;
}

static oms_status http_options(transfer *t)
{
    httpc_request *r = t->req;
    CURL *e = t->easy;
    for (size_t i = 0; i < r->n_headers; i++)
        if (list_add(&t->headers, r->headers[i]) != OMS_OK)
            return OMS_ENOMEM;
    /* An empty Expect: bodies are small; do not wait for 100-continue. */
    if (r->body != NULL && list_add(&t->headers, "Expect:") != OMS_OK)
        return OMS_ENOMEM;
    if (r->method != NULL)
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
    if (r->body != NULL) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)t->body_len);
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
    if (r->user_agent != NULL)
        curl_easy_setopt(e, CURLOPT_USERAGENT, r->user_agent);
    return OMS_OK;
}

static void reset_outputs(httpc_request *r)
{
    httpc_request_fini(r);
    r->done = false;
    r->status = 0;
    r->too_big = false;
    r->code_text = "no answer";
    snprintf(r->error, sizeof r->error, "no answer");
}

static oms_status transfer_init(transfer *t, httpc_request *r, const httpc_session *session,
                                long connect_timeout_ms, long timeout_ms)
{
    memset(t, 0, sizeof *t);
    t->req = r;
    reset_outputs(r);
    if (r->body != NULL)
        t->body_len = r->body_len > 0 ? r->body_len : strlen(r->body);
    CURL *e = t->easy = curl_easy_init();
    if (e == NULL)
        return OMS_ENOMEM;
    curl_easy_setopt(e, CURLOPT_URL, r->url);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L); /* nats.c and the services run threads */
    if (session != NULL && session->max_idle_s > 0)
        curl_easy_setopt(e, CURLOPT_MAXAGE_CONN, session->max_idle_s);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_response);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(e, CURLOPT_PRIVATE, t);
    return r->mail != NULL ? mail_options(t, r->mail) : http_options(t);
}

static void record_result(transfer *t, CURLcode rc)
{
    httpc_request *r = t->req;
    r->done = rc == CURLE_OK;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &r->status);
    if (r->done)
        return;
    r->code_text = curl_easy_strerror(rc);
    size_t max = r->response_max_bytes;
    if (r->too_big && r->refuse_larger && max % MIB == 0)
        snprintf(r->error, sizeof r->error, "response larger than %zu MiB", max / MIB);
    else if (r->too_big && r->refuse_larger)
        snprintf(r->error, sizeof r->error, "response larger than %zu bytes", max);
    else
        snprintf(r->error, sizeof r->error, "%s", t->errbuf[0] ? t->errbuf : r->code_text);
}

/* Drives every added transfer until none is running (each bounded by its
 * own timeouts), then records each finished one. A transfer the multi
 * handle could not drive (out of memory) keeps "no answer". */
static void perform_all(CURLM *multi)
{
    int running = 0;
    do {
        if (curl_multi_perform(multi, &running) != CURLM_OK)
            break;
        if (running > 0 && curl_multi_poll(multi, NULL, 0, POLL_MS, NULL) != CURLM_OK)
            break;
    } while (running > 0);
    CURLMsg *msg;
    int left = 0;
    while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
        transfer *t = NULL;
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        record_result(t, msg->data.result);
    }
}

oms_status httpc_run(httpc_session *session, httpc_request *reqs, size_t n, long connect_timeout_ms,
                     long timeout_ms)
{
    oms_status s = OMS_OK;
    httpc_session *own = NULL;
    transfer *ts = calloc(n ? n : 1, sizeof *ts);
    if (ts == NULL || (session == NULL && httpc_session_create(&own, 0, 0) != OMS_OK)) {
        s = OMS_ENOMEM;
        goto out;
    }
    CURLM *multi = session != NULL ? session->multi : own->multi;
    for (size_t i = 0; i < n; i++) {
        if (reqs[i].url == NULL)
            continue;
        if (transfer_init(&ts[i], &reqs[i], session, connect_timeout_ms, timeout_ms) != OMS_OK ||
            curl_multi_add_handle(multi, ts[i].easy) != CURLM_OK) {
            curl_easy_cleanup(ts[i].easy);
            ts[i].easy = NULL;
            s = OMS_ENOMEM;
            goto out;
        }
    }
    perform_all(multi);
out:
    for (size_t i = 0; ts != NULL && i < n; i++) {
        if (ts[i].easy != NULL) {
            curl_multi_remove_handle(session != NULL ? session->multi : own->multi, ts[i].easy);
            curl_easy_cleanup(ts[i].easy);
        }
        curl_slist_free_all(ts[i].headers);
        curl_slist_free_all(ts[i].rcpt);
    }
    httpc_session_destroy(own);
    free(ts);
    return s;
}

static void post_request(const httpc_post *p, httpc_request *r, char *key, size_t key_len,
                         const char **headers)
{
    size_t n_headers = 2;
    headers[0] = "Content-Type: application/json";
    headers[1] = "Accept: application/json";
    if (p->idempotency_key != NULL) {
        snprintf(key, key_len, "Idempotency-Key: %s", p->idempotency_key);
        headers[n_headers++] = key;
    }
    *r = (httpc_request){.url = p->url,
                         .body = p->body,
                         .headers = headers,
                         .n_headers = n_headers,
                         .response_max_bytes = HTTPC_RESPONSE_MAX};
}

static void post_outputs(httpc_post *p, const httpc_request *r)
{
    p->answered = r->done;
    p->status = r->done ? r->status : 0;
    p->response_len = r->response_len;
    if (r->response_len > 0)
        memcpy(p->response, r->response, r->response_len);
    p->response[p->response_len] = '\0';
    snprintf(p->error, sizeof p->error, "%s", r->done ? "no answer" : r->code_text);
}

oms_status httpc_post_all(httpc_post *posts, size_t n, long connect_timeout_ms, long timeout_ms)
{
    enum { POST_HEADERS = 3 };
    oms_status s = OMS_ENOMEM;
    httpc_request *reqs = calloc(n ? n : 1, sizeof *reqs);
    char(*keys)[KEY_HEADER_MAX] = calloc(n ? n : 1, sizeof *keys);
    const char *(*headers)[POST_HEADERS] = calloc(n ? n : 1, sizeof *headers);
    if (reqs == NULL || keys == NULL || headers == NULL)
        goto out;
    for (size_t i = 0; i < n; i++)
        post_request(&posts[i], &reqs[i], keys[i], sizeof keys[i], headers[i]);
    if ((s = httpc_run(NULL, reqs, n, connect_timeout_ms, timeout_ms)) != OMS_OK)
        goto out;
    for (size_t i = 0; i < n; i++)
        post_outputs(&posts[i], &reqs[i]);
out:
    for (size_t i = 0; reqs != NULL && i < n; i++)
        httpc_request_fini(&reqs[i]);
    free(headers);
    free(keys);
    free(reqs);
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
