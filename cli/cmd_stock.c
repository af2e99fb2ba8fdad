/*
 * cmd_stock.c - `omsctl stock load FILE`: products and stock levels from a
 * CSV (sku,name,on_hand[,price]) as catalog.product events; and the
 * dispatch of `stock show` (stock_show.c).
 *
 * All or nothing: the whole file is validated first and a single bad row
 * means nothing is published, because a half-loaded catalog is harder to
 * reason about than none. The file is then read a second time to publish,
 * so memory holds the set of SKUs (to catch duplicates), not the rows.
 */
#include "cli.h"
#include "utf8.h"

#include "money.h"
#include "oms_events.pb-c.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CMD "stock load"
#define SUBJECT "catalog.product"
#define EVENT_TYPE "oms.v1.ProductUpserted"
#define PRODUCER "omsctl"
#define TEXT_MAX_BYTES 256
#define ON_HAND_MAX 1000000000LL
#define ERR_LEN 400
#define ACK_WAIT_MS 60000
#define STALL_WAIT_MS 60000

enum { COL_SKU, COL_NAME, COL_ON_HAND, COL_PRICE, COL_COUNT };
static const char *const COLUMNS[COL_COUNT] = {"sku", "name", "on_hand", "price"};

/* Where each column is (-1 when absent; only price may be). */
typedef struct stock_header {
    int index[COL_COUNT];
    size_t ncols;
} stock_header;

typedef struct stock_row {
    const char *sku, *name; /* borrowed from the record */
    int64_t on_hand;
    int64_t price_cents;
} stock_row;

/* State of one pass over the file. */
typedef struct stock_pass {
    const char *path;
    bool publish; /* second pass */
    js_conn *c;
    stock_header header;
    int64_t record; /* header = 1 */
    int64_t bad_rows, products;
    json_t *skus;      /* sku -> first row, first pass only */
    oms_status status; /* stops the pass when not OMS_OK */
    bool stop;
} stock_pass;

static void print_help(FILE *out)
{
    fputs("usage: omsctl stock load FILE\n"
          "\n"
          "Publishes one catalog.product event per row of a CSV with the header\n"
          "  sku,name,on_hand[,price]\n"
          "(columns in any order; price is optional, a decimal like 12.99).\n"
          "Every row is checked first: if any is wrong, each problem is printed with\n"
          "its row, column and value, and nothing is published.\n"
          "\n"
          "  -h, --help   this help\n"
          "\n"
          "Exit status: 0 all products published and acknowledged, 1 failure, 2 usage.\n",
          out);
}

/* ---- validation -------------------------------------------------------- */

static oms_status header_parse(char *const *fields, size_t n, stock_header *h, char err[ERR_LEN])
{
    for (int c = 0; c < COL_COUNT; c++)
        h->index[c] = -1;
    h->ncols = n;
    for (size_t i = 0; i < n; i++) {
        int col = -1;
        for (int c = 0; c < COL_COUNT; c++)
            if (strcasecmp(fields[i], COLUMNS[c]) == 0)
                col = c;
        if (col < 0 || h->index[col] >= 0) {
            snprintf(err, ERR_LEN,
                     "header column \"%.60s\" is %s (expected sku,name,on_hand and "
                     "optionally price)",
                     fields[i], col < 0 ? "unknown" : "repeated");
            return OMS_EINVAL;
        }
        h->index[col] = (int)i;
    }
    for (int c = COL_SKU; c <= COL_ON_HAND; c++)
        if (h->index[c] < 0) {
            snprintf(err, ERR_LEN,
                     "header has no %s column (expected sku,name,on_hand and "
                     "optionally price)",
                     COLUMNS[c]);
            return OMS_EINVAL;
        }
    return OMS_OK;
}

static const char *field(const stock_header *h, char *const *fields, size_t n, int col)
{
    int i = h->index[col];
    return (i >= 0 && (size_t)i < n) ? fields[i] : "";
}

static oms_status text_ok(const char *name, const char *v, int64_t row, char err[ERR_LEN])
{
    if (*v == '\0')
        snprintf(err, ERR_LEN, "row %lld: %s is empty", (long long)row, name);
    else if (strlen(v) > TEXT_MAX_BYTES)
        snprintf(err, ERR_LEN, "row %lld: %s is longer than %d bytes", (long long)row, name,
                 TEXT_MAX_BYTES);
    else if (!utf8_valid(v))
        snprintf(err, ERR_LEN, "row %lld: %s is not valid UTF-8", (long long)row, name);
    else
        return OMS_OK;
    return OMS_EINVAL;
}

