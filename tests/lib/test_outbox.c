/*
 * test_outbox.c - lib/outbox against the stack's PostgreSQL and nats-server:
 * rows committed with the state change are published exactly once with
 * Nats-Msg-Id = their event id and then deleted; rows rolled back are never
 * published; rows committed while no relay runs (a crash between COMMIT and
 * publish) are published by the next relay, and one the dead relay had
 * already published is dropped by the stream's duplicate window; a row
 * committed behind the relay's position (between two published ones) is
 * published once it commits.
 */
#include "testenv.h"

#include "metrics.h"
#include "outbox.h"
#include "pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STREAM "RTOUTBOX"
#define SCHEMA "rtoutbox"
#define RETENTION_MS (8 * 24 * 3600 * 1000LL)

static metrics *metr;
static js_conn *js;
static PGconn *pg;

static void exec_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
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

static int fresh(void **st)
{
    (void)st;
    testenv_stream_create(js, STREAM, "rtoutbox.>", 120000);
    exec_ok(pg, "TRUNCATE outbox");
    return 0;
}

/* Writes events ids[0..n) (payload "body <id>") in one transaction on c,
 * ended with end ("COMMIT" or "ROLLBACK"; NULL leaves it open). */
static void write_events_on(PGconn *c, const char *const *ids, size_t n, const char *end)
{
    outbox_batch b;
    char body[64];
    outbox_batch_init(&b);
    exec_ok(c, "BEGIN");
    for (size_t i = 0; i < n; i++) {
        int len = snprintf(body, sizeof body, "body %s", ids[i]);
        assert_int_equal(outbox_batch_add(&b, "rtoutbox.event", "oms.v1.Test", ids[i], body,
                                          (size_t)len),
                         OMS_OK);
    }
    assert_int_equal(outbox_batch_flush(&b, c), OMS_OK);
    assert_int_equal(b.total, n);
    if (end != NULL)
        exec_ok(c, end);
    outbox_batch_fini(&b);
}

static void write_events(const char *const *ids, size_t n, const char *end)
{
    write_events_on(pg, ids, n, end);
}

static outbox_relay *relay_start(void)
{
    outbox_relay *r = NULL;
    assert_int_equal(outbox_relay_start(&r, testenv_require("OMS_PG_DSN"), SCHEMA, js, metr,
                                        RETENTION_MS),
                     OMS_OK);
    return r;
}

/* Asserts the stream holds exactly ids[0..n), in order, each once with its
 * payload. */
static void assert_stream_is(const char *const *ids, size_t n)
{
    testenv_msg *msgs = NULL;
    size_t got = testenv_stream_read(js, STREAM, NULL, &msgs);
    assert_int_equal(got, n);
    for (size_t i = 0; i < n; i++) {
        char body[64];
        int len = snprintf(body, sizeof body, "body %s", ids[i]);
        assert_string_equal(msgs[i].subject, "rtoutbox.event");
        assert_non_null(msgs[i].msg_id);
        assert_string_equal(msgs[i].msg_id, ids[i]);
        assert_int_equal(msgs[i].len, (size_t)len);
        assert_memory_equal(msgs[i].data, body, (size_t)len);
    }
    testenv_msgs_free(msgs, got);
}

static void test_committed_once_rolled_back_never(void **st)
{
    (void)st;
    static const char *const committed[] = {"ob-1", "ob-2", "ob-3"};
    static const char *const rolled[] = {"ob-rolled"};
    write_events(committed, 3, "COMMIT");
    write_events(rolled, 1, "ROLLBACK");
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM outbox"), 3);
    outbox_relay *r = relay_start();
    /* The relay deletes a row only after its PubAck. */
    assert_int_equal(testenv_wait_pg(pg, "SELECT count(*) FROM outbox", 0, 5000), 0);
    assert_int_equal(testenv_stream_count(js, STREAM), 3);
    /* Rows committed while it runs go out too (LISTEN wakes it). */
    static const char *const later[] = {"ob-4"};
    write_events(later, 1, "COMMIT");
    assert_int_equal(testenv_wait_pg(pg, "SELECT count(*) FROM outbox", 0, 5000), 0);
    outbox_relay_stop(r, 2000);
    static const char *const all[] = {"ob-1", "ob-2", "ob-3", "ob-4"};
    assert_stream_is(all, 4);
}

/* A row whose id lies between two published rows but whose transaction
 * commits after they went out (ids are taken before commit): the relay's
 * delete of the published range leaves it, and it is published once it
 * commits. */
static void test_committed_behind_the_cursor(void **st)
{
    (void)st;
    static const char *const first[] = {"ob-a"}, *const late[] = {"ob-late"},
                             *const last[] = {"ob-b"};
    PGconn *other = testenv_pg_schema(SCHEMA);
    write_events(first, 1, "COMMIT");
    write_events_on(other, late, 1, NULL);
    write_events(last, 1, "COMMIT");
    outbox_relay *r = relay_start();
    assert_int_equal(testenv_wait_pg(pg, "SELECT count(*) FROM outbox", 0, 5000), 0);
    assert_int_equal(testenv_stream_count(js, STREAM), 2);
    exec_ok(other, "COMMIT");
    assert_int_equal(testenv_wait_pg(pg, "SELECT count(*) FROM outbox", 0, 5000), 0);
    outbox_relay_stop(r, 2000);
    static const char *const all[] = {"ob-a", "ob-b", "ob-late"};
    assert_stream_is(all, 3);
    PQfinish(other);
}

static void test_crash_between_commit_and_publish(void **st)
{
    (void)st;
    static const char *const ids[] = {"crash-1", "crash-2"};
    /* Committed, and the process died before its relay published anything. */
    write_events(ids, 2, "COMMIT");
    assert_int_equal(testenv_stream_count(js, STREAM), 0);
    /* The dead relay had published crash-1 but not yet deleted its row. */
    const char *headers[] = {JS_HDR_MSG_ID, "crash-1", NULL};
    testenv_publish(js, "rtoutbox.event", "body crash-1", 12, headers);
    assert_int_equal(testenv_stream_count(js, STREAM), 1);

    outbox_relay *r = relay_start();
    assert_int_equal(testenv_wait_pg(pg, "SELECT count(*) FROM outbox", 0, 5000), 0);
    outbox_relay_stop(r, 2000);
    /* crash-1 republished with the same Nats-Msg-Id: dropped, not doubled. */
    assert_stream_is(ids, 2);
}

static void test_stop_drains_pending(void **st)
{
    (void)st;
    static const char *const ids[] = {"drain-1", "drain-2"};
    outbox_relay *r = relay_start();
    write_events(ids, 2, "COMMIT");
    outbox_relay_stop(r, 3000); /* publishes what is pending before it returns */
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM outbox"), 0);
    assert_stream_is(ids, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_committed_once_rolled_back_never, fresh),
        cmocka_unit_test_setup(test_committed_behind_the_cursor, fresh),
        cmocka_unit_test_setup(test_crash_between_commit_and_publish, fresh),
        cmocka_unit_test_setup(test_stop_drains_pending, fresh),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
