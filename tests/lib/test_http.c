/*
 * test_http.c - a real server on 127.0.0.1 driven with libcurl: routing, path
 * and query parameters, bodies across upload callbacks, the 8 MiB limit,
 * bearer auth, and the exact status, headers and body of every answer.
 */
#include "testenv.h"

#include "http.h"

#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ADMIN_TOKEN "s3cret-token"
#define BODY_MAX_BYTES ((size_t)8 * 1024 * 1024)

typedef struct fixture {
    http_server *server;
    http_server *server_without_token;
    int port;
    int port_without_token;
} fixture;

/* What the client saw. */
typedef struct reply {
    long status;
    char *body;
    size_t body_len;
    char content_type[128];
    char allow[128];
    char www_authenticate[128];
    curl_off_t uploaded_bytes;
} reply;

/* A request body streamed by the client without Content-Length. */
typedef struct upload {
    size_t remaining_bytes;
} upload;

/* ---- handlers ---------------------------------------------------------- */

static void on_hello(void *ctx, const http_request *req, http_response *resp)
{
    (void)ctx;
    const char *name = http_query(req, "name");
    const char *client = http_header(req, "x-client"); /* sent as X-Client */
    char greeting[128];
    snprintf(greeting, sizeof greeting, "hello %s", name ? name : "world");
    http_respond_json(resp, 200,
                      json_pack("{s:s, s:b, s:s*}", "greeting", greeting, "verbose",
                                http_query(req, "verbose") != NULL, "client", client));
}

static void on_order_line(void *ctx, const http_request *req, http_response *resp)
{
    (void)ctx;
    /* No cmocka asserts here: handlers run on the server's threads. */
    http_respond_json(resp, 200,
                      json_pack("{s:s, s:s, s:s, s:s?}", "order", http_path_param(req, 0), "line",
                                http_path_param(req, 1), "path", http_path(req), "third",
                                http_path_param(req, 2)));
}

static void on_echo(void *ctx, const http_request *req, http_response *resp)
{
    (void)ctx;
    size_t len = 0;
    const char *body = http_body(req, &len);
    char *copy = malloc(len + 1);
    if (copy == NULL) {
        http_respond_error(resp, 500, "out of memory");
        return;
    }
    memcpy(copy, body, len);
    resp->content_type = "application/octet-stream";
    resp->body = copy;
    resp->body_len = len;
}

static void on_size(void *ctx, const http_request *req, http_response *resp)
{
    (void)ctx;
    size_t len = 0;
    http_body(req, &len);
    http_respond_json(resp, 200,
                      json_pack("{s:s, s:I}", "method", http_method(req), "bytes",
                                (json_int_t)len));
}

static void on_retry(void *ctx, const http_request *req, http_response *resp)
{
    int *calls = ctx;
    (*calls)++;
    http_respond_json(resp, 200, json_pack("{s:s}", "retried", http_path_param(req, 0)));
}

/* Leaves the default response untouched: 200, application/json, no body. */
static void on_empty(void *ctx, const http_request *req, http_response *resp)
{
    (void)ctx;
    (void)req;
    (void)resp;
}

static void on_bad_status(void *ctx, const http_request *req, http_response *resp)
{
    (void)ctx;
    (void)req;
    http_respond_text(resp, 42, "text/plain", "nonsense");
}

static void on_teapot(void *ctx, const http_request *req, http_response *resp)
{
    (void)ctx;
    http_respond_error(resp, 418, "cannot brew %s (%d cups)", http_query(req, "drink"), 2);
}

/* Typed parameters: GET /items/{item_id}?tag=&limit= */
static void on_item(void *ctx, const http_request *req, http_response *resp)
{
    (void)ctx;
    int64_t item = 0, limit = 0;
    const char *tag = NULL;
    if (http_path_int(req, 0, 1, 1000, &item, resp) != OMS_OK ||
        http_query_str(req, "tag", 8, &tag, resp) != OMS_OK ||
        http_query_int(req, "limit", 1, 100, 10, &limit, resp) != OMS_OK)
        return;
    http_respond_json(resp, 200,
                      json_pack("{s:I, s:s?, s:I}", "item", (json_int_t)item, "tag", tag, "limit",
                                (json_int_t)limit));
}

static int retry_calls;

