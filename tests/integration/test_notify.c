/*
 * test_notify.c - the notify service against the real stack and real peers
 * on loopback: an SMTP server (tests/support/smtp_sink.c) that stores every
 * message, and a webhook receiver (tests/support/webhook_sink.c) that checks
 * every signature. order.paid, order.failed and order.refunded in; exactly
 * one email and one webhook per event out, whatever is redelivered; pending
 * through a receiver outage, then sent; dead after the configured attempts
 * and back through `omsctl notifications retry --dead`; a kill -9 in the
 * middle of delivery loses nothing.
 */
#include "testenv.h"

#include "oms_events.pb-c.h"
#include "outbox.h"

#include <dirent.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PORT 19580
#define WEBHOOK_PORT 19585
#define SMTP_PORT 19586
#define SECRET "whsec_notify_integration_0123456789abcdef"
#define GROUP_MAX 32 /* NOTIFY_CLAIM_MAX: notifications one sender has in flight */

#ifndef OMS_SMTP_SINK
#define OMS_SMTP_SINK "tests/smtp_sink"
#endif
#ifndef OMS_WEBHOOK_SINK
#define OMS_WEBHOOK_SINK "tests/webhook_sink"
#endif

static const char *const SCHEMAS[] = {"notify", NULL};

#define SMTP_ENV "OMS_SMTP_URL=smtp://127.0.0.1:19586", "OMS_SMTP_FROM=orders@oms.test"
#define WEBHOOK_ENV "OMS_WEBHOOK_URL=http://127.0.0.1:19585/hook", "OMS_WEBHOOK_SECRET=" SECRET
#define FAST_RETRY "OMS_NOTIFY_RETRY_BASE_MS=100", "OMS_NOTIFY_RETRY_MAX_MS=400"
#define FAST_TIMEOUT "OMS_NOTIFY_TIMEOUT_MS=2000", "OMS_NOTIFY_CONNECT_TIMEOUT_MS=500"

/* The peers this test started, killed by teardown if a test failed. */
static pid_t smtp_pid, webhook_pid;
static char mail_dir[64];

/* ---- peers ------------------------------------------------------------ */

static void webhook_start_slow(const char *mode, int delay_ms)
{
    char port[32], mode_arg[32], delay[32];
    snprintf(port, sizeof port, "port=%d", WEBHOOK_PORT);
    snprintf(mode_arg, sizeof mode_arg, "mode=%s", mode);
    snprintf(delay, sizeof delay, "delay_ms=%d", delay_ms);
    const char *args[] = {port, "secret=" SECRET, mode_arg, delay, NULL};
    webhook_pid = testenv_peer_start(OMS_WEBHOOK_SINK, "webhook_sink", WEBHOOK_PORT, args);
}

static void webhook_start(const char *mode)
{
    webhook_start_slow(mode, 0);
}

static void smtp_start(const char *mode)
{
    char port[32], dir[128], mode_arg[32];
    snprintf(mail_dir, sizeof mail_dir, "/tmp/oms-notify-mail-XXXXXX");
    assert_non_null(mkdtemp(mail_dir));
    snprintf(port, sizeof port, "port=%d", SMTP_PORT);
    snprintf(dir, sizeof dir, "dir=%s", mail_dir);
    snprintf(mode_arg, sizeof mode_arg, "mode=%s", mode);
    const char *args[] = {port, dir, mode_arg, NULL};
    smtp_pid = testenv_peer_start(OMS_SMTP_SINK, "smtp_sink", SMTP_PORT, args);
}

static void mail_dir_remove(void)
{
    DIR *d = opendir(mail_dir);
    struct dirent *e;
    char path[512];
    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' && (e->d_name[1] == '\0' || e->d_name[1] == '.'))
            continue;
        snprintf(path, sizeof path, "%s/%s", mail_dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(mail_dir);
    mail_dir[0] = '\0';
}

static int teardown(void **state)
{
    testenv_peer_kill(&smtp_pid);
    testenv_peer_kill(&webhook_pid);
    if (mail_dir[0] != '\0')
        mail_dir_remove();
    return testenv_cleanup(state);
}

/* ---- what the peers received ----------------------------------------- */

static json_t *webhook_stats(void)
{
    return testenv_http_json(WEBHOOK_PORT, "/stats");
}

static long stat_long(json_t *stats, const char *key)
{
    return (long)json_integer_value(json_object_get(stats, key));
}

/* Received notifications, and how many distinct Idempotency-Keys among them. */
static size_t webhook_received(json_t *stats, size_t *distinct)
{
    json_t *received = json_object_get(stats, "received"), *seen = json_object(), *r;
    size_t i;
    json_array_foreach(received, i, r)
    {
        const char *key = json_string_value(json_object_get(r, "idempotency_key"));
        json_t *body = json_object_get(r, "body");
        assert_string_equal(key, json_string_value(json_object_get(body, "event_id")));
        assert_string_equal(json_string_value(json_object_get(r, "type")),
                            json_string_value(json_object_get(body, "type")));
        json_object_set_new(seen, key, json_true());
    }
    *distinct = json_object_size(seen);
    json_decref(seen);
    return json_array_size(received);
}

/* The notification the receiver got for order_id; fails unless exactly one. */
static json_t *webhook_for(json_t *stats, const char *order_id)
{
    json_t *found = NULL, *r;
    size_t i;
    json_array_foreach(json_object_get(stats, "received"), i, r)
    {
        json_t *body = json_object_get(r, "body");
        if (strcmp(json_string_value(json_object_get(body, "order_id")), order_id) != 0)
            continue;
        assert_null(found);
        found = body;
    }
    assert_non_null(found);
    return found;
}

/* Every stored email, concatenated per file; returns the count. */
static size_t read_mails(char ***out)
{
    DIR *d = opendir(mail_dir);
    struct dirent *e;
    size_t n = 0;
    char **mails = NULL;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 4 || strcmp(e->d_name + len - 4, ".eml") != 0)
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", mail_dir, e->d_name);
        FILE *f = fopen(path, "r");
        assert_non_null(f);
        char *text = calloc(1, 65536);
        size_t got = fread(text, 1, 65535, f);
        text[got] = '\0';
        fclose(f);
        mails = realloc(mails, (n + 1) * sizeof *mails);
        mails[n++] = text;
    }
    closedir(d);
    *out = mails;
    return n;
}

