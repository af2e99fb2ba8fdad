/*
 * ingest_rows.c - applying ingest.rows messages: parse each CSV chunk,
 * validate every row, and store all rows of the fetched batch with one COPY.
 *
 * The imports row of a chunk is upserted (locked) before its rows are
 * written, so the sealer, which locks imports rows too, never sees half a
 * chunk, and a chunk that arrives after its import was sealed is recognised
 * and its rows rejected as late rather than silently dropped.
 *
 * What one message may make ingest hold is bounded (ingest.h; the
 * arithmetic is in docs/architecture.md, "Bounds per message"): its size,
 * headers and rows are limited, fields are limited while they are read, and
 * rows and events go to PostgreSQL whenever INGEST_FLUSH_BYTES are buffered.
 */
#include "ingest.h"

#include "csvrec.h"
#include "log.h"
#include "order_csv.h"
#include "pgcopy.h"
#include "utf8.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIVE_PREFIX "live:"
#define SHA256_HEX_LEN (2 * SHA256_DIGEST_LENGTH)

/* One received row, or one line of a product-list row (line_no from 0:
 * the lines of a row share its seq, row_no and fate); strings owned.
 * reason NULL = valid so far. */
typedef struct in_row {
    char *import_id;
    int seq, row_no, line_no, element;
    char *order_id, *customer_id, *email, *name, *sku, *product_name, *phone, *address;
    int32_t qty;
    int64_t price_cents, placed_at_ms; /* price -1: the catalogue's, looked up before COPY */
    const char *field;                 /* static column name, or "" */
    char *reason;
    bool publish_now; /* rejected outside a seal: publish import.rejected now */
    /* Lines after the first of a product-list row borrow its strings (all
     * but sku, reason included): a row's customer is held once however
     * many lines it has (docs/architecture.md, "Bounds per message"). */
    bool shares;
} in_row;

/* The rows of one message while it is parsed. */
typedef struct chunk {
    const ingest_ctx *ctx;
    const char *import_id; /* NULL for live rows */
    int64_t now_ms;
    int next_row;
    bool first_record, header_bad, explicit_rows;
    const oms_msg *msg;
    csvrec *rec;
    char content_sha[SHA256_HEX_LEN + 1]; /* of the file (header) or message; "" until needed */
    order_csv_header header;
    order_col missing;
    char header_error[ORDER_ERR_LEN];
    in_row *rows;
    size_t n, cap;
    bool oom;
    bool too_many;                        /* more than INGEST_CHUNK_ROWS_MAX rows: not stored */
    int first_extra_row;                  /* the first row past the limit */
    char unreadable[CONSUMER_REASON_LEN]; /* why the message is refused, when it is */
} chunk;

static void row_free(in_row *r)
{
    free(r->sku);
    if (r->shares)
        return;
    free(r->import_id), free(r->order_id), free(r->customer_id), free(r->email);
    free(r->name), free(r->product_name), free(r->reason);
    free(r->phone), free(r->address);
}

/* Line x of the row whose first line is first borrows its strings. */
static void share_first(in_row *x, const in_row *first)
{
    x->shares = true;
    x->import_id = first->import_id, x->order_id = first->order_id;
    x->customer_id = first->customer_id, x->email = first->email, x->name = first->name;
    x->product_name = first->product_name, x->phone = first->phone;
    x->address = first->address, x->reason = first->reason, x->field = first->field;
}

static void chunk_fini(chunk *c)
{
    for (size_t i = 0; i < c->n; i++)
        row_free(&c->rows[i]);
    free(c->rows);
}

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

/* A rejected row keeps what its fields held, for the import report; bytes
 * that are not UTF-8 are stored escaped (\xHH), since PostgreSQL refuses
 * them and one refused row would take the whole chunk with it. A valid row
 * never needs this: its fields passed order_csv's UTF-8 check. */
static char *dup_text(const char *s)
{
    if (s == NULL || utf8_valid(s))
        return dup_or_empty(s);
    size_t len = strlen(s), size = 4 * len + 4;
    char *out = malloc(size);
    return out ? consumer_printable(s, len, out, size) : NULL;
}

static char *live_import_id(const char *order_id)
{
    size_t n = strlen(LIVE_PREFIX) + strlen(order_id) + 1;
    char *id = malloc(n);
    if (id != NULL)
        snprintf(id, n, "%s%s", LIVE_PREFIX, order_id);
    return id;
}

