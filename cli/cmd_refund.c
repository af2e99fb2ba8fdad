/*
 * cmd_refund.c - `omsctl refund ORDER_ID [AMOUNT]`: asks for a refund by
 * publishing refund.requested to JetStream (Nats-Msg-Id = its event id,
 * like `stock load`), then waits a few seconds for the refund service's
 * outcome (GET /refunds?key=) and prints it; and `omsctl refund status`, the
 * refunds of an order or one request's outcome.
 *
 * The idempotency key names the request: running the same command again
 * with the same --key can never refund twice. Without --key a key is made
 * and printed first, so a person who lost the answer can still ask for it.
 */
#include "cli.h"
#include "order_csv.h"
#include "utf8.h"

#include "money.h"
#include "oms_events.pb-c.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#define CMD "refund"
#define CMD_STATUS "refund status"
#define SUBJECT "refund.requested"
#define EVENT_TYPE "oms.v1.RefundRequested"
#define AMOUNT_MAX_CENTS 100000000000000LL /* the largest order total */
#define KEY_MAX 128
#define REASON_MAX 512
#define LINES_MAX 100
#define HTTP_TIMEOUT_MS 5000L
#define ACK_WAIT_MS 10000
#define POLL_MS 200
#define MONEY_LEN 64

typedef struct refund_args {
    const char *order_id;
    int64_t amount_cents; /* 0: the full remaining amount */
    const char *key;      /* NULL: make one */
    const char *reason;
    bool restock;
    Oms__V1__RefundLine lines[LINES_MAX];
    char skus[LINES_MAX][ORDER_FIELD_MAX + 1];
    size_t n_lines;
    long long wait_s;
    bool json;
} refund_args;

static void print_help(FILE *out)
{
    fputs("usage: omsctl refund ORDER_ID [AMOUNT] [--key KEY] [--reason TEXT] [--restock]\n"
          "                      [--line SKU:QTY ...] [--wait S] [--json]\n"
          "       omsctl refund status (--order ORDER_ID | --key KEY) [--json]\n"
          "\n"
          "Asks the refund service for money back on a paid order: AMOUNT is a decimal\n"
          "such as 25.00; without it (or 0) the whole amount still refundable. The\n"
          "request is published as refund.requested; then omsctl waits up to --wait\n"
          "seconds (default 10, 0 not at all) for the outcome and prints it.\n"
          "\n"
          "  --key KEY       idempotency key (1-128 printable characters): the same key\n"
          "                  again never refunds twice; without it one is made and printed\n"
          "  --reason TEXT   why the customer gets money back (kept with the refund)\n"
          "  --restock       put the goods back on hand: a refund of everything that is\n"
          "                  left restocks every line of the order; a partial one only the\n"
          "                  lines named with --line\n"
          "  --line SKU:QTY  a line to restock (repeatable; needs --restock)\n"
          "  --json          print the refund service's JSON\n"
          "\n"
          "`refund status --order ID` lists an order's refunds; `--key KEY` shows one\n"
          "request's outcome (GET /refunds on OMS_REFUND_URL).\n"
          "\n"
          "Exit status: 0 processed (or requested, with --wait 0), 1 rejected or\n"
          "failure, 2 usage error, 3 requested but still pending when the wait ended\n"
          "(the request stays queued: `refund status --key KEY` shows the outcome).\n",
          out);
}

/* ---- arguments --------------------------------------------------------- */

static int parse_line(refund_args *a, const char *text)
{
    const char *colon = strrchr(text, ':');
    long long qty = 0;
    if (a->n_lines == LINES_MAX)
        return cli_usage_error(CMD, "at most %d --line options", LINES_MAX);
    if (colon == NULL || colon == text || (size_t)(colon - text) > ORDER_FIELD_MAX)
        return cli_usage_error(CMD, "--line \"%s\" must be SKU:QTY, such as SKU-7:2", text);
    if (cli_parse_int(CMD, "--line quantity", colon + 1, 1, 100000, &qty) != OMS_OK)
        return CLI_EXIT_USAGE;
    Oms__V1__RefundLine *l = &a->lines[a->n_lines];
    snprintf(a->skus[a->n_lines], sizeof a->skus[0], "%.*s", (int)(colon - text), text);
    oms__v1__refund_line__init(l);
    l->sku = a->skus[a->n_lines++];
    l->qty = (int32_t)qty;
    return CLI_EXIT_OK;
}

