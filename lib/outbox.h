/*
 * outbox.h - the transactional outbox: events are written to the service's
 * outbox table in the same transaction as the state change that caused them,
 * and a relay thread publishes them to JetStream afterwards.
 *
 * A crash between COMMIT and publish loses nothing (the rows wait); a crash
 * after publish but before the rows are deleted republishes them with the
 * same Nats-Msg-Id, which the server drops inside its duplicate window.
 */
#ifndef OMS_OUTBOX_H
#define OMS_OUTBOX_H

#include "oms.h"

#include <libpq-fe.h>
#include <protobuf-c/protobuf-c.h>

#include "pgcopy.h"

#include "oms_events.pb-c.h"

struct js_conn;
struct metrics;

/* Events collected in memory, written with one COPY by outbox_batch_flush. */
typedef struct outbox_batch {
    pgcopy rows;
    size_t total; /* events flushed since init */
} outbox_batch;

void outbox_batch_init(outbox_batch *b);
void outbox_batch_fini(outbox_batch *b);

/* Adds one event; type is the protobuf full name ("oms.v1.OrderCreated").
 * Borrows every argument (the payload is copied). */
oms_status outbox_batch_add(outbox_batch *b, const char *subject, const char *type,
                            const char *event_id, const void *payload, size_t len);

/* Packs a protobuf message and adds it; event_id must equal msg's meta.event_id. */
oms_status outbox_batch_add_message(outbox_batch *b, const char *subject, const char *event_id,
                                    const ProtobufCMessage *msg);

/* Writes the collected events into the outbox table inside the caller's open
 * transaction; the batch is empty afterwards. OMS_ETRANSIENT/OMS_EDB on error. */
oms_status outbox_batch_flush(outbox_batch *b, PGconn *c);

/* Fills meta for a new event. id must hold 37 bytes and outlive meta's use.
 * Strings are borrowed. */
void outbox_meta_init(Oms__V1__EventMeta *meta, char id[37], const char *producer,
                      const char *correlation_id, const char *causation_id);

typedef struct outbox_relay outbox_relay;

/* Starts the relay thread: its own PostgreSQL connection to schema (LISTEN
 * <schema>_outbox, poll every second as a back-up) and publishes through js.
 * The same thread prunes inbox rows older than inbox_retention_ms, which must
 * exceed the streams' max age so a redelivery is always recognised.
 * Borrows js, m and the strings for its lifetime. */
oms_status outbox_relay_start(outbox_relay **out, const char *dsn, const char *schema,
                              struct js_conn *js, struct metrics *m, int64_t inbox_retention_ms);

/* Publishes what is pending (up to drain_ms), stops the thread and frees it. */
void outbox_relay_stop(outbox_relay *r, int64_t drain_ms);

/* Rows waiting past the relay's position at its last count (oms_outbox_backlog). */
long outbox_relay_backlog(outbox_relay *r);

#endif
