/*
 * omsctl.c - the OMS command line: global set-up and dispatch to the
 * commands in cmd_*.c. Settings come only from OMS_* variables (`. .oms/env`),
 * the same ones the services read, so a shell that can run the stack can
 * run omsctl against it.
 */
#include "cli.h"

#include "config.h"
#include "log.h"

#include <curl/curl.h>
#include <string.h>

#define NATS_CLOSE_WAIT_MS 2000

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
} command;

static const command COMMANDS[] = {
    {"import", cmd_import},
    {"order", cmd_order},
    {"stock", cmd_stock},
    {"events", cmd_events},
    {"status", cmd_status},
    {"dlq", cmd_dlq},
    {"notifications", cmd_notifications},
    {"refund", cmd_refund},
    {"kpi", cmd_kpi},
    {"leaderboard", cmd_leaderboard},
    {"trace", cmd_trace},
    {"console", cmd_console},
};

static void print_help(FILE *out)
{
    fputs("usage: omsctl COMMAND [ARGS]\n"
          "       omsctl --version\n"
          "\n"
          "  import FILE [--chunk-rows N] [--json] [--timeout S] [--no-follow]\n"
          "                         send an order CSV to ingest, then follow its orders\n"
          "                         until each is paid or failed\n"
          "  order show ORDER_ID [--json]\n"
          "                         one order: customer, status, lines, history\n"
          "  stock load FILE        publish products and stock levels from a CSV\n"
          "  stock show [SKU] [--json]\n"
          "                         stock levels: on hand, reserved, available\n"
          "  events tail [SUBJECT] [--count N]\n"
          "                         print events as JSON lines as they are published\n"
          "  status [--json]        streams, consumers, services and dead letters\n"
          "  dlq list [--service S] [--all] [--json]\n"
          "                         list dead letters of one or every service\n"
          "  dlq retry ID --service S\n"
          "                         re-apply a dead letter once its cause is fixed\n"
          "  notifications [--order ID] [--state S] [--json]\n"
          "                         notification history: email, webhook, log\n"
          "  notifications retry --dead|--failed\n"
          "                         send dead or failed notifications again\n"
          "  refund ORDER_ID [AMOUNT] [--key KEY] [--reason TEXT] [--restock] [--line SKU:QTY]\n"
          "                         ask for a refund (AMOUNT like 25.00; none: all that is left)\n"
          "  refund status (--order ORDER_ID | --key KEY) [--json]\n"
          "                         an order's refunds, or one request's outcome\n"
          "  kpi [--date D | --from D --to D] [--json]\n"
          "                         daily KPIs: orders, revenue, refunds, average order value\n"
          "  kpi snapshot [--date D]\n"
          "                         copy a day's KPIs and leaderboard into PostgreSQL\n"
          "  leaderboard [--month YYYY-MM] [--limit N] [--json]\n"
          "                         customers ranked by net spend\n"
          "  trace ORDER_ID [--json]\n"
          "                         one order's events across the streams, in causal order\n"
          "  console [--addr HOST:PORT] [--token-file F]\n"
          "                         a web page for operators (default 127.0.0.1:8088)\n"
          "\n"
          "Every command has --help (`omsctl import --help`).\n"
          "\n"
          "Settings come from the environment; run `. .oms/env` first:\n"
          "  OMS_NATS_URL           default nats://127.0.0.1:14222\n"
          "  OMS_NATS_USER, OMS_NATS_PASSWORD   optional\n"
          "  OMS_NATS_TLS_CA, OMS_NATS_TLS_CERT, OMS_NATS_TLS_KEY   TLS to NATS, optional\n"
          "  OMS_ADMIN_TOKEN        needed by `dlq retry` and the console's Retry\n"
          "  OMS_INGEST_URL ... OMS_ANALYTICS_URL   service URLs, default\n"
          "                         http://127.0.0.1:18081 ... 18086\n"
          "  OMS_LOG_LEVEL          show the library's logs (debug|info|warn|error)\n"
          "\n"
          "Exit status: 0 ok, 1 failure (`status`: NATS or any service down or not\n"
          "ready), 2 usage error, 3 `refund` still pending when its wait ended.\n",
          out);
}

/* The library logs JSON lines for services; on a terminal they would only
 * repeat omsctl's own messages, so they stay off unless asked for. */
static void init_logs(void)
{
    const char *level = config_str("OMS_LOG_LEVEL", NULL);
    int parsed = level ? log_level_parse(level) : -1;
    log_init("omsctl", parsed >= 0 ? (log_level)parsed : LOG_ERROR);
}

static int dispatch(int argc, char **argv)
{
    if (argc < 2) {
        print_help(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        print_help(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
        printf("omsctl %s\n", OMS_VERSION);
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        if (strcmp(COMMANDS[i].name, name) == 0)
            return COMMANDS[i].run(argc - 1, argv + 1);
    cli_error("unknown command \"%s\" (commands: import, order, stock, events, status, dlq, "
              "notifications, refund, kpi, leaderboard, trace, console)",
              name);
    fputs("run `omsctl --help` for usage\n", stderr);
    return CLI_EXIT_USAGE;
}

int main(int argc, char **argv)
{
    init_logs();
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        cli_error("cannot initialise libcurl");
        return CLI_EXIT_FAIL;
    }
    int rc = dispatch(argc, argv);
    curl_global_cleanup();
    /* Lets nats.c's threads end before exit, so leak checkers see no
     * half-freed library state. A no-op when NATS was never used. Not after
     * TLS: nats.c 3.4.1's cleanup frees OpenSSL's compression methods
     * without clearing them, and OpenSSL's own exit handler then frees them
     * again and crashes (nats-io/nats.c#904). */
    if (config_str("OMS_NATS_TLS_CA", NULL) == NULL &&
        config_str("OMS_NATS_TLS_CERT", NULL) == NULL)
        nats_CloseAndWait(NATS_CLOSE_WAIT_MS);
    return rc;
}