static void mails_free(char **mails, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(mails[i]);
    free(mails);
}

static size_t mail_count(void)
{
    char **mails = NULL;
    size_t n = read_mails(&mails);
    mails_free(mails, n);
    return n;
}

/* The one email whose subject line is subject; fails unless exactly one. */
static const char *mail_with(char **mails, size_t n, const char *subject)
{
    char line[512];
    const char *found = NULL;
    snprintf(line, sizeof line, "\nSubject: %s\n", subject);
    for (size_t i = 0; i < n; i++) {
        if (strstr(mails[i], line) == NULL)
            continue;
        assert_null(found);
        found = mails[i];
    }
    if (found == NULL)
        fprintf(stderr, "no email with subject \"%s\"\n", subject);
    assert_non_null(found);
    return found;
}

static void assert_contains(const char *text, const char *want)
{
    if (strstr(text, want) == NULL)
        fprintf(stderr, "want \"%s\" in:\n%s\n", want, text);
    assert_non_null(strstr(text, want));
}

/* ---- publishing ------------------------------------------------------- */

typedef struct order {
    const char *id, *email, *name;
    int64_t total_cents;
} order;

/* The fields the three order events share, from o. */
#define ORDER_FIELDS(ev, o, customer, st)         \
    do {                                          \
        (ev).order_id = (char *)(o)->id;          \
        (ev).customer_id = (customer);            \
        (ev).customer_email = (char *)(o)->email; \
        (ev).customer_name = (char *)(o)->name;   \
        (ev).status = (char *)(st);               \
        (ev).total_cents = (o)->total_cents;      \
        (ev).currency = "USD";                    \
    } while (0)

/* order.paid that happened at occurred_ms (0: now). */
static void publish_paid_at(js_conn *js, const order *o, char event_id[37], int64_t occurred_ms)
{
    Oms__V1__OrderPaid ev = OMS__V1__ORDER_PAID__INIT;
    Oms__V1__EventMeta meta;
    outbox_meta_init(&meta, event_id, "ingest", o->id, "");
    if (occurred_ms > 0)
        meta.occurred_at_ms = occurred_ms;
    ev.meta = &meta;
    ORDER_FIELDS(ev, o, "C-7", "paid");
    testenv_publish_event(js, "order.paid", event_id, &ev.base);
}

static void publish_paid(js_conn *js, const order *o, char event_id[37])
{
    publish_paid_at(js, o, event_id, 0);
}

static void publish_failed(js_conn *js, const order *o, const char *reason)
{
    char event_id[37];
    Oms__V1__OrderFailed ev = OMS__V1__ORDER_FAILED__INIT;
    Oms__V1__EventMeta meta;
    outbox_meta_init(&meta, event_id, "ingest", o->id, "");
    ev.meta = &meta;
    ORDER_FIELDS(ev, o, "C-8", "failed");
    ev.reason = (char *)reason;
    testenv_publish_event(js, "order.failed", event_id, &ev.base);
}

static void publish_refunded(js_conn *js, const order *o, int64_t refund_cents,
                             int64_t refunded_total_cents, const char *status)
{
    char event_id[37];
    Oms__V1__OrderRefunded ev = OMS__V1__ORDER_REFUNDED__INIT;
    Oms__V1__EventMeta meta;
    outbox_meta_init(&meta, event_id, "ingest", o->id, "");
    ev.meta = &meta;
    ORDER_FIELDS(ev, o, "C-9", status);
    ev.refund_id = "RF-1";
    ev.amount_cents = refund_cents;
    ev.refunded_total_cents = refunded_total_cents;
    ev.reason = "damaged in transit";
    testenv_publish_event(js, "order.refunded", event_id, &ev.base);
}

/* order.paid again, the same event (same meta.event_id) under another
 * Nats-Msg-Id: neither JetStream nor the inbox can recognise it. */
