/*
 * trace_notify.c - an order's notifications in its trace. notify publishes
 * no event (it sends email, webhooks and log lines), so its history,
 * GET /notifications?order_id=, is where they are. Each notification
 * becomes an entry caused by the event it told the customer about, so the
 * causal order puts it right after that event.
 */
#include "trace.h"

#include "cli.h"
#include "order_csv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HTTP_TIMEOUT_MS 3000L
#define NOTIFICATIONS_MAX 100

static const char *str_of(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

/* notify's times, "2026-12-06T22:30:01.123Z", in ms; 0 when unreadable. */
static int64_t iso_ms(const char *text)
{
    char whole[32];
    const char *dot = strchr(text, '.');
    int64_t ms = 0;
    if (dot == NULL || (size_t)(dot - text) + 2 > sizeof whole)
        return 0;
    snprintf(whole, sizeof whole, "%.*sZ", (int)(dot - text), text);
    if (order_csv_parse_time(whole, &ms) != OMS_OK)
        return 0;
    return ms + strtol(dot + 1, NULL, 10);
}

json_t *trace_notification_record(const json_t *n)
{
    char subject[64], event_id[64], summary[768];
    const char *when = str_of(n, "sent_at");
    const char *to = *str_of(n, "customer_email") ? str_of(n, "customer_email")
                                                  : str_of(n, "customer_id");
    long long attempts = (long long)json_integer_value(json_object_get(n, "attempts"));
    snprintf(subject, sizeof subject, "notification.%s", str_of(n, "channel"));
    snprintf(event_id, sizeof event_id, "notification:%lld",
             (long long)json_integer_value(json_object_get(n, "id")));
    int used = snprintf(summary, sizeof summary, "%s to %s: %s, %lld attempt%s", str_of(n, "type"),
                        to, str_of(n, "state"), attempts, attempts == 1 ? "" : "s");
    if (*str_of(n, "last_error") && used > 0 && (size_t)used < sizeof summary)
        snprintf(summary + used, sizeof summary - (size_t)used, " (%s)", str_of(n, "last_error"));
    if (*when == '\0')
        when = str_of(n, "created_at");
    return json_pack("{s:I,s:n,s:s,s:I,s:s,s:n,s:s,s:s,s:s,s:s,s:O}", "time_ms",
                     (json_int_t)iso_ms(when), "since_created_ms", "stream", "notify", "seq",
                     (json_int_t)0, "subject", subject, "type", "producer", "notify", "event_id",
                     event_id, "causation_id", str_of(n, "event_id"), "summary", summary, "event",
                     n);
}

void trace_add_notifications(json_t *events, const json_t *list)
{
    size_t i;
    json_t *n;
    json_array_foreach(list, i, n)
    {
        json_t *rec = trace_notification_record(n);
        if (rec != NULL)
            json_array_append_new(events, rec);
    }
}

oms_status trace_fetch_notifications(const char *order_id, json_t **list, char *note,
                                     size_t note_len)
{
    const cli_service *svc = cli_service_find("notify");
    char escaped[3 * 256 + 1], path[sizeof escaped + 64], url[CLI_URL_LEN];
    char err[CLI_HTTP_ERR_LEN];
    long status = 0;
    json_t *body = NULL;
    *list = NULL;
    if (svc == NULL || cli_url_escape(order_id, escaped, sizeof escaped) != OMS_OK)
        return OMS_EINVAL;
    snprintf(path, sizeof path, "/notifications?order_id=%s&limit=%d", escaped, NOTIFICATIONS_MAX);
    cli_service_endpoint(svc, path, url, sizeof url);
    if (cli_http("GET", url, NULL, HTTP_TIMEOUT_MS, &status, &body, err) != OMS_OK ||
        status != 200 || !json_is_array(json_object_get(body, "notifications"))) {
        snprintf(note, note_len, "notifications not shown: notify at %s did not answer (%s)",
                 cli_service_url(svc), err[0] ? err : "no notification list");
        json_decref(body);
        return OMS_EIO;
    }
    *list = json_incref(json_object_get(body, "notifications"));
    json_decref(body);
    return OMS_OK;
}
