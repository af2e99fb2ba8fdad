/*
 * test_analytics_script.c - the projection's Lua script against the real
 * Redis of the local stack (database 9, flushed before each test): an event
 * counts once however often it comes, a refund that arrives before its
 * payment gives the same numbers as one after it, every arrival order of a
 * set of events gives the same keys, NOSCRIPT is survived, and bad events
 * are rejected naming the field.
 */
#include "testenv.h"

#include "analytics.h"
#include "outbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOV22_10H 1795341600000LL /* 2026-11-22T10:00:00Z */
#define DAY_MS 86400000LL

static redis_conn *connect_test_db(void)
{
    char url[256], err[REDIS_ERR_LEN];
    const char *base = testenv_require("OMS_REDIS_URL");
    const char *slash = strchr(base + strlen("redis://"), '/');
    int len = slash ? (int)(slash - base) : (int)strlen(base);
    snprintf(url, sizeof url, "%.*s/9", len, base);
    redis_conn *r = NULL;
    assert_int_equal(redis_connect(&r, url, 2000, err), OMS_OK);
    redisReply *rep = redisCommand(redis_context(r), "FLUSHDB");
    assert_non_null(rep);
    freeReplyObject(rep);
    return r;
}

/* One event, packed, as the consumer hands it to the encoder. */
typedef struct event {
    char subject[32];
    char event_id[40];
    uint8_t *data;
    size_t len;
} event;

static void pack(event *e, const char *subject, const char *id, const ProtobufCMessage *msg)
{
    snprintf(e->subject, sizeof e->subject, "%s", subject);
    snprintf(e->event_id, sizeof e->event_id, "%s", id);
    e->len = protobuf_c_message_get_packed_size(msg);
    e->data = malloc(e->len ? e->len : 1);
    protobuf_c_message_pack(msg, e->data);
}

static event paid(const char *id, const char *order, const char *cust, const char *name,
                  int64_t cents, int64_t at_ms)
{
    Oms__V1__OrderPaid p = OMS__V1__ORDER_PAID__INIT;
    Oms__V1__EventMeta meta = OMS__V1__EVENT_META__INIT;
    event e;
    meta.event_id = (char *)id;
    p.meta = &meta;
    p.order_id = (char *)order;
    p.customer_id = (char *)cust;
    p.customer_name = (char *)name;
    p.customer_email = (char *)"c@example.com";
    p.total_cents = cents;
    p.currency = (char *)"USD";
    p.paid_at_ms = at_ms;
    p.status = (char *)"paid";
    pack(&e, "order.paid", id, &p.base);
    return e;
}

static event failed(const char *id, const char *order, int64_t at_ms)
{
    Oms__V1__OrderFailed f = OMS__V1__ORDER_FAILED__INIT;
    Oms__V1__EventMeta meta = OMS__V1__EVENT_META__INIT;
    event e;
    meta.event_id = (char *)id;
    f.meta = &meta;
    f.order_id = (char *)order;
    f.customer_id = (char *)"C-F";
    f.total_cents = 999;
    f.currency = (char *)"USD";
    f.failed_at_ms = at_ms;
    pack(&e, "order.failed", id, &f.base);
    return e;
}

static event refund(const char *id, const char *order, const char *cust, int64_t cents,
                    int64_t at_ms)
{
    Oms__V1__RefundProcessed r = OMS__V1__REFUND_PROCESSED__INIT;
    Oms__V1__EventMeta meta = OMS__V1__EVENT_META__INIT;
    event e;
    meta.event_id = (char *)id;
    r.meta = &meta;
    r.refund_id = (char *)id;
    r.order_id = (char *)order;
    r.customer_id = (char *)cust;
    r.amount_cents = cents;
    r.currency = (char *)"USD";
    r.processed_at_ms = at_ms;
    pack(&e, "refund.processed", id, &r.base);
    return e;
}