static int check_args(refund_args *a, int argc, char **argv)
{
    if (optind >= argc)
        return cli_usage_error(CMD, "which order? give its ORDER_ID");
    a->order_id = argv[optind++];
    if (*a->order_id == '\0' || strlen(a->order_id) > ORDER_FIELD_MAX)
        return cli_usage_error(CMD, "an order id has 1 to %d bytes", ORDER_FIELD_MAX);
    if (optind < argc && money_parse(argv[optind++], AMOUNT_MAX_CENTS, &a->amount_cents) != OMS_OK)
        return cli_usage_error(CMD,
                               "AMOUNT \"%s\" must be a decimal with at most 2 decimals, "
                               "such as 25.00",
                               argv[optind - 1]);
    if (optind < argc)
        return cli_usage_error(CMD, "unexpected argument \"%s\"", argv[optind]);
    if (a->key != NULL) {
        size_t len = strlen(a->key);
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)a->key[i] < 0x20 || (unsigned char)a->key[i] > 0x7e)
                len = 0;
        if (len == 0 || len > KEY_MAX)
            return cli_usage_error(CMD, "--key must be 1 to %d printable ASCII characters",
                                   KEY_MAX);
    }
    if (strlen(a->reason) > REASON_MAX || !utf8_valid(a->reason))
        return cli_usage_error(CMD, "--reason must be UTF-8 text of at most %d bytes", REASON_MAX);
    if (a->n_lines > 0 && !a->restock)
        return cli_usage_error(CMD, "--line names goods to put back on hand: add --restock");
    return CLI_EXIT_OK;
}

