/*
 * inventory_payments.c - applying payment.settled: a reserved order's units
 * are sold (SUCCEEDED: on_hand and reserved go down) or given back (FAILED:
 * reserved goes down), a fetched batch per transaction:
 *
 *   1. lock the batch's reservations by order id, with their lines;
 *   2. decide in event order: only a reservation still in status reserved
 *      settles, so a second settlement of one order (a replay, a duplicate
 *      under another event id, one for an order inventory never reserved)
 *      is recorded in the log and ignored, and no unit is counted twice;
 *   3. lock the products concerned by SKU, then one UPDATE of products and
 *      one of reservations from unnest, and the events.
 *
 * Lock order is reservations, then products, as in inventory_orders.c.
 */
#include "inventory.h"

#include "log.h"
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One reservation of the batch; strings borrowed from the locked rows. */
typedef struct reservation {
    const char *order_id;
    const char *status; /* as locked, then as decided ("committed", "released") */
    int first_row;      /* its lines are rows first_row .. first_row + n_lines - 1 */
    int n_lines;
} reservation;

typedef struct payment_batch {
    consumer_batch *b;
    Oms__V1__PaymentSettled **events; /* per message; NULL when not applied */
    long *settles;                    /* per message: reservation it settles, or -1 */
    PGresult *rows;                   /* order_id, status, sku, qty */
    reservation *res;                 /* sorted by order id */
    const char **res_ids;             /* res[k].order_id, for strs_find */
    size_t n_res;
    const char **skus; /* distinct SKUs of the settled lines, sorted */
    size_t n_skus;
    int64_t *sold, *released; /* per SKU: units leaving on_hand, units leaving reserved */
    char **names;             /* per SKU: product name (owned), or NULL */
} payment_batch;

static bool is_succeeded(const Oms__V1__PaymentSettled *ev)
{
    return ev->status == OMS__V1__PAYMENT_STATUS__PAYMENT_STATUS_SUCCEEDED;
}

static void decode(payment_batch *pb, size_t i)
{
    consumer_batch *b = pb->b;
    const oms_msg *m = &b->msgs[i];
    Oms__V1__PaymentSettled *ev = oms__v1__payment_settled__unpack(NULL, m->len, m->data);
    if (ev == NULL) {
        consumer_reject(b, i, "%s: payload (%zu bytes) is not a valid oms.v1.PaymentSettled",
                        m->subject, m->len);
        return;
    }
    if (*ev->order_id == '\0')
        consumer_reject(b, i, "%s: order_id is empty", m->subject);
    else if (ev->status != OMS__V1__PAYMENT_STATUS__PAYMENT_STATUS_SUCCEEDED &&
             ev->status != OMS__V1__PAYMENT_STATUS__PAYMENT_STATUS_FAILED)
        consumer_reject(b, i,
                        "%s %.256s: status %d; expected PAYMENT_STATUS_SUCCEEDED (1) or "
                        "PAYMENT_STATUS_FAILED (2)",
                        m->subject, ev->order_id, (int)ev->status);
    if (b->msgs[i].rejected)
        oms__v1__payment_settled__free_unpacked(ev, NULL);
    else
        pb->events[i] = ev;
}

/* ---- step 1: the reservations ------------------------------------------ */

static oms_status group_rows(payment_batch *pb)
{
    int n = PQntuples(pb->rows);
    pb->res = calloc(n ? (size_t)n : 1, sizeof *pb->res);
    pb->res_ids = calloc(n ? (size_t)n : 1, sizeof *pb->res_ids);
    if (pb->res == NULL || pb->res_ids == NULL)
        return OMS_ENOMEM;
    reservation *last = NULL;
    for (int r = 0; r < n; r++) {
        const char *id = PQgetvalue(pb->rows, r, 0);
        if (last == NULL || strcmp(last->order_id, id) != 0) {
            last = &pb->res[pb->n_res];
            pb->res_ids[pb->n_res++] = id;
            *last = (reservation){id, PQgetvalue(pb->rows, r, 1), r, 0};
        }
        if (!PQgetisnull(pb->rows, r, 2))
            last->n_lines++;
    }
    return OMS_OK;
}

