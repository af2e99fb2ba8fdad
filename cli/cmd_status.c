/*
 * cmd_status.c - `omsctl status`: the streams, their consumers and the
 * services on one screen.
 *
 * Everything is gathered into one JSON document first; the screen is a
 * rendering of it and --json prints it as is, so both always agree. A part
 * that cannot be reached (NATS, a service) is shown as such rather than
 * ending the command: status is what one runs when something is down.
 */
#include "cli.h"

#include <getopt.h>
#include <string.h>

#define CMD "status"
#define HTTP_TIMEOUT_MS 3000L
/* Dead letters counted per service; beyond it the count shows as "N+". */
#define DLQ_COUNT_LIMIT 1000

static const char *const STREAMS[] = {
    "INGEST", "ORDERS", "STOCK", "PAYMENTS", "REFUNDS", "IMPORTS", "CATALOG",
};

static void print_help(FILE *out)
{
    fputs("usage: omsctl status [--json]\n"
          "\n"
          "Shows on one screen:\n"
          "  - each stream of the contract (INGEST, ORDERS, STOCK, PAYMENTS, REFUNDS,\n"
          "    IMPORTS, CATALOG): messages, bytes, consumers;\n"
          "  - each consumer: messages pending, awaiting ack, redelivered;\n"
          "  - each service (OMS_<NAME>_URL): ready / not ready / down, and its open\n"
          "    dead letters.\n"
          "\n"
          "  --json       print it all as one JSON object\n"
          "  -h, --help   this help\n"
          "\n"
          "Exit status: 0 NATS reached and every service ready, 1 NATS could not be\n"
          "reached or a service is down or not ready (everything is still shown),\n"
          "2 usage error.\n",
          out);
}

/* ---- gathering --------------------------------------------------------- */

static json_t *stream_json(js_conn *c, const char *name)
{
    jsStreamInfo *si = NULL;
    jsErrCode code = 0;
    natsStatus st = js_GetStreamInfo(&si, js_ctx(c), name, NULL, &code);
    json_t *j;
    if (st == NATS_OK)
        j = json_pack("{s:s,s:s,s:I,s:I,s:I}", "name", name, "state", "ok", "messages",
                      (json_int_t)si->State.Msgs, "bytes", (json_int_t)si->State.Bytes, "consumers",
                      (json_int_t)si->State.Consumers);
    else if (code == JSStreamNotFoundErr || st == NATS_NOT_FOUND)
        j = json_pack("{s:s,s:s}", "name", name, "state", "missing");
    else
        j = json_pack("{s:s,s:s,s:s}", "name", name, "state", "error", "error",
                      natsStatus_GetText(st));
    jsStreamInfo_Destroy(si);
    return j;
}

static json_t *consumer_json(const jsConsumerInfo *ci)
{
    return json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I}", "stream", ci->Stream, "name", ci->Name,
                     "num_pending", (json_int_t)ci->NumPending, "ack_pending",
                     (json_int_t)ci->NumAckPending, "redelivered", (json_int_t)ci->NumRedelivered,
                     "waiting", (json_int_t)ci->NumWaiting, "delivered",
                     (json_int_t)ci->Delivered.Consumer, "acked",
                     (json_int_t)ci->AckFloor.Consumer);
}

/* Appends the consumers of stream to arr. */
static void add_consumers(js_conn *c, const char *stream, json_t *arr)
{
    jsConsumerInfoList *list = NULL;
    jsErrCode code = 0;
    if (js_Consumers(&list, js_ctx(c), stream, NULL, &code) != NATS_OK)
        return; /* the stream row already says why */
    for (int i = 0; i < list->Count; i++)
        json_array_append_new(arr, consumer_json(list->List[i]));
    jsConsumerInfoList_Destroy(list);
}

static json_t *nats_json(js_conn *c)
{
    json_t *streams = json_array(), *consumers = json_array();
    for (size_t i = 0; c != NULL && i < sizeof STREAMS / sizeof STREAMS[0]; i++) {
        json_t *s = stream_json(c, STREAMS[i]);
        bool ok = strcmp(json_string_value(json_object_get(s, "state")), "ok") == 0;
        json_array_append_new(streams, s);
        if (ok)
            add_consumers(c, STREAMS[i], consumers);
    }
    return json_pack("{s:s,s:b,s:o,s:o}", "url", cli_nats_url(), "connected", c != NULL, "streams",
                     streams, "consumers", consumers);
}

/* Open dead letters of a service that answered, or null. */
static json_t *dead_letter_count(const cli_service *svc)
{
    char path[64], full[1024], err[CLI_HTTP_ERR_LEN];
    long status = 0;
    json_t *body = NULL;
    snprintf(path, sizeof path, "/dead-letters?limit=%d", DLQ_COUNT_LIMIT);
    cli_service_endpoint(svc, path, full, sizeof full);
    if (cli_http("GET", full, NULL, HTTP_TIMEOUT_MS, &status, &body, err) != OMS_OK)
        return json_null();
    json_t *list = json_object_get(body, "dead_letters");
    json_t *n = status == 200 && json_is_array(list)
                    ? json_integer((json_int_t)json_array_size(list))
                    : json_null();
    json_decref(body);
    return n;
}

static json_t *service_json(const cli_service *svc)
{
    const char *url = cli_service_url(svc);
    char full[1024], err[CLI_HTTP_ERR_LEN];
    long status = 0;
    json_t *body = NULL;
    cli_service_endpoint(svc, "/readyz", full, sizeof full);
    if (cli_http("GET", full, NULL, HTTP_TIMEOUT_MS, &status, &body, err) != OMS_OK)
        return json_pack("{s:s,s:s,s:s,s:n,s:s}", "name", svc->name, "url", url, "state", "down",
                         "dead_letters", "error", err);
    json_decref(body);
    return json_pack("{s:s,s:s,s:s,s:o}", "name", svc->name, "url", url, "state",
                     status == 200 ? "ready" : "not ready", "dead_letters", dead_letter_count(svc));
}