static void republish_paid(js_conn *js, const order *o, const char *event_id)
{
    Oms__V1__OrderPaid ev = OMS__V1__ORDER_PAID__INIT;
    Oms__V1__EventMeta meta = OMS__V1__EVENT_META__INIT;
    char other[48];
    meta.event_id = (char *)event_id;
    meta.producer = "ingest";
    meta.occurred_at_ms = oms_now_ms();
    ev.meta = &meta;
    ORDER_FIELDS(ev, o, "C-7", "paid");
    size_t len = oms__v1__order_paid__get_packed_size(&ev);
    uint8_t *buf = malloc(len);
    oms__v1__order_paid__pack(&ev, buf);
    snprintf(other, sizeof other, "again-%s", event_id);
    const char *headers[] = {"Nats-Msg-Id", other, "Oms-Type", "oms.v1.OrderPaid", NULL};
    testenv_publish(js, "order.paid", buf, len, headers);
    free(buf);
}

/* n paid orders <prefix>-<nnn>, each with its own email address. */
static void publish_paid_orders(js_conn *js, const char *prefix, int n)
{
    for (int i = 1; i <= n; i++) {
        char id[64], email[64], event_id[37];
        snprintf(id, sizeof id, "%s-%03d", prefix, i);
        snprintf(email, sizeof email, "buyer%d@example.com", i);
        order o = {id, email, "Pat", 1000 + i};
        publish_paid(js, &o, event_id);
    }
}

/* ---- reading the history --------------------------------------------- */

static long count_rows(PGconn *pg, const char *where)
{
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM notify.notifications WHERE %s", where);
    return testenv_pg_long(pg, sql);
}

static long wait_rows(PGconn *pg, const char *where, long want, int timeout_ms)
{
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM notify.notifications WHERE %s", where);
    long got = testenv_wait_pg(pg, sql, want, timeout_ms);
    if (got != want)
        fprintf(stderr, "rows where %s: want %ld, got %ld\n", where, want, got);
    assert_int_equal(got, want);
    return got;
}

static double metric(const char *series)
{
    return testenv_metric(PORT, series);
}

/* Runs omsctl with args against this test's notify; returns its exit
 * status and its stdout (caller frees). */
static int omsctl(const char *args, char **out)
{
    char prefix[64];
    snprintf(prefix, sizeof prefix, "OMS_NOTIFY_URL=http://127.0.0.1:%d", PORT);
    return testenv_omsctl(prefix, args, out);
}

/* ---- tests ------------------------------------------------------------ */

/* Every event notifies once per channel with the right content, whatever is
 * redelivered; a customer without an email gets a failed row; a payload
 * that is not an event goes to dead letters. */
