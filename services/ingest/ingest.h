/*
 * ingest.h - the ingest service: CSV rows in (ingest.rows), orders out
 * (order.created), with import.rejected / import.completed on the way.
 *
 * Rows are stored as they arrive (one transaction per fetched batch of
 * chunks). An import is sealed by the sealer thread once all its rows are in
 * (or it timed out); rows published without an import id form one "live"
 * import per order, sealed when no row for that order came for seal_ms.
 * Sealing is set-based SQL over the stored rows plus a cursor that streams
 * the new orders out as events, so memory stays flat for any file size.
 */
#ifndef OMS_INGEST_H
#define OMS_INGEST_H

#include "consumer.h"
#include "service.h"

#include "order_csv.h"

#define INGEST_HDR_IMPORT_ID ORDER_CSV_HDR_IMPORT_ID
#define INGEST_HDR_FIRST_ROW ORDER_CSV_HDR_FIRST_ROW
#define INGEST_HDR_IMPORT_END ORDER_CSV_HDR_IMPORT_END
#define INGEST_HDR_CHUNK ORDER_CSV_HDR_CHUNK

/* Bounds per ingest.rows message (docs/architecture.md, "Bounds per
 * message"); a message past one is dead-lettered naming it. */
#define INGEST_MSG_BYTES_MAX ORDER_CSV_MSG_BYTES_MAX
#define INGEST_CHUNK_ROWS_MAX ORDER_CSV_CHUNK_ROWS_MAX
#define INGEST_ROW_NUMBER_MAX ORDER_CSV_ROW_NUMBER_MAX
#define INGEST_HEADERS_MAX ORDER_CSV_HEADERS_MAX
/* Rows and events of a batch go to PostgreSQL whenever this much is buffered,
 * so a batch of INGEST_BATCH_MAX messages never holds all their rows. */
#define INGEST_FLUSH_BYTES (1u << 20)
#define INGEST_BATCH_MAX 16

extern const pg_migration ingest_migrations[];

typedef struct ingest_ctx {
    const char *currency;      /* OMS_CURRENCY */
    int64_t seal_ms;           /* OMS_INGEST_SEAL_MS */
    int64_t import_timeout_ms; /* OMS_INGEST_IMPORT_TIMEOUT_S */
    const char *dsn;
    struct metrics *m;
    struct pgworker *sealer; /* the sealer thread (lib/pgworker) */
} ingest_ctx;

/* Reads the ingest settings from the environment into ctx (ingest_config.c).
 * On a bad value returns OMS_EINVAL with a message naming the variable in err. */
oms_status ingest_config(ingest_ctx *ctx, char err[CONFIG_ERR_LEN]);

/* consumer_apply_fn for ingest.rows: stores the rows of every chunk and
 * records import end markers. */
oms_status ingest_apply_rows(void *ctx, consumer_batch *b);

/* Seals what is ready (complete imports, idle live orders, timed-out
 * imports), in transactions of one big import or several small ones (live
 * ones together). Sets *sealed to
 * the number of imports sealed. Used by the sealer thread and by tests. */
oms_status ingest_seal_ready(ingest_ctx *ctx, PGconn *conn, int *sealed);

/* Starts/stops the sealer thread: a lib/pgworker on its own PostgreSQL
 * connection that runs ingest_seal_ready, then waits 50 ms. */
oms_status ingest_sealer_start(ingest_ctx *ctx);
void ingest_sealer_stop(ingest_ctx *ctx);

/* ---- events (ingest_events.c) ---- */

/* Adds an import.rejected event to ob. import_id "" for live rows. */
oms_status ingest_emit_rejected(outbox_batch *ob, const char *import_id, int row,
                                const char *order_id, const char *field, const char *reason,
                                const char *causation_id);

/* True when import_id names a live (per-order) import. */
bool ingest_is_live(const char *import_id);

/* ---- order status (ingest_status.c): consumer_apply_fn for the lifecycle ---- */
oms_status ingest_apply_stock_reserved(void *ctx, consumer_batch *b);
oms_status ingest_apply_stock_rejected(void *ctx, consumer_batch *b);
oms_status ingest_apply_payment_settled(void *ctx, consumer_batch *b);

/* ---- catalogue prices (ingest_catalog.c) ---- */
/* consumer_apply_fn for catalog.product: keeps each SKU's newest price in
 * catalog_prices, which prices product-list lines the file gives none. */
oms_status ingest_apply_catalog_product(void *ctx, consumer_batch *b);

/* ---- refunds (ingest_refunds.c) ---- */
/* consumer_apply_fn for refund.processed: the order becomes partially_refunded
 * or refunded, and order.refunded is published once per refund. */
oms_status ingest_apply_refund_processed(void *ctx, consumer_batch *b);

/* ---- queries (ingest_http.c) ---- */
void ingest_routes(oms_service *svc, http_server *http, void *ctx);

#endif
