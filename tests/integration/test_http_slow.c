/*
 * test_http_slow.c - hostile HTTP clients against real service processes:
 * slow request heads cut at the header deadline while the health listener
 * keeps answering, the per-IP cap, a slow PostgreSQL query that holds one
 * pooled connection and not the others, and parameters refused with 400.
 */
#include "testenv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define INGEST_PORT 19870
#define REFUND_PORT 19871
#define HEALTH_PORT 19970
#define HEALTH_ENV "OMS_HEALTH_ADDR=127.0.0.1:19970"
#define SLOW_CLIENTS 70
#define PER_IP 64
#define HEADER_TIMEOUT_MS 3000

static const char *const SCHEMAS[] = {"ingest", "refund", NULL};

static int count_closed(const int *fds, const int64_t *closed_at, int n)
{
    int closed = 0;
    for (int i = 0; i < n; i++)
        closed += closed_at[i] != 0 || testenv_closed_by_server(fds[i]);
    return closed;
}

/* GETs path and asserts the status and the exact body. */
static void expect_http(const char *method, int port, const char *path, const char *token,
                        long status, const char *want)
{
    char *body = NULL;
    long got = testenv_http(method, port, path, token, &body);
    if (got != status || strcmp(body, want) != 0)
        fprintf(stderr, "%s %s: %ld %s\n", method, path, got, body);
    assert_int_equal(got, status);
    assert_string_equal(body, want);
    free(body);
}

/* GETs path on port and returns how long the answer took; asserts 200. */
static int64_t timed_get_ok(int port, const char *path)
{
    int64_t start = oms_mono_ms();
    assert_int_equal(testenv_http("GET", port, path, NULL, NULL), 200);
    return oms_mono_ms() - start;
}

static void test_slow_heads_are_cut_and_health_answers(void **state)
{
    (void)state;
    static const char *const env[] = {"OMS_HTTP_MAX_PER_IP=64", "OMS_HTTP_MAX_CONNECTIONS=100",
                                      "OMS_HTTP_HEADER_TIMEOUT_MS=3000", HEALTH_ENV, NULL};
    int fds[SLOW_CLIENTS];
    int64_t closed_at[SLOW_CLIENTS] = {0};
    testenv_reset(SCHEMAS);
    pid_t ingest = testenv_service_start("ingest", INGEST_PORT, env);
    int health = HEALTH_PORT;

    int64_t start = oms_mono_ms();
    for (int i = 0; i < SLOW_CLIENTS; i++)
        fds[i] = testenv_connect_raw(INGEST_PORT);
    /* 64 from 127.0.0.1 are held, the other 6 closed at once. */
    while (count_closed(fds, closed_at, SLOW_CLIENTS) < SLOW_CLIENTS - PER_IP &&
           oms_mono_ms() - start < 1000)
        usleep(20000);
    for (int i = 0; i < SLOW_CLIENTS; i++)
        if (testenv_closed_by_server(fds[i]))
            closed_at[i] = -1; /* refused by the per-IP cap */
    assert_int_equal(count_closed(fds, closed_at, SLOW_CLIENTS), SLOW_CLIENTS - PER_IP);
    for (int i = 0; i < SLOW_CLIENTS; i++)
        if (closed_at[i] == 0)
            assert_int_equal(send(fds[i], "GET /healthz HTTP/1.1\r\n", 23, MSG_NOSIGNAL), 23);

    /* The main port is full for this IP; the health listener is not. */
    assert_int_equal(testenv_http("GET", INGEST_PORT, "/healthz", NULL, NULL), 0);
    assert_true(timed_get_ok(health, "/healthz") < 1000);
    assert_true(timed_get_ok(health, "/readyz") < 1000);
    expect_http("GET", health, "/healthz", NULL, 200, "{\"status\":\"ok\"}");
    expect_http("GET", health, "/dead-letters", NULL, 404,
                "{\"error\":\"no route for /dead-letters\"}");

    /* One header byte every 500 ms: idle never, so only the deadline cuts. */
    int open = PER_IP;
    while (open > 0 && oms_mono_ms() - start < HEADER_TIMEOUT_MS + 3000) {
        for (int i = 0; i < SLOW_CLIENTS; i++) {
            if (closed_at[i] != 0)
                continue;
            if (testenv_closed_by_server(fds[i])) {
                closed_at[i] = oms_mono_ms() - start;
                open--;
            } else {
                send(fds[i], "X", 1, MSG_NOSIGNAL);
            }
        }
        usleep(500000);
    }
    assert_int_equal(open, 0);
    for (int i = 0; i < SLOW_CLIENTS; i++) {
        if (closed_at[i] > 0 && closed_at[i] < HEADER_TIMEOUT_MS)
            fprintf(stderr, "slow client %d cut early, at %lld ms\n", i, (long long)closed_at[i]);
        assert_true(closed_at[i] == -1 || closed_at[i] >= HEADER_TIMEOUT_MS);
        close(fds[i]);
    }
    expect_http("GET", INGEST_PORT, "/healthz", NULL, 200, "{\"status\":\"ok\"}");
    testenv_service_stop(ingest);
}

/* ---- the pool ------------------------------------------------------- */

typedef struct pending_get {
    pthread_t thread;
    const char *path;
    long status;
    char *body;
} pending_get;

static void *pending_get_main(void *arg)
{
    pending_get *g = arg;
    g->status = testenv_http("GET", INGEST_PORT, g->path, NULL, &g->body);
    return NULL;
}

