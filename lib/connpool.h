/*
 * connpool.h - a bounded set of connections shared by threads: the one way
 * OMS lends a connection (PostgreSQL for HTTP handlers, analytics' Redis) to
 * whichever thread needs it. The pool knows nothing of the client library:
 * connect/ok/reusable/close callbacks do. A taker waits a bounded time and
 * is told "busy" when every connection stayed in use; a connection found
 * broken is closed and its slot reconnected by the next taker.
 */
#ifndef OMS_CONNPOOL_H
#define OMS_CONNPOOL_H

#include "oms.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct connpool connpool;

typedef struct connpool_ops {
    /* Opens a connection into *conn; any status but OMS_OK means none. */
    oms_status (*connect)(void *ctx, void **conn);
    /* False once conn is broken: it is closed, and the pool counts as down. */
    bool (*ok)(void *ctx, void *conn);
    /* False when a working conn must not be lent again (e.g. left inside a
     * transaction): it is closed without marking the pool down. Optional. */
    bool (*reusable)(void *ctx, void *conn);
    void (*close)(void *ctx, void *conn);
} connpool_ops;

#define CONNPOOL_WAIT_FOREVER (-1)

/* Creates a pool of at most cap connections, opened on demand. ops and ctx
 * are borrowed for the pool's life. The pool starts "up". */
oms_status connpool_create(connpool **out, size_t cap, const connpool_ops *ops, void *ctx);

/* Closes the idle connections and frees p, once no thread holds one; NULL
 * is a no-op. */
void connpool_destroy(connpool *p);

/* Lends a connection in *conn: an idle one, else a new one in a free slot,
 * waiting up to wait_ms (0: not at all, CONNPOOL_WAIT_FOREVER) for either.
 * OMS_ETIMEOUT when every connection stayed busy, OMS_ETRANSIENT when a new
 * connection could not be opened. Connecting happens outside the lock. The
 * caller gives it back with connpool_give. */
oms_status connpool_take(connpool *p, int64_t wait_ms, void **conn);

/* Takes conn back; NULL is a no-op. A broken or unreusable connection is
 * closed and its slot freed for a later take to reconnect. */
void connpool_give(connpool *p, void *conn);

/* Whether the last connect, use or mark succeeded (readiness). */
bool connpool_up(const connpool *p);

/* Records the outcome of a check the caller made with a lent connection. */
void connpool_mark(connpool *p, bool up);

#endif
