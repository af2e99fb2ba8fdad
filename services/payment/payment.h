/*
 * payment.h - the payment service: stock.reserved in, payment.settled out.
 *
 * One payment per order (order_id is UNIQUE, so a stock.reserved redelivered
 * under another event id charges nothing twice). Two gateways:
 *
 * - mock: the consumer decides each charge in the batch's own transaction
 *   from a deterministic hash of (seed, order id) and writes payment.settled
 *   to the outbox in that transaction.
 * - http: the consumer only inserts pending payments; a charger thread (its
 *   own PostgreSQL connection) claims due ones with a short lease, POSTs them
 *   to the gateway in parallel, outside any transaction, and records the
 *   answers; the gateway's HMAC-signed callback (POST /callbacks/payment)
 *   settles a payment. Every write that settles a payment is conditional on
 *   it not being settled yet, so each payment is settled, and payment.settled
 *   published, exactly once whatever the order of answers and callbacks.
 */
#ifndef OMS_PAYMENT_H
#define OMS_PAYMENT_H

#include "config.h"
#include "consumer.h"
#include "service.h"

#define PAYMENT_PRODUCER "payment"
#define PAYMENT_URL_LEN 1024
#define PAYMENT_ID_MAX 128     /* bytes of a payment id in a callback */
#define PAYMENT_REF_MAX 256    /* bytes of a gateway reference */
#define PAYMENT_REASON_MAX 512 /* bytes of a failure reason */
#define PAYMENT_ERR_LEN 256
#define PAYMENT_CLAIM_MAX 32 /* payments the charger sends at once */
#define PAYMENT_BACKOFF_BASE_MS 100
#define PAYMENT_BACKOFF_MAX_MS 30000
#define PAYMENT_MOCK_DECLINED "card declined (mock gateway)"

extern const pg_migration payment_migrations[];

typedef enum payment_gateway_kind {
    PAYMENT_GATEWAY_MOCK = 0,
    PAYMENT_GATEWAY_HTTP,
} payment_gateway_kind;

/* The payment settings, read once at start. Strings point into the
 * environment or static defaults, except the two URL buffers. */
typedef struct payment_settings {
    payment_gateway_kind gateway;       /* OMS_PAYMENT_GATEWAY: mock (default) | http */
    const char *seed;                   /* OMS_PAYMENT_SEED, default "oms" */
    double success_rate;                /* OMS_PAYMENT_SUCCESS_RATE, [0, 1], default 0.9 */
    int64_t latency_ms;                 /* OMS_PAYMENT_LATENCY_MS, mock: sleep per batch */
    const char *webhook_secret;         /* OMS_PAYMENT_WEBHOOK_SECRET, required in http mode */
    char charges_url[PAYMENT_URL_LEN];  /* OMS_PAYMENT_GATEWAY_URL + "/charges" */
    char callback_url[PAYMENT_URL_LEN]; /* OMS_PAYMENT_CALLBACK_URL, "" = derive from
                                           OMS_HTTP_ADDR (payment_callback_url_default) */
    int max_attempts;                   /* OMS_PAYMENT_MAX_ATTEMPTS, default 5 */
    int64_t timeout_ms;                 /* OMS_PAYMENT_GATEWAY_TIMEOUT_MS, default 10000 */
    int64_t connect_timeout_ms;         /* OMS_PAYMENT_GATEWAY_CONNECT_TIMEOUT_MS, default 2000 */
    int64_t callback_timeout_ms;        /* OMS_PAYMENT_CALLBACK_TIMEOUT_MS, default 300000: a
                                           submitted charge without a callback for this long
                                           is looked up at the gateway */
} payment_settings;

/* Reads and validates the OMS_PAYMENT_* variables. On a bad value returns
 * OMS_EINVAL with a message naming the variable in err. */
oms_status payment_config(payment_settings *cfg, char err[CONFIG_ERR_LEN]);

/* Fills cfg->callback_url from http_addr ("host:port") when it is empty:
 * http://<host>:<port>/callbacks/payment, host 127.0.0.1 when the address
 * listens on every interface. */
void payment_callback_url_default(payment_settings *cfg, const char *http_addr);

typedef struct payment_charger payment_charger;

