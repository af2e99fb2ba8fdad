/*
 * ingest_seal.c - sealing imports into orders.
 *
 * One seal is one transaction (one big import, or several small ones, or a
 * group of live ones), serialised across replicas by an advisory
 * lock: (1) reject rows of orders that contradict themselves (another
 * customer) or whose total is absurd, (2) reject rows of orders that already
 * exist (a re-imported file), (3) reject the remaining rows of any order with
 * a rejected row, (4) stream the surviving rows, grouped by order, into the
 * orders table and order.created events, (5) publish every rejection, and
 * (6) record the counts and publish import.completed. Steps 1-3 are
 * set-based SQL; 4-5 read through a cursor so memory stays flat.
 */
#include "ingest.h"

#include "log.h"
#include "metrics.h"
#include "pgcopy.h"
#include "pgworker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEAL_PAGE_ROWS 8000
#define LIVE_SEAL_MAX "500"
#define SEAL_ANALYZE_ORDERS 5000 /* a seal creating this many refreshes statistics */
#define SEAL_FILE_ROWS 50000     /* small file imports are sealed together up to this */
#define ORDER_TOTAL_MAX_CENTS "100000000000000" /* 1,000,000,000,000.00 */

/* ---- rejections (set-based) ------------------------------------------ */

static const char *const SQL_BAD_ORDERS =
    "CREATE TEMP TABLE seal_bad ON COMMIT DROP AS"
    " SELECT import_id, order_id, min(customer_id) <> max(customer_id) AS contradicts,"
    "        sum(qty::bigint * unit_price_cents) AS total"
    " FROM import_rows WHERE import_id = ANY($1::text[]) AND reason IS NULL"
    " GROUP BY import_id, order_id"
    " HAVING min(customer_id) <> max(customer_id)"
    "     OR sum(qty::bigint * unit_price_cents) > " ORDER_TOTAL_MAX_CENTS;

static const char *const SQL_CONTRADICTIONS =
    "WITH firsts AS ("
    "  SELECT DISTINCT ON (r.import_id, r.order_id) r.import_id, r.order_id, r.row_no, "
    "r.customer_id"
    "  FROM import_rows r JOIN seal_bad b USING (import_id, order_id)"
    "  WHERE b.contradicts AND r.reason IS NULL ORDER BY r.import_id, r.order_id, r.row_no)"
    " UPDATE import_rows r SET field = 'customer_id',"
    "  reason = format('row %s: customer_id \"%s\" contradicts row %s of order %s (customer_id "
    "\"%s\")',"
    "                  r.row_no, r.customer_id, f.row_no, r.order_id, f.customer_id)"
    " FROM firsts f WHERE r.import_id = f.import_id AND r.order_id = f.order_id"
    "  AND r.reason IS NULL AND r.customer_id <> f.customer_id";

static const char *const SQL_TOO_BIG =
    "UPDATE import_rows r SET field = '',"
    "  reason = format('row %s: order %s not created: its total exceeds 1,000,000,000,000.00',"
    "                  r.row_no, r.order_id)"
    " FROM seal_bad b WHERE NOT b.contradicts AND r.import_id = b.import_id"
    "  AND r.order_id = b.order_id AND r.reason IS NULL";

/* Existing orders are looked up by primary key for the (distinct) order ids
 * of the batch: a plain join may hash the whole orders table, which grows
 * without bound (measured: 350 ms per seal at 370,000 orders). */
static const char *const SQL_DUPLICATES =
    "WITH existing AS (SELECT order_id FROM orders WHERE order_id = ANY((SELECT array_agg(DISTINCT"
    "   order_id) FROM import_rows WHERE import_id = ANY($1::text[]) AND reason IS NULL)::text[]))"
    " UPDATE import_rows r SET field = 'order_id',"
    "  reason = format('row %s: order %s already exists (created by an earlier import);"
    " a row for an existing order is a duplicate', r.row_no, r.order_id)"
    " FROM existing e WHERE r.import_id = ANY($1::text[]) AND r.reason IS NULL"
    "  AND r.order_id = e.order_id";

/* Imports sealed together may carry the same order: the import that arrived
 * first keeps it (its rows may still fail on their own), the others' rows are
 * duplicates; two creations of one order would fail the whole seal forever. */