/* ---- server setup -------------------------------------------------------- */

static void add_routes(http_server *s)
{
    assert_int_equal(http_route(s, "GET", "/hello", false, on_hello, NULL), OMS_OK);
    assert_int_equal(http_route(s, "GET", "/orders/{}/lines/{}", false, on_order_line, NULL),
                     OMS_OK);
    assert_int_equal(http_route(s, "POST", "/echo", false, on_echo, NULL), OMS_OK);
    assert_int_equal(http_route(s, "PUT", "/size", false, on_size, NULL), OMS_OK);
    assert_int_equal(http_route(s, "POST", "/size", false, on_size, NULL), OMS_OK);
    assert_int_equal(http_route(s, "POST", "/admin/dead-letters/{}/retry", true, on_retry,
                                &retry_calls),
                     OMS_OK);
    assert_int_equal(http_route(s, "GET", "/empty", false, on_empty, NULL), OMS_OK);
    assert_int_equal(http_route(s, "GET", "/bad-status", false, on_bad_status, NULL), OMS_OK);
    assert_int_equal(http_route(s, "GET", "/teapot", false, on_teapot, NULL), OMS_OK);
    assert_int_equal(http_route(s, "GET", "/items/{item_id}", false, on_item, NULL), OMS_OK);
}

/* Starts a server on a port in 20000-29999, trying others while ports are
 * taken; limits NULL keeps the defaults. */
static http_server *start_limited_server(const char *token, const http_limits *limits,
                                         int *port_out)
{
    for (int attempt = 0; attempt < 50; attempt++) {
        int port = 20000 + rand() % 10000;
        char addr[32];
        http_server *s = NULL;
        snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
        assert_int_equal(http_server_create(&s, addr, token), OMS_OK);
        add_routes(s);
        if (limits != NULL)
            assert_int_equal(http_server_limits(s, limits), OMS_OK);
        oms_status st = http_server_start(s);
        if (st == OMS_OK) {
            *port_out = port;
            return s;
        }
        assert_int_equal(st, OMS_EIO);
        http_server_destroy(s);
    }
    fail_msg("no free port in 20000-29999 after 50 attempts");
    return NULL;
}

static http_server *start_server(const char *token, int *port_out)
{
    return start_limited_server(token, NULL, port_out);
}

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    if (fx == NULL || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return -1;
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    fx->server = start_server(ADMIN_TOKEN, &fx->port);
    fx->server_without_token = start_server("", &fx->port_without_token);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    http_server_destroy(fx->server);
    http_server_destroy(fx->server_without_token);
    free(fx);
    curl_global_cleanup();
    return 0;
}

/* ---- client -------------------------------------------------------------- */

static size_t collect_body(char *data, size_t size, size_t nmemb, void *userdata)
{
    reply *r = userdata;
    size_t n = size * nmemb;
    char *body = realloc(r->body, r->body_len + n + 1);
    if (body == NULL)
        return 0;
    memcpy(body + r->body_len, data, n);
    r->body = body;
    r->body_len += n;
    r->body[r->body_len] = '\0';
    return n;
}

static size_t stream_upload(char *buffer, size_t size, size_t nitems, void *userdata)
{
    upload *u = userdata;
    size_t n = size * nitems < u->remaining_bytes ? size * nitems : u->remaining_bytes;
    memset(buffer, 'u', n);
    u->remaining_bytes -= n;
    return n;
}

static void copy_header(CURL *curl, const char *name, char *out, size_t out_size)
{
    struct curl_header *h = NULL;
    out[0] = '\0';
    if (curl_easy_header(curl, name, 0, CURLH_HEADER, -1, &h) == CURLHE_OK)
        snprintf(out, out_size, "%s", h->value);
}

typedef struct request_spec {
    const char *method;
    const char *path;
    const char *header; /* one extra request header, or NULL */
    const char *body;   /* sent with its length, or NULL */
    size_t body_len;
    upload *stream; /* sent chunked, or NULL */
} request_spec;