static analytics_ctx test_ctx(void)
{
    analytics_ctx c;
    memset(&c, 0, sizeof c);
    c.currency = "USD";
    c.seen_ttl_s = 3600;
    c.m = NULL;
    return c;
}

static oms_msg msg_of(const event *e)
{
    oms_msg m;
    memset(&m, 0, sizeof m);
    m.subject = e->subject;
    m.data = e->data;
    m.len = e->len;
    snprintf(m.event_id, sizeof m.event_id, "%s", e->event_id);
    return m;
}

static oms_status encode(analytics_ctx *c, oms_msg *m, redis_args *a)
{
    if (strcmp(m->subject, "order.paid") == 0)
        return analytics_encode_paid(c, m, a);
    if (strcmp(m->subject, "order.failed") == 0)
        return analytics_encode_failed(c, m, a);
    return analytics_encode_refund(c, m, a);
}

/* Applies events in one pipeline; results[i] gets the script's answer. */
static void apply(redis_conn *r, analytics_ctx *c, const event *events, size_t n,
                  long long *results)
{
    redis_script script = {ANALYTICS_APPLY_SCRIPT, ""};
    redis_args *calls = calloc(n, sizeof *calls);
    redisReply **replies = calloc(n, sizeof *replies);
    for (size_t i = 0; i < n; i++) {
        oms_msg m = msg_of(&events[i]);
        redis_args_init(&calls[i]);
        assert_int_equal(encode(c, &m, &calls[i]), OMS_OK);
        assert_false(m.rejected);
    }
    assert_int_equal(redis_eval_pipeline(r, &script, calls, n, replies), OMS_OK);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(replies[i]->type, REDIS_REPLY_INTEGER);
        if (results != NULL)
            results[i] = replies[i]->integer;
        freeReplyObject(replies[i]);
        redis_args_fini(&calls[i]);
    }
    free(calls);
    free(replies);
}

static void events_free(event *e, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(e[i].data);
}

/* Everything a reader can see, as text: three days of KPIs, the month's and
 * all-time leaderboards. */
static char *dump(redis_conn *r)
{
    analytics_kpi k[3];
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    assert_int_equal(analytics_read_kpis(r, NOV22_10H / DAY_MS - 1, 3, k), OMS_OK);
    for (int i = 0; i < 3; i++)
        fprintf(f, "%s %lld %lld %lld %lld %lld\n", k[i].day, (long long)k[i].revenue_cents,
                (long long)k[i].order_count, (long long)k[i].failed_count,
                (long long)k[i].refund_cents, (long long)k[i].refund_count);
    static const char *const periods[] = {"2026-11", "all"};
    for (int p = 0; p < 2; p++) {
        analytics_leader *l = NULL;
        size_t n = 0;
        assert_int_equal(analytics_read_leaderboard(r, periods[p], 10, &l, &n), OMS_OK);
        for (size_t i = 0; i < n; i++)
            fprintf(f, "%s %s %s %lld %lld\n", periods[p], l[i].customer_id, l[i].name,
                    (long long)l[i].net_cents, (long long)l[i].orders);
        free(l);
    }
    fclose(f);
    return out;
}

static void flush(redis_conn *r)
{
    redisReply *rep = redisCommand(redis_context(r), "FLUSHDB");
    freeReplyObject(rep);
}