static const char *const SQL_SAME_SEAL =
    "WITH shared AS (SELECT order_id FROM import_rows"
    "   WHERE import_id = ANY($1::text[]) AND order_id <> ''"
    "   GROUP BY order_id HAVING count(DISTINCT import_id) > 1)"
    " UPDATE import_rows r SET field = 'order_id',"
    "  reason = format('row %s: order %s is also in import %s, received earlier;"
    " a row for an existing order is a duplicate', r.row_no, r.order_id, d.first_import)"
    " FROM (SELECT DISTINCT ON (x.order_id) x.order_id, x.import_id AS first_import"
    "       FROM import_rows x JOIN imports i ON i.import_id = x.import_id"
    "       WHERE x.import_id = ANY($1::text[]) AND x.order_id IN (SELECT order_id FROM shared)"
    "       ORDER BY x.order_id, i.first_row_at, x.import_id) d"
    " WHERE r.import_id = ANY($1::text[]) AND r.reason IS NULL AND r.order_id = d.order_id"
    "  AND r.import_id <> d.first_import";

static const char *const SQL_CASCADE =
    "UPDATE import_rows r SET field = '',"
    "  reason = format('row %s: order %s not created: row %s was rejected',"
    "                  r.row_no, r.order_id, b.bad_row)"
    " FROM (SELECT import_id, order_id, min(row_no) AS bad_row FROM import_rows"
    "       WHERE import_id = ANY($1::text[]) AND reason IS NOT NULL AND order_id <> ''"
    "       GROUP BY import_id, order_id) b"
    " WHERE r.import_id = b.import_id AND r.order_id = b.order_id AND r.reason IS NULL";

static oms_status reject_invalid_orders(PGconn *conn, const char *ids, size_t n_imports)
{
    const char *params[] = {ids};
    PGresult *res = NULL;
    oms_status s;
    /* A big import was just COPYed in: without fresh statistics the planner
     * expects one row and sorts where it should hash. ANALYZE samples a fixed
     * number of rows, so it stays cheap however large the table grows. */
    if ((s = pg_query(conn, "seal size",
                      "SELECT 1 FROM imports WHERE import_id = ANY($1::text[])"
                      " AND received_rows > 50000 LIMIT 1",
                      1, params, PGRES_TUPLES_OK, &res)) != OMS_OK)
        return s;
    bool big = PQntuples(res) > 0;
    PQclear(res);
    if (big && (s = pg_exec(conn, "ANALYZE import_rows")) != OMS_OK)
        return s;
    /* A seal of small imports reads their rows through the indexes on
     * import_id and order_id. The statistics of import_rows lag far behind
     * while imports stream in (one import id once seemed to be the whole
     * table), and the planner then scanned all of import_rows once per
     * import: 0.5 s per seal, growing with history. So such a seal gets no
     * sequential scan; a big import, just analyzed, is planned freely (index
     * scans over a million rows tripled its seal). */
    if (!big && (s = pg_exec(conn, "SET LOCAL enable_seqscan = off")) != OMS_OK)
        return s;
    if ((s = pg_query(conn, "seal bad orders", SQL_BAD_ORDERS, 1, params, PGRES_COMMAND_OK,
                      &res)) != OMS_OK)
        return s;
    /* Usually no order is bad; when some are, the planner must know how few
     * before joining them with import_rows. */
    bool any_bad = atol(PQcmdTuples(res)) > 0;
    PQclear(res);
    if (any_bad && ((s = pg_exec(conn, "ANALYZE seal_bad")) != OMS_OK ||
                    (s = pg_exec(conn, SQL_CONTRADICTIONS)) != OMS_OK ||
                    (s = pg_exec(conn, SQL_TOO_BIG)) != OMS_OK))
        return s;
    if ((s = pg_query(conn, "seal duplicates", SQL_DUPLICATES, 1, params, PGRES_COMMAND_OK,
                      NULL)) != OMS_OK)
        return s;
    /* Only imports sealed together can share an order (a big import is
     * sealed alone, and grouping its million rows costs seconds). */
    if (n_imports > 1 && (s = pg_query(conn, "seal same-seal duplicates", SQL_SAME_SEAL, 1, params,
                                       PGRES_COMMAND_OK, NULL)) != OMS_OK)
        return s;
    return pg_query(conn, "seal cascade", SQL_CASCADE, 1, params, PGRES_COMMAND_OK, NULL);
}

