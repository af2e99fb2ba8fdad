/*
 * test_nats_auth.c - the NATS users of deploy/nats/auth.conf, against the
 * stack's real nats-server (which `make test` starts with that file): each
 * service may publish only the subjects it owns, use the JetStream API only
 * on the streams it consumes, and read replies only on its own inbox prefix;
 * integrations may follow order.* and send ingest.rows and refund.requested;
 * a wrong password is refused. A permission violation is checked the way a
 * client sees it: the server answers -ERR, which nats.c reports as
 * NATS_NOT_PERMITTED once a flush has round-tripped, and nothing lands in
 * the stream.
 */
#include "testenv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* What each user owns and consumes (docs/events.md; deploy/nats/auth.conf). */
typedef struct user_rights {
    const char *user;
    const char *own;     /* a subject it publishes, NULL if none */
    const char *foreign; /* another service's subject (+ its stream) */
    const char *foreign_stream;
    const char *consumes[5];  /* streams it may consume, NULL-terminated */
    const char *not_consumed; /* a stream it may not consume */
} user_rights;

static const user_rights RIGHTS[] = {
    {"ingest",
     "order.paid",
     "payment.settled",
     "PAYMENTS",
     {"INGEST", "STOCK", "PAYMENTS", "REFUNDS", NULL},
     "CATALOG"},
    {"inventory",
     "stock.reserved",
     "order.paid",
     "ORDERS",
     {"CATALOG", "ORDERS", "PAYMENTS", "REFUNDS", NULL},
     "INGEST"},
    {"payment", "payment.settled", "stock.reserved", "STOCK", {"STOCK", NULL}, "ORDERS"},
    {"notify", NULL, "order.paid", "ORDERS", {"ORDERS", NULL}, "PAYMENTS"},
    {"refund",
     "refund.processed",
     "order.refunded",
     "ORDERS",
     {"ORDERS", "REFUNDS", NULL},
     "STOCK"},
    {"analytics", NULL, "order.paid", "ORDERS", {"ORDERS", "REFUNDS", NULL}, "INGEST"},
};

/* Connects as user with its password from the environment (.oms/env) and
 * its own inbox prefix. */
static js_conn *connect_as(const char *user)
{
    char var[64], prefix[64];
    snprintf(var, sizeof var, "OMS_NATS_PASSWORD_");
    for (size_t i = 0, n = strlen(var); user[i] && n + i + 1 < sizeof var; i++) {
        var[n + i] = (char)(user[i] >= 'a' && user[i] <= 'z' ? user[i] - 32 : user[i]);
        var[n + i + 1] = '\0';
    }
    snprintf(prefix, sizeof prefix, "_INBOX.%s", user);
    js_identity id = {.user = user, .password = testenv_require(var), .inbox_prefix = prefix};
    js_conn *c = NULL;
    assert_int_equal(js_connect_as(&c, testenv_require("OMS_NATS_URL"), &id, user), OMS_OK);
    for (int i = 0; i < 100 && !js_connected(c); i++)
        usleep(50000);
    assert_true(js_connected(c));
    return c;
}

/* Publishes (core NATS) and returns what the server said about it. */
static natsStatus try_publish(js_conn *c, const char *subject)
{
    natsConnection *nc = js_nats(c);
    const char *text = NULL;
    natsStatus st = natsConnection_PublishString(nc, subject, "x");
    if (st == NATS_OK)
        st = natsConnection_FlushTimeout(nc, 5000);
    if (st == NATS_OK)
        st = natsConnection_GetLastError(nc, &text);
    return st;
}

static natsStatus try_subscribe(js_conn *c, const char *subject)
{
    natsSubscription *sub = NULL;
    natsConnection *nc = js_nats(c);
    const char *text = NULL;
    natsStatus st = natsConnection_SubscribeSync(&sub, nc, subject);
    if (st == NATS_OK)
        st = natsConnection_FlushTimeout(nc, 5000);
    if (st == NATS_OK)
        st = natsConnection_GetLastError(nc, &text);
    natsSubscription_Destroy(sub);
    return st;
}

static void fresh_streams(void)
{
    testenv_reset(NULL);
    js_conn *admin = testenv_js();
    assert_int_equal(js_ensure_streams(admin, 1, 3600000, 120000), OMS_OK);
    js_conn_destroy(admin);
}

/* A JetStream publish of an owned subject is acknowledged (the PubAck comes
 * back on the user's own inbox); a core publish of another service's subject
 * is refused and the stream does not grow. */
static void test_services_publish_only_their_subjects(void **state)
{
    (void)state;
    fresh_streams();
    js_conn *admin = testenv_js();
    for (size_t i = 0; i < sizeof RIGHTS / sizeof RIGHTS[0]; i++) {
        const user_rights *r = &RIGHTS[i];
        js_conn *c = connect_as(r->user);
        if (r->own != NULL) {
            natsMsg *m = NULL;
            assert_int_equal(natsMsg_Create(&m, r->own, NULL, "x", 1), NATS_OK);
            if (js_publish_sync(c, m) != OMS_OK) {
                fprintf(stderr, "%s may not publish its own %s\n", r->user, r->own);
                fail();
            }
            natsMsg_Destroy(m);
        }
        long before = testenv_stream_count(admin, r->foreign_stream);
        natsStatus st = try_publish(c, r->foreign);
        if (st != NATS_NOT_PERMITTED) {
            fprintf(stderr, "%s published %s: %s\n", r->user, r->foreign, natsStatus_GetText(st));
            fail();
        }
        assert_int_equal(testenv_stream_count(admin, r->foreign_stream), before);
        js_conn_destroy(c);
    }
    js_conn_destroy(admin);
}