static oms_status parse_on_hand(const char *v, int64_t row, int64_t *out, char err[ERR_LEN])
{
    char *end = NULL;
    long long n = strtoll(v, &end, 10);
    /* Digits only: no sign, no spaces, no "1e3". */
    if (*v == '\0' || strspn(v, "0123456789") != strlen(v) || *end != '\0' || n > ON_HAND_MAX) {
        snprintf(err, ERR_LEN, "row %lld: on_hand \"%.40s\" must be an integer from 0 to %lld",
                 (long long)row, v, ON_HAND_MAX);
        return OMS_EINVAL;
    }
    *out = n;
    return OMS_OK;
}

/* Validates one data record into *out (strings borrowed from fields). */
static oms_status row_parse(const stock_header *h, char *const *fields, size_t n, int64_t row,
                            stock_row *out, char err[ERR_LEN])
{
    const char *price = field(h, fields, n, COL_PRICE);
    memset(out, 0, sizeof *out);
    out->sku = field(h, fields, n, COL_SKU);
    out->name = field(h, fields, n, COL_NAME);
    if (n > h->ncols) {
        snprintf(err, ERR_LEN, "row %lld has %zu fields but the header names %zu columns",
                 (long long)row, n, h->ncols);
        return OMS_EINVAL;
    }
    if (text_ok("sku", out->sku, row, err) != OMS_OK ||
        text_ok("name", out->name, row, err) != OMS_OK ||
        parse_on_hand(field(h, fields, n, COL_ON_HAND), row, &out->on_hand, err) != OMS_OK)
        return OMS_EINVAL;
    if (*price != '\0' && money_parse(price, MONEY_MAX_CENTS, &out->price_cents) != OMS_OK) {
        snprintf(err, ERR_LEN,
                 "row %lld: price \"%.40s\" must be an amount from 0 to "
                 "10000000.00 with at most 2 decimals",
                 (long long)row, price);
        return OMS_EINVAL;
    }
    return OMS_OK;
}

/* A SKU twice in one file would leave the catalog at whichever came last. */
static oms_status check_unique(stock_pass *p, const char *sku, char err[ERR_LEN])
{
    json_t *seen = json_object_get(p->skus, sku);
    if (seen != NULL) {
        snprintf(err, ERR_LEN, "row %lld: sku \"%.80s\" is already on row %lld",
                 (long long)p->record, sku, (long long)json_integer_value(seen));
        return OMS_EINVAL;
    }
    if (json_object_set_new(p->skus, sku, json_integer(p->record)) != 0)
        p->status = OMS_ENOMEM;
    return OMS_OK;
}

/* ---- publishing -------------------------------------------------------- */

static oms_status publish_row(stock_pass *p, const stock_row *r)
{
    Oms__V1__ProductUpserted ev = OMS__V1__PRODUCT_UPSERTED__INIT;
    Oms__V1__EventMeta meta = OMS__V1__EVENT_META__INIT;
    char event_id[37];
    natsMsg *msg = NULL;
    uint8_t *buf = NULL;
    natsStatus st = NATS_NO_MEMORY;

    oms_uuid4(event_id);
    meta.event_id = event_id;
    meta.occurred_at_ms = oms_now_ms();
    meta.correlation_id = (char *)r->sku;
    meta.producer = PRODUCER;
    ev.meta = &meta;
    ev.sku = (char *)r->sku;
    ev.name = (char *)r->name;
    ev.on_hand = r->on_hand;
    ev.price_cents = r->price_cents;
    size_t len = oms__v1__product_upserted__get_packed_size(&ev);
    if ((buf = malloc(len ? len : 1)) == NULL)
        goto out;
    oms__v1__product_upserted__pack(&ev, buf);
    if ((st = natsMsg_Create(&msg, SUBJECT, NULL, (const char *)buf, (int)len)) == NATS_OK &&
        (st = natsMsgHeader_Set(msg, JS_HDR_TYPE, EVENT_TYPE)) == NATS_OK)
        st = cli_publish_async(p->c, &msg, event_id, STALL_WAIT_MS);
out:
    natsMsg_Destroy(msg);
    free(buf);
    if (st != NATS_OK) {
        cli_error("cannot publish sku \"%s\" (row %lld of %s) to %s: %s", r->sku,
                  (long long)p->record, p->path, SUBJECT, natsStatus_GetText(st));
        return OMS_ENATS;
    }
    p->products++;
    return OMS_OK;
}

/* ---- the passes -------------------------------------------------------- */

static void on_header(stock_pass *p, char *const *fields, size_t n)
{
    char err[ERR_LEN];
    if (header_parse(fields, n, &p->header, err) != OMS_OK) {
        cli_error("%s: %s; nothing was published", p->path, err);
        p->status = OMS_EINVAL;
    }
}

/* First pass: reports every problem of the row, the duplicate SKU too. */
static void check_row(stock_pass *p, char *const *fields, size_t n)
{
    char err[ERR_LEN];
    stock_row r;
    bool bad = false;
    if (row_parse(&p->header, fields, n, p->record, &r, err) != OMS_OK) {
        cli_error("%s %s", p->path, err);
        bad = true;
    }
    if (*r.sku != '\0' && check_unique(p, r.sku, err) != OMS_OK) {
        cli_error("%s %s", p->path, err);
        bad = true;
    }
    p->bad_rows += bad;
}