/* Performs the request against port and fills out; the caller frees out->body. */
static void call(int port, const request_spec *spec, reply *out)
{
    CURL *curl = curl_easy_init();
    struct curl_slist *headers = NULL;
    char url[512];
    assert_non_null(curl);
    memset(out, 0, sizeof *out);
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, spec->path);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, spec->method);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
    if (strcmp(spec->method, "HEAD") == 0)
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    if (spec->header != NULL)
        headers = curl_slist_append(headers, spec->header);
    if (spec->body != NULL) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, spec->body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)spec->body_len);
        headers = curl_slist_append(headers, "Content-Type: application/octet-stream");
    }
    if (spec->stream != NULL) {
        curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(curl, CURLOPT_READFUNCTION, stream_upload);
        curl_easy_setopt(curl, CURLOPT_READDATA, spec->stream);
        headers = curl_slist_append(headers, "Transfer-Encoding: chunked");
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    CURLcode rc = curl_easy_perform(curl);
    if (rc != CURLE_OK)
        fail_msg("%s %s: %s", spec->method, spec->path, curl_easy_strerror(rc));
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &out->status);
    curl_easy_getinfo(curl, CURLINFO_SIZE_UPLOAD_T, &out->uploaded_bytes);
    copy_header(curl, "Content-Type", out->content_type, sizeof out->content_type);
    copy_header(curl, "Allow", out->allow, sizeof out->allow);
    copy_header(curl, "WWW-Authenticate", out->www_authenticate, sizeof out->www_authenticate);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
}

/* Asserts status and exact body ("" for none), then frees the reply. */
static void expect(const reply *r, long status, const char *body)
{
    assert_int_equal(r->status, status);
    assert_string_equal(r->body ? r->body : "", body);
    free(r->body);
}

static void get(int port, const char *path, reply *out)
{
    request_spec spec = {.method = "GET", .path = path};
    call(port, &spec, out);
}

/* ---- tests --------------------------------------------------------------- */

static void test_get_with_query_and_header(void **state)
{
    fixture *fx = *state;
    reply r;
    get(fx->port, "/hello", &r);
    assert_string_equal(r.content_type, "application/json");
    expect(&r, 200, "{\"greeting\":\"hello world\",\"verbose\":false}");

    get(fx->port, "/hello?name=ada%20lovelace&verbose", &r);
    expect(&r, 200, "{\"greeting\":\"hello ada lovelace\",\"verbose\":true}");

    request_spec spec = {.method = "GET", .path = "/hello?name=bob", .header = "X-Client: t1"};
    call(fx->port, &spec, &r);
    expect(&r, 200, "{\"greeting\":\"hello bob\",\"verbose\":false,\"client\":\"t1\"}");
}

static void test_head_is_served_by_get_route(void **state)
{
    fixture *fx = *state;
    reply r;
    request_spec spec = {.method = "HEAD", .path = "/hello"};
    call(fx->port, &spec, &r);
    assert_string_equal(r.content_type, "application/json");
    expect(&r, 200, "");
}

static void test_path_params(void **state)
{
    fixture *fx = *state;
    reply r;
    get(fx->port, "/orders/ord-7/lines/3", &r);
    expect(&r, 200,
           "{\"order\":\"ord-7\",\"line\":\"3\",\"path\":\"/orders/ord-7/lines/3\","
           "\"third\":null}");
    /* "{}" matches exactly one non-empty segment. */
    get(fx->port, "/orders//lines/3", &r);
    expect(&r, 404, "{\"error\":\"no route for /orders//lines/3\"}");
    get(fx->port, "/orders/a/b/lines/3", &r);
    expect(&r, 404, "{\"error\":\"no route for /orders/a/b/lines/3\"}");
}

static void expect_get(int port, const char *path, long status, const char *body)
{
    reply r;
    get(port, path, &r);
    if (r.status != status || strcmp(r.body ? r.body : "", body) != 0)
        fprintf(stderr, "GET %s: %ld %s\n", path, r.status, r.body ? r.body : "");
    expect(&r, status, body);
}

static void test_typed_parameters(void **state)
{
    fixture *fx = *state;
    int p = fx->port;
    expect_get(p, "/items/42?tag=red&limit=5", 200, "{\"item\":42,\"tag\":\"red\",\"limit\":5}");
    expect_get(p, "/items/42", 200, "{\"item\":42,\"tag\":null,\"limit\":10}");
    expect_get(p, "/items/1000?tag=%C3%A9t%C3%A9", 200,
               "{\"item\":1000,\"tag\":\"\u00e9t\u00e9\",\"limit\":10}");
    expect_get(p, "/items/42?tag=", 200, "{\"item\":42,\"tag\":\"\",\"limit\":10}");
}

