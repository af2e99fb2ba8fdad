/*
 * notify_http.c - the history over HTTP: GET /notifications (filters
 * order_id, state, channel; newest first) and POST /notifications/retry
 * (admin token), which puts dead or failed notifications back to pending
 * with their attempts starting again.
 */
#include "notify.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ISO_MS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
#define DEFAULT_LIMIT 100
#define MAX_LIMIT 10000

static bool state_valid(const char *s)
{
    static const char *const states[] = {"pending", "sent", "failed", "dead"};
    for (size_t i = 0; i < sizeof states / sizeof states[0]; i++)
        if (strcmp(s, states[i]) == 0)
            return true;
    return false;
}

static const char *opt(const char *v)
{
    return v ? v : "";
}

/* Null for SQL NULL, else the text. */
static json_t *text_or_null(PGresult *res, int r, int c)
{
    return PQgetisnull(res, r, c) ? json_null() : json_string(PQgetvalue(res, r, c));
}

static json_t *row_json(PGresult *res, int r)
{
    bool pending = strcmp(PQgetvalue(res, r, 11), "pending") == 0;
    json_t *j = json_pack(
        "{s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:s,s:s,s:s,s:i,s:s,s:s?,s:s,s:o,s:s}", "id",
        (json_int_t)atoll(PQgetvalue(res, r, 0)), "event_id", PQgetvalue(res, r, 1), "type",
        PQgetvalue(res, r, 2), "channel", PQgetvalue(res, r, 3), "order_id", PQgetvalue(res, r, 4),
        "customer_id", PQgetvalue(res, r, 5), "customer_email", PQgetvalue(res, r, 6), "status",
        PQgetvalue(res, r, 7), "total_cents", (json_int_t)atoll(PQgetvalue(res, r, 8)), "currency",
        PQgetvalue(res, r, 9), "reason", PQgetvalue(res, r, 10), "state", PQgetvalue(res, r, 11),
        "attempts", atoi(PQgetvalue(res, r, 12)), "last_error", PQgetvalue(res, r, 13),
        "next_attempt_at", pending ? PQgetvalue(res, r, 14) : NULL, "created_at",
        PQgetvalue(res, r, 15), "sent_at", text_or_null(res, r, 16), "updated_at",
        PQgetvalue(res, r, 17));
    if (j != NULL && strcmp(PQgetvalue(res, r, 2), "order.refunded") == 0)
        json_object_set_new(j, "refund_cents", json_integer(atoll(PQgetvalue(res, r, 18))));
    return j;
}

/* The list's filters, checked. */
typedef struct list_filters {
    const char *order_id, *state, *channel; /* NULL when absent */
    int64_t limit;
} list_filters;

/* Checks the filters; answers 400 naming the bad one and returns false. */
static bool read_filters(const http_request *req, http_response *resp, list_filters *f)
{
    const char *state = NULL, *channel = NULL, *order_id = NULL;
    notify_channel c;
    if (http_query_str(req, "state", 32, &state, resp) != OMS_OK ||
        http_query_str(req, "channel", 32, &channel, resp) != OMS_OK ||
        http_query_str(req, "order_id", NOTIFY_ID_MAX, &order_id, resp) != OMS_OK ||
        http_query_int(req, "limit", 1, MAX_LIMIT, DEFAULT_LIMIT, &f->limit, resp) != OMS_OK)
        return false;
    f->state = state, f->channel = channel, f->order_id = order_id;
    if (state && !state_valid(state)) {
        http_respond_error(resp, 400, "state must be pending, sent, failed or dead, got \"%.32s\"",
                           state);
        return false;
    }
    if (channel && !notify_channel_parse(channel, strlen(channel), &c)) {
        http_respond_error(resp, 400, "channel must be log, email or webhook, got \"%.32s\"",
                           channel);
        return false;
    }
    return true;
}

static void h_list(void *arg, const http_request *req, http_response *resp)
{
    notify_ctx *ctx = arg;
    list_filters f;
    PGresult *res = NULL;
    if (!read_filters(req, resp, &f))
        return;
    char nbuf[24];
    snprintf(nbuf, sizeof nbuf, "%lld", (long long)f.limit);
    const char *params[] = {opt(f.order_id), opt(f.state), opt(f.channel), nbuf};
    PGconn *c = service_pg_acquire(ctx->svc, resp);
    if (c == NULL)
        return;
    oms_status s = pg_query(
        c, "notifications",
        "SELECT id, event_id, subject, channel, order_id, customer_id, customer_email, status,"
        " total_cents, currency, reason, state, attempts, last_error, " ISO_MS("next_attempt_at") ", " ISO_MS(
            "created_at") ", " ISO_MS("sent_at") ", " ISO_MS("updated_at") ", refund_cents FROM "
                                                                           "notifications"
                                                                           " WHERE ($1 = '' OR "
                                                                           "order_id = $1) AND ($2 "
                                                                           "= '' OR state = $2)"
                                                                           "   AND ($3 = '' OR "
                                                                           "channel = $3)"
                                                                           " ORDER BY id DESC "
                                                                           "LIMIT $4::int",
        4, params, PGRES_TUPLES_OK, &res);
    service_pg_release(ctx->svc, c);
    if (s != OMS_OK) {
        http_respond_error(resp, 503, "cannot read the notifications");
        return;
    }
    json_t *list = json_array();
    for (int r = 0; r < PQntuples(res); r++)
        json_array_append_new(list, row_json(res, r));
    PQclear(res);
    http_respond_json(resp, 200,
                      json_pack("{s:o,s:i}", "notifications", list, "count",
                                (int)json_array_size(list)));
}

static void h_retry(void *arg, const http_request *req, http_response *resp)
{
    notify_ctx *ctx = arg;
    const char *state = NULL, *order_id = NULL;
    PGresult *res = NULL;
    if (http_query_str(req, "state", 32, &state, resp) != OMS_OK ||
        http_query_str(req, "order_id", NOTIFY_ID_MAX, &order_id, resp) != OMS_OK)
        return;
    if (state == NULL || (strcmp(state, "dead") != 0 && strcmp(state, "failed") != 0)) {
        http_respond_error(resp, 400, "state must be dead or failed, got \"%.32s\"",
                           state ? state : "");
        return;
    }
    const char *params[] = {state, opt(order_id)};
    PGconn *c = service_pg_acquire(ctx->svc, resp);
    if (c == NULL)
        return;
    oms_status s = pg_query(c, "notification retry",
                            "UPDATE notifications SET state = 'pending', attempts = 0,"
                            " next_attempt_at = now(), updated_at = now()"
                            " WHERE state = $1 AND ($2 = '' OR order_id = $2)",
                            2, params, PGRES_COMMAND_OK, &res);
    service_pg_release(ctx->svc, c);
    if (s != OMS_OK) {
        http_respond_error(resp, 503, "cannot re-queue the notifications; retry later");
        return;
    }
    const char *n = PQcmdTuples(res);
    log_info("notifications re-queued", "state", state, "order_id", opt(order_id), "notifications",
             n, NULL);
    http_respond_json(resp, 200,
                      json_pack("{s:s,s:I}", "state", state, "requeued", (json_int_t)atoll(n)));
    PQclear(res);
}

void notify_routes(oms_service *svc, http_server *http, void *ctx)
{
    (void)svc;
    http_route(http, "GET", "/notifications", false, h_list, ctx);
    http_route(http, "POST", "/notifications/retry", true, h_retry, ctx);
}
