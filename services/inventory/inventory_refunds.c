/*
 * inventory_refunds.c - applying refund.processed with restock: sold units
 * go back on hand, a fetched batch per transaction.
 *
 *   - A refund without restock changes nothing.
 *   - With lines named, those SKUs are restocked, each bounded by what the
 *     order bought of it and not restocked yet.
 *   - Without lines, a refund that leaves the order refunded in full (full)
 *     restocks everything of the order not restocked yet; a partial one
 *     restocks nothing (which goods came back is not known).
 *   - Only a committed reservation (a sale) has units to give back; a refund
 *     that arrives while the order's reservation is still waiting for its
 *     payment.settled rolls the batch back to be retried.
 *
 * Steps: lock the batch's reservations by order id with their lines (as
 * inventory_payments.c does), read which refunds were restocked before
 * (restocks, keyed by refund id: a refund arriving again under another event
 * id changes nothing), decide in event order in memory, then lock the
 * products by SKU and write with one UPDATE of products, one of
 * reservation_lines and one INSERT of restocks. Lock order is reservations,
 * then products, as in every inventory consumer.
 */
#include "inventory.h"

#include "log.h"
#include "strs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct line_state {
    const char *order_id, *sku; /* borrowed from rows */
    int64_t qty, restocked, add;
} line_state;

typedef struct restock_batch {
    consumer_batch *b;
    Oms__V1__RefundProcessed **events; /* per message; NULL when nothing to do */
    PGresult *rows;                    /* order_id, status, sku, qty, restocked */
    line_state *lines;                 /* rows with a line, in row order (order id, sku) */
    size_t n_lines;
    PGresult *done; /* refund ids restocked before */
    const char **done_ids;
    size_t n_done;
    int64_t *units; /* per message: units restocked */
} restock_batch;

static void decode(restock_batch *rb, size_t i)
{
    consumer_batch *b = rb->b;
    const oms_msg *m = &b->msgs[i];
    Oms__V1__RefundProcessed *ev = oms__v1__refund_processed__unpack(NULL, m->len, m->data);
    if (ev == NULL || *ev->order_id == '\0' || *ev->refund_id == '\0') {
        consumer_reject(b, i,
                        "%s: not a valid oms.v1.RefundProcessed (order_id and refund_id "
                        "are required)",
                        m->subject);
        oms__v1__refund_processed__free_unpacked(ev, NULL);
        return;
    }
    for (size_t l = 0; l < ev->n_lines; l++)
        if (ev->lines[l]->qty <= 0) {
            consumer_reject(b, i, "%s %.256s: lines[%zu].qty %d must be positive", m->subject,
                            ev->order_id, l, (int)ev->lines[l]->qty);
            oms__v1__refund_processed__free_unpacked(ev, NULL);
            return;
        }
    if (!ev->restock) {
        oms__v1__refund_processed__free_unpacked(ev, NULL);
        return;
    }
    rb->events[i] = ev;
}

/* ---- reading -------------------------------------------------------------- */

static oms_status read_state(restock_batch *rb)
{
    consumer_batch *b = rb->b;
    pg_array orders, refunds;
    oms_status s = OMS_OK;
    pg_array_init(&orders), pg_array_init(&refunds);
    const char **ids = calloc(b->n, sizeof *ids);
    size_t n = 0;
    if (ids == NULL)
        s = OMS_ENOMEM;
    for (size_t i = 0; s == OMS_OK && i < b->n; i++)
        if (rb->events[i] != NULL) {
            ids[n++] = rb->events[i]->order_id;
            s = pg_array_add(&refunds, rb->events[i]->refund_id) ? OMS_ENOMEM : OMS_OK;
        }
    strs_sort_unique(ids, &n);
    for (size_t k = 0; s == OMS_OK && k < n; k++)
        s = pg_array_add(&orders, ids[k]) ? OMS_ENOMEM : OMS_OK;
    const char *p1[] = {pg_array_literal(&orders)}, *p2[] = {pg_array_literal(&refunds)};
    /* Keyed plans: the consumer's transaction runs with PG_KEYED_PLANS. */
    if (s == OMS_OK)
        s = pg_query(b->conn, "restock reservations lock",
                     "SELECT r.order_id, r.status, l.sku, l.qty, l.restocked FROM reservations r"
                     " LEFT JOIN reservation_lines l ON l.order_id = r.order_id"
                     " WHERE r.order_id = ANY($1::text[])"
                     " ORDER BY r.order_id COLLATE \"C\", l.sku COLLATE \"C\" FOR UPDATE OF r",
                     1, p1, PGRES_TUPLES_OK, &rb->rows);
    if (s == OMS_OK)
        s = pg_query(b->conn, "restocks read",
                     "SELECT refund_id FROM restocks WHERE refund_id = ANY($1::text[])", 1, p2,
                     PGRES_TUPLES_OK, &rb->done);
    free(ids);
    pg_array_fini(&orders), pg_array_fini(&refunds);
    return s;
}

