/*
 * test_js_fetch.c - js_fetch against the real nats-server when more than half
 * a batch is already waiting in the subscription and more keeps arriving: the
 * case where nats.c 3.4.1's own fetch writes past the end of its array (see
 * lib/js.c). No fetch may return more than it asked for, and every message
 * must arrive exactly once.
 */
#include "testenv.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STREAM "TESTFETCH"
#define DURABLE "fetch-test"
#define BATCH 256
#define WAITING 192 /* more than half a batch, less than a whole one */
#define LATER 300   /* published while the fetch runs */

static void stream_create(js_conn *js)
{
    jsStreamConfig cfg;
    const char *subjects[] = {"testfetch.>"};
    jsErrCode code = 0;
    js_DeleteStream(js_ctx(js), STREAM, NULL, NULL);
    jsStreamConfig_Init(&cfg);
    cfg.Name = STREAM;
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_MemoryStorage;
    assert_int_equal(js_AddStream(NULL, js_ctx(js), &cfg, NULL, &code), NATS_OK);
}

static void publish_range(js_conn *js, int from, int to)
{
    char body[16];
    for (int i = from; i < to; i++) {
        int n = snprintf(body, sizeof body, "%d", i);
        assert_int_equal(js_publish_async(js, "testfetch.m", NULL, NULL, body, (size_t)n + 1),
                         OMS_OK);
    }
    assert_int_equal(js_publish_wait(js, 30000), OMS_OK);
}

/* A pull request of our own, answered into the subscription's inbox the way
 * the answers to an earlier, abandoned fetch arrive. */
static void pull_request(js_conn *js, natsSubscription *sub, const char *json)
{
    char reply[256];
    const char *subject = natsSubscription_GetSubject(sub);
    size_t len = strlen(subject);
    assert_true(len > 1 && len < 200);
    if (subject[len - 1] == '*') /* newer nats.c: one reply subject per fetch */
        snprintf(reply, sizeof reply, "%.*searlier", (int)(len - 1), subject);
    else
        snprintf(reply, sizeof reply, "%s", subject);
    assert_int_equal(natsConnection_PublishRequestString(
                         js_nats(js), "$JS.API.CONSUMER.MSG.NEXT." STREAM "." DURABLE, reply, json),
                     NATS_OK);
}

static void *publish_later(void *arg)
{
    usleep(100 * 1000);
    publish_range(arg, WAITING, WAITING + LATER);
    return NULL;
}

static int take(natsMsgList *list, unsigned char *seen)
{
    int fresh = 0;
    for (int i = 0; i < list->Count; i++) {
        int idx = atoi(natsMsg_GetData(list->Msgs[i]));
        assert_true(idx >= 0 && idx < WAITING + LATER);
        fresh += seen[idx] == 0;
        seen[idx] = 1;
        natsMsg_Ack(list->Msgs[i], NULL);
    }
    natsMsgList_Destroy(list);
    return fresh;
}

static void test_waiting_messages_are_neither_overrun_nor_lost(void **state)
{
    (void)state;
    js_conn *js = testenv_js();
    natsSubscription *sub = NULL;
    unsigned char seen[WAITING + LATER] = {0};
    natsMsgList list;
    pthread_t publisher;
    int waiting = 0, received = 0;

    stream_create(js);
    publish_range(js, 0, WAITING);
    assert_int_equal(js_pull_subscribe(js, STREAM, DURABLE, NULL, 30000, &sub), OMS_OK);
    pull_request(js, sub, "{\"batch\":192,\"no_wait\":true}");
    for (int i = 0; i < 100 && waiting < WAITING; i++) {
        usleep(10 * 1000);
        natsSubscription_GetPending(sub, &waiting, NULL);
    }
    assert_int_equal(waiting, WAITING);
    pull_request(js, sub, "{\"batch\":200,\"expires\":5000000000}");
    assert_int_equal(pthread_create(&publisher, NULL, publish_later, js), 0);

    assert_int_equal(js_fetch(sub, BATCH, 1000, &list), OMS_OK);
    if (list.Count > 2 * WAITING + 2)
        fail_msg("fetch returned %d messages, asked for at most %d", list.Count, 2 * WAITING + 2);
    print_message("first fetch: %d messages\n", list.Count);
    assert_true(list.Count >= WAITING);
    received += take(&list, seen);
    pthread_join(publisher, NULL);
    for (int i = 0; i < 50 && received < WAITING + LATER; i++) {
        assert_int_equal(js_fetch(sub, BATCH, 200, &list), OMS_OK);
        received += take(&list, seen);
    }
    assert_int_equal(received, WAITING + LATER);

    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    js_DeleteStream(js_ctx(js), STREAM, NULL, NULL);
    js_conn_destroy(js);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_waiting_messages_are_neither_overrun_nor_lost),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
