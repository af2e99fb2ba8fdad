/*
 * inventory_http.c - reading stock levels: GET /products (all, by SKU) and
 * GET /products/{sku}, for `omsctl stock show` and operators.
 *
 * A product is {"sku", "name", "on_hand", "reserved", "available",
 * "price_cents"}; available = on_hand - reserved, the units an order can
 * still reserve.
 */
#include "inventory.h"

#include <stdlib.h>

#define PRODUCT_COLUMNS "SELECT sku, name, on_hand, reserved, on_hand - reserved, price_cents"

static json_t *product_json(PGresult *res, int row)
{
    return json_pack("{s:s,s:s,s:I,s:I,s:I,s:I}", "sku", PQgetvalue(res, row, 0), "name",
                     PQgetvalue(res, row, 1), "on_hand", (json_int_t)atoll(PQgetvalue(res, row, 2)),
                     "reserved", (json_int_t)atoll(PQgetvalue(res, row, 3)), "available",
                     (json_int_t)atoll(PQgetvalue(res, row, 4)), "price_cents",
                     (json_int_t)atoll(PQgetvalue(res, row, 5)));
}

/* Runs a product query on the service's HTTP connection; NULL (and resp set
 * to 503) when PostgreSQL is unavailable or the query failed. */
static PGresult *query_products(oms_service *svc, http_response *resp, const char *sql,
                                int n_params, const char *const *params)
{
    PGresult *res = NULL;
    PGconn *c = service_pg_acquire(svc, resp);
    if (c == NULL)
        return NULL;
    oms_status s = pg_query(c, "products read", sql, n_params, params, PGRES_TUPLES_OK, &res);
    service_pg_release(svc, c);
    if (s != OMS_OK)
        http_respond_error(resp, 503, "cannot read products: %s", oms_strstatus(s));
    return s == OMS_OK ? res : NULL;
}

static void h_products(void *ctx, const http_request *req, http_response *resp)
{
    (void)req;
    PGresult *res = query_products(ctx, resp,
                                   PRODUCT_COLUMNS " FROM products"
                                                   " ORDER BY sku COLLATE \"C\"",
                                   0, NULL);
    if (res == NULL)
        return;
    json_t *items = json_array();
    for (int r = 0; items != NULL && r < PQntuples(res); r++)
        if (json_array_append_new(items, product_json(res, r)) != 0) {
            json_decref(items);
            items = NULL; /* a name that is not valid UTF-8: answers 500 */
        }
    PQclear(res);
    http_respond_json(resp, 200, items);
}

static void h_product(void *ctx, const http_request *req, http_response *resp)
{
    const char *sku = NULL;
    if (http_path_str(req, 0, HTTP_ID_MAX_BYTES, &sku, resp) != OMS_OK)
        return;
    const char *params[] = {sku};
    PGresult *res = query_products(ctx, resp, PRODUCT_COLUMNS " FROM products WHERE sku = $1", 1,
                                   params);
    if (res == NULL)
        return;
    if (PQntuples(res) == 0)
        http_respond_error(resp, 404, "no product with sku \"%s\"; load it with omsctl stock load",
                           sku);
    else
        http_respond_json(resp, 200, product_json(res, 0));
    PQclear(res);
}

void inv_routes(oms_service *svc, http_server *http, void *ctx)
{
    (void)ctx;
    http_route(http, "GET", "/products", false, h_products, svc);
    http_route(http, "GET", "/products/{sku}", false, h_product, svc);
}