/* Stores line `line` of r (the row itself in the line-per-item layout). */
static void store_line(chunk *c, const order_row *r, bool valid, size_t line)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        in_row *p = realloc(c->rows, cap * sizeof *p);
        if (p == NULL) {
            c->oom = true;
            return;
        }
        c->rows = p;
        c->cap = cap;
    }
    in_row *x = &c->rows[c->n++];
    memset(x, 0, sizeof *x);
    x->row_no = r->row;
    x->seq = r->row;
    x->line_no = (int)line;
    x->placed_at_ms = r->placed_at_ms ? r->placed_at_ms : c->now_ms;
    x->sku = dup_text(line < r->n_items ? r->items[line].sku : r->sku);
    x->qty = line < r->n_items ? r->items[line].qty : r->qty;
    x->price_cents = line < r->n_items ? r->items[line].unit_price_cents : r->unit_price_cents;
    x->element = line < r->n_items ? r->items[line].element : 0;
    if (line > 0) {
        share_first(x, x - line);
        if (x->sku == NULL)
            c->oom = true;
        return;
    }
    x->order_id = dup_text(r->order_id);
    x->import_id = c->import_id ? strdup(c->import_id)
                                : live_import_id(x->order_id ? x->order_id : "");
    x->customer_id = dup_text(r->customer_id);
    x->email = dup_text(r->customer_email);
    x->name = dup_text(r->customer_name);
    x->product_name = dup_text(r->product_name);
    x->phone = dup_text(r->phone);
    x->address = dup_text(r->address);
    x->field = r->field ? r->field : "";
    x->reason = valid ? NULL : dup_text(r->error);
    if (!x->import_id || !x->order_id || !x->customer_id || !x->email || !x->name || !x->sku ||
        !x->product_name || !x->phone || !x->address || (!valid && !x->reason))
        c->oom = true;
}

/* Stores a row: one in_row per line of a valid product-list row. */
static void store_row(chunk *c, const order_row *r, bool valid)
{
    size_t lines = valid && r->n_items > 0 ? r->n_items : 1;
    for (size_t k = 0; k < lines && !c->oom; k++)
        store_line(c, r, valid, k);
}

static void hex_of(const unsigned char *digest, char out[SHA256_HEX_LEN + 1])
{
    for (size_t i = 0; i < SHA256_DIGEST_LENGTH; i++)
        snprintf(out + 2 * i, 3, "%02x", digest[i]);
}

/* The id of a product-list row without order_id: from the file's SHA-256
 * when the publisher sent it (omsctl import does), otherwise from the
 * message's own (docs/csv.md, "Generated order ids"). */
static void generate_id(chunk *c, int row, char *out, size_t out_len)
{
    if (c->content_sha[0] == '\0') {
        unsigned char digest[SHA256_DIGEST_LENGTH];
        SHA256(c->msg->data, c->msg->len, digest);
        hex_of(digest, c->content_sha);
    }
    order_csv_generated_id(c->content_sha, row, out, out_len);
}

/* The number of the next data row, or false once the message holds
 * INGEST_CHUNK_ROWS_MAX rows: the rest are counted out, never stored. */
static bool take_row(chunk *c, int *row)
{
    if (c->n >= INGEST_CHUNK_ROWS_MAX) {
        if (!c->too_many)
            c->first_extra_row = c->next_row;
        c->too_many = true;
        return false;
    }
    *row = c->next_row++;
    return true;
}

/* The column a record's field (from 1) maps to under the chunk's header,
 * or NULL for a column ingest ignores. */
static const char *column_at(const chunk *c, size_t field)
{
    for (int col = 0; col < OC_COUNT; col++)
        if (field > 0 && c->header.index[col] == (int)(field - 1))
            return order_csv_column_name((order_col)col);
    return NULL;
}

/* The order id a faulty record names, when it can be read: its rejection
 * then belongs to the order, which is not created without the row. */
static const char *readable_id(const char *v)
{
    return v != NULL && strlen(v) <= ORDER_FIELD_MAX && utf8_valid(v) ? v : NULL;
}

/* Stores the next row as rejected for csvrec's fault e: the sentence names
 * the column (or the field's number), says what is wrong, then tail. */
