/*
 * refund.h - the refund service: order.paid and refund.requested in,
 * refund.processed / refund.rejected out.
 *
 * refund keeps its own projection of paid orders (paid total, refunded so
 * far, amount held by refunds in flight) and one row per idempotency key.
 * A batch of refund.requested is decided in one transaction: the keys are
 * locked (advisory locks, in hash order), then the orders (FOR UPDATE, in
 * byte order of their ids), the rules run in memory in event order, and the
 * outcomes are written with a handful of set-based statements. Two refund
 * processes therefore never refund an order beyond what was paid, and never
 * decide one key twice.
 *
 * Two gateways, as in payment:
 * - mock: an accepted refund is processed in the batch's own transaction.
 * - http: an accepted refund is inserted pending, its amount held on the
 *   order; a worker thread claims due ones with a lease, POSTs them to the
 *   gateway outside any transaction (Idempotency-Key: refund id) and records
 *   the answer with an UPDATE conditional on the refund still pending. A crash
 *   anywhere leaves the refund pending; after the lease it is re-sent under
 *   the same key, so the gateway refunds once and one outcome is published.
 */
#ifndef OMS_REFUND_H
#define OMS_REFUND_H

#include "config.h"
#include "consumer.h"
#include "service.h"

#define REFUND_PRODUCER "refund"
#define REFUND_KEY_MAX 128 /* bytes of an idempotency key */
#define REFUND_ORDER_ID_MAX 256
#define REFUND_REASON_MAX 512 /* bytes of the refund's reason */
#define REFUND_REQUESTED_BY_MAX 256
#define REFUND_SKU_MAX 256
#define REFUND_LINES_MAX 1000
#define REFUND_AMOUNT_MAX 100000000000000LL /* 1,000,000,000,000.00: the largest order total */
#define REFUND_TEXT_LEN 1024                /* a rejection reason */
#define REFUND_URL_LEN 1024
#define REFUND_CLAIM_MAX 16 /* refunds the worker sends at once */
#define REFUND_BACKOFF_BASE_MS 200
#define REFUND_BACKOFF_MAX_MS 30000

extern const pg_migration refund_migrations[];

typedef enum refund_gateway_kind {
    REFUND_GATEWAY_MOCK = 0,
    REFUND_GATEWAY_HTTP,
} refund_gateway_kind;

/* The refund settings, read once at start (refund_config.c). */
typedef struct refund_settings {
    refund_gateway_kind gateway;      /* OMS_PAYMENT_GATEWAY: mock (default) | http */
    char refunds_url[REFUND_URL_LEN]; /* OMS_PAYMENT_GATEWAY_URL + "/refunds" */
    int max_attempts;                 /* OMS_REFUND_MAX_ATTEMPTS, default 8 */
    int64_t timeout_ms;               /* OMS_PAYMENT_GATEWAY_TIMEOUT_MS, default 10000 */
    int64_t connect_timeout_ms;       /* OMS_PAYMENT_GATEWAY_CONNECT_TIMEOUT_MS, default 2000 */
    int64_t lease_margin_ms;          /* OMS_REFUND_LEASE_MARGIN_MS, default 5000 */
} refund_settings;

/* Reads and validates the settings. On a bad value returns OMS_EINVAL with a
 * message naming the variable in err. */
oms_status refund_config(refund_settings *cfg, char err[CONFIG_ERR_LEN]);

/* The domain context shared by the consumers, the worker and HTTP handlers. */
typedef struct refund_ctx {
    refund_settings cfg;
    const char *currency; /* OMS_CURRENCY */
    const char *dsn;
    struct metrics *m;
    oms_service *svc;
    struct pgworker *worker; /* http mode only (lib/pgworker) */
} refund_ctx;

void refund_metrics_declare(struct metrics *m);

/* ---- rules (refund_rules.c): pure, unit-tested ---- */

typedef enum refund_verdict {
    REFUND_ACCEPT = 0,
    REFUND_NOTHING_LEFT, /* the order is refunded (or being refunded) in full */
    REFUND_EXCEEDS,      /* more than what is still refundable */
} refund_verdict;