static void test_each_event_notifies_once_per_channel(void **state)
{
    (void)state;
    static const char *const env[] = {"OMS_NOTIFY_CHANNELS=log,email,webhook",
                                      SMTP_ENV,
                                      WEBHOOK_ENV,
                                      FAST_RETRY,
                                      FAST_TIMEOUT,
                                      NULL};
    testenv_reset(SCHEMAS);
    smtp_start("ok");
    webhook_start("ok");
    pid_t notify = testenv_service_start("notify", PORT, env);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();

    char paid_event[37], event_id[37];
    order paid = {"ORD-1001", "ada@example.com", "Ada Lovelace", 129999};
    order failed = {"ORD-1002", "bob@example.com", "", 5000};
    order refunded = {"ORD-1003", "cy@example.com", "Cy", 20000};
    order nomail = {"ORD-1004", "", "No Mail", 700};
    publish_paid(js, &paid, paid_event);
    publish_failed(js, &failed, "out of stock: SKU-7: 3 requested, 1 available");
    publish_refunded(js, &refunded, 5000, 5000, "partially_refunded");
    publish_paid(js, &nomail, event_id);
    publish_paid_orders(js, "ORD-B", 30);
    /* Redelivered: the same events under new message ids, and junk. */
    republish_paid(js, &paid, paid_event);
    republish_paid(js, &nomail, event_id);
    const char junk[] = "not a protobuf \xff\xff";
    const char *junk_headers[] = {"Nats-Msg-Id", "junk-1", "Oms-Type", "oms.v1.OrderPaid", NULL};
    testenv_publish(js, "order.paid", junk, sizeof junk - 1, junk_headers);
    order negative = {"ORD-NEG", "neg@example.com", "", -1};
    publish_paid(js, &negative, event_id);

    const long events = 34;
    wait_rows(pg, "state = 'sent'", 3 * events - 1, 20000);
    wait_rows(pg, "state = 'failed'", 1, 1000);
    assert_int_equal(count_rows(pg, "true"), 3 * events);
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM notify.dead_letters"), 2);
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM notify.dead_letters WHERE reason ="
                                         " 'order.paid: total_cents must not be negative'"),
                     1);
    usleep(500000); /* nothing more arrives: no second delivery */

    char **mails = NULL;
    size_t n = read_mails(&mails);
    assert_int_equal(n, events - 1);
    const char *m = mail_with(mails, n, "Order ORD-1001 paid: 1,299.99 USD");
    assert_contains(m, "X-Envelope-From: orders@oms.test\n");
    assert_contains(m, "X-Envelope-To: ada@example.com\n");
    assert_contains(m, "\nTo: <ada@example.com>\n");
    assert_contains(m, "Hello Ada Lovelace,");
    assert_contains(m, "your order ORD-1001 is paid.");
    assert_contains(m, "Total:  1,299.99 USD");
    char message_id[128];
    snprintf(message_id, sizeof message_id, "Message-ID: <%s@oms.notify>", paid_event);
    assert_contains(m, message_id);
    m = mail_with(mails, n, "Order ORD-1002 failed: 50.00 USD");
    assert_contains(m, "could not be completed");
    assert_contains(m, "Reason: out of stock: SKU-7: 3 requested, 1 available");
    m = mail_with(mails, n, "Order ORD-1003 partially refunded: 50.00 USD");
    assert_contains(m, "Refunded so far: 50.00 USD of 200.00 USD");
    assert_contains(m, "damaged in transit");
    mail_with(mails, n, "Order ORD-B-017 paid: 10.17 USD");
    mails_free(mails, n);

    json_t *stats = webhook_stats();
    size_t distinct = 0;
    assert_int_equal(webhook_received(stats, &distinct), events);
    assert_int_equal(distinct, events);
    assert_int_equal(stat_long(stats, "bad_signatures"), 0);
    json_t *body = webhook_for(stats, "ORD-1002");
    assert_string_equal(json_string_value(json_object_get(body, "type")), "order.failed");
    assert_string_equal(json_string_value(json_object_get(body, "status")), "failed");
    assert_int_equal(json_integer_value(json_object_get(body, "total_cents")), 5000);
    assert_string_equal(json_string_value(json_object_get(body, "currency")), "USD");
    assert_string_equal(json_string_value(json_object_get(body, "customer_id")), "C-8");
    assert_string_equal(json_string_value(json_object_get(body, "reason")),
                        "out of stock: SKU-7: 3 requested, 1 available");
    body = webhook_for(stats, "ORD-1003");
    assert_int_equal(json_integer_value(
                         json_object_get(json_object_get(body, "refund"), "amount_cents")),
                     5000);
    json_decref(stats);

    /* The history, over HTTP and through omsctl. */
    char *text = NULL;
    assert_int_equal(testenv_http("GET", PORT, "/notifications?order_id=ORD-1004", NULL, &text),
                     200);
    json_t *list = json_loads(text, 0, NULL);
    free(text);
    assert_int_equal(json_integer_value(json_object_get(list, "count")), 3);
    json_t *row;
    size_t i;
    json_array_foreach(json_object_get(list, "notifications"), i, row)
    {
        const char *channel = json_string_value(json_object_get(row, "channel"));
        const char *st = json_string_value(json_object_get(row, "state"));
        assert_string_equal(st, strcmp(channel, "email") == 0 ? "failed" : "sent");
        if (strcmp(channel, "email") == 0)
            assert_string_equal(json_string_value(json_object_get(row, "last_error")),
                                "customer has no email address");
    }
    json_decref(list);
    assert_int_equal(testenv_http("GET", PORT, "/notifications?state=lost", NULL, NULL), 400);
    assert_int_equal(omsctl("notifications --order ORD-1004 --state failed", &text), 0);
    assert_contains(text, "customer has no email address");
    assert_contains(text, "ORD-1004");
    free(text);
    assert_int_equal(omsctl("notifications --state sent --channel email --json", &text), 0);
    list = json_loads(text, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(list, "count")), events - 1);
    json_decref(list);
    free(text);

    assert_int_equal(metric("oms_notifications_total{channel=\"email\",state=\"sent\"}"),
                     events - 1);
    assert_int_equal(metric("oms_notifications_total{channel=\"email\",state=\"failed\"}"), 1);
    assert_int_equal(metric("oms_notifications_total{channel=\"webhook\",state=\"sent\"}"), events);
    assert_int_equal(metric("oms_notification_delivery_seconds_count{channel=\"webhook\"}"),
                     events);

    testenv_service_stop(notify);
    testenv_peer_stop(&webhook_pid);
    testenv_peer_stop(&smtp_pid);
    PQfinish(pg);
    js_conn_destroy(js);
}

/* With the receiver down the notifications wait, pending and retried, while
 * consumption goes on; once it is back every one arrives, once. */
static void test_webhook_outage_then_recovery(void **state)
{
    (void)state;
    static const char *const env[] = {"OMS_NOTIFY_CHANNELS=webhook",
                                      WEBHOOK_ENV,
                                      "OMS_NOTIFY_MAX_ATTEMPTS=50",
                                      FAST_RETRY,
                                      FAST_TIMEOUT,
                                      NULL};
    testenv_reset(SCHEMAS);
    pid_t notify = testenv_service_start("notify", PORT, env);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();
    publish_paid_orders(js, "ORD-OUT", 12);
    /* Consumed (the rows exist) and retried while nobody answers. */
    wait_rows(pg, "state = 'pending' AND attempts >= 3 AND last_error LIKE 'webhook: %'", 12,
              15000);
    for (int i = 0; i < 60 && metric("oms_notifications_pending") != 12; i++)
        usleep(100000);
    assert_int_equal(metric("oms_notifications_pending"), 12);
    assert_true(metric("oms_notification_retries_total{channel=\"webhook\"}") >= 24);

    webhook_start("ok");
    wait_rows(pg, "state = 'sent'", 12, 10000);
    usleep(500000);
    json_t *stats = webhook_stats();
    size_t distinct = 0;
    assert_int_equal(webhook_received(stats, &distinct), 12);
    assert_int_equal(distinct, 12);
    json_decref(stats);
    assert_int_equal(count_rows(pg, "sent_at IS NOT NULL AND last_error = ''"), 12);

    testenv_service_stop(notify);
    testenv_peer_stop(&webhook_pid);
    PQfinish(pg);
    js_conn_destroy(js);
}