/* Locks the batch's reservations in order id order and reads their lines. */
static oms_status lock_reservations(payment_batch *pb)
{
    consumer_batch *b = pb->b;
    const char **ids = calloc(b->n, sizeof *ids);
    size_t n_ids = 0;
    pg_array arr;
    oms_status s = ids ? OMS_OK : OMS_ENOMEM;
    pg_array_init(&arr);
    for (size_t i = 0; s == OMS_OK && i < b->n; i++)
        if (pb->events[i] != NULL)
            ids[n_ids++] = pb->events[i]->order_id;
    if (s == OMS_OK)
        strs_sort_unique(ids, &n_ids);
    for (size_t k = 0; s == OMS_OK && k < n_ids; k++)
        s = pg_array_add(&arr, ids[k]);
    const char *params[] = {pg_array_literal(&arr)};
    /* Planned as a nested loop over both primary keys: the consumer's
     * transaction runs with PG_KEYED_PLANS (lib/consumer.c). */
    if (s == OMS_OK)
        s = pg_query(b->conn, "reservations lock",
                     "SELECT r.order_id, r.status, l.sku, l.qty FROM reservations r"
                     " LEFT JOIN reservation_lines l ON l.order_id = r.order_id"
                     " WHERE r.order_id = ANY($1::text[])"
                     " ORDER BY r.order_id COLLATE \"C\", l.sku COLLATE \"C\" FOR UPDATE OF r",
                     1, params, PGRES_TUPLES_OK, &pb->rows);
    if (s == OMS_OK)
        s = group_rows(pb);
    pg_array_fini(&arr);
    free(ids);
    return s;
}

/* ---- step 2: decisions ---------------------------------------------------- */

/* In event order: settle a reservation still held, ignore anything else. */
static void decide(payment_batch *pb, long *ignored)
{
    consumer_batch *b = pb->b;
    for (size_t i = 0; i < b->n; i++) {
        const Oms__V1__PaymentSettled *ev = pb->events[i];
        pb->settles[i] = -1;
        if (ev == NULL)
            continue;
        long k = strs_find(pb->res_ids, pb->n_res, ev->order_id);
        /* k < n_res, and group_rows set the status of every res[0..n_res):
         * the analyzer cannot see that through strs_find. */
        // NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker)
        if (k >= 0 && strcmp(pb->res[k].status, "reserved") == 0) {
            pb->res[k].status = is_succeeded(ev) ? "committed" : "released";
            pb->settles[i] = k;
            continue;
        }
        log_info("payment.settled ignored: no reservation held for the order", "order_id",
                 ev->order_id, "reservation", k >= 0 ? pb->res[k].status : "none", "event_id",
                 b->msgs[i].event_id, NULL);
        (*ignored)++;
    }
}

/* Sums the settled lines per SKU: sold (committed) and released from reserved. */
static oms_status sum_per_sku(payment_batch *pb)
{
    int n_rows = PQntuples(pb->rows);
    pb->skus = calloc(n_rows ? (size_t)n_rows : 1, sizeof *pb->skus);
    pb->sold = calloc(n_rows ? (size_t)n_rows : 1, sizeof *pb->sold);
    pb->released = calloc(n_rows ? (size_t)n_rows : 1, sizeof *pb->released);
    pb->names = calloc(n_rows ? (size_t)n_rows : 1, sizeof *pb->names);
    if (!pb->skus || !pb->sold || !pb->released || !pb->names)
        return OMS_ENOMEM;
    for (size_t i = 0; i < pb->b->n; i++) {
        if (pb->settles[i] < 0)
            continue;
        const reservation *r = &pb->res[pb->settles[i]];
        for (int row = r->first_row; row < r->first_row + r->n_lines; row++)
            pb->skus[pb->n_skus++] = PQgetvalue(pb->rows, row, 2);
    }
    strs_sort_unique(pb->skus, &pb->n_skus);
    for (size_t i = 0; i < pb->b->n; i++) {
        if (pb->settles[i] < 0)
            continue;
        const reservation *r = &pb->res[pb->settles[i]];
        for (int row = r->first_row; row < r->first_row + r->n_lines; row++) {
            const char *sku = PQgetvalue(pb->rows, row, 2);
            size_t k = (size_t)strs_find(pb->skus, pb->n_skus, sku);
            int64_t qty = atoll(PQgetvalue(pb->rows, row, 3));
            pb->released[k] += qty;
            if (is_succeeded(pb->events[i]))
                pb->sold[k] += qty;
        }
    }
    return OMS_OK;
}

