/*
 * test_httpc.c - the outgoing client against real local servers (lib/http,
 * and tests/support/smtp_sink for SMTP): parallel JSON POSTs where every
 * answer lands on its own request, the Idempotency-Key header and body
 * arrive as sent, a dead port is "not answered", a slow answer is cut at the
 * timeout; the body cap (cut or refused), curl's error text, method,
 * headers and user agent as sent, a session reused across groups, and an
 * SMTP upload taken, dot-stuffed and refused.
 */
#include "testenv.h"

#include "http.h"
#include "httpc.h"

#include <curl/curl.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PORT 19691
#define DEAD_PORT 19692 /* nothing listens there */
#define SMTP_PORT 19693
#define MIB (1024 * 1024)

#ifndef OMS_SMTP_SINK
#define OMS_SMTP_SINK "tests/smtp_sink"
#endif

static char url_buf[8][128];

static const char *url(int slot, int port, const char *path)
{
    snprintf(url_buf[slot], sizeof url_buf[slot], "http://127.0.0.1:%d%s", port, path);
    return url_buf[slot];
}

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

/* n bytes of 'x'. */
static void h_big(void *ctx, const http_request *req, http_response *resp)
{
    (void)ctx;
    size_t n = (size_t)atol(http_path_param(req, 0));
    char *body = malloc(n + 1);
    memset(body, 'x', n);
    body[n] = '\0';
    http_respond_text(resp, 200, "text/plain", body);
    free(body);
}

static void h_slow(void *ctx, const http_request *req, http_response *resp)
{
    (void)ctx, (void)req;
    oms_sleep_ms(1000, NULL);
    http_respond_text(resp, 200, "text/plain", "late");
}

/* What arrived: method, two headers and the body. */
static void h_what(void *ctx, const http_request *req, http_response *resp)
{
    (void)ctx;
    size_t len = 0;
    const char *body = http_body(req, &len);
    http_respond_json(resp, 200,
                      json_pack("{s:s,s:s?,s:s?,s:s%}", "method", http_method(req), "trace",
                                http_header(req, "X-Trace"), "agent",
                                http_header(req, "User-Agent"), "body", body, len));
}

static int server_setup(void **state)
{
    http_server *s = NULL;
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", PORT);
    assert_int_equal(http_server_create(&s, addr, NULL), OMS_OK);
    assert_int_equal(http_route(s, "POST", "/status/{}", false, h_echo, NULL), OMS_OK);
    assert_int_equal(http_route(s, "GET", "/big/{}", false, h_big, NULL), OMS_OK);
    assert_int_equal(http_route(s, "GET", "/slow", false, h_slow, NULL), OMS_OK);
    assert_int_equal(http_route(s, "DELETE", "/what", false, h_what, NULL), OMS_OK);
    assert_int_equal(http_route(s, "POST", "/what", false, h_what, NULL), OMS_OK);
    assert_int_equal(http_server_start(s), OMS_OK);
    *state = s;
    return 0;
}

static int server_teardown(void **state)
{
    http_server_destroy(*state);
    return 0;
}

static void test_parallel_posts(void **state)
{
    (void)state;

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
    assert_string_equal(posts[2].error, curl_easy_strerror(CURLE_COULDNT_CONNECT));

    assert_int_equal(posts[3].status, 422);
    assert_false(httpc_retryable(&posts[3]));
    char reason[256];
    httpc_reason(&posts[3], "none", reason, sizeof reason);
    assert_string_equal(reason, "refused: {\"amount_cents\":1}");
    httpc_reason(&posts[0], "no reason given", reason, sizeof reason);
    assert_string_equal(reason, "no reason given");

    assert_false(posts[4].answered); /* cut at the 1 s timeout */
    assert_true(httpc_retryable(&posts[4]));
    assert_string_equal(posts[4].error, curl_easy_strerror(CURLE_OPERATION_TIMEDOUT));
}

/* GETs path keeping max bytes, cut or refused; the caller finis r. */
static void get_big(httpc_request *r, const char *path, size_t max, bool refuse)
{
    *r = (httpc_request){.url = url(0, PORT, path),
                         .response_max_bytes = max,
                         .refuse_larger = refuse};
    assert_int_equal(httpc_run(NULL, r, 1, 1000, 10000), OMS_OK);
}

static void test_body_cap(void **state)
{
    (void)state;
    httpc_request r;
    get_big(&r, "/big/5000", 100, false); /* cut: the first 100 bytes, still an answer */
    assert_true(r.done);
    assert_int_equal(r.status, 200);
    assert_true(r.too_big);
    assert_int_equal(r.response_len, 100);
    assert_int_equal(strlen(r.response), 100);
    assert_int_equal(strspn(r.response, "x"), 100);
    httpc_request_fini(&r);

    get_big(&r, "/big/5000", 0, false); /* dropped */
    assert_true(r.done);
    assert_null(r.response);
    assert_int_equal(r.response_len, 0);
    httpc_request_fini(&r);

    get_big(&r, "/big/5000", 100, true); /* refused */
    assert_false(r.done);
    assert_string_equal(r.error, "response larger than 100 bytes");
    httpc_request_fini(&r);

    get_big(&r, "/big/1048586", MIB, true);
    assert_false(r.done);
    assert_true(r.too_big);
    assert_string_equal(r.error, "response larger than 1 MiB");
    httpc_request_fini(&r);

    get_big(&r, "/big/1048576", MIB, true); /* exactly the cap: whole */
    assert_true(r.done);
    assert_false(r.too_big);
    assert_int_equal(r.response_len, MIB);
    assert_int_equal(strspn(r.response, "x"), MIB);
    httpc_request_fini(&r);
}

