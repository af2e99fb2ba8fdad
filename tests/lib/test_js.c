/*
 * test_js.c - lib/js against the stack's nats-server: connecting, a
 * service's own streams created as the lib creates them and looked up,
 * publishing with Nats-Msg-Id deduplicated by the stream, event ids of
 * fetched messages, and an unreachable server reported naming the URL and
 * the call that failed.
 */
#include "testenv.h"

#include "js.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STREAM "RTJS"
#define ID_LEN 128

static js_conn *js;

static int setup(void **st)
{
    (void)st;
    js = testenv_js();
    return 0;
}

static int teardown(void **st)
{
    (void)st;
    js_DeleteStream(js_ctx(js), STREAM, NULL, NULL);
    js_conn_destroy(js);
    return 0;
}

static void test_connected(void **st)
{
    (void)st;
    assert_true(js_connected(js));
    assert_non_null(js_nats(js));
    assert_non_null(js_ctx(js));
    assert_int_equal(natsConnection_Status(js_nats(js)), NATS_CONN_STATUS_CONNECTED);
    js_conn_destroy(NULL); /* a no-op */
}

static void test_owned_streams(void **st)
{
    (void)st;
    jsStreamInfo *si = NULL;
    jsErrCode code = 0;
    assert_string_equal(js_stream_owner("PAYMENTS"), "payment");
    assert_string_equal(js_stream_owner("ORDERS"), "ingest");
    assert_string_equal(js_stream_owner("CATALOG"), "inventory");
    assert_null(js_stream_owner(STREAM));
    js_DeleteStream(js_ctx(js), "PAYMENTS", NULL, NULL);
    assert_int_equal(js_stream_exists(js, "PAYMENTS"), OMS_ENOTFOUND);
    /* notify owns no stream: nothing to do, and nothing made. */
    assert_int_equal(js_ensure_owned_streams(js, "notify", 1, 3600000, 60000), OMS_OK);
    assert_int_equal(js_stream_exists(js, "PAYMENTS"), OMS_ENOTFOUND);
    assert_int_equal(js_ensure_owned_streams(js, "payment", 1, 3600000, 60000), OMS_OK);
    assert_int_equal(js_stream_exists(js, "PAYMENTS"), OMS_OK);
    assert_int_equal(js_GetStreamInfo(&si, js_ctx(js), "PAYMENTS", NULL, &code), NATS_OK);
    assert_int_equal(si->Config->MaxAge, 3600000 * 1000000LL);
    assert_int_equal(si->Config->Duplicates, 60000 * 1000000LL);
    assert_int_equal(si->Config->Storage, js_FileStorage);
    assert_int_equal(si->Config->Replicas, 1);
    jsStreamInfo_Destroy(si);
    /* Again with another max age: updated in place, not refused. */
    assert_int_equal(js_ensure_owned_streams(js, "payment", 1, 7200000, 60000), OMS_OK);
    assert_int_equal(js_GetStreamInfo(&si, js_ctx(js), "PAYMENTS", NULL, &code), NATS_OK);
    assert_int_equal(si->Config->MaxAge, 7200000 * 1000000LL);
    jsStreamInfo_Destroy(si);
    /* Left as the services' defaults make it, for the tests that follow. */
    assert_int_equal(js_ensure_owned_streams(js, "payment", 1, 168 * 3600 * 1000LL, 120000),
                     OMS_OK);
    assert_int_equal(js_stream_exists(js, "RTJS_NONE"), OMS_ENOTFOUND);
}

/* Reads the n messages of the stream through a durable, with their ids. */
static void fetch_ids(size_t n, char ids[][ID_LEN])
{
    natsSubscription *sub = NULL;
    natsMsgList list = {0};
    size_t got = 0;
    assert_int_equal(js_pull_subscribe(js, STREAM, "rtjs-read", NULL, 30000, &sub), OMS_OK);
    for (int round = 0; round < 20 && got < n; round++) {
        assert_int_equal(js_fetch(sub, (int)n, 500, &list), OMS_OK);
        for (int i = 0; i < list.Count && got < n; i++, got++) {
            assert_int_equal(js_msg_event_id(list.Msgs[i], ids[got], ID_LEN), OMS_OK);
            natsMsg_Ack(list.Msgs[i], NULL);
        }
        natsMsgList_Destroy(&list);
    }
    assert_int_equal(got, n);
    natsSubscription_Destroy(sub);
}

