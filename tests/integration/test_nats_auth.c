/*
 * test_nats_auth.c - the NATS users of deploy/nats/auth.conf, against the
 * stack's real nats-server (which `make test` starts with that file): each
 * service may publish only the subjects it owns, create and update only the
 * streams it owns, create, read, pull from, acknowledge and delete only its
 * own durables, and read replies only on its own inbox prefix;
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

/* A durable consumer of a service: the consumer specs of each service main.c
 * (and analytics' analytics_specs_init, live and rebuild). */
typedef struct durable_def {
    const char *stream;
    const char *durable;
    const char *filter;
} durable_def;

/* What each user owns and consumes (docs/events.md; deploy/nats/auth.conf). */
typedef struct user_rights {
    const char *user;
    const char *own;     /* a subject it publishes, NULL if none */
    const char *foreign; /* another service's subject (+ its stream) */
    const char *foreign_stream;
    const char *owns[4];     /* streams it creates and updates, NULL-terminated */
    const char *not_owned;   /* a stream it reads but may not update */
    durable_def durables[7]; /* its own, up to a NULL stream */
    durable_def other;       /* another service's durable on a stream it reads */
} user_rights;

static const user_rights RIGHTS[] = {
    {"ingest",
     "order.paid",
     "payment.settled",
     "PAYMENTS",
     {"INGEST", "ORDERS", "IMPORTS", NULL},
     "STOCK",
     {{"INGEST", "ingest", "ingest.rows"},
      {"STOCK", "ingest-stock-reserved", "stock.reserved"},
      {"STOCK", "ingest-stock-rejected", "stock.rejected"},
      {"PAYMENTS", "ingest-payments", "payment.settled"},
      {"REFUNDS", "ingest-refunds", "refund.processed"},
      {"CATALOG", "ingest-catalog", "catalog.product"}},
     {"STOCK", "payment", "stock.reserved"}},
    {"inventory",
     "stock.reserved",
     "order.paid",
     "ORDERS",
     {"STOCK", "CATALOG", NULL},
     "ORDERS",
     {{"CATALOG", "inventory-catalog", "catalog.product"},
      {"ORDERS", "inventory-orders", "order.created"},
      {"PAYMENTS", "inventory-payments", "payment.settled"},
      {"REFUNDS", "inventory-refunds", "refund.processed"}},
     {"PAYMENTS", "ingest-payments", "payment.settled"}},
    {"payment",
     "payment.settled",
     "stock.reserved",
     "STOCK",
     {"PAYMENTS", NULL},
     "STOCK",
     {{"STOCK", "payment", "stock.reserved"}},
     {"STOCK", "ingest-stock-reserved", "stock.reserved"}},
    {"notify",
     NULL,
     "order.paid",
     "ORDERS",
     {NULL},
     "ORDERS",
     {{"ORDERS", "notify-order-paid", "order.paid"},
      {"ORDERS", "notify-order-failed", "order.failed"},
      {"ORDERS", "notify-order-refunded", "order.refunded"}},
     {"ORDERS", "refund-order-paid", "order.paid"}},
    {"refund",
     "refund.processed",
     "order.refunded",
     "ORDERS",
     {"REFUNDS", NULL},
     "ORDERS",
     {{"ORDERS", "refund-order-paid", "order.paid"},
      {"REFUNDS", "refund-requested", "refund.requested"}},
     {"ORDERS", "notify-order-paid", "order.paid"}},
    {"analytics",
     NULL,
     "order.paid",
     "ORDERS",
     {NULL},
     "REFUNDS",
     {{"ORDERS", "analytics-paid", "order.paid"},
      {"ORDERS", "analytics-failed", "order.failed"},
      {"REFUNDS", "analytics-refunds", "refund.processed"},
      {"ORDERS", "analytics-rebuild-paid", "order.paid"},
      {"ORDERS", "analytics-rebuild-failed", "order.failed"},
      {"REFUNDS", "analytics-rebuild-refunds", "refund.processed"}},
     {"REFUNDS", "ingest-refunds", "refund.processed"}},
};

