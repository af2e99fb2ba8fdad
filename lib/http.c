/*
 * http.c - the small HTTP server of http.h, on libmicrohttpd.
 *
 * Design: one thread per connection, because admin and query handlers may wait
 * on PostgreSQL and a slow one must not stall /health or /metrics; a
 * connection cap, a per-IP cap and an idle timeout bound the threads.
 *
 * libmicrohttpd only has an idle timeout, which a client sending one header
 * byte every few seconds never reaches. So every connection is tracked from
 * MHD's connection notification with the time its current request head
 * started (connect, or the end of the previous request on a kept-alive
 * connection); the first request callback marks the head complete, and a
 * watchdog thread shuts down the socket of any connection whose head is
 * still incomplete at the header deadline. MHD then sees end-of-stream and
 * closes the connection on its own thread. The socket is shut down only
 * under the lock that MHD's close notification also takes, and MHD closes
 * the descriptor only after that notification, so the watchdog never
 * touches a descriptor that was closed and reused.
 *
 * Path and query parameters are decoded by MHD; a decoded %00 would cut a
 * C string short ("/orders/a%00b" read as order "a"), so the unescape
 * callback turns it into DEL, a control character that the parameter
 * checks refuse with 400.
 *
 * A request's state is its http_request, kept in MHD's per-request con_cls:
 * allocated on the first callback (headers only), fed the body by the upload
 * callbacks, dispatched on the last callback, and freed by the completion
 * callback, which MHD calls for every request that reached the first callback,
 * however it ended (served, aborted, daemon shutdown).
 *
 * Route and token are checked on the first callback, so a refused request's
 * body is read and thrown away, never buffered. Its answer is still sent only
 * after the body is read, because answering early makes MHD close the socket
 * with unread data and the client may then see a reset instead of the answer;
 * only a body announced as too large is refused at once (clients that sent
 * "Expect: 100-continue", as curl does for large bodies, never send it).
 */
#include "http.h"

#include "log.h"
#include "utf8.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#define HTTP_BODY_MAX_BYTES ((size_t)8 * 1024 * 1024)
#define HTTP_MAX_SEGMENTS 32
#define HTTP_IDLE_TIMEOUT_S 30
#define HTTP_WATCHDOG_PERIOD_MS 100
#define HTTP_BEARER_PREFIX "Bearer "
#define HTTP_NUL_STANDIN '\x7f' /* what a decoded %00 becomes: see the top */

/* One open connection, from MHD's STARTED notification to its CLOSED one. */
typedef struct http_conn {
    struct http_conn *prev, *next;
    int fd;
    int64_t head_started_ms; /* guarded by the server's conn_lock, as is the rest */
    bool head_done;
    bool cut;
} http_conn;

typedef struct http_route_entry {
    char *method;
    char *pattern;                           /* split in place into segments */
    const char *segments[HTTP_MAX_SEGMENTS]; /* "{}" matches any non-empty one */
    size_t n_segments;
    bool needs_auth;
    http_handler fn;
    void *ctx;
} http_route_entry;

struct http_server {
    struct MHD_Daemon *daemon;
    struct sockaddr_in bind_addr;
    char *addr;        /* as given, for logs */
    char *admin_token; /* NULL: every needs_auth route answers 401 */
    http_route_entry *routes;
    size_t n_routes, cap_routes;
    http_limits limits;
    pthread_mutex_t conn_lock;
    pthread_cond_t watchdog_wake;
    http_conn *conns; /* open connections, newest first */
    pthread_t watchdog;
    bool watchdog_running;
    bool stopping; /* guarded by conn_lock */
};

struct http_request {
    const http_server *server;
    struct MHD_Connection *conn;
    const char *method; /* owned by MHD, live until the completion callback */
    const char *path;
    char *path_copy; /* split in place into segments */
    const char *segments[HTTP_MAX_SEGMENTS];
    size_t n_segments;
    const char *params[HTTP_MAX_SEGMENTS];
    const char *param_patterns[HTTP_MAX_SEGMENTS]; /* "{name}" of each param */
    size_t n_params;
    const http_route_entry *route;
    char *body; /* NUL-terminated for handlers' convenience */
    size_t body_len, body_cap;
    bool rejected; /* refused before the handler: answer with rejection */
    http_response rejection;
    const char *auth_challenge; /* WWW-Authenticate value for a 401 */
    char *allow;                /* Allow value for a 405 */
    bool responded;
};

