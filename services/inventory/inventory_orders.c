/*
 * inventory_orders.c - applying order.created: reserve every line of each
 * order or none, a fetched batch per transaction, a handful of statements
 * whatever its size:
 *
 *   1. claim: insert a reservations row for every order id of the batch
 *      (sorted, ON CONFLICT DO NOTHING RETURNING); an id not returned was
 *      decided on by an earlier batch and is ignored. The primary key makes
 *      a second process holding the same order (a duplicate order.created
 *      under another event id) wait here for the first to commit.
 *   2. lock the products the claimed orders name, sorted by SKU (byte
 *      order), FOR UPDATE: two processes take them in the same order.
 *   3. plan in memory (inventory_plan.c), in event order.
 *   4. write: one UPDATE of products from unnest, one UPDATE of the rejected
 *      reservations, one COPY of reservation_lines, and the events.
 *
 * Lock order across the service is reservations (by order id) before
 * products (by SKU); the payment consumer follows it too.
 */
#include "inventory.h"

#include "log.h"
#include "metrics.h"
#include "pgcopy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ID_MAX_BYTES 256

typedef struct order_batch {
    consumer_batch *b;
    Oms__V1__OrderCreated **events; /* per message; NULL when not applied */
    inv_order *orders;              /* decoded orders, in event order */
    size_t *msg_of;                 /* orders[k] came from b->msgs[msg_of[k]] */
    size_t n_orders;
    inv_line *lines; /* storage for the orders' lines */
    inv_plan plan;
} order_batch;

/* ---- decoding --------------------------------------------------------- */

bool inv_order_valid(consumer_batch *b, size_t i, const Oms__V1__OrderCreated *ev)
{
    const char *subject = b->msgs[i].subject;
    size_t id_len = strlen(ev->order_id);
    int64_t units = 0;
    if (id_len == 0 || id_len > ID_MAX_BYTES) {
        consumer_reject(b, i, "%s: order_id must be 1 to %d bytes, got %zu", subject, ID_MAX_BYTES,
                        id_len);
        return false;
    }
    if (ev->n_lines == 0) {
        consumer_reject(b, i, "%s %.256s: the order has no lines", subject, ev->order_id);
        return false;
    }
    for (size_t l = 0; l < ev->n_lines; l++) {
        const Oms__V1__OrderLine *line = ev->lines[l];
        size_t sku_len = strlen(line->sku);
        if (sku_len == 0 || sku_len > ID_MAX_BYTES) {
            consumer_reject(b, i, "%s %.256s: line %zu: sku must be 1 to %d bytes, got %zu",
                            subject, ev->order_id, l + 1, ID_MAX_BYTES, sku_len);
            return false;
        }
        if (line->qty < 1) {
            consumer_reject(b, i, "%s %.256s: line %zu (%.100s): qty %d must be 1 or more", subject,
                            ev->order_id, l + 1, line->sku, (int)line->qty);
            return false;
        }
        units += line->qty;
    }
    /* Committed and released lines carry a SKU's units as int32. */
    if (units > INT32_MAX) {
        consumer_reject(b, i, "%s %.256s: %lld units in all; at most %d per order", subject,
                        ev->order_id, (long long)units, INT32_MAX);
        return false;
    }
    return true;
}

/* Unpacks and validates every message to apply; builds the planner's orders. */
static oms_status decode_all(order_batch *ob)
{
    consumer_batch *b = ob->b;
    size_t n_lines = 0;
    for (size_t i = 0; i < b->n; i++) {
        const oms_msg *m = &b->msgs[i];
        if (m->duplicate || m->rejected)
            continue;
        Oms__V1__OrderCreated *ev = oms__v1__order_created__unpack(NULL, m->len, m->data);
        if (ev == NULL) {
            consumer_reject(b, i, "%s: payload (%zu bytes) is not a valid oms.v1.OrderCreated",
                            m->subject, m->len);
        } else if (!inv_order_valid(b, i, ev)) {
            oms__v1__order_created__free_unpacked(ev, NULL);
        } else {
            ob->events[i] = ev;
            n_lines += ev->n_lines;
        }
    }
    ob->lines = calloc(n_lines ? n_lines : 1, sizeof *ob->lines);
    if (ob->lines == NULL)
        return OMS_ENOMEM;
    inv_line *next = ob->lines;
    for (size_t i = 0; i < b->n; i++) {
        const Oms__V1__OrderCreated *ev = ob->events[i];
        if (ev == NULL)
            continue;
        for (size_t l = 0; l < ev->n_lines; l++)
            next[l] = (inv_line){ev->lines[l]->sku, ev->lines[l]->qty};
        ob->orders[ob->n_orders] = (inv_order){ev->order_id, next, ev->n_lines, false};
        ob->msg_of[ob->n_orders++] = i;
        next += ev->n_lines;
    }
    return OMS_OK;
}

