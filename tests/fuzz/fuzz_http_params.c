/*
 * fuzz_http_params.c - request targets through lib/http.c: route matching,
 * path parameters and query parameters (libmicrohttpd's URL decoding), the
 * bearer check, and the parameter checks the services' GET and POST
 * handlers make before they touch a database.
 *
 * http.c matches routes inside libmicrohttpd's callbacks, so this target runs
 * a real server on a free loopback port with every route the services
 * register (same method, pattern and token rule), each answered by one probe
 * handler, and sends each input as one request over a socket.
 *
 * Input: byte 0 picks the method, byte 1 the Authorization header (none,
 * right token, wrong token), then the request target up to a newline, then
 * the body.
 *
 * Properties: every answer is one the server documents (200 from a handler,
 * 400 from a handler's checks or libmicrohttpd, 401, 404, 405, 413, 414,
 * 431), never a 5xx; a handler sees exactly as many path parameters as its
 * pattern has "{}", each non-empty and without '/'; a 200 comes only from a
 * handler.
 */
#include "fuzz.h"

#include "analytics.h"
#include "http.h"
#include "notify.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define TOKEN "fuzz-admin-token"
#define TARGET_MAX 8192
#define ANSWER_MAX 65536

typedef struct probe_route {
    const char *method, *pattern;
    bool needs_auth;
    size_t params; /* "{}" segments */
} probe_route;

/* The services' routes (lib/service.c, service_dlq.c, services/<name>/<name>_http.c). */
static const probe_route ROUTES[] = {
    {"GET", "/healthz", false, 0},
    {"GET", "/readyz", false, 0},
    {"GET", "/metrics", false, 0},
    {"GET", "/dead-letters", false, 0},
    {"POST", "/dead-letters/{}/retry", true, 1},
    {"GET", "/orders/{}", false, 1},
    {"GET", "/products", false, 0},
    {"GET", "/products/{}", false, 1},
    {"GET", "/payments/{}", false, 1},
    {"POST", "/callbacks/payment", false, 0},
    {"GET", "/notifications", false, 0},
    {"POST", "/notifications/retry", true, 0},
    {"POST", "/refunds", true, 0},
    {"GET", "/refunds", false, 0},
    {"GET", "/kpi", false, 0},
    {"GET", "/kpi/{}", false, 1},
    {"POST", "/kpi/snapshot", true, 0},
    {"GET", "/leaderboard", false, 0},
};
#define N_ROUTES (sizeof ROUTES / sizeof ROUTES[0])

static const char *const METHODS[] = {"GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS"};

static http_server *server;
static int server_port;
static atomic_int handled; /* requests that reached a handler */

/* "limit" as dead-letters, notifications and the leaderboard read it. */
static bool limit_ok(const char *v, long max)
{
    char *end = NULL;
    long n = strtol(v, &end, 10);
    return *v != '\0' && *end == '\0' && n >= 1 && n <= max;
}

/* The query checks of the services' handlers; false names the bad one. */
static bool query_ok(const http_request *req, const char **bad)
{
    static const char *const dates[] = {"from", "to", "date"};
    const char *v;
    int64_t day;
    notify_channel channel;
    for (size_t i = 0; i < sizeof dates / sizeof dates[0]; i++)
        if ((v = http_query(req, dates[i])) != NULL && analytics_day_parse(v, &day) != OMS_OK)
            return *bad = dates[i], false;
    if ((v = http_query(req, "limit")) != NULL && !limit_ok(v, 10000))
        return *bad = "limit", false;
    if ((v = http_query(req, "period")) != NULL && strcmp(v, "all") != 0 &&
        !analytics_month_valid(v))
        return *bad = "period", false;
    if ((v = http_query(req, "channel")) != NULL && !notify_channel_parse(v, strlen(v), &channel))
        return *bad = "channel", false;
    if ((v = http_query(req, "order_id")) != NULL && strlen(v) > NOTIFY_ID_MAX)
        return *bad = "order_id", false;
    return true;
}