/* Splits path ("/a/b") in place into its segments ("a", "b"); false when it
 * does not start with '/' or has more than HTTP_MAX_SEGMENTS. */
static bool split_path(char *path, const char *segments[], size_t *n_segments)
{
    size_t n = 0;
    char *segment = path + 1;
    if (*path != '/')
        return false;
    for (;;) {
        if (n == HTTP_MAX_SEGMENTS)
            return false;
        segments[n++] = segment;
        char *slash = strchr(segment, '/');
        if (slash == NULL)
            break;
        *slash = '\0';
        segment = slash + 1;
    }
    *n_segments = n;
    return true;
}

/* ---- responses ---------------------------------------------------------- */

static void response_set(http_response *resp, int status, const char *content_type, char *body,
                         size_t body_len)
{
    free(resp->body);
    resp->status = status;
    resp->content_type = content_type;
    resp->body = body;
    resp->body_len = body_len;
}

/* The last resort when no body can be built: a fixed 500. */
static void respond_internal_error(http_response *resp, const char *json_text)
{
    char *copy = strdup(json_text);
    response_set(resp, 500, "application/json", copy, copy ? strlen(copy) : 0);
}

void http_respond_json(http_response *resp, int status, json_t *json)
{
    if (json == NULL) {
        /* Usually a json_pack that failed: a handler bug, or out of memory. */
        respond_internal_error(resp, "{\"error\":\"internal error: no JSON to send\"}");
        return;
    }
    char *text = json_dumps(json, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(json);
    if (text == NULL) {
        respond_internal_error(resp, "{\"error\":\"out of memory\"}");
        return;
    }
    response_set(resp, status, "application/json", text, strlen(text));
}

static void respond_error_v(http_response *resp, int status, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void respond_error_v(http_response *resp, int status, const char *fmt, va_list ap)
{
    char *message = NULL;
    if (vasprintf(&message, fmt, ap) < 0) {
        respond_internal_error(resp, "{\"error\":\"out of memory\"}");
        return;
    }
    /* json_string refuses invalid UTF-8 (a client's path, say); the status
     * alone then has to do. */
    json_t *text = json_string(message);
    free(message);
    if (text == NULL)
        text = json_string("invalid request");
    http_respond_json(resp, status, json_pack("{s:o*}", "error", text));
}

void http_respond_error(http_response *resp, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    respond_error_v(resp, status, fmt, ap);
    va_end(ap);
}

void http_respond_text(http_response *resp, int status, const char *content_type, const char *text)
{
    char *copy = strdup(text);
    if (copy == NULL) {
        respond_internal_error(resp, "{\"error\":\"out of memory\"}");
        return;
    }
    response_set(resp, status, content_type, copy, strlen(copy));
}

/* ---- accessors ---------------------------------------------------------- */

const char *http_method(const http_request *req)
{
    return req->method;
}

const char *http_path(const http_request *req)
{
    return req->path;
}

/* The value of query key with its length (binary-safe), NULL when absent;
 * "?verbose" has the key but no value: present, so "" rather than NULL. */
static const char *query_value(const http_request *req, const char *key, size_t *len)
{
    const char *value = NULL;
    size_t value_len = 0;
    if (MHD_lookup_connection_value_n(req->conn, MHD_GET_ARGUMENT_KIND, key, strlen(key), &value,
                                      &value_len) == MHD_NO)
        return NULL;
    *len = value ? value_len : 0;
    return value ? value : "";
}

const char *http_query(const http_request *req, const char *key)
{
    size_t len;
    return query_value(req, key, &len);
}

const char *http_header(const http_request *req, const char *key)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, key);
}

const char *http_body(const http_request *req, size_t *len)
{
    if (len != NULL)
        *len = req->body_len;
    return req->body ? req->body : "";
}

