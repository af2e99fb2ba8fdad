/*
 * payment_http.c - GET /payments/{order_id}: an order's payment; and the
 * route table (the callback handler is in payment_callback.c).
 */
#include "payment.h"

#include <stdlib.h>
#include <string.h>

#define ISO_MS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

static json_t *payment_json(PGresult *res)
{
    bool pending = strcmp(PQgetvalue(res, 0, 4), "pending") == 0;
    return json_pack("{s:s,s:s,s:I,s:s,s:s,s:i,s:s,s:s,s:s?,s:s,s:s}", "payment_id",
                     PQgetvalue(res, 0, 0), "order_id", PQgetvalue(res, 0, 1), "amount_cents",
                     (json_int_t)atoll(PQgetvalue(res, 0, 2)), "currency", PQgetvalue(res, 0, 3),
                     "status", PQgetvalue(res, 0, 4), "attempts", atoi(PQgetvalue(res, 0, 5)),
                     "gateway_ref", PQgetvalue(res, 0, 6), "reason", PQgetvalue(res, 0, 7),
                     "next_attempt_at", pending ? PQgetvalue(res, 0, 8) : NULL, "created_at",
                     PQgetvalue(res, 0, 9), "updated_at", PQgetvalue(res, 0, 10));
}

static void h_payment(void *arg, const http_request *req, http_response *resp)
{
    payment_ctx *ctx = arg;
    const char *order_id = NULL;
    PGresult *res = NULL;
    if (http_path_str(req, 0, HTTP_ID_MAX_BYTES, &order_id, resp) != OMS_OK)
        return;
    const char *params[] = {order_id};
    PGconn *c = service_pg_acquire(ctx->svc, resp);
    if (c == NULL)
        return;
    oms_status s =
        pg_query(c, "payment",
                 "SELECT payment_id, order_id, amount_cents, currency, status, attempts,"
                 " gateway_ref, reason, " ISO_MS(
                     "next_attempt_at") ","
                                        " " ISO_MS("created_at") ", " ISO_MS(
                                            "updated_at") " FROM payments WHERE order_id = $1",
                 1, params, PGRES_TUPLES_OK, &res);
    service_pg_release(ctx->svc, c);
    if (s != OMS_OK)
        http_respond_error(resp, 503, "cannot read the payment");
    else if (PQntuples(res) == 0)
        http_respond_error(resp, 404, "no payment for order %s", order_id);
    else
        http_respond_json(resp, 200, payment_json(res));
    PQclear(res);
}

void payment_routes(oms_service *svc, http_server *http, void *ctx)
{
    (void)svc;
    http_route(http, "GET", "/payments/{order_id}", false, h_payment, ctx);
    /* No bearer token: the gateway authenticates with the HMAC signature. */
    http_route(http, "POST", "/callbacks/payment", false, payment_h_callback, ctx);
}
