/*
 * cmd_dlq.c - `omsctl dlq list` and `omsctl dlq retry`: the services' dead
 * letters (events a consumer could not apply) over their HTTP admin API.
 */
#include "cli.h"

#include "config.h"

#include <getopt.h>
#include <string.h>

#define LIST_TIMEOUT_MS 5000L
/* A retry re-applies the event in a transaction on the service's side. */
#define RETRY_TIMEOUT_MS 30000L
#define URL_LEN 1024

typedef struct list_args {
    const cli_service *only; /* NULL: every service */
    bool all, json;
} list_args;

static void print_help(FILE *out)
{
    fputs("usage: omsctl dlq list [--service S] [--all] [--json]\n"
          "       omsctl dlq retry ID --service S\n"
          "\n"
          "Dead letters are events a service could not apply; it keeps them until\n"
          "they are re-applied. Subjects, event ids and reasons are shown in a\n"
          "printable form (bytes that are not UTF-8 and control characters as \\xHH);\n"
          "the service keeps the message's own bytes, and a retry replays those.\n"
          "\n"
          "list    shows the open dead letters of one service or of every service\n"
          "        (a service that cannot be reached is reported on stderr; the\n"
          "        command fails only if none answered or the one asked for did not)\n"
          "  -s, --service S   only this service: ingest, inventory, payment, notify,\n"
          "                    refund or analytics\n"
          "  -a, --all         resolved ones too\n"
          "  --json            one JSON object instead of a table\n"
          "\n"
          "retry   re-applies dead letter ID of service S once its cause is fixed;\n"
          "        needs OMS_ADMIN_TOKEN. Exit status 0 when it was applied, 1 when it\n"
          "        was rejected again, is not open, or the service refused.\n"
          "\n"
          "Service URLs come from OMS_<SERVICE>_URL (run `. .oms/env`).\n"
          "Exit status: 0 ok, 1 failure, 2 usage error.\n",
          out);
}

static const cli_service *service_arg(const char *cmd, const char *name)
{
    const cli_service *svc = cli_service_find(name);
    if (svc == NULL)
        cli_usage_error(cmd, "unknown service \"%s\" (services: %s)", name, cli_service_names());
    return svc;
}

/* ---- list -------------------------------------------------------------- */

/* GETs svc's dead letters; NULL (after saying why) when it did not answer. */
static json_t *fetch_list(const cli_service *svc, bool all)
{
    char full[URL_LEN], err[CLI_HTTP_ERR_LEN];
    long status = 0;
    json_t *body = NULL;
    cli_service_endpoint(svc, all ? "/dead-letters?state=all" : "/dead-letters", full, sizeof full);
    if (cli_http("GET", full, NULL, LIST_TIMEOUT_MS, &status, &body, err) != OMS_OK) {
        cli_service_unreachable(svc, err);
        return NULL;
    }
    if (status != 200 || !json_is_array(json_object_get(body, "dead_letters"))) {
        cli_error("%s answered HTTP %ld to GET %s%s%s", svc->name, status, full,
                  *cli_json_error(body) ? ": " : "", cli_json_error(body));
        json_decref(body);
        return NULL;
    }
    return body;
}

static void add_rows(cli_table *t, const char *service, const json_t *list, bool all)
{
    size_t i;
    json_t *d;
    json_array_foreach(list, i, d)
    {
        char id[32], subject[320], event_id[256], attempts[32], created[64], resolved[64];
        char reason[1024];
        const char *row[] = {service,
                             cli_json_text(d, "id", id, sizeof id),
                             cli_json_text(d, "subject", subject, sizeof subject),
                             cli_json_text(d, "event_id", event_id, sizeof event_id),
                             cli_json_text(d, "attempts", attempts, sizeof attempts),
                             cli_json_text(d, "created_at", created, sizeof created),
                             cli_json_text(d, "resolved_at", resolved, sizeof resolved),
                             cli_json_text(d, "reason", reason, sizeof reason)};
        if (!all)
            row[6] = row[7]; /* no RESOLVED AT column */
        cli_table_add(t, row);
    }
}

