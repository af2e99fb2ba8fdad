/*
 * refund_requests.c - applying refund.requested, a fetched batch per
 * transaction:
 *
 *   1. decode; a request that cannot be stored or answered (undecodable, bad
 *      idempotency key, text that is not UTF-8 or too long) is dead-lettered;
 *   2. lock the batch's keys (transaction advisory locks, in hash order) and
 *      read the ones already decided;
 *   3. lock the batch's paid orders (FOR UPDATE, in byte order of order id);
 *   4. decide in event order, in memory, carrying each order's refunded and
 *      held amounts from one request to the next: a key already decided is a
 *      repeat (same order and amount: nothing happens) or a key reuse
 *      (refused, the first outcome stands); otherwise the rules;
 *   5. one INSERT of the new refunds, one UPDATE of the orders, the events.
 *
 * Lock order everywhere in refund: keys, then orders, then refund rows, so
 * two refund processes, and the worker, never deadlock.
 */
#include "refund.h"

#include "log.h"
#include "money.h"
#include "strs.h"
#include "utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The advisory lock namespace of idempotency keys (first key of the pair). */
#define KEY_LOCK_CLASS "7101"

typedef enum outcome_kind {
    OUT_NONE = 0,  /* not applied (duplicate, dead letter) */
    OUT_REPEAT,    /* key already decided for this same request: nothing */
    OUT_KEY_REUSE, /* key already decided for another request: refused, not stored */
    OUT_REJECTED,
    OUT_PENDING,
    OUT_PROCESSED,
} outcome_kind;

typedef struct item {
    Oms__V1__RefundRequested *ev; /* owned; NULL when not applied */
    outcome_kind kind;
    char refund_id[37];
    int64_t amount_cents; /* decided (rejected: as requested) */
    int64_t refunded_total_cents;
    bool full;
    long order;        /* index in rb->orders, or -1 */
    long first_of_key; /* earlier item with the same key, or -1 */
    char *lines_json;  /* owned */
    char why[REFUND_TEXT_LEN];
} item;

typedef struct paid_row {
    const char *id, *customer_id, *email, *name, *currency; /* borrowed from orders_res */
    int64_t paid, refunded, pending;
    bool changed;
} paid_row;

typedef struct req_batch {
    consumer_batch *b;
    refund_ctx *ctx;
    item *items;
    PGresult *keys_res; /* key, order_id, requested_cents, state: sorted by key */
    const char **keys;
    size_t n_keys;
    PGresult *orders_res;
    paid_row *orders; /* sorted by id */
    const char **order_ids;
    size_t n_orders;
} req_batch;

/* ---- step 1: decoding ------------------------------------------------- */

/* Text refund could neither store nor send back: a dead letter. */
static const char *unstorable(const Oms__V1__RefundRequested *ev)
{
    if (ev == NULL)
        return "payload is not a valid oms.v1.RefundRequested";
    const char *why = refund_key_invalid(ev->idempotency_key);
    if (why != NULL)
        return why;
    if (strlen(ev->order_id) > REFUND_ORDER_ID_MAX || !utf8_valid(ev->order_id))
        return "order_id is longer than 256 bytes or not valid UTF-8";
    if (strlen(ev->reason) > REFUND_REASON_MAX || !utf8_valid(ev->reason))
        return "reason is longer than 512 bytes or not valid UTF-8";
    if (strlen(ev->requested_by) > REFUND_REQUESTED_BY_MAX || !utf8_valid(ev->requested_by))
        return "requested_by is longer than 256 bytes or not valid UTF-8";
    for (size_t i = 0; i < ev->n_lines; i++)
        if (strlen(ev->lines[i]->sku) > REFUND_SKU_MAX || !utf8_valid(ev->lines[i]->sku))
            return "a line's sku is longer than 256 bytes or not valid UTF-8";
    return NULL;
}