/* A receiver that always fails: each notification is tried exactly
 * OMS_NOTIFY_MAX_ATTEMPTS times and ends dead; `omsctl notifications retry
 * --dead` sends them once the receiver works. An SMTP server refusing the
 * mailbox (550) fails the email at once, without retries. */
static void test_failing_peers_dead_then_retry(void **state)
{
    (void)state;
    static const char *const env[] = {"OMS_NOTIFY_CHANNELS=webhook,email",
                                      WEBHOOK_ENV,
                                      SMTP_ENV,
                                      "OMS_NOTIFY_MAX_ATTEMPTS=3",
                                      FAST_RETRY,
                                      FAST_TIMEOUT,
                                      NULL};
    testenv_reset(SCHEMAS);
    webhook_start("fail");
    smtp_start("reject");
    pid_t notify = testenv_service_start("notify", PORT, env);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();
    publish_paid_orders(js, "ORD-DEAD", 4);

    wait_rows(pg, "channel = 'webhook' AND state = 'dead' AND attempts = 3", 4, 15000);
    wait_rows(pg,
              "channel = 'email' AND state = 'failed' AND attempts = 1"
              " AND last_error LIKE '%550%'",
              4, 5000);
    usleep(500000);
    json_t *stats = webhook_stats();
    assert_int_equal(stat_long(stats, "posts"), 12);
    assert_int_equal(stat_long(stats, "failed"), 12);
    assert_int_equal(stat_long(stats, "bad_signatures"), 0);
    json_decref(stats);
    assert_int_equal(mail_count(), 0);
    assert_int_equal(metric("oms_notifications_total{channel=\"webhook\",state=\"dead\"}"), 4);
    assert_int_equal(metric("oms_notifications_total{channel=\"email\",state=\"failed\"}"), 4);

    char *text = NULL;
    assert_int_equal(omsctl("notifications retry", &text), 2);
    free(text);
    testenv_peer_stop(&webhook_pid);
    webhook_start("ok");
    assert_int_equal(omsctl("notifications retry --dead", &text), 0);
    assert_contains(text, "4 dead notifications re-queued");
    free(text);
    wait_rows(pg, "channel = 'webhook' AND state = 'sent' AND attempts = 1", 4, 10000);
    assert_int_equal(count_rows(pg, "channel = 'email' AND state = 'failed'"), 4);
    stats = webhook_stats();
    size_t distinct = 0;
    assert_int_equal(webhook_received(stats, &distinct), 4);
    assert_int_equal(distinct, 4);
    json_decref(stats);

    testenv_service_stop(notify);
    testenv_peer_stop(&webhook_pid);
    testenv_peer_stop(&smtp_pid);
    PQfinish(pg);
    js_conn_destroy(js);
}

/* kill -9 while notifications are being consumed and delivered: after a
 * restart every event has exactly one row per channel and every
 * notification arrived; only the group in flight at the kill may arrive
 * twice. */
static void test_kill9_mid_delivery(void **state)
{
    (void)state;
    static const char *const env[] = {"OMS_NOTIFY_CHANNELS=log,email,webhook",
                                      SMTP_ENV,
                                      WEBHOOK_ENV,
                                      FAST_RETRY,
                                      FAST_TIMEOUT,
                                      "OMS_ACK_WAIT_S=2",
                                      "OMS_BATCH_MAX=32",
                                      NULL};
    const long events = 400;
    testenv_reset(SCHEMAS);
    smtp_start("ok");
    webhook_start("ok");
    pid_t notify = testenv_service_start("notify", PORT, env);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();
    publish_paid_orders(js, "ORD-K", (int)events);
    long sent = 0;
    for (int i = 0; i < 400 && (sent = count_rows(pg, "state = 'sent'")) < 60; i++)
        usleep(10000);
    testenv_service_kill(notify);
    fprintf(stderr, "killed with %ld of %ld notifications sent\n", sent, 3 * events);
    assert_true(sent < 3 * events);

    notify = testenv_service_start("notify", PORT, env);
    wait_rows(pg, "state = 'sent'", 3 * events, 60000);
    assert_int_equal(count_rows(pg, "true"), 3 * events);
    assert_int_equal(testenv_pg_long(pg, "SELECT count(DISTINCT event_id)"
                                         " FROM notify.notifications"),
                     events);
    usleep(500000);
    json_t *stats = webhook_stats();
    size_t distinct = 0, received = webhook_received(stats, &distinct);
    json_decref(stats);
    size_t mails = mail_count();
    fprintf(stderr, "webhooks received %zu (%zu distinct), emails %zu\n", received, distinct,
            mails);
    assert_int_equal(distinct, events);
    /* At most the group in flight at the kill arrives twice. */
    assert_true(received >= (size_t)events && received <= (size_t)events + GROUP_MAX);
    assert_true(mails >= (size_t)events && mails <= (size_t)events + GROUP_MAX);

    testenv_service_stop(notify);
    testenv_peer_stop(&webhook_pid);
    testenv_peer_stop(&smtp_pid);
    PQfinish(pg);
    js_conn_destroy(js);
}