static void probe(void *ctx, const http_request *req, http_response *resp)
{
    const probe_route *route = ctx;
    const char *bad = NULL;
    atomic_fetch_add(&handled, 1);
    FUZZ_CHECK(strcmp(http_method(req), route->method) == 0 ||
               (strcmp(http_method(req), "HEAD") == 0 && strcmp(route->method, "GET") == 0));
    for (size_t i = 0; i < route->params; i++) {
        const char *p = http_path_param(req, i);
        FUZZ_CHECK(p != NULL && *p != '\0' && strchr(p, '/') == NULL);
    }
    FUZZ_CHECK(http_path_param(req, route->params) == NULL);
    size_t len = 0;
    const char *body = http_body(req, &len);
    FUZZ_CHECK(body != NULL && body[len] == '\0');
    if (route->params > 0 && strcmp(route->pattern, "/kpi/{}") == 0) {
        int64_t day;
        const char *date = http_path_param(req, 0);
        if (strcmp(date, "today") != 0 && analytics_day_parse(date, &day) != OMS_OK) {
            http_respond_error(resp, 400, "date \"%s\" is invalid", date);
            return;
        }
    }
    if (!query_ok(req, &bad)) {
        /* Echoes the raw value, as the services do: it may be any bytes. */
        http_respond_error(resp, 400, "parameter %s=\"%s\" is invalid", bad, http_query(req, bad));
        return;
    }
    http_respond_json(resp, 200, json_pack("{s:s}", "route", route->pattern));
}

static int free_port(void)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0 &&
        getsockname(fd, (struct sockaddr *)&addr, &len) == 0)
        port = ntohs(addr.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static bool server_start(void)
{
    char addr[32];
    int port = free_port();
    if (port <= 0)
        return false;
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    if (http_server_create(&server, addr, TOKEN) != OMS_OK)
        return false;
    for (size_t i = 0; i < N_ROUTES; i++)
        FUZZ_CHECK(http_route(server, ROUTES[i].method, ROUTES[i].pattern, ROUTES[i].needs_auth,
                              probe, (void *)&ROUTES[i]) == OMS_OK);
    if (http_server_start(server) != OMS_OK) {
        http_server_destroy(server);
        server = NULL;
        return false;
    }
    server_port = port;
    return true;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* Another process may take the free port between the probe and the bind. */
    for (int attempt = 0; attempt < 10 && server == NULL; attempt++)
        server_start();
    if (server == NULL) {
        fprintf(stderr, "fuzz_http_params: cannot start the HTTP server\n");
        abort();
    }
    return 0;
}

static bool send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return false;
        p += w, n -= (size_t)w;
    }
    return true;
}

/* Sends one request and returns the answer's status, or 0 for none. */
static int exchange(const char *request, size_t len)
{
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)server_port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {.tv_sec = 10};
    static char answer[ANSWER_MAX];
    size_t got = 0;
    int status = 0, fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0 && send_all(fd, request, len)) {
        shutdown(fd, SHUT_WR);
        for (ssize_t r; got < sizeof answer - 1 &&
                        (r = recv(fd, answer + got, sizeof answer - 1 - got, 0)) > 0;)
            got += (size_t)r;
    }
    close(fd);
    answer[got] = '\0';
    if (sscanf(answer, "HTTP/1.%*d %d", &status) != 1)
        status = 0;
    return status;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    const char *method = METHODS[data[0] % (sizeof METHODS / sizeof METHODS[0])];
    const char *auth = data[1] % 3 == 1   ? "Authorization: Bearer " TOKEN "\r\n"
                       : data[1] % 3 == 2 ? "Authorization: Bearer wrong\r\n"
                                          : "";
    const uint8_t *rest = data + 2, *nl = memchr(rest, '\n', size - 2);
    size_t target_len = nl ? (size_t)(nl - rest) : size - 2;
    const uint8_t *body = nl ? nl + 1 : rest + target_len;
    size_t body_len = size - 2 - target_len - (nl ? 1 : 0);
    if (target_len == 0 || target_len > TARGET_MAX)
        return 0;

    char *request = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&request, &len);
    if (f == NULL)
        return 0;
    fprintf(f,
            "%s %.*s HTTP/1.1\r\nHost: fuzz\r\n%sContent-Length: %zu\r\nConnection: close\r\n\r\n",
            method, (int)target_len, (const char *)rest, auth, body_len);
    fwrite(body, 1, body_len, f);
    if (fclose(f) != 0) {
        free(request);
        return 0;
    }
    int before = atomic_load(&handled);
    int status = exchange(request, len);
    int after = atomic_load(&handled);
    free(request);

    FUZZ_CHECK(status == 0 || status == 200 || status == 400 || status == 401 || status == 404 ||
               status == 405 || status == 413 || status == 414 || status == 431);
    if (status == 200)
        FUZZ_CHECK(after > before);
    return 0;
}