static void store_fault(chunk *c, const csvrec_error *e, const char *order_id, const char *tail)
{
    order_row r;
    int row;
    if (!take_row(c, &row))
        return;
    memset(&r, 0, sizeof r);
    r.row = row;
    r.order_id = order_id;
    const char *col = column_at(c, e->field);
    r.field = col ? col : "";
    if (e->field == 0)
        snprintf(r.error, sizeof r.error, "row %d %s%s", row, e->what, tail);
    else if (col != NULL)
        snprintf(r.error, sizeof r.error, "row %d: %s %s%s", row, col, e->what, tail);
    else
        snprintf(r.error, sizeof r.error, "row %d: field %zu %s%s", row, e->field, e->what, tail);
    store_row(c, &r, false);
}

/* A record csvrec refused (NUL byte, too many fields) is a rejected row;
 * the rows around it are read as usual. */
static void on_fault(void *arg, const csvrec_error *e, char *const *fields, size_t n)
{
    chunk *c = arg;
    int id_at = c->header.index[OC_ORDER_ID];
    const char *order_id = NULL;
    c->first_record = false; /* a record that cannot be read is never the header */
    if (id_at >= 0 && (size_t)id_at < n && (size_t)id_at + 1 != e->field)
        order_id = readable_id(fields[id_at]);
    store_fault(c, e, order_id, "");
}

static void on_record(void *arg, char *const *fields, size_t n)
{
    chunk *c = arg;
    order_row r;
    if (c->first_record) {
        c->first_record = false;
        if (order_csv_is_header(fields, n)) {
            if (order_csv_header_parse(fields, n, &c->header, &c->missing, c->header_error) !=
                OMS_OK)
                c->header_bad = true;
            else if (c->header.layout == ORDER_LAYOUT_PRODUCTS)
                csvrec_set_wide_field(c->rec, (size_t)c->header.index[OC_PRODUCTS],
                                      ORDER_CSV_PRODUCTS_BYTES_MAX);
            /* Without Oms-First-Row the header is row 1, as in a spreadsheet. */
            if (!c->explicit_rows)
                c->next_row = 2;
            return;
        }
    }
    int row;
    if (!take_row(c, &row))
        return;
    if (c->header_bad) {
        memset(&r, 0, sizeof r);
        r.row = row;
        r.field = order_csv_column_name(c->missing);
        snprintf(r.error, sizeof r.error, "row %d: %.290s", row, c->header_error);
        store_row(c, &r, false);
        return;
    }
    oms_status s = order_csv_row_parse(&c->header, fields, n, row, c->ctx->currency, &r);
    char generated[64];
    if (c->header.layout == ORDER_LAYOUT_PRODUCTS && r.order_id != NULL && *r.order_id == '\0' &&
        strcmp(r.field, "order_id") != 0) {
        generate_id(c, row, generated, sizeof generated);
        r.order_id = generated;
    }
    if (s == OMS_ENOMEM)
        c->oom = true;
    else
        store_row(c, &r, s == OMS_OK);
    order_row_fini(&r);
}

/* The CSV stops being readable at a field of the record being read: that
 * row is rejected and nothing after it is read. The rows before it stand,
 * as when any other row of the chunk is invalid. */
static void reject_rest(chunk *c, const csvrec *rec, const csvrec_error *e)
{
    int id_at = c->header.index[OC_ORDER_ID];
    const char *order_id = NULL;
    if (id_at >= 0 && (size_t)id_at + 1 < e->field)
        order_id = readable_id(csvrec_field_so_far(rec, (size_t)id_at));
    store_fault(c, e, order_id, "; the rest of the message was not read");
}

/* Parses a message's CSV into c. first_row: number of the first data row,
 * or 0 to number records from 1 with the header (if any) as row 1.
 * OMS_EINVAL when the message is refused as a whole (more rows than a
 * message may hold; c->unreadable says why), OMS_ENOMEM when memory ran out. */
