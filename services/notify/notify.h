/*
 * notify.h - the notify service: order.paid, order.failed and order.refunded
 * in, one notification per (event, enabled channel) out, by log, email
 * (SMTP) or signed webhook.
 *
 * Delivery is decoupled from consumption. The consumers record rows in
 * notify.notifications (unique on (event_id, channel), so an event seen
 * twice notifies once) in their batch's transaction: pending for email and
 * webhook, sent for the log channel, whose line they write then. No network
 * call runs there, so a slow or dead SMTP server or webhook never holds up
 * the stream. A sender thread claims due rows (FOR UPDATE SKIP LOCKED plus a
 * lease, so replicas take disjoint groups), delivers a group in parallel
 * through libcurl outside any transaction, and records sent, failed (refused
 * for good), pending again (exponential backoff) or dead (after the last
 * attempt). A crash between delivering and recording re-sends once the lease
 * ends: delivery is at least once, and every delivery carries the event id
 * (Idempotency-Key, Message-ID) for receivers that deduplicate.
 */
#ifndef OMS_NOTIFY_H
#define OMS_NOTIFY_H

#include "config.h"
#include "consumer.h"
#include "httpc.h"
#include "service.h"

#include <jansson.h>

#define NOTIFY_PRODUCER "notify"
#define NOTIFY_CLAIM_MAX 32  /* notifications the sender delivers at once */
#define NOTIFY_ERROR_LEN 512 /* bytes of a delivery error kept */
#define NOTIFY_ID_MAX 256    /* bytes of an order or customer id */
#define NOTIFY_EMAIL_MAX 254 /* bytes of an address (RFC 5321 path limit) */

extern const pg_migration notify_migrations[];

typedef enum notify_channel {
    NOTIFY_LOG = 0,
    NOTIFY_EMAIL,
    NOTIFY_WEBHOOK,
    NOTIFY_N_CHANNELS,
} notify_channel;

/* "log", "email", "webhook". */
const char *notify_channel_name(notify_channel c);

/* Parses a channel name; false when unknown. */
bool notify_channel_parse(const char *name, size_t len, notify_channel *out);

/* STARTTLS on an smtp:// URL (smtps:// is TLS from the start). */
typedef enum notify_smtp_tls {
    NOTIFY_TLS_AUTO = 0, /* when the server offers it */
    NOTIFY_TLS_REQUIRE,  /* refuse to send without it */
    NOTIFY_TLS_OFF,      /* never */
} notify_smtp_tls;

/* The notify settings, read once at start. Strings point into the
 * environment or static defaults. */
typedef struct notify_settings {
    bool enabled[NOTIFY_N_CHANNELS]; /* OMS_NOTIFY_CHANNELS, comma list, default "log" */
    const char *smtp_url;            /* OMS_SMTP_URL, smtp:// or smtps://, needed by email */
    const char *smtp_from;           /* OMS_SMTP_FROM, needed by email */
    const char *smtp_user;           /* OMS_SMTP_USER, optional */
    const char *smtp_password;       /* OMS_SMTP_PASSWORD, optional */
    notify_smtp_tls smtp_tls;        /* OMS_SMTP_TLS: auto (default), require, off */
    const char *webhook_url;         /* OMS_WEBHOOK_URL, needed by webhook */
    const char *webhook_secret;      /* OMS_WEBHOOK_SECRET, needed by webhook */
    int max_attempts;                /* OMS_NOTIFY_MAX_ATTEMPTS, default 6 */
    int64_t retry_base_ms;           /* OMS_NOTIFY_RETRY_BASE_MS, default 60000 */
    int64_t retry_max_ms;            /* OMS_NOTIFY_RETRY_MAX_MS, default 3600000 */
    int64_t timeout_ms;              /* OMS_NOTIFY_TIMEOUT_MS, default 10000 */
    int64_t connect_timeout_ms;      /* OMS_NOTIFY_CONNECT_TIMEOUT_MS, default 3000 */
    int64_t retention_days;          /* OMS_NOTIFY_RETENTION_DAYS, default 90; 0 keeps all */
    int64_t max_age_ms;              /* OMS_NOTIFY_MAX_AGE_H, default 48; 0: no limit */
} notify_settings;

/* Reads and validates the OMS_NOTIFY_*, OMS_SMTP_* and OMS_WEBHOOK_*
 * variables. On a bad value returns OMS_EINVAL with a message naming the
 * variable in err. */
oms_status notify_config(notify_settings *cfg, char err[CONFIG_ERR_LEN]);

/* The wait before the next attempt after failed_attempts failed ones (>= 1):
 * base * 2^(failed_attempts - 1), at most max_ms. */
int64_t notify_backoff_ms(int64_t base_ms, int64_t max_ms, int failed_attempts);

/* True for an address the email channel can send to: one '@' with text on
 * both sides, at most NOTIFY_EMAIL_MAX bytes, no spaces, controls or <>. */
bool notify_email_valid(const char *addr);

typedef struct notify_sender notify_sender;

/* The domain context shared by the consumers, the sender and HTTP handlers. */
typedef struct notify_ctx {
    notify_settings cfg;
    const char *currency; /* OMS_CURRENCY: for events that name none */
    const char *dsn;
    struct metrics *m;
    oms_service *svc;
    const atomic_int *stopping;
    notify_sender *sender;
} notify_ctx;

/* Declares the notify metrics and creates their series at 0. */
void notify_metrics_declare(struct metrics *m, const notify_settings *cfg);

/* ---- consuming (notify_consume.c) ---- */

/* consumer_apply_fn for order.paid, order.failed and order.refunded: one
 * pending row per enabled channel (email without a usable address, or an
 * event older than the maximum age: a failed row saying so). */