static int parse_args(int argc, char **argv, refund_args *a)
{
    static const struct option opts[] = {
        {"key", required_argument, NULL, 'k'},  {"reason", required_argument, NULL, 'r'},
        {"restock", no_argument, NULL, 's'},    {"line", required_argument, NULL, 'l'},
        {"wait", required_argument, NULL, 'w'}, {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
    };
    int opt, rc;
    a->reason = "";
    a->wait_s = 10;
    while ((opt = cli_getopt(argc, argv, "h", opts, CMD)) != -1) {
        switch (opt) {
        case 'h': print_help(stdout); return -1;
        case 'k': a->key = optarg; break;
        case 'r': a->reason = optarg; break;
        case 's': a->restock = true; break;
        case 'l':
            if ((rc = parse_line(a, optarg)) != CLI_EXIT_OK)
                return rc;
            break;
        case 'w':
            if (cli_parse_int(CMD, "--wait", optarg, 0, 3600, &a->wait_s) != OMS_OK)
                return CLI_EXIT_USAGE;
            break;
        case 'j': a->json = true; break;
        default: return CLI_EXIT_USAGE;
        }
    }
    return check_args(a, argc, argv);
}

/* ---- publishing -------------------------------------------------------- */

static oms_status publish(js_conn *c, refund_args *a, const char *key)
{
    Oms__V1__RefundRequested ev = OMS__V1__REFUND_REQUESTED__INIT;
    Oms__V1__EventMeta meta = OMS__V1__EVENT_META__INIT;
    Oms__V1__RefundLine *ptrs[LINES_MAX];
    char event_id[37];
    natsMsg *msg = NULL;
    natsStatus st = NATS_NO_MEMORY;
    oms_uuid4(event_id);
    meta.event_id = event_id;
    meta.occurred_at_ms = oms_now_ms();
    meta.correlation_id = (char *)a->order_id;
    meta.producer = "omsctl";
    for (size_t i = 0; i < a->n_lines; i++)
        ptrs[i] = &a->lines[i];
    ev.meta = &meta;
    ev.idempotency_key = (char *)key;
    ev.order_id = (char *)a->order_id;
    ev.amount_cents = a->amount_cents;
    ev.reason = (char *)a->reason;
    ev.restock = a->restock;
    ev.lines = ptrs;
    ev.n_lines = a->n_lines;
    ev.requested_by = "omsctl";
    size_t len = oms__v1__refund_requested__get_packed_size(&ev);
    uint8_t *buf = malloc(len ? len : 1);
    if (buf != NULL) {
        oms__v1__refund_requested__pack(&ev, buf);
        if ((st = natsMsg_Create(&msg, SUBJECT, NULL, (const char *)buf, (int)len)) == NATS_OK &&
            (st = natsMsgHeader_Set(msg, JS_HDR_TYPE, EVENT_TYPE)) == NATS_OK)
            st = cli_publish_async(c, &msg, event_id, ACK_WAIT_MS);
    }
    natsMsg_Destroy(msg);
    free(buf);
    if (st != NATS_OK) {
        cli_error("cannot publish the refund request to %s: %s", SUBJECT, natsStatus_GetText(st));
        return OMS_ENATS;
    }
    if (js_publish_wait(c, ACK_WAIT_MS) != OMS_OK) {
        cli_error("JetStream did not acknowledge the refund request within %d s; run the "
                  "same command with --key %s again (it cannot refund twice)",
                  ACK_WAIT_MS / 1000, key);
        return OMS_ENATS;
    }
    return OMS_OK;
}

/* ---- reading outcomes -------------------------------------------------- */

/* GETs /refunds?<query>; *body on 200. *missing is set on a 404 from the route. */
static oms_status fetch(const char *param, const char *value, json_t **body, bool *missing,
                        bool quiet)
{
    const cli_service *svc = cli_service_find("refund");
    char escaped[3 * ORDER_FIELD_MAX + 1], path[sizeof escaped + 32], url[CLI_URL_LEN];
    char err[CLI_HTTP_ERR_LEN];
    long status = 0;
    json_t *json = NULL;
    *missing = false;
    if (cli_url_escape(value, escaped, sizeof escaped) != OMS_OK)
        return OMS_EINVAL;
    snprintf(path, sizeof path, "/refunds?%s=%s", param, escaped);
    cli_service_endpoint(svc, path, url, sizeof url);
    if (cli_http("GET", url, NULL, HTTP_TIMEOUT_MS, &status, &json, err) != OMS_OK) {
        if (!quiet)
            cli_service_unreachable(svc, err);
        return OMS_EIO;
    }
    if (status == 404 && !cli_http_no_route(status, json)) {
        *missing = true;
        json_decref(json);
        return OMS_ENOTFOUND;
    }
    if (status != 200 || !json_is_object(json)) {
        cli_error("refund answered HTTP %ld to GET %s%s%s", status, url,
                  *cli_json_error(json) ? ": " : "", cli_json_error(json));
        json_decref(json);
        return OMS_EIO;
    }
    *body = json;
    return OMS_OK;
}

static const char *str_at(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static void money_at(const json_t *o, const char *k, const char *currency, char *out, size_t len)
{
    money_format_currency(json_integer_value(json_object_get(o, k)), currency, out, len);
}

static void print_one(const json_t *r)
{
    char amount[MONEY_LEN], total[MONEY_LEN];
    const char *state = str_at(r, "state"), *currency = str_at(r, "currency");
    money_at(r, "amount_cents", currency, amount, sizeof amount);
    money_at(r, "refunded_total_cents", currency, total, sizeof total);
    printf("refund %s on %s: %s\n", str_at(r, "idempotency_key"), str_at(r, "order_id"), state);
    if (strcmp(state, "processed") == 0)
        printf("  refunded %s (%s refunded on the order in total%s); gateway reference %s\n",
               amount, total, json_is_true(json_object_get(r, "full")) ? ", in full" : "",
               *str_at(r, "gateway_ref") ? str_at(r, "gateway_ref") : "-");
    else if (strcmp(state, "rejected") == 0)
        printf("  rejected: %s\n", str_at(r, "reject_reason"));
    else
        printf("  %s is being sent to the payment gateway (attempts so far: %lld)\n", amount,
               (long long)json_integer_value(json_object_get(r, "attempts")));
}

static int print_order(const json_t *o)
{
    static const char *const headers[] = {"KEY",        "STATE", "AMOUNT", "REFUNDED TOTAL",
                                          "DECIDED AT", "REASON"};
    const json_t *refunds = json_object_get(o, "refunds");
    const char *currency = str_at(o, "currency");
    char paid[MONEY_LEN], refunded[MONEY_LEN], pending[MONEY_LEN];
    if (json_is_true(json_object_get(o, "paid"))) {
        money_at(o, "paid_total_cents", currency, paid, sizeof paid);
        money_at(o, "refunded_cents", currency, refunded, sizeof refunded);
        money_at(o, "pending_cents", currency, pending, sizeof pending);
        printf("order %s: paid %s, refunded %s, being refunded %s\n", str_at(o, "order_id"), paid,
               refunded, pending);
    } else {
        printf("order %s: not a paid order as far as refunds know\n", str_at(o, "order_id"));
    }
    if (json_array_size(refunds) == 0) {
        printf("no refund requests\n");
        return CLI_EXIT_OK;
    }
    cli_table *t = cli_table_create(6, headers, 0x0c);
    size_t i;
    const json_t *r;
    json_array_foreach(refunds, i, r)
    {
        char amount[MONEY_LEN], total[MONEY_LEN];
        const char *state = str_at(r, "state");
        bool rejected = strcmp(state, "rejected") == 0;
        money_format(json_integer_value(
                         json_object_get(r, rejected ? "requested_cents" : "amount_cents")),
                     amount, sizeof amount);
        money_format(json_integer_value(json_object_get(r, "refunded_total_cents")), total,
                     sizeof total);
        const char *cells[] = {str_at(r, "idempotency_key"),
                               state,
                               amount,
                               rejected ? "-" : total,
                               *str_at(r, "decided_at") ? str_at(r, "decided_at") : "-",
                               rejected ? str_at(r, "reject_reason") : str_at(r, "reason")};
        if (t == NULL || cli_table_add(t, cells) != OMS_OK) {
            cli_table_destroy(t);
            return CLI_EXIT_FAIL;
        }
    }
    cli_table_print(t, stdout);
    cli_table_destroy(t);
    return CLI_EXIT_OK;
}

static int exit_for(const json_t *r)
{
    return strcmp(str_at(r, "state"), "rejected") == 0 ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

/* Polls for the key's outcome for up to wait_s seconds. A refund service
 * that does not answer is asked again until the deadline: the request is
 * already stored in the stream and is decided once the service is back. */
static int wait_outcome(const refund_args *a, const char *key)
{
    int64_t deadline = oms_mono_ms() + a->wait_s * 1000;
    json_t *r = NULL;
    bool missing = false, answered = false;
    while (!cli_interrupted) {
        oms_status s = fetch("key", key, &r, &missing, true);
        answered = answered || s == OMS_OK || missing;
        if (s == OMS_OK && strcmp(str_at(r, "state"), "pending") != 0)
            break;
        json_decref(r);
        r = NULL;
        if (oms_mono_ms() >= deadline)
            break;
        oms_sleep_ms(POLL_MS, NULL);
    }
    if (r == NULL) {
        printf("requested; still pending after %llds%s: `omsctl refund status --key %s` "
               "shows the outcome\n",
               a->wait_s, answered ? "" : " (the refund service is not answering)", key);
        return CLI_EXIT_PENDING;
    }
    int rc = exit_for(r);
    if (a->json)
        cli_print_json(r);
    else {
        print_one(r);
        json_decref(r);
    }
    return rc;
}

static int refund_request(int argc, char **argv)
{
    refund_args *a = calloc(1, sizeof *a);
    js_conn *c = NULL;
    char made[37];
    int rc = a ? parse_args(argc, argv, a) : CLI_EXIT_FAIL;
    if (rc != CLI_EXIT_OK) {
        free(a);
        return rc < 0 ? CLI_EXIT_OK : rc;
    }
    if (a->key == NULL) {
        oms_uuid4(made);
        a->key = made;
    }
    /* First, so a person always has the key to ask about. */
    fprintf(a->json ? stderr : stdout, "idempotency key: %s\n", a->key);
    fflush(stdout);
    rc = CLI_EXIT_FAIL;
    if (cli_connect(&c, CLI_CONNECT_WAIT_MS) == OMS_OK &&
        cli_require_stream(c, "REFUNDS") == OMS_OK && publish(c, a, a->key) == OMS_OK) {
        cli_catch_signals();
        rc = a->wait_s > 0 ? wait_outcome(a, a->key) : CLI_EXIT_OK;
        if (a->wait_s == 0)
            printf("requested\n");
    }
    js_conn_destroy(c);
    free(a);
    return rc;
}

/* ---- status ------------------------------------------------------------ */

static int refund_status(int argc, char **argv)
{
    static const struct option opts[] = {
        {"order", required_argument, NULL, 'o'},
        {"key", required_argument, NULL, 'k'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *order_id = NULL, *key = NULL;
    bool json = false, missing = false;
    json_t *body = NULL;
    int opt;
    while ((opt = cli_getopt(argc, argv, "h", opts, CMD_STATUS)) != -1) {
        if (opt == 'h') {
            print_help(stdout);
            return CLI_EXIT_OK;
        }
        if (opt == '?')
            return CLI_EXIT_USAGE;
        if (opt == 'o')
            order_id = optarg;
        else if (opt == 'k')
            key = optarg;
        else
            json = true;
    }
    if ((order_id == NULL) == (key == NULL))
        return cli_usage_error(CMD_STATUS, "give exactly one of --order ORDER_ID or --key KEY");
    if (optind < argc)
        return cli_usage_error(CMD_STATUS, "unexpected argument \"%s\"", argv[optind]);
    if (strlen(order_id ? order_id : key) > ORDER_FIELD_MAX || *(order_id ? order_id : key) == 0)
        return cli_usage_error(CMD_STATUS, "an order id or key has 1 to %d bytes", ORDER_FIELD_MAX);
    oms_status s = fetch(order_id ? "order_id" : "key", order_id ? order_id : key, &body, &missing,
                         false);
    if (missing) {
        cli_error("no refund request with key %s has been decided (a request is decided "
                  "within seconds; check the key)",
                  key);
        return CLI_EXIT_FAIL;
    }
    if (s != OMS_OK)
        return CLI_EXIT_FAIL;
    if (json)
        return cli_print_json(body) == OMS_OK ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    int rc = CLI_EXIT_OK;
    if (key != NULL)
        print_one(body);
    else
        rc = print_order(body);
    json_decref(body);
    return rc;
}

int cmd_refund(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "status") == 0)
        return refund_status(argc - 1, argv + 1);
    return refund_request(argc, argv);
}
