/*
 * test_rt_consumer.c - lib/consumer (the PostgreSQL applier) against the
 * stack's nats-server and PostgreSQL, through consumer.h only: a message is
 * applied once; the same event id delivered again is skipped by the inbox; a
 * message apply rejects (one whose payload does not decode) and one
 * PostgreSQL refuses go to dead_letters with their reason while the stream
 * moves on; a transient failure (apply says so, or the backend is terminated
 * under it) naks and the message is applied exactly once afterwards; and
 * nothing is acked before COMMIT.
 */
#include "testenv.h"

#include "consumer.h"
#include "metrics.h"
#include "oms_events.pb-c.h"
#include "pg.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STREAM "RTCONS"
#define SCHEMA "rtcons"
/* The server's smallest duplicate window: a test sends one event id twice. */
#define DUP_WINDOW_MS 100

/* What apply saw, per behaviour; guarded by mu. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int applied_calls; /* messages apply handled (not duplicate) */
    int flaky_calls;   /* deliveries of rtcons.flaky that reached apply */
    int kill_calls;    /* deliveries of rtcons.kill that reached apply */
    bool hold;         /* rtcons.hold blocks in apply until released */
    bool holding;      /* apply is blocked on a rtcons.hold message */
} seen = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static metrics *metr;
static js_conn *js;
static PGconn *pg;
static consumer_env env;

static oms_status insert_applied(PGconn *conn, const oms_msg *m, const char *tag)
{
    const char *params[] = {m->event_id, tag};
    PGresult *r = PQexecParams(conn, "INSERT INTO applied (event_id, tag) VALUES ($1, $2)", 2, NULL,
                               params, NULL, NULL, 0);
    oms_status s = PQresultStatus(r) == PGRES_COMMAND_OK ? OMS_OK : pg_error(conn, r, "applied");
    PQclear(r);
    return s;
}

static void hold_until_released(void)
{
    pthread_mutex_lock(&seen.mu);
    seen.holding = true;
    pthread_cond_broadcast(&seen.cv);
    while (seen.hold)
        pthread_cond_wait(&seen.cv, &seen.mu);
    seen.holding = false;
    pthread_mutex_unlock(&seen.mu);
}

/* rtcons.paid carries an oms.v1.OrderPaid: one that does not decode is
 * rejected before anything is written for it. */
static oms_status apply_paid(consumer_batch *b, size_t i)
{
    oms_msg *m = &b->msgs[i];
    Oms__V1__OrderPaid *paid = oms__v1__order_paid__unpack(NULL, m->len, m->data);
    if (paid == NULL) {
        consumer_reject(b, i, "payload is not an oms.v1.OrderPaid (%zu bytes)", m->len);
        return OMS_OK;
    }
    oms_status s = insert_applied(b->conn, m, paid->order_id);
    oms__v1__order_paid__free_unpacked(paid, NULL);
    return s;
}

/* The behaviour of one message, chosen by the last subject token. */
static oms_status apply_one(consumer_batch *b, size_t i)
{
    oms_msg *m = &b->msgs[i];
    const char *kind = strrchr(m->subject, '.') + 1;
    pthread_mutex_lock(&seen.mu);
    seen.applied_calls++;
    int flaky = strcmp(kind, "flaky") == 0 ? ++seen.flaky_calls : 0;
    int kill = strcmp(kind, "kill") == 0 ? ++seen.kill_calls : 0;
    pthread_mutex_unlock(&seen.mu);
    if (strcmp(kind, "reject") == 0) {
        consumer_reject(b, i, "test rejects %s", m->event_id);
        return OMS_OK;
    }
    if (flaky > 0 && flaky <= 2)
        return OMS_ETRANSIENT;
    if (kill == 1) {
        /* The backend goes away under the open transaction, as on a failover. */
        PGresult *r = PQexec(b->conn, "SELECT pg_terminate_backend(pg_backend_pid())");
        oms_status s = pg_error(b->conn, r, "terminate");
        PQclear(r);
        return s == OMS_OK ? OMS_ETRANSIENT : s;
    }
    if (strcmp(kind, "hold") == 0)
        hold_until_released();
    if (strcmp(kind, "paid") == 0)
        return apply_paid(b, i);
    /* rtcons.refused breaks the CHECK on tag: PostgreSQL refuses it. */
    return insert_applied(b->conn, m, strcmp(kind, "refused") == 0 ? "" : kind);
}

static oms_status apply(void *ctx, consumer_batch *b)
{
    (void)ctx;
    for (size_t i = 0; i < b->n; i++) {
        if (b->msgs[i].duplicate || b->msgs[i].rejected)
            continue;
        oms_status s = apply_one(b, i);
        if (s != OMS_OK)
            return s;
    }
    return OMS_OK;
}

static void exec_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "%s: %s", sql, PQerrorMessage(c));
        fail();
    }
    PQclear(r);
}

