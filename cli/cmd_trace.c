/*
 * cmd_trace.c - `omsctl trace ORDER_ID [--json]`: one order's journey across
 * the services, from the streams (trace.c), one line per event.
 */
#include "cli.h"

#include "trace.h"

#include <string.h>

#define CMD "trace"

static void print_help(FILE *out)
{
    fputs("usage: omsctl trace ORDER_ID [--json]\n"
          "\n"
          "Prints every event of one order as the streams hold it (ORDERS, STOCK,\n"
          "PAYMENTS, REFUNDS, IMPORTS), in causal order (each event after the one its\n"
          "causation id names), one line each: time, milliseconds since order.created,\n"
          "subject, producer and the fields that matter (lines, amount, reason,\n"
          "gateway reference). It reads the streams, not the services' databases: it\n"
          "shows what integrations see. Notifications are not events: they come from\n"
          "notify's history (OMS_NOTIFY_URL), each after the event it told of.\n"
          "\n"
          "  --json       the trace as one JSON object, each event decoded in full\n"
          "  -h, --help   this help\n"
          "\n"
          "Exit status: 0 the order was found, 1 it was not (or NATS failed), 2 usage\n"
          "error.\n",
          out);
}

static void print_since(const json_t *e, char *out, size_t out_len)
{
    const json_t *since = json_object_get(e, "since_created_ms");
    if (json_is_integer(since))
        snprintf(out, out_len, "%+lld ms", (long long)json_integer_value(since));
    else
        snprintf(out, out_len, "-");
}

static oms_status print_lines(const json_t *trace)
{
    static const char *const head[] = {"TIME", "SINCE CREATED", "SUBJECT", "PRODUCER", "DETAILS"};
    cli_table *t = cli_table_create(5, head, 1u << 1);
    const json_t *events = json_object_get(trace, "events");
    size_t i;
    json_t *e;
    if (t == NULL)
        return OMS_ENOMEM;
    json_array_foreach(events, i, e)
    {
        char when[64], since[32];
        cli_format_time_ms((int64_t)json_integer_value(json_object_get(e, "time_ms")), when,
                           sizeof when);
        print_since(e, since, sizeof since);
        const char *cells[] = {when, since, json_string_value(json_object_get(e, "subject")),
                               json_string_value(json_object_get(e, "producer")),
                               json_string_value(json_object_get(e, "summary"))};
        cli_table_add(t, cells);
    }
    if (json_array_size(events) > 0)
        cli_table_print(t, stdout);
    cli_table_destroy(t);
    return OMS_OK;
}

int cmd_trace(int argc, char **argv)
{
    bool json = false;
    const char *order_id = NULL;
    js_conn *c = NULL;
    json_t *trace = NULL;
    char err[TRACE_ERR_LEN];
    int rc = cli_parse_show(argc, argv, CMD, print_help, "ORDER_ID", &json, &order_id);
    if (rc != CLI_EXIT_OK)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if (order_id == NULL || *order_id == '\0')
        return cli_usage_error(CMD, "which order? (omsctl trace ORDER_ID)");
    rc = CLI_EXIT_FAIL;
    if (cli_connect(&c, CLI_CONNECT_WAIT_MS) != OMS_OK)
        goto out;
    if (trace_collect(c, order_id, &trace, err) != OMS_OK) {
        cli_error("%s (NATS at %s)", err[0] ? err : "out of memory", cli_nats_url());
        goto out;
    }
    bool found = json_is_true(json_object_get(trace, "found"));
    const char *note = json_string_value(json_object_get(trace, "note"));
    if (json) {
        rc = cli_print_json(json_incref(trace)) == OMS_OK && found ? CLI_EXIT_OK : CLI_EXIT_FAIL;
        goto out;
    }
    print_lines(trace);
    if (note != NULL)
        cli_error("%s", note);
    const char *notify_note = json_string_value(json_object_get(trace, "notifications_note"));
    if (found && notify_note != NULL)
        cli_error("%s", notify_note);
    rc = found ? CLI_EXIT_OK : CLI_EXIT_FAIL;
out:
    json_decref(trace);
    js_conn_destroy(c);
    return rc;
}
