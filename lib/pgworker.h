/*
 * pgworker.h - the one loop of every background job: a thread that works
 * through a table in rounds on its own PostgreSQL connection (bound to the
 * service's schema): it connects and reconnects with backoff (lib/backoff:
 * 100 ms doubling to 5 s), calls round again at once while a round says there
 * is more, sleeps idle_ms after one that found less, backs off after a failed
 * one, and ends on pgworker_stop between rounds or in the middle of a wait.
 * Used by payment's charger, notify's sender and refund's worker, which claim
 * due rows, call a peer, and record answers, and by ingest's sealer.
 */
#ifndef OMS_PGWORKER_H
#define OMS_PGWORKER_H

#include "oms.h"

#include <libpq-fe.h>

/* One round on *conn (which the round may replace after reconnecting, or
 * leave NULL). Sets *more when work is probably waiting. */
typedef oms_status (*pgworker_round_fn)(void *ctx, PGconn **conn, bool *more);

typedef struct pgworker pgworker;

/* flags of pgworker_start. */
enum {
    /* Rounds claim the oldest due rows through a partial index with LIMIT:
     * the connection runs with bitmap scans off (pgworker.c says why). */
    PGWORKER_NO_BITMAPSCAN = 1 << 0,
};

/* Starts the thread. dsn, schema and app are borrowed for its life; ctx is
 * passed to round; flags are PGWORKER_* or 0. Caller stops it with
 * pgworker_stop. */
oms_status pgworker_start(pgworker **out, const char *dsn, const char *schema, const char *app,
                          int64_t idle_ms, unsigned flags, pgworker_round_fn round, void *ctx);

/* Lets the round in progress finish, joins the thread and frees it; NULL is
 * a no-op. */
void pgworker_stop(pgworker *w);

#endif
