/*
 * notify_deliver.c - delivering a claimed group of notifications: the log
 * channel at once, email (SMTP) and webhooks (HTTP POST) in parallel through
 * one curl multi handle, so a slow peer costs one timeout per group, not
 * per notification; the multi handle outlives the group, so the next group
 * reuses its SMTP sessions and keep-alive connections. The only file of the
 * service that sends through libcurl.
 *
 * Every delivery names its event: webhooks carry Idempotency-Key: <event_id>
 * and emails Message-ID: <event_id@oms.notify>, so a receiver can drop the
 * duplicate that at-least-once delivery allows.
 */
#include "notify.h"

#include "curlrun.h"
#include "hmac.h"
#include "log.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POLL_MS 100
#define USER_AGENT "oms-notify/1"
#define KEEP_CONNECTION_S 60 /* an idle connection older than this is not reused */

typedef struct transfer {
    notify_msg *msg;
    CURL *easy;
    struct curl_slist *list; /* headers (webhook) or recipients (email) */
    char *payload;
    size_t payload_len, sent;
    char errbuf[CURL_ERROR_SIZE];
} transfer;

notify_result notify_classify_smtp(bool curl_ok, long reply)
{
    if (curl_ok)
        return NOTIFY_SENT;
    /* 5xx is the server's final "no" (unknown mailbox, refused sender);
     * 4xx and no reply at all are worth another try. */
    return reply >= 500 && reply < 600 ? NOTIFY_REFUSED : NOTIFY_ERROR;
}

notify_result notify_classify_webhook(bool curl_ok, long http_status)
{
    if (!curl_ok)
        return NOTIFY_ERROR;
    if (http_status >= 200 && http_status < 300)
        return NOTIFY_SENT;
    /* 408 and 429 say "not now", not "no". */
    if (http_status >= 400 && http_status < 500 && http_status != 408 && http_status != 429)
        return NOTIFY_REFUSED;
    return NOTIFY_ERROR;
}

static size_t discard(char *data, size_t size, size_t n, void *arg)
{
    (void)data, (void)arg;
    return size * n;
}

/* Hands the email to libcurl, which dot-stuffs it on the way. */
static size_t read_payload(char *buf, size_t size, size_t n, void *arg)
{
    transfer *t = arg;
    size_t room = size * n, left = t->payload_len - t->sent;
    size_t take = left < room ? left : room;
    memcpy(buf, t->payload + t->sent, take);
    t->sent += take;
    return take;
}

/* Lets libcurl start the upload again, e.g. when a reused SMTP session
 * turns out to be closed and it retries on a new connection. */
static int seek_payload(void *arg, curl_off_t offset, int origin)
{
    transfer *t = arg;
    if (origin != SEEK_SET || offset < 0 || (size_t)offset > t->payload_len)
        return CURL_SEEKFUNC_CANTSEEK;
    t->sent = (size_t)offset;
    return CURL_SEEKFUNC_OK;
}

static void transfer_fini(transfer *t)
{
    if (t->easy != NULL)
        curl_easy_cleanup(t->easy);
    curl_slist_free_all(t->list);
    free(t->payload);
}

static oms_status list_add(struct curl_slist **list, const char *item)
{
    struct curl_slist *l = curl_slist_append(*list, item);
    if (l == NULL)
        return OMS_ENOMEM;
    *list = l;
    return OMS_OK;
}

static void common_options(CURL *e, const notify_settings *cfg, transfer *t)
{
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)cfg->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)cfg->timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_MAXAGE_CONN, (long)KEEP_CONNECTION_S);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
    curl_easy_setopt(e, CURLOPT_PRIVATE, t);
}

static oms_status email_init(transfer *t, const notify_settings *cfg)
{
    char rcpt[NOTIFY_EMAIL_MAX + 3], from[NOTIFY_EMAIL_MAX + 3];
    notify_msg *n = t->msg;
    if ((t->payload = notify_email_text(n, cfg->smtp_from, oms_now_ms())) == NULL ||
        (t->easy = curl_easy_init()) == NULL)
        return OMS_ENOMEM;
    t->payload_len = strlen(t->payload);
    snprintf(rcpt, sizeof rcpt, "<%s>", n->customer_email);
    snprintf(from, sizeof from, "<%s>", cfg->smtp_from);
    if (list_add(&t->list, rcpt) != OMS_OK)
        return OMS_ENOMEM;
    CURL *e = t->easy;
    curl_easy_setopt(e, CURLOPT_URL, cfg->smtp_url);
    curl_easy_setopt(e, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt(e, CURLOPT_MAIL_RCPT, t->list);
    curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, read_payload);
    curl_easy_setopt(e, CURLOPT_READDATA, t);
    curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, seek_payload);
    curl_easy_setopt(e, CURLOPT_SEEKDATA, t);
    curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)t->payload_len);
    /* A server's own certificate is verified whenever TLS is used. */
    curl_easy_setopt(e, CURLOPT_USE_SSL,
                     cfg->smtp_tls == NOTIFY_TLS_REQUIRE ? (long)CURLUSESSL_ALL
                     : cfg->smtp_tls == NOTIFY_TLS_OFF   ? (long)CURLUSESSL_NONE
                                                         : (long)CURLUSESSL_TRY);
    if (cfg->smtp_user != NULL) {
        curl_easy_setopt(e, CURLOPT_USERNAME, cfg->smtp_user);
        curl_easy_setopt(e, CURLOPT_PASSWORD, cfg->smtp_password ? cfg->smtp_password : "");
    }
    common_options(e, cfg, t);
    return OMS_OK;
}

/* OMS_EINVAL when the notification cannot be encoded as JSON (text that is
 * not UTF-8): it would fail the same way every time. */