#define N_RIGHTS (sizeof RIGHTS / sizeof RIGHTS[0])

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
    for (size_t i = 0; i < N_RIGHTS; i++) {
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

/* How many messages a test published per subject since its fresh_streams:
 * what a new durable filtered on the subject delivers. */
typedef struct tally {
    const char *subject[32];
    int count[32];
} tally;

/* Publishes one message on subject as the admin user and waits for its
 * PubAck, so the stream holds it; returns how many are on subject now. */
static int admin_publish(js_conn *admin, tally *t, const char *subject)
{
    natsMsg *m = NULL;
    size_t i = 0;
    assert_int_equal(natsMsg_Create(&m, subject, NULL, "x", 1), NATS_OK);
    assert_int_equal(js_publish_sync(admin, m), OMS_OK);
    natsMsg_Destroy(m);
    while (i < 32 && t->subject[i] != NULL && strcmp(t->subject[i], subject) != 0)
        i++;
    assert_true(i < 32);
    t->subject[i] = subject;
    return ++t->count[i];
}

/* The consumer's info as the admin sees it; NULL when it does not exist.
 * Caller frees with jsConsumerInfo_Destroy. */
static jsConsumerInfo *consumer_info(js_conn *admin, const char *stream, const char *durable)
{
    jsConsumerInfo *ci = NULL;
    jsErrCode code = 0;
    if (js_GetConsumerInfo(&ci, js_ctx(admin), stream, durable, NULL, &code) != NATS_OK)
        return NULL;
    return ci;
}

/* Each service creates each of its durables, reads its info, pulls a
 * message from it, acknowledges it (the server records the ack) and
 * deletes it (the server no longer has it): every call of lib/js.c and
 * analytics' rebuild, with the service's own credentials. */
static void test_services_use_their_own_durables(void **state)
{
    (void)state;
    tally sent = {{NULL}, {0}};
    fresh_streams();
    js_conn *admin = testenv_js();
    for (size_t i = 0; i < N_RIGHTS; i++) {
        const user_rights *r = &RIGHTS[i];
        js_conn *c = connect_as(r->user);
        for (const durable_def *d = r->durables; d->stream != NULL; d++) {
            natsSubscription *sub = NULL;
            natsMsgList list;
            if (js_pull_subscribe(c, d->stream, d->durable, d->filter, 30000, &sub) != OMS_OK) {
                fprintf(stderr, "%s cannot create its durable %s on %s\n", r->user, d->durable,
                        d->stream);
                fail();
            }
            int n = admin_publish(admin, &sent, d->filter);
            assert_int_equal(js_fetch(sub, 10, 2000, &list), OMS_OK);
            assert_int_equal(list.Count, n);
            for (int m = 0; m < list.Count; m++)
                assert_int_equal(natsMsg_AckSync(list.Msgs[m], NULL, NULL), NATS_OK);
            natsMsgList_Destroy(&list);
            jsConsumerInfo *ci = NULL;
            jsErrCode code = 0;
            assert_int_equal(js_GetConsumerInfo(&ci, js_ctx(c), d->stream, d->durable, NULL, &code),
                             NATS_OK);
            assert_int_equal(ci->Delivered.Consumer, n);
            assert_int_equal(ci->AckFloor.Consumer, n);
            assert_int_equal(ci->NumAckPending, 0);
            jsConsumerInfo_Destroy(ci);
            natsSubscription_Destroy(sub);
            assert_int_equal(js_DeleteConsumer(js_ctx(c), d->stream, d->durable, NULL, &code),
                             NATS_OK);
            assert_null(consumer_info(admin, d->stream, d->durable));
        }
        js_conn_destroy(c);
    }
    js_conn_destroy(admin);
}

/* Publishes subject with a fresh connection as user (nats.c keeps the last
 * error) and expects the server to refuse it. */
static void refused_as(const char *user, const char *subject)
{
    js_conn *c = connect_as(user);
    natsStatus st = try_publish(c, subject);
    if (st != NATS_NOT_PERMITTED) {
        fprintf(stderr, "%s may publish %s: %s\n", user, subject, natsStatus_GetText(st));
        fail();
    }
    js_conn_destroy(c);
}

/* Nobody touches another service's durable: payment cannot drain
 * ingest-stock-reserved. Each refusal is checked twice: the server answers
 * -ERR, and the durable is as it was (still there, its message neither
 * delivered nor acknowledged). */
static void test_services_cannot_touch_other_durables(void **state)
{
    (void)state;
    tally sent = {{NULL}, {0}};
    fresh_streams();
    js_conn *admin = testenv_js();
    for (size_t i = 0; i < N_RIGHTS; i++) {
        const user_rights *r = &RIGHTS[i];
        const durable_def *o = &r->other;
        natsSubscription *sub = NULL;
        char subject[192];
        /* The other service's durable, with one message waiting. */
        assert_int_equal(js_pull_subscribe(admin, o->stream, o->durable, o->filter, 30000, &sub),
                         OMS_OK);
        natsSubscription_Destroy(sub);
        int n = admin_publish(admin, &sent, o->filter);

        /* Subject = prefix <stream>.<durable> suffix. */
        static const char *const forms[][2] = {{"$JS.API.CONSUMER.CREATE.", ""},
                                               {"$JS.API.CONSUMER.CREATE.", ".x"},
                                               {"$JS.API.CONSUMER.DURABLE.CREATE.", ""},
                                               {"$JS.API.CONSUMER.INFO.", ""},
                                               {"$JS.API.CONSUMER.MSG.NEXT.", ""},
                                               {"$JS.API.CONSUMER.DELETE.", ""},
                                               {"$JS.ACK.", ".1.1.1.0.0"}};
        for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++) {
            snprintf(subject, sizeof subject, "%s%s.%s%s", forms[f][0], o->stream, o->durable,
                     forms[f][1]);
            refused_as(r->user, subject);
        }
        /* An ephemeral consumer, or a durable under a name of its own
         * choosing, is another's too. */
        snprintf(subject, sizeof subject, "$JS.API.CONSUMER.CREATE.%s", o->stream);
        refused_as(r->user, subject);
        snprintf(subject, sizeof subject, "$JS.API.CONSUMER.CREATE.%s.%s-sneak", o->stream,
                 r->user);
        refused_as(r->user, subject);

        jsConsumerInfo *ci = consumer_info(admin, o->stream, o->durable);
        assert_non_null(ci);
        assert_int_equal(ci->NumPending, n);
        assert_int_equal(ci->Delivered.Consumer, 0);
        assert_int_equal(ci->NumAckPending, 0);
        jsConsumerInfo_Destroy(ci);
        assert_int_equal(js_DeleteConsumer(js_ctx(admin), o->stream, o->durable, NULL, NULL),
                         NATS_OK);
    }
    js_conn_destroy(admin);
}