/* ---- claim and lock ----------------------------------------------------- */

/* Inserts a reservations row per new order id, in sorted order; marks the
 * orders whose id was already there as existing. */
static oms_status claim(order_batch *ob)
{
    const char **ids = calloc(ob->n_orders, sizeof *ids);
    const char **fresh = NULL;
    size_t n_ids = ob->n_orders;
    pg_array arr;
    PGresult *res = NULL;
    oms_status s = ids ? OMS_OK : OMS_ENOMEM;

    pg_array_init(&arr);
    for (size_t k = 0; s == OMS_OK && k < n_ids; k++)
        ids[k] = ob->orders[k].order_id;
    if (s == OMS_OK)
        strs_sort_unique(ids, &n_ids);
    for (size_t k = 0; s == OMS_OK && k < n_ids; k++)
        s = pg_array_add(&arr, ids[k]);
    const char *params[] = {pg_array_literal(&arr)};
    if (s == OMS_OK)
        s = pg_query(ob->b->conn, "reservations claim",
                     "INSERT INTO reservations (order_id, status)"
                     " SELECT o, 'reserved' FROM unnest($1::text[]) WITH ORDINALITY AS t(o, n)"
                     " ORDER BY n ON CONFLICT (order_id) DO NOTHING RETURNING order_id",
                     1, params, PGRES_TUPLES_OK, &res);
    size_t n_fresh = s == OMS_OK ? (size_t)PQntuples(res) : 0;
    if (s == OMS_OK && (fresh = calloc(n_fresh ? n_fresh : 1, sizeof *fresh)) == NULL)
        s = OMS_ENOMEM;
    for (size_t r = 0; s == OMS_OK && r < n_fresh; r++)
        fresh[r] = PQgetvalue(res, (int)r, 0);
    if (s == OMS_OK)
        strs_sort_unique(fresh, &n_fresh);
    for (size_t k = 0; s == OMS_OK && k < ob->n_orders; k++)
        ob->orders[k].exists = strs_find(fresh, n_fresh, ob->orders[k].order_id) < 0;
    free(fresh);
    PQclear(res);
    pg_array_fini(&arr);
    free(ids);
    return s;
}

/* Locks the planned SKUs' products in SKU order and reads what is available. */
static oms_status lock_products(order_batch *ob)
{
    inv_plan *p = &ob->plan;
    pg_array skus;
    PGresult *res = NULL;
    oms_status s = OMS_OK;
    pg_array_init(&skus);
    for (size_t k = 0; k < p->n_stock && s == OMS_OK; k++)
        s = pg_array_add(&skus, p->stock[k].sku);
    const char *params[] = {pg_array_literal(&skus)};
    if (s == OMS_OK)
        s = pg_query(ob->b->conn, "products lock",
                     "SELECT sku, on_hand - reserved FROM products WHERE sku = ANY($1::text[])"
                     " ORDER BY sku COLLATE \"C\" FOR UPDATE",
                     1, params, PGRES_TUPLES_OK, &res);
    for (int r = 0; s == OMS_OK && r < PQntuples(res); r++) {
        long k = inv_plan_stock_find(p, PQgetvalue(res, r, 0));
        if (k < 0)
            continue;
        p->stock[k].known = true;
        p->stock[k].available = atoll(PQgetvalue(res, r, 1));
    }
    PQclear(res);
    pg_array_fini(&skus);
    return s;
}

/* ---- writing the plan --------------------------------------------------- */

static oms_status update_products(order_batch *ob)
{
    const inv_plan *p = &ob->plan;
    pg_cols c;
    oms_status s;
    pg_cols_init(&c, 2);
    for (size_t k = 0; k < p->n_stock; k++)
        if (p->stock[k].taken > 0) {
            pg_cols_text(&c, 0, p->stock[k].sku);
            pg_cols_int(&c, 1, p->stock[k].taken);
        }
    if ((s = c.status) == OMS_OK && pg_cols_rows(&c) > 0)
        s = pg_cols_query(
            ob->b->conn, "products reserve",
            "UPDATE products p SET reserved = p.reserved + d.qty, updated_at = now()"
            " FROM unnest($1::text[], $2::bigint[]) AS d(sku, qty) WHERE p.sku = d.sku",
            &c, PGRES_COMMAND_OK, NULL);
    pg_cols_fini(&c);
    return s;
}