static oms_status decode(req_batch *rb, size_t i)
{
    consumer_batch *b = rb->b;
    oms_msg *m = &b->msgs[i];
    item *it = &rb->items[i];
    Oms__V1__RefundRequested *ev = oms__v1__refund_requested__unpack(NULL, m->len, m->data);
    const char *why = unstorable(ev);
    if (why != NULL) {
        consumer_reject(b, i, "%s: %s", m->subject, why);
        oms__v1__refund_requested__free_unpacked(ev, NULL);
        return OMS_OK;
    }
    it->ev = ev;
    it->order = -1;
    it->first_of_key = -1;
    oms_uuid4(it->refund_id);
    if ((it->lines_json = refund_lines_json(ev)) == NULL)
        return OMS_ENOMEM;
    if (!refund_request_valid(ev, it->why, sizeof it->why)) {
        it->kind = OUT_REJECTED;
        it->amount_cents = ev->amount_cents;
    }
    return OMS_OK;
}

/* ---- step 2: keys ------------------------------------------------------- */

typedef struct key_ref {
    const char *key;
    size_t index;
} key_ref;

static int cmp_key_ref(const void *a, const void *b)
{
    const key_ref *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c != 0 ? c : (x->index > y->index) - (x->index < y->index);
}

/* Links each item to the first earlier item of the batch with its key, and
 * collects the distinct keys into a pg array. */
static oms_status link_keys(req_batch *rb, pg_array *keys)
{
    consumer_batch *b = rb->b;
    key_ref *refs = calloc(b->n ? b->n : 1, sizeof *refs);
    size_t n = 0;
    oms_status s = refs ? OMS_OK : OMS_ENOMEM;
    for (size_t i = 0; s == OMS_OK && i < b->n; i++)
        if (rb->items[i].ev != NULL)
            refs[n++] = (key_ref){rb->items[i].ev->idempotency_key, i};
    if (s == OMS_OK)
        qsort(refs, n, sizeof *refs, cmp_key_ref);
    for (size_t k = 0; s == OMS_OK && k < n; k++) {
        bool first = k == 0 || strcmp(refs[k - 1].key, refs[k].key) != 0;
        if (first)
            s = pg_array_add(keys, refs[k].key) ? OMS_ENOMEM : OMS_OK;
        else
            rb->items[refs[k].index].first_of_key = rb->items[refs[k - 1].index].first_of_key >= 0
                                                        ? rb->items[refs[k - 1].index].first_of_key
                                                        : (long)refs[k - 1].index;
    }
    free(refs);
    return s;
}

/* Locks the keys (so a key is decided by one transaction at a time, whatever
 * order it names) and reads those already decided. */
static oms_status lock_keys(req_batch *rb)
{
    pg_array keys;
    pg_array_init(&keys);
    oms_status s = link_keys(rb, &keys);
    const char *params[] = {pg_array_literal(&keys)};
    if (s == OMS_OK && keys.count > 0)
        s = pg_query(rb->b->conn, "refund keys lock",
                     "SELECT count(pg_advisory_xact_lock(" KEY_LOCK_CLASS ", h)) FROM"
                     " (SELECT DISTINCT hashtext(k) AS h FROM unnest($1::text[]) k ORDER BY 1) s",
                     1, params, PGRES_TUPLES_OK, NULL);
    if (s == OMS_OK && keys.count > 0)
        s = pg_query(rb->b->conn, "refund keys read",
                     "SELECT idempotency_key, order_id, requested_cents, state FROM refunds"
                     " WHERE idempotency_key = ANY($1::text[])"
                     " ORDER BY idempotency_key COLLATE \"C\"",
                     1, params, PGRES_TUPLES_OK, &rb->keys_res);
    if (s == OMS_OK && rb->keys_res != NULL) {
        rb->n_keys = (size_t)PQntuples(rb->keys_res);
        rb->keys = calloc(rb->n_keys ? rb->n_keys : 1, sizeof *rb->keys);
        if (rb->keys == NULL)
            s = OMS_ENOMEM;
        for (size_t k = 0; s == OMS_OK && k < rb->n_keys; k++)
            rb->keys[k] = PQgetvalue(rb->keys_res, (int)k, 0);
    }
    pg_array_fini(&keys);
    return s;
}