/* Decides a refund of requested_cents (0: whatever remains) on an order paid
 * paid_cents of which refunded_cents are refunded and pending_cents held by
 * refunds in flight. On REFUND_ACCEPT *amount_cents is what to refund. */
refund_verdict refund_decide(int64_t paid_cents, int64_t refunded_cents, int64_t pending_cents,
                             int64_t requested_cents, int64_t *amount_cents);

/* The sentence for a refused verdict, e.g. "refund of 80.00 USD exceeds the
 * 50.00 USD still refundable on ORD-1001". */
void refund_verdict_text(refund_verdict v, const char *order_id, const char *currency,
                         int64_t paid_cents, int64_t refunded_cents, int64_t pending_cents,
                         int64_t requested_cents, char *out, size_t out_len);

/* NULL when key is a valid idempotency key (1-128 printable ASCII
 * characters), else why not (static text). */
const char *refund_key_invalid(const char *key);

/* Checks a request's fields other than the key; false with a sentence naming
 * the field and value in why when one is wrong. */
bool refund_request_valid(const Oms__V1__RefundRequested *ev, char *why, size_t why_len);

/* The restock lines of ev as a JSON array text [{"sku","qty"}]; caller frees.
 * NULL when out of memory. */
char *refund_lines_json(const Oms__V1__RefundRequested *ev);

/* ---- events (refund_events.c) ---- */

/* One decided refund, for its event. Strings borrowed. */
typedef struct refund_outcome {
    const char *refund_id, *key, *order_id, *currency, *reason, *lines_json, *gateway_ref;
    const char *customer_id, *customer_email, *customer_name;
    const char *cause;    /* the refund.requested's event id */
    int64_t amount_cents; /* processed: refunded; rejected: as requested */
    int64_t refunded_total_cents, paid_total_cents;
    bool full, restock;
    const char *reject_reason;
    bool key_reuse;
} refund_outcome;

oms_status refund_emit_processed(outbox_batch *ob, const refund_outcome *o);
oms_status refund_emit_rejected(outbox_batch *ob, const refund_outcome *o);

/* ---- consumers ---- */

/* consumer_apply_fn for order.paid: adds the orders to the projection. */
oms_status refund_apply_order_paid(void *ctx, consumer_batch *b);

/* consumer_apply_fn for refund.requested: the rules, set-based. */
oms_status refund_apply_requested(void *ctx, consumer_batch *b);

/* ---- the worker (refund_worker.c): http gateway only ---- */

/* The wait before the next attempt after failed_attempts failed ones (>= 1). */
int64_t refund_backoff_ms(int failed_attempts);

/* One round: claims due pending refunds, sends them, records the answers.
 * Sets *sent to the number claimed. */
oms_status refund_send_due(refund_ctx *ctx, PGconn *conn, int *sent);

/* Starts/stops the worker thread: a lib/pgworker on its own PostgreSQL
 * connection that runs refund_send_due again at once after a full group and
 * 100 ms later otherwise. */
oms_status refund_worker_start(refund_ctx *ctx);
void refund_worker_stop(refund_ctx *ctx);

/* ---- HTTP (refund_http.c) ---- */

/* Reads a POST /refunds body into ev, its strings borrowed from body; lines
 * and ptrs are the caller's, REFUND_LINES_MAX entries each. key receives a
 * new idempotency key when the body has none. False with a sentence naming
 * the field in err when the body is refused (refund_http.c). */
#define REFUND_HTTP_ERR_LEN 512
bool refund_request_parse(json_t *body, Oms__V1__RefundRequested *ev, Oms__V1__RefundLine *lines,
                          Oms__V1__RefundLine **ptrs, char key[37], char err[REFUND_HTTP_ERR_LEN]);

/* POST /refunds, GET /refunds?order_id=|key=; ctx is the refund_ctx. */
void refund_routes(oms_service *svc, http_server *http, void *ctx);

#endif