/* ---- step 3: writing -------------------------------------------------------- */

/* Locks the products in SKU order (keeping their names for the events), then
 * takes the settled units off them in one statement. */
static oms_status update_products(payment_batch *pb)
{
    pg_cols c;
    PGresult *res = NULL;
    oms_status s = OMS_OK;
    pg_cols_init(&c, 3);
    for (size_t k = 0; k < pb->n_skus; k++) {
        pg_cols_text(&c, 0, pb->skus[k]);
        pg_cols_int(&c, 1, pb->sold[k]);
        pg_cols_int(&c, 2, pb->released[k]);
    }
    /* $1 alone locks the products, all three then settle them. */
    const char *const *params = pg_cols_params(&c);
    if (params == NULL)
        s = c.status != OMS_OK ? c.status : OMS_ENOMEM;
    if (s == OMS_OK)
        s = pg_query(pb->b->conn, "products lock",
                     "SELECT sku, name FROM products WHERE sku = ANY($1::text[])"
                     " ORDER BY sku COLLATE \"C\" FOR UPDATE",
                     1, params, PGRES_TUPLES_OK, &res);
    for (int r = 0; s == OMS_OK && r < PQntuples(res); r++) {
        long k = strs_find(pb->skus, pb->n_skus, PQgetvalue(res, r, 0));
        if (k >= 0 && (pb->names[k] = strdup(PQgetvalue(res, r, 1))) == NULL)
            s = OMS_ENOMEM;
    }
    if (s == OMS_OK)
        s = pg_query(pb->b->conn, "products settle",
                     "UPDATE products p SET on_hand = p.on_hand - d.sold,"
                     " reserved = p.reserved - d.released, updated_at = now()"
                     " FROM unnest($1::text[], $2::bigint[], $3::bigint[])"
                     " AS d(sku, sold, released)"
                     " WHERE p.sku = d.sku",
                     3, params, PGRES_COMMAND_OK, NULL);
    PQclear(res);
    pg_cols_fini(&c);
    return s;
}

static oms_status update_reservations(payment_batch *pb)
{
    pg_cols c;
    oms_status s;
    pg_cols_init(&c, 2);
    for (size_t i = 0; i < pb->b->n; i++) {
        if (pb->settles[i] < 0)
            continue;
        const reservation *r = &pb->res[pb->settles[i]];
        pg_cols_text(&c, 0, r->order_id);
        pg_cols_text(&c, 1, r->status);
    }
    if ((s = c.status) == OMS_OK)
        s = pg_cols_query(pb->b->conn, "reservations settle",
                          "UPDATE reservations r SET status = d.status, settled_at = now()"
                          " FROM unnest($1::text[], $2::text[]) AS d(order_id, status)"
                          " WHERE r.order_id = d.order_id",
                          &c, PGRES_COMMAND_OK, NULL);
    pg_cols_fini(&c);
    return s;
}

