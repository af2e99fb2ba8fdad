/*
 * consumer.h - idempotent batch consumers: fetch up to N messages from a
 * durable pull consumer, apply them all in one PostgreSQL transaction together
 * with their inbox rows (duplicates skipped) and the outbox events they cause,
 * COMMIT, then ack. Ack after commit: a crash before the ack redelivers, and
 * the inbox turns the redelivery into a no-op.
 *
 * A message the service cannot apply (undecodable, invalid) is "rejected": it
 * goes to dead_letters with the reason in the same transaction and is
 * terminated, so it never blocks the stream. A transient failure (database
 * down, deadlock) naks the batch with a delay and the loop reconnects. When a
 * batch fails for another database reason, each message is retried alone so
 * the one at fault is dead-lettered and the others go through.
 *
 * The boundary: before anything is applied, every message's subject, headers
 * and event id must be valid UTF-8 without control characters and within
 * their length bounds; a message that is not is dead-lettered with a reason
 * naming what is wrong. Dead letters store the raw bytes (bytea) next to a
 * printable form, so recording one never fails on what the message carries.
 *
 * Attempts: a message is applied at most max_attempts times (its JetStream
 * delivery count); a failure on the last attempt dead-letters it with the
 * error instead of a nak, and a delivery past the last (the process died or
 * stalled on the previous one) is dead-lettered without applying it. The
 * durable's MaxDeliver is a few deliveries higher, so the server never drops
 * a message the service has not recorded. Numbers: docs/architecture.md.
 */
#ifndef OMS_CONSUMER_H
#define OMS_CONSUMER_H

#include "oms.h"

#include <libpq-fe.h>
#include <nats/nats.h>

#include "outbox.h"

struct js_conn;
struct metrics;

/* Event ids are at most CONSUMER_EVENT_ID_LEN - 1 (127) bytes: a longer
 * Nats-Msg-Id is rejected at the boundary, never cut (two ids sharing their
 * first 127 bytes would otherwise be the same event). */
#define CONSUMER_EVENT_ID_LEN 128
#define CONSUMER_REASON_LEN 512
#define CONSUMER_SUBJECT_MAX_BYTES 256
#define CONSUMER_HEADER_MAX_BYTES 1024  /* a header's name, and each of its values */
#define CONSUMER_MAX_ATTEMPTS 10        /* default of consumer_spec.max_attempts */
#define CONSUMER_NAK_DELAY_MS 1000      /* default first nak delay, doubled per delivery */
#define CONSUMER_NAK_DELAY_MAX_MS 30000
/* Deliveries past the last attempt the server still makes, so the service
 * itself dead-letters a message whose last attempt crashed: MaxDeliver is
 * max_attempts + CONSUMER_SPARE_DELIVERIES. */
#define CONSUMER_SPARE_DELIVERIES 3

typedef struct oms_msg {
    natsMsg *nmsg;                          /* owned by the consumer */
    const char *subject;                    /* borrowed from nmsg */
    const void *data;                       /* borrowed from nmsg */
    size_t len;
    char event_id[CONSUMER_EVENT_ID_LEN];   /* Nats-Msg-Id, or "<stream>:<seq>"; for a
                                             * message refused at the boundary a
                                             * printable form, for logs only */
    int deliveries;                         /* JetStream delivery count (1 the first
                                             * time); 0 when unknown (a replay) */
    bool duplicate;                         /* already in the inbox: do not apply */
    bool rejected;                          /* set by consumer_reject */
    bool invalid;                           /* refused at the boundary: its id is not
                                             * text, so it stays out of the inbox */
    char reason[CONSUMER_REASON_LEN];
} oms_msg;

/* What a service's apply function sees: an open transaction on conn. */
struct consumer_tally;

typedef struct consumer_batch {
    PGconn *conn;
    oms_msg *msgs;
    size_t n;
    outbox_batch *outbox;  /* flushed by the consumer after apply, before COMMIT */
    const char *producer;  /* the service name, for EventMeta.producer */
    struct consumer_tally *tally; /* counts waiting for COMMIT (consumer_count) */
} consumer_batch;

/* Applies every message of b that is neither duplicate nor rejected, using
 * b->conn inside the open transaction. Must validate a message fully before
 * writing anything for it, and reject it with consumer_reject when invalid.
 * Returns OMS_OK, OMS_ETRANSIENT (retry later) or OMS_EDB (statement refused);
 * the consumer takes OMS_ENOMEM as OMS_ETRANSIENT, so it need not be mapped. */
typedef oms_status (*consumer_apply_fn)(void *ctx, consumer_batch *b);

