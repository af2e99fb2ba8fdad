/*
 * fake_gateway.c - a payment gateway for the payment and refund integration tests: a
 * real HTTP server (lib/http.h) that accepts charges and calls back, signed
 * as lib/hmac.h describes, the way a card processor's webhooks do.
 *
 *   fake_gateway port=<n> secret=<webhook secret> [mode=<mode>] [delay_ms=<n>]
 *                [refund_delay_ms=<n>] [refund_fail_first_n=<n>]
 *
 * POST /charges {payment_id, order_id, amount_cents, currency, callback_url}
 * with an Idempotency-Key header answers 202, then, delay_ms later (default
 * 200), POSTs {payment_id, status, gateway_ref, reason} to callback_url:
 * "succeeded", or "failed" with "insufficient funds" when the amount ends in
 * 13 cents. amount_cents <= 0 answers 422 {"error": "amount_cents must be
 * positive"}, and so does an amount ending in 42 cents with {"error": "card
 * rejected"}; a malformed charge 400. A charge repeated with a key already
 * accepted answers 202 again and calls back no second time. A callback that
 * gets no answer or a 5xx is retried every 200 ms for 60 s (a 4xx is final).
 *
 * Modes: normal (default); fail_first_n=N: 503 to the first N charge attempts
 * of each payment; bad_signature: a callback signed with the wrong secret
 * first, then the right one; replay: the valid callback, byte for byte,
 * twice; stale: one signed 20 minutes ago first, then a valid one;
 * no_callback: charges are accepted and decided, but never called back.
 *
 * GET /charges/{payment_id} answers what became of an accepted charge,
 * {payment_id, status: "succeeded"|"failed", gateway_ref, reason}, and 404
 * for a charge it never accepted; each lookup is counted in "lookups".
 *
 * POST /refunds {refund_id, order_id, amount_cents, currency, ...} with an
 * Idempotency-Key header answers, refund_delay_ms later (default 0; the
 * refund is recorded before the wait, so a client that gives up or dies
 * meanwhile finds it done when it retries), 200 {"refund_id", "status":
 * "succeeded", "gateway_ref"}; 422 {"error": "refund declined by the card
 * issuer"} when the amount ends in 13 cents, or {"error": "amount_cents must
 * be positive"}. The same key again gets the same answer and refunds nothing
 * twice. refund_fail_first_n=N: 503 to the first N attempts of each key.
 *
 * GET /stats answers what it saw, for the tests to assert on:
 *   {"charges_total": n,
 *    "charges": {"<payment_id>": {"order_id", "amount_cents", "currency",
 *                "callback_url", "attempts", "attempt_ms": [...],
 *                "idempotency_keys": [...], "answers": [503, 202, ...]}},
 *    "callbacks": [{"payment_id", "kind", "status" (0: no answer)}],
 *    "deliveries_pending": n,
 *    "refunds_total": n (requests), "refunded_cents": n (each key once),
 *    "refunds": {"<key>": {"order_id", "amount_cents", "attempts", "answers"}}}
 * SIGTERM or SIGINT: exits 0.
 */
#include "hmac.h"
#include "http.h"

#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RETRY_MS 200
#define STEP_GAP_MS 50
#define MAX_TRIES 300
#define STALE_S (20 * 60)
#define SENDER_POLL_MS 20

typedef enum step_kind { STEP_VALID, STEP_BAD_SIGNATURE, STEP_STALE, STEP_REPLAY } step_kind;

static const char *const STEP_NAMES[] = {"valid", "bad_signature", "stale", "replay"};

typedef enum mode {
    MODE_NORMAL,
    MODE_FAIL_FIRST_N,
    MODE_BAD_SIGNATURE,
    MODE_REPLAY,
    MODE_STALE,
    MODE_NO_CALLBACK,
} mode;

/* The callbacks of one accepted charge, sent in order. */
typedef struct delivery {
    struct delivery *next;
    char *payment_id, *url, *body;
    char last_header[HMAC_HEX_LEN + 64]; /* the previous valid step's, for replay */
    step_kind steps[2];
    size_t n_steps, step;
    int64_t due_ms;
    int tries;
} delivery;

typedef struct gateway {
    const char *secret;
    mode mode;
    long fail_first_n;
    int64_t delay_ms;
    pthread_mutex_t lock;
    json_t *charges;   /* payment_id -> what was seen */
    json_t *callbacks; /* every callback sent, in order */
    long charges_total;
    long lookups;    /* GET /charges/{id} answered */
    json_t *refunds; /* Idempotency-Key -> what was seen and answered */
    long refunds_total;
    long refunded_cents;
    int64_t refund_delay_ms;
    long refund_fail_first_n;
    delivery *queue;
    long in_flight; /* deliveries taken off the queue and being sent */
    atomic_int stop;
} gateway;