const char *http_path_param(const http_request *req, size_t index)
{
    return index < req->n_params ? req->params[index] : NULL;
}

/* ---- typed parameters --------------------------------------------------- */

static bool is_param_pattern(const char *segment)
{
    size_t len = strlen(segment);
    return len >= 2 && segment[0] == '{' && segment[len - 1] == '}';
}

static bool has_control(const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c < 0x20 || c == 0x7f)
            return true;
    }
    return false;
}

bool http_text_ok(const char *text, size_t len)
{
    return !has_control(text, len) && !utf8_problem(text, len, NULL);
}

/* Refuses a text parameter that is not valid UTF-8, holds a control
 * character or is longer than max_bytes; name is the parameter's. */
static oms_status check_text(const char *name, const char *text, size_t len, size_t max_bytes,
                             http_response *resp)
{
    if (utf8_problem(text, len, NULL)) {
        http_respond_error(resp, 400, "parameter %s is not valid UTF-8", name);
        return OMS_EINVAL;
    }
    if (has_control(text, len)) {
        http_respond_error(resp, 400, "parameter %s holds a control character", name);
        return OMS_EINVAL;
    }
    if (len > max_bytes) {
        http_respond_error(resp, 400, "parameter %s is longer than %zu bytes", name, max_bytes);
        return OMS_EINVAL;
    }
    return OMS_OK;
}

/* Parses text as a whole decimal integer in [min, max]: no sign other than
 * a leading '-', no spaces, no overflow. */
static oms_status parse_int(const char *name, const char *text, int64_t min, int64_t max,
                            int64_t *out, http_response *resp)
{
    char *end = NULL;
    errno = 0;
    long long n = (text[0] == '-' || (text[0] >= '0' && text[0] <= '9')) ? strtoll(text, &end, 10)
                                                                         : 0;
    if (end == NULL || end == text || *end != '\0' || errno == ERANGE || n < min || n > max) {
        http_respond_error(resp, 400, "parameter %s must be an integer from %lld to %lld", name,
                           (long long)min, (long long)max);
        return OMS_EINVAL;
    }
    *out = n;
    return OMS_OK;
}

oms_status http_query_str(const http_request *req, const char *key, size_t max_bytes,
                          const char **out, http_response *resp)
{
    size_t len = 0;
    const char *value = query_value(req, key, &len);
    if (value != NULL && check_text(key, value, len, max_bytes, resp) != OMS_OK)
        return OMS_EINVAL;
    *out = value;
    return OMS_OK;
}

oms_status http_query_int(const http_request *req, const char *key, int64_t min, int64_t max,
                          int64_t def, int64_t *out, http_response *resp)
{
    size_t len = 0;
    const char *value = query_value(req, key, &len);
    if (value == NULL) {
        *out = def;
        return OMS_OK;
    }
    if (check_text(key, value, len, 32, resp) != OMS_OK)
        return OMS_EINVAL;
    return parse_int(key, value, min, max, out, resp);
}

/* The name of path parameter index: "id" for "{id}", "#1" for a first "{}". */
static void param_name(const http_request *req, size_t index, char *name, size_t size)
{
    const char *pattern = index < req->n_params ? req->param_patterns[index] : "{}";
    size_t len = strlen(pattern) - 2;
    if (len == 0)
        snprintf(name, size, "#%zu", index + 1);
    else
        snprintf(name, size, "%.*s", (int)len, pattern + 1);
}

oms_status http_path_str(const http_request *req, size_t index, size_t max_bytes, const char **out,
                         http_response *resp)
{
    char name[64];
    const char *value = http_path_param(req, index);
    param_name(req, index, name, sizeof name);
    if (value == NULL) {
        http_respond_error(resp, 400, "parameter %s is missing", name);
        return OMS_EINVAL;
    }
    if (check_text(name, value, strlen(value), max_bytes, resp) != OMS_OK)
        return OMS_EINVAL;
    *out = value;
    return OMS_OK;
}

oms_status http_path_int(const http_request *req, size_t index, int64_t min, int64_t max,
                         int64_t *out, http_response *resp)
{
    char name[64];
    const char *value = NULL;
    if (http_path_str(req, index, 32, &value, resp) != OMS_OK)
        return OMS_EINVAL;
    param_name(req, index, name, sizeof name);
    return parse_int(name, value, min, max, out, resp);
}