/* Stream config: each owner updates its own streams (the settings land),
 * reads the info of those it consumes, and may neither update a stream it
 * does not own nor delete or purge any stream; the streams keep their
 * config and their messages. */
static void test_streams_have_one_owner(void **state)
{
    (void)state;
    fresh_streams();
    js_conn *admin = testenv_js();
    tally sent = {{NULL}, {0}};
    admin_publish(admin, &sent, "order.paid");
    for (size_t i = 0; i < N_RIGHTS; i++) {
        const user_rights *r = &RIGHTS[i];
        const int64_t max_age_ms = (int64_t)(i + 2) * 3600000;
        js_conn *c = connect_as(r->user);
        assert_int_equal(js_ensure_owned_streams(c, r->user, 1, max_age_ms, 120000), OMS_OK);
        for (const char *const *s = r->owns; *s; s++) {
            jsStreamInfo *si = NULL;
            assert_int_equal(js_GetStreamInfo(&si, js_ctx(admin), *s, NULL, NULL), NATS_OK);
            assert_int_equal(si->Config->MaxAge, max_age_ms * 1000000);
            assert_string_equal(js_stream_owner(*s), r->user);
            jsStreamInfo_Destroy(si);
        }
        for (const durable_def *d = r->durables; d->stream != NULL; d++)
            assert_int_equal(js_stream_exists(c, d->stream), OMS_OK);
        js_conn_destroy(c);

        char subject[128];
        snprintf(subject, sizeof subject, "$JS.API.STREAM.UPDATE.%s", r->not_owned);
        refused_as(r->user, subject);
        snprintf(subject, sizeof subject, "$JS.API.STREAM.CREATE.%s", r->not_owned);
        refused_as(r->user, subject);
        const char *deletable = r->owns[0] ? r->owns[0] : r->not_owned;
        snprintf(subject, sizeof subject, "$JS.API.STREAM.DELETE.%s", deletable);
        refused_as(r->user, subject);
        snprintf(subject, sizeof subject, "$JS.API.STREAM.PURGE.%s", "ORDERS");
        refused_as(r->user, subject);
        refused_as(r->user, "$JS.API.STREAM.CREATE.SNEAK");
    }
    /* ORDERS kept its message and the max age its owner (ingest) gave it. */
    assert_int_equal(testenv_stream_count(admin, "ORDERS"), 1);
    jsStreamInfo *si = NULL;
    assert_int_equal(js_GetStreamInfo(&si, js_ctx(admin), "ORDERS", NULL, NULL), NATS_OK);
    assert_int_equal(si->Config->MaxAge, 2 * 3600000LL * 1000000);
    jsStreamInfo_Destroy(si);
    js_conn_destroy(admin);
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
        cmocka_unit_test(test_services_use_their_own_durables),
        cmocka_unit_test(test_services_cannot_touch_other_durables),
        cmocka_unit_test(test_streams_have_one_owner),
        cmocka_unit_test(test_services_read_only_their_inbox),
        cmocka_unit_test(test_integrations_user),
        cmocka_unit_test(test_wrong_password_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
