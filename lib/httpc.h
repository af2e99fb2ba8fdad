/*
 * httpc.h - the one outgoing client on libcurl: HTTP requests and SMTP
 * uploads, a group at a time, in parallel on one multi handle, so a slow
 * peer costs one timeout per group rather than per request. Every curl
 * option, the capture of an answer's body under a size cap and the text of
 * a transfer's error are set here; callers say what to send and read what
 * came back.
 *
 * A session keeps its multi handle (and so its connection cache) from group
 * to group, so SMTP sessions and keep-alive connections serve the next
 * group; without one, each group gets a handle of its own.
 *
 * On top: httpc_post_all, JSON POSTs each with its own Idempotency-Key, for
 * gateways that must never see a request twice as two operations.
 *
 * curl_global_init must have run before the first call (the process does it
 * once, before starting threads).
 */
#ifndef OMS_HTTPC_H
#define OMS_HTTPC_H

#include "oms.h"

#include <stddef.h>

#define HTTPC_RESPONSE_MAX 4096
#define HTTPC_ERROR_LEN 256

typedef struct httpc_session httpc_session;

/* STARTTLS on an smtp:// URL (smtps:// is TLS from the start); a server's
 * certificate is verified whenever TLS is used. */
typedef enum httpc_tls {
    HTTPC_TLS_TRY = 0, /* when the server offers it */
    HTTPC_TLS_REQUIRE,
    HTTPC_TLS_OFF,
} httpc_tls;

/* The envelope of an SMTP upload; borrowed. */
typedef struct httpc_mail {
    const char *from;     /* "<a@b>" */
    const char *rcpt;     /* "<c@d>", the one recipient */
    const char *user;     /* NULL: no AUTH */
    const char *password; /* NULL with a user: empty */
    httpc_tls tls;
} httpc_mail;

typedef struct httpc_request {
    /* inputs, borrowed */
    const char *url;            /* NULL: skipped, outputs untouched */
    const char *method;         /* NULL: POST with a body, GET without */
    const char *body;           /* request body, or the message a mail uploads; NULL: none */
    size_t body_len;            /* 0: strlen(body) */
    const char *const *headers; /* n_headers lines "Name: value" */
    size_t n_headers;
    const char *user_agent;    /* NULL: none */
    const httpc_mail *mail;    /* set: an SMTP upload of body to url */
    size_t response_max_bytes; /* body bytes kept; 0: the body is dropped */
    bool refuse_larger;        /* a longer body fails the transfer instead of being cut */
    /* outputs, set by httpc_run; free with httpc_request_fini */
    bool done;      /* completed: an HTTP answer came back, the mail was taken */
    long status;    /* HTTP status or last SMTP reply; 0 when none */
    char *response; /* NUL-terminated first bytes of the body, or NULL */
    size_t response_len;
    bool too_big;                /* the body was longer than response_max_bytes */
    char error[HTTPC_ERROR_LEN]; /* not done: why, curl's detailed text */
    const char *code_text;       /* not done: curl's short text for the result (static) */
} httpc_request;

/* A session whose connection cache keeps at most max_connections idle
 * connections, none reused after max_idle_s seconds (0: curl's default).
 * Caller frees with httpc_session_destroy. OMS_ENOMEM on failure. */
oms_status httpc_session_create(httpc_session **out, long max_connections, long max_idle_s);

/* Closes the session's connections; NULL does nothing. */
void httpc_session_destroy(httpc_session *s);

/* Runs every request in parallel on session (NULL: a handle for this group
 * only) and waits for all, each bounded by connect_timeout_ms and
 * timeout_ms; fills the outputs, "no answer" in error until a transfer
 * says otherwise. Borrows everything. OMS_ENOMEM when the transfers cannot
 * be set up (then no output is meaningful, but fini is still due). */
oms_status httpc_run(httpc_session *session, httpc_request *reqs, size_t n, long connect_timeout_ms,
                     long timeout_ms);

/* Frees r's response; the inputs are the caller's. NULL does nothing. */
void httpc_request_fini(httpc_request *r);

typedef struct httpc_post {
    /* inputs, borrowed */
    const char *url;
    const char *body;            /* JSON; NULL: a GET */
    const char *idempotency_key; /* header value; NULL: no header */
    /* outputs */
    bool answered;                         /* an HTTP answer came back */
    long status;                           /* 0 when not answered */
    char response[HTTPC_RESPONSE_MAX + 1]; /* the first bytes of the answer's body */
    size_t response_len;
    char error[HTTPC_ERROR_LEN]; /* not answered: why (curl's short text) */
} httpc_post;

/* Sends every post in parallel (JSON, with its Idempotency-Key) and waits
 * for all, each bounded by connect_timeout_ms and timeout_ms; fills the
 * outputs. OMS_ENOMEM when the requests cannot be built (then no output is
 * meaningful). */
oms_status httpc_post_all(httpc_post *posts, size_t n, long connect_timeout_ms, long timeout_ms);

/* Whether an answer is worth retrying: no answer, 5xx, 408 or 429. */
bool httpc_retryable(const httpc_post *p);

/* A peer's reason in a JSON error body ({"reason"|"error"|"message": "..."}),
 * else fallback. Writes into out. */
void httpc_reason(const httpc_post *p, const char *fallback, char *out, size_t out_len);

#endif