/* ---- orders (streamed) ----------------------------------------------- */

/* The order being assembled from consecutive rows; strings owned. */
typedef struct order_builder {
    char *import_id, *order_id, *customer_id, *email, *name, *currency, *phone, *address;
    int64_t placed_at_ms, total_cents;
    Oms__V1__OrderLine *lines;
    Oms__V1__OrderLine **line_ptrs;
    size_t n_lines, cap;
} order_builder;

typedef struct seal_run {
    ingest_ctx *ctx;
    PGconn *conn;
    outbox_batch *ob;
    pgcopy orders;
    order_builder cur;
    long orders_created;
    oms_status status;
} seal_run;

static void builder_reset(order_builder *o)
{
    free(o->import_id), free(o->order_id), free(o->customer_id);
    free(o->email), free(o->name), free(o->currency), free(o->phone), free(o->address);
    for (size_t i = 0; i < o->n_lines; i++) {
        free(o->lines[i].sku);
        free(o->lines[i].product_name);
    }
    o->import_id = o->order_id = o->customer_id = o->email = o->name = o->currency = NULL;
    o->phone = o->address = NULL;
    o->n_lines = 0;
    o->total_cents = 0;
}

static void builder_fini(order_builder *o)
{
    builder_reset(o);
    free(o->lines);
    free(o->line_ptrs);
}

/* The order keeps the first non-empty value its rows give. */
static oms_status keep_first(char **held, const char *value)
{
    if (**held != '\0' || *value == '\0')
        return OMS_OK;
    free(*held);
    *held = strdup(value);
    return *held ? OMS_OK : OMS_ENOMEM;
}

static oms_status builder_add_line(order_builder *o, PGresult *p, int r)
{
    if (o->n_lines == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 8;
        Oms__V1__OrderLine *lines = realloc(o->lines, cap * sizeof *lines);
        if (lines == NULL)
            return OMS_ENOMEM;
        o->lines = lines;
        Oms__V1__OrderLine **ptrs = realloc(o->line_ptrs, cap * sizeof *ptrs);
        if (ptrs == NULL)
            return OMS_ENOMEM;
        o->line_ptrs = ptrs;
        o->cap = cap;
    }
    Oms__V1__OrderLine *l = &o->lines[o->n_lines];
    oms__v1__order_line__init(l);
    l->sku = strdup(PQgetvalue(p, r, 5));
    l->product_name = strdup(PQgetvalue(p, r, 6));
    l->qty = atoi(PQgetvalue(p, r, 7));
    l->unit_price_cents = atoll(PQgetvalue(p, r, 8));
    o->n_lines++;
    if (l->sku == NULL || l->product_name == NULL)
        return OMS_ENOMEM;
    /* Bounded by SQL_BAD_ORDERS: the sum cannot overflow. */
    o->total_cents += (int64_t)l->qty * l->unit_price_cents;
    if (*o->email == '\0' && *PQgetvalue(p, r, 3) != '\0') {
        free(o->email);
        o->email = strdup(PQgetvalue(p, r, 3));
    }
    if (*o->name == '\0' && *PQgetvalue(p, r, 4) != '\0') {
        free(o->name);
        o->name = strdup(PQgetvalue(p, r, 4));
    }
    if (o->email == NULL || o->name == NULL)
        return OMS_ENOMEM;
    oms_status s = keep_first(&o->phone, PQgetvalue(p, r, 11));
    return s == OMS_OK ? keep_first(&o->address, PQgetvalue(p, r, 12)) : s;
}

static oms_status builder_start(order_builder *o, PGresult *p, int r)
{
    builder_reset(o);
    o->import_id = strdup(PQgetvalue(p, r, 0));
    o->order_id = strdup(PQgetvalue(p, r, 1));
    o->customer_id = strdup(PQgetvalue(p, r, 2));
    o->email = strdup("");
    o->name = strdup("");
    o->phone = strdup("");
    o->address = strdup("");
    o->currency = strdup(PQgetvalue(p, r, 9));
    o->placed_at_ms = atoll(PQgetvalue(p, r, 10));
    if (!o->import_id || !o->order_id || !o->customer_id || !o->email || !o->name || !o->currency ||
        !o->phone || !o->address)
        return OMS_ENOMEM;
    return OMS_OK;
}