static oms_status index_state(restock_batch *rb)
{
    int n = PQntuples(rb->rows), d = PQntuples(rb->done);
    rb->lines = calloc(n ? (size_t)n : 1, sizeof *rb->lines);
    rb->done_ids = calloc((size_t)d + rb->b->n + 1, sizeof *rb->done_ids);
    if (rb->lines == NULL || rb->done_ids == NULL)
        return OMS_ENOMEM;
    for (int r = 0; r < n; r++) {
        /* Only a sale has units to give back. */
        if (PQgetisnull(rb->rows, r, 2) || strcmp(PQgetvalue(rb->rows, r, 1), "committed") != 0)
            continue;
        rb->lines[rb->n_lines++] = (line_state){PQgetvalue(rb->rows, r, 0),
                                                PQgetvalue(rb->rows, r, 2),
                                                atoll(PQgetvalue(rb->rows, r, 3)),
                                                atoll(PQgetvalue(rb->rows, r, 4)), 0};
    }
    for (int r = 0; r < d; r++)
        rb->done_ids[rb->n_done++] = PQgetvalue(rb->done, r, 0);
    strs_sort_unique(rb->done_ids, &rb->n_done);
    return OMS_OK;
}

/* ---- deciding ---------------------------------------------------------------- */

static int64_t give_back(line_state *l, int64_t wanted)
{
    int64_t left = l->qty - l->restocked - l->add;
    int64_t units = wanted < left ? wanted : left;
    l->add += units;
    return units;
}

/* Units restocked by ev; updates the lines in memory. */
static int64_t decide_one(restock_batch *rb, const Oms__V1__RefundProcessed *ev)
{
    int64_t units = 0;
    for (size_t k = 0; k < rb->n_lines; k++) {
        line_state *l = &rb->lines[k];
        if (strcmp(l->order_id, ev->order_id) != 0)
            continue;
        if (ev->n_lines == 0) {
            if (ev->full)
                units += give_back(l, l->qty);
            continue;
        }
        for (size_t n = 0; n < ev->n_lines; n++)
            if (strcmp(ev->lines[n]->sku, l->sku) == 0)
                units += give_back(l, ev->lines[n]->qty);
    }
    return units;
}

static void decide(restock_batch *rb)
{
    for (size_t i = 0; i < rb->b->n; i++) {
        Oms__V1__RefundProcessed *ev = rb->events[i];
        if (ev == NULL)
            continue;
        if (strs_find(rb->done_ids, rb->n_done, ev->refund_id) >= 0) {
            log_info("refund.processed ignored: refund already restocked", "refund_id",
                     ev->refund_id, "order_id", ev->order_id, NULL);
            oms__v1__refund_processed__free_unpacked(ev, NULL);
            rb->events[i] = NULL;
            consumer_count(rb->b, "oms_inventory_restocks_ignored_total", "", 1);
            continue;
        }
        rb->units[i] = decide_one(rb, ev);
        /* A second copy later in the batch is a repeat. */
        rb->done_ids[rb->n_done++] = ev->refund_id;
        strs_sort_unique(rb->done_ids, &rb->n_done);
    }
}

/* ---- writing ------------------------------------------------------------------ */

static oms_status write_products(restock_batch *rb)
{
    const char **skus = calloc(rb->n_lines + 1, sizeof *skus);
    int64_t *add = calloc(rb->n_lines + 1, sizeof *add);
    size_t n = 0;
    pg_cols c;
    oms_status s = skus && add ? OMS_OK : OMS_ENOMEM;
    pg_cols_init(&c, 2);
    for (size_t k = 0; s == OMS_OK && k < rb->n_lines; k++)
        if (rb->lines[k].add > 0)
            skus[n++] = rb->lines[k].sku;
    strs_sort_unique(skus, &n);
    for (size_t k = 0; s == OMS_OK && k < rb->n_lines; k++)
        if (rb->lines[k].add > 0)
            add[strs_find(skus, n, rb->lines[k].sku)] += rb->lines[k].add;
    for (size_t k = 0; s == OMS_OK && k < n; k++) {
        pg_cols_text(&c, 0, skus[k]);
        pg_cols_int(&c, 1, add[k]);
    }
    /* $1 alone locks the products, $1 and $2 then update them. */
    const char *const *params = pg_cols_params(&c);
    if (s == OMS_OK && params == NULL)
        s = c.status != OMS_OK ? c.status : OMS_ENOMEM;
    if (s == OMS_OK && n > 0)
        s = pg_query(rb->b->conn, "restock products lock",
                     "SELECT 1 FROM products WHERE sku = ANY($1::text[])"
                     " ORDER BY sku COLLATE \"C\" FOR UPDATE",
                     1, params, PGRES_TUPLES_OK, NULL);
    if (s == OMS_OK && n > 0)
        s = pg_query(rb->b->conn, "restock products",
                     "UPDATE products p SET on_hand = p.on_hand + x.add, updated_at = now()"
                     " FROM unnest($1::text[], $2::bigint[]) AS x(sku, add) WHERE p.sku = x.sku",
                     2, params, PGRES_COMMAND_OK, NULL);
    pg_cols_fini(&c);
    free(skus), free(add);
    return s;
}

