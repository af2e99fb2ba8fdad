/*
 * notify_deliver.c - delivering a claimed group of notifications: the log
 * channel at once, email (SMTP) and webhooks (HTTP POST) in parallel on
 * lib/httpc, so a slow peer costs one timeout per group, not per
 * notification; the sender's httpc session outlives the group, so the next
 * group reuses its SMTP sessions and keep-alive connections. This file says
 * what each channel sends; lib/httpc sends it.
 *
 * Every delivery names its event: webhooks carry Idempotency-Key: <event_id>
 * and emails Message-ID: <event_id@oms.notify>, so a receiver can drop the
 * duplicate that at-least-once delivery allows.
 */
#include "notify.h"

#include "hmac.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USER_AGENT "oms-notify/1"
#define WEBHOOK_HEADERS 4

/* What one notification's request borrows while it is sent. */
typedef struct delivery {
    char *payload; /* the email's text or the webhook's JSON */
    httpc_mail mail;
    char rcpt[NOTIFY_EMAIL_MAX + 3], from[NOTIFY_EMAIL_MAX + 3];
    char signature[HMAC_HEX_LEN + 96], key[CONSUMER_EVENT_ID_LEN + 32], type[64];
    const char *headers[WEBHOOK_HEADERS];
} delivery;

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

static oms_status email_init(delivery *d, httpc_request *r, const notify_settings *cfg,
                             const notify_msg *n)
{
    if ((d->payload = notify_email_text(n, cfg->smtp_from, oms_now_ms())) == NULL)
        return OMS_ENOMEM;
    snprintf(d->rcpt, sizeof d->rcpt, "<%s>", n->customer_email);
    snprintf(d->from, sizeof d->from, "<%s>", cfg->smtp_from);
    d->mail = (httpc_mail){.from = d->from,
                           .rcpt = d->rcpt,
                           .user = cfg->smtp_user,
                           .password = cfg->smtp_password,
                           .tls = cfg->smtp_tls == NOTIFY_TLS_REQUIRE ? HTTPC_TLS_REQUIRE
                                  : cfg->smtp_tls == NOTIFY_TLS_OFF   ? HTTPC_TLS_OFF
                                                                      : HTTPC_TLS_TRY};
    *r = (httpc_request){.url = cfg->smtp_url, .body = d->payload, .mail = &d->mail};
    return OMS_OK;
}

/* OMS_EINVAL when the notification cannot be encoded as JSON (text that is
 * not UTF-8): it would fail the same way every time. */
static oms_status webhook_init(delivery *d, httpc_request *r, const notify_settings *cfg,
                               const notify_msg *n)
{
    char signature[HMAC_HEX_LEN + 64];
    json_t *json = notify_json(n);
    if (json == NULL)
        return OMS_EINVAL;
    d->payload = json_dumps(json, JSON_COMPACT);
    json_decref(json);
    if (d->payload == NULL)
        return OMS_ENOMEM;
    size_t len = strlen(d->payload);
    if (hmac_header_value(cfg->webhook_secret, oms_now_ms() / 1000, d->payload, len, signature,
                          sizeof signature) != OMS_OK)
        return OMS_ENOMEM;
    snprintf(d->signature, sizeof d->signature, "%s: %s", HMAC_HEADER, signature);
    snprintf(d->key, sizeof d->key, "Idempotency-Key: %s", n->event_id);
    snprintf(d->type, sizeof d->type, "Oms-Event: %s", n->subject);
    d->headers[0] = "Content-Type: application/json";
    d->headers[1] = d->signature;
    d->headers[2] = d->key;
    d->headers[3] = d->type;
    *r = (httpc_request){.url = cfg->webhook_url,
                         .body = d->payload,
                         .body_len = len,
                         .headers = d->headers,
                         .n_headers = WEBHOOK_HEADERS,
                         .user_agent = USER_AGENT};
    return OMS_OK;
}

void notify_log_write(notify_msg *n)
{
    char subject[NOTIFY_ID_MAX + 128], total[32], refund[32];
    notify_subject(n, subject, sizeof subject);
    snprintf(total, sizeof total, "%lld", (long long)n->total_cents);
    snprintf(refund, sizeof refund, "%lld", (long long)n->refund_cents);
    log_info("notification", "channel", "log", "event_id", n->event_id, "type", n->subject,
             "order_id", n->order_id, "customer_id", n->customer_id, "status", n->status,
             "total_cents", total, "currency", n->currency, "reason", n->reason, "refund_cents",
             refund, "text", subject, NULL);
    n->result = NOTIFY_SENT;
}

static void record_answer(notify_msg *n, const httpc_request *r)
{
    if (n->channel == NOTIFY_EMAIL) {
        n->result = notify_classify_smtp(r->done, r->status);
        if (n->result != NOTIFY_SENT)
            snprintf(n->error, sizeof n->error, "SMTP: %s%s", r->error,
                     r->status > 0 ? "" : " (no reply)");
    } else {
        n->result = notify_classify_webhook(r->done, r->status);
        if (!r->done)
            snprintf(n->error, sizeof n->error, "webhook: %s", r->error);
        else if (n->result != NOTIFY_SENT)
            snprintf(n->error, sizeof n->error, "webhook answered HTTP %ld", r->status);
    }
}

/* Prepares n's request, or settles n at once (log, unusable address) and
 * leaves r without a URL. */
static oms_status prepare(delivery *d, httpc_request *r, const notify_settings *cfg, notify_msg *n)
{
    n->result = NOTIFY_ERROR;
    snprintf(n->error, sizeof n->error, "not delivered");
    if (n->channel == NOTIFY_LOG) {
        notify_log_write(n);
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
    oms_status s = n->channel == NOTIFY_EMAIL ? email_init(d, r, cfg, n)
                                              : webhook_init(d, r, cfg, n);
    if (s == OMS_EINVAL) {
        n->result = NOTIFY_REFUSED;
        snprintf(n->error, sizeof n->error, "notification text is not valid UTF-8");
        return OMS_OK;
    }
    return s;
}

oms_status notify_deliver(const notify_settings *cfg, httpc_session *session, notify_msg *msgs,
                          size_t n)
{
    oms_status s = OMS_ENOMEM;
    delivery *ds = calloc(n ? n : 1, sizeof *ds);
    httpc_request *reqs = calloc(n ? n : 1, sizeof *reqs);
    if (ds == NULL || reqs == NULL)
        goto out;
    for (size_t i = 0; i < n; i++)
        if ((s = prepare(&ds[i], &reqs[i], cfg, &msgs[i])) != OMS_OK)
            goto out;
    if ((s = httpc_run(session, reqs, n, (long)cfg->connect_timeout_ms, (long)cfg->timeout_ms)) !=
        OMS_OK)
        goto out;
    for (size_t i = 0; i < n; i++)
        if (reqs[i].url != NULL)
            record_answer(&msgs[i], &reqs[i]);
out:
    for (size_t i = 0; ds != NULL && reqs != NULL && i < n; i++) {
        httpc_request_fini(&reqs[i]);
        free(ds[i].payload);
    }
    free(reqs);
    free(ds);
    return s;
}
