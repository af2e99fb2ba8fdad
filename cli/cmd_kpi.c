/*
 * cmd_kpi.c - `omsctl kpi`: daily KPIs from the analytics service
 * (GET /kpi/{date}, GET /kpi?from=&to=), and `omsctl kpi snapshot`, which
 * copies a day's KPIs and leaderboard into analytics' PostgreSQL schema
 * (POST /kpi/snapshot, admin token).
 *
 * Money is printed as "1,234.56 USD"; --json prints the service's JSON as is.
 */
#include "cli.h"

#include "config.h"
#include "money.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#define CMD "kpi"
#define HTTP_TIMEOUT_MS 10000L
#define MONEY_LEN 64
#define DATE_MAX 10

typedef struct kpi_args {
    const char *date, *from, *to;
    bool json;
    bool snapshot;
} kpi_args;

static void print_help(FILE *out)
{
    fputs("usage: omsctl kpi [--date YYYY-MM-DD | --from YYYY-MM-DD --to YYYY-MM-DD] [--json]\n"
          "       omsctl kpi snapshot [--date YYYY-MM-DD] [--json]\n"
          "\n"
          "Daily KPIs from the analytics service (OMS_ANALYTICS_URL), by UTC day: paid and\n"
          "failed orders, revenue, refunds, net revenue (revenue - refunds) and the average\n"
          "order value (revenue / paid orders). Without a date: today. A range prints one\n"
          "row per day and a total.\n"
          "\n"
          "`kpi snapshot` copies the day's KPIs and the top 100 of its month's leaderboard\n"
          "into analytics' PostgreSQL tables (replacing an earlier snapshot of that day);\n"
          "it needs OMS_ADMIN_TOKEN. Analytics also takes one automatically each day.\n"
          "\n"
          "  --date D     one day (default today, UTC)\n"
          "  --from D --to D   a range of at most 366 days\n"
          "  --json       print the service's JSON as is\n"
          "  -h, --help   this help\n"
          "\n"
          "Exit status: 0 shown, 1 analytics unreachable or failing, 2 usage error.\n",
          out);
}