static oms_status chunk_parse(chunk *c, const oms_msg *m, int first_row)
{
    csvrec rec;
    oms_status s = csvrec_init(&rec, on_record, c);
    if (s != OMS_OK)
        return s;
    csvrec_set_limits(&rec, ORDER_CSV_FIELD_BYTES_MAX, ORDER_CSV_FIELDS_MAX);
    csvrec_set_fault_fn(&rec, on_fault);
    c->rec = &rec;
    c->msg = m;
    c->first_record = true;
    c->explicit_rows = first_row > 0;
    c->next_row = first_row > 0 ? first_row : 1;
    order_csv_header_default(&c->header);
    if ((s = csvrec_feed(&rec, m->data, m->len)) == OMS_OK)
        s = csvrec_finish(&rec);
    if (s == OMS_OK && c->oom)
        s = OMS_ENOMEM;
    if (s == OMS_EINVAL) {
        reject_rest(c, &rec, csvrec_error_of(&rec));
        s = c->oom ? OMS_ENOMEM : OMS_OK;
    }
    if (s != OMS_ENOMEM && c->too_many) {
        snprintf(c->unreadable, sizeof c->unreadable,
                 "message has more than %d rows (row %d is one too many): at most %d rows per "
                 "message; nothing of it was imported",
                 INGEST_CHUNK_ROWS_MAX, c->first_extra_row, INGEST_CHUNK_ROWS_MAX);
        s = OMS_EINVAL;
    }
    csvrec_fini(&rec);
    c->rec = NULL; /* rec lived on this frame only */
    return s;
}

/* ---- imports bookkeeping --------------------------------------------- */

/* Reads header key as a decimal from min to max (digits only: no sign,
 * no spaces, at most 10 of them, so the value cannot overflow). Absent:
 * OMS_OK with *present false. Invalid: OMS_EINVAL with the message rejected
 * naming the header, its value and the range (`what` is "row number"...). */
static oms_status header_int(consumer_batch *b, size_t i, const char *key, const char *what,
                             int64_t min, int64_t max, int64_t *out, bool *present)
{
    const char *v = oms_msg_header(&b->msgs[i], key);
    int64_t n = 0;
    size_t len = 0;
    *present = v != NULL;
    if (v == NULL)
        return OMS_OK;
    for (; v[len] >= '0' && v[len] <= '9' && len < 10; len++)
        n = n * 10 + (v[len] - '0');
    if (len == 0 || v[len] != '\0' || n < min || n > max) {
        consumer_reject(b, i, "header %s \"%.40s\" must be a %s from %lld to %lld", key, v, what,
                        (long long)min, (long long)max);
        return OMS_EINVAL;
    }
    *out = n;
    return OMS_OK;
}

/* ---- catalogue prices ------------------------------------------------- */

static int cmp_sku(const void *key, const void *elem)
{
    return strcmp(key, *(const char *const *)elem);
}

/* Rejects the lines [from, to) of one product-list row: line `at` has no
 * price anywhere. */
static void reject_unpriced(chunk *c, size_t from, size_t to, const in_row *at)
{
    char reason[ORDER_ERR_LEN];
    snprintf(reason, sizeof reason,
             "row %d: products[%d].sku \"%.80s\" has no price: it is not in the catalogue "
             "(omsctl stock load) and the file gives no unit_price",
             at->row_no, at->element, at->sku);
    in_row *first = &c->rows[from];
    free(first->reason);
    first->field = "products";
    if ((first->reason = strdup(reason)) == NULL)
        c->oom = true;
    for (size_t i = from + 1; i < to; i++)
        share_first(&c->rows[i], first);
}

/* Gives each line of the chunk without a price the catalogue's (skus: the
 * known SKUs in byte order, prices alongside); a row with a line priced
 * nowhere is rejected whole. */
static void apply_prices(chunk *c, const char **skus, const int64_t *prices, size_t n_skus)
{
    for (size_t i = 0; i < c->n;) {
        size_t j = i + 1;
        while (j < c->n && c->rows[j].line_no > 0)
            j++;
        for (size_t k = i; k < j && c->rows[i].reason == NULL; k++) {
            in_row *r = &c->rows[k];
            if (r->price_cents >= 0)
                continue;
            const char **hit = bsearch(r->sku, skus, n_skus, sizeof *skus, cmp_sku);
            if (hit != NULL)
                r->price_cents = prices[hit - skus];
            else
                reject_unpriced(c, i, j, r);
        }
        i = j;
    }
}

/* Prices the lines the file gave no price from catalog_prices (one query
 * for the chunk). */