/* ---- charges ---------------------------------------------------------- */

static json_t *charge_record(gateway *g, const char *payment_id, json_t *req)
{
    json_t *rec = json_object_get(g->charges, payment_id);
    if (rec != NULL)
        return rec;
    rec = json_pack("{s:O,s:O,s:O,s:O,s:i,s:[],s:[],s:[],s:b}", "order_id",
                    json_object_get(req, "order_id"), "amount_cents",
                    json_object_get(req, "amount_cents"), "currency",
                    json_object_get(req, "currency"), "callback_url",
                    json_object_get(req, "callback_url"), "attempts", 0, "attempt_ms",
                    "idempotency_keys", "answers", "accepted", 0);
    json_object_set_new(g->charges, payment_id, rec);
    return rec;
}

static void key_seen(json_t *rec, const char *key)
{
    json_t *keys = json_object_get(rec, "idempotency_keys");
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k) if (strcmp(json_string_value(k), key) == 0) return;
    json_array_append_new(keys, json_string(key));
}

/* The gateway's decision on an accepted charge, as a callback body. */
static json_t *outcome(const char *payment_id, int64_t amount_cents)
{
    char ref[32];
    bool failed = amount_cents % 100 == 13;
    snprintf(ref, sizeof ref, "fgw-%.8s", payment_id);
    return json_pack("{s:s,s:s,s:s,s:s}", "payment_id", payment_id, "status",
                     failed ? "failed" : "succeeded", "gateway_ref", ref, "reason",
                     failed ? "insufficient funds" : "");
}

static void enqueue(gateway *g, const char *payment_id, const char *url, int64_t amount_cents)
{
    if (g->mode == MODE_NO_CALLBACK)
        return;
    delivery *d = calloc(1, sizeof *d);
    json_t *body = outcome(payment_id, amount_cents);
    d->payment_id = strdup(payment_id);
    d->url = strdup(url);
    d->body = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    d->steps[0] = STEP_VALID;
    d->n_steps = 1;
    if (g->mode == MODE_BAD_SIGNATURE || g->mode == MODE_STALE) {
        d->steps[0] = g->mode == MODE_STALE ? STEP_STALE : STEP_BAD_SIGNATURE;
        d->steps[1] = STEP_VALID;
        d->n_steps = 2;
    } else if (g->mode == MODE_REPLAY) {
        d->steps[1] = STEP_REPLAY;
        d->n_steps = 2;
    }
    d->due_ms = oms_mono_ms() + g->delay_ms;
    d->next = g->queue;
    g->queue = d;
}

/* Decides the answer to one charge attempt; called under the lock. */
static int charge_answer(gateway *g, json_t *req, const char *payment_id, const char *key,
                         const char **error)
{
    json_t *rec = charge_record(g, payment_id, req);
    json_int_t attempts = json_integer_value(json_object_get(rec, "attempts")) + 1;
    json_int_t amount = json_integer_value(json_object_get(req, "amount_cents"));
    int status = 202;
    json_object_set_new(rec, "attempts", json_integer(attempts));
    json_array_append_new(json_object_get(rec, "attempt_ms"), json_integer(oms_now_ms()));
    key_seen(rec, key);
    g->charges_total++;
    if (g->mode == MODE_FAIL_FIRST_N && attempts <= g->fail_first_n) {
        status = 503;
        *error = "gateway temporarily unavailable";
    } else if (amount <= 0) {
        status = 422;
        *error = "amount_cents must be positive";
    } else if (amount % 100 == 42) {
        status = 422;
        *error = "card rejected";
    } else if (!json_is_true(json_object_get(rec, "accepted"))) {
        json_object_set_new(rec, "accepted", json_true());
        enqueue(g, payment_id, json_string_value(json_object_get(req, "callback_url")), amount);
    }
    json_array_append_new(json_object_get(rec, "answers"), json_integer(status));
    return status;
}