static void test_paid_failed_refund_numbers(void **state)
{
    (void)state;
    redis_conn *r = connect_test_db();
    analytics_ctx c = test_ctx();
    event ev[] = {paid("e1", "O1", "C1", "Ann", 1999, NOV22_10H),
                  paid("e2", "O2", "C1", "Ann", 501, NOV22_10H + 1),
                  paid("e3", "O3", "C2", "Bob", 10000, NOV22_10H - DAY_MS),
                  failed("e4", "O4", NOV22_10H), refund("e5", "O3", "C2", 2500, NOV22_10H)};
    apply(r, &c, ev, 5, NULL);
    analytics_kpi k[2];
    assert_int_equal(analytics_read_kpis(r, NOV22_10H / DAY_MS - 1, 2, k), OMS_OK);
    assert_string_equal(k[0].day, "2026-11-21");
    assert_int_equal(k[0].revenue_cents, 10000);
    assert_int_equal(k[0].order_count, 1);
    assert_int_equal(k[0].refund_cents, 0);
    assert_string_equal(k[1].day, "2026-11-22");
    assert_int_equal(k[1].revenue_cents, 2500);
    assert_int_equal(k[1].order_count, 2);
    assert_int_equal(k[1].failed_count, 1);
    assert_int_equal(k[1].refund_cents, 2500); /* on the refund's day, not the payment's */
    assert_int_equal(k[1].refund_count, 1);
    analytics_leader *l = NULL;
    size_t n = 0;
    assert_int_equal(analytics_read_leaderboard(r, "all", 10, &l, &n), OMS_OK);
    assert_int_equal(n, 2);
    assert_string_equal(l[0].customer_id, "C2");
    assert_int_equal(l[0].net_cents, 7500);
    assert_int_equal(l[0].orders, 1);
    assert_string_equal(l[0].name, "Bob");
    assert_string_equal(l[1].customer_id, "C1");
    assert_int_equal(l[1].net_cents, 2500);
    assert_int_equal(l[1].orders, 2);
    free(l);
    events_free(ev, 5);
    redis_conn_destroy(r);
}

static void test_duplicate_changes_nothing(void **state)
{
    (void)state;
    redis_conn *r = connect_test_db();
    analytics_ctx c = test_ctx();
    event ev[] = {paid("d1", "O1", "C1", "Ann", 1234, NOV22_10H),
                  paid("d1", "O1", "C1", "Ann", 1234, NOV22_10H), /* same batch */
                  refund("d2", "O1", "C1", 234, NOV22_10H)};
    long long res[3];
    apply(r, &c, ev, 3, res);
    assert_int_equal(res[0], 1);
    assert_int_equal(res[1], 0);
    assert_int_equal(res[2], 1);
    char *before = dump(r);
    apply(r, &c, ev, 3, res); /* redelivered later */
    for (int i = 0; i < 3; i++)
        assert_int_equal(res[i], 0);
    char *after = dump(r);
    assert_string_equal(before, after);
    assert_non_null(strstr(after, "2026-11-22 1234 1 0 234 1\n"));
    free(before);
    free(after);
    events_free(ev, 3);
    redis_conn_destroy(r);
}

/* Heap's algorithm: every order of n events. */
static void permute(event *ev, size_t n, size_t k, redis_conn *r, analytics_ctx *c,
                    const char *expect, int *count)
{
    if (k == 1) {
        flush(r);
        for (size_t i = 0; i < n; i++)
            apply(r, c, &ev[i], 1, NULL); /* one at a time: arrival order matters */
        char *got = dump(r);
        assert_string_equal(got, expect);
        free(got);
        (*count)++;
        return;
    }
    for (size_t i = 0; i < k; i++) {
        permute(ev, n, k - 1, r, c, expect, count);
        size_t j = k % 2 == 0 ? i : 0;
        event t = ev[j];
        ev[j] = ev[k - 1];
        ev[k - 1] = t;
    }
}

