/*
 * test_metrics.c - the exact exposition text for each metric type, ordering,
 * misuse that must be dropped, and exact sums under concurrent updates.
 */
#include "testenv.h"

#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Renders m and compares with the expected text, printing both on mismatch. */
static void assert_render(metrics *m, const char *expected)
{
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(metrics_render(m, &text, &len), OMS_OK);
    assert_non_null(text);
    assert_string_equal(text, expected);
    assert_int_equal(len, strlen(expected));
    free(text);
}

static void test_empty_renders_empty_string(void **state)
{
    (void)state;
    metrics *m = metrics_create();
    assert_non_null(m);
    assert_render(m, "");
    metrics_destroy(m);
    metrics_destroy(NULL);
}

static void test_counter_without_labels(void **state)
{
    (void)state;
    metrics *m = metrics_create();
    metrics_counter_declare(m, "oms_events_total", "Events applied.");
    metrics_counter_add(m, "oms_events_total", "", 1);
    metrics_counter_add(m, "oms_events_total", "", 2.5);
    assert_render(m, "# HELP oms_events_total Events applied.\n"
                     "# TYPE oms_events_total counter\n"
                     "oms_events_total 3.5\n");
    assert_true(metrics_value(m, "oms_events_total", "") == 3.5);
    metrics_destroy(m);
}

static void test_counter_with_labels_in_first_use_order(void **state)
{
    (void)state;
    metrics *m = metrics_create();
    /* Undeclared: help defaults to the name. */
    metrics_counter_add(m, "oms_msgs_total", "subject=\"order.created\",result=\"applied\"", 2);
    metrics_counter_add(m, "oms_msgs_total", "subject=\"order.paid\",result=\"applied\"", 1);
    metrics_counter_add(m, "oms_msgs_total", "subject=\"order.created\",result=\"applied\"", 3);
    assert_render(m, "# HELP oms_msgs_total oms_msgs_total\n"
                     "# TYPE oms_msgs_total counter\n"
                     "oms_msgs_total{subject=\"order.created\",result=\"applied\"} 5\n"
                     "oms_msgs_total{subject=\"order.paid\",result=\"applied\"} 1\n");
    assert_true(metrics_value(m, "oms_msgs_total", "subject=\"order.paid\",result=\"applied\"") ==
                1);
    assert_true(metrics_value(m, "oms_msgs_total", "subject=\"nope\"") == 0);
    assert_true(metrics_value(m, "absent_total", "") == 0);
    metrics_destroy(m);
}

static void test_gauge_set_overwrites(void **state)
{
    (void)state;
    metrics *m = metrics_create();
    metrics_gauge_declare(m, "oms_outbox_pending", "Outbox rows not yet published.");
    metrics_gauge_set(m, "oms_outbox_pending", "", 12);
    metrics_gauge_set(m, "oms_outbox_pending", "", 4);
    metrics_gauge_set(m, "oms_lag_seconds", "stream=\"ORDERS\"", -0.25);
    assert_render(m, "# HELP oms_outbox_pending Outbox rows not yet published.\n"
                     "# TYPE oms_outbox_pending gauge\n"
                     "oms_outbox_pending 4\n"
                     "# HELP oms_lag_seconds oms_lag_seconds\n"
                     "# TYPE oms_lag_seconds gauge\n"
                     "oms_lag_seconds{stream=\"ORDERS\"} -0.25\n");
    assert_true(metrics_value(m, "oms_outbox_pending", "") == 4);
    metrics_destroy(m);
}

