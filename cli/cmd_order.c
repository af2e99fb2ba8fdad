/*
 * cmd_order.c - `omsctl order show ID`: one order as ingest knows it
 * (GET /orders/{id}): who ordered what for how much, where it stands, and
 * every status it went through.
 *
 * The screen is a rendering of ingest's JSON and --json prints that JSON as
 * is, so a person and a script always see the same order.
 */
#include "cli.h"
#include "order_csv.h"

#include "money.h"

#include <getopt.h>
#include <string.h>

#define CMD "order show"
#define HTTP_TIMEOUT_MS 10000L
#define MONEY_LEN 64
#define TIME_LEN 40

typedef struct show_args {
    const char *order_id;
    bool json;
} show_args;

static void print_help(FILE *out)
{
    fputs("usage: omsctl order show ORDER_ID [--json]\n"
          "\n"
          "Shows one order as ingest holds it (GET /orders/{id} on OMS_INGEST_URL):\n"
          "customer, status (with the reason of a failure), total, when it was placed,\n"
          "the import it came from, its lines (SKU, product, quantity, unit price, line\n"
          "total) and its status history with timestamps (UTC).\n"
          "\n"
          "  --json       print ingest's JSON as is\n"
          "  -h, --help   this help\n"
          "\n"
          "Exit status: 0 shown, 1 no such order or ingest unreachable, 2 usage error.\n",
          out);
}

static int parse_args(int argc, char **argv, show_args *a)
{
    int rc = cli_parse_show(argc, argv, CMD, print_help, "ORDER_ID", &a->json, &a->order_id);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (a->order_id == NULL)
        return cli_usage_error(CMD, "which order? give its ORDER_ID");
    if (*a->order_id == '\0' || strlen(a->order_id) > ORDER_FIELD_MAX)
        return cli_usage_error(CMD, "an order id has 1 to %d bytes, got %zu", ORDER_FIELD_MAX,
                               strlen(a->order_id));
    return CLI_EXIT_OK;
}

/* ---- the view ---------------------------------------------------------- */

