/*
 * test_plan.c - the reservation planner: the SKU order products are locked
 * in, all-or-nothing per order, lines of one SKU summed, unknown SKUs, a
 * later order seeing what earlier ones took, ignored orders, and the exact
 * rejection sentences.
 */
#include "testenv.h"

#include "inventory_plan.h"

#include <stdio.h>
#include <string.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* Sets the available units of sku as if its product row had been locked. */
static void stock(inv_plan *p, const char *sku, int64_t available)
{
    long k = inv_plan_stock_find(p, sku);
    assert_true(k >= 0);
    p->stock[k].known = true;
    p->stock[k].available = available;
}

static int64_t taken(const inv_plan *p, const char *sku)
{
    long k = inv_plan_stock_find(p, sku);
    assert_true(k >= 0);
    return p->stock[k].taken;
}

static void assert_rejected(const inv_plan *p, size_t i, const char *reason, const char *sku,
                            int64_t requested, int64_t available)
{
    char got[256];
    const inv_outcome *o = &p->outcomes[i];
    assert_int_equal(o->result, INV_REJECTED);
    inv_plan_reason(o, got, sizeof got);
    assert_string_equal(got, reason);
    assert_string_equal(o->sku, sku);
    assert_int_equal(o->requested, requested);
    assert_int_equal(o->available, available);
    assert_int_equal(o->n_held, 0);
}

/* ---- the lock order ------------------------------------------------------ */

static void test_skus_are_distinct_and_sorted_by_bytes(void **state)
{
    (void)state;
    const inv_line a[] = {{"SKU-b", 1}, {"SKU-B", 1}, {"sku-a", 2}};
    const inv_line b[] = {{"SKU-B", 3}, {"SKU-10", 1}, {"SKU-9", 1}, {"SKU-b", 1}};
    const inv_order orders[] = {{"O-1", a, N(a), false}, {"O-2", b, N(b), false}};
    inv_plan p;
    assert_int_equal(inv_plan_init(&p, orders, N(orders)), OMS_OK);
    /* Byte order, as PostgreSQL's ORDER BY sku COLLATE "C" locks them. */
    static const char *const want[] = {"SKU-10", "SKU-9", "SKU-B", "SKU-b", "sku-a"};
    assert_int_equal(p.n_stock, N(want));
    for (size_t k = 0; k < N(want); k++) {
        assert_string_equal(p.stock[k].sku, want[k]);
        assert_false(p.stock[k].known);
        assert_int_equal(inv_plan_stock_find(&p, want[k]), (long)k);
    }
    assert_int_equal(inv_plan_stock_find(&p, "SKU-C"), -1);
    assert_int_equal(inv_plan_stock_find(&p, ""), -1);
    inv_plan_fini(&p);
}

static void test_ignored_orders_lock_nothing(void **state)
{
    (void)state;
    const inv_line a[] = {{"SKU-A", 1}};
    const inv_line b[] = {{"SKU-B", 1}};
    const inv_line c[] = {{"SKU-C", 1}};
    /* O-1 twice (the second under another event id), O-2 decided by an
     * earlier batch. */
    const inv_order orders[] = {{"O-1", a, 1, false}, {"O-2", b, 1, true}, {"O-1", c, 1, false}};
    inv_plan p;
    assert_int_equal(inv_plan_init(&p, orders, N(orders)), OMS_OK);
    assert_int_equal(p.n_stock, 1);
    assert_string_equal(p.stock[0].sku, "SKU-A");
    stock(&p, "SKU-A", 5);
    inv_plan_run(&p);
    assert_int_equal(p.outcomes[0].result, INV_RESERVED);
    assert_int_equal(p.outcomes[1].result, INV_IGNORED);
    assert_int_equal(p.outcomes[2].result, INV_IGNORED);
    assert_int_equal(taken(&p, "SKU-A"), 1);
    inv_plan_fini(&p);
}

/* ---- decisions ------------------------------------------------------------- */

static void test_stock_runs_out_at_a_known_order(void **state)
{
    (void)state;
    const inv_line one[] = {{"SKU-A", 1}};
    inv_order orders[12];
    char ids[12][8];
    for (size_t i = 0; i < N(orders); i++) {
        snprintf(ids[i], sizeof ids[i], "O-%02zu", i + 1);
        orders[i] = (inv_order){ids[i], one, 1, false};
    }
    inv_plan p;
    assert_int_equal(inv_plan_init(&p, orders, N(orders)), OMS_OK);
    stock(&p, "SKU-A", 10);
    inv_plan_run(&p);
    for (size_t i = 0; i < 10; i++) {
        assert_int_equal(p.outcomes[i].result, INV_RESERVED);
        assert_int_equal(p.outcomes[i].n_held, 1);
        assert_string_equal(p.outcomes[i].held[0].sku, "SKU-A");
        assert_int_equal(p.outcomes[i].held[0].qty, 1);
    }
    assert_rejected(&p, 10, "SKU-A: 1 requested, 0 available", "SKU-A", 1, 0);
    assert_rejected(&p, 11, "SKU-A: 1 requested, 0 available", "SKU-A", 1, 0);
    assert_int_equal(taken(&p, "SKU-A"), 10);
    assert_int_equal(p.stock[0].available, 0);
    inv_plan_fini(&p);
}