static void test_histogram_with_labels_merges_le(void **state)
{
    (void)state;
    metrics *m = metrics_create();
    const double bounds[] = {0.5, 1};
    metrics_histogram_declare(m, "oms_batch_seconds", "Batch duration.", bounds, 2);
    /* Exact binary fractions so the sum prints exactly; 0.5 lands in le="0.5"
     * because bucket bounds are inclusive. */
    metrics_histogram_observe(m, "oms_batch_seconds", "subject=\"x\"", 0.25);
    metrics_histogram_observe(m, "oms_batch_seconds", "subject=\"x\"", 0.5);
    metrics_histogram_observe(m, "oms_batch_seconds", "subject=\"x\"", 0.75);
    metrics_histogram_observe(m, "oms_batch_seconds", "subject=\"x\"", 2);
    metrics_histogram_observe(m, "oms_batch_seconds", "", 1);
    assert_render(m, "# HELP oms_batch_seconds Batch duration.\n"
                     "# TYPE oms_batch_seconds histogram\n"
                     "oms_batch_seconds_bucket{subject=\"x\",le=\"0.5\"} 2\n"
                     "oms_batch_seconds_bucket{subject=\"x\",le=\"1\"} 3\n"
                     "oms_batch_seconds_bucket{subject=\"x\",le=\"+Inf\"} 4\n"
                     "oms_batch_seconds_sum{subject=\"x\"} 3.5\n"
                     "oms_batch_seconds_count{subject=\"x\"} 4\n"
                     "oms_batch_seconds_bucket{le=\"0.5\"} 0\n"
                     "oms_batch_seconds_bucket{le=\"1\"} 1\n"
                     "oms_batch_seconds_bucket{le=\"+Inf\"} 1\n"
                     "oms_batch_seconds_sum 1\n"
                     "oms_batch_seconds_count 1\n");
    /* Histograms have no single value. */
    assert_true(metrics_value(m, "oms_batch_seconds", "subject=\"x\"") == 0);
    metrics_destroy(m);
}

static void test_histogram_default_seconds_buckets(void **state)
{
    (void)state;
    metrics *m = metrics_create();
    assert_int_equal(METRICS_SECONDS_BUCKETS_LEN, 14);
    metrics_histogram_declare(m, "req_seconds", "Requests.", METRICS_SECONDS_BUCKETS,
                              METRICS_SECONDS_BUCKETS_LEN);
    metrics_histogram_observe(m, "req_seconds", "", 0.003);
    assert_render(m, "# HELP req_seconds Requests.\n"
                     "# TYPE req_seconds histogram\n"
                     "req_seconds_bucket{le=\"0.0005\"} 0\n"
                     "req_seconds_bucket{le=\"0.001\"} 0\n"
                     "req_seconds_bucket{le=\"0.0025\"} 0\n"
                     "req_seconds_bucket{le=\"0.005\"} 1\n"
                     "req_seconds_bucket{le=\"0.01\"} 1\n"
                     "req_seconds_bucket{le=\"0.025\"} 1\n"
                     "req_seconds_bucket{le=\"0.05\"} 1\n"
                     "req_seconds_bucket{le=\"0.1\"} 1\n"
                     "req_seconds_bucket{le=\"0.25\"} 1\n"
                     "req_seconds_bucket{le=\"0.5\"} 1\n"
                     "req_seconds_bucket{le=\"1\"} 1\n"
                     "req_seconds_bucket{le=\"2.5\"} 1\n"
                     "req_seconds_bucket{le=\"5\"} 1\n"
                     "req_seconds_bucket{le=\"10\"} 1\n"
                     "req_seconds_bucket{le=\"+Inf\"} 1\n"
                     "req_seconds_sum 0.003\n"
                     "req_seconds_count 1\n");
    metrics_destroy(m);
}

static void test_families_in_first_use_order_help_once(void **state)
{
    (void)state;
    metrics *m = metrics_create();
    const double bounds[] = {1};
    metrics_gauge_set(m, "b_gauge", "", 1);
    metrics_histogram_declare(m, "c_hist", "C.", bounds, 1);
    metrics_counter_add(m, "a_total", "k=\"2\"", 1);
    metrics_counter_add(m, "a_total", "k=\"1\"", 1);
    /* A late declaration documents the family without moving it. */
    metrics_gauge_declare(m, "b_gauge", "B, with a \\ and a\nnewline.");
    assert_render(m, "# HELP b_gauge B, with a \\\\ and a\\nnewline.\n"
                     "# TYPE b_gauge gauge\n"
                     "b_gauge 1\n"
                     "# HELP c_hist C.\n"
                     "# TYPE c_hist histogram\n"
                     "# HELP a_total a_total\n"
                     "# TYPE a_total counter\n"
                     "a_total{k=\"2\"} 1\n"
                     "a_total{k=\"1\"} 1\n");
    metrics_destroy(m);
}