/* A receiver that answers after the delivery timeout: attempts end in a
 * timeout and are retried, while consumption goes on at full speed (every
 * event is recorded long before a single delivery could succeed). */
static void test_slow_receiver_times_out_without_blocking(void **state)
{
    (void)state;
    static const char *const env[] = {"OMS_NOTIFY_CHANNELS=webhook",
                                      WEBHOOK_ENV,
                                      "OMS_NOTIFY_TIMEOUT_MS=400",
                                      "OMS_NOTIFY_CONNECT_TIMEOUT_MS=200",
                                      "OMS_NOTIFY_RETRY_BASE_MS=60000",
                                      NULL};
    testenv_reset(SCHEMAS);
    webhook_start_slow("ok", 3000);
    pid_t notify = testenv_service_start("notify", PORT, env);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();
    int64_t start = oms_mono_ms();
    publish_paid_orders(js, "ORD-SLOW", 200);
    wait_rows(pg, "true", 200, 5000);
    fprintf(stderr, "200 events recorded in %lld ms with a receiver taking 3 s\n",
            (long long)(oms_mono_ms() - start));
    /* The first group timed out (the error says so) and waits its backoff. */
    assert_int_equal(
        testenv_wait_pg(pg,
                        "SELECT (count(*) >= 32)::int FROM notify.notifications WHERE"
                        " state = 'pending' AND attempts = 1 AND last_error LIKE '%timed out%'",
                        1, 5000),
        1);
    assert_int_equal(count_rows(pg, "state = 'sent' OR attempts > 1"), 0);
    testenv_service_stop(notify);
    testenv_peer_stop(&webhook_pid);
    PQfinish(pg);
    js_conn_destroy(js);
}

/* Two notify processes on the same database share the work and never
 * deliver the same notification twice. */
static void test_two_replicas_send_each_once(void **state)
{
    (void)state;
    static const char *const env[] = {"OMS_NOTIFY_CHANNELS=webhook", WEBHOOK_ENV, FAST_RETRY,
                                      FAST_TIMEOUT, NULL};
    const long events = 300;
    testenv_reset(SCHEMAS);
    webhook_start("ok");
    pid_t a = testenv_service_start("notify", PORT, env);
    pid_t b = testenv_service_start("notify", PORT + 1, env);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();
    publish_paid_orders(js, "ORD-R", (int)events);
    wait_rows(pg, "state = 'sent' AND attempts = 1", events, 30000);
    usleep(500000);
    json_t *stats = webhook_stats();
    size_t distinct = 0;
    assert_int_equal(webhook_received(stats, &distinct), events);
    assert_int_equal(distinct, events);
    json_decref(stats);
    double sent_a = metric("oms_notifications_total{channel=\"webhook\",state=\"sent\"}");
    double sent_b = testenv_metric(PORT + 1,
                                   "oms_notifications_total{channel=\"webhook\",state=\"sent\"}");
    fprintf(stderr, "replica a sent %.0f, replica b %.0f\n", sent_a, sent_b);
    assert_int_equal((long)(sent_a + sent_b), events);
    testenv_service_stop(a);
    testenv_service_stop(b);
    testenv_peer_stop(&webhook_pid);
    PQfinish(pg);
    js_conn_destroy(js);
}

/* Sent and failed notifications older than OMS_NOTIFY_RETENTION_DAYS are
 * deleted when notify starts (then hourly); dead ones and recent ones stay. */
static void test_old_notifications_are_pruned(void **state)
{
    (void)state;
    static const char *const env[] = {"OMS_NOTIFY_CHANNELS=log", "OMS_NOTIFY_RETENTION_DAYS=30",
                                      NULL};
    testenv_reset(SCHEMAS);
    pid_t notify = testenv_service_start("notify", PORT, env);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();
    publish_paid_orders(js, "ORD-OLD", 4);
    wait_rows(pg, "state = 'sent'", 4, 10000);
    testenv_service_stop(notify);
    PQclear(PQexec(pg, "UPDATE notify.notifications SET created_at = now() - interval '31 days'"
                       " WHERE order_id IN ('ORD-OLD-001', 'ORD-OLD-002', 'ORD-OLD-003')"));
    PQclear(PQexec(pg, "UPDATE notify.notifications SET state = 'dead'"
                       " WHERE order_id = 'ORD-OLD-003'"));
    notify = testenv_service_start("notify", PORT, env);
    wait_rows(pg, "true", 2, 5000);
    assert_int_equal(count_rows(pg, "order_id = 'ORD-OLD-003' AND state = 'dead'"), 1);
    assert_int_equal(count_rows(pg, "order_id = 'ORD-OLD-004' AND state = 'sent'"), 1);
    testenv_service_stop(notify);
    PQfinish(pg);
    js_conn_destroy(js);
}

