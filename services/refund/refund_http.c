/*
 * refund_http.c - POST /refunds (ask for a refund) and GET /refunds (its
 * outcome, or an order's refunds).
 *
 * POST does not decide anything: it checks the request and writes
 * refund.requested into the outbox in one transaction, so an accepted
 * request is never lost, and answers 202 with the idempotency key. The
 * consumer decides it like any other request, so HTTP and JetStream
 * requests follow the same rules and the same key space.
 */
#include "refund.h"

#include "money.h"
#include "outbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ISO_MS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
#define ERR_LEN REFUND_HTTP_ERR_LEN
#define REFUNDS_LISTED_MAX "1000" /* an order's refunds shown by GET /refunds?order_id= */
#define REFUND_COLUMNS                                                                       \
    "refund_id, idempotency_key, order_id, requested_cents, amount_cents, currency, reason," \
    " restock, lines::text, requested_by, state, reject_reason, refunded_total_cents,"       \
    " full_refund, gateway_ref, attempts, " ISO_MS("created_at") ", " ISO_MS("decided_at")

/* ---- POST /refunds ------------------------------------------------------ */

static bool get_string(json_t *body, const char *name, bool required, const char **out,
                       char err[ERR_LEN])
{
    json_t *v = json_object_get(body, name);
    if (v == NULL || json_is_null(v)) {
        if (required)
            snprintf(err, ERR_LEN, "%s is required", name);
        *out = "";
        return !required;
    }
    if (!json_is_string(v)) {
        snprintf(err, ERR_LEN, "%s must be a string", name);
        return false;
    }
    *out = json_string_value(v);
    return true;
}

/* "amount" is a decimal string ("25.00"), "amount_cents" an integer; absent
 * or 0 means the full remaining amount. */
static bool get_amount(json_t *body, int64_t *cents, char err[ERR_LEN])
{
    json_t *amount = json_object_get(body, "amount");
    json_t *amount_cents = json_object_get(body, "amount_cents");
    *cents = 0;
    if (amount != NULL && amount_cents != NULL) {
        snprintf(err, ERR_LEN, "give amount or amount_cents, not both");
        return false;
    }
    if (amount_cents != NULL) {
        if (!json_is_integer(amount_cents) || json_integer_value(amount_cents) < 0) {
            snprintf(err, ERR_LEN, "amount_cents must be a non-negative integer");
            return false;
        }
        *cents = json_integer_value(amount_cents);
        return true;
    }
    if (amount == NULL)
        return true;
    if (!json_is_string(amount) ||
        money_parse(json_string_value(amount), REFUND_AMOUNT_MAX, cents) != OMS_OK) {
        snprintf(err, ERR_LEN,
                 "amount must be a decimal string with at most 2 decimals, such as \"25.00\"");
        return false;
    }
    return true;
}

/* Fills ev's lines from the JSON array; lines[] and its pointers are the caller's. */
static bool get_lines(json_t *body, Oms__V1__RefundRequested *ev, Oms__V1__RefundLine *lines,
                      Oms__V1__RefundLine **ptrs, char err[ERR_LEN])
{
    json_t *arr = json_object_get(body, "lines");
    if (arr == NULL || json_is_null(arr))
        return true;
    if (!json_is_array(arr) || json_array_size(arr) > REFUND_LINES_MAX) {
        snprintf(err, ERR_LEN, "lines must be an array of at most %d {\"sku\", \"qty\"} objects",
                 REFUND_LINES_MAX);
        return false;
    }
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *l = json_array_get(arr, i);
        const char *sku = json_string_value(json_object_get(l, "sku"));
        json_t *qty = json_object_get(l, "qty");
        if (sku == NULL || !json_is_integer(qty) || json_integer_value(qty) < 1 ||
            json_integer_value(qty) > INT32_MAX) {
            snprintf(err, ERR_LEN,
                     "lines[%zu] must be {\"sku\": string, \"qty\": positive integer}", i);
            return false;
        }
        oms__v1__refund_line__init(&lines[i]);
        lines[i].sku = (char *)sku;
        lines[i].qty = (int32_t)json_integer_value(qty);
        ptrs[i] = &lines[i];
    }
    ev->lines = ptrs;
    ev->n_lines = json_array_size(arr);
    return true;
}