static void h_charges(void *ctx, const http_request *req, http_response *resp)
{
    gateway *g = ctx;
    size_t len = 0;
    const char *body = http_body(req, &len);
    const char *key = http_header(req, "Idempotency-Key");
    const char *error = NULL;
    json_t *charge = json_loadb(body, len, 0, NULL);
    const char *payment_id = json_string_value(json_object_get(charge, "payment_id"));
    if (payment_id == NULL || !json_is_string(json_object_get(charge, "order_id")) ||
        !json_is_integer(json_object_get(charge, "amount_cents")) ||
        !json_is_string(json_object_get(charge, "currency")) ||
        !json_is_string(json_object_get(charge, "callback_url")) || key == NULL) {
        http_respond_error(resp, 400,
                           "a charge needs payment_id, order_id, amount_cents, "
                           "currency, callback_url and an Idempotency-Key header");
        json_decref(charge);
        return;
    }
    pthread_mutex_lock(&g->lock);
    int status = charge_answer(g, charge, payment_id, key, &error);
    pthread_mutex_unlock(&g->lock);
    fprintf(stderr, "fake_gateway: charge %s -> %d\n", payment_id, status);
    if (error != NULL)
        http_respond_error(resp, status, "%s", error);
    else
        http_respond_json(resp, status,
                          json_pack("{s:s,s:s}", "payment_id", payment_id, "status", "pending"));
    json_decref(charge);
}

static void h_charge_lookup(void *ctx, const http_request *req, http_response *resp)
{
    gateway *g = ctx;
    const char *payment_id = http_path_param(req, 0);
    json_t *answer = NULL;
    pthread_mutex_lock(&g->lock);
    g->lookups++;
    json_t *rec = json_object_get(g->charges, payment_id ? payment_id : "");
    if (rec != NULL && json_is_true(json_object_get(rec, "accepted")))
        answer = outcome(payment_id, json_integer_value(json_object_get(rec, "amount_cents")));
    pthread_mutex_unlock(&g->lock);
    if (answer == NULL) {
        http_respond_json(resp, 404, json_pack("{s:s}", "error", "no such charge"));
        return;
    }
    http_respond_json(resp, 200, answer);
}

static void h_stats(void *ctx, const http_request *req, http_response *resp)
{
    gateway *g = ctx;
    (void)req;
    long pending = 0;
    pthread_mutex_lock(&g->lock);
    for (delivery *d = g->queue; d != NULL; d = d->next)
        pending++;
    /* One being sent may still have steps to go: it is pending too. */
    pending += g->in_flight;
    json_t *stats = json_pack("{s:I,s:O,s:O,s:I,s:I,s:I,s:O,s:I}", "charges_total",
                              (json_int_t)g->charges_total, "charges", g->charges, "callbacks",
                              g->callbacks, "deliveries_pending", (json_int_t)pending,
                              "refunds_total", (json_int_t)g->refunds_total, "refunded_cents",
                              (json_int_t)g->refunded_cents, "refunds", g->refunds, "lookups",
                              (json_int_t)g->lookups);
    /* Serialised under the lock: the handlers change these objects. */
    char *text = json_dumps(stats, JSON_COMPACT);
    json_decref(stats);
    pthread_mutex_unlock(&g->lock);
    http_respond_text(resp, 200, "application/json", text ? text : "{}");
    free(text);
}

/* ---- refunds ---------------------------------------------------------- */

/* Decides the answer to one refund attempt; called under the lock. */
static int refund_answer(gateway *g, json_t *req, const char *key, const char **error)
{
    json_t *rec = json_object_get(g->refunds, key);
    json_int_t amount = json_integer_value(json_object_get(req, "amount_cents"));
    if (rec == NULL) {
        rec = json_pack("{s:O,s:I,s:i,s:[],s:n}", "order_id", json_object_get(req, "order_id"),
                        "amount_cents", amount, "attempts", 0, "answers", "decided");
        json_object_set_new(g->refunds, key, rec);
    }
    json_int_t attempts = json_integer_value(json_object_get(rec, "attempts")) + 1;
    json_object_set_new(rec, "attempts", json_integer(attempts));
    g->refunds_total++;
    int status;
    json_t *decided = json_object_get(rec, "decided");
    if (attempts <= g->refund_fail_first_n) {
        status = 503;
        *error = "gateway temporarily unavailable";
    } else if (json_is_integer(decided)) {
        status = (int)json_integer_value(decided); /* the same key: the same answer */
    } else {
        status = amount <= 0 || amount % 100 == 13 ? 422 : 200;
        json_object_set_new(rec, "decided", json_integer(status));
        if (status == 200)
            g->refunded_cents += (long)amount;
    }
    if (status == 422)
        *error = amount <= 0 ? "amount_cents must be positive"
                             : "refund declined by the card issuer";
    json_array_append_new(json_object_get(rec, "answers"), json_integer(status));
    return status;
}

