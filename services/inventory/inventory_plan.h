/*
 * inventory_plan.h - deciding in memory which orders of a fetched batch get
 * their stock: the pure heart of the order.created consumer.
 *
 * The consumer locks every product the batch names, in the SKU order this
 * planner lists them (two inventory processes on the same durable then never
 * wait on each other in a cycle), tells the planner how many units of each
 * are available, and the planner walks the orders in event order:
 *   - an order gets every line or nothing;
 *   - lines of one SKU in one order are summed before they are checked;
 *   - an unknown SKU rejects the order;
 *   - a later order sees what earlier orders of the batch took;
 *   - a repeated order id (after its first occurrence) and an order already
 *     reserved by an earlier batch are ignored.
 * The consumer then writes the result with set-based SQL. Nothing here
 * touches PostgreSQL, so the rules are unit-tested alone.
 */
#ifndef OMS_INVENTORY_PLAN_H
#define OMS_INVENTORY_PLAN_H

#include "oms.h"

/* Units of one SKU. */
typedef struct inv_line {
    const char *sku; /* borrowed */
    int64_t qty;
} inv_line;

/* One order to plan. Everything is borrowed and must outlive the plan. */
typedef struct inv_order {
    const char *order_id;
    const inv_line *lines; /* as the order listed them; qty >= 1 (the caller validates) */
    size_t n_lines;
    bool exists; /* already in reservations: ignore it */
} inv_order;

/* A product the batch names: set by the caller from its locked row. */
typedef struct inv_stock {
    const char *sku;   /* borrowed from an order */
    bool known;        /* false until the caller found the product */
    int64_t available; /* on_hand - reserved when locked; the plan lowers it */
    int64_t taken;     /* out: units the batch's reserved orders hold */
} inv_stock;

typedef enum inv_result {
    INV_RESERVED,
    INV_REJECTED,
    INV_IGNORED,
} inv_result;

typedef struct inv_outcome {
    inv_result result;
    /* INV_REJECTED: the first SKU (in the order's line order) that could not
     * be held, the units of it the order asked for in all, and the units
     * available then (-1 when the product is unknown). */
    const char *sku;
    int64_t requested;
    int64_t available;
    /* INV_RESERVED: units held per SKU, in order of first appearance. */
    const inv_line *held;
    size_t n_held;
} inv_outcome;

typedef struct inv_plan {
    const inv_order *orders;
    size_t n_orders;
    inv_outcome *outcomes; /* one per order, same index */
    inv_stock *stock;      /* distinct SKUs of the orders not ignored, strcmp order */
    size_t n_stock;
    inv_line *held; /* storage the outcomes' held lines point into */
    size_t n_held;
    int64_t *need;   /* scratch, one per stock entry */
    size_t *touched; /* scratch, stock indexes of one order */
} inv_plan;

/* Prepares a plan for orders[0..n) (borrowed): marks repeated and existing
 * orders ignored and lists the SKUs of the others in plan->stock, sorted by
 * strcmp, every entry unknown. OMS_ENOMEM leaves nothing to free; otherwise
 * the caller frees with inv_plan_fini. */
oms_status inv_plan_init(inv_plan *p, const inv_order *orders, size_t n);

/* Index in p->stock of sku, or -1 when the batch does not name it. */
long inv_plan_stock_find(const inv_plan *p, const char *sku);

/* Decides every order not ignored, in event order, from the available units
 * the caller set; fills p->outcomes and each stock entry's taken. Run once. */
void inv_plan_run(inv_plan *p);

/* Writes the sentence for a rejected outcome into buf:
 * "SKU-7: 3 requested, 1 available" or "SKU-9: unknown product". */
void inv_plan_reason(const inv_outcome *o, char *buf, size_t len);

void inv_plan_fini(inv_plan *p);

#endif