static void test_misuse_is_dropped(void **state)
{
    (void)state;
    metrics *m = metrics_create();
    const double descending[] = {1, 0.5};
    const double with_inf[] = {1, INFINITY};
    metrics_histogram_observe(m, "undeclared_seconds", "", 1);
    metrics_histogram_declare(m, "bad_seconds", "Bad.", descending, 2);
    metrics_histogram_observe(m, "bad_seconds", "", 1);
    metrics_counter_add(m, "x_total", "", 1);
    metrics_counter_add(m, "x_total", "", -5);
    metrics_gauge_set(m, "x_total", "", 100);
    metrics_counter_add(m, "bad-name", "", 1);
    /* A trailing +Inf bound is implicit, so it is accepted and not doubled. */
    metrics_histogram_declare(m, "inf_seconds", "Inf.", with_inf, 2);
    metrics_histogram_observe(m, "inf_seconds", "", 7);
    assert_render(m, "# HELP x_total x_total\n"
                     "# TYPE x_total counter\n"
                     "x_total 1\n"
                     "# HELP inf_seconds Inf.\n"
                     "# TYPE inf_seconds histogram\n"
                     "inf_seconds_bucket{le=\"1\"} 0\n"
                     "inf_seconds_bucket{le=\"+Inf\"} 1\n"
                     "inf_seconds_sum 7\n"
                     "inf_seconds_count 1\n");
    metrics_destroy(m);
}

static void test_value_formatting(void **state)
{
    (void)state;
    metrics *m = metrics_create();
    metrics_gauge_set(m, "g", "v=\"tenth\"", 0.1);
    metrics_gauge_set(m, "g", "v=\"third\"", 1.0 / 3);
    metrics_gauge_set(m, "g", "v=\"big\"", 1e21);
    metrics_gauge_set(m, "g", "v=\"cents\"", 123456789012);
    metrics_gauge_set(m, "g", "v=\"inf\"", -INFINITY);
    metrics_gauge_set(m, "g", "v=\"nan\"", NAN);
    assert_render(m, "# HELP g g\n"
                     "# TYPE g gauge\n"
                     "g{v=\"tenth\"} 0.1\n"
                     "g{v=\"third\"} 0.33333333333333331\n"
                     "g{v=\"big\"} 1e+21\n"
                     "g{v=\"cents\"} 123456789012\n"
                     "g{v=\"inf\"} -Inf\n"
                     "g{v=\"nan\"} NaN\n");
    metrics_destroy(m);
}

#define N_THREADS 8
#define N_ADDS 20000

static void *hammer(void *arg)
{
    metrics *m = arg;
    for (int i = 0; i < N_ADDS; i++) {
        metrics_counter_add(m, "hits_total", "", 1);
        metrics_counter_add(m, "hits_total", i % 2 ? "parity=\"odd\"" : "parity=\"even\"", 1);
        metrics_histogram_observe(m, "work_seconds", "", 0.5);
    }
    return NULL;
}

static void test_concurrent_updates_sum_exactly(void **state)
{
    (void)state;
    metrics *m = metrics_create();
    const double bounds[] = {1};
    metrics_histogram_declare(m, "work_seconds", "Work.", bounds, 1);
    pthread_t threads[N_THREADS];
    for (int i = 0; i < N_THREADS; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, hammer, m), 0);
    for (int i = 0; i < N_THREADS; i++)
        pthread_join(threads[i], NULL);
    assert_true(metrics_value(m, "hits_total", "") == N_THREADS * N_ADDS);
    assert_true(metrics_value(m, "hits_total", "parity=\"odd\"") == N_THREADS * N_ADDS / 2);
    assert_true(metrics_value(m, "hits_total", "parity=\"even\"") == N_THREADS * N_ADDS / 2);
    assert_render(m, "# HELP work_seconds Work.\n"
                     "# TYPE work_seconds histogram\n"
                     "work_seconds_bucket{le=\"1\"} 160000\n"
                     "work_seconds_bucket{le=\"+Inf\"} 160000\n"
                     "work_seconds_sum 80000\n"
                     "work_seconds_count 160000\n"
                     "# HELP hits_total hits_total\n"
                     "# TYPE hits_total counter\n"
                     "hits_total 160000\n"
                     "hits_total{parity=\"even\"} 80000\n"
                     "hits_total{parity=\"odd\"} 80000\n");
    metrics_destroy(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_renders_empty_string),
        cmocka_unit_test(test_counter_without_labels),
        cmocka_unit_test(test_counter_with_labels_in_first_use_order),
        cmocka_unit_test(test_gauge_set_overwrites),
        cmocka_unit_test(test_histogram_with_labels_merges_le),
        cmocka_unit_test(test_histogram_default_seconds_buckets),
        cmocka_unit_test(test_families_in_first_use_order_help_once),
        cmocka_unit_test(test_misuse_is_dropped),
        cmocka_unit_test(test_value_formatting),
        cmocka_unit_test(test_concurrent_updates_sum_exactly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