static void h_refunds(void *ctx, const http_request *req, http_response *resp)
{
    gateway *g = ctx;
    size_t len = 0;
    const char *body = http_body(req, &len);
    const char *key = http_header(req, "Idempotency-Key");
    const char *error = NULL;
    char ref[48];
    json_t *refund = json_loadb(body, len, 0, NULL);
    const char *refund_id = json_string_value(json_object_get(refund, "refund_id"));
    if (refund_id == NULL || !json_is_string(json_object_get(refund, "order_id")) ||
        !json_is_integer(json_object_get(refund, "amount_cents")) || key == NULL) {
        http_respond_error(resp, 400,
                           "a refund needs refund_id, order_id, amount_cents and an "
                           "Idempotency-Key header");
        json_decref(refund);
        return;
    }
    pthread_mutex_lock(&g->lock);
    int status = refund_answer(g, refund, key, &error);
    pthread_mutex_unlock(&g->lock);
    fprintf(stderr, "fake_gateway: refund %s -> %d\n", key, status);
    /* Decided and recorded first: a client that dies while waiting finds
     * the refund done when it asks again under the same key. */
    if (g->refund_delay_ms > 0)
        oms_sleep_ms(g->refund_delay_ms, NULL);
    snprintf(ref, sizeof ref, "fgr-%.8s", key);
    if (error != NULL)
        http_respond_error(resp, status, "%s", error);
    else
        http_respond_json(resp, status,
                          json_pack("{s:s,s:s,s:s}", "refund_id", refund_id, "status", "succeeded",
                                    "gateway_ref", ref));
    json_decref(refund);
}

/* ---- callbacks -------------------------------------------------------- */

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p, (void)arg;
    return size * n;
}

/* POSTs body to url with the signature header; the HTTP status, 0 if none. */
static long post_signed(const char *url, const char *body, const char *signature)
{
    char header[HMAC_HEX_LEN + 128];
    long status = 0;
    struct curl_slist *headers = NULL;
    CURL *curl = curl_easy_init();
    snprintf(header, sizeof header, "%s: %s", HMAC_HEADER, signature);
    headers = curl_slist_append(headers, "Content-Type: application/json");
    headers = curl_slist_append(headers, header);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
    if (curl_easy_perform(curl) == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    return status;
}

static void sign_step(gateway *g, delivery *d, char *out, size_t out_len)
{
    char wrong[256];
    int64_t now_s = oms_now_ms() / 1000;
    size_t len = strlen(d->body);
    switch (d->steps[d->step]) {
    case STEP_VALID:
        hmac_header_value(g->secret, now_s, d->body, len, out, out_len);
        snprintf(d->last_header, sizeof d->last_header, "%s", out);
        break;
    case STEP_BAD_SIGNATURE:
        snprintf(wrong, sizeof wrong, "not-%s", g->secret);
        hmac_header_value(wrong, now_s, d->body, len, out, out_len);
        break;
    case STEP_STALE:
        hmac_header_value(g->secret, now_s - STALE_S, d->body, len, out, out_len);
        break;
    case STEP_REPLAY: snprintf(out, out_len, "%s", d->last_header); break;
    }
}

/* The earliest due delivery, unlinked from the queue; NULL if none is due. */
static delivery *take_due(gateway *g)
{
    delivery **best = NULL;
    int64_t now = oms_mono_ms();
    for (delivery **p = &g->queue; *p != NULL; p = &(*p)->next)
        if ((*p)->due_ms <= now && (best == NULL || (*p)->due_ms < (*best)->due_ms))
            best = p;
    if (best == NULL)
        return NULL;
    delivery *d = *best;
    *best = d->next;
    d->next = NULL;
    g->in_flight++;
    return d;
}

static void delivery_free(delivery *d)
{
    free(d->payment_id);
    free(d->url);
    free(d->body);
    free(d);
}

/* Sends the delivery's current step; puts it back unless it is finished. */
static void send_step(gateway *g, delivery *d)
{
    char signature[HMAC_HEX_LEN + 64];
    sign_step(g, d, signature, sizeof signature);
    long status = post_signed(d->url, d->body, signature);
    const char *kind = STEP_NAMES[d->steps[d->step]];
    fprintf(stderr, "fake_gateway: callback %s (%s) -> %ld\n", d->payment_id, kind, status);
    pthread_mutex_lock(&g->lock);
    json_array_append_new(g->callbacks, json_pack("{s:s,s:s,s:i}", "payment_id", d->payment_id,
                                                  "kind", kind, "status", (int)status));
    if (status == 0 || status >= 500) {
        d->due_ms = oms_mono_ms() + RETRY_MS;
        d->tries++;
    } else {
        d->step++;
        d->due_ms = oms_mono_ms() + STEP_GAP_MS;
    }
    if (d->step < d->n_steps && d->tries < MAX_TRIES) {
        d->next = g->queue;
        g->queue = d;
        d = NULL;
    }
    g->in_flight--;
    pthread_mutex_unlock(&g->lock);
    if (d != NULL)
        delivery_free(d);
}

static void *sender_main(void *arg)
{
    gateway *g = arg;
    while (!atomic_load(&g->stop)) {
        pthread_mutex_lock(&g->lock);
        delivery *d = take_due(g);
        pthread_mutex_unlock(&g->lock);
        if (d == NULL)
            oms_sleep_ms(SENDER_POLL_MS, NULL);
        else
            send_step(g, d);
    }
    return NULL;
}

/* ---- main ------------------------------------------------------------- */

static bool parse_mode(gateway *g, const char *v)
{
    char *end = NULL;
    if (strcmp(v, "normal") == 0)
        g->mode = MODE_NORMAL;
    else if (strcmp(v, "bad_signature") == 0)
        g->mode = MODE_BAD_SIGNATURE;
    else if (strcmp(v, "replay") == 0)
        g->mode = MODE_REPLAY;
    else if (strcmp(v, "stale") == 0)
        g->mode = MODE_STALE;
    else if (strcmp(v, "no_callback") == 0)
        g->mode = MODE_NO_CALLBACK;
    else if (strncmp(v, "fail_first_n=", 13) == 0) {
        g->mode = MODE_FAIL_FIRST_N;
        g->fail_first_n = strtol(v + 13, &end, 10);
        return *end == '\0' && g->fail_first_n >= 0;
    } else
        return false;
    return true;
}

static bool parse_args(gateway *g, int argc, char **argv, char *addr, size_t addr_len)
{
    long port = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *eq = strchr(a, '=');
        if (eq == NULL)
            return false;
        if (strncmp(a, "port=", 5) == 0)
            port = strtol(eq + 1, NULL, 10);
        else if (strncmp(a, "secret=", 7) == 0)
            g->secret = eq + 1;
        else if (strncmp(a, "delay_ms=", 9) == 0)
            g->delay_ms = strtol(eq + 1, NULL, 10);
        else if (strncmp(a, "refund_delay_ms=", 16) == 0)
            g->refund_delay_ms = strtol(eq + 1, NULL, 10);
        else if (strncmp(a, "refund_fail_first_n=", 20) == 0)
            g->refund_fail_first_n = strtol(eq + 1, NULL, 10);
        else if (strncmp(a, "mode=", 5) != 0 || !parse_mode(g, eq + 1))
            return false;
    }
    snprintf(addr, addr_len, "127.0.0.1:%ld", port);
    return port > 0 && port < 65536 && g->secret != NULL && g->delay_ms >= 0;
}