static void test_publish_dedupe_and_event_ids(void **st)
{
    (void)st;
    char ids[3][ID_LEN];
    testenv_stream_create(js, STREAM, "rtjs.>", 120000);
    assert_int_equal(js_publish_async(js, "rtjs.a", "oms.v1.Test", "dup-1", "one", 3), OMS_OK);
    assert_int_equal(js_publish_async(js, "rtjs.a", "oms.v1.Test", "dup-1", "one", 3), OMS_OK);
    assert_int_equal(js_publish_async(js, "rtjs.b", "oms.v1.Test", "dup-2", "two", 3), OMS_OK);
    assert_int_equal(js_publish_wait(js, 5000), OMS_OK);
    assert_int_equal(testenv_stream_count(js, STREAM), 2);

    /* The same id again, synchronously: acknowledged, and still not stored. */
    natsMsg *m = NULL;
    assert_int_equal(natsMsg_Create(&m, "rtjs.a", NULL, "one", 3), NATS_OK);
    assert_int_equal(natsMsgHeader_Set(m, JS_HDR_MSG_ID, "dup-1"), NATS_OK);
    assert_int_equal(js_publish_sync(js, m), OMS_OK);
    natsMsg_Destroy(m);
    assert_int_equal(testenv_stream_count(js, STREAM), 2);

    testenv_publish(js, "rtjs.c", "three", 5, NULL); /* no Nats-Msg-Id */
    assert_int_equal(testenv_stream_count(js, STREAM), 3);
    fetch_ids(3, ids);
    assert_string_equal(ids[0], "dup-1");
    assert_string_equal(ids[1], "dup-2");
    assert_string_equal(ids[2], STREAM ":3");
}

static void test_event_id_never_cut(void **st)
{
    (void)st;
    natsMsg *m = NULL;
    char small[4] = "xyz";
    assert_int_equal(natsMsg_Create(&m, "rtjs.a", NULL, "", 0), NATS_OK);
    assert_int_equal(natsMsgHeader_Set(m, JS_HDR_MSG_ID, "longer-than-four"), NATS_OK);
    assert_int_equal(js_msg_event_id(m, small, sizeof small), OMS_EINVAL);
    assert_string_equal(small, "xyz"); /* untouched */
    natsMsg_Destroy(m);
}

static void test_unreachable_server_named(void **st)
{
    (void)st;
    js_conn *down = NULL;
    /* Port 1 on loopback: nothing listens, the connection is refused at once. */
    testenv_stderr_begin();
    oms_status s = js_connect(&down, "nats://127.0.0.1:1", NULL, NULL, "test-down");
    /* A publish gets no PubAck (a request would wait out JetStream's 10 s). */
    oms_status published = OMS_OK;
    if (s == OMS_OK && (published = js_publish_async(down, "rtjs.a", NULL, "x", "x", 1)) == OMS_OK)
        published = js_publish_wait(down, 300);
    char *log = testenv_stderr_end();
    /* Connected in the background later: the caller gets a connection now. */
    assert_int_equal(s, OMS_OK);
    assert_false(js_connected(down));
    assert_int_not_equal(published, OMS_OK);
    assert_non_null(strstr(log, "cannot connect to NATS yet"));
    assert_non_null(strstr(log, "\"nats_url\":\"nats://127.0.0.1:1\""));
    assert_non_null(strstr(log, "\"error\":\""));
    free(log);
    js_conn_destroy(down);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connected),
        cmocka_unit_test(test_owned_streams),
        cmocka_unit_test(test_publish_dedupe_and_event_ids),
        cmocka_unit_test(test_event_id_never_cut),
        cmocka_unit_test(test_unreachable_server_named),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