/* The domain context shared by the consumer, the charger and HTTP handlers. */
typedef struct payment_ctx {
    payment_settings cfg;
    const char *currency; /* OMS_CURRENCY: for events that name none */
    const char *dsn;
    struct metrics *m;
    oms_service *svc;
    const atomic_int *stopping;
    payment_charger *charger; /* http mode only */
} payment_ctx;

/* Declares the payment metrics and creates their series at 0. */
void payment_metrics_declare(struct metrics *m);

/* ---- the mock gateway (payment_mock.c) ---- */

#define PAYMENT_FNV_OFFSET 0xcbf29ce484222325ULL
#define PAYMENT_FNV_PRIME 0x100000001b3ULL

/* 64-bit FNV-1a of data, continuing from h (start with PAYMENT_FNV_OFFSET). */
uint64_t payment_fnv1a64(uint64_t h, const void *data, size_t len);

/* MurmurHash3's 64-bit finalizer: mixes every bit of h into every bit. */
uint64_t payment_fmix64(uint64_t h);

/* The mock's draw for an order: fmix64(FNV-1a-64 of "<seed>:<order_id>"),
 * its top 53 bits scaled to [0, 1). */
double payment_mock_draw(const char *seed, const char *order_id);

/* True when the mock charges the order successfully: draw < success_rate. */
bool payment_mock_succeeds(const char *seed, const char *order_id, double success_rate);

/* ---- payments and events (payment_events.c) ---- */

/* The columns every statement returning payments returns, in this order, for
 * payment_emit_settled; the table must be aliased p. */
#define PAYMENT_RETURNING                                                       \
    "p.payment_id, p.order_id, p.amount_cents, p.currency, p.status, p.reason," \
    " p.gateway_ref, p.attempts, p.reserved_event_id"

/* Settled payments counted while a transaction is built, reported after. */
typedef struct payment_tally {
    long succeeded, failed;
} payment_tally;

/* Adds payment.settled for row r of res (PAYMENT_RETURNING columns) to ob
 * when its status is succeeded or failed, and counts it in t; does nothing for
 * other statuses. Borrows res. */
oms_status payment_emit_settled(outbox_batch *ob, const PGresult *res, int r, payment_tally *t);

/* Adds t to oms_payments_total. */
void payment_tally_report(struct metrics *m, const payment_tally *t);

/* consumer_apply_fn for stock.reserved: one payment per new order. */
oms_status payment_apply_stock_reserved(void *ctx, consumer_batch *b);

/* ---- the gateway client (payment_gateway.c, libcurl) ---- */

typedef enum payment_gateway_result {
    PAYMENT_GW_ACCEPTED = 0, /* 2xx: the gateway will call back */
    PAYMENT_GW_REJECTED,     /* 4xx but 408/429: final, the charge failed */
    PAYMENT_GW_ERROR,        /* network error, timeout, 5xx, 408, 429, other: retry */
} payment_gateway_result;

/* One charge request and its answer. The inputs are borrowed. */
typedef struct payment_charge {
    const char *payment_id, *order_id, *currency;
    int64_t amount_cents;
    int attempts;                        /* including this one */
    payment_gateway_result result;       /* set by payment_gateway_send */
    long http_status;                    /* 0 when no answer */
    char detail[PAYMENT_REASON_MAX + 1]; /* rejection: the gateway's reason; error: why */
} payment_charge;

/* Sends every charge in parallel (POST cfg->charges_url, JSON, header
 * Idempotency-Key: <payment_id>) and waits for all, each bounded by the
 * configured timeouts; fills result, http_status and detail. OMS_ENOMEM when
 * the requests cannot be built (then no result is meaningful). */
oms_status payment_gateway_send(const payment_settings *cfg, payment_charge *charges, size_t n);

/* Classifies an answer: curl_ok false means no HTTP answer at all. */
payment_gateway_result payment_gateway_classify(bool curl_ok, long http_status);

/* The reason a gateway gave in a refusal body ({"reason"|"error"|"message":
 * "..."}), else "payment gateway refused the charge (HTTP <status>)". */
void payment_gateway_reason(const char *body, size_t len, long http_status, char *out,
                            size_t out_len);

/* ---- the charger (payment_charger.c) ---- */

