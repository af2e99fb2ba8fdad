/*
 * fuzz_csv_rows.c - one ingest.rows message through ingest's row pipeline,
 * without a database: its headers, CSV parsing (lib/csvrec.c), header
 * detection and mapping, row validation (lib/order_csv.c) and the grouping
 * of valid rows into orders.
 *
 * ingest_rows.c keeps chunk_parse and on_record static and follows them with
 * PostgreSQL (imports bookkeeping, COPY, the sealer groups rows in SQL), so
 * this target drives the same public functions in the same order as its
 * on_record does; ingest's header checks (import id, Oms-First-Row,
 * Oms-Import-End) are repeated here as ingest states them.
 *
 * Input: optional message headers, "Name: value" lines ended by an empty
 * line when the input starts with "Oms-", then the CSV body.
 *
 * Properties: feeding the body in one piece or in many gives the same
 * records; every record written back with csvrec_write reads back the same;
 * a valid row has the values order_csv.h promises; an invalid one names its
 * row and a known column; order totals never overflow.
 */
#include "fuzz.h"

#include "csvrec.h"
#include "money.h"
#include "order_csv.h"
#include "utf8.h"

#include <stdbool.h>
#include <strings.h>

#define CURRENCY "USD"
#define HEADERS_MAX 8

typedef struct msg_header {
    char name[64];
    char value[256];
} msg_header;

/* Records serialised as "<n>\x1f<field>\x1f<field>...\x1e", to compare runs. */
typedef struct record_log {
    char *text;
    size_t len, cap;
    size_t records;
    bool oom;
} record_log;

/* A valid row's contribution to its order. */
typedef struct order_line {
    char *order_id;
    int64_t cents;
} order_line;

/* What ingest's on_record keeps between records. */
typedef struct pipeline {
    bool first_record, header_bad, explicit_rows;
    int next_row;
    order_csv_header header;
    order_col missing;
    char header_error[ORDER_ERR_LEN];
    size_t valid, rejected;
    order_line *lines;
    size_t n_lines, cap_lines;
} pipeline;

static void log_append(record_log *l, const char *s, size_t n)
{
    if (l->oom || l->len + n + 1 > l->cap) {
        size_t cap = l->cap ? l->cap : 256;
        while (cap < l->len + n + 1)
            cap *= 2;
        char *p = l->oom ? NULL : realloc(l->text, cap);
        if (p == NULL) {
            l->oom = true;
            return;
        }
        l->text = p;
        l->cap = cap;
    }
    memcpy(l->text + l->len, s, n);
    l->len += n;
}

static void log_record(void *arg, char *const *fields, size_t n)
{
    record_log *l = arg;
    char count[24];
    int len = snprintf(count, sizeof count, "%zu", n);
    log_append(l, count, (size_t)len);
    for (size_t i = 0; i < n; i++) {
        log_append(l, "\x1f", 1);
        log_append(l, fields[i], strlen(fields[i]));
    }
    log_append(l, "\x1e", 1);
    l->records++;
}

/* Parses body into log, fed in pieces no longer than piece (0: one piece). */
static bool parse_into(const uint8_t *body, size_t size, size_t piece, csvrec_fn fn, void *ctx)
{
    csvrec rec;
    bool ok = csvrec_init(&rec, fn, ctx) == OMS_OK;
    for (size_t off = 0; ok && off < size;) {
        size_t n = piece == 0 || size - off < piece ? size - off : piece;
        ok = csvrec_feed(&rec, body + off, n) == OMS_OK;
        off += n;
        /* Vary the piece length so splits fall inside quotes and CRLFs. */
        piece = piece == 0 ? 0 : 1 + (piece * 7 + body[off - 1]) % 13;
    }
    ok = ok && csvrec_finish(&rec) == OMS_OK;
    csvrec_fini(&rec);
    return ok;
}

/* Logs the record into original, then writes it back as CSV and reads it
 * again: the same fields. */
static void check_write_back(void *arg, char *const *fields, size_t n)
{
    record_log *original = arg;
    record_log mine = {0}, again = {0};
    char *buf = NULL;
    size_t len = 0, cap = 0;
    log_record(&mine, fields, n);
    log_append(original, mine.text, mine.len);
    original->records++;
    if (!mine.oom && csvrec_write(&buf, &len, &cap, fields, n) == OMS_OK &&
        parse_into((const uint8_t *)buf, len, 0, log_record, &again) && !again.oom)
        FUZZ_CHECK(again.records == 1 && again.len == mine.len &&
                   memcmp(again.text, mine.text, mine.len) == 0);
    free(buf);
    free(mine.text);
    free(again.text);
}