static void test_integer_parameters_refused(void **state)
{
    fixture *fx = *state;
    int p = fx->port;
    const char *item_err = "{\"error\":\"parameter item_id must be an integer from 1 to 1000\"}";
    const char *limit_err = "{\"error\":\"parameter limit must be an integer from 1 to 100\"}";
    expect_get(p, "/items/99999999999999999999", 400, item_err);
    expect_get(p, "/items/0", 400, item_err);
    expect_get(p, "/items/1001", 400, item_err);
    expect_get(p, "/items/7x", 400, item_err);
    expect_get(p, "/items/+7", 400, item_err);
    expect_get(p, "/items/%207", 400, item_err);
    expect_get(p, "/items/1?limit=99999999999999999999", 400, limit_err);
    expect_get(p, "/items/1?limit=-9223372036854775809", 400, limit_err);
    expect_get(p, "/items/1?limit=0", 400, limit_err);
    expect_get(p, "/items/1?limit=101", 400, limit_err);
    expect_get(p, "/items/1?limit=", 400, limit_err);
    expect_get(p, "/items/1?limit=1e2", 400, limit_err);
    expect_get(p, "/items/1?limit=100", 200, "{\"item\":1,\"tag\":null,\"limit\":100}");
}

static void test_text_parameters_refused(void **state)
{
    fixture *fx = *state;
    int p = fx->port;
    expect_get(p, "/items/%FF", 400, "{\"error\":\"parameter item_id is not valid UTF-8\"}");
    expect_get(p, "/items/a%00b", 400,
               "{\"error\":\"parameter item_id holds a control character\"}");
    expect_get(p, "/items/4%0A", 400,
               "{\"error\":\"parameter item_id holds a control character\"}");
    expect_get(p, "/items/1?tag=%FF", 400, "{\"error\":\"parameter tag is not valid UTF-8\"}");
    /* An overlong '/' and a UTF-16 surrogate are not UTF-8 either. */
    expect_get(p, "/items/1?tag=%C0%AF", 400, "{\"error\":\"parameter tag is not valid UTF-8\"}");
    expect_get(p, "/items/1?tag=%ED%A0%80", 400,
               "{\"error\":\"parameter tag is not valid UTF-8\"}");
    expect_get(p, "/items/1?tag=a%00b", 400,
               "{\"error\":\"parameter tag holds a control character\"}");
    expect_get(p, "/items/1?tag=a%7Fb", 400,
               "{\"error\":\"parameter tag holds a control character\"}");
    expect_get(p, "/items/1?tag=ninebytes", 400,
               "{\"error\":\"parameter tag is longer than 8 bytes\"}");
    expect_get(p, "/items/1?limit=%FF", 400, "{\"error\":\"parameter limit is not valid UTF-8\"}");
}

static void test_path_checks(void **state)
{
    fixture *fx = *state;
    int p = fx->port;
    /* Checked before any handler runs, also for unnamed "{}" segments. */
    expect_get(p, "/orders/%FF/lines/3", 400, "{\"error\":\"parameter #1 is not valid UTF-8\"}");
    expect_get(p, "/orders/o1/lines/3%00", 400,
               "{\"error\":\"parameter #2 holds a control character\"}");
    expect_get(p, "/nowhere%00x", 400,
               "{\"error\":\"the path holds a control character (such as %00)\"}");
    expect_get(p, "/hello%00", 400,
               "{\"error\":\"the path holds a control character (such as %00)\"}");
    assert_true(http_text_ok("order-7", 7));
    assert_true(http_text_ok("\xc3\xa9", 2));
    assert_false(http_text_ok("a\x01", 2));
    assert_false(http_text_ok("a\0b", 3));
    assert_false(http_text_ok("\xff", 1));
    assert_false(http_text_ok("\xc3", 1)); /* a sequence cut short */
}

/* The idle timeout (30 s) never fires for a client that keeps trickling its
 * head; the header deadline does, and the per-IP cap refuses the excess. */