static const char *str_at(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

static int64_t int_at(const json_t *obj, const char *key)
{
    return (int64_t)json_integer_value(json_object_get(obj, key));
}

/* Text of member key, or "-" when absent or empty. */
static const char *text_or_dash(const json_t *obj, const char *key)
{
    const char *s = str_at(obj, key);
    return *s ? s : "-";
}

static void print_header(const json_t *o)
{
    char total[MONEY_LEN], placed[TIME_LEN] = "-";
    const char *name = str_at(o, "customer_name"), *email = str_at(o, "customer_email");
    const char *reason = str_at(o, "reason"), *import_id = str_at(o, "import_id");
    const char *currency = str_at(o, "currency");

    if (*currency)
        money_format_currency(int_at(o, "total_cents"), currency, total, sizeof total);
    else
        money_format(int_at(o, "total_cents"), total, sizeof total);
    if (int_at(o, "placed_at_ms") > 0)
        cli_format_time_ms(int_at(o, "placed_at_ms"), placed, sizeof placed);
    printf("order      %s\n", str_at(o, "order_id"));
    printf("customer   %s%s%s%s%s%s\n", text_or_dash(o, "customer_id"), *name ? "  " : "", name,
           *email ? "  <" : "", email, *email ? ">" : "");
    printf("status     %s%s%s%s\n", text_or_dash(o, "status"), *reason ? " (" : "", reason,
           *reason ? ")" : "");
    printf("total      %s\n", total);
    printf("placed at  %s\n", placed);
    printf("import     %s\n", *import_id ? import_id : "- (rows published without an import)");
    if (*str_at(o, "customer_phone"))
        printf("phone      %s\n", str_at(o, "customer_phone"));
    if (*str_at(o, "customer_address"))
        printf("address    %s\n", str_at(o, "customer_address"));
}

/* One row of the lines table; the line total is "-" if it would overflow
 * (ingest's data is bounded far below, but it comes over the network). */
static oms_status add_line(cli_table *t, const json_t *line)
{
    char qty[24], unit[MONEY_LEN], line_total[MONEY_LEN];
    int64_t qty_n = int_at(line, "qty"), unit_cents = int_at(line, "unit_price_cents");
    int64_t total_cents;

    snprintf(qty, sizeof qty, "%lld", (long long)qty_n);
    money_format(unit_cents, unit, sizeof unit);
    if (__builtin_mul_overflow(qty_n, unit_cents, &total_cents))
        snprintf(line_total, sizeof line_total, "-");
    else
        money_format(total_cents, line_total, sizeof line_total);
    const char *row[] = {str_at(line, "sku"), str_at(line, "product_name"), qty, unit, line_total};
    return cli_table_add(t, row);
}

static oms_status print_lines(const json_t *lines)
{
    static const char *const head[] = {"SKU", "PRODUCT", "QTY", "UNIT PRICE", "LINE TOTAL"};
    cli_table *t = cli_table_create(5, head, 0x1c);
    oms_status s = t ? OMS_OK : OMS_ENOMEM;
    size_t i;
    json_t *line;
    json_array_foreach(lines, i, line)
    {
        if (s == OMS_OK)
            s = add_line(t, line);
    }
    if (s == OMS_OK)
        cli_table_print(t, stdout);
    cli_table_destroy(t);
    return s;
}

static oms_status print_history(const json_t *history)
{
    static const char *const head[] = {"AT", "STATUS", "REASON"};
    cli_table *t = cli_table_create(3, head, 0);
    oms_status s = t ? OMS_OK : OMS_ENOMEM;
    size_t i;
    json_t *h;
    json_array_foreach(history, i, h)
    {
        const char *row[] = {str_at(h, "at"), str_at(h, "status"), str_at(h, "reason")};
        if (s == OMS_OK)
            s = cli_table_add(t, row);
    }
    if (s == OMS_OK)
        cli_table_print(t, stdout);
    cli_table_destroy(t);
    return s;
}

static oms_status print_order(const json_t *o)
{
    print_header(o);
    putchar('\n');
    oms_status s = print_lines(json_object_get(o, "lines"));
    if (s == OMS_OK) {
        putchar('\n');
        s = print_history(json_object_get(o, "history"));
    }
    if (s != OMS_OK)
        cli_error("out of memory while printing order %s", str_at(o, "order_id"));
    return s;
}

/* ---- the command ------------------------------------------------------- */

/* GETs the order; *order is ingest's JSON on success. Prints what went wrong. */
static oms_status fetch_order(const char *order_id, json_t **order)
{
    const cli_service *ingest = cli_service_find("ingest");
    char escaped[3 * ORDER_FIELD_MAX + 1], path[sizeof escaped + 16], url[CLI_URL_LEN];
    long status = 0;
    json_t *body = NULL;

    if (cli_url_escape(order_id, escaped, sizeof escaped) != OMS_OK)
        return OMS_EINVAL; /* parse_args bounds the id */
    snprintf(path, sizeof path, "/orders/%s", escaped);
    oms_status s = cli_service_get(ingest, path, HTTP_TIMEOUT_MS, &status, &body, url, sizeof url);
    if (s != OMS_OK)
        return s;
    if (status == 404 && !cli_http_no_route(status, body)) {
        cli_error("no order %s", order_id);
        s = OMS_ENOTFOUND;
    } else if (status != 200) {
        cli_error("ingest answered HTTP %ld to GET %s%s%s%s", status, url,
                  *cli_json_error(body) ? ": " : "", cli_json_error(body),
                  cli_http_no_route(status, body) ? " (is OMS_INGEST_URL the ingest service?)"
                                                  : "");
        s = OMS_EIO;
    } else if (!json_is_object(body)) {
        cli_error("ingest answered GET %s with something other than an order (a JSON object "
                  "was expected): is OMS_INGEST_URL the ingest service?",
                  url);
        s = OMS_EIO;
    }
    if (s == OMS_OK)
        *order = body;
    else
        json_decref(body);
    return s;
}

static int order_show(int argc, char **argv)
{
    show_args a;
    json_t *order = NULL;
    int rc = parse_args(argc, argv, &a);
    if (rc != CLI_EXIT_OK)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if (fetch_order(a.order_id, &order) != OMS_OK)
        return CLI_EXIT_FAIL;
    oms_status s = a.json ? cli_print_json(order) : print_order(order);
    if (!a.json)
        json_decref(order);
    return s == OMS_OK ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

int cmd_order(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "show") == 0)
        return order_show(argc - 1, argv + 1);
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        print_help(stdout);
        return CLI_EXIT_OK;
    }
    if (argc < 2)
        return cli_usage_error("order", "which subcommand? (order show ORDER_ID)");
    return cli_usage_error("order", "unknown subcommand \"%s\" (order show ORDER_ID)", argv[1]);
}