/* ---- routing and auth --------------------------------------------------- */

static bool route_matches_path(const http_route_entry *r, const http_request *req)
{
    if (r->n_segments != req->n_segments)
        return false;
    for (size_t i = 0; i < r->n_segments; i++) {
        bool ok = is_param_pattern(r->segments[i]) ? req->segments[i][0] != '\0'
                                                   : strcmp(r->segments[i], req->segments[i]) == 0;
        if (!ok)
            return false;
    }
    return true;
}

/* HEAD is served by the GET route; MHD leaves the body out. */
static bool route_matches_method(const http_route_entry *r, const char *method)
{
    return strcmp(r->method, method) == 0 ||
           (strcmp(method, MHD_HTTP_METHOD_HEAD) == 0 && strcmp(r->method, "GET") == 0);
}

static void request_reject(http_request *req, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void request_reject(http_request *req, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    respond_error_v(&req->rejection, status, fmt, ap);
    va_end(ap);
    req->rejected = true;
}

/* Lists the methods the path does answer, "GET, POST", for a 405's Allow. */
static char *allowed_methods(const http_request *req)
{
    const http_server *s = req->server;
    char *list = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&list, &len);
    if (f == NULL)
        return NULL;
    const char *separator = "";
    for (size_t i = 0; i < s->n_routes; i++) {
        const http_route_entry *r = &s->routes[i];
        bool listed = false;
        for (size_t j = 0; j < i && !listed; j++)
            listed = strcmp(s->routes[j].method, r->method) == 0 &&
                     route_matches_path(&s->routes[j], req);
        if (!listed && route_matches_path(r, req)) {
            fprintf(f, "%s%s", separator, r->method);
            separator = ", ";
        }
    }
    if (fclose(f) != 0) {
        free(list);
        return NULL;
    }
    return list;
}

/* Refuses with 400 a path parameter that is not valid UTF-8 or holds a
 * control character, so no handler sees it. */
static void request_check_params(http_request *req)
{
    for (size_t i = 0; i < req->n_params && !req->rejected; i++) {
        char name[64];
        param_name(req, i, name, sizeof name);
        if (check_text(name, req->params[i], strlen(req->params[i]), SIZE_MAX, &req->rejection) !=
            OMS_OK)
            req->rejected = true;
    }
}

/* Picks the route for the request and fills its path parameters, or rejects
 * it with 404 (no route has this path) or 405 (none has it with this method). */
static void request_route(http_request *req)
{
    const http_server *s = req->server;
    bool path_known = false;
    req->path_copy = strdup(req->path);
    if (req->path_copy == NULL) {
        request_reject(req, 500, "out of memory");
        return;
    }
    if (!split_path(req->path_copy, req->segments, &req->n_segments))
        req->n_segments = 0; /* matches no route: every pattern has a segment */
    for (size_t i = 0; i < s->n_routes && req->route == NULL; i++) {
        const http_route_entry *r = &s->routes[i];
        if (!route_matches_path(r, req))
            continue;
        path_known = true;
        if (route_matches_method(r, req->method))
            req->route = r;
    }
    if (req->route == NULL && !path_known) {
        if (has_control(req->path, strlen(req->path)))
            request_reject(req, 400, "the path holds a control character (such as %%00)");
        else
            request_reject(req, 404, "no route for %s", req->path);
    } else if (req->route == NULL) {
        req->allow = allowed_methods(req);
        request_reject(req, 405, "%s is not allowed on %s; allowed: %s", req->method, req->path,
                       req->allow ? req->allow : "?");
    } else {
        for (size_t i = 0; i < req->route->n_segments; i++)
            if (is_param_pattern(req->route->segments[i])) {
                req->param_patterns[req->n_params] = req->route->segments[i];
                req->params[req->n_params++] = req->segments[i];
            }
    }
}