static oms_status update_rejected(order_batch *ob)
{
    const inv_plan *p = &ob->plan;
    pg_cols c;
    oms_status s;
    pg_cols_init(&c, 2);
    for (size_t k = 0; k < ob->n_orders; k++) {
        char reason[CONSUMER_REASON_LEN];
        if (p->outcomes[k].result != INV_REJECTED)
            continue;
        inv_plan_reason(&p->outcomes[k], reason, sizeof reason);
        pg_cols_text(&c, 0, ob->orders[k].order_id);
        pg_cols_text(&c, 1, reason);
    }
    if ((s = c.status) == OMS_OK && pg_cols_rows(&c) > 0)
        s = pg_cols_query(ob->b->conn, "reservations reject",
                          "UPDATE reservations r SET status = 'rejected', reason = d.reason"
                          " FROM unnest($1::text[], $2::text[]) AS d(order_id, reason)"
                          " WHERE r.order_id = d.order_id",
                          &c, PGRES_COMMAND_OK, NULL);
    pg_cols_fini(&c);
    return s;
}

static oms_status insert_lines(order_batch *ob)
{
    const inv_plan *p = &ob->plan;
    pgcopy copy;
    pgcopy_init(&copy);
    for (size_t k = 0; k < ob->n_orders; k++) {
        const inv_outcome *o = &p->outcomes[k];
        for (size_t h = 0; o->result == INV_RESERVED && h < o->n_held; h++) {
            pgcopy_text(&copy, ob->orders[k].order_id);
            pgcopy_text(&copy, o->held[h].sku);
            pgcopy_int(&copy, o->held[h].qty);
            pgcopy_end_row(&copy);
        }
    }
    oms_status s = pgcopy_send(&copy, ob->b->conn,
                               "COPY reservation_lines (order_id, sku, qty) FROM STDIN");
    pgcopy_fini(&copy);
    return s;
}

/* Adds the events in event order and counts the outcomes. */
static oms_status emit_all(order_batch *ob)
{
    consumer_batch *b = ob->b;
    oms_status s = OMS_OK;
    long reserved = 0, rejected = 0;
    for (size_t k = 0; k < ob->n_orders && s == OMS_OK; k++) {
        const inv_outcome *o = &ob->plan.outcomes[k];
        const oms_msg *msg = &b->msgs[ob->msg_of[k]];
        const Oms__V1__OrderCreated *ev = ob->events[ob->msg_of[k]];
        const char *causation = inv_causation(ev->meta, msg);
        if (o->result == INV_RESERVED) {
            s = inv_emit_reserved(b->outbox, ev, causation);
            reserved++;
        } else if (o->result == INV_REJECTED) {
            s = inv_emit_rejected(b->outbox, ev->order_id, o, causation);
            rejected++;
        } else {
            log_info("order already decided on, order.created ignored", "order_id", ev->order_id,
                     "event_id", msg->event_id, NULL);
        }
    }
    if (s == OMS_OK) {
        consumer_count(b, "oms_inventory_reservations_total", "result=\"reserved\"",
                       (double)reserved);
        consumer_count(b, "oms_inventory_reservations_total", "result=\"rejected\"",
                       (double)rejected);
    }
    return s;
}

/* Owns ob->plan from init to fini: every step after the claim reads it. */
static oms_status reserve(order_batch *ob)
{
    oms_status s;
    if ((s = claim(ob)) != OMS_OK ||
        (s = inv_plan_init(&ob->plan, ob->orders, ob->n_orders)) != OMS_OK)
        return s;
    /* ob->orders is inv_apply_orders' to free; the analyzer loses track of
     * it once inv_plan_init has written the plan inside *ob. */
    // NOLINTNEXTLINE(clang-analyzer-unix.Malloc)
    if (ob->plan.n_stock == 0 || (s = lock_products(ob)) == OMS_OK) {
        inv_plan_run(&ob->plan);
        if ((s = update_products(ob)) == OMS_OK && (s = update_rejected(ob)) == OMS_OK &&
            (s = insert_lines(ob)) == OMS_OK)
            s = emit_all(ob);
    }
    inv_plan_fini(&ob->plan);
    return s;
}

oms_status inv_apply_orders(void *arg, consumer_batch *b)
{
    (void)arg;
    order_batch ob = {.b = b};
    size_t n = b->n ? b->n : 1;
    oms_status s = OMS_ENOMEM;

    ob.events = calloc(n, sizeof *ob.events);
    ob.orders = calloc(n, sizeof *ob.orders);
    ob.msg_of = calloc(n, sizeof *ob.msg_of);
    if (ob.events && ob.orders && ob.msg_of && (s = decode_all(&ob)) == OMS_OK && ob.n_orders > 0)
        s = reserve(&ob);
    for (size_t i = 0; ob.events && i < b->n; i++)
        if (ob.events[i] != NULL)
            oms__v1__order_created__free_unpacked(ob.events[i], NULL);
    free(ob.events);
    free(ob.orders);
    free(ob.msg_of);
    free(ob.lines);
    return s;
}