bool refund_request_parse(json_t *body, Oms__V1__RefundRequested *ev, Oms__V1__RefundLine *lines,
                          Oms__V1__RefundLine **ptrs, char key[37], char err[ERR_LEN])
{
    const char *k, *order_id, *reason, *by;
    json_t *restock = json_object_get(body, "restock");
    if (!json_is_object(body)) {
        snprintf(err, ERR_LEN, "the body must be a JSON object");
        return false;
    }
    if (!get_string(body, "order_id", true, &order_id, err) ||
        !get_string(body, "idempotency_key", false, &k, err) ||
        !get_string(body, "reason", false, &reason, err) ||
        !get_string(body, "requested_by", false, &by, err) ||
        !get_amount(body, &ev->amount_cents, err))
        return false;
    if (restock != NULL && !json_is_boolean(restock)) {
        snprintf(err, ERR_LEN, "restock must be true or false");
        return false;
    }
    if (*k == '\0')
        oms_uuid4(key);
    ev->idempotency_key = (char *)(*k ? k : key);
    ev->order_id = (char *)order_id;
    ev->reason = (char *)reason;
    ev->requested_by = (char *)(*by ? by : "http");
    ev->restock = json_is_true(restock);
    if (!get_lines(body, ev, lines, ptrs, err))
        return false;
    const char *bad_key = refund_key_invalid(ev->idempotency_key);
    if (bad_key != NULL) {
        snprintf(err, ERR_LEN, "%s", bad_key);
        return false;
    }
    return refund_request_valid(ev, err, ERR_LEN);
}

/* Writes refund.requested into the outbox: the relay publishes it. */
static oms_status enqueue(refund_ctx *ctx, Oms__V1__RefundRequested *ev)
{
    outbox_batch ob;
    Oms__V1__EventMeta meta;
    char id[37];
    oms_status s;
    outbox_batch_init(&ob);
    PGconn *c = service_pg_acquire(ctx->svc, NULL);
    if (c == NULL) {
        outbox_batch_fini(&ob);
        return OMS_ETRANSIENT;
    }
    /* Borrowed for the encoding below and cleared before returning: meta
     * lives on this frame. */
    outbox_meta_init(&meta, id, REFUND_PRODUCER, ev->order_id, "");
    ev->meta = &meta;
    if ((s = outbox_batch_add_message(&ob, "refund.requested", id, &ev->base)) == OMS_OK &&
        (s = pg_exec(c, "BEGIN")) == OMS_OK && (s = outbox_batch_flush(&ob, c)) == OMS_OK)
        s = pg_exec(c, "COMMIT");
    pg_rollback(c);
    service_pg_release(ctx->svc, c);
    outbox_batch_fini(&ob);
    ev->meta = NULL;
    return s;
}

static void h_request(void *arg, const http_request *req, http_response *resp)
{
    refund_ctx *ctx = arg;
    size_t len = 0;
    const char *text = http_body(req, &len);
    json_error_t jerr;
    json_t *body = json_loadb(text, len, 0, &jerr);
    Oms__V1__RefundRequested ev = OMS__V1__REFUND_REQUESTED__INIT;
    Oms__V1__RefundLine *lines = calloc(REFUND_LINES_MAX, sizeof *lines);
    Oms__V1__RefundLine **ptrs = calloc(REFUND_LINES_MAX, sizeof *ptrs);
    char key[37] = "", err[ERR_LEN] = "";
    if (lines == NULL || ptrs == NULL) {
        http_respond_error(resp, 503, "out of memory");
    } else if (body == NULL) {
        http_respond_error(resp, 400, "the body is not JSON: %s (line %d, column %d)", jerr.text,
                           jerr.line, jerr.column);
    } else if (!refund_request_parse(body, &ev, lines, ptrs, key, err)) {
        http_respond_error(resp, 400, "%s", err);
    } else if (enqueue(ctx, &ev) != OMS_OK) {
        http_respond_error(resp, 503, "the refund request could not be stored; try again");
    } else {
        char url[512];
        snprintf(url, sizeof url, "/refunds?key=%s", ev.idempotency_key);
        http_respond_json(resp, 202,
                          json_pack("{s:s,s:s,s:s,s:s}", "idempotency_key", ev.idempotency_key,
                                    "order_id", ev.order_id, "status", "requested", "status_url",
                                    url));
    }
    json_decref(body);
    free(lines), free(ptrs);
}

/* ---- GET /refunds -------------------------------------------------------- */