static void test_timeout_and_error_text(void **state)
{
    (void)state;
    char want[128];
    httpc_request r[3] = {{.url = url(0, PORT, "/slow")},
                          {.url = url(1, DEAD_PORT, "/")},
                          {.url = NULL}}; /* skipped */
    snprintf(r[2].error, sizeof r[2].error, "untouched");
    int64_t t0 = oms_mono_ms();
    assert_int_equal(httpc_run(NULL, r, 3, 500, 300), OMS_OK);
    int64_t took = oms_mono_ms() - t0;
    assert_true(took >= 300 && took < 900);

    assert_false(r[0].done);
    assert_int_equal(r[0].status, 0);
    assert_string_equal(r[0].code_text, curl_easy_strerror(CURLE_OPERATION_TIMEDOUT));
    assert_int_equal(strncmp(r[0].error, "Operation timed out after ", 26), 0);

    assert_false(r[1].done);
    assert_string_equal(r[1].code_text, curl_easy_strerror(CURLE_COULDNT_CONNECT));
    snprintf(want, sizeof want, "Failed to connect to 127.0.0.1 port %d", DEAD_PORT);
    assert_int_equal(strncmp(r[1].error, want, strlen(want)), 0);

    assert_false(r[2].done);
    assert_string_equal(r[2].error, "untouched");
    for (int i = 0; i < 3; i++)
        httpc_request_fini(&r[i]);
}

static void test_method_headers_session(void **state)
{
    (void)state;
    httpc_session *session = NULL;
    const char *headers[] = {"X-Trace: t-1"};
    assert_int_equal(httpc_session_create(&session, 2, 60), OMS_OK);
    httpc_request r[2] = {
        {.url = url(0, PORT, "/what"),
         .method = "DELETE",
         .headers = headers,
         .n_headers = 1,
         .user_agent = "oms-test/1",
         .response_max_bytes = 1024},
        {.url = url(1, PORT, "/what"), .body = "a\0b", .body_len = 3, .response_max_bytes = 1024},
    };
    /* Twice on one session: the second group runs on the kept connections. */
    for (int round = 0; round < 2; round++) {
        assert_int_equal(httpc_run(session, r, 2, 1000, 5000), OMS_OK);
        assert_true(r[0].done);
        assert_int_equal(r[0].status, 200);
        assert_string_equal(r[0].response,
                            "{\"method\":\"DELETE\",\"trace\":\"t-1\",\"agent\":\"oms-test/1\","
                            "\"body\":\"\"}");
        assert_true(r[1].done); /* a body's own length, no User-Agent unless asked */
        assert_string_equal(r[1].response, "{\"method\":\"POST\",\"trace\":null,\"agent\":null,"
                                           "\"body\":\"a\\u0000b\"}");
    }
    for (int i = 0; i < 2; i++)
        httpc_request_fini(&r[i]);
    httpc_session_destroy(session);
    httpc_session_destroy(NULL);
}

static pid_t smtp_start(const char *dir, const char *mode)
{
    char port[32], dir_arg[160], mode_arg[32];
    snprintf(port, sizeof port, "port=%d", SMTP_PORT);
    snprintf(dir_arg, sizeof dir_arg, "dir=%s", dir);
    snprintf(mode_arg, sizeof mode_arg, "mode=%s", mode);
    const char *args[] = {port, dir_arg, mode_arg, NULL};
    return testenv_peer_start(OMS_SMTP_SINK, "smtp_sink", SMTP_PORT, args);
}

static void read_file(const char *path, char *out, size_t out_len)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(out, 1, out_len - 1, f);
    out[n] = '\0';
    fclose(f);
}

static void test_smtp_upload(void **state)
{
    (void)state;
    char dir[] = "/tmp/oms-httpc-mail-XXXXXX", path[256], got[1024], smtp_url[64];
    assert_non_null(mkdtemp(dir));
    snprintf(smtp_url, sizeof smtp_url, "smtp://127.0.0.1:%d", SMTP_PORT);
    const char *text = "Subject: hello\r\n\r\n.starts with a dot\r\nbye\r\n";
    httpc_mail mail = {.from = "<shop@example.com>",
                       .rcpt = "<ann@example.com>",
                       .tls = HTTPC_TLS_OFF};
    httpc_request r = {.url = smtp_url, .body = text, .mail = &mail};

    pid_t pid = smtp_start(dir, "ok");
    assert_int_equal(httpc_run(NULL, &r, 1, 1000, 5000), OMS_OK);
    assert_true(r.done);
    assert_int_equal(r.status, 250);
    testenv_peer_stop(&pid);
    snprintf(path, sizeof path, "%s/000001.eml", dir);
    read_file(path, got, sizeof got);
    /* Dot-stuffed on the way, unstuffed by the sink (which stores lines
     * with \n): the text as given. */
    assert_string_equal(got, "X-Envelope-From: shop@example.com\n"
                             "X-Envelope-To: ann@example.com\n"
                             "Subject: hello\n\n.starts with a dot\nbye\n");
    unlink(path);

    pid = smtp_start(dir, "reject");
    assert_int_equal(httpc_run(NULL, &r, 1, 1000, 5000), OMS_OK);
    assert_false(r.done);
    assert_int_equal(r.status, 550);
    assert_true(strlen(r.error) > 0);
    testenv_peer_stop(&pid);
    httpc_request_fini(&r);
    assert_int_equal(rmdir(dir), 0); /* nothing stored */
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parallel_posts),
        cmocka_unit_test(test_body_cap),
        cmocka_unit_test(test_timeout_and_error_text),
        cmocka_unit_test(test_method_headers_session),
        cmocka_unit_test(test_smtp_upload),
    };
    int rc = cmocka_run_group_tests(tests, server_setup, server_teardown);
    curl_global_cleanup();
    return rc;
}