static void test_refund_before_payment_and_any_order(void **state)
{
    (void)state;
    redis_conn *r = connect_test_db();
    analytics_ctx c = test_ctx();
    event ev[] = {paid("p1", "O1", "C1", "Ann", 5000, NOV22_10H),
                  refund("r1", "O1", "C1", 1500, NOV22_10H + 60000),
                  refund("r2", "O1", "C1", 500, NOV22_10H + DAY_MS),
                  paid("p2", "O2", "C1", "Ann Smith", 700, NOV22_10H + 1000),
                  failed("f1", "O3", NOV22_10H)};
    /* The refund alone first: the leaderboard goes below zero until the
     * payment it belongs to arrives. */
    apply(r, &c, &ev[1], 1, NULL);
    analytics_leader *l = NULL;
    size_t n = 0;
    assert_int_equal(analytics_read_leaderboard(r, "all", 10, &l, &n), OMS_OK);
    assert_int_equal(n, 1);
    assert_int_equal(l[0].net_cents, -1500);
    free(l);
    apply(r, &c, &ev[0], 1, NULL);
    assert_int_equal(analytics_read_leaderboard(r, "all", 10, &l, &n), OMS_OK);
    assert_int_equal(l[0].net_cents, 3500);
    free(l);

    flush(r);
    apply(r, &c, ev, 5, NULL);
    char *expect = dump(r);
    assert_non_null(strstr(expect, "2026-11-22 5700 2 1 1500 1\n"));
    assert_non_null(strstr(expect, "2026-11-23 0 0 0 500 1\n"));
    /* The newest payment's name wins, whichever arrived last. */
    assert_non_null(strstr(expect, "all C1 Ann Smith 3700 2\n"));
    int count = 0;
    permute(ev, 5, 5, r, &c, expect, &count);
    assert_int_equal(count, 120);
    free(expect);
    events_free(ev, 5);
    redis_conn_destroy(r);
}

static void test_noscript_is_reloaded(void **state)
{
    (void)state;
    redis_conn *r = connect_test_db();
    analytics_ctx c = test_ctx();
    event ev[] = {paid("n1", "O1", "C1", "Ann", 100, NOV22_10H),
                  paid("n2", "O2", "C1", "Ann", 200, NOV22_10H)};
    redis_script script = {ANALYTICS_APPLY_SCRIPT, ""};
    redis_args calls[2];
    redisReply *replies[2];
    for (int round = 0; round < 2; round++) {
        oms_msg m = msg_of(&ev[round]);
        redis_args_init(&calls[0]);
        assert_int_equal(encode(&c, &m, &calls[0]), OMS_OK);
        assert_int_equal(redis_eval_pipeline(r, &script, calls, 1, replies), OMS_OK);
        assert_int_equal(replies[0]->type, REDIS_REPLY_INTEGER);
        assert_int_equal(replies[0]->integer, 1);
        freeReplyObject(replies[0]);
        redis_args_fini(&calls[0]);
        redisReply *rep = redisCommand(redis_context(r), "SCRIPT FLUSH");
        freeReplyObject(rep); /* the SHA we hold is now unknown to Redis */
    }
    char *d = dump(r);
    assert_non_null(strstr(d, "2026-11-22 300 2 0 0 0\n"));
    free(d);
    events_free(ev, 2);
    redis_conn_destroy(r);
}

static void test_generations(void **state)
{
    (void)state;
    redis_conn *r = connect_test_db();
    analytics_ctx live = test_ctx(), rebuild = test_ctx();
    snprintf(rebuild.target_gen, sizeof rebuild.target_gen, "7");
    event ev[] = {paid("g1", "O1", "C1", "Ann", 100, NOV22_10H)};
    long long res;
    apply(r, &live, ev, 1, &res);
    assert_int_equal(res, 1);
    redisReply *rep = redisCommand(redis_context(r),
                                   "HGET analytics:0:kpi:2026-11-22 revenue_cents");
    assert_string_equal(rep->str, "100");
    freeReplyObject(rep);
    /* A rebuild's generation has its own event ids: the same event applies there once. */
    apply(r, &rebuild, ev, 1, &res);
    assert_int_equal(res, 1);
    apply(r, &rebuild, ev, 1, &res);
    assert_int_equal(res, 0);
    rep = redisCommand(redis_context(r), "HGET analytics:7:kpi:2026-11-22 revenue_cents");
    assert_string_equal(rep->str, "100");
    freeReplyObject(rep);
    /* While 7 is also being written, a live event goes to both; the answer
     * says whether the current generation (0) applied it. */
    rep = redisCommand(redis_context(r), "SADD analytics:writing 7");
    freeReplyObject(rep);
    event more[] = {paid("g2", "O2", "C1", "Ann", 50, NOV22_10H)};
    apply(r, &live, more, 1, &res);
    assert_int_equal(res, 1);
    rep = redisCommand(redis_context(r), "HGET analytics:7:kpi:2026-11-22 revenue_cents");
    assert_string_equal(rep->str, "150");
    freeReplyObject(rep);
    assert_int_equal(analytics_drop_generation(r, "7"), OMS_OK);
    rep = redisCommand(redis_context(r), "KEYS analytics:7:*");
    assert_int_equal(rep->elements, 0);
    freeReplyObject(rep);
    events_free(ev, 1);
    events_free(more, 1);
    redis_conn_destroy(r);
}