static int setup(void **st)
{
    (void)st;
    metr = metrics_create();
    js = testenv_js();
    pg = testenv_pg_schema(SCHEMA);
    exec_ok(pg, "CREATE TABLE applied (event_id text PRIMARY KEY,"
                " tag text NOT NULL CONSTRAINT tag_not_empty CHECK (tag <> ''))");
    env = (consumer_env){testenv_require("OMS_PG_DSN"), SCHEMA, js, metr};
    return 0;
}

static int teardown(void **st)
{
    (void)st;
    PQfinish(pg);
    js_DeleteStream(js_ctx(js), STREAM, NULL, NULL);
    js_conn_destroy(js);
    metrics_destroy(metr);
    return 0;
}

/* A fresh stream and fresh tables for each test. */
static int fresh(void **st)
{
    (void)st;
    testenv_stream_create(js, STREAM, "rtcons.>", DUP_WINDOW_MS);
    exec_ok(pg, "TRUNCATE applied, inbox, dead_letters");
    pthread_mutex_lock(&seen.mu);
    seen.applied_calls = seen.flaky_calls = seen.kill_calls = 0;
    pthread_mutex_unlock(&seen.mu);
    return 0;
}

static consumer_spec spec_for(const char *durable)
{
    return (consumer_spec){.pull = {.name = durable,
                                    .stream = STREAM,
                                    .durable = durable,
                                    .batch_max = 16,
                                    .wait_ms = 100,
                                    .ack_wait_ms = 30000,
                                    .max_attempts = 5,
                                    .nak_delay_ms = 50},
                           .apply = apply};
}

static void publish_bytes(const char *kind, const char *id, const void *data, size_t len)
{
    char subject[64];
    const char *headers[] = {JS_HDR_MSG_ID, id, NULL};
    snprintf(subject, sizeof subject, "rtcons.%s", kind);
    testenv_publish(js, subject, data, len, headers);
}

static void publish(const char *kind, const char *id)
{
    publish_bytes(kind, id, "x", 1);
}

static void publish_paid(const char *id, const char *order_id)
{
    Oms__V1__OrderPaid paid = OMS__V1__ORDER_PAID__INIT;
    uint8_t buf[128];
    paid.order_id = (char *)order_id;
    paid.total_cents = 1250;
    size_t len = oms__v1__order_paid__get_packed_size(&paid);
    assert_true(len <= sizeof buf);
    oms__v1__order_paid__pack(&paid, buf);
    publish_bytes("paid", id, buf, len);
}

static long count_where(const char *table, const char *event_id)
{
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s WHERE event_id = '%s'", table, event_id);
    return testenv_pg_long(pg, sql);
}

static int calls(int *field)
{
    pthread_mutex_lock(&seen.mu);
    int v = *field;
    pthread_mutex_unlock(&seen.mu);
    return v;
}

static void test_applied_once_and_redelivery_skipped(void **st)
{
    (void)st;
    consumer_spec spec = spec_for("rtcons-once");
    consumer *c = NULL;
    assert_int_equal(consumer_start(&c, &spec, &env), OMS_OK);
    int64_t first_ms = oms_mono_ms();
    publish("ok", "once-1");
    assert_int_equal(testenv_wait_pg(pg, "SELECT count(*) FROM applied", 1, 5000), 1);
    assert_true(testenv_durable_settled(js, STREAM, spec.pull.durable, 5000));
    /* The same event again, once past the window so the stream keeps it: a
     * redelivery as a crash before the ack would make. */
    int64_t left_ms = first_ms + 2 * DUP_WINDOW_MS - oms_mono_ms();
    if (left_ms > 0)
        oms_sleep_ms(left_ms, NULL);
    publish("ok", "once-1");
    assert_int_equal(testenv_stream_count(js, STREAM), 2);
    assert_true(testenv_durable_settled(js, STREAM, spec.pull.durable, 5000));
    consumer_stop(c);
    assert_int_equal(calls(&seen.applied_calls), 1);
    assert_int_equal(count_where("applied", "once-1"), 1);
    assert_int_equal(count_where("inbox", "once-1"), 1);
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM dead_letters"), 0);
}