/* ---- step 3: orders ------------------------------------------------------ */

static oms_status read_orders(req_batch *rb)
{
    int n = PQntuples(rb->orders_res);
    rb->orders = calloc(n ? (size_t)n : 1, sizeof *rb->orders);
    rb->order_ids = calloc(n ? (size_t)n : 1, sizeof *rb->order_ids);
    if (rb->orders == NULL || rb->order_ids == NULL)
        return OMS_ENOMEM;
    for (int r = 0; r < n; r++) {
        PGresult *res = rb->orders_res;
        rb->orders[r] = (paid_row){PQgetvalue(res, r, 0),
                                   PQgetvalue(res, r, 1),
                                   PQgetvalue(res, r, 2),
                                   PQgetvalue(res, r, 3),
                                   PQgetvalue(res, r, 4),
                                   atoll(PQgetvalue(res, r, 5)),
                                   atoll(PQgetvalue(res, r, 6)),
                                   atoll(PQgetvalue(res, r, 7)),
                                   false};
        rb->order_ids[r] = rb->orders[r].id;
    }
    rb->n_orders = (size_t)n;
    return OMS_OK;
}

static oms_status lock_orders(req_batch *rb)
{
    consumer_batch *b = rb->b;
    const char **ids = calloc(b->n ? b->n : 1, sizeof *ids);
    size_t n = 0;
    pg_array arr;
    oms_status s = ids ? OMS_OK : OMS_ENOMEM;
    pg_array_init(&arr);
    for (size_t i = 0; s == OMS_OK && i < b->n; i++)
        if (rb->items[i].ev != NULL)
            ids[n++] = rb->items[i].ev->order_id;
    strs_sort_unique(ids, &n);
    for (size_t k = 0; s == OMS_OK && k < n; k++)
        s = pg_array_add(&arr, ids[k]) ? OMS_ENOMEM : OMS_OK;
    const char *params[] = {pg_array_literal(&arr)};
    if (s == OMS_OK)
        s = pg_query(b->conn, "paid orders lock",
                     "SELECT order_id, customer_id, customer_email, customer_name, currency,"
                     " paid_total_cents, refunded_cents, pending_cents FROM paid_orders"
                     " WHERE order_id = ANY($1::text[])"
                     " ORDER BY order_id COLLATE \"C\" FOR UPDATE",
                     1, params, PGRES_TUPLES_OK, &rb->orders_res);
    if (s == OMS_OK)
        s = read_orders(rb);
    pg_array_fini(&arr);
    free(ids);
    return s;
}

/* ---- step 4: decisions ----------------------------------------------------- */

static void describe_amount(int64_t cents, const char *currency, char *out, size_t len)
{
    if (cents == 0)
        snprintf(out, len, "the full remaining amount");
    else
        money_format_currency(cents, currency, out, len);
}

/* A key decided before (in the database, or earlier in this batch): a repeat
 * of the same request changes nothing; another request under it is refused. */
static bool decide_known_key(req_batch *rb, item *it)
{
    const Oms__V1__RefundRequested *ev = it->ev;
    const char *first_order, *first_state;
    int64_t first_requested;
    long k = strs_find(rb->keys, rb->n_keys, ev->idempotency_key);
    if (k >= 0) {
        first_order = PQgetvalue(rb->keys_res, (int)k, 1);
        first_requested = atoll(PQgetvalue(rb->keys_res, (int)k, 2));
        first_state = PQgetvalue(rb->keys_res, (int)k, 3);
    } else if (it->first_of_key >= 0) {
        const item *first = &rb->items[it->first_of_key];
        first_order = first->ev->order_id;
        first_requested = first->ev->amount_cents;
        first_state = first->kind == OUT_PROCESSED ? "processed"
                      : first->kind == OUT_PENDING ? "pending"
                                                   : "rejected";
    } else {
        return false;
    }
    if (strcmp(first_order, ev->order_id) == 0 && first_requested == ev->amount_cents) {
        it->kind = OUT_REPEAT;
        return true;
    }
    char was[64], now[64];
    describe_amount(first_requested, rb->ctx->currency, was, sizeof was);
    describe_amount(ev->amount_cents, rb->ctx->currency, now, sizeof now);
    it->kind = OUT_KEY_REUSE;
    it->amount_cents = ev->amount_cents;
    snprintf(it->why, sizeof it->why,
             "idempotency key \"%s\" already names a refund of %s on %.256s (%s); this request "
             "for %s on %.256s is refused and changes nothing",
             ev->idempotency_key, was, first_order, first_state, now, ev->order_id);
    return true;
}

