/*
 * test_rt_rconsumer.c - lib/rconsumer (the Redis applier) against the
 * stack's nats-server, Redis and PostgreSQL, through rconsumer.h only: an
 * event is applied once; the same event id delivered again changes nothing
 * (the script's inbox says it saw it); a message the service cannot encode
 * goes to dead_letters with its reason and the stream moves on.
 */
#include "testenv.h"

#include "metrics.h"
#include "pg.h"
#include "rconsumer.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STREAM "RTRC"
#define SCHEMA "rtrc"
#define DUP_WINDOW_MS 100 /* the server's smallest: a test sends one event id twice */

/* ARGV: event id, cents. The event id is recorded with the effect, atomically. */
static const char script[] =
    "if redis.call('SET', 'rtrc:seen:' .. ARGV[1], '1', 'NX', 'EX', 3600) then"
    " redis.call('INCRBY', 'rtrc:total_cents', ARGV[2]) return 1 end return 0";

static metrics *metr;
static js_conn *js;
static PGconn *pg;
static redis_conn *redis;
static rconsumer_env env;

/* Script results seen by done, guarded by mu. */
static struct {
    pthread_mutex_t mu;
    int applied;
    int seen_before;
} results = {.mu = PTHREAD_MUTEX_INITIALIZER};

static oms_status encode(void *ctx, oms_msg *m, redis_args *args)
{
    (void)ctx;
    char cents[32];
    if (m->len == 0 || m->len >= sizeof cents) {
        rconsumer_reject(m, "payload of %s is not an amount", m->event_id);
        return OMS_OK;
    }
    memcpy(cents, m->data, m->len);
    cents[m->len] = '\0';
    if (strspn(cents, "0123456789") != m->len) {
        rconsumer_reject(m, "payload of %s is not an amount", m->event_id);
        return OMS_OK;
    }
    oms_status s = redis_args_add_str(args, m->event_id);
    return s == OMS_OK ? redis_args_add_str(args, cents) : s;
}

static void done(void *ctx, const oms_msg *m, long long result)
{
    (void)ctx, (void)m;
    pthread_mutex_lock(&results.mu);
    results.applied += result == 1;
    results.seen_before += result == 0;
    pthread_mutex_unlock(&results.mu);
}

/* Runs one Redis command, each word one argument; caller frees the reply. */
static redisReply *command(const char *const *words)
{
    redis_args a;
    redisReply *reply = NULL;
    redis_args_init(&a);
    for (const char *const *w = words; *w; w++)
        assert_int_equal(redis_args_add_str(&a, *w), OMS_OK);
    assert_int_equal(redis_command_args(redis, &a, &reply), OMS_OK);
    redis_args_fini(&a);
    return reply;
}

static long long total_cents(void)
{
    static const char *const get[] = {"GET", "rtrc:total_cents", NULL};
    redisReply *r = command(get);
    long long v = r->type == REDIS_REPLY_STRING ? atoll(r->str) : -1;
    freeReplyObject(r);
    return v;
}

static int setup(void **st)
{
    (void)st;
    char err[REDIS_ERR_LEN] = "";
    metr = metrics_create();
    js = testenv_js();
    pg = testenv_pg_schema(SCHEMA);
    assert_int_equal(redis_connect(&redis, testenv_require("OMS_REDIS_URL"), 2000, err), OMS_OK);
    env = (rconsumer_env){testenv_require("OMS_REDIS_URL"), testenv_require("OMS_PG_DSN"), SCHEMA,
                          js, metr};
    return 0;
}

static int teardown(void **st)
{
    (void)st;
    redis_conn_destroy(redis);
    PQfinish(pg);
    js_DeleteStream(js_ctx(js), STREAM, NULL, NULL);
    js_conn_destroy(js);
    metrics_destroy(metr);
    return 0;
}

static int fresh(void **st)
{
    (void)st;
    static const char *const del[] = {
        "DEL", "rtrc:total_cents", "rtrc:seen:rc-1", "rtrc:seen:rc-2", "rtrc:seen:rc-poison", NULL};
    static const char *const set[] = {"SET", "rtrc:total_cents", "0", NULL};
    testenv_stream_create(js, STREAM, "rtrc.>", DUP_WINDOW_MS);
    PQclear(PQexec(pg, "TRUNCATE dead_letters"));
    freeReplyObject(command(del));
    freeReplyObject(command(set));
    pthread_mutex_lock(&results.mu);
    results.applied = results.seen_before = 0;
    pthread_mutex_unlock(&results.mu);
    return 0;
}

