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
 * What a message must be to get this far (the boundary) and how many times it
 * is tried: lib/consumer_msg.h.
 */
#ifndef OMS_CONSUMER_H
#define OMS_CONSUMER_H

#include "oms.h"

#include <libpq-fe.h>
#include <nats/nats.h>

#include "consumer_msg.h"
#include "outbox.h"
#include "pullsub.h"

struct js_conn;
struct metrics;

/* What a service's apply function sees: an open transaction on conn. */
struct consumer_tally;

typedef struct consumer_batch {
    PGconn *conn;
    oms_msg *msgs;
    size_t n;
    outbox_batch *outbox;         /* flushed by the consumer after apply, before COMMIT */
    const char *producer;         /* the service name, for EventMeta.producer */
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

/* How a durable keeps "applied at most once" (docs/architecture.md, Inbox). */
typedef enum consumer_dedupe {
    CONSUMER_DEDUPE_INBOX = 0, /* an inbox row per event id; a seen id is skipped */
    CONSUMER_DEDUPE_BY_STATE,  /* no inbox row: the effect itself is a no-op the
                                * second time (unique key or status guard) and
                                * emits outbox events only for rows it changed */
} consumer_dedupe;

typedef struct consumer_spec {
    pullsub_spec pull;      /* the durable and how it is fetched */
    consumer_dedupe dedupe; /* default CONSUMER_DEDUPE_INBOX; BY_STATE only where a
                             * redelivery test proves the effect idempotent */
    consumer_apply_fn apply;
    void *ctx;
} consumer_spec;

/* What every consumer of a service shares; borrowed for the consumer's life. */
typedef struct consumer_env {
    const char *dsn;
    const char *schema; /* = service name */
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
    const char *subject;  /* subject_raw (a NATS subject holds no NUL) */
    const char *event_id; /* event_id_raw: the id when the message has no Nats-Msg-Id */
    const void *headers;  /* headers_raw: "NATS/1.0\r\n", "Key: value\r\n"..., "\r\n" */
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

/* True when a NATS subject filter (with * and >) matches subject. */
bool consumer_subject_matches(const char *filter, const char *subject);

#endif
