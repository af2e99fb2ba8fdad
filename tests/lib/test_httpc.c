/*
 * test_httpc.c - parallel JSON POSTs against a real local server (lib/http):
 * every answer lands on its own request, the Idempotency-Key header and body
 * arrive as sent, a dead port is "not answered", a slow answer is cut at the
 * timeout, and the retry rule and reason extraction.
 */
#include "testenv.h"

#include "http.h"
#include "httpc.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PORT 19691
#define DEAD_PORT 19692 /* nothing listens there */

/* Echoes the key and body; /status/{code} answers with that status. */
static void h_echo(void *ctx, const http_request *req, http_response *resp)
{
    (void)ctx;
    size_t len = 0;
    const char *body = http_body(req, &len);
    const char *key = http_header(req, "Idempotency-Key");
    int status = atoi(http_path_param(req, 0));
    if (status == 299) /* slow */
        usleep(1500 * 1000);
    if (status >= 400)
        http_respond_error(resp, status, "refused: %.*s", (int)len, body);
    else
        http_respond_json(resp, status, json_pack("{s:s?,s:s%}", "key", key, "body", body, len));
}

static void test_parallel_posts(void **state)
{
    (void)state;
    http_server *s = NULL;
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", PORT);
    assert_int_equal(http_server_create(&s, addr, NULL), OMS_OK);
    assert_int_equal(http_route(s, "POST", "/status/{}", false, h_echo, NULL), OMS_OK);
    assert_int_equal(http_server_start(s), OMS_OK);

    httpc_post posts[5];
    memset(posts, 0, sizeof posts);
    const char *urls[] = {"http://127.0.0.1:19691/status/200", "http://127.0.0.1:19691/status/503",
                          "http://127.0.0.1:19692/status/200", "http://127.0.0.1:19691/status/422",
                          "http://127.0.0.1:19691/status/299"};
    const char *keys[] = {"k-200", "k-503", "k-dead", NULL, "k-slow"};
    for (int i = 0; i < 5; i++) {
        posts[i].url = urls[i];
        posts[i].body = "{\"amount_cents\":1}";
        posts[i].idempotency_key = keys[i];
    }
    int64_t t0 = oms_mono_ms();
    assert_int_equal(httpc_post_all(posts, 5, 500, 1000), OMS_OK);
    int64_t took = oms_mono_ms() - t0;
    /* In parallel: the slow one's timeout, not the sum. */
    assert_true(took < 1800);

    assert_true(posts[0].answered);
    assert_int_equal(posts[0].status, 200);
    assert_string_equal(posts[0].response,
                        "{\"key\":\"k-200\",\"body\":\"{\\\"amount_cents\\\":1}\"}");
    assert_false(httpc_retryable(&posts[0]));

    assert_int_equal(posts[1].status, 503);
    assert_true(httpc_retryable(&posts[1]));

    assert_false(posts[2].answered);
    assert_int_equal(posts[2].status, 0);
    assert_true(httpc_retryable(&posts[2]));
    assert_true(strlen(posts[2].error) > 0);

    assert_int_equal(posts[3].status, 422);
    assert_false(httpc_retryable(&posts[3]));
    char reason[256];
    httpc_reason(&posts[3], "none", reason, sizeof reason);
    assert_string_equal(reason, "refused: {\"amount_cents\":1}");
    httpc_reason(&posts[0], "no reason given", reason, sizeof reason);
    assert_string_equal(reason, "no reason given");

    assert_false(posts[4].answered); /* cut at the 1 s timeout */
    assert_true(httpc_retryable(&posts[4]));
    http_server_destroy(s);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parallel_posts),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