/* The wait before the next attempt after failed_attempts failed ones (>= 1):
 * 100 ms * 2^(failed_attempts - 1), at most PAYMENT_BACKOFF_MAX_MS. */
int64_t payment_backoff_ms(int failed_attempts);

/* What an answer does to a pending payment. */
typedef struct payment_outcome {
    const char *status; /* "submitted", "failed" or "pending" (retry) */
    char reason[PAYMENT_REASON_MAX + 1];
    int64_t retry_in_ms; /* pending: when to try again */
} payment_outcome;

/* Decides the outcome of charge c (c->attempts requests made so far). */
void payment_charge_outcome(const payment_charge *c, int max_attempts, payment_outcome *out);

/* Claims up to PAYMENT_CLAIM_MAX due pending payments, charges them and
 * records the answers; one round of the charger thread. Sets *charged to the
 * number claimed. */
oms_status payment_charge_due(payment_ctx *ctx, PGconn *conn, int *charged);

/* Starts/stops the charger thread (own PostgreSQL connection). */
oms_status payment_charger_start(payment_ctx *ctx);
void payment_charger_stop(payment_ctx *ctx);

/* ---- callbacks (payment_callback.c) ---- */

typedef struct payment_callback {
    char payment_id[PAYMENT_ID_MAX + 1];
    bool succeeded;
    char gateway_ref[PAYMENT_REF_MAX + 1];
    char reason[PAYMENT_REASON_MAX + 1]; /* "" when succeeded */
} payment_callback;

/* Parses a callback body {"payment_id": "...", "status": "succeeded"|"failed",
 * "gateway_ref"?: "...", "reason"?: "..."}. On error returns OMS_EINVAL with a
 * message naming the field in err. */
oms_status payment_callback_parse(const char *body, size_t len, payment_callback *out,
                                  char err[PAYMENT_ERR_LEN]);

typedef enum payment_settle_result {
    PAYMENT_SETTLED_NOW = 0, /* this answer settled the payment */
    PAYMENT_SETTLED_BEFORE,  /* it was settled already: nothing changed */
    PAYMENT_SETTLE_UNKNOWN,  /* no such payment */
} payment_settle_result;

/* Settles the payment cb names, with its payment.settled, in one transaction
 * on c, unless it is settled already; counts it in tally. */
oms_status payment_settle(PGconn *c, const payment_callback *cb, payment_settle_result *result,
                          payment_tally *tally);

/* ---- reconciliation (payment_reconcile.c, payment_gateway.c) ---- */

typedef enum payment_lookup {
    PAYMENT_LOOKUP_SETTLED = 0, /* 200, succeeded or failed: *out holds the answer */
    PAYMENT_LOOKUP_OPEN,        /* 200, not decided yet */
    PAYMENT_LOOKUP_UNKNOWN,     /* 404: the gateway never accepted the charge */
    PAYMENT_LOOKUP_ERROR,       /* no answer, or another status: ask again later */
} payment_lookup;

/* GET cfg->charges_url/<payment_id>: what became of an accepted charge. The
 * answer has the callback's body. err says why on PAYMENT_LOOKUP_ERROR. */
payment_lookup payment_gateway_lookup(const payment_settings *cfg, const char *payment_id,
                                      payment_callback *out, char err[PAYMENT_ERR_LEN]);

/* Looks up submitted payments whose callback is overdue: settles those the
 * gateway decided (the callback was lost), charges again (same idempotency
 * key) those it never received, and leaves the others for another timeout.
 * *looked_up gets how many were asked about. */
oms_status payment_reconcile_due(payment_ctx *ctx, PGconn *conn, int *looked_up);

/* Checks a decoded stock.reserved (NULL: not decodable) fully before anything
 * is written for it; NULL when valid, else the reason (static text). */
const char *payment_reserved_invalid(const Oms__V1__StockReserved *ev);

/* ---- HTTP (payment_http.c) ---- */

/* GET /payments/{order_id} and POST /callbacks/payment; ctx is the payment_ctx. */
void payment_routes(oms_service *svc, http_server *http, void *ctx);

/* POST /callbacks/payment (payment_callback.c). */
void payment_h_callback(void *ctx, const http_request *req, http_response *resp);

#endif