/* Each service can create a durable pull consumer on, and fetch from, every
 * stream it consumes (the JetStream API calls of lib/js.c), and may not even
 * ask to create one on a stream it does not consume, nor delete a stream. */
static void test_services_consume_only_their_streams(void **state)
{
    (void)state;
    fresh_streams();
    for (size_t i = 0; i < sizeof RIGHTS / sizeof RIGHTS[0]; i++) {
        const user_rights *r = &RIGHTS[i];
        js_conn *c = connect_as(r->user);
        for (const char *const *s = r->consumes; *s != NULL; s++) {
            natsSubscription *sub = NULL;
            natsMsgList list;
            char durable[64];
            snprintf(durable, sizeof durable, "authtest-%s", r->user);
            if (js_pull_subscribe(c, *s, durable, NULL, 30000, &sub) != OMS_OK) {
                fprintf(stderr, "%s cannot consume %s\n", r->user, *s);
                fail();
            }
            assert_int_equal(js_fetch(sub, 10, 100, &list), OMS_OK);
            natsMsgList_Destroy(&list);
            natsSubscription_Destroy(sub);
        }
        js_conn_destroy(c);
        /* A fresh connection per refusal: nats.c keeps the last error. */
        char subject[128];
        snprintf(subject, sizeof subject, "$JS.API.CONSUMER.DURABLE.CREATE.%s.%s-sneak",
                 r->not_consumed, r->user);
        c = connect_as(r->user);
        assert_int_equal(try_publish(c, subject), NATS_NOT_PERMITTED);
        js_conn_destroy(c);
        snprintf(subject, sizeof subject, "$JS.API.STREAM.DELETE.%s", r->consumes[0]);
        c = connect_as(r->user);
        assert_int_equal(try_publish(c, subject), NATS_NOT_PERMITTED);
        js_conn_destroy(c);
    }
}

/* Services receive events only through their consumers: no plain
 * subscription to an event subject, nor to another user's inbox. */
static void test_services_read_only_their_inbox(void **state)
{
    (void)state;
    js_conn *c = connect_as("payment");
    assert_int_equal(try_subscribe(c, "_INBOX.payment.x"), NATS_OK);
    js_conn_destroy(c);
    c = connect_as("payment");
    assert_int_equal(try_subscribe(c, "order.>"), NATS_NOT_PERMITTED);
    js_conn_destroy(c);
    c = connect_as("payment");
    assert_int_equal(try_subscribe(c, "_INBOX.ingest.>"), NATS_NOT_PERMITTED);
    js_conn_destroy(c);
    c = connect_as("payment");
    assert_int_equal(try_subscribe(c, "_INBOX.>"), NATS_NOT_PERMITTED);
    js_conn_destroy(c);
}

/* integrations: order.* in, ingest.rows and refund.requested out, nothing
 * else. */
static void test_integrations_user(void **state)
{
    (void)state;
    fresh_streams();
    js_conn *c = connect_as("integrations");
    assert_int_equal(try_subscribe(c, "order.*"), NATS_OK);
    natsMsg *m = NULL;
    assert_int_equal(natsMsg_Create(&m, "refund.requested", NULL, "x", 1), NATS_OK);
    assert_int_equal(js_publish_sync(c, m), OMS_OK); /* PubAck on _INBOX.integrations */
    natsMsg_Destroy(m);
    assert_int_equal(try_publish(c, "ingest.rows"), NATS_OK);
    js_conn_destroy(c);
    static const char *const refused_pub[] = {"order.paid", "stock.reserved", "catalog.product",
                                              "$JS.API.STREAM.DELETE.ORDERS", NULL};
    for (const char *const *s = refused_pub; *s; s++) {
        c = connect_as("integrations");
        assert_int_equal(try_publish(c, *s), NATS_NOT_PERMITTED);
        js_conn_destroy(c);
    }
    static const char *const refused_sub[] = {"stock.*", "payment.>", ">", "_INBOX.ingest.>", NULL};
    for (const char *const *s = refused_sub; *s; s++) {
        c = connect_as("integrations");
        assert_int_equal(try_subscribe(c, *s), NATS_NOT_PERMITTED);
        js_conn_destroy(c);
    }
}

/* The wrong password, or none, gets no connection. */
static void test_wrong_password_is_refused(void **state)
{
    (void)state;
    const char *const passwords[] = {"not-the-password", NULL};
    for (size_t i = 0; i < 2; i++) {
        natsOptions *opts = NULL;
        natsConnection *nc = NULL;
        assert_int_equal(natsOptions_Create(&opts), NATS_OK);
        assert_int_equal(js_options_set_servers(opts, testenv_require("OMS_NATS_URL")), NATS_OK);
        if (passwords[i] != NULL)
            assert_int_equal(natsOptions_SetUserInfo(opts, "ingest", passwords[i]), NATS_OK);
        natsStatus st = natsConnection_Connect(&nc, opts);
        assert_int_not_equal(st, NATS_OK);
        natsConnection_Destroy(nc);
        natsOptions_Destroy(opts);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_services_publish_only_their_subjects),
        cmocka_unit_test(test_services_consume_only_their_streams),
        cmocka_unit_test(test_services_read_only_their_inbox),
        cmocka_unit_test(test_integrations_user),
        cmocka_unit_test(test_wrong_password_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