static void test_poison_dead_lettered_stream_moves_on(void **st)
{
    (void)st;
    consumer_spec spec = spec_for("rtcons-poison");
    consumer *c = NULL;
    publish("reject", "poison-1");
    publish("refused", "poison-2");
    publish_bytes("paid", "poison-3", "\xff\xff\xff", 3); /* wire type 7: not protobuf */
    publish_paid("paid-1", "O-77");
    publish("ok", "after-1");
    assert_int_equal(consumer_start(&c, &spec, &env), OMS_OK);
    assert_int_equal(testenv_wait_pg(pg, "SELECT count(*) FROM dead_letters", 3, 5000), 3);
    assert_int_equal(testenv_wait_pg(pg, "SELECT count(*) FROM applied", 2, 5000), 2);
    assert_true(testenv_durable_settled(js, STREAM, spec.pull.durable, 5000));
    consumer_stop(c);
    assert_int_equal(count_where("applied", "after-1"), 1);
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM applied WHERE event_id = 'paid-1'"
                                         " AND tag = 'O-77'"),
                     1);
    PGresult *r = PQexec(pg, "SELECT event_id, subject, reason, payload FROM dead_letters"
                             " ORDER BY event_id");
    assert_int_equal(PQntuples(r), 3);
    assert_string_equal(PQgetvalue(r, 0, 0), "poison-1");
    assert_string_equal(PQgetvalue(r, 0, 1), "rtcons.reject");
    assert_string_equal(PQgetvalue(r, 0, 2), "test rejects poison-1");
    assert_string_equal(PQgetvalue(r, 1, 0), "poison-2");
    assert_string_equal(PQgetvalue(r, 1, 1), "rtcons.refused");
    const char *reason = PQgetvalue(r, 1, 2);
    if (strncmp(reason, "database refused the event: ", 28) != 0 ||
        strstr(reason, "tag_not_empty") == NULL)
        fail_msg("reason of poison-2 is \"%s\"", reason);
    assert_string_equal(PQgetvalue(r, 2, 0), "poison-3");
    assert_string_equal(PQgetvalue(r, 2, 2), "payload is not an oms.v1.OrderPaid (3 bytes)");
    assert_string_equal(PQgetvalue(r, 2, 3), "\\xffffff"); /* the bytes kept, bytea hex */
    PQclear(r);
    /* A dead letter is settled: neither is in the inbox twice nor applied. */
    assert_int_equal(count_where("applied", "poison-1"), 0);
    assert_int_equal(count_where("applied", "poison-2"), 0);
    assert_int_equal(count_where("applied", "poison-3"), 0);
}

static void test_transient_failure_naks_then_applies_once(void **st)
{
    (void)st;
    consumer_spec spec = spec_for("rtcons-flaky");
    consumer *c = NULL;
    assert_int_equal(consumer_start(&c, &spec, &env), OMS_OK);
    publish("flaky", "flaky-1");
    assert_int_equal(testenv_wait_pg(pg, "SELECT count(*) FROM applied", 1, 8000), 1);
    assert_true(testenv_durable_settled(js, STREAM, spec.pull.durable, 5000));
    consumer_stop(c);
    assert_int_equal(calls(&seen.flaky_calls), 3); /* two transient failures, then applied */
    assert_int_equal(count_where("applied", "flaky-1"), 1);
    assert_int_equal(count_where("inbox", "flaky-1"), 1);
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM dead_letters"), 0);
}

static void test_backend_terminated_reconnects_applies_once(void **st)
{
    (void)st;
    consumer_spec spec = spec_for("rtcons-kill");
    consumer *c = NULL;
    assert_int_equal(consumer_start(&c, &spec, &env), OMS_OK);
    publish("kill", "kill-1");
    publish("ok", "kill-2");
    assert_int_equal(testenv_wait_pg(pg, "SELECT count(*) FROM applied", 2, 8000), 2);
    assert_true(testenv_durable_settled(js, STREAM, spec.pull.durable, 5000));
    consumer_stop(c);
    assert_int_equal(calls(&seen.kill_calls), 2);
    assert_int_equal(count_where("applied", "kill-1"), 1);
    assert_int_equal(count_where("inbox", "kill-1"), 1);
    assert_int_equal(count_where("applied", "kill-2"), 1);
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM dead_letters"), 0);
}

static bool is_holding(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&seen.mu);
    bool h = seen.holding;
    pthread_mutex_unlock(&seen.mu);
    return h;
}

static void test_ack_only_after_commit(void **st)
{
    (void)st;
    consumer_spec spec = spec_for("rtcons-hold");
    consumer *c = NULL;
    long ack_pending = -1, pending = -1;
    pthread_mutex_lock(&seen.mu);
    seen.hold = true;
    pthread_mutex_unlock(&seen.mu);
    assert_int_equal(consumer_start(&c, &spec, &env), OMS_OK);
    publish("hold", "hold-1");
    assert_true(testenv_wait(is_holding, NULL, 5000));
    /* Inside apply: delivered, not committed, so not acked. */
    testenv_durable_pending(js, STREAM, spec.pull.durable, &ack_pending, &pending);
    assert_int_equal(ack_pending, 1);
    assert_int_equal(pending, 0);
    assert_int_equal(count_where("inbox", "hold-1"), 0);
    pthread_mutex_lock(&seen.mu);
    seen.hold = false;
    pthread_cond_broadcast(&seen.cv);
    pthread_mutex_unlock(&seen.mu);
    assert_true(testenv_durable_settled(js, STREAM, spec.pull.durable, 5000));
    assert_int_equal(count_where("applied", "hold-1"), 1);
    assert_int_equal(count_where("inbox", "hold-1"), 1);
    consumer_stop(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_applied_once_and_redelivery_skipped, fresh),
        cmocka_unit_test_setup(test_poison_dead_lettered_stream_moves_on, fresh),
        cmocka_unit_test_setup(test_transient_failure_naks_then_applies_once, fresh),
        cmocka_unit_test_setup(test_backend_terminated_reconnects_applies_once, fresh),
        cmocka_unit_test_setup(test_ack_only_after_commit, fresh),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