json_t *cli_status_gather(js_conn *c)
{
    json_t *services = json_array();
    for (size_t i = 0; i < CLI_N_SERVICES; i++)
        json_array_append_new(services, service_json(&CLI_SERVICES[i]));
    return json_pack("{s:o,s:o}", "nats", nats_json(c), "services", services);
}

/* True when every service answered /readyz with 200: what `status` exits on,
 * so scripts and cron checks can act on it without parsing the screen. */
static bool all_ready(const json_t *status)
{
    const json_t *services = json_object_get(status, "services");
    size_t i;
    const json_t *svc;
    json_array_foreach(services, i, svc)
    {
        if (strcmp(json_string_value(json_object_get(svc, "state")), "ready") != 0)
            return false;
    }
    return json_array_size(services) == CLI_N_SERVICES;
}

/* ---- rendering --------------------------------------------------------- */

static void print_streams(const json_t *streams)
{
    static const char *const head[] = {"STREAM", "STATE", "MESSAGES", "BYTES", "CONSUMERS"};
    cli_table *t = cli_table_create(5, head, 0x1c);
    size_t i;
    json_t *s;
    if (t == NULL)
        return;
    json_array_foreach(streams, i, s)
    {
        char msgs[32], bytes[32] = "-", consumers[32];
        json_t *b = json_object_get(s, "bytes");
        if (json_is_integer(b))
            cli_format_bytes((uint64_t)json_integer_value(b), bytes, sizeof bytes);
        const char *row[] = {json_string_value(json_object_get(s, "name")),
                             json_string_value(json_object_get(s, "state")),
                             cli_json_text(s, "messages", msgs, sizeof msgs), bytes,
                             cli_json_text(s, "consumers", consumers, sizeof consumers)};
        cli_table_add(t, row);
    }
    cli_table_print(t, stdout);
    cli_table_destroy(t);
}

static void print_consumers(const json_t *consumers)
{
    static const char *const head[] = {"STREAM", "CONSUMER", "PENDING", "ACK PENDING",
                                       "REDELIVERED"};
    cli_table *t = cli_table_create(5, head, 0x1c);
    size_t i;
    json_t *c;
    if (t == NULL)
        return;
    json_array_foreach(consumers, i, c)
    {
        char pending[32], ack[32], redelivered[32];
        const char *row[] = {json_string_value(json_object_get(c, "stream")),
                             json_string_value(json_object_get(c, "name")),
                             cli_json_text(c, "num_pending", pending, sizeof pending),
                             cli_json_text(c, "ack_pending", ack, sizeof ack),
                             cli_json_text(c, "redelivered", redelivered, sizeof redelivered)};
        cli_table_add(t, row);
    }
    if (json_array_size(consumers) == 0)
        puts("(no consumers)");
    else
        cli_table_print(t, stdout);
    cli_table_destroy(t);
}

static void print_services(const json_t *services)
{
    static const char *const head[] = {"SERVICE", "STATE", "DEAD LETTERS", "URL"};
    cli_table *t = cli_table_create(4, head, 0x4);
    size_t i;
    json_t *s;
    if (t == NULL)
        return;
    json_array_foreach(services, i, s)
    {
        char dead[32];
        json_t *n = json_object_get(s, "dead_letters");
        if (json_is_integer(n) && json_integer_value(n) >= DLQ_COUNT_LIMIT)
            snprintf(dead, sizeof dead, "%d+", DLQ_COUNT_LIMIT);
        else
            cli_json_text(s, "dead_letters", dead, sizeof dead);
        const char *row[] = {json_string_value(json_object_get(s, "name")),
                             json_string_value(json_object_get(s, "state")), dead,
                             json_string_value(json_object_get(s, "url"))};
        cli_table_add(t, row);
    }
    cli_table_print(t, stdout);
    cli_table_destroy(t);
}

static void print_screen(const json_t *status)
{
    const json_t *nats = json_object_get(status, "nats");
    bool connected = json_is_true(json_object_get(nats, "connected"));
    printf("NATS %s: %s\n\n", json_string_value(json_object_get(nats, "url")),
           connected ? "connected" : "unreachable");
    if (connected) {
        print_streams(json_object_get(nats, "streams"));
        putchar('\n');
        print_consumers(json_object_get(nats, "consumers"));
        putchar('\n');
    }
    print_services(json_object_get(status, "services"));
}

int cmd_status(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool json = false;
    js_conn *c = NULL;
    int opt;

    while ((opt = cli_getopt(argc, argv, "h", opts, CMD)) != -1) {
        if (opt == 'h') {
            print_help(stdout);
            return CLI_EXIT_OK;
        }
        if (opt != 'j')
            return CLI_EXIT_USAGE;
        json = true;
    }
    if (optind < argc)
        return cli_usage_error(CMD, "status takes no arguments, got \"%s\"", argv[optind]);
    /* An unreachable NATS is reported by cli_connect and shown as such. */
    oms_status connected = cli_connect(&c, CLI_CONNECT_WAIT_MS);
    json_t *status = cli_status_gather(c);
    js_conn_destroy(c);
    if (status == NULL) {
        cli_error("out of memory");
        return CLI_EXIT_FAIL;
    }
    bool ready = all_ready(status);
    if (json) {
        if (cli_print_json(status) != OMS_OK)
            return CLI_EXIT_FAIL;
    } else {
        print_screen(status);
        json_decref(status);
    }
    return connected == OMS_OK && ready ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}