static void request_authorize(http_request *req)
{
    const char *token = req->server->admin_token;
    const char *header = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_AUTHORIZATION);
    size_t prefix_len = strlen(HTTP_BEARER_PREFIX);
    req->auth_challenge = "Bearer";
    if (token == NULL) {
        request_reject(req, 401,
                       "admin endpoints are disabled: the server has no admin "
                       "token (set OMS_ADMIN_TOKEN)");
    } else if (header == NULL || strncasecmp(header, HTTP_BEARER_PREFIX, prefix_len) != 0) {
        request_reject(req, 401, "missing \"Authorization: Bearer <admin token>\" header");
    } else if (!oms_secret_equal(header + prefix_len, token)) {
        req->auth_challenge = "Bearer error=\"invalid_token\"";
        request_reject(req, 401, "invalid admin token");
    } else {
        req->auth_challenge = NULL;
    }
}

/* True when the client announced a body over the limit (MHD has already
 * refused a malformed Content-Length with 400). */
static bool declared_too_large(struct MHD_Connection *conn)
{
    const char *value = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                    MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (value == NULL)
        return false;
    char *end = NULL;
    errno = 0;
    unsigned long long declared = strtoull(value, &end, 10);
    return end != value && (errno == ERANGE || declared > HTTP_BODY_MAX_BYTES);
}

/* ---- connections and the header deadline ------------------------------ */

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Marks conn's request head complete (done) or restarts its deadline. */
static void conn_mark_head(const http_server *cs, struct MHD_Connection *conn, bool done)
{
    http_server *s = (http_server *)cs; /* only conn_lock and the entry change */
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    http_conn *hc = info ? info->socket_context : NULL;
    if (hc == NULL)
        return;
    pthread_mutex_lock(&s->conn_lock);
    hc->head_done = done;
    if (!done)
        hc->head_started_ms = monotonic_ms();
    pthread_mutex_unlock(&s->conn_lock);
}

static void conn_started(http_server *s, struct MHD_Connection *conn, void **socket_context)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    http_conn *hc = info ? calloc(1, sizeof *hc) : NULL;
    if (hc == NULL)
        return; /* untracked: only the idle timeout bounds it */
    hc->fd = info->connect_fd;
    hc->head_started_ms = monotonic_ms();
    pthread_mutex_lock(&s->conn_lock);
    hc->next = s->conns;
    if (s->conns != NULL)
        s->conns->prev = hc;
    s->conns = hc;
    pthread_mutex_unlock(&s->conn_lock);
    *socket_context = hc;
}

static void conn_closed(http_server *s, void **socket_context)
{
    http_conn *hc = *socket_context;
    if (hc == NULL)
        return;
    pthread_mutex_lock(&s->conn_lock);
    if (hc->prev != NULL)
        hc->prev->next = hc->next;
    else
        s->conns = hc->next;
    if (hc->next != NULL)
        hc->next->prev = hc->prev;
    pthread_mutex_unlock(&s->conn_lock);
    free(hc);
    *socket_context = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    if (toe == MHD_CONNECTION_NOTIFY_STARTED)
        conn_started(cls, conn, socket_context);
    else
        conn_closed(cls, socket_context);
}

/* Shuts down every connection whose head is overdue; conn_lock held. */
static void cut_overdue(http_server *s, int64_t now_ms)
{
    for (http_conn *hc = s->conns; hc != NULL; hc = hc->next) {
        if (hc->head_done || hc->cut || now_ms - hc->head_started_ms < s->limits.header_timeout_ms)
            continue;
        /* MHD's thread sees end-of-stream and closes the connection itself. */
        shutdown(hc->fd, SHUT_RDWR);
        hc->cut = true;
    }
}

static void *watchdog_main(void *arg)
{
    http_server *s = arg;
    pthread_mutex_lock(&s->conn_lock);
    while (!s->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += HTTP_WATCHDOG_PERIOD_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->watchdog_wake, &s->conn_lock, &until);
        cut_overdue(s, monotonic_ms());
    }
    pthread_mutex_unlock(&s->conn_lock);
    return NULL;
}

