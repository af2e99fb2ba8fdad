/*
 * http.h - a small HTTP/1.1 server on libmicrohttpd for health, metrics,
 * admin and query endpoints.
 *
 * Routes are (method, pattern): a pattern is a path whose segments may be
 * "{}" to match any one segment ("/dead-letters/{}/retry"); matched segments
 * are available through http_path_param. Routes marked needs_auth require
 * "Authorization: Bearer <admin token>" (compared in constant time), else 401.
 * An unknown path answers 404, a known path with another method 405; bodies
 * over 8 MiB answer 413. Handlers run on libmicrohttpd's threads.
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

/* Accessors. Returned strings are borrowed and live until the handler returns. */
const char *http_method(const http_request *req);
const char *http_path(const http_request *req);
const char *http_query(const http_request *req, const char *key); /* NULL if absent */
const char *http_header(const http_request *req, const char *key); /* case-insensitive */
const char *http_body(const http_request *req, size_t *len);       /* "" when none */
const char *http_path_param(const http_request *req, size_t index); /* NULL if none */

/* addr is "host:port" (host may be empty for all interfaces). admin_token may be
 * NULL or empty: then every needs_auth route answers 401. Caller frees with
 * http_server_destroy. */
oms_status http_server_create(http_server **out, const char *addr, const char *admin_token);

/* Registers a route before http_server_start; pattern and ctx are borrowed. */
oms_status http_route(http_server *s, const char *method, const char *pattern,
                      bool needs_auth, http_handler fn, void *ctx);

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
void http_respond_text(http_response *resp, int status, const char *content_type,
                       const char *text);

#endif