/* Marks message i as rejected (dead letter) with a formatted reason. */
void consumer_reject(consumer_batch *b, size_t i, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Adds v to the counter name{labels} of the service's metrics once the batch
 * commits; a batch that rolls back (and is retried) counts nothing, so domain
 * counters never count an event twice. labels is copied. */
void consumer_count(consumer_batch *b, const char *name, const char *labels, double v);

/* Value of header key of m, or NULL. Borrowed from the message. */
const char *oms_msg_header(const oms_msg *m, const char *key);

/* How a durable keeps "applied at most once" (docs/architecture.md, Inbox). */
typedef enum consumer_dedupe {
    CONSUMER_DEDUPE_INBOX = 0, /* an inbox row per event id; a seen id is skipped */
    CONSUMER_DEDUPE_BY_STATE,  /* no inbox row: the effect itself is a no-op the
                                * second time (unique key or status guard) and
                                * emits outbox events only for rows it changed */
} consumer_dedupe;

typedef struct consumer_spec {
    const char *name;     /* for logs and metrics, e.g. "ingest-rows" */
    const char *stream;
    const char *durable;
    const char *filter;   /* subject filter, NULL for the whole stream */
    int batch_max;
    int wait_ms;
    int64_t ack_wait_ms;
    int max_attempts;      /* 0: CONSUMER_MAX_ATTEMPTS */
    int64_t nak_delay_ms;  /* first nak delay, doubled per delivery; 0: CONSUMER_NAK_DELAY_MS */
    consumer_dedupe dedupe; /* default CONSUMER_DEDUPE_INBOX; BY_STATE only where a
                             * redelivery test proves the effect idempotent */
    consumer_apply_fn apply;
    void *ctx;
} consumer_spec;

/* What every consumer of a service shares; borrowed for the consumer's life. */
typedef struct consumer_env {
    const char *dsn;
    const char *schema;     /* = service name */
    struct js_conn *js;
    struct metrics *m;
} consumer_env;

typedef struct consumer consumer;

/* Starts a consumer thread. spec and env are borrowed. */
oms_status consumer_start(consumer **out, const consumer_spec *spec, const consumer_env *env);

/* Stops fetching, finishes (commits and acks) the batch in hand, joins; NULL is a no-op. */
void consumer_stop(consumer *c);

/* True once the consumer is bound to its durable and connected to PostgreSQL. */
bool consumer_ready(consumer *c);

/* A stored message as dead_letters keeps it (the *_raw columns and payload). */
typedef struct consumer_raw {
    const char *subject;     /* subject_raw (a NATS subject holds no NUL) */
    const char *event_id;    /* event_id_raw: the id when the message has no Nats-Msg-Id */
    const void *headers;     /* headers_raw: "NATS/1.0\r\n", "Key: value\r\n"..., "\r\n" */
    size_t headers_len;
    const void *data;
    size_t len;
} consumer_raw;

/* Re-applies a stored dead letter inside the caller's open transaction on conn,
 * without the inbox (its event id is already there), with exactly the stored
 * bytes; it passes the boundary checks first. Borrows raw. On rejection
 * returns OMS_EINVAL with the reason in reason_out. */
oms_status consumer_replay(const consumer_spec *spec, const consumer_env *env, PGconn *conn,
                           const consumer_raw *raw, char reason_out[CONSUMER_REASON_LEN]);

/* Writes the messages of msgs[0..n) that are rejected and not duplicate to
 * dead_letters (printable subject, event id, headers and reason; raw subject,
 * event id, headers and payload) with one statement inside the caller's open
 * transaction on conn; *count gets how many. Succeeds whatever bytes the
 * messages carry. For consumers whose effect lives outside PostgreSQL
 * (lib/rconsumer). */
oms_status consumer_dead_letters_insert(PGconn *conn, oms_msg *msgs, size_t n, size_t *count);

/* Fills m from nm (borrowed pointers into nm, which m then owns): subject,
 * data, event id, delivery count; then checks the boundary and, when
 * something is wrong, marks m rejected and invalid with the reason. */
void consumer_msg_init(oms_msg *m, natsMsg *nm);

/* A printable form of bytes[0..len) in out (always NUL-terminated): valid
 * UTF-8 is kept, other bytes, control characters and backslash are escaped
 * (\xHH, \\); cut at out_size - 1 bytes with "..." when longer. Returns out. */
char *consumer_printable(const void *bytes, size_t len, char *out, size_t out_size);

/* consumer_printable of subject, with quotes and backslashes replaced by
 * '_', for a metrics label value. Returns out. */
char *consumer_subject_label(const char *subject, char *out, size_t out_size);

/* Why bytes[0..len) is not acceptable text of at most max_bytes (valid UTF-8,
 * no control characters), written to why; false when it is acceptable. */
bool consumer_text_problem(const void *bytes, size_t len, size_t max_bytes, char *why,
                           size_t why_len);

/* The attempt limit and the nak delay of a delivery, spec defaults applied. */
int consumer_max_attempts(int spec_max_attempts);
int64_t consumer_nak_delay_ms(int64_t spec_nak_delay_ms, int deliveries);

/* True when a NATS subject filter (with * and >) matches subject. */
bool consumer_subject_matches(const char *filter, const char *subject);

#endif
