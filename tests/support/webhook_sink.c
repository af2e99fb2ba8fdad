/*
 * webhook_sink.c - a webhook receiver for the notify integration tests: a
 * real HTTP server (lib/http.h) that checks each request's Oms-Signature
 * (lib/hmac.h) the way a subscriber would, and keeps what it received.
 *
 *   webhook_sink port=<n> secret=<webhook secret> [mode=ok|fail] [delay_ms=<n>]
 *
 * POST /hook: a bad or missing signature answers 401 (counted); mode=fail
 * answers 500 to every request (counted); otherwise the notification is kept
 * and answered 200. delay_ms holds every answer that long (a slow receiver;
 * what arrives is kept when it arrives, answered or not).
 *
 * GET /stats answers what it saw, for the tests to assert on:
 *   {"posts": n, "bad_signatures": n, "failed": n,
 *    "received": [{"idempotency_key", "type", "body": {...}}]}
 * SIGTERM or SIGINT: exits 0.
 */
#include "hmac.h"
#include "http.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct receiver {
    const char *secret;
    bool fail;
    long delay_ms;
    pthread_mutex_t lock;
    json_t *received;
    long posts, bad_signatures, failed;
} receiver;

static void h_hook(void *ctx, const http_request *req, http_response *resp)
{
    receiver *r = ctx;
    size_t len = 0;
    const char *body = http_body(req, &len);
    hmac_result v = hmac_verify(r->secret, http_header(req, HMAC_HEADER), body, len,
                                oms_now_ms() / 1000, HMAC_TOLERANCE_S);
    json_t *json = v == HMAC_VALID ? json_loadb(body, len, 0, NULL) : NULL;
    const char *key = http_header(req, "Idempotency-Key"), *type = http_header(req, "Oms-Event");
    pthread_mutex_lock(&r->lock);
    r->posts++;
    r->bad_signatures += v != HMAC_VALID;
    r->failed += v == HMAC_VALID && r->fail;
    if (v == HMAC_VALID && !r->fail && json != NULL)
        json_array_append_new(r->received,
                              json_pack("{s:s,s:s,s:O}", "idempotency_key", key ? key : "", "type",
                                        type ? type : "", "body", json));
    pthread_mutex_unlock(&r->lock);
    fprintf(stderr, "webhook_sink: %s %s\n", key ? key : "-",
            v != HMAC_VALID ? hmac_result_text(v)
            : r->fail       ? "failed (mode=fail)"
                            : "kept");
    if (r->delay_ms > 0)
        oms_sleep_ms(r->delay_ms, NULL);
    if (v != HMAC_VALID)
        http_respond_error(resp, 401, "%s", hmac_result_text(v));
    else if (r->fail)
        http_respond_error(resp, 500, "receiver failing on purpose");
    else if (json == NULL)
        http_respond_error(resp, 400, "body is not JSON");
    else
        http_respond_json(resp, 200, json_pack("{s:b}", "ok", 1));
    json_decref(json);
}

static void h_stats(void *ctx, const http_request *req, http_response *resp)
{
    receiver *r = ctx;
    (void)req;
    pthread_mutex_lock(&r->lock);
    json_t *stats = json_pack("{s:I,s:I,s:I,s:O}", "posts", (json_int_t)r->posts, "bad_signatures",
                              (json_int_t)r->bad_signatures, "failed", (json_int_t)r->failed,
                              "received", r->received);
    char *text = json_dumps(stats, JSON_COMPACT);
    json_decref(stats);
    pthread_mutex_unlock(&r->lock);
    http_respond_text(resp, 200, "application/json", text ? text : "{}");
    free(text);
}

int main(int argc, char **argv)
{
    receiver r = {.secret = NULL};
    char addr[32];
    long port = 0;
    http_server *http = NULL;
    sigset_t sigs;
    int sig = 0, rc = 1;
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "port=", 5) == 0)
            port = strtol(argv[i] + 5, NULL, 10);
        else if (strncmp(argv[i], "secret=", 7) == 0)
            r.secret = argv[i] + 7;
        else if (strncmp(argv[i], "delay_ms=", 9) == 0)
            r.delay_ms = strtol(argv[i] + 9, NULL, 10);
        else if (strcmp(argv[i], "mode=fail") == 0)
            r.fail = true;
        else if (strcmp(argv[i], "mode=ok") != 0)
            port = 0;
    }
    if (port <= 0 || port > 65535 || r.secret == NULL || r.delay_ms < 0) {
        fprintf(stderr, "usage: webhook_sink port=<n> secret=<s> [mode=ok|fail] [delay_ms=<n>]\n");
        return 2;
    }
    snprintf(addr, sizeof addr, "127.0.0.1:%ld", port);
    /* Blocked in every thread (they inherit the mask), taken by sigwait. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    pthread_mutex_init(&r.lock, NULL);
    r.received = json_array();
    if (http_server_create(&http, addr, NULL) != OMS_OK ||
        http_route(http, "POST", "/hook", false, h_hook, &r) != OMS_OK ||
        http_route(http, "GET", "/stats", false, h_stats, &r) != OMS_OK ||
        http_server_start(http) != OMS_OK)
        goto out;
    fprintf(stderr, "webhook_sink: listening on %s%s\n", addr, r.fail ? " (mode=fail)" : "");
    sigwait(&sigs, &sig);
    rc = 0;
out:
    http_server_destroy(http);
    json_decref(r.received);
    pthread_mutex_destroy(&r.lock);
    return rc;
}