static void decide_one(req_batch *rb, item *it)
{
    const Oms__V1__RefundRequested *ev = it->ev;
    if (decide_known_key(rb, it) || it->kind == OUT_REJECTED)
        return;
    it->order = strs_find(rb->order_ids, rb->n_orders, ev->order_id);
    it->amount_cents = ev->amount_cents;
    if (it->order < 0) {
        it->kind = OUT_REJECTED;
        snprintf(it->why, sizeof it->why,
                 "order %.256s cannot be refunded: it is not a paid order (unknown, failed, or "
                 "its payment is not recorded yet)",
                 ev->order_id);
        return;
    }
    paid_row *o = &rb->orders[it->order];
    int64_t amount = 0;
    refund_verdict v = refund_decide(o->paid, o->refunded, o->pending, ev->amount_cents, &amount);
    if (v != REFUND_ACCEPT) {
        it->kind = OUT_REJECTED;
        refund_verdict_text(v, o->id, o->currency, o->paid, o->refunded, o->pending,
                            ev->amount_cents, it->why, sizeof it->why);
        return;
    }
    it->amount_cents = amount;
    o->changed = true;
    if (rb->ctx->cfg.gateway == REFUND_GATEWAY_HTTP) {
        it->kind = OUT_PENDING;
        o->pending += amount;
        return;
    }
    it->kind = OUT_PROCESSED;
    o->refunded += amount;
    it->refunded_total_cents = o->refunded;
    it->full = o->refunded == o->paid;
}

/* ---- step 5: writing ------------------------------------------------------- */

/* The columns of the refunds insert, in $n order. */
enum {
    RC_ID,
    RC_KEY,
    RC_ORDER,
    RC_REQUESTED,
    RC_AMOUNT,
    RC_CURRENCY,
    RC_REASON,
    RC_RESTOCK,
    RC_LINES,
    RC_BY,
    RC_STATE,
    RC_WHY,
    RC_TOTAL,
    RC_FULL,
    RC_REF,
    RC_CAUSE,
    RC_NCOLS
};

static const char *state_name(outcome_kind k)
{
    return k == OUT_PROCESSED ? "processed" : k == OUT_PENDING ? "pending" : "rejected";
}

static void cols_add(pg_cols *c, const req_batch *rb, const item *it, size_t i)
{
    const Oms__V1__RefundRequested *ev = it->ev;
    const char *currency = it->order >= 0 ? rb->orders[it->order].currency : rb->ctx->currency;
    char ref[16] = "";
    if (it->kind == OUT_PROCESSED)
        snprintf(ref, sizeof ref, "mock-%.8s", it->refund_id);
    pg_cols_text(c, RC_ID, it->refund_id);
    pg_cols_text(c, RC_KEY, ev->idempotency_key);
    pg_cols_text(c, RC_ORDER, ev->order_id);
    pg_cols_int(c, RC_REQUESTED, ev->amount_cents);
    pg_cols_int(c, RC_AMOUNT, it->kind == OUT_REJECTED ? 0 : it->amount_cents);
    pg_cols_text(c, RC_CURRENCY, currency);
    pg_cols_text(c, RC_REASON, ev->reason);
    pg_cols_bool(c, RC_RESTOCK, ev->restock);
    pg_cols_text(c, RC_LINES, it->lines_json);
    pg_cols_text(c, RC_BY, ev->requested_by);
    pg_cols_text(c, RC_STATE, state_name(it->kind));
    pg_cols_text(c, RC_WHY, it->kind == OUT_REJECTED ? it->why : "");
    pg_cols_int(c, RC_TOTAL, it->refunded_total_cents);
    pg_cols_bool(c, RC_FULL, it->full);
    pg_cols_text(c, RC_REF, ref);
    pg_cols_text(c, RC_CAUSE, ev->meta ? ev->meta->event_id : rb->b->msgs[i].event_id);
}