static oms_status webhook_init(transfer *t, const notify_settings *cfg)
{
    char signature[HMAC_HEX_LEN + 64], header[HMAC_HEX_LEN + 96];
    char key[CONSUMER_EVENT_ID_LEN + 32], type[64];
    notify_msg *n = t->msg;
    json_t *json = notify_json(n);
    if (json == NULL)
        return OMS_EINVAL;
    t->payload = json_dumps(json, JSON_COMPACT);
    json_decref(json);
    if (t->payload == NULL || (t->easy = curl_easy_init()) == NULL)
        return OMS_ENOMEM;
    t->payload_len = strlen(t->payload);
    if (hmac_header_value(cfg->webhook_secret, oms_now_ms() / 1000, t->payload, t->payload_len,
                          signature, sizeof signature) != OMS_OK)
        return OMS_ENOMEM;
    snprintf(header, sizeof header, "%s: %s", HMAC_HEADER, signature);
    snprintf(key, sizeof key, "Idempotency-Key: %s", n->event_id);
    snprintf(type, sizeof type, "Oms-Event: %s", n->subject);
    /* An empty Expect: the body is small; do not wait for 100-continue. */
    const char *headers[] = {"Content-Type: application/json", header, key, type, "Expect:"};
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++)
        if (list_add(&t->list, headers[i]) != OMS_OK)
            return OMS_ENOMEM;
    CURL *e = t->easy;
    curl_easy_setopt(e, CURLOPT_URL, cfg->webhook_url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->payload);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)t->payload_len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->list);
    curl_easy_setopt(e, CURLOPT_USERAGENT, USER_AGENT);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    common_options(e, cfg, t);
    return OMS_OK;
}

/* The log channel: one JSON line on the service's log. */
static void deliver_log(notify_msg *n)
{
    char subject[NOTIFY_ID_MAX + 128], total[32], refund[32];
    notify_subject(n, subject, sizeof subject);
    snprintf(total, sizeof total, "%lld", (long long)n->total_cents);
    snprintf(refund, sizeof refund, "%lld", (long long)n->refund_cents);
    log_info("notification", "channel", "log", "event_id", n->event_id, "type", n->subject,
             "order_id", n->order_id, "customer_id", n->customer_id, "status", n->status,
             "total_cents", total, "currency", n->currency, "reason", n->reason,
             "refund_cents", refund, "text", subject, NULL);
    n->result = NOTIFY_SENT;
}

static void record_answer(void *priv, CURLcode rc)
{
    transfer *t = priv;
    notify_msg *n = t->msg;
    long code = 0;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
    const char *detail = t->errbuf[0] ? t->errbuf : curl_easy_strerror(rc);
    if (n->channel == NOTIFY_EMAIL) {
        n->result = notify_classify_smtp(rc == CURLE_OK, code);
        if (n->result != NOTIFY_SENT)
            snprintf(n->error, sizeof n->error, "SMTP: %s%s", detail,
                     code > 0 ? "" : " (no reply)");
    } else {
        n->result = notify_classify_webhook(rc == CURLE_OK, code);
        if (rc != CURLE_OK)
            snprintf(n->error, sizeof n->error, "webhook: %s", detail);
        else if (n->result != NOTIFY_SENT)
            snprintf(n->error, sizeof n->error, "webhook answered HTTP %ld", code);
    }
}

/* Prepares n's transfer, or settles n at once (log, unusable address). */
static oms_status prepare(transfer *t, const notify_settings *cfg, notify_msg *n)
{
    memset(t, 0, sizeof *t);
    t->msg = n;
    n->result = NOTIFY_ERROR;
    snprintf(n->error, sizeof n->error, "not delivered");
    if (n->channel == NOTIFY_LOG) {
        deliver_log(n);
        return OMS_OK;
    }
    /* The claim takes enabled channels only; this guards a caller that does not. */
    if (!cfg->enabled[n->channel]) {
        snprintf(n->error, sizeof n->error, "channel %s is not enabled (OMS_NOTIFY_CHANNELS)",
                 notify_channel_name(n->channel));
        return OMS_OK;
    }
    if (n->channel == NOTIFY_EMAIL && !notify_email_valid(n->customer_email)) {
        n->result = NOTIFY_REFUSED;
        snprintf(n->error, sizeof n->error, "%s",
                 *n->customer_email ? "customer_email is not a valid address"
                                    : "customer has no email address");
        return OMS_OK;
    }
    oms_status s = n->channel == NOTIFY_EMAIL ? email_init(t, cfg) : webhook_init(t, cfg);
    if (s == OMS_EINVAL) {
        n->result = NOTIFY_REFUSED;
        snprintf(n->error, sizeof n->error, "notification text is not valid UTF-8");
        return OMS_OK;
    }
    return s;
}

oms_status notify_deliver(const notify_settings *cfg, CURLM *multi, notify_msg *msgs, size_t n)
{
    oms_status s = OMS_OK;
    transfer *ts = calloc(n ? n : 1, sizeof *ts);
    if (ts == NULL) {
        s = OMS_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if ((s = prepare(&ts[i], cfg, &msgs[i])) != OMS_OK)
            goto out;
        if (ts[i].easy != NULL && curl_multi_add_handle(multi, ts[i].easy) != CURLM_OK) {
            s = OMS_ENOMEM;
            goto out;
        }
    }
    curlrun_perform(multi, POLL_MS, record_answer);
out:
    for (size_t i = 0; ts != NULL && i < n; i++) {
        if (ts[i].easy != NULL)
            curl_multi_remove_handle(multi, ts[i].easy);
        transfer_fini(&ts[i]);
    }
    free(ts);
    return s;
}