static void pending_get_start(pending_get *g, const char *path)
{
    g->path = path;
    g->body = NULL;
    assert_int_equal(pthread_create(&g->thread, NULL, pending_get_main, g), 0);
}

static void pending_get_expect(pending_get *g, long status, const char *want)
{
    pthread_join(g->thread, NULL);
    assert_int_equal(g->status, status);
    assert_string_equal(g->body, want);
    free(g->body);
}

static void exec_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        fprintf(stderr, "%s: %s\n", sql, PQerrorMessage(c));
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
}

static void test_slow_query_holds_one_pooled_connection(void **state)
{
    (void)state;
    static const char *const env[] = {"OMS_HTTP_PG_POOL=2", HEALTH_ENV, NULL};
    pending_get a, b;
    testenv_reset(SCHEMAS);
    pid_t ingest = testenv_service_start("ingest", INGEST_PORT, env);
    PGconn *pg = testenv_pg();
    /* Orders locked: GET /orders/{id} waits on PostgreSQL as a slow query would. */
    exec_ok(pg, "BEGIN");
    exec_ok(pg, "LOCK TABLE ingest.orders IN ACCESS EXCLUSIVE MODE");
    pending_get_start(&a, "/orders/SLOW-A");
    usleep(300000);
    assert_true(timed_get_ok(INGEST_PORT, "/dead-letters") < 1000);

    pending_get_start(&b, "/orders/SLOW-B");
    usleep(300000);
    /* Both pooled connections wait: the next handler is told so after 2 s. */
    int64_t t0 = oms_mono_ms();
    expect_http("GET", INGEST_PORT, "/dead-letters", NULL, 503,
                "{\"error\":\"all 2 PostgreSQL connections for HTTP requests are busy "
                "(OMS_HTTP_PG_POOL); retry later\"}");
    assert_true(oms_mono_ms() - t0 >= 1900);
    /* Health checks never need the pool. */
    assert_true(timed_get_ok(INGEST_PORT, "/readyz") < 1000);
    assert_true(timed_get_ok(HEALTH_PORT, "/readyz") < 1000);

    exec_ok(pg, "COMMIT");
    pending_get_expect(&a, 404, "{\"error\":\"no order SLOW-A\"}");
    pending_get_expect(&b, 404, "{\"error\":\"no order SLOW-B\"}");
    expect_http("GET", INGEST_PORT, "/dead-letters", NULL, 200,
                "{\"service\":\"ingest\",\"dead_letters\":[]}");
    PQfinish(pg);
    testenv_service_stop(ingest);
}

/* ---- parameters ------------------------------------------------------- */

static void test_bad_parameters_answer_400(void **state)
{
    (void)state;
    const char *token = testenv_require("OMS_ADMIN_TOKEN");
    testenv_reset(SCHEMAS);
    pid_t ingest = testenv_service_start("ingest", INGEST_PORT, NULL);
    pid_t refund = testenv_service_start("refund", REFUND_PORT, NULL);

    expect_http("GET", INGEST_PORT, "/orders/a%00b", NULL, 400,
                "{\"error\":\"parameter order_id holds a control character\"}");
    expect_http("GET", INGEST_PORT, "/orders/%FF", NULL, 400,
                "{\"error\":\"parameter order_id is not valid UTF-8\"}");
    expect_http("GET", INGEST_PORT, "/orders/a", NULL, 404, "{\"error\":\"no order a\"}");
    expect_http("POST", INGEST_PORT, "/dead-letters/99999999999999999999/retry", token, 400,
                "{\"error\":\"parameter id must be an integer from 1 to 9223372036854775807\"}");
    /* Auth comes first: without the token nothing is said about the id. */
    char *body = NULL;
    assert_int_equal(testenv_http("POST", INGEST_PORT, "/dead-letters/99999999999999999999/retry",
                                  NULL, &body),
                     401);
    free(body);
    expect_http("POST", INGEST_PORT, "/dead-letters/9223372036854775807/retry", token, 404,
                "{\"error\":\"no open dead letter with id 9223372036854775807\"}");
    expect_http("GET", INGEST_PORT, "/dead-letters?limit=99999999999999999999", NULL, 400,
                "{\"error\":\"parameter limit must be an integer from 1 to 10000\"}");
    expect_http("GET", INGEST_PORT, "/dead-letters?state=%FF", NULL, 400,
                "{\"error\":\"parameter state is not valid UTF-8\"}");

    expect_http("GET", REFUND_PORT, "/refunds?key=%FF", NULL, 400,
                "{\"error\":\"parameter key is not valid UTF-8\"}");
    expect_http("GET", REFUND_PORT, "/refunds?order_id=a%00b", NULL, 400,
                "{\"error\":\"parameter order_id holds a control character\"}");
    expect_http("GET", REFUND_PORT, "/dead-letters/0/retry", token, 405,
                "{\"error\":\"GET is not allowed on /dead-letters/0/retry; allowed: POST\"}");
    testenv_service_stop(refund);
    testenv_service_stop(ingest);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_slow_heads_are_cut_and_health_answers, testenv_cleanup),
        cmocka_unit_test_teardown(test_slow_query_holds_one_pooled_connection, testenv_cleanup),
        cmocka_unit_test_teardown(test_bad_parameters_answer_400, testenv_cleanup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