static oms_status insert_refunds(req_batch *rb)
{
    pg_cols c;
    oms_status s = OMS_OK;
    pg_cols_init(&c, RC_NCOLS);
    for (size_t i = 0; i < rb->b->n; i++) {
        const item *it = &rb->items[i];
        if (it->ev != NULL &&
            (it->kind == OUT_REJECTED || it->kind == OUT_PENDING || it->kind == OUT_PROCESSED))
            cols_add(&c, rb, it, i);
    }
    if ((s = c.status) == OMS_OK && pg_cols_rows(&c) > 0)
        s = pg_cols_query(
            rb->b->conn, "refunds insert",
            "INSERT INTO refunds (refund_id, idempotency_key, order_id, requested_cents,"
            " amount_cents, currency, reason, restock, lines, requested_by, state,"
            " reject_reason, refunded_total_cents, full_refund, gateway_ref,"
            " request_event_id, attempts, decided_at)"
            " SELECT id, key, o, req, amt, cur, rsn, rs, l::jsonb, rb, st, why, tot,"
            "  fu, ref, cause, CASE WHEN st = 'processed' THEN 1 ELSE 0 END,"
            "  CASE WHEN st <> 'pending' THEN now() END"
            " FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[],"
            "  $6::text[], $7::text[], $8::bool[], $9::text[], $10::text[], $11::text[],"
            "  $12::text[], $13::bigint[], $14::bool[], $15::text[], $16::text[])"
            "  AS x(id, key, o, req, amt, cur, rsn, rs, l, rb, st, why, tot, fu, ref,"
            "  cause)",
            &c, PGRES_COMMAND_OK, NULL);
    pg_cols_fini(&c);
    return s;
}

static oms_status update_orders(req_batch *rb)
{
    pg_cols c;
    oms_status s = OMS_OK;
    pg_cols_init(&c, 3);
    for (size_t k = 0; k < rb->n_orders; k++) {
        const paid_row *o = &rb->orders[k];
        if (o->changed) {
            pg_cols_text(&c, 0, o->id);
            pg_cols_int(&c, 1, o->refunded);
            pg_cols_int(&c, 2, o->pending);
        }
    }
    if ((s = c.status) == OMS_OK && pg_cols_rows(&c) > 0)
        s = pg_cols_query(rb->b->conn, "paid orders refund",
                          "UPDATE paid_orders p SET refunded_cents = x.refunded,"
                          " pending_cents = x.pending, updated_at = now()"
                          " FROM unnest($1::text[], $2::bigint[], $3::bigint[])"
                          "  AS x(order_id, refunded, pending)"
                          " WHERE p.order_id = x.order_id",
                          &c, PGRES_COMMAND_OK, NULL);
    pg_cols_fini(&c);
    return s;
}