static bool is_column_name(const char *field)
{
    if (*field == '\0')
        return true;
    for (int c = 0; c < OC_COUNT; c++)
        if (strcmp(field, order_csv_column_name((order_col)c)) == 0)
            return true;
    return false;
}

static void check_valid_row(const order_row *r)
{
    const char *texts[] = {r->order_id,       r->customer_id,   r->sku,
                           r->customer_email, r->customer_name, r->product_name};
    FUZZ_CHECK(*r->order_id != '\0' && *r->customer_id != '\0' && *r->sku != '\0');
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        FUZZ_CHECK(strlen(texts[i]) <= ORDER_FIELD_MAX && utf8_valid(texts[i]));
    FUZZ_CHECK(r->qty >= 1 && r->qty <= ORDER_QTY_MAX);
    FUZZ_CHECK(r->unit_price_cents >= 0 && r->unit_price_cents <= MONEY_MAX_CENTS);
    FUZZ_CHECK(strcmp(r->currency, CURRENCY) == 0);
}

/* A product-list row: its lines, SKUs distinct, each within the limits. */
static void check_valid_items(const order_row *r)
{
    FUZZ_CHECK(r->n_items >= 1 && r->n_items <= ORDER_PRODUCTS_MAX);
    FUZZ_CHECK(*r->customer_id != '\0');
    for (size_t i = 0; i < r->n_items; i++) {
        const order_item *it = &r->items[i];
        FUZZ_CHECK(*it->sku != '\0' && strlen(it->sku) <= ORDER_FIELD_MAX);
        FUZZ_CHECK(it->qty >= 1 && it->qty <= ORDER_QTY_MAX);
        FUZZ_CHECK(it->unit_price_cents >= -1 && it->unit_price_cents <= MONEY_MAX_CENTS);
        for (size_t k = 0; k < i; k++)
            FUZZ_CHECK(strcmp(r->items[k].sku, it->sku) != 0);
    }
}

static void check_rejected_row(const order_row *r)
{
    char prefix[32];
    int n = snprintf(prefix, sizeof prefix, "row %d: ", r->row);
    FUZZ_CHECK(strncmp(r->error, prefix, (size_t)n) == 0);
    FUZZ_CHECK(is_column_name(r->field));
}

static void keep_line(pipeline *p, const order_row *r)
{
    if (p->n_lines == p->cap_lines) {
        size_t cap = p->cap_lines ? p->cap_lines * 2 : 64;
        order_line *lines = realloc(p->lines, cap * sizeof *lines);
        if (lines == NULL)
            return;
        p->lines = lines;
        p->cap_lines = cap;
    }
    char *id = strdup(r->order_id);
    if (id == NULL)
        return;
    p->lines[p->n_lines++] = (order_line){id, (int64_t)r->qty * r->unit_price_cents};
}

/* ingest_rows.c's on_record, with the rows checked instead of stored. */
static void on_record(void *arg, char *const *fields, size_t n)
{
    pipeline *p = arg;
    order_row r;
    if (p->first_record) {
        p->first_record = false;
        if (order_csv_is_header(fields, n)) {
            if (order_csv_header_parse(fields, n, &p->header, &p->missing, p->header_error) !=
                OMS_OK) {
                p->header_bad = true;
                FUZZ_CHECK(is_column_name(order_csv_column_name(p->missing)));
            }
            if (!p->explicit_rows)
                p->next_row = 2;
            return;
        }
    }
    /* Ingest bounds Oms-First-Row by ORDER_CSV_ROW_NUMBER_MAX and a message
     * by INGEST's row limit, so a row number always fits (docs/fuzzing.md:
     * the overflow this target once found). */
    int row = p->next_row++;
    FUZZ_CHECK(row > 0);
    if (p->header_bad) {
        p->rejected++;
        return;
    }
    if (order_csv_row_parse(&p->header, fields, n, row, CURRENCY, &r) == OMS_OK) {
        if (p->header.layout == ORDER_LAYOUT_PRODUCTS) {
            check_valid_items(&r);
        } else {
            check_valid_row(&r);
            keep_line(p, &r);
        }
        p->valid++;
    } else {
        check_rejected_row(&r);
        p->rejected++;
    }
    order_row_fini(&r);
}

static int cmp_line(const void *a, const void *b)
{
    return strcmp(((const order_line *)a)->order_id, ((const order_line *)b)->order_id);
}

