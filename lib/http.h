/*
 * http.h - a small HTTP/1.1 server on libmicrohttpd for health, metrics,
 * admin and query endpoints.
 *
 * Routes are (method, pattern): a pattern is a path whose segments may be
 * "{name}" (or "{}") to match any one segment ("/dead-letters/{id}/retry");
 * matched segments are available through http_path_param, already checked:
 * one that is not valid UTF-8 or holds a control character (%00 included)
 * answers 400 naming the parameter before any handler runs. Routes marked
 * needs_auth require
 * "Authorization: Bearer <admin token>" (compared in constant time), else 401.
 * An unknown path answers 404, a known path with another method 405; bodies
 * over 8 MiB answer 413. Handlers run on libmicrohttpd's threads.
 *
 * A slow client cannot hold the server: connections are capped per server
 * and per client IP, and a connection whose request head (request line and
 * headers) has not fully arrived within the header deadline is closed,
 * however steadily it trickles bytes (see http_limits).
 */
#ifndef OMS_HTTP_H
#define OMS_HTTP_H

#include "oms.h"

#include <jansson.h>

typedef struct http_server http_server;

typedef struct http_request http_request; /* opaque, valid during the handler */

typedef struct http_response {
    int status;               /* default 200 */
    const char *content_type; /* static string; default "application/json" */
    char *body;               /* malloc'd; the server frees it */
    size_t body_len;
} http_response;

typedef void (*http_handler)(void *ctx, const http_request *req, http_response *resp);

/* What a server accepts; http_server_create starts from HTTP_LIMITS_DEFAULT
 * (no per-IP cap below the server's); services set theirs from OMS_HTTP_*. */
typedef struct http_limits {
    unsigned max_connections;  /* open connections of the whole server */
    unsigned max_per_ip;       /* open connections from one client address */
    int64_t header_timeout_ms; /* from connect (or the previous answer) to a complete head */
} http_limits;

#define HTTP_LIMITS_DEFAULT ((http_limits){64, 64, 10000})

/* Accessors. Returned strings are borrowed and live until the handler returns. */
const char *http_method(const http_request *req);
const char *http_path(const http_request *req);
const char *http_query(const http_request *req, const char *key);   /* NULL if absent */
const char *http_header(const http_request *req, const char *key);  /* case-insensitive */
const char *http_body(const http_request *req, size_t *len);        /* "" when none */
const char *http_path_param(const http_request *req, size_t index); /* NULL if none */

/* Bytes an id-like parameter (order id, SKU, key) may have. */
#define HTTP_ID_MAX_BYTES 256

/* Typed parameters. Each returns OMS_OK with the value in *out, or
 * OMS_EINVAL with resp set to 400 {"error": "parameter <name> ..."} naming
 * the parameter and what is wrong; *out is set only on success. */

/* Query parameter key as text, at most max_bytes, valid UTF-8 and free of
 * control characters; *out is NULL when absent. */
oms_status http_query_str(const http_request *req, const char *key, size_t max_bytes,
                          const char **out, http_response *resp);

/* Query parameter key as a decimal integer in [min, max]; def when absent. */
oms_status http_query_int(const http_request *req, const char *key, int64_t min, int64_t max,
                          int64_t def, int64_t *out, http_response *resp);

/* Path parameter index (already UTF-8 and control-checked), at most max_bytes. */
oms_status http_path_str(const http_request *req, size_t index, size_t max_bytes, const char **out,
                         http_response *resp);

/* Path parameter index as a decimal integer in [min, max]. */
oms_status http_path_int(const http_request *req, size_t index, int64_t min, int64_t max,
                         int64_t *out, http_response *resp);

/* True when text[0..len) is valid UTF-8 with no control character (C0, DEL). */
bool http_text_ok(const char *text, size_t len);

/* addr is "host:port" (host may be empty for all interfaces). admin_token may be
 * NULL or empty: then every needs_auth route answers 401. Caller frees with
 * http_server_destroy. */
oms_status http_server_create(http_server **out, const char *addr, const char *admin_token);

/* Registers a route before http_server_start; pattern and ctx are borrowed. */
oms_status http_route(http_server *s, const char *method, const char *pattern, bool needs_auth,
                      http_handler fn, void *ctx);

/* Replaces the limits before http_server_start; OMS_EINVAL when one is 0 or
 * the server is already started. Borrows limits. */
oms_status http_server_limits(http_server *s, const http_limits *limits);

/* Binds and starts serving on background threads. OMS_EIO when the port is taken. */
oms_status http_server_start(http_server *s);

/* Stops serving and frees everything; NULL is a no-op. */
void http_server_destroy(http_server *s);

/* Sets resp to a JSON body; takes ownership of json (decref'd). */
void http_respond_json(http_response *resp, int status, json_t *json);

/* Sets resp to {"error": "<formatted message>"} with the given status. */
void http_respond_error(http_response *resp, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Sets resp to a text body (copied) with the given content type. */
void http_respond_text(http_response *resp, int status, const char *content_type, const char *text);

#endif