oms_status notify_apply_orders(void *ctx, consumer_batch *b);

/* ---- one notification (notify_message.c) ---- */

typedef enum notify_result {
    NOTIFY_SENT = 0, /* delivered */
    NOTIFY_REFUSED,  /* refused for good (5xx SMTP reply, 4xx webhook answer): failed */
    NOTIFY_ERROR,    /* not delivered this time (timeout, refused connection, 5xx): retry */
} notify_result;

/* A claimed notification, its fields borrowed from the claim's result, and
 * the outcome of delivering it. */
typedef struct notify_msg {
    int64_t id;
    notify_channel channel;
    const char *event_id, *subject, *order_id, *customer_id, *customer_email, *customer_name;
    const char *status, *currency, *reason, *refund_id;
    int64_t total_cents, refund_cents, refunded_total_cents, occurred_at_ms;
    int attempts;                 /* including this one */
    notify_result result;         /* set by the delivery */
    char error[NOTIFY_ERROR_LEN]; /* why it was not sent */
} notify_msg;

/* The columns notify_msg_view reads, of a notifications row aliased n, to be
 * followed by one more: the attempts made including this one. */
#define NOTIFY_MSG_COLUMNS                                                                 \
    "n.id, n.channel, n.event_id, n.subject, n.order_id, n.customer_id, n.customer_email," \
    " n.customer_name, n.status, n.currency, n.reason, n.refund_id, n.total_cents,"        \
    " n.refund_cents, n.refunded_total_cents,"                                             \
    " (extract(epoch FROM n.occurred_at) * 1000)::bigint"

/* Fills *m from row of res, selected as NOTIFY_MSG_COLUMNS plus attempts;
 * the strings are borrowed from res. */
void notify_msg_view(PGresult *res, int row, notify_msg *m);

/* The email subject, e.g. "Order ORD-1001 paid: 1,299.99 USD". */
void notify_subject(const notify_msg *n, char *out, size_t out_len);

/* The notification as JSON (webhook body, and the fields of the log line).
 * Caller decrefs; NULL when a text is not UTF-8. */
json_t *notify_json(const notify_msg *n);

/* The whole email (RFC 5322 headers, CRLF lines, plain-text UTF-8 body)
 * from `from` to n's customer, dated now_ms. Caller frees; NULL when out of
 * memory. Header values lose any CR/LF, so no field can add a header. */
char *notify_email_text(const notify_msg *n, const char *from, int64_t now_ms);

/* What one delivery did to a claimed notification. */
typedef struct notify_outcome {
    const char *state;   /* "sent", "failed", "pending" (retry) or "dead" */
    int64_t retry_in_ms; /* pending: when to try again */
} notify_outcome;

/* Decides the outcome of n's delivery (n->attempts made so far). */
void notify_decide(const notify_msg *n, const notify_settings *cfg, notify_outcome *out);

/* ---- delivering (notify_deliver.c, on lib/httpc) ---- */

/* Delivers every notification (log at once; email and webhook in parallel on
 * session, each bounded by the configured timeouts) and sets result and
 * error on each. session is borrowed and kept from group to group, so its
 * connection cache lets SMTP sessions and HTTP keep-alive connections serve
 * the next group. OMS_ENOMEM when the transfers cannot be set up (no result
 * is meaningful). */
oms_status notify_deliver(const notify_settings *cfg, httpc_session *session, notify_msg *msgs,
                          size_t n);

/* Writes n as one JSON line on the service's log (the log channel's
 * delivery, which cannot fail) and marks it sent. */
void notify_log_write(notify_msg *n);

/* Classifies an SMTP transfer: curl_ok false and reply the last SMTP reply
 * code (0 when none). */
notify_result notify_classify_smtp(bool curl_ok, long reply);

/* Classifies a webhook answer: curl_ok false means no HTTP answer at all. */
notify_result notify_classify_webhook(bool curl_ok, long http_status);

/* ---- the sender (notify_sender.c) ---- */

/* Claims up to NOTIFY_CLAIM_MAX due notifications of the enabled channels but
 * log, delivers them and records the outcomes: half of a sender round. *conn
 * may be reconnected. Sets *claimed to the number claimed. */
oms_status notify_send_due(notify_ctx *ctx, PGconn **conn, int *claimed);

/* Writes up to NOTIFY_CLAIM_MAX due log-channel notifications and marks them
 * sent, in one transaction on conn: the other half of a sender round (the
 * leased claim above takes every other channel). Sets *claimed to the
 * number written. */
oms_status notify_send_log_due(notify_ctx *ctx, PGconn *conn, int *claimed);

/* Deletes up to limit sent and failed notifications created more than
 * retention_days ago (dead ones stay until retried); *deleted receives the
 * count. The sender calls it at start and hourly. */
oms_status notify_prune(PGconn *conn, int64_t retention_days, int limit, long *deleted);

/* Starts/stops the sender thread (own PostgreSQL connection). Stopping lets
 * the group in flight finish and be recorded. */
oms_status notify_sender_start(notify_ctx *ctx);
void notify_sender_stop(notify_ctx *ctx);

/* Why the consumed message m (order.paid, order.failed or order.refunded)
 * would be dead-lettered, or NULL: the check the consumer runs before it
 * writes anything, for tests and fuzzers. Borrows m. */
const char *notify_message_invalid(const oms_msg *m);

/* ---- HTTP (notify_http.c) ---- */

/* GET /notifications and POST /notifications/retry; ctx is the notify_ctx. */
void notify_routes(oms_service *svc, http_server *http, void *ctx);

#endif