static oms_status emit(req_batch *rb, size_t i)
{
    const item *it = &rb->items[i];
    const Oms__V1__RefundRequested *ev = it->ev;
    const paid_row *o = it->order >= 0 ? &rb->orders[it->order] : NULL;
    char ref[16];
    snprintf(ref, sizeof ref, "mock-%.8s", it->refund_id);
    refund_outcome out = {
        .refund_id = it->refund_id,
        .key = ev->idempotency_key,
        .order_id = ev->order_id,
        .currency = o ? o->currency : rb->ctx->currency,
        .reason = ev->reason,
        .lines_json = it->lines_json,
        .gateway_ref = ref,
        .customer_id = o ? o->customer_id : "",
        .customer_email = o ? o->email : "",
        .customer_name = o ? o->name : "",
        .cause = ev->meta ? ev->meta->event_id : rb->b->msgs[i].event_id,
        .amount_cents = it->amount_cents,
        .refunded_total_cents = it->refunded_total_cents,
        .paid_total_cents = o ? o->paid : 0,
        .full = it->full,
        .restock = ev->restock,
        .reject_reason = it->why,
        .key_reuse = it->kind == OUT_KEY_REUSE,
    };
    if (it->kind == OUT_PROCESSED)
        return refund_emit_processed(rb->b->outbox, &out);
    if (it->kind == OUT_REJECTED || it->kind == OUT_KEY_REUSE) {
        log_info("refund rejected", "idempotency_key", ev->idempotency_key, "order_id",
                 ev->order_id, "reason", it->why, NULL);
        return refund_emit_rejected(rb->b->outbox, &out);
    }
    return OMS_OK;
}

static oms_status emit_all(req_batch *rb)
{
    long counts[OUT_PROCESSED + 1] = {0};
    int64_t refunded_cents = 0;
    oms_status s = OMS_OK;
    for (size_t i = 0; i < rb->b->n && s == OMS_OK; i++) {
        const item *it = &rb->items[i];
        if (it->ev == NULL)
            continue;
        counts[it->kind]++;
        if (it->kind == OUT_PROCESSED)
            refunded_cents += it->amount_cents;
        s = emit(rb, i);
    }
    if (s != OMS_OK)
        return s;
    consumer_count(rb->b, "oms_refunds_total", "outcome=\"processed\"",
                   (double)counts[OUT_PROCESSED]);
    consumer_count(rb->b, "oms_refunds_total", "outcome=\"rejected\"",
                   (double)counts[OUT_REJECTED]);
    consumer_count(rb->b, "oms_refunds_total", "outcome=\"pending\"", (double)counts[OUT_PENDING]);
    consumer_count(rb->b, "oms_refunds_total", "outcome=\"key_reuse\"",
                   (double)counts[OUT_KEY_REUSE]);
    consumer_count(rb->b, "oms_refunded_cents_total", "", (double)refunded_cents);
    return OMS_OK;
}

static oms_status apply(req_batch *rb)
{
    oms_status s;
    if ((s = lock_keys(rb)) != OMS_OK || (s = lock_orders(rb)) != OMS_OK)
        return s;
    for (size_t i = 0; i < rb->b->n; i++)
        if (rb->items[i].ev != NULL)
            decide_one(rb, &rb->items[i]);
    if ((s = insert_refunds(rb)) != OMS_OK || (s = update_orders(rb)) != OMS_OK)
        return s;
    return emit_all(rb);
}

oms_status refund_apply_requested(void *arg, consumer_batch *b)
{
    req_batch rb = {.b = b, .ctx = arg};
    oms_status s = OMS_ENOMEM;
    bool any = false;
    rb.items = calloc(b->n ? b->n : 1, sizeof *rb.items);
    if (rb.items == NULL)
        goto out;
    s = OMS_OK;
    for (size_t i = 0; i < b->n && s == OMS_OK; i++) {
        if (!b->msgs[i].duplicate && !b->msgs[i].rejected)
            s = decode(&rb, i);
        any = any || rb.items[i].ev != NULL;
    }
    if (s == OMS_OK && any)
        s = apply(&rb);
out:
    for (size_t i = 0; rb.items != NULL && i < b->n; i++) {
        oms__v1__refund_requested__free_unpacked(rb.items[i].ev, NULL);
        free(rb.items[i].lines_json);
    }
    free(rb.items), free(rb.keys), free(rb.orders), free(rb.order_ids);
    PQclear(rb.keys_res);
    PQclear(rb.orders_res);
    return s;
}