static void assert_rejected(analytics_ctx *c, const event *e, const char *reason_part)
{
    oms_msg m = msg_of(e);
    redis_args a;
    redis_args_init(&a);
    assert_int_equal(encode(c, &m, &a), OMS_OK);
    assert_true(m.rejected);
    if (strstr(m.reason, reason_part) == NULL)
        fail_msg("reason \"%s\" does not name \"%s\"", m.reason, reason_part);
    redis_args_fini(&a);
}

static void test_bad_events_are_rejected(void **state)
{
    (void)state;
    analytics_ctx c = test_ctx();
    event garbage = {"order.paid", "x1", (uint8_t *)strdup("\xff\xff\xff"), 3};
    assert_rejected(&c, &garbage, "not a valid oms.v1.OrderPaid");
    event no_customer = paid("x2", "O1", "", "Ann", 100, NOV22_10H);
    assert_rejected(&c, &no_customer, "customer_id is empty");
    event zero_refund = refund("x3", "O1", "C1", 0, NOV22_10H);
    assert_rejected(&c, &zero_refund, "amount 0 cents");
    event no_time = paid("x4", "O1", "C1", "Ann", 100, 0);
    assert_rejected(&c, &no_time, "paid_at_ms is not set"); /* no meta time either */
    analytics_ctx eur = test_ctx();
    eur.currency = "EUR";
    event usd = paid("x5", "O1", "C1", "Ann", 100, NOV22_10H);
    assert_rejected(&eur, &usd, "currency \"USD\" is not EUR");
    event *all[] = {&garbage, &no_customer, &zero_refund, &no_time, &usd};
    for (size_t i = 0; i < 5; i++)
        free(all[i]->data);
}

static void test_script_refuses_bad_arguments_without_writing(void **state)
{
    (void)state;
    redis_conn *r = connect_test_db();
    redis_script script = {ANALYTICS_APPLY_SCRIPT, ""};
    redis_args a;
    redisReply *rep = NULL;
    redis_args_init(&a);
    const char *argv[] = {"",   "bad1",         "3600", "paid", "2026-11-22", "2026-11",
                          "C1", "not-a-number", "",     "",     "1"};
    for (size_t i = 0; i < 11; i++)
        redis_args_add_str(&a, argv[i]);
    assert_int_equal(redis_eval_pipeline(r, &script, &a, 1, &rep), OMS_OK);
    assert_int_equal(rep->type, REDIS_REPLY_ERROR);
    assert_non_null(strstr(rep->str, "bad arguments for event bad1"));
    freeReplyObject(rep);
    rep = redisCommand(redis_context(r), "DBSIZE");
    assert_int_equal(rep->integer, 0);
    freeReplyObject(rep);
    redis_args_fini(&a);
    redis_conn_destroy(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paid_failed_refund_numbers),
        cmocka_unit_test(test_duplicate_changes_nothing),
        cmocka_unit_test(test_refund_before_payment_and_any_order),
        cmocka_unit_test(test_noscript_is_reloaded),
        cmocka_unit_test(test_generations),
        cmocka_unit_test(test_bad_events_are_rejected),
        cmocka_unit_test(test_script_refuses_bad_arguments_without_writing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