static oms_status price_lines(PGconn *conn, chunk *c)
{
    pg_array wanted;
    PGresult *res = NULL;
    const char **skus = NULL;
    int64_t *prices = NULL;
    oms_status s = OMS_OK;

    pg_array_init(&wanted);
    for (size_t i = 0; i < c->n && s == OMS_OK; i++)
        if (c->rows[i].price_cents < 0 && c->rows[i].reason == NULL)
            s = pg_array_add(&wanted, c->rows[i].sku) ? OMS_ENOMEM : OMS_OK;
    if (s != OMS_OK || wanted.count == 0)
        goto out;
    const char *params[] = {pg_array_literal(&wanted)};
    /* Byte order (COLLATE "C") is strcmp's, for bsearch. */
    if ((s = pg_query(conn, "catalog prices",
                      "SELECT sku, price_cents FROM catalog_prices WHERE sku = ANY($1::text[])"
                      " ORDER BY sku COLLATE \"C\"",
                      1, params, PGRES_TUPLES_OK, &res)) != OMS_OK)
        goto out;
    size_t n = (size_t)PQntuples(res);
    skus = calloc(n + 1, sizeof *skus);
    prices = calloc(n + 1, sizeof *prices);
    if (skus == NULL || prices == NULL) {
        s = OMS_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        skus[i] = PQgetvalue(res, (int)i, 0);
        prices[i] = atoll(PQgetvalue(res, (int)i, 1));
    }
    apply_prices(c, skus, prices, n);
    s = c->oom ? OMS_ENOMEM : OMS_OK;
out:
    free(skus);
    free(prices);
    PQclear(res);
    pg_array_fini(&wanted);
    return s;
}

/* Rejects r as late or a duplicate. first: the row's first line, which a
 * later line (marked after it) takes its reason from. */
static void mark_late(in_row *r, bool live, const in_row *first)
{
    char buf[ORDER_ERR_LEN + 64];
    r->publish_now = true;
    if (r->shares) {
        share_first(r, first);
        return;
    }
    if (live)
        snprintf(buf, sizeof buf, "row %d: order %s was already created; this row is a duplicate",
                 r->row_no, r->order_id);
    else
        snprintf(buf, sizeof buf, "row %d: import %s was already sealed; this row arrived too late",
                 r->row_no, r->import_id);
    free(r->reason);
    r->reason = strdup(buf);
    r->field = live ? "order_id" : "";
}

/* Counts the rows of a file chunk into its import; late rows if sealed. */
/* Rows of the chunk as the file counts them (a product-list row is one
 * row, however many lines it brought). */
static size_t file_rows(const in_row *rows, size_t n)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        count += rows[i].line_no == 0;
    return count;
}

static oms_status register_file(PGconn *conn, chunk *c)
{
    char count[24];
    snprintf(count, sizeof count, "%zu", file_rows(c->rows, c->n));
    const char *params[] = {c->import_id, count};
    PGresult *res = NULL;
    oms_status s = pg_query(conn, "import upsert",
                            "INSERT INTO imports AS i (import_id, kind, received_rows)"
                            " VALUES ($1, 'file', $2::int) ON CONFLICT (import_id) DO UPDATE"
                            " SET received_rows = i.received_rows + EXCLUDED.received_rows,"
                            " last_row_at = now() RETURNING sealed_at IS NOT NULL",
                            2, params, PGRES_TUPLES_OK, &res);
    if (s == OMS_OK && strcmp(PQgetvalue(res, 0, 0), "t") == 0)
        for (size_t i = 0, first = 0; i < c->n; i++) {
            first = c->rows[i].line_no == 0 ? i : first;
            mark_late(&c->rows[i], false, &c->rows[first]);
        }
    PQclear(res);
    return s;
}

static int cmp_row_import(const void *a, const void *b)
{
    const in_row *const *x = a, *const *y = b;
    int d = strcmp((*x)->import_id, (*y)->import_id);
    if (d == 0)
        d = (*x)->row_no - (*y)->row_no;
    return d ? d : (*x)->line_no - (*y)->line_no;
}