static void watchdog_stop(http_server *s)
{
    if (!s->watchdog_running)
        return;
    pthread_mutex_lock(&s->conn_lock);
    s->stopping = true;
    pthread_cond_signal(&s->watchdog_wake);
    pthread_mutex_unlock(&s->conn_lock);
    pthread_join(s->watchdog, NULL);
    s->watchdog_running = false;
}

/* MHD's decoding, except that a decoded NUL becomes HTTP_NUL_STANDIN. */
static size_t on_unescape(void *cls, struct MHD_Connection *conn, char *text)
{
    (void)cls;
    (void)conn;
    size_t len = MHD_http_unescape(text);
    for (size_t i = 0; i < len; i++)
        if (text[i] == '\0')
            text[i] = HTTP_NUL_STANDIN;
    return len;
}

/* ---- the request's life ------------------------------------------------- */

static void request_destroy(http_request *req)
{
    if (req == NULL)
        return;
    free(req->path_copy);
    free(req->body);
    free(req->rejection.body);
    free(req->allow);
    free(req);
}

/* Sends resp, taking ownership of its body whatever happens. */
static enum MHD_Result request_respond(http_request *req, http_response *resp)
{
    enum MHD_Result ret = MHD_NO;
    struct MHD_Response *response = NULL;
    if (resp->status < 100 || resp->status > 599) {
        char given[16];
        snprintf(given, sizeof given, "%d", resp->status);
        log_error("http handler set an invalid status, answering 500", "path", req->path, "status",
                  given, NULL);
        http_respond_error(resp, 500, "internal error: handler answered invalid status %d",
                           resp->status);
    }
    int status = resp->status;
    if (resp->body == NULL || resp->body_len == 0) {
        free(resp->body);
        resp->body = NULL;
        resp->body_len = 0;
    }
    response = MHD_create_response_from_buffer(resp->body_len, resp->body,
                                               resp->body ? MHD_RESPMEM_MUST_FREE
                                                          : MHD_RESPMEM_PERSISTENT);
    if (response == NULL)
        goto out;
    resp->body = NULL; /* MHD frees it with the response */
    if (MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
                                resp->content_type ? resp->content_type : "application/json") ==
        MHD_NO)
        goto out;
    if (status == 405 && req->allow != NULL &&
        MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, req->allow) == MHD_NO)
        goto out;
    if (status == 401 && req->auth_challenge != NULL &&
        MHD_add_response_header(response, MHD_HTTP_HEADER_WWW_AUTHENTICATE, req->auth_challenge) ==
            MHD_NO)
        goto out;
    ret = MHD_queue_response(req->conn, (unsigned int)status, response);
    req->responded = true;
out:
    if (response != NULL)
        MHD_destroy_response(response);
    free(resp->body);
    resp->body = NULL;
    return ret;
}

/* First callback, headers only: decides now whether the request will be
 * served, so that a refused body is never buffered. */
static enum MHD_Result request_begin(const http_server *s, struct MHD_Connection *conn,
                                     const char *url, const char *method, void **con_cls)
{
    http_request *req = calloc(1, sizeof *req);
    if (req == NULL)
        return MHD_NO;
    req->server = s;
    req->conn = conn;
    req->method = method;
    req->path = url;
    *con_cls = req; /* from here the completion callback frees it */
    conn_mark_head(s, conn, true);
    request_route(req);
    /* Auth first: a client without the token learns nothing about ids. */
    if (!req->rejected && req->route->needs_auth)
        request_authorize(req);
    if (!req->rejected)
        request_check_params(req);
    if (!declared_too_large(conn))
        return MHD_YES;
    if (!req->rejected)
        request_reject(req, 413, "request body is larger than %zu bytes", HTTP_BODY_MAX_BYTES);
    return request_respond(req, &req->rejection);
}

static bool body_reserve(http_request *req, size_t needed)
{
    if (needed < req->body_cap)
        return true;
    size_t cap = req->body_cap ? req->body_cap : 4096;
    while (cap <= needed)
        cap *= 2;
    /* needed never exceeds the limit, so this still leaves room for the NUL. */
    if (cap > HTTP_BODY_MAX_BYTES + 1)
        cap = HTTP_BODY_MAX_BYTES + 1;
    char *body = realloc(req->body, cap);
    if (body == NULL)
        return false;
    req->body = body;
    req->body_cap = cap;
    return true;
}