static oms_status write_lines(restock_batch *rb)
{
    pg_cols c;
    oms_status s;
    pg_cols_init(&c, 3);
    for (size_t k = 0; k < rb->n_lines; k++) {
        const line_state *l = &rb->lines[k];
        if (l->add > 0) {
            pg_cols_text(&c, 0, l->order_id);
            pg_cols_text(&c, 1, l->sku);
            pg_cols_int(&c, 2, l->add);
        }
    }
    if ((s = c.status) == OMS_OK && pg_cols_rows(&c) > 0)
        s = pg_cols_query(rb->b->conn, "restock lines",
                          "UPDATE reservation_lines l SET restocked = l.restocked + x.add"
                          " FROM unnest($1::text[], $2::text[], $3::bigint[]) AS x(o, sku, add)"
                          " WHERE l.order_id = x.o AND l.sku = x.sku",
                          &c, PGRES_COMMAND_OK, NULL);
    pg_cols_fini(&c);
    return s;
}

static oms_status write_restocks(restock_batch *rb)
{
    pg_cols c;
    oms_status s;
    int64_t total = 0;
    pg_cols_init(&c, 4);
    for (size_t i = 0; i < rb->b->n; i++) {
        const Oms__V1__RefundProcessed *ev = rb->events[i];
        if (ev == NULL)
            continue;
        total += rb->units[i];
        pg_cols_text(&c, 0, ev->refund_id);
        pg_cols_text(&c, 1, ev->order_id);
        pg_cols_int(&c, 2, rb->units[i]);
        pg_cols_text(&c, 3, rb->b->msgs[i].event_id);
    }
    if ((s = c.status) == OMS_OK && pg_cols_rows(&c) > 0)
        s = pg_cols_query(rb->b->conn, "restocks insert",
                          "INSERT INTO restocks (refund_id, order_id, units, event_id)"
                          " SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[])",
                          &c, PGRES_COMMAND_OK, NULL);
    if (s == OMS_OK) {
        consumer_count(rb->b, "oms_inventory_restocks_total", "", (double)pg_cols_rows(&c));
        consumer_count(rb->b, "oms_inventory_restocked_units_total", "", (double)total);
    }
    pg_cols_fini(&c);
    return s;
}

/* A refund can overtake its order's payment.settled here (they travel on
 * different streams): a sale not committed yet is waited for, not skipped. */
static bool sale_in_flight(restock_batch *rb)
{
    for (int r = 0; r < PQntuples(rb->rows); r++)
        if (strcmp(PQgetvalue(rb->rows, r, 1), "reserved") == 0) {
            log_warn("refund.processed before its sale was committed: retried later", "order_id",
                     PQgetvalue(rb->rows, r, 0), NULL);
            return true;
        }
    return false;
}

static oms_status restock(restock_batch *rb)
{
    oms_status s;
    if ((s = read_state(rb)) != OMS_OK)
        return s;
    if (sale_in_flight(rb))
        return OMS_ETRANSIENT;
    if ((s = index_state(rb)) != OMS_OK)
        return s;
    decide(rb);
    if ((s = write_products(rb)) != OMS_OK || (s = write_lines(rb)) != OMS_OK)
        return s;
    return write_restocks(rb);
}

oms_status inv_apply_refunds(void *arg, consumer_batch *b)
{
    (void)arg;
    restock_batch rb = {.b = b};
    size_t n = b->n ? b->n : 1;
    oms_status s = OMS_ENOMEM;
    bool any = false;
    rb.events = calloc(n, sizeof *rb.events);
    rb.units = calloc(n, sizeof *rb.units);
    if (rb.events == NULL || rb.units == NULL)
        goto out;
    for (size_t i = 0; i < b->n; i++) {
        if (!b->msgs[i].duplicate && !b->msgs[i].rejected)
            decode(&rb, i);
        any = any || rb.events[i] != NULL;
    }
    s = any ? restock(&rb) : OMS_OK;
out:
    for (size_t i = 0; rb.events && i < b->n; i++)
        oms__v1__refund_processed__free_unpacked(rb.events[i], NULL);
    free(rb.events), free(rb.units), free(rb.lines), free(rb.done_ids);
    PQclear(rb.rows);
    PQclear(rb.done);
    return s;
}