static void test_all_or_nothing(void **state)
{
    (void)state;
    const inv_line big[] = {{"SKU-A", 2}, {"SKU-B", 4}};   /* B short: A not held either */
    const inv_line small[] = {{"SKU-A", 3}, {"SKU-B", 3}}; /* sees A still at 3 */
    const inv_line more[] = {{"SKU-A", 1}};                /* A now 0 */
    const inv_order orders[] = {{"O-1", big, 2, false},
                                {"O-2", small, 2, false},
                                {"O-3", more, 1, false}};
    inv_plan p;
    assert_int_equal(inv_plan_init(&p, orders, N(orders)), OMS_OK);
    stock(&p, "SKU-A", 3);
    stock(&p, "SKU-B", 3);
    inv_plan_run(&p);
    assert_rejected(&p, 0, "SKU-B: 4 requested, 3 available", "SKU-B", 4, 3);
    assert_int_equal(p.outcomes[1].result, INV_RESERVED);
    assert_int_equal(p.outcomes[1].n_held, 2);
    assert_rejected(&p, 2, "SKU-A: 1 requested, 0 available", "SKU-A", 1, 0);
    assert_int_equal(taken(&p, "SKU-A"), 3);
    assert_int_equal(taken(&p, "SKU-B"), 3);
    inv_plan_fini(&p);
}

static void test_lines_of_one_sku_are_summed(void **state)
{
    (void)state;
    const inv_line twice[] = {{"SKU-B", 1}, {"SKU-A", 1}, {"SKU-B", 2}};
    const inv_line again[] = {{"SKU-B", 1}, {"SKU-B", 1}};
    const inv_order orders[] = {{"O-1", twice, 3, false}, {"O-2", again, 2, false}};
    inv_plan p;
    assert_int_equal(inv_plan_init(&p, orders, N(orders)), OMS_OK);
    stock(&p, "SKU-A", 1);
    stock(&p, "SKU-B", 4);
    inv_plan_run(&p);
    /* Held per SKU in order of first appearance: B (1 + 2), then A. */
    const inv_outcome *o = &p.outcomes[0];
    assert_int_equal(o->result, INV_RESERVED);
    assert_int_equal(o->n_held, 2);
    assert_string_equal(o->held[0].sku, "SKU-B");
    assert_int_equal(o->held[0].qty, 3);
    assert_string_equal(o->held[1].sku, "SKU-A");
    assert_int_equal(o->held[1].qty, 1);
    /* Each line alone (1) fits in the 1 left; their sum (2) does not. */
    assert_rejected(&p, 1, "SKU-B: 2 requested, 1 available", "SKU-B", 2, 1);
    assert_int_equal(taken(&p, "SKU-B"), 3);
    inv_plan_fini(&p);
}

static void test_unknown_sku_rejects_the_order(void **state)
{
    (void)state;
    const inv_line lines[] = {{"SKU-A", 1}, {"SKU-9", 2}, {"SKU-9", 5}};
    const inv_order orders[] = {{"O-1", lines, 3, false}};
    inv_plan p;
    assert_int_equal(inv_plan_init(&p, orders, N(orders)), OMS_OK);
    stock(&p, "SKU-A", 100); /* SKU-9: no product row was found */
    inv_plan_run(&p);
    assert_rejected(&p, 0, "SKU-9: unknown product", "SKU-9", 7, -1);
    assert_int_equal(taken(&p, "SKU-A"), 0);
    assert_int_equal(p.stock[inv_plan_stock_find(&p, "SKU-A")].available, 100);
    inv_plan_fini(&p);
}

static void test_first_failing_line_is_named(void **state)
{
    (void)state;
    const inv_line short_first[] = {{"SKU-B", 9}, {"SKU-X", 1}};
    const inv_line unknown_first[] = {{"SKU-X", 1}, {"SKU-B", 9}};
    const inv_order orders[] = {{"O-1", short_first, 2, false}, {"O-2", unknown_first, 2, false}};
    inv_plan p;
    assert_int_equal(inv_plan_init(&p, orders, N(orders)), OMS_OK);
    stock(&p, "SKU-B", 2);
    inv_plan_run(&p);
    assert_rejected(&p, 0, "SKU-B: 9 requested, 2 available", "SKU-B", 9, 2);
    assert_rejected(&p, 1, "SKU-X: unknown product", "SKU-X", 1, -1);
    inv_plan_fini(&p);
}

static void test_known_product_with_no_stock(void **state)
{
    (void)state;
    const inv_line lines[] = {{"SKU-Z", 3}};
    const inv_order orders[] = {{"O-1", lines, 1, false}};
    inv_plan p;
    assert_int_equal(inv_plan_init(&p, orders, N(orders)), OMS_OK);
    stock(&p, "SKU-Z", 0);
    inv_plan_run(&p);
    assert_rejected(&p, 0, "SKU-Z: 3 requested, 0 available", "SKU-Z", 3, 0);
    inv_plan_fini(&p);
}

static void test_empty_batch(void **state)
{
    (void)state;
    inv_plan p;
    assert_int_equal(inv_plan_init(&p, NULL, 0), OMS_OK);
    assert_int_equal(p.n_stock, 0);
    inv_plan_run(&p);
    inv_plan_fini(&p);
    inv_plan_fini(&p); /* after fini the plan is empty: fini again is harmless */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_skus_are_distinct_and_sorted_by_bytes),
        cmocka_unit_test(test_ignored_orders_lock_nothing),
        cmocka_unit_test(test_stock_runs_out_at_a_known_order),
        cmocka_unit_test(test_all_or_nothing),
        cmocka_unit_test(test_lines_of_one_sku_are_summed),
        cmocka_unit_test(test_unknown_sku_rejects_the_order),
        cmocka_unit_test(test_first_failing_line_is_named),
        cmocka_unit_test(test_known_product_with_no_stock),
        cmocka_unit_test(test_empty_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
