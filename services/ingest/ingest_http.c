/*
 * ingest_http.c - GET /orders/{id}: an order, its lines and its history.
 */
#include "ingest.h"

#include <stdlib.h>
#include <string.h>

#define ISO_MS "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'"

static json_t *order_lines(PGconn *c, const char *order_id, const char *import_id)
{
    const char *params[] = {order_id, import_id};
    PGresult *res = NULL;
    json_t *lines = json_array();
    if (pg_query(
            c, "order lines",
            "SELECT row_no, sku, product_name, qty, unit_price_cents FROM import_rows"
            " WHERE order_id = $1 AND import_id = $2 AND reason IS NULL ORDER BY row_no, line_no",
            2, params, PGRES_TUPLES_OK, &res) != OMS_OK)
        return lines;
    for (int r = 0; r < PQntuples(res); r++)
        json_array_append_new(lines,
                              json_pack("{s:i,s:s,s:s,s:i,s:I}", "row", atoi(PQgetvalue(res, r, 0)),
                                        "sku", PQgetvalue(res, r, 1), "product_name",
                                        PQgetvalue(res, r, 2), "qty", atoi(PQgetvalue(res, r, 3)),
                                        "unit_price_cents",
                                        (json_int_t)atoll(PQgetvalue(res, r, 4))));
    PQclear(res);
    return lines;
}

static json_t *order_history(PGconn *c, const char *order_id, const char *created_at)
{
    const char *params[] = {order_id};
    PGresult *res = NULL;
    json_t *history = json_array();
    json_array_append_new(history, json_pack("{s:s,s:s,s:s}", "status", "created", "at", created_at,
                                             "reason", ""));
    if (pg_query(c, "order history",
                 "SELECT status, to_char(at AT TIME ZONE 'UTC', " ISO_MS "), reason"
                 " FROM order_status_history WHERE order_id = $1 ORDER BY at",
                 1, params, PGRES_TUPLES_OK, &res) != OMS_OK)
        return history;
    for (int r = 0; r < PQntuples(res); r++)
        json_array_append_new(history,
                              json_pack("{s:s,s:s,s:s}", "status", PQgetvalue(res, r, 0), "at",
                                        PQgetvalue(res, r, 1), "reason", PQgetvalue(res, r, 2)));
    PQclear(res);
    return history;
}

static void h_order(void *ctx, const http_request *req, http_response *resp)
{
    oms_service *svc = ctx;
    const char *order_id = NULL;
    PGresult *res = NULL;
    if (http_path_str(req, 0, HTTP_ID_MAX_BYTES, &order_id, resp) != OMS_OK)
        return;
    const char *params[] = {order_id};
    PGconn *c = service_pg_acquire(svc, resp);
    if (c == NULL)
        return;
    oms_status s = pg_query(c, "order",
                            "SELECT o.order_id, o.customer_id, o.customer_email, o.customer_name,"
                            " o.total_cents, o.currency, o.placed_at_ms, o.import_id, i.kind,"
                            " o.status, o.status_reason,"
                            " to_char(o.created_at AT TIME ZONE 'UTC', " ISO_MS "),"
                            " o.customer_phone, o.customer_address"
                            " FROM orders o JOIN imports i USING (import_id) WHERE o.order_id = $1",
                            1, params, PGRES_TUPLES_OK, &res);
    if (s != OMS_OK) {
        http_respond_error(resp, 503, "cannot read the order");
    } else if (PQntuples(res) == 0) {
        http_respond_error(resp, 404, "no order %s", order_id);
    } else {
        bool live = strcmp(PQgetvalue(res, 0, 8), "live") == 0;
        json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:I,s:s,s:I,s:s,s:s,s:s}", "order_id",
                              PQgetvalue(res, 0, 0), "customer_id", PQgetvalue(res, 0, 1),
                              "customer_email", PQgetvalue(res, 0, 2), "customer_name",
                              PQgetvalue(res, 0, 3), "total_cents",
                              (json_int_t)atoll(PQgetvalue(res, 0, 4)), "currency",
                              PQgetvalue(res, 0, 5), "placed_at_ms",
                              (json_int_t)atoll(PQgetvalue(res, 0, 6)), "import_id",
                              live ? "" : PQgetvalue(res, 0, 7), "status", PQgetvalue(res, 0, 9),
                              "reason", PQgetvalue(res, 0, 10));
        json_object_set_new(o, "customer_phone", json_string(PQgetvalue(res, 0, 12)));
        json_object_set_new(o, "customer_address", json_string(PQgetvalue(res, 0, 13)));
        json_object_set_new(o, "lines", order_lines(c, order_id, PQgetvalue(res, 0, 7)));
        json_object_set_new(o, "history", order_history(c, order_id, PQgetvalue(res, 0, 11)));
        http_respond_json(resp, 200, o);
    }
    PQclear(res);
    service_pg_release(svc, c);
}

void ingest_routes(oms_service *svc, http_server *http, void *ctx)
{
    (void)ctx;
    http_route(http, "GET", "/orders/{order_id}", false, h_order, svc);
}