int main(int argc, char **argv)
{
    gateway g = {.delay_ms = 200};
    char addr[32];
    http_server *http = NULL;
    pthread_t sender;
    sigset_t sigs;
    int sig = 0, rc = 1;
    if (!parse_args(&g, argc, argv, addr, sizeof addr)) {
        fprintf(stderr, "usage: fake_gateway port=<n> secret=<s> [mode=normal|fail_first_n=N|"
                        "bad_signature|replay|stale|no_callback] [delay_ms=<n>]"
                        " [refund_delay_ms=<n>] [refund_fail_first_n=<n>]\n");
        return 2;
    }
    /* Blocked in every thread (they inherit the mask), taken by sigwait. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    pthread_mutex_init(&g.lock, NULL);
    g.charges = json_object();
    g.callbacks = json_array();
    g.refunds = json_object();
    if (http_server_create(&http, addr, NULL) != OMS_OK ||
        http_route(http, "POST", "/charges", false, h_charges, &g) != OMS_OK ||
        http_route(http, "GET", "/stats", false, h_stats, &g) != OMS_OK ||
        http_route(http, "GET", "/charges/{}", false, h_charge_lookup, &g) != OMS_OK ||
        http_route(http, "POST", "/refunds", false, h_refunds, &g) != OMS_OK ||
        http_server_start(http) != OMS_OK)
        goto out;
    if (pthread_create(&sender, NULL, sender_main, &g) != 0)
        goto out;
    fprintf(stderr, "fake_gateway: listening on %s\n", addr);
    sigwait(&sigs, &sig);
    atomic_store(&g.stop, 1);
    pthread_join(sender, NULL);
    rc = 0;
out:
    http_server_destroy(http);
    while (g.queue != NULL) {
        delivery *d = g.queue;
        g.queue = d->next;
        delivery_free(d);
    }
    json_decref(g.charges);
    json_decref(g.callbacks);
    json_decref(g.refunds);
    pthread_mutex_destroy(&g.lock);
    curl_global_cleanup();
    return rc;
}
