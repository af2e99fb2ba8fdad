/*
 * httpc.h - outgoing HTTP on libcurl: a group of JSON POSTs sent in parallel
 * through one multi handle, each with its own Idempotency-Key, so a slow
 * peer costs one timeout per group rather than per request. For gateways
 * that must never see a request twice as two operations: a retry carries the
 * same key.
 *
 * curl_global_init must have run before the first call (the process does it
 * once, before starting threads).
 */
#ifndef OMS_HTTPC_H
#define OMS_HTTPC_H

#include "oms.h"

#define HTTPC_RESPONSE_MAX 4096
#define HTTPC_ERROR_LEN 256

typedef struct httpc_post {
    /* inputs, borrowed */
    const char *url;
    const char *body;            /* JSON; NULL: a GET */
    const char *idempotency_key; /* header value; NULL: no header */
    /* outputs */
    bool answered;                            /* an HTTP answer came back */
    long status;                              /* 0 when not answered */
    char response[HTTPC_RESPONSE_MAX + 1];    /* the first bytes of the answer's body */
    size_t response_len;
    char error[HTTPC_ERROR_LEN];              /* not answered: why (curl's text) */
} httpc_post;

/* Sends every post in parallel and waits for all, each bounded by
 * connect_timeout_ms and timeout_ms; fills the outputs. OMS_ENOMEM when the
 * requests cannot be built (then no output is meaningful). */
oms_status httpc_post_all(httpc_post *posts, size_t n, long connect_timeout_ms, long timeout_ms);

/* Whether an answer is worth retrying: no answer, 5xx, 408 or 429. */
bool httpc_retryable(const httpc_post *p);

/* A peer's reason in a JSON error body ({"reason"|"error"|"message": "..."}),
 * else fallback. Writes into out. */
void httpc_reason(const httpc_post *p, const char *fallback, char *out, size_t out_len);

#endif
