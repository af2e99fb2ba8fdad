/*
 * stock_show.c - `omsctl stock show [SKU]`: stock levels as inventory holds
 * them (GET /products or /products/{sku}), as a table or inventory's JSON.
 *
 * The list is a JSON array; {"products": [...]} is accepted too, so a later
 * inventory that wraps the list (to page it, say) does not break the command.
 */
#include "cli.h"

#include "money.h"
#include "order_csv.h"

#include <getopt.h>
#include <string.h>

#define CMD "stock show"
#define HTTP_TIMEOUT_MS 10000L
#define SKU_MAX_BYTES 256 /* what `stock load` accepts */

typedef struct show_args {
    const char *sku; /* NULL: every product */
    bool json;
} show_args;

static void print_help(FILE *out)
{
    fputs("usage: omsctl stock show [SKU] [--json]\n"
          "\n"
          "Shows the stock levels inventory holds (OMS_INVENTORY_URL): for every\n"
          "product, or for SKU, its name, units on hand, units reserved by orders not\n"
          "yet paid, units available to new orders (on hand - reserved) and price.\n"
          "\n"
          "  --json       print inventory's JSON as is\n"
          "  -h, --help   this help\n"
          "\n"
          "Exit status: 0 shown, 1 no such SKU or inventory unreachable, 2 usage error.\n",
          out);
}

static int parse_args(int argc, char **argv, show_args *a)
{
    int rc = cli_parse_show(argc, argv, CMD, print_help, "SKU", &a->json, &a->sku);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (a->sku != NULL && (*a->sku == '\0' || strlen(a->sku) > SKU_MAX_BYTES))
        return cli_usage_error(CMD, "a SKU has 1 to %d bytes, got %zu", SKU_MAX_BYTES,
                               strlen(a->sku));
    return CLI_EXIT_OK;
}

/* ---- the table --------------------------------------------------------- */

static oms_status add_product(cli_table *t, const json_t *p)
{
    char sku[SKU_MAX_BYTES + 1], name[ORDER_FIELD_MAX + 1], on_hand[24], reserved[24];
    char available[24], price[64];
    const json_t *cents = json_object_get(p, "price_cents");
    if (json_is_integer(cents))
        money_format((int64_t)json_integer_value(cents), price, sizeof price);
    else
        snprintf(price, sizeof price, "-");
    const char *row[] = {cli_json_text(p, "sku", sku, sizeof sku),
                         cli_json_text(p, "name", name, sizeof name),
                         cli_json_text(p, "on_hand", on_hand, sizeof on_hand),
                         cli_json_text(p, "reserved", reserved, sizeof reserved),
                         cli_json_text(p, "available", available, sizeof available),
                         price};
    return cli_table_add(t, row);
}

static oms_status print_products(const json_t *products)
{
    static const char *const head[] = {"SKU", "NAME", "ON HAND", "RESERVED", "AVAILABLE", "PRICE"};
    if (json_array_size(products) == 0) {
        printf("no products: load them with `omsctl stock load FILE`\n");
        return OMS_OK;
    }
    cli_table *t = cli_table_create(6, head, 0x3c);
    oms_status s = t ? OMS_OK : OMS_ENOMEM;
    size_t i;
    json_t *p;
    json_array_foreach(products, i, p)
    {
        if (s == OMS_OK)
            s = add_product(t, p);
    }
    if (s == OMS_OK)
        cli_table_print(t, stdout);
    else
        cli_error("out of memory while printing the products");
    cli_table_destroy(t);
    return s;
}

/* ---- the command ------------------------------------------------------- */

/* The products of a 200 answer as an array (borrowed from body), or NULL
 * when the body has another shape. */
static const json_t *products_of(const json_t *body, bool one)
{
    if (one)
        return json_is_object(body) ? body : NULL;
    if (json_is_array(body))
        return body;
    const json_t *wrapped = json_object_get(body, "products");
    return json_is_array(wrapped) ? wrapped : NULL;
}

/* GETs one product or all; *body is inventory's JSON on success. */
static oms_status fetch(const char *sku, json_t **out)
{
    const cli_service *inventory = cli_service_find("inventory");
    char escaped[3 * SKU_MAX_BYTES + 1], path[sizeof escaped + 16], url[CLI_URL_LEN];
    long status = 0;
    json_t *body = NULL;

    if (sku != NULL && cli_url_escape(sku, escaped, sizeof escaped) != OMS_OK)
        return OMS_EINVAL; /* parse_args bounds the SKU */
    snprintf(path, sizeof path, "/products%s%s", sku ? "/" : "", sku ? escaped : "");
    oms_status s = cli_service_get(inventory, path, HTTP_TIMEOUT_MS, &status, &body, url,
                                   sizeof url);
    if (s != OMS_OK)
        return s;
    if (status == 404 && sku != NULL && !cli_http_no_route(status, body)) {
        cli_error("no product %s (load it with `omsctl stock load FILE`)", sku);
        s = OMS_ENOTFOUND;
    } else if (status != 200) {
        cli_error("inventory answered HTTP %ld to GET %s%s%s%s", status, url,
                  *cli_json_error(body) ? ": " : "", cli_json_error(body),
                  cli_http_no_route(status, body) ? " (is OMS_INVENTORY_URL the inventory service?)"
                                                  : "");
        s = OMS_EIO;
    } else if (products_of(body, sku != NULL) == NULL) {
        cli_error("inventory answered GET %s with JSON of an unexpected shape (%s expected): "
                  "is OMS_INVENTORY_URL the inventory service?",
                  url, sku ? "a product object" : "an array of products");
        s = OMS_EIO;
    }
    if (s == OMS_OK)
        *out = body;
    else
        json_decref(body);
    return s;
}

int stock_show(int argc, char **argv)
{
    show_args a;
    json_t *body = NULL;
    oms_status s;
    int rc = parse_args(argc, argv, &a);
    if (rc != CLI_EXIT_OK)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if (fetch(a.sku, &body) != OMS_OK)
        return CLI_EXIT_FAIL;
    if (a.json)
        return cli_print_json(body) == OMS_OK ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    if (a.sku != NULL) {
        json_t *one = json_pack("[O]", body);
        s = one ? print_products(one) : OMS_ENOMEM;
        json_decref(one);
    } else {
        s = print_products(products_of(body, false));
    }
    json_decref(body);
    return s == OMS_OK ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}