/* Writes the finished order: a row for the orders table and order.created. */
static oms_status emit_order(seal_run *run)
{
    order_builder *o = &run->cur;
    Oms__V1__OrderCreated ev = OMS__V1__ORDER_CREATED__INIT;
    Oms__V1__EventMeta meta;
    char id[37];
    if (o->order_id == NULL || o->n_lines == 0)
        return OMS_OK;
    for (size_t i = 0; i < o->n_lines; i++)
        o->line_ptrs[i] = &o->lines[i];
    outbox_meta_init(&meta, id, "ingest", o->order_id, "");
    ev.meta = &meta;
    ev.order_id = o->order_id;
    ev.customer_id = o->customer_id;
    ev.customer_email = o->email;
    ev.customer_name = o->name;
    ev.n_lines = o->n_lines;
    ev.lines = o->line_ptrs;
    ev.total_cents = o->total_cents;
    ev.currency = o->currency;
    ev.placed_at_ms = o->placed_at_ms;
    ev.import_id = ingest_is_live(o->import_id) ? "" : o->import_id;
    ev.customer_phone = o->phone;
    ev.customer_address = o->address;

    pgcopy_text(&run->orders, o->order_id);
    pgcopy_text(&run->orders, o->import_id);
    pgcopy_text(&run->orders, o->customer_id);
    pgcopy_text(&run->orders, o->email);
    pgcopy_text(&run->orders, o->name);
    pgcopy_int(&run->orders, o->total_cents);
    pgcopy_text(&run->orders, o->currency);
    pgcopy_int(&run->orders, o->placed_at_ms);
    pgcopy_int(&run->orders, (int64_t)o->n_lines);
    pgcopy_text(&run->orders, id);
    pgcopy_text(&run->orders, o->phone);
    pgcopy_text(&run->orders, o->address);
    pgcopy_end_row(&run->orders);
    run->orders_created++;
    return outbox_batch_add_message(run->ob, "order.created", id, &ev.base);
}

static oms_status flush_orders(seal_run *run)
{
    oms_status s = pgcopy_send(&run->orders, run->conn,
                               "COPY orders (order_id, import_id, customer_id, customer_email,"
                               " customer_name, total_cents, currency, placed_at_ms, line_count,"
                               " created_event_id, customer_phone, customer_address) FROM STDIN");
    if (s == OMS_OK)
        s = outbox_batch_flush(run->ob, run->conn);
    return s;
}

static bool same_order(const order_builder *o, PGresult *p, int r)
{
    return o->order_id != NULL && strcmp(o->import_id, PQgetvalue(p, r, 0)) == 0 &&
           strcmp(o->order_id, PQgetvalue(p, r, 1)) == 0;
}

static oms_status on_valid_page(void *arg, PGresult *page)
{
    seal_run *run = arg;
    oms_status s = OMS_OK;
    for (int r = 0; r < PQntuples(page) && s == OMS_OK; r++) {
        if (!same_order(&run->cur, page, r)) {
            if ((s = emit_order(run)) == OMS_OK)
                s = builder_start(&run->cur, page, r);
        }
        if (s == OMS_OK)
            s = builder_add_line(&run->cur, page, r);
    }
    /* The last order of the page may go on in the next one: it stays in cur. */
    return s == OMS_OK ? flush_orders(run) : s;
}

static oms_status on_rejected_page(void *arg, PGresult *page)
{
    seal_run *run = arg;
    oms_status s = OMS_OK;
    for (int r = 0; r < PQntuples(page) && s == OMS_OK; r++)
        s = ingest_emit_rejected(run->ob, PQgetvalue(page, r, 0), atoi(PQgetvalue(page, r, 1)),
                                 PQgetvalue(page, r, 2), PQgetvalue(page, r, 3),
                                 PQgetvalue(page, r, 4), "");
    return s == OMS_OK ? outbox_batch_flush(run->ob, run->conn) : s;
}