static rconsumer_spec spec_for(const char *durable)
{
    return (rconsumer_spec){.pull = {.name = durable,
                                     .stream = STREAM,
                                     .durable = durable,
                                     .batch_max = 16,
                                     .wait_ms = 100,
                                     .ack_wait_ms = 30000,
                                     .max_attempts = 3,
                                     .nak_delay_ms = 50},
                            .script = script,
                            .encode = encode,
                            .done = done};
}

static void publish(const char *id, const char *payload)
{
    const char *headers[] = {JS_HDR_MSG_ID, id, NULL};
    testenv_publish(js, "rtrc.paid", payload, strlen(payload), headers);
}

typedef struct applied_wait {
    rconsumer *c;
    long long want;
} applied_wait;

static bool applied_reached(void *arg)
{
    applied_wait *w = arg;
    return rconsumer_applied(w->c) >= w->want;
}

static void test_applied_once_redelivery_deduped(void **st)
{
    (void)st;
    rconsumer_spec spec = spec_for("rtrc-once");
    rconsumer *c = NULL;
    assert_int_equal(rconsumer_start(&c, &spec, &env), OMS_OK);
    int64_t first_ms = oms_mono_ms();
    publish("rc-1", "250");
    applied_wait w = {c, 1};
    assert_true(testenv_wait(applied_reached, &w, 5000));
    assert_true(testenv_durable_settled(js, STREAM, spec.pull.durable, 5000));
    /* The same event again once past the window, as a lost ack would bring it. */
    int64_t left_ms = first_ms + 2 * DUP_WINDOW_MS - oms_mono_ms();
    if (left_ms > 0)
        oms_sleep_ms(left_ms, NULL);
    publish("rc-1", "250");
    assert_int_equal(testenv_stream_count(js, STREAM), 2);
    assert_true(testenv_durable_settled(js, STREAM, spec.pull.durable, 5000));
    rconsumer_stop(c);
    assert_int_equal(total_cents(), 250);
    pthread_mutex_lock(&results.mu);
    assert_int_equal(results.applied, 1);
    assert_int_equal(results.seen_before, 1);
    pthread_mutex_unlock(&results.mu);
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM dead_letters"), 0);
}

static void test_poison_dead_lettered_stream_moves_on(void **st)
{
    (void)st;
    rconsumer_spec spec = spec_for("rtrc-poison");
    rconsumer *c = NULL;
    publish("rc-poison", "12x");
    publish("rc-2", "40");
    assert_int_equal(rconsumer_start(&c, &spec, &env), OMS_OK);
    assert_int_equal(testenv_wait_pg(pg, "SELECT count(*) FROM dead_letters", 1, 5000), 1);
    applied_wait w = {c, 1};
    assert_true(testenv_wait(applied_reached, &w, 5000));
    assert_true(testenv_durable_settled(js, STREAM, spec.pull.durable, 5000));
    assert_int_equal(rconsumer_applied(c), 1);
    rconsumer_stop(c);
    assert_int_equal(total_cents(), 40);
    PGresult *r = PQexec(pg, "SELECT event_id, subject, reason, payload FROM dead_letters");
    assert_int_equal(PQntuples(r), 1);
    assert_string_equal(PQgetvalue(r, 0, 0), "rc-poison");
    assert_string_equal(PQgetvalue(r, 0, 1), "rtrc.paid");
    assert_string_equal(PQgetvalue(r, 0, 2), "payload of rc-poison is not an amount");
    assert_string_equal(PQgetvalue(r, 0, 3), "\\x313278"); /* "12x", bytea hex */
    PQclear(r);
    static const char *const seen[] = {"EXISTS", "rtrc:seen:rc-poison", NULL};
    redisReply *e = command(seen);
    assert_int_equal(e->integer, 0); /* never reached the script */
    freeReplyObject(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_applied_once_redelivery_deduped, fresh),
        cmocka_unit_test_setup(test_poison_dead_lettered_stream_moves_on, fresh),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