/* Appends one chunk of the body; a refused request's body is dropped. */
static void request_absorb(http_request *req, const char *data, size_t size)
{
    if (req->rejected)
        return;
    if (size > HTTP_BODY_MAX_BYTES - req->body_len) {
        free(req->body);
        req->body = NULL;
        req->body_len = req->body_cap = 0;
        request_reject(req, 413, "request body is larger than %zu bytes", HTTP_BODY_MAX_BYTES);
        return;
    }
    if (!body_reserve(req, req->body_len + size)) {
        request_reject(req, 500, "out of memory reading the request body");
        return;
    }
    memcpy(req->body + req->body_len, data, size);
    req->body_len += size;
    req->body[req->body_len] = '\0';
}

static enum MHD_Result request_finish(http_request *req)
{
    http_response resp = {.status = 200, .content_type = "application/json"};
    if (req->responded)
        return MHD_YES;
    if (req->rejected)
        return request_respond(req, &req->rejection);
    req->route->fn(req->route->ctx, req, &resp);
    return request_respond(req, &resp);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    http_request *req = *con_cls;
    if (req == NULL)
        return request_begin(cls, conn, url, method, con_cls);
    if (*upload_data_size > 0) {
        request_absorb(req, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    return request_finish(req);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)toe;
    request_destroy(*con_cls);
    *con_cls = NULL;
    /* A kept-alive connection's next head gets a deadline of its own. */
    conn_mark_head(cls, conn, false);
}

/* ---- server ------------------------------------------------------------- */

/* Parses "host:port": empty host for all interfaces, "localhost", or numeric IPv4. */
static oms_status parse_bind_addr(const char *addr, struct sockaddr_in *out)
{
    const char *colon = addr ? strrchr(addr, ':') : NULL;
    char host[INET_ADDRSTRLEN + 16];
    char *end = NULL;
    if (colon == NULL || (size_t)(colon - addr) >= sizeof host)
        return OMS_EINVAL;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end != '\0' || errno != 0 || port < 1 || port > 65535)
        return OMS_EINVAL;
    memset(out, 0, sizeof *out);
    out->sin_family = AF_INET;
    out->sin_port = htons((uint16_t)port);
    if (host[0] == '\0')
        out->sin_addr.s_addr = htonl(INADDR_ANY);
    else if (strcmp(host, "localhost") == 0)
        out->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    else if (inet_pton(AF_INET, host, &out->sin_addr) != 1)
        return OMS_EINVAL;
    return OMS_OK;
}

oms_status http_server_create(http_server **out, const char *addr, const char *admin_token)
{
    oms_status st = OMS_OK;
    http_server *s = calloc(1, sizeof *s);
    if (s == NULL) {
        st = OMS_ENOMEM;
        goto out;
    }
    s->limits = HTTP_LIMITS_DEFAULT;
    pthread_mutex_init(&s->conn_lock, NULL);
    pthread_cond_init(&s->watchdog_wake, NULL);
    st = parse_bind_addr(addr, &s->bind_addr);
    if (st != OMS_OK) {
        log_error("invalid http listen address: expected host:port with an IPv4 host, "
                  "\"localhost\" or an empty host, such as 127.0.0.1:18081",
                  "addr", addr ? addr : "(null)", NULL);
        goto out;
    }
    s->addr = strdup(addr);
    if (admin_token != NULL && *admin_token != '\0')
        s->admin_token = strdup(admin_token);
    if (s->addr == NULL || (admin_token != NULL && *admin_token != '\0' && !s->admin_token)) {
        st = OMS_ENOMEM;
        goto out;
    }
    *out = s;
    s = NULL;
out:
    http_server_destroy(s);
    return st;
}

/* Same method and same shape: "{id}" and "{}" match the same paths. */
static bool route_same(const http_route_entry *a, const http_route_entry *b)
{
    if (strcmp(a->method, b->method) != 0 || a->n_segments != b->n_segments)
        return false;
    for (size_t i = 0; i < a->n_segments; i++) {
        bool pa = is_param_pattern(a->segments[i]), pb = is_param_pattern(b->segments[i]);
        if (pa != pb || (!pa && strcmp(a->segments[i], b->segments[i]) != 0))
            return false;
    }
    return true;
}