/* Numbers rows that belong to no order from a sequence (one round trip). */
static oms_status number_orphans(PGconn *conn, in_row **rows, size_t n)
{
    char count[24];
    snprintf(count, sizeof count, "%zu", n);
    const char *params[] = {count};
    PGresult *res = NULL;
    oms_status s =
        pg_query(conn, "orphan seq",
                 "SELECT nextval('import_rows_orphan_seq') FROM generate_series(1, $1::int)", 1,
                 params, PGRES_TUPLES_OK, &res);
    for (size_t i = 0; s == OMS_OK && i < n; i++) {
        rows[i]->seq = atoi(PQgetvalue(res, (int)i, 0));
        rows[i]->publish_now = true;
    }
    PQclear(res);
    return s;
}

/* Upserts one live import per order (in sorted order, so two replicas lock
 * them in the same order) and numbers each row after what is stored. */
static oms_status register_live(PGconn *conn, chunk *c)
{
    in_row **sorted = calloc(c->n, sizeof *sorted);
    pg_cols imports;
    PGresult *res = NULL;
    oms_status s = sorted ? OMS_OK : OMS_ENOMEM;
    size_t orphans = 0;

    pg_cols_init(&imports, 2);
    for (size_t i = 0; s == OMS_OK && i < c->n; i++)
        sorted[i] = &c->rows[i];
    if (s == OMS_OK)
        qsort(sorted, c->n, sizeof *sorted, cmp_row_import);
    while (orphans < c->n && sorted && *sorted[orphans]->order_id == '\0')
        orphans++; /* "live:" sorts first */
    if (s == OMS_OK && orphans > 0)
        s = number_orphans(conn, sorted, orphans);
    for (size_t i = orphans; s == OMS_OK && i < c->n;) {
        size_t j = i, rows = 0;
        for (; j < c->n && strcmp(sorted[j]->import_id, sorted[i]->import_id) == 0; j++)
            rows += sorted[j]->line_no == 0;
        pg_cols_text(&imports, 0, sorted[i]->import_id);
        pg_cols_int(&imports, 1, (int64_t)rows);
        s = imports.status;
        i = j;
    }
    if (s == OMS_OK && pg_cols_rows(&imports) > 0)
        s = pg_cols_query(
            conn, "live import upsert",
            "INSERT INTO imports AS i (import_id, kind, received_rows)"
            " SELECT id, 'live', n FROM unnest($1::text[], $2::int[]) AS t(id, n) ORDER BY id"
            " ON CONFLICT (import_id) DO UPDATE"
            " SET received_rows = i.received_rows + EXCLUDED.received_rows,"
            " last_row_at = now()"
            " RETURNING import_id, sealed_at IS NOT NULL, received_rows",
            &imports, PGRES_TUPLES_OK, &res);
    for (int r = 0; s == OMS_OK && res && r < PQntuples(res); r++) {
        const char *id = PQgetvalue(res, r, 0);
        bool sealed = strcmp(PQgetvalue(res, r, 1), "t") == 0;
        int received = atoi(PQgetvalue(res, r, 2));
        size_t first = orphans, last;
        while (first < c->n && strcmp(sorted[first]->import_id, id) != 0)
            first++;
        int rows = 0;
        for (last = first; last < c->n && strcmp(sorted[last]->import_id, id) == 0; last++)
            rows += sorted[last]->line_no == 0;
        /* The lines of a product-list row share the row's number. */
        int seq = received - rows;
        const in_row *line0 = sorted[first];
        for (size_t k = first; k < last; k++) {
            seq += sorted[k]->line_no == 0;
            line0 = sorted[k]->line_no == 0 ? sorted[k] : line0;
            sorted[k]->seq = seq;
            if (sealed)
                mark_late(sorted[k], true, line0);
        }
    }
    PQclear(res);
    pg_cols_fini(&imports);
    free(sorted);
    return s;
}

#define COPY_IMPORT_ROWS                                                                \
    "COPY import_rows (import_id, seq, row_no, order_id, customer_id, customer_email,"  \
    " customer_name, sku, product_name, qty, unit_price_cents, currency, placed_at_ms," \
    " field, reason, line_no, customer_phone, customer_address) FROM STDIN"

/* Sends the buffered rows, and the batch's events, once they hold at least
 * min_bytes (0: the rows, whatever is there; the consumer sends the events):
 * each buffer then stays under INGEST_FLUSH_BYTES plus one row, however
 * many rows the batch brings. */