static json_t *refund_json(PGresult *res, int r)
{
    json_t *lines = json_loads(PQgetvalue(res, r, 8), 0, NULL);
    bool decided = !PQgetisnull(res, r, 17);
    return json_pack("{s:s,s:s,s:s,s:I,s:I,s:s,s:s,s:b,s:o,s:s,s:s,s:s,s:I,s:b,s:s,s:i,s:s,s:s?}",
                     "refund_id", PQgetvalue(res, r, 0), "idempotency_key", PQgetvalue(res, r, 1),
                     "order_id", PQgetvalue(res, r, 2), "requested_cents",
                     (json_int_t)atoll(PQgetvalue(res, r, 3)), "amount_cents",
                     (json_int_t)atoll(PQgetvalue(res, r, 4)), "currency", PQgetvalue(res, r, 5),
                     "reason", PQgetvalue(res, r, 6), "restock",
                     strcmp(PQgetvalue(res, r, 7), "t") == 0, "lines", lines ? lines : json_array(),
                     "requested_by", PQgetvalue(res, r, 9), "state", PQgetvalue(res, r, 10),
                     "reject_reason", PQgetvalue(res, r, 11), "refunded_total_cents",
                     (json_int_t)atoll(PQgetvalue(res, r, 12)), "full",
                     strcmp(PQgetvalue(res, r, 13), "t") == 0, "gateway_ref",
                     PQgetvalue(res, r, 14), "attempts", atoi(PQgetvalue(res, r, 15)), "created_at",
                     PQgetvalue(res, r, 16), "decided_at", decided ? PQgetvalue(res, r, 17) : NULL);
}

static void by_key(PGconn *c, const char *key, http_response *resp)
{
    PGresult *res = NULL;
    const char *params[] = {key};
    if (pg_query(c, "refund by key",
                 "SELECT " REFUND_COLUMNS " FROM refunds WHERE idempotency_key = $1", 1, params,
                 PGRES_TUPLES_OK, &res) != OMS_OK)
        http_respond_error(resp, 503, "cannot read refunds");
    else if (PQntuples(res) == 0)
        http_respond_error(resp, 404,
                           "no refund request with idempotency key %.128s has been decided (a "
                           "request is decided within seconds of being published)",
                           key);
    else
        http_respond_json(resp, 200, refund_json(res, 0));
    PQclear(res);
}

static void by_order(PGconn *c, const char *order_id, http_response *resp)
{
    PGresult *order = NULL, *res = NULL;
    const char *params[] = {order_id};
    if (pg_query(c, "refund order",
                 "SELECT paid_total_cents, refunded_cents, pending_cents, currency, customer_id"
                 " FROM paid_orders WHERE order_id = $1",
                 1, params, PGRES_TUPLES_OK, &order) != OMS_OK ||
        pg_query(c, "refunds of order",
                 "SELECT " REFUND_COLUMNS " FROM refunds WHERE order_id = $1"
                 " ORDER BY created_at, refund_id LIMIT " REFUNDS_LISTED_MAX,
                 1, params, PGRES_TUPLES_OK, &res) != OMS_OK) {
        http_respond_error(resp, 503, "cannot read refunds");
        goto out;
    }
    json_t *refunds = json_array();
    for (int r = 0; r < PQntuples(res); r++)
        json_array_append_new(refunds, refund_json(res, r));
    bool paid = PQntuples(order) > 0;
    json_t *out = json_pack("{s:s,s:b,s:o}", "order_id", order_id, "paid", paid, "refunds",
                            refunds);
    if (paid) {
        json_object_set_new(out, "paid_total_cents", json_integer(atoll(PQgetvalue(order, 0, 0))));
        json_object_set_new(out, "refunded_cents", json_integer(atoll(PQgetvalue(order, 0, 1))));
        json_object_set_new(out, "pending_cents", json_integer(atoll(PQgetvalue(order, 0, 2))));
        json_object_set_new(out, "currency", json_string(PQgetvalue(order, 0, 3)));
        json_object_set_new(out, "customer_id", json_string(PQgetvalue(order, 0, 4)));
    }
    http_respond_json(resp, 200, out);
out:
    PQclear(order);
    PQclear(res);
}

static void h_list(void *arg, const http_request *req, http_response *resp)
{
    refund_ctx *ctx = arg;
    const char *key = NULL, *order_id = NULL;
    if (http_query_str(req, "key", REFUND_KEY_MAX, &key, resp) != OMS_OK ||
        http_query_str(req, "order_id", REFUND_ORDER_ID_MAX, &order_id, resp) != OMS_OK)
        return;
    if ((key == NULL) == (order_id == NULL) || (key ? *key : *order_id) == '\0') {
        http_respond_error(resp, 400, "give exactly one of ?key=IDEMPOTENCY_KEY or ?order_id=ID");
        return;
    }
    PGconn *c = service_pg_acquire(ctx->svc, resp);
    if (c == NULL)
        return;
    if (key != NULL)
        by_key(c, key, resp);
    else
        by_order(c, order_id, resp);
    service_pg_release(ctx->svc, c);
}

void refund_routes(oms_service *svc, http_server *http, void *ctx)
{
    (void)svc;
    /* Asking for money back changes state: bearer token required. */
    http_route(http, "POST", "/refunds", true, h_request, ctx);
    http_route(http, "GET", "/refunds", false, h_list, ctx);
}