/* Appends r to the table, refusing a second (method, pattern) that would be
 * dead code. Takes ownership of r's strings only on success. */
static oms_status route_append(http_server *s, const http_route_entry *r)
{
    for (size_t i = 0; i < s->n_routes; i++)
        if (route_same(&s->routes[i], r))
            return OMS_EINVAL;
    if (s->n_routes == s->cap_routes) {
        size_t cap = s->cap_routes ? s->cap_routes * 2 : 8;
        http_route_entry *routes = realloc(s->routes, cap * sizeof *routes);
        if (routes == NULL)
            return OMS_ENOMEM;
        s->routes = routes;
        s->cap_routes = cap;
    }
    s->routes[s->n_routes++] = *r;
    return OMS_OK;
}

oms_status http_route(http_server *s, const char *method, const char *pattern, bool needs_auth,
                      http_handler fn, void *ctx)
{
    oms_status st = OMS_OK;
    http_route_entry r = {.needs_auth = needs_auth, .fn = fn, .ctx = ctx};
    /* Routes are read without a lock by MHD's threads once started. */
    if (s->daemon != NULL || fn == NULL || method == NULL || pattern == NULL) {
        st = OMS_EINVAL;
        goto out;
    }
    r.method = strdup(method);
    r.pattern = strdup(pattern);
    if (r.method == NULL || r.pattern == NULL) {
        st = OMS_ENOMEM;
        goto out;
    }
    if (!split_path(r.pattern, r.segments, &r.n_segments)) {
        st = OMS_EINVAL;
        goto out;
    }
    st = route_append(s, &r);
    if (st == OMS_OK)
        r.method = r.pattern = NULL;
out:
    if (st == OMS_EINVAL)
        log_error("http route refused (pattern must start with '/', at most 32 segments, "
                  "registered once, before start)",
                  "method", method ? method : "(null)", "pattern", pattern ? pattern : "(null)",
                  NULL);
    free(r.method);
    free(r.pattern);
    return st;
}

oms_status http_server_limits(http_server *s, const http_limits *limits)
{
    if (s->daemon != NULL || limits->max_connections == 0 || limits->max_per_ip == 0 ||
        limits->header_timeout_ms <= 0)
        return OMS_EINVAL;
    s->limits = *limits;
    return OMS_OK;
}

oms_status http_server_start(http_server *s)
{
    if (s->daemon != NULL)
        return OMS_EINVAL;
    if (pthread_create(&s->watchdog, NULL, watchdog_main, s) != 0)
        return OMS_ENOMEM;
    s->watchdog_running = true;
    /* No MHD_USE_ERROR_LOG: MHD would print to stderr, outside our JSON logs. */
    s->daemon = MHD_start_daemon(
        MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION,
        ntohs(s->bind_addr.sin_port), NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&s->bind_addr, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_UNESCAPE_CALLBACK, on_unescape,
        s, MHD_OPTION_CONNECTION_LIMIT, s->limits.max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, s->limits.max_per_ip, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned int)HTTP_IDLE_TIMEOUT_S, MHD_OPTION_END);
    if (s->daemon == NULL) {
        watchdog_stop(s);
        log_error("http server could not listen (address in use or not permitted)", "addr", s->addr,
                  NULL);
        return OMS_EIO;
    }
    return OMS_OK;
}

void http_server_destroy(http_server *s)
{
    if (s == NULL)
        return;
    /* Stopping joins every connection thread, so no handler runs after this. */
    if (s->daemon != NULL)
        MHD_stop_daemon(s->daemon);
    watchdog_stop(s);
    pthread_cond_destroy(&s->watchdog_wake);
    pthread_mutex_destroy(&s->conn_lock);
    for (size_t i = 0; i < s->n_routes; i++) {
        free(s->routes[i].method);
        free(s->routes[i].pattern);
    }
    free(s->routes);
    free(s->admin_token);
    free(s->addr);
    free(s);
}
