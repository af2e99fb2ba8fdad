/*
 * inventory_plan.c - the reservation planner (see inventory_plan.h).
 *
 * Cost is O(L log L) for a batch of L lines: SKUs are found by binary search
 * in the sorted stock list, and an order's lines are summed in a scratch
 * array indexed by stock entry, reset after each order by walking only the
 * entries that order touched.
 */
#include "inventory_plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_str_ptr(const void *a, const void *b)
{
    const char *const *x = a, *const *y = b;
    return strcmp(*x, *y);
}

/* An order id and its position: sorted by id, then position, so the first
 * of equal ids comes first. */
typedef struct order_key {
    const char *order_id;
    size_t index;
} order_key;

static int cmp_order_key(const void *a, const void *b)
{
    const order_key *x = a, *y = b;
    int d = strcmp(x->order_id, y->order_id);
    return d != 0 ? d : (x->index > y->index) - (x->index < y->index);
}

/* Marks as ignored every order that exists already or repeats an earlier id. */
static oms_status mark_ignored(inv_plan *p)
{
    size_t n = p->n_orders;
    order_key *keys = malloc((n ? n : 1) * sizeof *keys);
    if (keys == NULL)
        return OMS_ENOMEM;
    for (size_t i = 0; i < n; i++)
        keys[i] = (order_key){p->orders[i].order_id, i};
    qsort(keys, n, sizeof *keys, cmp_order_key);
    for (size_t k = 0; k < n; k++) {
        bool repeat = k > 0 && strcmp(keys[k - 1].order_id, keys[k].order_id) == 0;
        if (repeat || p->orders[keys[k].index].exists)
            p->outcomes[keys[k].index].result = INV_IGNORED;
    }
    free(keys);
    return OMS_OK;
}

/* Lists the distinct SKUs of the orders not ignored, sorted. */
static oms_status list_skus(inv_plan *p, size_t total_lines)
{
    const char **skus = malloc((total_lines ? total_lines : 1) * sizeof *skus);
    size_t n = 0;
    if (skus == NULL)
        return OMS_ENOMEM;
    for (size_t i = 0; i < p->n_orders; i++)
        for (size_t l = 0; p->outcomes[i].result != INV_IGNORED && l < p->orders[i].n_lines; l++)
            skus[n++] = p->orders[i].lines[l].sku;
    qsort(skus, n, sizeof *skus, cmp_str_ptr);
    const char *prev = NULL;
    for (size_t i = 0; i < n; i++) {
        if (prev != NULL && strcmp(prev, skus[i]) == 0)
            continue;
        prev = skus[i];
        p->stock[p->n_stock++] = (inv_stock){.sku = skus[i]};
    }
    free(skus);
    return OMS_OK;
}

oms_status inv_plan_init(inv_plan *p, const inv_order *orders, size_t n)
{
    size_t total_lines = 0;
    memset(p, 0, sizeof *p);
    for (size_t i = 0; i < n; i++)
        total_lines += orders[i].n_lines;
    p->orders = orders;
    p->n_orders = n;
    /* Sized for the worst case (every line a distinct SKU) so nothing moves
     * once outcomes point into held. */
    p->outcomes = calloc(n ? n : 1, sizeof *p->outcomes);
    p->stock = calloc(total_lines ? total_lines : 1, sizeof *p->stock);
    p->held = calloc(total_lines ? total_lines : 1, sizeof *p->held);
    p->need = calloc(total_lines ? total_lines : 1, sizeof *p->need);
    p->touched = calloc(total_lines ? total_lines : 1, sizeof *p->touched);
    oms_status s = OMS_ENOMEM;
    if (p->outcomes && p->stock && p->held && p->need && p->touched &&
        (s = mark_ignored(p)) == OMS_OK && (s = list_skus(p, total_lines)) == OMS_OK)
        return OMS_OK;
    inv_plan_fini(p);
    return s;
}

long inv_plan_stock_find(const inv_plan *p, const char *sku)
{
    size_t lo = 0, hi = p->n_stock;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int d = strcmp(p->stock[mid].sku, sku);
        if (d == 0)
            return (long)mid;
        if (d < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* Decides one order; p->need is all zero on entry and on return. */
static void plan_order(inv_plan *p, size_t i)
{
    const inv_order *o = &p->orders[i];
    inv_outcome *out = &p->outcomes[i];
    size_t n_touched = 0;

    for (size_t l = 0; l < o->n_lines; l++) {
        size_t k = (size_t)inv_plan_stock_find(p, o->lines[l].sku); /* listed by init */
        if (p->need[k] == 0)
            p->touched[n_touched++] = k;
        p->need[k] += o->lines[l].qty;
    }
    out->result = INV_RESERVED;
    for (size_t t = 0; t < n_touched && out->result == INV_RESERVED; t++) {
        const inv_stock *st = &p->stock[p->touched[t]];
        int64_t need = p->need[p->touched[t]];
        if (!st->known || need > st->available) {
            out->result = INV_REJECTED;
            out->sku = st->sku;
            out->requested = need;
            out->available = st->known ? st->available : -1;
        }
    }
    if (out->result == INV_RESERVED) {
        out->held = &p->held[p->n_held];
        out->n_held = n_touched;
    }
    for (size_t t = 0; t < n_touched; t++) {
        size_t k = p->touched[t];
        if (out->result == INV_RESERVED) {
            p->stock[k].available -= p->need[k];
            p->stock[k].taken += p->need[k];
            p->held[p->n_held++] = (inv_line){p->stock[k].sku, p->need[k]};
        }
        p->need[k] = 0;
    }
}

void inv_plan_run(inv_plan *p)
{
    for (size_t i = 0; i < p->n_orders; i++)
        if (p->outcomes[i].result != INV_IGNORED)
            plan_order(p, i);
}

void inv_plan_reason(const inv_outcome *o, char *buf, size_t len)
{
    if (o->available < 0)
        snprintf(buf, len, "%s: unknown product", o->sku);
    else
        snprintf(buf, len, "%s: %lld requested, %lld available", o->sku, (long long)o->requested,
                 (long long)o->available);
}

void inv_plan_fini(inv_plan *p)
{
    free(p->outcomes);
    free(p->stock);
    free(p->held);
    free(p->need);
    free(p->touched);
    memset(p, 0, sizeof *p);
}
