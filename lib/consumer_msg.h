/*
 * consumer_msg.h - one fetched JetStream message (oms_msg) and the boundary
 * it must pass before any applier sees it, shared by the pull-consumer core
 * (lib/pullsub) and both appliers (lib/consumer, lib/rconsumer). It depends
 * on no applier, so the dependencies run one way: consumer and rconsumer ->
 * pullsub -> consumer_msg.
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
#ifndef OMS_CONSUMER_MSG_H
#define OMS_CONSUMER_MSG_H

#include "oms.h"

#include <nats/nats.h>

/* Event ids are at most CONSUMER_EVENT_ID_LEN - 1 (127) bytes: a longer
 * Nats-Msg-Id is rejected at the boundary, never cut (two ids sharing their
 * first 127 bytes would otherwise be the same event). */
#define CONSUMER_EVENT_ID_LEN 128
#define CONSUMER_REASON_LEN 512
#define CONSUMER_SUBJECT_MAX_BYTES 256
#define CONSUMER_HEADER_MAX_BYTES 1024 /* a header's name, and each of its values */
#define CONSUMER_MAX_ATTEMPTS 10       /* default of pullsub_spec.max_attempts */
#define CONSUMER_NAK_DELAY_MS 1000     /* default first nak delay, doubled per delivery */
#define CONSUMER_NAK_DELAY_MAX_MS 30000
/* Deliveries past the last attempt the server still makes, so the service
 * itself dead-letters a message whose last attempt crashed: MaxDeliver is
 * max_attempts + CONSUMER_SPARE_DELIVERIES. */
#define CONSUMER_SPARE_DELIVERIES 3

typedef struct oms_msg {
    natsMsg *nmsg;       /* owned by the consumer */
    const char *subject; /* borrowed from nmsg */
    const void *data;    /* borrowed from nmsg */
    size_t len;
    char event_id[CONSUMER_EVENT_ID_LEN]; /* Nats-Msg-Id, or "<stream>:<seq>"; for a
                                           * message refused at the boundary a
                                           * printable form, for logs only */
    int deliveries;                       /* JetStream delivery count (1 the first
                                           * time); 0 when unknown (a replay) */
    bool duplicate;                       /* already in the inbox: do not apply */
    bool rejected;                        /* set by consumer_reject */
    bool invalid;                         /* refused at the boundary: its id is not
                                           * text, so it stays out of the inbox */
    char reason[CONSUMER_REASON_LEN];
} oms_msg;

/* Value of header key of m, or NULL. Borrowed from the message. */
const char *oms_msg_header(const oms_msg *m, const char *key);

/* The event id as dead_letters stores it raw: Nats-Msg-Id when there is one,
 * else m->event_id. Borrowed from m. */
const char *oms_msg_raw_event_id(const oms_msg *m);

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

#endif