static int parse_list_args(int argc, char **argv, list_args *a)
{
    static const struct option opts[] = {
        {"service", required_argument, NULL, 's'},
        {"all", no_argument, NULL, 'a'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    memset(a, 0, sizeof *a);
    while ((opt = cli_getopt(argc, argv, "s:ah", opts, "dlq list")) != -1) {
        if (opt == 'h') {
            print_help(stdout);
            return -1;
        }
        if (opt == 's' && (a->only = service_arg("dlq list", optarg)) == NULL)
            return CLI_EXIT_USAGE;
        if (opt == '?')
            return CLI_EXIT_USAGE;
        a->all = a->all || opt == 'a';
        a->json = a->json || opt == 'j';
    }
    if (optind < argc)
        return cli_usage_error("dlq list", "unexpected argument \"%s\"", argv[optind]);
    return CLI_EXIT_OK;
}

static void print_table(json_t *bodies, bool all)
{
    static const char *const head[] = {"SERVICE",  "ID",         "SUBJECT",     "EVENT ID",
                                       "ATTEMPTS", "CREATED AT", "RESOLVED AT", "REASON"};
    static const char *const head_open[] = {"SERVICE",  "ID",         "SUBJECT", "EVENT ID",
                                            "ATTEMPTS", "CREATED AT", "REASON"};
    cli_table *t = cli_table_create(all ? 8 : 7, all ? head : head_open, 0x12);
    size_t i, rows = 0;
    json_t *b;
    if (t == NULL)
        return;
    json_array_foreach(bodies, i, b)
    {
        json_t *list = json_object_get(b, "dead_letters");
        rows += json_array_size(list);
        add_rows(t, json_string_value(json_object_get(b, "service")), list, all);
    }
    if (rows == 0)
        printf("no %sdead letters\n", all ? "" : "open ");
    else
        cli_table_print(t, stdout);
    cli_table_destroy(t);
}

static int dlq_list(int argc, char **argv)
{
    list_args a;
    int rc = parse_list_args(argc, argv, &a);
    if (rc != CLI_EXIT_OK)
        return rc < 0 ? CLI_EXIT_OK : rc;
    json_t *bodies = json_array();
    size_t asked = 0, failed = 0;
    for (size_t i = 0; i < CLI_N_SERVICES; i++) {
        const cli_service *svc = &CLI_SERVICES[i];
        if (a.only != NULL && a.only != svc)
            continue;
        asked++;
        json_t *body = fetch_list(svc, a.all);
        if (body == NULL) {
            failed++;
            continue;
        }
        /* Name rows by the service asked, whatever the body says. */
        json_object_set_new(body, "service", json_string(svc->name));
        json_array_append_new(bodies, body);
    }
    /* With no answer there is nothing to show, not "no dead letters". */
    if (failed == asked)
        ;
    else if (a.json)
        cli_print_json(json_pack("{s:o}", "services", json_incref(bodies)));
    else
        print_table(bodies, a.all);
    json_decref(bodies);
    return failed == asked || (a.only != NULL && failed > 0) ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

/* ---- retry ------------------------------------------------------------- */

/* Says what the service's answer means for the user; returns the exit code. */
static int report_retry(const cli_service *svc, long long id, long status, const json_t *body)
{
    const char *error = cli_json_error(body);
    switch (status) {
    case 200: {
        const char *state = json_string_value(json_object_get(body, "state"));
        printf("dead letter %lld of %s re-applied: %s\n", id, svc->name,
               state ? state : "resolved");
        return CLI_EXIT_OK;
    }
    case 409:
        cli_error("dead letter %lld of %s is %s", id, svc->name, *error ? error : "still rejected");
        return CLI_EXIT_FAIL;
    case 404:
        cli_error("%s has no open dead letter %lld: see `omsctl dlq list --service %s --all`",
                  svc->name, id, svc->name);
        return CLI_EXIT_FAIL;
    case 401:
        cli_error("OMS_ADMIN_TOKEN is missing or wrong: %s refused it (run `. .oms/env`)",
                  svc->name);
        return CLI_EXIT_FAIL;
    default:
        cli_error("%s answered HTTP %ld%s%s", svc->name, status, *error ? ": " : "", error);
        return CLI_EXIT_FAIL;
    }
}

static int dlq_retry(int argc, char **argv)
{
    static const struct option opts[] = {
        {"service", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const cli_service *svc = NULL;
    long long id = 0;
    int opt;

    while ((opt = cli_getopt(argc, argv, "s:h", opts, "dlq retry")) != -1) {
        if (opt == 'h') {
            print_help(stdout);
            return CLI_EXIT_OK;
        }
        if (opt != 's' || (svc = service_arg("dlq retry", optarg)) == NULL)
            return CLI_EXIT_USAGE;
    }
    if (optind >= argc)
        return cli_usage_error("dlq retry", "which dead letter? give its ID (`omsctl dlq list`)");
    if (optind + 1 < argc)
        return cli_usage_error("dlq retry", "one ID at a time, got \"%s\" too", argv[optind + 1]);
    if (cli_parse_int("dlq retry", "ID", argv[optind], 1, INT64_MAX, &id) != OMS_OK)
        return CLI_EXIT_USAGE;
    if (svc == NULL)
        return cli_usage_error("dlq retry",
                               "which service holds dead letter %lld? add "
                               "--service S (services: %s)",
                               id, cli_service_names());
    const char *token = config_str("OMS_ADMIN_TOKEN", NULL);
    if (token == NULL) {
        cli_error("OMS_ADMIN_TOKEN is not set: retry needs the admin token (run `. .oms/env`)");
        return CLI_EXIT_FAIL;
    }
    char path[64], full[URL_LEN], err[CLI_HTTP_ERR_LEN];
    long status = 0;
    json_t *body = NULL;
    snprintf(path, sizeof path, "/dead-letters/%lld/retry", id);
    cli_service_endpoint(svc, path, full, sizeof full);
    if (cli_http("POST", full, token, RETRY_TIMEOUT_MS, &status, &body, err) != OMS_OK) {
        cli_service_unreachable(svc, err);
        return CLI_EXIT_FAIL;
    }
    int rc = report_retry(svc, id, status, body);
    json_decref(body);
    return rc;
}

int cmd_dlq(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "list") == 0)
        return dlq_list(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "retry") == 0)
        return dlq_retry(argc - 1, argv + 1);
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        print_help(stdout);
        return CLI_EXIT_OK;
    }
    if (argc < 2)
        return cli_usage_error("dlq", "which subcommand? (dlq list, dlq retry ID)");
    return cli_usage_error("dlq", "unknown subcommand \"%s\" (dlq list, dlq retry ID)", argv[1]);
}