static oms_status create_orders(seal_run *run, const char *ids)
{
    const char *params[] = {ids};
    oms_status s = pg_cursor_each(
        run->conn,
        "SELECT import_id, order_id, customer_id, customer_email, customer_name, sku,"
        " product_name, qty, unit_price_cents, currency, placed_at_ms, customer_phone,"
        " customer_address FROM import_rows WHERE import_id = ANY($1::text[]) AND reason IS NULL"
        " ORDER BY import_id, order_id, row_no, line_no",
        1, params, SEAL_PAGE_ROWS, on_valid_page, run);
    if (s == OMS_OK && (s = emit_order(run)) == OMS_OK)
        s = flush_orders(run);
    if (s == OMS_OK)
        s = pg_cursor_each(run->conn,
                           "SELECT import_id, row_no, order_id, field, reason FROM import_rows"
                           " WHERE import_id = ANY($1::text[]) AND reason IS NOT NULL"
                           " AND line_no = 0 ORDER BY import_id, row_no",
                           1, params, SEAL_PAGE_ROWS, on_rejected_page, run);
    return s;
}

/* ---- counts and import.completed ------------------------------------- */

static oms_status emit_completed(seal_run *run, PGresult *res, int r)
{
    Oms__V1__ImportCompleted ev = OMS__V1__IMPORT_COMPLETED__INIT;
    Oms__V1__EventMeta meta;
    char id[37];
    int expected = atoi(PQgetvalue(res, r, 2)), received = atoi(PQgetvalue(res, r, 3));
    outbox_meta_init(&meta, id, "ingest", PQgetvalue(res, r, 0), "");
    ev.meta = &meta;
    ev.import_id = PQgetvalue(res, r, 0);
    ev.rows = expected > received ? expected : received;
    ev.valid_rows = atoi(PQgetvalue(res, r, 4));
    ev.rejected_rows = atoi(PQgetvalue(res, r, 5));
    ev.orders = atoi(PQgetvalue(res, r, 6));
    ev.missing_rows = expected > received ? expected - received : 0;
    ev.timed_out = strcmp(PQgetvalue(res, r, 7), "t") == 0;
    log_info("import sealed", "import_id", ev.import_id, "orders", PQgetvalue(res, r, 6),
             "rejected_rows", PQgetvalue(res, r, 5), "timed_out", ev.timed_out ? "true" : "false",
             NULL);
    metrics_counter_add(run->ctx->m, "oms_ingest_imports_sealed_total",
                        ev.timed_out ? "outcome=\"timed_out\"" : "outcome=\"complete\"", 1);
    return outbox_batch_add_message(run->ob, "import.completed", id, &ev.base);
}

static oms_status finish_imports(seal_run *run, const char *ids)
{
    const char *params[] = {ids};
    PGresult *res = NULL;
    oms_status s = pg_query(
        run->conn, "seal finish",
        "UPDATE imports i SET sealed_at = now(),"
        " timed_out = NOT (kind = 'live' OR (expected_rows IS NOT NULL"
        "                  AND received_rows >= expected_rows)),"
        /* Every row of an order that was not created carries a reason, so
         * the orders are the distinct order ids of the valid rows (orders has
         * no index on import_id: counting there scanned the whole table). */
        " (valid_rows, rejected_rows, orders) = (SELECT count(*) FILTER (WHERE reason IS NULL"
        "   AND line_no = 0), count(*) FILTER (WHERE reason IS NOT NULL AND line_no = 0),"
        "   count(DISTINCT order_id) FILTER (WHERE reason IS NULL) FROM import_rows r"
        "   WHERE r.import_id = i.import_id)"
        " WHERE import_id = ANY($1::text[])"
        " RETURNING import_id, kind, coalesce(expected_rows, received_rows), received_rows,"
        "  valid_rows, rejected_rows, orders, timed_out",
        1, params, PGRES_TUPLES_OK, &res);
    long valid = 0, rejected = 0;
    for (int r = 0; s == OMS_OK && r < PQntuples(res); r++) {
        valid += atol(PQgetvalue(res, r, 4));
        rejected += atol(PQgetvalue(res, r, 5));
        if (strcmp(PQgetvalue(res, r, 1), "file") == 0)
            s = emit_completed(run, res, r);
    }
    if (s == OMS_OK) {
        metrics_counter_add(run->ctx->m, "oms_ingest_rows_total", "result=\"valid\"",
                            (double)valid);
        metrics_counter_add(run->ctx->m, "oms_ingest_rows_total", "result=\"rejected\"",
                            (double)rejected);
        s = outbox_batch_flush(run->ob, run->conn);
    }
    PQclear(res);
    return s;
}