/* Adds stock.committed or stock.released for message i, with the lines. */
static oms_status emit(payment_batch *pb, size_t i)
{
    const reservation *r = &pb->res[pb->settles[i]];
    const Oms__V1__PaymentSettled *ev = pb->events[i];
    size_t n = (size_t)r->n_lines;
    Oms__V1__OrderLine *lines = calloc(n ? n : 1, sizeof *lines);
    Oms__V1__OrderLine **ptrs = calloc(n ? n : 1, sizeof *ptrs);
    oms_status s = OMS_ENOMEM;
    if (lines != NULL && ptrs != NULL) {
        for (size_t l = 0; l < n; l++) {
            int row = r->first_row + (int)l;
            long k = strs_find(pb->skus, pb->n_skus, PQgetvalue(pb->rows, row, 2));
            oms__v1__order_line__init(&lines[l]);
            lines[l].sku = PQgetvalue(pb->rows, row, 2);
            lines[l].product_name = pb->names[k] ? pb->names[k] : "";
            /* At most INT32_MAX: inventory_orders.c bounds an order's units. */
            lines[l].qty = (int32_t)atoll(PQgetvalue(pb->rows, row, 3));
            ptrs[l] = &lines[l];
        }
        s = inv_emit_settled(pb->b->outbox, ev->order_id, is_succeeded(ev), ptrs, n, ev->reason,
                             inv_causation(ev->meta, &pb->b->msgs[i]));
    }
    free(lines);
    free(ptrs);
    return s;
}

static oms_status emit_all(payment_batch *pb, long ignored)
{
    oms_status s = OMS_OK;
    long committed = 0, released = 0;
    for (size_t i = 0; i < pb->b->n && s == OMS_OK; i++) {
        if (pb->settles[i] < 0)
            continue;
        s = emit(pb, i);
        if (is_succeeded(pb->events[i]))
            committed++;
        else
            released++;
    }
    if (s == OMS_OK) {
        consumer_count(pb->b, "oms_inventory_settlements_total", "result=\"committed\"",
                       (double)committed);
        consumer_count(pb->b, "oms_inventory_settlements_total", "result=\"released\"",
                       (double)released);
        consumer_count(pb->b, "oms_inventory_settlements_total", "result=\"ignored\"",
                       (double)ignored);
    }
    return s;
}

static oms_status settle(payment_batch *pb)
{
    oms_status s;
    long ignored = 0;
    if ((s = lock_reservations(pb)) != OMS_OK)
        return s;
    decide(pb, &ignored);
    if ((s = sum_per_sku(pb)) != OMS_OK)
        return s;
    bool any = false;
    for (size_t i = 0; i < pb->b->n && !any; i++)
        any = pb->settles[i] >= 0;
    if (any && ((s = update_products(pb)) != OMS_OK || (s = update_reservations(pb)) != OMS_OK))
        return s;
    return emit_all(pb, ignored);
}

oms_status inv_apply_payments(void *arg, consumer_batch *b)
{
    (void)arg;
    payment_batch pb = {.b = b};
    size_t n = b->n ? b->n : 1;
    oms_status s = OMS_ENOMEM;
    bool any = false;

    pb.events = calloc(n, sizeof *pb.events);
    pb.settles = calloc(n, sizeof *pb.settles);
    if (pb.events == NULL || pb.settles == NULL)
        goto out;
    for (size_t i = 0; i < b->n; i++) {
        if (!b->msgs[i].duplicate && !b->msgs[i].rejected)
            decode(&pb, i);
        any = any || pb.events[i] != NULL;
    }
    s = any ? settle(&pb) : OMS_OK;
out:
    for (size_t i = 0; pb.events && i < b->n; i++)
        if (pb.events[i] != NULL)
            oms__v1__payment_settled__free_unpacked(pb.events[i], NULL);
    for (size_t k = 0; pb.names && k < pb.n_skus; k++)
        free(pb.names[k]);
    free(pb.events), free(pb.settles), free(pb.res), free(pb.res_ids);
    free(pb.skus), free(pb.sold), free(pb.released), free(pb.names);
    PQclear(pb.rows);
    return s;
}
