/*
 * cmd_notifications.c - `omsctl notifications`: the notification history
 * (GET /notifications on notify), and `omsctl notifications retry --dead`
 * (POST /notifications/retry, admin token), which sends dead (or failed)
 * notifications again.
 */
#include "cli.h"

#include "config.h"

#include <getopt.h>
#include <string.h>

#define LIST_TIMEOUT_MS 10000L
#define RETRY_TIMEOUT_MS 30000L
#define VALUE_LEN 800 /* an escaped filter value */

typedef struct list_args {
    const char *order_id, *state, *channel;
    long long limit;
    bool json;
} list_args;

static void print_help(FILE *out)
{
    fputs("usage: omsctl notifications [--order ID] [--state S] [--channel C] [--limit N]\n"
          "                            [--json]\n"
          "       omsctl notifications retry --dead|--failed [--order ID]\n"
          "\n"
          "The notifications notify sent or is sending for order.paid, order.failed and\n"
          "order.refunded: one per event and channel (log, email, webhook), newest first.\n"
          "\n"
          "  -o, --order ID     one order's notifications\n"
          "  -s, --state S      pending, sent, failed or dead\n"
          "  -c, --channel C    log, email or webhook\n"
          "  -n, --limit N      at most N rows (default 100, at most 10000)\n"
          "  --json             notify's JSON as is\n"
          "\n"
          "retry   puts dead notifications (all attempts used) or failed ones (refused\n"
          "        for good) back to pending, attempts starting again; needs\n"
          "        OMS_ADMIN_TOKEN. --order limits it to one order.\n"
          "\n"
          "notify's URL comes from OMS_NOTIFY_URL (run `. .oms/env`).\n"
          "Exit status: 0 ok, 1 failure, 2 usage error.\n",
          out);
}

static const cli_service *notify_service(void)
{
    return cli_service_find("notify");
}

/* Appends "&key=<escaped value>" to query when value is set. */
static oms_status add_query(char *query, size_t len, const char *key, const char *value)
{
    char escaped[VALUE_LEN];
    if (value == NULL)
        return OMS_OK;
    if (cli_url_escape(value, escaped, sizeof escaped) != OMS_OK)
        return OMS_EINVAL;
    size_t used = strlen(query);
    int n = snprintf(query + used, len - used, "%s%s=%s", used ? "&" : "?", key, escaped);
    return n > 0 && (size_t)n < len - used ? OMS_OK : OMS_EINVAL;
}

/* ---- list -------------------------------------------------------------- */