/* ---- one seal transaction -------------------------------------------- */

/* Locks ready imports for one seal: file imports first, in arrival order,
 * as many as fit in SEAL_FILE_ROWS rows (always at least one, so a big import
 * is sealed alone); else up to LIVE_SEAL_MAX live imports. Returns them as an
 * array literal in *ids (empty when none). Imports locked but not taken stay
 * locked until COMMIT only; the next round takes them. */
static oms_status claim_ready(ingest_ctx *ctx, PGconn *conn, pg_array *ids)
{
    char timeout[24], seal[24];
    snprintf(timeout, sizeof timeout, "%lld", (long long)ctx->import_timeout_ms);
    snprintf(seal, sizeof seal, "%lld", (long long)ctx->seal_ms);
    const char *p1[] = {timeout}, *p2[] = {seal};
    PGresult *res = NULL;
    oms_status s = pg_query(conn, "claim file imports",
                            "SELECT import_id, received_rows FROM imports"
                            " WHERE sealed_at IS NULL AND kind = 'file'"
                            " AND ((expected_rows IS NOT NULL AND received_rows >= expected_rows)"
                            "      OR last_row_at < now() - $1::bigint * interval '1 ms')"
                            " ORDER BY first_row_at LIMIT " LIVE_SEAL_MAX " FOR UPDATE SKIP LOCKED",
                            1, p1, PGRES_TUPLES_OK, &res);
    long rows = 0;
    for (int r = 0; s == OMS_OK && r < PQntuples(res); r++) {
        rows += atol(PQgetvalue(res, r, 1));
        if (r > 0 && rows > SEAL_FILE_ROWS)
            break;
        if (pg_array_add(ids, PQgetvalue(res, r, 0)) != OMS_OK)
            s = OMS_ENOMEM;
    }
    if (s == OMS_OK && ids->count == 0) {
        PQclear(res);
        res = NULL;
        s = pg_query(conn, "claim live imports",
                     "SELECT import_id FROM imports WHERE sealed_at IS NULL AND kind = 'live'"
                     " AND last_row_at < now() - $1::bigint * interval '1 ms'"
                     " ORDER BY last_row_at LIMIT " LIVE_SEAL_MAX " FOR UPDATE SKIP LOCKED",
                     1, p2, PGRES_TUPLES_OK, &res);
        for (int r = 0; s == OMS_OK && r < PQntuples(res); r++)
            if (pg_array_add(ids, PQgetvalue(res, r, 0)) != OMS_OK)
                s = OMS_ENOMEM;
    }
    PQclear(res);
    return s;
}

/* True when the planner thinks the orders table (nearly) empty: never
 * analyzed, or analyzed while it held fewer orders than one big seal adds.
 * Once it knows the table is large, its plans are those of a large table and
 * autovacuum keeps the figures current. */
static bool orders_stats_stale(PGconn *conn)
{
    PGresult *res = NULL;
    bool stale = false;
    if (pg_query(conn, "orders statistics",
                 "SELECT reltuples FROM pg_class WHERE oid = 'orders'::regclass", 0, NULL,
                 PGRES_TUPLES_OK, &res) == OMS_OK &&
        PQntuples(res) == 1)
        stale = atof(PQgetvalue(res, 0, 0)) < (double)SEAL_ANALYZE_ORDERS;
    PQclear(res);
    return stale;
}

