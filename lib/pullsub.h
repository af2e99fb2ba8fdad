/*
 * pullsub.h - the pull-consumer core under both appliers: lib/consumer (a
 * PostgreSQL transaction) and lib/rconsumer (a Redis pipeline). One thread
 * per consumer binds the durable pull subscription, fetches batches, sets up
 * every fetched message (boundary checks and the attempt limit, see
 * consumer_msg.h), hands the batch to the applier, and settles each message the
 * way every consumer does: ack, nak with the spec's delay, or term as a dead
 * letter, counted in the same metrics. What a batch does is the applier's,
 * plugged in through pullsub_ops.
 *
 * Binding, the one rule: before each fetch the applier's store is connected
 * (ops->connect), then the subscription is bound if it is not. Only fetch
 * failures count towards rebinding: after PULLSUB_REBIND_AFTER in a row the
 * subscription is dropped and bound again, since the durable may have been
 * deleted (a stream recreated by an operator) and fetching from it would fail
 * forever; a store that is down says nothing about the durable. Every failure
 * waits with the jittered backoff of lib/backoff; a batch that leaves the
 * store disconnected marks the consumer not ready and waits too.
 */
#ifndef OMS_PULLSUB_H
#define OMS_PULLSUB_H

#include "consumer_msg.h"

struct js_conn;
struct metrics;

#define PULLSUB_REBIND_AFTER 3 /* fetch failures in a row */

/* Which durable to read and how; strings borrowed for the core's life. Both
 * appliers' specs embed one (consumer_spec.pull, rconsumer_spec.pull). */
typedef struct pullsub_spec {
    const char *name; /* for logs and metrics, e.g. "ingest-rows" */
    const char *stream;
    const char *durable;
    const char *filter; /* subject filter, NULL for the whole stream */
    /* The next three: a service's consumer_spec may leave them 0, and
     * lib/service sets OMS_BATCH_MAX, OMS_BATCH_WAIT_MS and OMS_ACK_WAIT_S. */
    int batch_max;
    int wait_ms;
    int64_t ack_wait_ms;
    int max_attempts;     /* 0: CONSUMER_MAX_ATTEMPTS */
    int64_t nak_delay_ms; /* first nak delay, doubled per delivery; 0: CONSUMER_NAK_DELAY_MS */
} pullsub_spec;

typedef struct pullsub pullsub;

/* The applier. Every callback runs on the core's thread with the applier's ctx. */
typedef struct pullsub_ops {
    /* Connects the applier's store when it is not; OMS_OK once connected. */
    oms_status (*connect)(void *ctx);
    /* True while the store is connected (asked after each batch). */
    bool (*connected)(void *ctx);
    /* Applies msgs[0..n) (n > 0, set up by the core and freed by it after
     * the call) and settles each message with pullsub_ack, pullsub_nak or
     * pullsub_dead_letter; a message left unsettled is redelivered after the
     * ack wait. */
    void (*batch)(void *ctx, pullsub *ps, oms_msg *msgs, size_t n);
    /* Optional: called after a fetch that returned nothing. */
    void (*idle)(void *ctx, pullsub *ps);
    /* Optional: why m failed when it was last nak'ed, or NULL; names the
     * reason of a delivery past the last attempt. */
    const char *(*earlier_failure)(void *ctx, const oms_msg *m);
} pullsub_ops;

/* Declares the consumer metrics and starts the thread. spec, js, m, ops and
 * ctx are borrowed until pullsub_stop (the spec's strings too). */
oms_status pullsub_start(pullsub **out, const pullsub_spec *spec, struct js_conn *js,
                         struct metrics *m, const pullsub_ops *ops, void *ctx);

/* Stops fetching, lets the batch in hand finish, joins and unsubscribes;
 * NULL is a no-op. The applier's store is the applier's to close after. */
void pullsub_stop(pullsub *ps);

/* True once bound to the durable with the store connected. */
bool pullsub_ready(const pullsub *ps);

/* The spec's name, and its attempt limit with the default applied. */
const char *pullsub_name(const pullsub *ps);
int pullsub_max_attempts(const pullsub *ps);

/* Acks m and counts it in oms_events_consumed_total with result
 * ("applied", "duplicate", "rejected"). */
void pullsub_ack(pullsub *ps, oms_msg *m, const char *result);

/* Naks m with the delay of its delivery (consumer_nak_delay_ms). */
void pullsub_nak(pullsub *ps, oms_msg *m);

/* m is recorded in dead_letters: logs it, terminates it and counts it. */
void pullsub_dead_letter(pullsub *ps, oms_msg *m);

/* Adds n to oms_consumer_retries_total. */
void pullsub_count_retries(pullsub *ps, double n);

#endif