static oms_status flush_if_full(consumer_batch *b, pgcopy *copy, size_t min_bytes)
{
    oms_status s = OMS_OK;
    if (copy->len >= min_bytes)
        s = pgcopy_send(copy, b->conn, COPY_IMPORT_ROWS);
    if (s == OMS_OK && min_bytes > 0 && b->outbox->rows.len >= min_bytes)
        s = outbox_batch_flush(b->outbox, b->conn);
    return s;
}

/* Writes the chunk's rows (and the rejections published at once) into the
 * batch's buffers, sending them on whenever INGEST_FLUSH_BYTES are held. */
static oms_status write_rows(chunk *c, pgcopy *copy, consumer_batch *b, const char *causation)
{
    oms_status s = OMS_OK;
    for (size_t i = 0; i < c->n && s == OMS_OK; i++) {
        in_row *r = &c->rows[i];
        pgcopy_text(copy, r->import_id);
        pgcopy_int(copy, r->seq);
        pgcopy_int(copy, r->row_no);
        pgcopy_text(copy, r->order_id);
        pgcopy_text(copy, r->customer_id);
        pgcopy_text(copy, r->email);
        pgcopy_text(copy, r->name);
        pgcopy_text(copy, r->sku);
        pgcopy_text(copy, r->product_name);
        pgcopy_int(copy, r->qty);
        pgcopy_int(copy, r->price_cents);
        pgcopy_text(copy, c->ctx->currency);
        pgcopy_int(copy, r->placed_at_ms);
        pgcopy_text(copy, r->reason ? r->field : NULL);
        pgcopy_text(copy, r->reason);
        pgcopy_int(copy, r->line_no);
        pgcopy_text(copy, r->phone);
        pgcopy_text(copy, r->address);
        pgcopy_end_row(copy);
        if (r->publish_now && r->line_no == 0)
            s = ingest_emit_rejected(b->outbox, r->import_id, r->row_no, r->order_id, r->field,
                                     r->reason, causation);
        if (s == OMS_OK)
            s = flush_if_full(b, copy, INGEST_FLUSH_BYTES);
    }
    return copy->oom ? OMS_ENOMEM : s;
}

static oms_status apply_end(consumer_batch *b, size_t i, const char *import_id, int64_t rows)
{
    char n[24];
    snprintf(n, sizeof n, "%lld", (long long)rows);
    const char *params[] = {import_id, n};
    (void)i;
    return pg_query(b->conn, "import end",
                    "INSERT INTO imports AS i (import_id, kind, expected_rows)"
                    " VALUES ($1, 'file', $2::int) ON CONFLICT (import_id) DO UPDATE"
                    " SET expected_rows = EXCLUDED.expected_rows, last_row_at = now()",
                    2, params, PGRES_COMMAND_OK, NULL);
}

static bool import_id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 128 || ingest_is_live(id))
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)id[i] < 0x20)
            return false;
    return true;
}

/* Header values of m, every value of a repeated key counted. */
static int header_count(const oms_msg *m)
{
    const char **keys = NULL;
    int nkeys = 0, total = 0;
    if (m->nmsg == NULL || natsMsgHeader_Keys(m->nmsg, &keys, &nkeys) != NATS_OK)
        return 0;
    for (int k = 0; k < nkeys; k++) {
        const char **values = NULL;
        int n = 0;
        if (natsMsgHeader_Values(m->nmsg, keys[k], &values, &n) == NATS_OK)
            total += n;
        free((void *)values);
    }
    free((void *)keys);
    return total;
}

/* Refuses a message larger than a chunk may be, or with more headers than
 * a publisher needs, before anything of it is read. */
static bool message_fits(consumer_batch *b, size_t i)
{
    const oms_msg *m = &b->msgs[i];
    int headers;
    if (m->len > INGEST_MSG_BYTES_MAX) {
        consumer_reject(b, i,
                        "message is %zu bytes: at most %d bytes of CSV per message; "
                        "nothing of it was imported",
                        m->len, INGEST_MSG_BYTES_MAX);
        return false;
    }
    if ((headers = header_count(m)) > INGEST_HEADERS_MAX) {
        consumer_reject(b, i,
                        "message has %d headers: at most %d per message; nothing of it "
                        "was imported",
                        headers, INGEST_HEADERS_MAX);
        return false;
    }
    return true;
}