static void test_slow_head_is_cut_at_the_deadline(void **state)
{
    (void)state;
    http_limits limits = {.max_connections = 16, .max_per_ip = 3, .header_timeout_ms = 600};
    int port = 0, fds[4];
    int64_t closed_at[3] = {0, 0, 0};
    http_server *s = start_limited_server(NULL, &limits, &port);
    int64_t start = oms_mono_ms();
    for (int i = 0; i < 4; i++)
        fds[i] = testenv_connect_raw(port);
    /* The fourth from 127.0.0.1 is over the per-IP cap: closed at once. */
    for (int i = 0; i < 20 && !testenv_closed_by_server(fds[3]); i++)
        usleep(25000);
    assert_true(oms_mono_ms() - start < 600);
    for (int i = 0; i < 3; i++)
        assert_int_equal(send(fds[i], "GET /hello HTTP/1.1\r\n", 21, MSG_NOSIGNAL), 21);
    for (int64_t t = oms_mono_ms(); t - start < 3000; t = oms_mono_ms()) {
        for (int i = 0; i < 3; i++) {
            if (closed_at[i] == 0 && testenv_closed_by_server(fds[i]))
                closed_at[i] = t - start;
            else if (closed_at[i] == 0)
                send(fds[i], "X", 1, MSG_NOSIGNAL); /* one header byte at a time */
        }
        usleep(50000);
    }
    for (int i = 0; i < 3; i++) {
        if (closed_at[i] < 600 || closed_at[i] > 1200)
            fprintf(stderr, "connection %d closed at %lld ms\n", i, (long long)closed_at[i]);
        assert_true(closed_at[i] >= 600 && closed_at[i] <= 1200);
        close(fds[i]);
    }
    close(fds[3]);
    /* The slots are free again, and a prompt request is served. */
    expect_get(port, "/hello", 200, "{\"greeting\":\"hello world\",\"verbose\":false}");
    http_server_destroy(s);
}

static void test_post_body_echo(void **state)
{
    fixture *fx = *state;
    reply r;
    request_spec spec = {.method = "POST", .path = "/echo", .body = "hello\0body", .body_len = 10};
    call(fx->port, &spec, &r);
    assert_string_equal(r.content_type, "application/octet-stream");
    assert_int_equal(r.body_len, 10);
    assert_memory_equal(r.body, "hello\0body", 10);
    free(r.body);

    spec.body = "";
    spec.body_len = 0;
    call(fx->port, &spec, &r);
    expect(&r, 200, "");
}

/* 3 MiB arrives in many upload callbacks; every byte must come back in order. */
static void test_large_body_accumulates(void **state)
{
    fixture *fx = *state;
    size_t len = 3 * 1024 * 1024 + 17;
    char *body = malloc(len);
    assert_non_null(body);
    for (size_t i = 0; i < len; i++)
        body[i] = (char)('a' + (i * 7 + i / 4096) % 26);
    reply r;
    request_spec spec = {.method = "POST", .path = "/echo", .body = body, .body_len = len};
    call(fx->port, &spec, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, len);
    assert_memory_equal(r.body, body, len);
    free(r.body);
    free(body);
}

static void test_not_found_and_method_not_allowed(void **state)
{
    fixture *fx = *state;
    reply r;
    get(fx->port, "/nope", &r);
    assert_string_equal(r.content_type, "application/json");
    expect(&r, 404, "{\"error\":\"no route for /nope\"}");
    get(fx->port, "/hello/", &r);
    expect(&r, 404, "{\"error\":\"no route for /hello/\"}");
    /* The decoded path is not UTF-8, so it cannot go into the JSON message. */
    get(fx->port, "/%ff", &r);
    expect(&r, 404, "{\"error\":\"invalid request\"}");

    request_spec spec = {.method = "DELETE", .path = "/hello"};
    call(fx->port, &spec, &r);
    assert_string_equal(r.allow, "GET");
    expect(&r, 405, "{\"error\":\"DELETE is not allowed on /hello; allowed: GET\"}");

    spec = (request_spec){.method = "GET", .path = "/size"};
    call(fx->port, &spec, &r);
    assert_string_equal(r.allow, "PUT, POST");
    expect(&r, 405, "{\"error\":\"GET is not allowed on /size; allowed: PUT, POST\"}");

    /* A refused request's body is read and dropped, and the answer still arrives. */
    spec = (request_spec){.method = "POST", .path = "/hello", .body = "x", .body_len = 1};
    call(fx->port, &spec, &r);
    expect(&r, 405, "{\"error\":\"POST is not allowed on /hello; allowed: GET\"}");
}

