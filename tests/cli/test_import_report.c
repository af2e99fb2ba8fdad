/*
 * test_import_report.c - cli/import_report.c: the summary of an import
 * followed to the end (paid, failed split by reason, revenue with its
 * currency, the first failures) in JSON and as text, what --no-follow
 * leaves out, and how many orders are still in flight.
 */
#include "testenv.h"

#include "import.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Runs print(s) with stdout going to a file; returns what it wrote (caller frees). */
static char *capture(void (*print)(const import_summary *), const import_summary *s)
{
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(tmp), STDOUT_FILENO) >= 0);
    print(s);
    fflush(stdout);
    assert_true(dup2(saved, STDOUT_FILENO) >= 0);
    close(saved);
    long len = ftell(tmp);
    assert_true(len >= 0);
    char *text = calloc(1, (size_t)len + 1);
    assert_non_null(text);
    rewind(tmp);
    assert_int_equal(fread(text, 1, (size_t)len, tmp), (size_t)len);
    fclose(tmp);
    return text;
}

static void print_json(const import_summary *s)
{
    assert_int_equal(import_print_json(s), OMS_OK);
}

/* A completed import of 9 orders: 5 paid, 4 failed (2 out of stock, 1
 * payment, 1 other), the first 3 failures kept. */
static import_summary followed_import(void)
{
    import_summary s = {.import_id = "imp-1",
                        .rows_sent = 29,
                        .completed_s = 0.5,
                        .elapsed_s = 2.0,
                        .follow = true,
                        .settled = true};
    import_outcome *o = &s.o;
    o->completed = true;
    o->rows = 29, o->valid_rows = 23, o->rejected_rows = 6, o->orders = 9;
    o->orders_seen = 9, o->rejections_seen = 6;
    o->paid = 5, o->failed = 4, o->failed_out_of_stock = 2, o->failed_payment = 1;
    o->revenue_cents = 123456;
    snprintf(o->currency, sizeof o->currency, "EUR");
    o->n_failures = 3;
    snprintf(o->failures[0].order_id, sizeof o->failures[0].order_id, "ORD-2");
    snprintf(o->failures[0].reason, sizeof o->failures[0].reason,
             "out of stock: SKU-7: 3 requested, 1 available");
    snprintf(o->failures[1].order_id, sizeof o->failures[1].order_id, "ORD-5");
    snprintf(o->failures[1].reason, sizeof o->failures[1].reason, "payment failed: card declined");
    snprintf(o->failures[2].order_id, sizeof o->failures[2].order_id, "ORD-7");
    snprintf(o->failures[2].reason, sizeof o->failures[2].reason, "something else");
    return s;
}

static json_int_t int_at(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v))
        fail_msg("\"%s\" is not an integer", key);
    return json_integer_value(v);
}

static void test_json_has_the_lifecycle(void **state)
{
    (void)state;
    import_summary s = followed_import();
    char *text = capture(print_json, &s);
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    assert_int_equal(int_at(j, "orders"), 9);
    assert_int_equal(int_at(j, "paid"), 5);
    assert_int_equal(int_at(j, "failed"), 4);
    assert_int_equal(int_at(j, "failed_out_of_stock"), 2);
    assert_int_equal(int_at(j, "failed_payment"), 1);
    assert_int_equal(int_at(j, "revenue_cents"), 123456);
    assert_int_equal(int_at(j, "in_flight"), 0);
    assert_string_equal(json_string_value(json_object_get(j, "currency")), "EUR");
    const json_t *failures = json_object_get(j, "failures");
    assert_int_equal(json_array_size(failures), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(failures, 1), "order_id")),
                        "ORD-5");
    assert_string_equal(json_string_value(json_object_get(json_array_get(failures, 1), "reason")),
                        "payment failed: card declined");
    assert_true(json_is_true(json_object_get(j, "completed")));
    assert_true(json_real_value(json_object_get(j, "completed_s")) == 0.5);
    assert_true(json_real_value(json_object_get(j, "elapsed_s")) == 2.0);
    json_decref(j);
    free(text);
}

