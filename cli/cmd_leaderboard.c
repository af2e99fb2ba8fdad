/*
 * cmd_leaderboard.c - `omsctl leaderboard`: customers ranked by net spend
 * (paid minus refunded) from the analytics service (GET /leaderboard), for
 * one month or all time.
 */
#include "cli.h"

#include "money.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#define CMD "leaderboard"
#define MONEY_LEN 64
#define LIMIT_MAX 1000

typedef struct leaderboard_args {
    const char *month;
    long long limit;
    bool json;
} leaderboard_args;

static void print_help(FILE *out)
{
    fputs("usage: omsctl leaderboard [--month YYYY-MM] [--limit N] [--json]\n"
          "\n"
          "Customers ranked by net spend (paid minus refunded) from the analytics service\n"
          "(OMS_ANALYTICS_URL): rank, customer id, name, net spend, paid orders. A month\n"
          "counts payments and refunds made in that month (UTC); without --month, all time.\n"
          "\n"
          "  --month M    YYYY-MM (default: all time)\n"
          "  --limit N    how many, 1 to 1000 (default 10)\n"
          "  --json       print the service's JSON as is\n"
          "  -h, --help   this help\n"
          "\n"
          "Exit status: 0 shown, 1 analytics unreachable or failing, 2 usage error.\n",
          out);
}

static int parse_args(int argc, char **argv, leaderboard_args *a)
{
    static const struct option opts[] = {
        {"month", required_argument, NULL, 'm'},
        {"limit", required_argument, NULL, 'l'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    *a = (leaderboard_args){.limit = 10};
    while ((opt = cli_getopt(argc, argv, "h", opts, CMD)) != -1) {
        switch (opt) {
        case 'h': print_help(stdout); return -1;
        case 'm': a->month = optarg; break;
        case 'l':
            if (cli_parse_int(CMD, "--limit", optarg, 1, LIMIT_MAX, &a->limit) != OMS_OK)
                return CLI_EXIT_USAGE;
            break;
        case 'j': a->json = true; break;
        default: return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage_error(CMD, "unexpected argument \"%s\"", argv[optind]);
    if (a->month != NULL &&
        (strlen(a->month) != 7 || a->month[4] != '-' || strspn(a->month, "0123456789-") != 7))
        return cli_usage_error(CMD, "--month \"%s\" is not a month: expected YYYY-MM", a->month);
    return CLI_EXIT_OK;
}

static oms_status print_leaders(const json_t *body)
{
    static const char *const head[] = {"RANK", "CUSTOMER", "NAME", "NET SPEND", "ORDERS"};
    const char *currency = json_string_value(json_object_get(body, "currency"));
    cli_table *t = cli_table_create(5, head, 0x19);
    oms_status s = t ? OMS_OK : OMS_ENOMEM;
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(body, "leaders"), i, l)
    {
        char rank[24], orders[24], net[MONEY_LEN];
        const char *name = json_string_value(json_object_get(l, "name"));
        snprintf(rank, sizeof rank, "%lld",
                 (long long)json_integer_value(json_object_get(l, "rank")));
        snprintf(orders, sizeof orders, "%lld",
                 (long long)json_integer_value(json_object_get(l, "orders")));
        money_format_currency(json_integer_value(json_object_get(l, "net_spend_cents")),
                              currency ? currency : "", net, sizeof net);
        const char *row[] = {rank, json_string_value(json_object_get(l, "customer_id")),
                             name && *name ? name : "-", net, orders};
        if (s == OMS_OK)
            s = cli_table_add(t, row);
    }
    if (s == OMS_OK && i == 0)
        printf("no customer has paid for an order in %s yet\n",
               json_string_value(json_object_get(body, "period")));
    else if (s == OMS_OK)
        cli_table_print(t, stdout);
    cli_table_destroy(t);
    return s;
}

int cmd_leaderboard(int argc, char **argv)
{
    leaderboard_args a;
    char path[96];
    json_t *body = NULL;
    int rc = parse_args(argc, argv, &a);
    if (rc != CLI_EXIT_OK)
        return rc < 0 ? CLI_EXIT_OK : rc;
    snprintf(path, sizeof path, "/leaderboard?period=%s&limit=%lld", a.month ? a.month : "all",
             a.limit);
    if ((rc = cli_analytics_call("GET", path, NULL, &body)) != CLI_EXIT_OK)
        return rc;
    if (a.json)
        return cli_print_json(body) == OMS_OK ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    oms_status s = print_leaders(body);
    json_decref(body);
    if (s != OMS_OK)
        cli_error("out of memory while printing the leaderboard");
    return s == OMS_OK ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}