static bool looks_like_date(const char *s)
{
    if (strlen(s) != DATE_MAX || s[4] != '-' || s[7] != '-')
        return false;
    for (int i = 0; i < DATE_MAX; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
            return false;
    return true;
}

static int check_date(const char *option, const char *value)
{
    if (value != NULL && !looks_like_date(value))
        return cli_usage_error(CMD, "%s \"%s\" is not a date: expected YYYY-MM-DD", option, value);
    return CLI_EXIT_OK;
}

static int parse_args(int argc, char **argv, kpi_args *a)
{
    static const struct option opts[] = {
        {"date", required_argument, NULL, 'd'}, {"from", required_argument, NULL, 'f'},
        {"to", required_argument, NULL, 't'},   {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
    };
    int opt, rc;
    *a = (kpi_args){0};
    if (argc >= 2 && strcmp(argv[1], "snapshot") == 0) {
        a->snapshot = true;
        argc--, argv++;
    }
    while ((opt = cli_getopt(argc, argv, "h", opts, CMD)) != -1) {
        switch (opt) {
        case 'h': print_help(stdout); return -1;
        case 'd': a->date = optarg; break;
        case 'f': a->from = optarg; break;
        case 't': a->to = optarg; break;
        case 'j': a->json = true; break;
        default: return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage_error(CMD, "unexpected argument \"%s\"", argv[optind]);
    if ((rc = check_date("--date", a->date)) || (rc = check_date("--from", a->from)) ||
        (rc = check_date("--to", a->to)))
        return rc;
    if ((a->from == NULL) != (a->to == NULL))
        return cli_usage_error(CMD, "a range needs both --from and --to");
    if (a->from != NULL && (a->date != NULL || a->snapshot))
        return cli_usage_error(CMD, a->snapshot ? "a snapshot is of one day: use --date"
                                                : "give --date or --from/--to, not both");
    return CLI_EXIT_OK;
}

/* ---- talking to analytics ------------------------------------------------ */

int cli_analytics_call(const char *method, const char *path, const char *token, json_t **out)
{
    const cli_service *svc = cli_service_find("analytics");
    char url[CLI_URL_LEN], err[CLI_HTTP_ERR_LEN];
    long status = 0;
    json_t *body = NULL;
    cli_service_endpoint(svc, path, url, sizeof url);
    if (cli_http(method, url, token, HTTP_TIMEOUT_MS, &status, &body, err) != OMS_OK) {
        cli_service_unreachable(svc, err);
        return CLI_EXIT_FAIL;
    }
    if (status == 200 && json_is_object(body)) {
        *out = body;
        return CLI_EXIT_OK;
    }
    int rc = CLI_EXIT_FAIL;
    if (status == 400) {
        cli_error("%s", cli_json_error(body));
        rc = CLI_EXIT_USAGE;
    } else if (status == 401) {
        cli_error("analytics refused the admin token: is OMS_ADMIN_TOKEN the one the service"
                  " was started with?");
    } else {
        cli_error("analytics answered HTTP %ld to %s %s%s%s%s", status, method, url,
                  *cli_json_error(body) ? ": " : "", cli_json_error(body),
                  cli_http_no_route(status, body) ? " (is OMS_ANALYTICS_URL the analytics service?)"
                                                  : "");
    }
    json_decref(body);
    return rc;
}

/* ---- the view ---------------------------------------------------------- */

static int64_t int_at(const json_t *o, const char *key)
{
    return (int64_t)json_integer_value(json_object_get(o, key));
}

static oms_status add_row(cli_table *t, const char *label, const json_t *k, const char *currency)
{
    static const char *const money_keys[] = {"revenue_cents", "refund_cents", "net_revenue_cents",
                                             "average_order_value_cents"};
    char paid[24], failed[24], refunds[24], money[4][MONEY_LEN];
    snprintf(paid, sizeof paid, "%lld", (long long)int_at(k, "order_count"));
    snprintf(failed, sizeof failed, "%lld", (long long)int_at(k, "failed_count"));
    snprintf(refunds, sizeof refunds, "%lld", (long long)int_at(k, "refund_count"));
    for (int i = 0; i < 4; i++)
        money_format_currency(int_at(k, money_keys[i]), currency, money[i], MONEY_LEN);
    const char *row[] = {label, paid, failed, money[0], refunds, money[1], money[2], money[3]};
    return cli_table_add(t, row);
}

static oms_status print_kpis(const json_t *body)
{
    static const char *const head[] = {"DATE",    "PAID",     "FAILED",      "REVENUE",
                                       "REFUNDS", "REFUNDED", "NET REVENUE", "AVG ORDER"};
    cli_table *t = cli_table_create(8, head, 0xfe);
    json_t *days = json_object_get(body, "days");
    oms_status s = t ? OMS_OK : OMS_ENOMEM;
    const char *currency = json_string_value(json_object_get(body, "currency"));
    size_t i;
    json_t *k;
    if (days == NULL) {
        if (s == OMS_OK)
            s = add_row(t, json_string_value(json_object_get(body, "date")), body,
                        currency ? currency : "");
    } else {
        json_array_foreach(days, i, k)
        {
            const char *c = json_string_value(json_object_get(k, "currency"));
            if (s == OMS_OK)
                s = add_row(t, json_string_value(json_object_get(k, "date")), k, c ? c : "");
        }
        json_t *totals = json_object_get(body, "totals");
        currency = json_string_value(json_object_get(totals, "currency"));
        if (s == OMS_OK)
            s = add_row(t, "TOTAL", totals, currency ? currency : "");
    }
    if (s == OMS_OK)
        cli_table_print(t, stdout);
    cli_table_destroy(t);
    return s;
}

/* ---- the command ------------------------------------------------------- */

static int snapshot(const kpi_args *a)
{
    const char *token = config_str("OMS_ADMIN_TOKEN", NULL);
    char path[64];
    json_t *body = NULL;
    if (token == NULL) {
        cli_error("OMS_ADMIN_TOKEN is not set: a snapshot needs the admin token"
                  " (run `. .oms/env`)");
        return CLI_EXIT_FAIL;
    }
    snprintf(path, sizeof path, "/kpi/snapshot%s%s", a->date ? "?date=" : "",
             a->date ? a->date : "");
    int rc = cli_analytics_call("POST", path, token, &body);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (a->json)
        return cli_print_json(body) == OMS_OK ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    printf("snapshot of %s taken: its KPIs and the top %lld of the %s leaderboard\n",
           json_string_value(json_object_get(body, "date")), (long long)int_at(body, "leaders"),
           json_string_value(json_object_get(body, "period")));
    json_decref(body);
    return CLI_EXIT_OK;
}

int cmd_kpi(int argc, char **argv)
{
    kpi_args a;
    char path[96];
    json_t *body = NULL;
    int rc = parse_args(argc, argv, &a);
    if (rc != CLI_EXIT_OK)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if (a.snapshot)
        return snapshot(&a);
    if (a.from != NULL)
        snprintf(path, sizeof path, "/kpi?from=%s&to=%s", a.from, a.to);
    else
        snprintf(path, sizeof path, "/kpi/%s", a.date ? a.date : "today");
    if ((rc = cli_analytics_call("GET", path, NULL, &body)) != CLI_EXIT_OK)
        return rc;
    if (a.json)
        return cli_print_json(body) == OMS_OK ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    oms_status s = print_kpis(body);
    json_decref(body);
    if (s != OMS_OK)
        cli_error("out of memory while printing KPIs");
    return s == OMS_OK ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}