static void test_json_without_follow(void **state)
{
    (void)state;
    import_summary s = followed_import();
    s.follow = false, s.settled = false;
    s.o.paid = 1, s.o.failed = 0, s.o.failed_out_of_stock = 0, s.o.failed_payment = 0;
    s.o.n_failures = 0;
    s.o.currency[0] = '\0';
    char *text = capture(print_json, &s);
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    assert_int_equal(int_at(j, "paid"), 1); /* what arrived before import.completed */
    assert_true(json_is_null(json_object_get(j, "in_flight")));
    assert_true(json_is_null(json_object_get(j, "currency")));
    assert_int_equal(json_array_size(json_object_get(j, "failures")), 0);
    json_decref(j);
    free(text);
}

static void test_text_summary(void **state)
{
    (void)state;
    import_summary s = followed_import();
    s.o.failed = 6; /* two failures beyond the three kept */
    char *text = capture(import_print_text, &s);
    assert_non_null(strstr(text, "import imp-1 completed in 0.5 s (58 rows/s)\n"));
    assert_non_null(strstr(text, "  orders created  9\n"
                                 "  paid            5\n"
                                 "  failed          6 (2 out of stock, 1 payment failed, "
                                 "3 other)\n"
                                 "    ORD-2: out of stock: SKU-7: 3 requested, 1 available\n"
                                 "    ORD-5: payment failed: card declined\n"
                                 "    ORD-7: something else\n"
                                 "    ... and 3 more\n"
                                 "  revenue         1,234.56 EUR\n"
                                 "  settled in      2.0 s (6 orders/s)\n"));
    free(text);
}

static void test_text_in_flight_and_no_follow(void **state)
{
    (void)state;
    import_summary s = followed_import();
    s.settled = false;
    s.o.paid = 2, s.o.failed = 1, s.o.failed_out_of_stock = 1, s.o.failed_payment = 0;
    s.o.n_failures = 1;
    char *text = capture(import_print_text, &s);
    assert_non_null(strstr(text, "  failed          1 (1 out of stock, 0 payment failed)\n"));
    assert_non_null(strstr(text, "  in flight       6 (neither paid nor failed yet)\n"));
    assert_null(strstr(text, "settled in"));
    free(text);

    s.follow = false;
    text = capture(import_print_text, &s);
    assert_non_null(strstr(text, "  orders created  9\n"));
    assert_null(strstr(text, "paid"));
    assert_null(strstr(text, "revenue"));
    free(text);
}

static void test_in_flight(void **state)
{
    (void)state;
    import_outcome o = {.orders_seen = 4, .paid = 1, .failed = 1};
    assert_int_equal(import_in_flight(&o), 2); /* before import.completed: orders seen */
    o.completed = true;
    o.orders = 10;
    assert_int_equal(import_in_flight(&o), 8); /* after: ingest's count */
    o.paid = 12;
    assert_int_equal(import_in_flight(&o), 0); /* never negative */
}

/* A product-list import: the generated ids and the ignored columns are
 * said once; an ordinary import prints neither. */
static void test_generated_ids_and_ignored_columns(void **state)
{
    (void)state;
    import_summary s = followed_import();
    s.ignored = "notes, gift_wrap";
    s.id_prefix = "pl-6600d7fe36856d89-";
    char *text = capture(import_print_text, &s);
    assert_non_null(strstr(text, "  orders created  9\n"
                                 "  order ids       generated: pl-6600d7fe36856d89-ROW, ROW the "
                                 "file's line (row 2 is pl-6600d7fe36856d89-2)\n"
                                 "  ignored columns notes, gift_wrap\n"));
    free(text);
    text = capture(print_json, &s);
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "ignored_columns")),
                        "notes, gift_wrap");
    assert_string_equal(json_string_value(json_object_get(j, "generated_order_id_prefix")),
                        "pl-6600d7fe36856d89-");
    json_decref(j);
    free(text);

    s = followed_import();
    text = capture(import_print_text, &s);
    assert_null(strstr(text, "order ids"));
    assert_null(strstr(text, "ignored"));
    free(text);
    text = capture(print_json, &s);
    j = json_loads(text, 0, NULL);
    assert_null(json_object_get(j, "ignored_columns"));
    assert_null(json_object_get(j, "generated_order_id_prefix"));
    json_decref(j);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_has_the_lifecycle),
        cmocka_unit_test(test_json_without_follow),
        cmocka_unit_test(test_text_summary),
        cmocka_unit_test(test_text_in_flight_and_no_follow),
        cmocka_unit_test(test_in_flight),
        cmocka_unit_test(test_generated_ids_and_ignored_columns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
