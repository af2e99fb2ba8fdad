/*
 * console_http.c - the console's routes on lib/http's server: the embedded
 * page, and a small API under /api for it.
 *
 *   GET  /, /console.css, /console.js       the page (cli/console/, embedded)
 *   GET  /api/session                       {"login_required", "token"?}
 *   GET  /api/snapshot                      the picture (console_snapshot.c)
 *   GET  /api/events?token=T                the same as Server-Sent Events
 *   GET  /api/orders/{id}                   ingest's order and its trace
 *   POST /api/dead-letters/{service}/{id}/retry   {"state": resolved|rejected}
 *
 * Every /api route but /api/session needs the console token, in the
 * X-Console-Token header (EventSource cannot set headers: /api/events takes
 * it as ?token=). Every request must name the console in its Host header,
 * so a page on another origin that rebinds its DNS name to 127.0.0.1 gets
 * nothing; a POST must also come from the console's own origin (Origin).
 *
 * lib/http answers with whole bodies, so /api/events sends one event and
 * "retry: 1000" and ends: the browser's EventSource reconnects a second
 * later by itself. Each reconnect is a new request carrying the token, and
 * no connection thread is held per open page.
 */
#include "console.h"

#include "trace.h"

#include <stdlib.h>
#include <string.h>

#define TOKEN_HEADER "X-Console-Token"
#define SSE_RETRY_MS 1000
#define HTTP_TIMEOUT_MS 5000L

typedef struct page_file {
    const char *path;
    const char *asset;
    const char *content_type;
} page_file;

static const page_file PAGE_FILES[] = {
    {"/", "index.html", "text/html; charset=utf-8"},
    {"/console.css", "console.css", "text/css; charset=utf-8"},
    {"/console.js", "console.js", "text/javascript; charset=utf-8"},
};

/* ---- checks ---------------------------------------------------------------- */

/* On loopback, Host must name the console (its address, or localhost with
 * its port). Bound elsewhere the token alone decides: a page that rebinds
 * its name to the console still has no token. */
static bool host_ok(const console *con, const http_request *req, http_response *resp)
{
    const char *host = http_header(req, "Host");
    if (con->login_required)
        return true;
    if (host != NULL && (strcmp(host, con->host) == 0 || strcmp(host, con->host_alias) == 0))
        return true;
    http_respond_error(resp, 421, "this console answers to Host %s, not %s", con->host,
                       host ? host : "(none)");
    return false;
}

static bool token_ok(const console *con, const http_request *req, bool query_allowed,
                     http_response *resp)
{
    const char *token = http_header(req, TOKEN_HEADER);
    if (token == NULL && query_allowed)
        token = http_query(req, "token");
    if (!host_ok(con, req, resp))
        return false;
    if (token != NULL && oms_secret_equal(token, con->token))
        return true;
    http_respond_error(resp, 401, "%s",
                       con->login_required ? "log in with the console's token (--token-file)"
                                           : "missing or stale console token: reload the page");
    return false;
}

/* A state-changing request: from the console's own page and with the token. */
static bool same_origin_ok(const console *con, const http_request *req, http_response *resp)
{
    char want[CONSOLE_ORIGIN_LEN + 8];
    const char *origin = http_header(req, "Origin"), *host = http_header(req, "Host");
    snprintf(want, sizeof want, "http://%s", host ? host : "");
    if (!token_ok(con, req, false, resp))
        return false;
    if (origin != NULL && strcmp(origin, want) == 0)
        return true;
    http_respond_error(resp, 403, "cross-origin request refused: Origin must be %s, got %s", want,
                       origin ? origin : "(none)");
    return false;
}

/* ---- the page -------------------------------------------------------------- */

static const console_asset *asset(const char *name)
{
    for (const console_asset *a = CONSOLE_ASSETS; a->name != NULL; a++)
        if (strcmp(a->name, name) == 0)
            return a;
    return NULL;
}

static void h_page(void *ctx, const http_request *req, http_response *resp)
{
    const page_file *f = ctx;
    const console_asset *a = asset(f->asset);
    /* The page holds no data and no token: it is served to any Host. */
    (void)req;
    if (a == NULL) {
        http_respond_error(resp, 500, "%s is not built into this omsctl", f->asset);
        return;
    }
    http_respond_text(resp, 200, f->content_type, a->data);
}

static void h_session(void *ctx, const http_request *req, http_response *resp)
{
    const console *con = ctx;
    if (!host_ok(con, req, resp))
        return;
    /* Loopback: the page may read its token (another origin cannot: no CORS
     * headers, and the Host check stops DNS rebinding). Elsewhere the person
     * has to type it. */
    if (con->login_required)
        http_respond_json(resp, 200, json_pack("{s:b}", "login_required", 1));
    else
        http_respond_json(resp, 200,
                          json_pack("{s:b,s:s}", "login_required", 0, "token", con->token));
}

/* ---- the picture ----------------------------------------------------------- */

static void h_snapshot(void *ctx, const http_request *req, http_response *resp)
{
    console *con = ctx;
    if (!token_ok(con, req, false, resp))
        return;
    char *text = console_snapshot_text(con);
    if (text == NULL) {
        http_respond_error(resp, 500, "out of memory");
        return;
    }
    http_respond_text(resp, 200, "application/json", text);
    free(text);
}

static void h_events(void *ctx, const http_request *req, http_response *resp)
{
    console *con = ctx;
    if (!token_ok(con, req, true, resp))
        return;
    char *text = console_snapshot_text(con), *event = NULL;
    if (text == NULL ||
        asprintf(&event, "retry: %d\nevent: snapshot\ndata: %s\n\n", SSE_RETRY_MS, text) < 0) {
        free(text);
        http_respond_error(resp, 500, "out of memory");
        return;
    }
    http_respond_text(resp, 200, "text/event-stream", event);
    free(event);
    free(text);
}