static void test_auth(void **state)
{
    fixture *fx = *state;
    reply r;
    const char *path = "/admin/dead-letters/42/retry";
    retry_calls = 0;

    request_spec spec = {.method = "POST", .path = path, .body = "{}", .body_len = 2};
    call(fx->port, &spec, &r);
    assert_string_equal(r.www_authenticate, "Bearer");
    expect(&r, 401, "{\"error\":\"missing \\\"Authorization: Bearer <admin token>\\\" header\"}");

    spec.header = "Authorization: Basic " ADMIN_TOKEN;
    call(fx->port, &spec, &r);
    expect(&r, 401, "{\"error\":\"missing \\\"Authorization: Bearer <admin token>\\\" header\"}");

    spec.header = "Authorization: Bearer wrong-token";
    call(fx->port, &spec, &r);
    assert_string_equal(r.www_authenticate, "Bearer error=\"invalid_token\"");
    expect(&r, 401, "{\"error\":\"invalid admin token\"}");

    spec.header = "Authorization: Bearer " ADMIN_TOKEN "x";
    call(fx->port, &spec, &r);
    expect(&r, 401, "{\"error\":\"invalid admin token\"}");
    assert_int_equal(retry_calls, 0);

    spec.header = "Authorization: Bearer " ADMIN_TOKEN;
    call(fx->port, &spec, &r);
    assert_string_equal(r.www_authenticate, "");
    expect(&r, 200, "{\"retried\":\"42\"}");

    spec.header = "Authorization: bearer " ADMIN_TOKEN; /* the scheme is case-insensitive */
    call(fx->port, &spec, &r);
    expect(&r, 200, "{\"retried\":\"42\"}");
    assert_int_equal(retry_calls, 2);
}

static void test_auth_without_configured_token(void **state)
{
    fixture *fx = *state;
    reply r;
    retry_calls = 0;
    request_spec spec = {.method = "POST",
                         .path = "/admin/dead-letters/42/retry",
                         .header = "Authorization: Bearer "};
    call(fx->port_without_token, &spec, &r);
    expect(&r, 401,
           "{\"error\":\"admin endpoints are disabled: the server has no admin token "
           "(set OMS_ADMIN_TOKEN)\"}");
    assert_int_equal(retry_calls, 0);
    /* Routes without auth are unaffected. */
    get(fx->port_without_token, "/hello", &r);
    expect(&r, 200, "{\"greeting\":\"hello world\",\"verbose\":false}");
}

static void test_body_limit(void **state)
{
    fixture *fx = *state;
    reply r;
    char *body = calloc(1, BODY_MAX_BYTES + 1);
    assert_non_null(body);

    request_spec spec = {.method = "PUT",
                         .path = "/size",
                         .body = body,
                         .body_len = BODY_MAX_BYTES};
    call(fx->port, &spec, &r);
    expect(&r, 200, "{\"method\":\"PUT\",\"bytes\":8388608}");

    /* Announced by Content-Length: refused before the body is sent (curl
     * waits for "100 Continue" on large bodies and gets the 413 instead). */
    spec.body_len = BODY_MAX_BYTES + 1;
    call(fx->port, &spec, &r);
    assert_int_equal(r.uploaded_bytes, 0);
    expect(&r, 413, "{\"error\":\"request body is larger than 8388608 bytes\"}");
    free(body);

    /* Chunked: no length up front, refused once the limit is crossed. */
    upload u = {.remaining_bytes = BODY_MAX_BYTES + 1};
    spec = (request_spec){.method = "POST", .path = "/size", .stream = &u};
    call(fx->port, &spec, &r);
    expect(&r, 413, "{\"error\":\"request body is larger than 8388608 bytes\"}");
    assert_int_equal(u.remaining_bytes, 0);

    u.remaining_bytes = 5000;
    call(fx->port, &spec, &r);
    expect(&r, 200, "{\"method\":\"POST\",\"bytes\":5000}");
}