/* A channel switched off keeps its notifications pending (not claimed, not
 * failed) while the others go on. */
static void test_disabled_channel_stays_pending(void **state)
{
    (void)state;
    static const char *const both[] = {"OMS_NOTIFY_CHANNELS=log,webhook", WEBHOOK_ENV,
                                       "OMS_NOTIFY_RETRY_BASE_MS=200", FAST_TIMEOUT, NULL};
    static const char *const log_only[] = {"OMS_NOTIFY_CHANNELS=log", FAST_RETRY, NULL};
    testenv_reset(SCHEMAS);
    pid_t notify = testenv_service_start("notify", PORT, both);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();
    publish_paid_orders(js, "ORD-OFF", 3);
    wait_rows(pg, "channel = 'webhook' AND state = 'pending' AND attempts >= 1", 3, 10000);
    testenv_service_stop(notify);
    long attempts = testenv_pg_long(pg, "SELECT sum(attempts) FROM notify.notifications"
                                        " WHERE channel = 'webhook'");
    notify = testenv_service_start("notify", PORT, log_only);
    publish_paid_orders(js, "ORD-ON", 2);
    wait_rows(pg, "channel = 'log' AND state = 'sent'", 5, 10000);
    usleep(800000);
    assert_int_equal(count_rows(pg, "channel = 'webhook' AND state = 'pending'"), 3);
    assert_int_equal(testenv_pg_long(pg, "SELECT sum(attempts) FROM notify.notifications"
                                         " WHERE channel = 'webhook'"),
                     attempts);
    testenv_service_stop(notify);
    PQfinish(pg);
    js_conn_destroy(js);
}

/* The log channel is delivered as it is recorded: each notification is
 * written to the log once and inserted sent, with one attempt; no row is
 * updated after its insert (no claim, no lease, no outcome update). */
static long notifications_stat(PGconn *pg, const char *column)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT %s FROM pg_stat_user_tables"
             " WHERE schemaname = 'notify' AND relname = 'notifications'",
             column);
    return testenv_pg_long(pg, sql);
}

static void test_log_channel_written_as_recorded(void **state)
{
    (void)state;
    static const char *const log_only[] = {"OMS_NOTIFY_CHANNELS=log", NULL};
    enum { N = 40 };
    testenv_reset(SCHEMAS);
    PGconn *pg = testenv_pg();
    char log[1024];
    testenv_service_log("notify", PORT, log, sizeof log);
    struct stat before;
    off_t from = stat(log, &before) == 0 ? before.st_size : 0;
    pid_t notify = testenv_service_start("notify", PORT, log_only);
    /* The table is new (the reset dropped the schema); read its counters now. */
    long inserts = notifications_stat(pg, "n_tup_ins");
    long updates = notifications_stat(pg, "n_tup_upd");
    js_conn *js = testenv_js();
    publish_paid_orders(js, "ORD-LOG", N);
    wait_rows(pg, "channel = 'log' AND state = 'sent' AND attempts = 1 AND sent_at IS NOT NULL", N,
              20000);
    /* A stopped backend has flushed its table counters. */
    testenv_service_stop(notify);
    /* This start's part of the service's log: one line per notification. */
    FILE *f = fopen(log, "r");
    assert_non_null(f);
    assert_int_equal(fseeko(f, from, SEEK_SET), 0);
    long written = 0;
    char line[4096];
    while (fgets(line, sizeof line, f) != NULL)
        written += strstr(line, "\"msg\":\"notification\",") != NULL;
    fclose(f);
    assert_int_equal(written, N);
    /* The inserts show the counters were flushed; the updates must not move. */
    for (int i = 0; i < 50 && notifications_stat(pg, "n_tup_ins") - inserts < N; i++)
        usleep(100000);
    assert_int_equal(notifications_stat(pg, "n_tup_ins") - inserts, N);
    assert_int_equal(notifications_stat(pg, "n_tup_upd") - updates, 0);
    PQfinish(pg);
    js_conn_destroy(js);
}

/* An event older than OMS_NOTIFY_MAX_AGE_H (a stream replayed to a new
 * notify) is recorded failed on every channel, not sent; `omsctl
 * notifications retry --failed --order` sends it when somebody wants it. */