/* ---- an order -------------------------------------------------------------- */

/* ingest's GET /orders/{id}: {"status": http status, "order"|"error"}. */
static json_t *ingest_order(const char *order_id)
{
    char escaped[1024], path[1100], url[CLI_URL_LEN], err[CLI_HTTP_ERR_LEN];
    long status = 0;
    json_t *body = NULL;
    if (cli_url_escape(order_id, escaped, sizeof escaped) != OMS_OK)
        return json_pack("{s:i,s:s}", "status", 400, "error", "order id too long");
    snprintf(path, sizeof path, "/orders/%s", escaped);
    cli_service_endpoint(cli_service_find("ingest"), path, url, sizeof url);
    if (cli_http("GET", url, NULL, HTTP_TIMEOUT_MS, &status, &body, err) != OMS_OK)
        return json_pack("{s:i,s:s}", "status", 502, "error", err);
    if (status == 200)
        return json_pack("{s:i,s:o}", "status", 200, "order", body ? body : json_null());
    json_t *j = json_pack("{s:I,s:s}", "status", (json_int_t)status, "error",
                          *cli_json_error(body) ? cli_json_error(body) : "no such order");
    json_decref(body);
    return j;
}

static void h_order(void *ctx, const http_request *req, http_response *resp)
{
    console *con = ctx;
    const char *order_id = http_path_param(req, 0);
    json_t *trace = NULL;
    char err[TRACE_ERR_LEN];
    if (!token_ok(con, req, false, resp))
        return;
    if (order_id == NULL || *order_id == '\0' || strlen(order_id) > 256) {
        http_respond_error(resp, 400, "order id must be 1 to 256 bytes");
        return;
    }
    if (con->nats == NULL) {
        http_respond_error(resp, 503, "NATS at %s was not reachable when the console started",
                           cli_nats_url());
        return;
    }
    if (trace_collect(con->nats, order_id, &trace, err) != OMS_OK) {
        http_respond_error(resp, 502, "%s", err[0] ? err : "out of memory");
        return;
    }
    http_respond_json(resp, 200,
                      json_pack("{s:s,s:o,s:o}", "order_id", order_id, "ingest",
                                ingest_order(order_id), "trace", trace));
}

/* ---- dead letters ---------------------------------------------------------- */

static bool positive_id(const char *text)
{
    if (text == NULL || *text == '\0' || strlen(text) > 18)
        return false;
    for (const char *c = text; *c; c++)
        if (*c < '0' || *c > '9')
            return false;
    return atoll(text) > 0;
}

static void h_retry(void *ctx, const http_request *req, http_response *resp)
{
    console *con = ctx;
    const char *name = http_path_param(req, 0), *id = http_path_param(req, 1);
    const cli_service *svc = name ? cli_service_find(name) : NULL;
    char path[64], url[CLI_URL_LEN], err[CLI_HTTP_ERR_LEN];
    long status = 0;
    json_t *body = NULL;
    if (!same_origin_ok(con, req, resp))
        return;
    if (svc == NULL || !positive_id(id)) {
        http_respond_error(resp, 400,
                           "want /api/dead-letters/SERVICE/ID/retry with SERVICE one "
                           "of %s and ID a positive integer",
                           cli_service_names());
        return;
    }
    if (con->admin_token == NULL) {
        http_respond_error(resp, 503,
                           "this console has no OMS_ADMIN_TOKEN: start it with the "
                           "services' admin token in its environment");
        return;
    }
    snprintf(path, sizeof path, "/dead-letters/%s/retry", id);
    cli_service_endpoint(svc, path, url, sizeof url);
    if (cli_http("POST", url, con->admin_token, HTTP_TIMEOUT_MS, &status, &body, err) != OMS_OK) {
        http_respond_error(resp, 502, "%s did not answer: %s", svc->name, err);
        return;
    }
    /* A dead letter still rejected is an outcome of the retry, not a failed
     * request: the page shows its reason. */
    if (status == 200 || status == 409)
        http_respond_json(resp, 200,
                          json_pack("{s:s,s:s,s:s,s:s}", "service", svc->name, "id", id, "state",
                                    status == 200 ? "resolved" : "rejected", "reason",
                                    cli_json_error(body)));
    else
        http_respond_error(resp, status >= 400 && status < 600 ? (int)status : 502, "%s: %s",
                           svc->name,
                           *cli_json_error(body) ? cli_json_error(body) : "unexpected answer");
    json_decref(body);
}

oms_status console_routes(http_server *http, console *con)
{
    oms_status s = OMS_OK;
    for (size_t i = 0; s == OMS_OK && i < sizeof PAGE_FILES / sizeof PAGE_FILES[0]; i++)
        s = http_route(http, "GET", PAGE_FILES[i].path, false, h_page, (void *)&PAGE_FILES[i]);
    if (s == OMS_OK)
        s = http_route(http, "GET", "/api/session", false, h_session, con);
    if (s == OMS_OK)
        s = http_route(http, "GET", "/api/snapshot", false, h_snapshot, con);
    if (s == OMS_OK)
        s = http_route(http, "GET", "/api/events", false, h_events, con);
    if (s == OMS_OK)
        s = http_route(http, "GET", "/api/orders/{}", false, h_order, con);
    if (s == OMS_OK)
        s = http_route(http, "POST", "/api/dead-letters/{}/{}/retry", false, h_retry, con);
    return s;
}