static int parse_list_args(int argc, char **argv, list_args *a)
{
    static const struct option opts[] = {
        {"order", required_argument, NULL, 'o'},
        {"state", required_argument, NULL, 's'},
        {"channel", required_argument, NULL, 'c'},
        {"limit", required_argument, NULL, 'n'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    memset(a, 0, sizeof *a);
    while ((opt = cli_getopt(argc, argv, "o:s:c:n:h", opts, "notifications")) != -1) {
        switch (opt) {
        case 'h': print_help(stdout); return -1;
        case 'o': a->order_id = optarg; break;
        case 's': a->state = optarg; break;
        case 'c': a->channel = optarg; break;
        case 'n':
            if (cli_parse_int("notifications", "--limit", optarg, 1, 10000, &a->limit) != OMS_OK)
                return CLI_EXIT_USAGE;
            break;
        case 'j': a->json = true; break;
        default: return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage_error("notifications", "unexpected argument \"%s\"", argv[optind]);
    return CLI_EXIT_OK;
}

static void print_table(const json_t *list)
{
    static const char *const head[] = {"ID",       "ORDER",      "TYPE",    "CHANNEL",   "STATE",
                                       "ATTEMPTS", "CREATED AT", "SENT AT", "LAST ERROR"};
    cli_table *t = cli_table_create(9, head, 0x21);
    size_t i;
    json_t *n;
    if (t == NULL)
        return;
    json_array_foreach(list, i, n)
    {
        char id[32], order[300], type[32], channel[16], state[16], attempts[16], created[40];
        char sent[40], error[600];
        const char *row[] = {cli_json_text(n, "id", id, sizeof id),
                             cli_json_text(n, "order_id", order, sizeof order),
                             cli_json_text(n, "type", type, sizeof type),
                             cli_json_text(n, "channel", channel, sizeof channel),
                             cli_json_text(n, "state", state, sizeof state),
                             cli_json_text(n, "attempts", attempts, sizeof attempts),
                             cli_json_text(n, "created_at", created, sizeof created),
                             cli_json_text(n, "sent_at", sent, sizeof sent),
                             cli_json_text(n, "last_error", error, sizeof error)};
        if (*row[8] == '\0')
            row[8] = "-";
        cli_table_add(t, row);
    }
    cli_table_print(t, stdout);
    cli_table_destroy(t);
}

static int notifications_list(int argc, char **argv)
{
    list_args a;
    char query[4 * VALUE_LEN] = "", path[4 * VALUE_LEN + 32], limit[24];
    int rc = parse_list_args(argc, argv, &a);
    if (rc != CLI_EXIT_OK)
        return rc < 0 ? CLI_EXIT_OK : rc;
    snprintf(limit, sizeof limit, "%lld", a.limit);
    if (add_query(query, sizeof query, "order_id", a.order_id) != OMS_OK ||
        add_query(query, sizeof query, "state", a.state) != OMS_OK ||
        add_query(query, sizeof query, "channel", a.channel) != OMS_OK ||
        add_query(query, sizeof query, "limit", a.limit ? limit : NULL) != OMS_OK)
        return cli_usage_error("notifications", "a filter value is too long");
    snprintf(path, sizeof path, "/notifications%s", query);
    const cli_service *svc = notify_service();
    long status = 0;
    json_t *body = NULL;
    char url[CLI_URL_LEN];
    if (cli_service_get(svc, path, LIST_TIMEOUT_MS, &status, &body, url, sizeof url) != OMS_OK)
        return CLI_EXIT_FAIL;
    json_t *list = json_object_get(body, "notifications");
    if (status != 200 || !json_is_array(list)) {
        /* 400 names the bad filter: pass it on as a usage error. */
        cli_error("notify answered HTTP %ld to GET %s%s%s", status, url,
                  *cli_json_error(body) ? ": " : "", cli_json_error(body));
        json_decref(body);
        return status == 400 ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
    }
    if (a.json)
        rc = cli_print_json(json_incref(body)) == OMS_OK ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    else if (json_array_size(list) == 0)
        printf("no notifications\n");
    else
        print_table(list);
    json_decref(body);
    return rc;
}

/* ---- retry ------------------------------------------------------------- */

static int notifications_retry(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dead", no_argument, NULL, 'd'},
        {"failed", no_argument, NULL, 'f'},
        {"order", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *state = NULL, *order_id = NULL;
    int opt;
    while ((opt = cli_getopt(argc, argv, "o:h", opts, "notifications retry")) != -1) {
        if (opt == 'h') {
            print_help(stdout);
            return CLI_EXIT_OK;
        }
        if (opt == '?')
            return CLI_EXIT_USAGE;
        if (opt == 'o')
            order_id = optarg;
        else if (state != NULL)
            return cli_usage_error("notifications retry", "give --dead or --failed, not both");
        else
            state = opt == 'd' ? "dead" : "failed";
    }
    if (optind < argc)
        return cli_usage_error("notifications retry", "unexpected argument \"%s\"", argv[optind]);
    if (state == NULL)
        return cli_usage_error("notifications retry",
                               "which notifications? add --dead (all attempts used) or "
                               "--failed (refused for good)");
    const char *token = config_str("OMS_ADMIN_TOKEN", NULL);
    if (token == NULL) {
        cli_error("OMS_ADMIN_TOKEN is not set: retry needs the admin token (run `. .oms/env`)");
        return CLI_EXIT_FAIL;
    }
    char query[2 * VALUE_LEN] = "", path[2 * VALUE_LEN + 32], url[CLI_URL_LEN];
    char err[CLI_HTTP_ERR_LEN];
    if (add_query(query, sizeof query, "state", state) != OMS_OK ||
        add_query(query, sizeof query, "order_id", order_id) != OMS_OK)
        return cli_usage_error("notifications retry", "--order is too long");
    snprintf(path, sizeof path, "/notifications/retry%s", query);
    const cli_service *svc = notify_service();
    cli_service_endpoint(svc, path, url, sizeof url);
    long status = 0;
    json_t *body = NULL;
    if (cli_http("POST", url, token, RETRY_TIMEOUT_MS, &status, &body, err) != OMS_OK) {
        cli_service_unreachable(svc, err);
        return CLI_EXIT_FAIL;
    }
    int rc = CLI_EXIT_OK;
    if (status == 200) {
        json_int_t n = json_integer_value(json_object_get(body, "requeued"));
        printf("%lld %s notification%s re-queued\n", (long long)n, state, n == 1 ? "" : "s");
    } else if (status == 401) {
        cli_error("OMS_ADMIN_TOKEN is missing or wrong: notify refused it (run `. .oms/env`)");
        rc = CLI_EXIT_FAIL;
    } else {
        cli_error("notify answered HTTP %ld%s%s", status, *cli_json_error(body) ? ": " : "",
                  cli_json_error(body));
        rc = CLI_EXIT_FAIL;
    }
    json_decref(body);
    return rc;
}

int cmd_notifications(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "retry") == 0)
        return notifications_retry(argc - 1, argv + 1);
    return notifications_list(argc, argv);
}