static void test_stale_event_is_not_sent(void **state)
{
    (void)state;
    static const char *const env[] = {"OMS_NOTIFY_CHANNELS=log,webhook",
                                      WEBHOOK_ENV,
                                      "OMS_NOTIFY_MAX_AGE_H=24",
                                      FAST_RETRY,
                                      FAST_TIMEOUT,
                                      NULL};
    testenv_reset(SCHEMAS);
    webhook_start("ok");
    pid_t notify = testenv_service_start("notify", PORT, env);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();
    char event_id[37];
    order stale = {"ORD-STALE", "old@example.com", "Old", 100};
    order fresh = {"ORD-FRESH", "new@example.com", "New", 200};
    publish_paid_at(js, &stale, event_id, oms_now_ms() - 25LL * 3600 * 1000);
    publish_paid(js, &fresh, event_id);
    wait_rows(pg, "order_id = 'ORD-FRESH' AND state = 'sent'", 2, 10000);
    wait_rows(pg,
              "order_id = 'ORD-STALE' AND state = 'failed' AND attempts = 0"
              " AND last_error = 'event is older than OMS_NOTIFY_MAX_AGE_H: not sent'",
              2, 1000);
    size_t distinct = 0;
    json_t *stats = webhook_stats();
    assert_int_equal(webhook_received(stats, &distinct), 1);
    json_decref(stats);

    char *text = NULL;
    assert_int_equal(omsctl("notifications retry --failed --order ORD-STALE", &text), 0);
    assert_contains(text, "2 failed notifications re-queued");
    free(text);
    wait_rows(pg, "order_id = 'ORD-STALE' AND state = 'sent'", 2, 10000);
    stats = webhook_stats();
    webhook_for(stats, "ORD-STALE");
    assert_int_equal(webhook_received(stats, &distinct), 2);
    json_decref(stats);
    testenv_service_stop(notify);
    testenv_peer_stop(&webhook_pid);
    PQfinish(pg);
    js_conn_destroy(js);
}

/* The SMTP server restarts between two groups: the sessions notify keeps
 * for reuse are dead, and the next emails still go out (on new ones). */
static void test_smtp_restart_between_groups(void **state)
{
    (void)state;
    static const char *const env[] = {"OMS_NOTIFY_CHANNELS=email", SMTP_ENV, FAST_RETRY,
                                      FAST_TIMEOUT, NULL};
    testenv_reset(SCHEMAS);
    smtp_start("ok");
    pid_t notify = testenv_service_start("notify", PORT, env);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();
    publish_paid_orders(js, "ORD-S1", 5);
    wait_rows(pg, "state = 'sent'", 5, 10000);
    testenv_peer_stop(&smtp_pid);
    mail_dir_remove();
    smtp_start("ok");
    publish_paid_orders(js, "ORD-S2", 5);
    wait_rows(pg, "state = 'sent'", 10, 10000);
    assert_int_equal(mail_count(), 5);
    testenv_service_stop(notify);
    testenv_peer_stop(&smtp_pid);
    PQfinish(pg);
    js_conn_destroy(js);
}

/* Runs oms-notify with env and expects exit status 2 with want on stderr. */
static void config_refused(const char *const *env, const char *want)
{
    char path[1024], out[4096] = "";
    const char *bin = getenv("OMS_BIN_DIR") ? getenv("OMS_BIN_DIR") : getenv("OMS_BUILD_DIR");
    snprintf(path, sizeof path, "%s/services/notify/oms-notify", bin ? bin : ".");
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        for (const char *const *e = env; *e; e++)
            putenv((char *)*e);
        execl(path, path, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    size_t len = 0;
    ssize_t got;
    while (len < sizeof out - 1 && (got = read(fds[0], out + len, sizeof out - 1 - len)) > 0)
        len += (size_t)got;
    out[len] = '\0';
    close(fds[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 2);
    assert_contains(out, want);
}

static void test_bad_configuration_exits_2(void **state)
{
    (void)state;
    static const char *const no_smtp[] = {"OMS_NOTIFY_CHANNELS=log,email", NULL};
    static const char *const channel[] = {"OMS_NOTIFY_CHANNELS=log, sms", NULL};
    static const char *const secret[] = {"OMS_NOTIFY_CHANNELS=webhook",
                                         "OMS_WEBHOOK_URL=http://127.0.0.1:1/hook",
                                         "OMS_WEBHOOK_SECRET=short", NULL};
    static const char *const attempts[] = {"OMS_NOTIFY_MAX_ATTEMPTS=0", NULL};
    config_refused(no_smtp, "notify: configuration error: OMS_SMTP_URL=\"\" is invalid");
    config_refused(channel, "OMS_NOTIFY_CHANNELS=\"log, sms\" is invalid: \"sms\" is not a "
                            "channel");
    config_refused(secret, "OMS_WEBHOOK_SECRET is too short");
    config_refused(attempts, "OMS_NOTIFY_MAX_ATTEMPTS");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_configuration_exits_2),
        cmocka_unit_test_teardown(test_each_event_notifies_once_per_channel, teardown),
        cmocka_unit_test_teardown(test_webhook_outage_then_recovery, teardown),
        cmocka_unit_test_teardown(test_failing_peers_dead_then_retry, teardown),
        cmocka_unit_test_teardown(test_slow_receiver_times_out_without_blocking, teardown),
        cmocka_unit_test_teardown(test_two_replicas_send_each_once, teardown),
        cmocka_unit_test_teardown(test_old_notifications_are_pruned, teardown),
        cmocka_unit_test_teardown(test_disabled_channel_stays_pending, teardown),
        cmocka_unit_test_teardown(test_log_channel_written_as_recorded, teardown),
        cmocka_unit_test_teardown(test_stale_event_is_not_sent, teardown),
        cmocka_unit_test_teardown(test_smtp_restart_between_groups, teardown),
        cmocka_unit_test_teardown(test_kill9_mid_delivery, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