static oms_status seal_next(ingest_ctx *ctx, PGconn *conn, int *sealed)
{
    pg_array ids;
    outbox_batch ob;
    seal_run run = {.ctx = ctx, .conn = conn, .ob = &ob, .status = OMS_OK};
    PGresult *res = NULL;
    oms_status s;

    *sealed = 0;
    pg_array_init(&ids);
    outbox_batch_init(&ob);
    pgcopy_init(&run.orders);
    if ((s = pg_exec(conn, "BEGIN")) != OMS_OK)
        goto out;
    /* One sealer at a time: seals compare against orders other seals create. */
    s = pg_query(conn, "seal lock", "SELECT pg_try_advisory_xact_lock(hashtext('oms:ingest:seal'))",
                 0, NULL, PGRES_TUPLES_OK, &res);
    if (s != OMS_OK || strcmp(PQgetvalue(res, 0, 0), "t") != 0)
        goto out;
    if ((s = pg_exec(conn, "SET LOCAL work_mem = '64MB'")) != OMS_OK ||
        (s = claim_ready(ctx, conn, &ids)) != OMS_OK || ids.count == 0)
        goto out;
    const char *literal = pg_array_literal(&ids);
    int64_t t0 = oms_mono_ms(), t1, t2;
    if ((s = reject_invalid_orders(conn, literal, ids.count)) != OMS_OK)
        goto out;
    t1 = oms_mono_ms();
    if ((s = create_orders(&run, literal)) != OMS_OK)
        goto out;
    t2 = oms_mono_ms();
    if ((s = finish_imports(&run, literal)) != OMS_OK || (s = pg_exec(conn, "COMMIT")) != OMS_OK)
        goto out;
    char timing[96];
    snprintf(timing, sizeof timing, "checks %lld ms, orders %lld ms, total %lld ms",
             (long long)(t1 - t0), (long long)(t2 - t1), (long long)(oms_mono_ms() - t0));
    log_debug("seal committed", "imports", literal, "timing", timing, NULL);
    *sealed = (int)ids.count;
    metrics_counter_add(ctx->m, "oms_ingest_orders_created_total", "", (double)run.orders_created);
    /* Thousands of orders just arrived by COPY into a table the statistics
     * think is (nearly) empty: until autovacuum analyzes it, the status
     * consumers' joins are planned for an empty table (measured: 8x slower
     * batches on a new deployment). A table already known to be large is
     * left to autovacuum: ANALYZE costs up to ~0.5 s (measured 54 us per
     * order when it ran after every seal that doubled the table). */
    if (run.orders_created >= SEAL_ANALYZE_ORDERS && orders_stats_stale(conn))
        pg_exec(conn, "ANALYZE orders");
out:
    pg_rollback(conn);
    PQclear(res);
    builder_fini(&run.cur);
    pgcopy_fini(&run.orders);
    outbox_batch_fini(&ob);
    pg_array_fini(&ids);
    return s;
}

oms_status ingest_seal_ready(ingest_ctx *ctx, PGconn *conn, int *sealed)
{
    oms_status s;
    int n = 0;
    *sealed = 0;
    while ((s = seal_next(ctx, conn, &n)) == OMS_OK && n > 0)
        *sealed += n;
    return s;
}

/* ---- the sealer thread ----------------------------------------------- */

#define SEAL_POLL_MS 50 /* between rounds that found nothing more to seal */

/* pgworker_round_fn: seals everything ready, then the worker waits. */
static oms_status seal_round(void *ctx, PGconn **conn, bool *more)
{
    int sealed = 0;
    *more = false;
    return ingest_seal_ready(ctx, *conn, &sealed);
}

oms_status ingest_sealer_start(ingest_ctx *ctx)
{
    metrics_counter_declare(ctx->m, "oms_ingest_orders_created_total", "Orders sealed and created");
    metrics_counter_declare(ctx->m, "oms_ingest_rows_total", "Rows of sealed imports, by result");
    metrics_counter_declare(ctx->m, "oms_ingest_imports_sealed_total",
                            "Imports sealed, complete or timed out");
    metrics_counter_declare(ctx->m, "oms_ingest_order_transitions_total",
                            "Orders moved to a status (reserved, paid, failed)");
    return pgworker_start(&ctx->sealer, ctx->dsn, "ingest", "ingest-sealer", SEAL_POLL_MS, 0,
                          seal_round, ctx);
}

void ingest_sealer_stop(ingest_ctx *ctx)
{
    pgworker_stop(ctx->sealer);
    ctx->sealer = NULL;
}