/* Groups the valid rows into orders, as the sealer does: one total per id. */
static void group_orders(pipeline *p)
{
    if (p->n_lines == 0)
        return;
    qsort(p->lines, p->n_lines, sizeof *p->lines, cmp_line);
    for (size_t i = 0; i < p->n_lines;) {
        int64_t total = 0;
        size_t j = i;
        for (; j < p->n_lines && strcmp(p->lines[j].order_id, p->lines[i].order_id) == 0; j++)
            FUZZ_CHECK(!__builtin_add_overflow(total, p->lines[j].cents, &total));
        FUZZ_CHECK(total >= 0);
        i = j;
    }
}

static void pipeline_fini(pipeline *p)
{
    for (size_t i = 0; i < p->n_lines; i++)
        free(p->lines[i].order_id);
    free(p->lines);
}

/* ingest's rules for Oms-Import-Id: 1 to 128 bytes, no control character,
 * not "live:..." (kept for live rows). */
static bool import_id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 128 || strncmp(id, "live:", 5) == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)id[i] < 0x20)
            return false;
    return true;
}

static bool header_int(const char *v, long long min, long long max, long long *out)
{
    char *end = NULL;
    long long n = strtoll(v, &end, 10);
    if (*v == '\0' || *end != '\0' || n < min || n > max)
        return false;
    *out = n;
    return true;
}

static const char *header_get(const msg_header *h, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(h[i].name, name) == 0)
            return h[i].value;
    return NULL;
}

/* Reads "Name: value" lines up to an empty line; returns where the body starts. */
static size_t read_headers(const uint8_t *data, size_t size, msg_header *h, size_t *n)
{
    size_t off = 0;
    *n = 0;
    if (size < 4 || memcmp(data, "Oms-", 4) != 0)
        return 0;
    while (off < size) {
        const uint8_t *nl = memchr(data + off, '\n', size - off);
        size_t line = nl ? (size_t)(nl - (data + off)) : size - off;
        const uint8_t *colon = memchr(data + off, ':', line);
        if (line == 0)
            return off + 1;
        if (colon != NULL && *n < HEADERS_MAX) {
            size_t name_len = (size_t)(colon - (data + off));
            size_t value_len = line - name_len - 1;
            const uint8_t *value = colon + 1;
            while (value_len > 0 && *value == ' ')
                value++, value_len--;
            snprintf(h[*n].name, sizeof h[*n].name, "%.*s", (int)name_len,
                     (const char *)data + off);
            snprintf(h[*n].value, sizeof h[*n].value, "%.*s", (int)value_len, (const char *)value);
            (*n)++;
        }
        off += line + (nl ? 1 : 0);
    }
    return off;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    msg_header headers[HEADERS_MAX];
    size_t n_headers = 0;
    size_t body_off = read_headers(data, size, headers, &n_headers);
    const uint8_t *body = data + body_off;
    size_t body_len = size - body_off;
    const char *import_id = header_get(headers, n_headers, ORDER_CSV_HDR_IMPORT_ID);
    const char *first = header_get(headers, n_headers, ORDER_CSV_HDR_FIRST_ROW);
    const char *end = header_get(headers, n_headers, ORDER_CSV_HDR_IMPORT_END);
    long long first_row = 0, end_rows = 0;
    record_log whole = {0}, pieces = {0};

    if ((import_id && !import_id_ok(import_id)) ||
        (first && !header_int(first, 1, ORDER_CSV_ROW_NUMBER_MAX, &first_row)) ||
        (end && !header_int(end, 0, ORDER_CSV_ROW_NUMBER_MAX, &end_rows)) ||
        (end && import_id == NULL))
        return 0; /* ingest dead-letters the message */
    if (end != NULL)
        return 0; /* an end marker carries no rows */

    /* The same records whatever the chunking, and each one writes back. */
    bool ok_whole = parse_into(body, body_len, 0, check_write_back, &whole);
    bool ok_pieces = parse_into(body, body_len, 1 + (body_len % 5), log_record, &pieces);
    if (ok_whole && ok_pieces && !whole.oom && !pieces.oom)
        FUZZ_CHECK(whole.len == pieces.len &&
                   (whole.len == 0 || memcmp(whole.text, pieces.text, whole.len) == 0));
    free(whole.text);
    free(pieces.text);

    pipeline p = {.first_record = true,
                  .explicit_rows = first_row > 0,
                  .next_row = first_row > 0 ? (int)first_row : 1};
    order_csv_header_default(&p.header);
    if (parse_into(body, body_len, 0, on_record, &p))
        group_orders(&p);
    pipeline_fini(&p);
    return 0;
}