/* Second pass: the file was checked, so a bad row means it changed since. */
static void publish_record(stock_pass *p, char *const *fields, size_t n)
{
    char err[ERR_LEN];
    stock_row r;
    if (row_parse(&p->header, fields, n, p->record, &r, err) != OMS_OK) {
        cli_error("%s %s", p->path, err);
        cli_error("%s changed while it was loaded: the %lld products before row %lld were "
                  "published",
                  p->path, (long long)p->products, (long long)p->record);
        p->status = OMS_EINVAL;
        return;
    }
    p->status = publish_row(p, &r);
}

static void on_record(void *arg, char *const *fields, size_t n)
{
    stock_pass *p = arg;
    if (p->stop)
        return;
    if (++p->record == 1)
        on_header(p, fields, n);
    else if (p->publish)
        publish_record(p, fields, n);
    else
        check_row(p, fields, n);
    p->stop = p->status != OMS_OK;
}

/* First pass: every row valid? */
static oms_status validate(const char *path)
{
    stock_pass p = {.path = path, .skus = json_object()};
    oms_status s = p.skus ? cli_csv_scan(path, on_record, &p, &p.stop) : OMS_ENOMEM;
    if (s == OMS_OK)
        s = p.status;
    if (s == OMS_OK && p.bad_rows > 0) {
        cli_error("%lld row%s of %s %s invalid: nothing was published", (long long)p.bad_rows,
                  p.bad_rows == 1 ? "" : "s", path, p.bad_rows == 1 ? "is" : "are");
        s = OMS_EINVAL;
    } else if (s == OMS_OK && p.record < 2) {
        cli_error("%s has no products: expected a header sku,name,on_hand[,price] and rows", path);
        s = OMS_EINVAL;
    } else if (s == OMS_ENOMEM) {
        cli_error("out of memory while checking %s", path);
    }
    json_decref(p.skus);
    return s;
}

static oms_status publish_all(js_conn *c, const char *path, int64_t *products)
{
    stock_pass p = {.path = path, .publish = true, .c = c};
    oms_status s = cli_require_stream(c, "CATALOG");
    if (s != OMS_OK)
        return s;
    s = cli_csv_scan(path, on_record, &p, &p.stop);
    if (s == OMS_OK)
        s = p.status;
    if (s == OMS_OK && (s = js_publish_wait(c, ACK_WAIT_MS)) != OMS_OK)
        cli_error("JetStream did not acknowledge every product (%s): is stream CATALOG "
                  "there? see `omsctl status`; publishing the file again is safe",
                  s == OMS_ETIMEOUT ? "no answer in time" : "a publish was refused");
    *products = p.products;
    return s;
}

static int stock_load(int argc, char **argv)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    js_conn *c = NULL;
    int64_t products = 0;
    int opt;

    while ((opt = cli_getopt(argc, argv, "h", opts, CMD)) != -1) {
        if (opt == 'h') {
            print_help(stdout);
            return CLI_EXIT_OK;
        }
        return CLI_EXIT_USAGE;
    }
    if (optind >= argc)
        return cli_usage_error(CMD, "which file? give the CSV of products");
    if (optind + 1 < argc)
        return cli_usage_error(CMD, "one FILE at a time, got \"%s\" too", argv[optind + 1]);
    const char *path = argv[optind];
    if (validate(path) != OMS_OK || cli_connect(&c, CLI_CONNECT_WAIT_MS) != OMS_OK)
        return CLI_EXIT_FAIL;
    oms_status s = publish_all(c, path, &products);
    js_conn_destroy(c);
    if (s != OMS_OK)
        return CLI_EXIT_FAIL;
    printf("loaded %lld products\n", (long long)products);
    return CLI_EXIT_OK;
}

static void print_commands(FILE *out)
{
    fputs("usage: omsctl stock load FILE\n"
          "       omsctl stock show [SKU] [--json]\n"
          "\n"
          "  load   publish products and stock levels from a CSV (sku,name,on_hand[,price])\n"
          "  show   stock levels as inventory holds them: on hand, reserved, available\n"
          "\n"
          "`omsctl stock load --help` and `omsctl stock show --help` tell more.\n",
          out);
}

int cmd_stock(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "load") == 0)
        return stock_load(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "show") == 0)
        return stock_show(argc - 1, argv + 1);
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        print_commands(stdout);
        return CLI_EXIT_OK;
    }
    if (argc < 2)
        return cli_usage_error("stock", "which subcommand? (stock load FILE, stock show [SKU])");
    return cli_usage_error("stock", "unknown subcommand \"%s\" (stock load FILE, stock show [SKU])",
                           argv[1]);
}
