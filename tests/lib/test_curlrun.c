/*
 * test_curlrun.c - a group of transfers run in parallel to completion: each
 * finished transfer is reported once with its own private pointer and
 * result, a refused connection included, and the group takes about as long
 * as its slowest transfer, not the sum.
 */
#include "testenv.h"

#include "curlrun.h"
#include "http.h"

#include <stdio.h>
#include <string.h>

#define SERVER_PORT 19591
#define CLOSED_PORT 19592 /* nothing listens there */
#define SLOW_MS 300

typedef struct seen {
    int calls;
    CURLcode result;
} seen;

static void on_done(void *priv, CURLcode result)
{
    seen *s = priv;
    s->calls++;
    s->result = result;
}

static void h_slow(void *ctx, const http_request *req, http_response *resp)
{
    (void)ctx, (void)req;
    oms_sleep_ms(SLOW_MS, NULL);
    http_respond_text(resp, 200, "text/plain", "ok");
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p, (void)arg;
    return size * n;
}

static CURL *easy(const char *url, seen *s)
{
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(e, CURLOPT_PRIVATE, s);
    return e;
}

static void test_group_in_parallel(void **state)
{
    (void)state;
    http_server *http = NULL;
    char addr[32], ok_url[64], closed_url[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", SERVER_PORT);
    snprintf(ok_url, sizeof ok_url, "http://127.0.0.1:%d/slow", SERVER_PORT);
    snprintf(closed_url, sizeof closed_url, "http://127.0.0.1:%d/", CLOSED_PORT);
    assert_int_equal(http_server_create(&http, addr, NULL), OMS_OK);
    assert_int_equal(http_route(http, "GET", "/slow", false, h_slow, NULL), OMS_OK);
    assert_int_equal(http_server_start(http), OMS_OK);
    curl_global_init(CURL_GLOBAL_DEFAULT);

    seen s[5];
    CURL *e[5];
    memset(s, 0, sizeof s);
    CURLM *multi = curl_multi_init();
    for (int i = 0; i < 5; i++) {
        e[i] = easy(i == 4 ? closed_url : ok_url, &s[i]);
        assert_int_equal(curl_multi_add_handle(multi, e[i]), CURLM_OK);
    }
    int64_t start = oms_mono_ms();
    curlrun_perform(multi, 100, on_done);
    int64_t took = oms_mono_ms() - start;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(s[i].calls, 1);
        assert_int_equal(s[i].result, CURLE_OK);
    }
    assert_int_equal(s[4].calls, 1);
    assert_int_equal(s[4].result, CURLE_COULDNT_CONNECT);
    /* Four requests of 300 ms each, in parallel. */
    assert_true(took >= SLOW_MS && took < 3 * SLOW_MS);

    for (int i = 0; i < 5; i++) {
        curl_multi_remove_handle(multi, e[i]);
        curl_easy_cleanup(e[i]);
    }
    curl_multi_cleanup(multi);
    curl_global_cleanup();
    http_server_destroy(http);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_group_in_parallel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