static void test_handler_defaults_and_bad_status(void **state)
{
    fixture *fx = *state;
    reply r;
    get(fx->port, "/empty", &r);
    assert_string_equal(r.content_type, "application/json");
    expect(&r, 200, "");

    get(fx->port, "/bad-status", &r);
    assert_string_equal(r.content_type, "application/json");
    expect(&r, 500, "{\"error\":\"internal error: handler answered invalid status 42\"}");

    get(fx->port, "/teapot?drink=coffee", &r);
    expect(&r, 418, "{\"error\":\"cannot brew coffee (2 cups)\"}");
}

static void test_create_and_route_validation(void **state)
{
    fixture *fx = *state;
    http_server *s = NULL;
    const char *bad_addrs[] = {"",
                               "127.0.0.1",
                               "127.0.0.1:",
                               "127.0.0.1:0",
                               "127.0.0.1:65536",
                               "127.0.0.1:80x",
                               "example.com:80",
                               "[::1]:80",
                               "1.2.3:80"};
    for (size_t i = 0; i < sizeof bad_addrs / sizeof bad_addrs[0]; i++) {
        assert_int_equal(http_server_create(&s, bad_addrs[i], NULL), OMS_EINVAL);
        assert_null(s);
    }
    assert_int_equal(http_server_create(&s, "localhost:1", NULL), OMS_OK);
    http_server_destroy(s);
    assert_int_equal(http_server_create(&s, ":1", ADMIN_TOKEN), OMS_OK);
    assert_int_equal(http_route(s, "GET", "/a/{}", false, on_empty, NULL), OMS_OK);
    assert_int_equal(http_route(s, "GET", "/a/{}", false, on_empty, NULL), OMS_EINVAL);
    assert_int_equal(http_route(s, "POST", "/a/{}", false, on_empty, NULL), OMS_OK);
    assert_int_equal(http_route(s, "GET", "a", false, on_empty, NULL), OMS_EINVAL);
    assert_int_equal(http_route(s, "GET", "/b", false, NULL, NULL), OMS_EINVAL);
    http_server_destroy(s);
    http_server_destroy(NULL);

    /* The fixture's port is taken. */
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", fx->port);
    assert_int_equal(http_server_create(&s, addr, NULL), OMS_OK);
    assert_int_equal(http_server_start(s), OMS_EIO);
    http_server_destroy(s);

    /* Routes are fixed once serving. */
    assert_int_equal(http_route(fx->server, "GET", "/late", false, on_empty, NULL), OMS_EINVAL);
}

static void test_respond_helpers_replace_body(void **state)
{
    (void)state;
    http_response resp = {.status = 200, .content_type = "application/json"};
    http_respond_text(&resp, 200, "text/plain", "first");
    http_respond_error(&resp, 400, "field %s: expected %d digits", "\"sku\"", 3);
    assert_int_equal(resp.status, 400);
    assert_string_equal(resp.content_type, "application/json");
    assert_string_equal(resp.body, "{\"error\":\"field \\\"sku\\\": expected 3 digits\"}");
    assert_int_equal(resp.body_len, strlen(resp.body));
    http_respond_json(&resp, 201, json_pack("{s:i}", "n", 1));
    assert_int_equal(resp.status, 201);
    assert_string_equal(resp.body, "{\"n\":1}");
    /* A failed json_pack (NULL) becomes a 500, not a crash. */
    http_respond_json(&resp, 200, NULL);
    assert_int_equal(resp.status, 500);
    assert_string_equal(resp.body, "{\"error\":\"internal error: no JSON to send\"}");
    free(resp.body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_with_query_and_header),
        cmocka_unit_test(test_head_is_served_by_get_route),
        cmocka_unit_test(test_path_params),
        cmocka_unit_test(test_typed_parameters),
        cmocka_unit_test(test_integer_parameters_refused),
        cmocka_unit_test(test_text_parameters_refused),
        cmocka_unit_test(test_path_checks),
        cmocka_unit_test(test_slow_head_is_cut_at_the_deadline),
        cmocka_unit_test(test_post_body_echo),
        cmocka_unit_test(test_large_body_accumulates),
        cmocka_unit_test(test_not_found_and_method_not_allowed),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_auth_without_configured_token),
        cmocka_unit_test(test_body_limit),
        cmocka_unit_test(test_handler_defaults_and_bad_status),
        cmocka_unit_test(test_create_and_route_validation),
        cmocka_unit_test(test_respond_helpers_replace_body),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