/* Copies header Oms-Content-Sha256 (64 hex digits, lowercased) into out, ""
 * when absent; false (the message rejected) when it is malformed. */
static bool content_sha_of(consumer_batch *b, size_t i, char out[SHA256_HEX_LEN + 1])
{
    const char *v = oms_msg_header(&b->msgs[i], ORDER_CSV_HDR_CONTENT_SHA256);
    size_t n = 0;
    out[0] = '\0';
    if (v == NULL)
        return true;
    for (; n < SHA256_HEX_LEN && strchr("0123456789abcdefABCDEF", v[n]) && v[n]; n++)
        out[n] = (char)(v[n] >= 'A' && v[n] <= 'F' ? v[n] + 32 : v[n]);
    out[n] = '\0';
    if (n == SHA256_HEX_LEN && v[n] == '\0')
        return true;
    out[0] = '\0';
    consumer_reject(b, i, "header %s \"%.80s\" must be 64 hexadecimal digits (a SHA-256)",
                    ORDER_CSV_HDR_CONTENT_SHA256, v);
    return false;
}

static oms_status apply_message(ingest_ctx *ctx, consumer_batch *b, size_t i, pgcopy *copy)
{
    const oms_msg *m = &b->msgs[i];
    const char *import_id = oms_msg_header(m, INGEST_HDR_IMPORT_ID);
    int64_t end_rows = 0, first_row = 0, chunk_no = 0;
    bool has_end = false, has_first = false, has_chunk = false;
    oms_status s;

    if (!message_fits(b, i))
        return OMS_OK;
    if (import_id != NULL && !import_id_ok(import_id)) {
        consumer_reject(b, i,
                        "header %s \"%.80s\" must be 1 to 128 printable characters and "
                        "must not start with \"live:\"",
                        INGEST_HDR_IMPORT_ID, import_id);
        return OMS_OK;
    }
    /* With first_row and rows per message bounded, the last row number,
     * INGEST_ROW_NUMBER_MAX + INGEST_CHUNK_ROWS_MAX, is far from INT32_MAX. */
    if (header_int(b, i, INGEST_HDR_IMPORT_END, "row count", 0, INGEST_ROW_NUMBER_MAX, &end_rows,
                   &has_end) != OMS_OK ||
        header_int(b, i, INGEST_HDR_FIRST_ROW, "row number", 1, INGEST_ROW_NUMBER_MAX, &first_row,
                   &has_first) != OMS_OK ||
        header_int(b, i, INGEST_HDR_CHUNK, "chunk number", 0, INGEST_ROW_NUMBER_MAX, &chunk_no,
                   &has_chunk) != OMS_OK)
        return OMS_OK;
    if (has_end && import_id == NULL) {
        consumer_reject(b, i, "header %s needs %s", INGEST_HDR_IMPORT_END, INGEST_HDR_IMPORT_ID);
        return OMS_OK;
    }
    if (has_end)
        return apply_end(b, i, import_id, end_rows);

    chunk c = {.ctx = ctx, .import_id = import_id, .now_ms = oms_now_ms()};
    if (!content_sha_of(b, i, c.content_sha))
        return OMS_OK;
    s = chunk_parse(&c, m, (int)first_row);
    if (s == OMS_EINVAL) {
        consumer_reject(b, i, "%s", c.unreadable);
        s = OMS_OK;
    } else if (s == OMS_OK && c.n > 0) {
        s = price_lines(b->conn, &c);
        if (s == OMS_OK)
            s = import_id ? register_file(b->conn, &c) : register_live(b->conn, &c);
        if (s == OMS_OK)
            s = write_rows(&c, copy, b, m->event_id);
    }
    chunk_fini(&c);
    return s;
}

oms_status ingest_apply_rows(void *arg, consumer_batch *b)
{
    ingest_ctx *ctx = arg;
    pgcopy copy;
    oms_status s = OMS_OK;

    pgcopy_init(&copy);
    for (size_t i = 0; i < b->n && s == OMS_OK; i++)
        if (!b->msgs[i].duplicate && !b->msgs[i].rejected)
            s = apply_message(ctx, b, i, &copy);
    if (s == OMS_OK)
        s = flush_if_full(b, &copy, 0);
    pgcopy_fini(&copy);
    return s;
}
