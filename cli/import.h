/*
 * import.h - the parts of `omsctl import`: checking a file before anything
 * is sent (import_check.c), streaming it to ingest.rows in chunks
 * (import_send.c), following the import's events until ingest reports it
 * complete and its orders paid or failed (import_watch.c), and the summary
 * (import_report.c). cmd_import.c puts them together.
 */
#ifndef OMS_CLI_IMPORT_H
#define OMS_CLI_IMPORT_H

#include "cli.h"
#include "order_csv.h"

#define IMPORT_SUBJECT ORDER_CSV_SUBJECT
#define IMPORT_HDR_ID ORDER_CSV_HDR_IMPORT_ID
#define IMPORT_HDR_CHUNK ORDER_CSV_HDR_CHUNK
#define IMPORT_HDR_FIRST_ROW ORDER_CSV_HDR_FIRST_ROW
#define IMPORT_HDR_END ORDER_CSV_HDR_IMPORT_END

#define IMPORT_ID_LEN 48 /* "imp-" + UUID + NUL fits */
#define IMPORT_MAX_REJECTIONS 5
#define IMPORT_MAX_FAILURES 3
#define IMPORT_CURRENCY_LEN 16
/* OrderFailed reasons start with one of these (docs/events.md). */
#define IMPORT_REASON_OUT_OF_STOCK "out of stock"
#define IMPORT_REASON_PAYMENT "payment failed"

/* ---- import_check.c ---- */

#define IMPORT_IGNORED_LEN 512

/* What the first pass learnt about a file. */
typedef struct import_file_info {
    int64_t data_rows;
    order_layout layout;
    bool generates_ids;               /* product-list layout without order_id */
    char content_sha256[65];          /* of the file's bytes, lowercase hex */
    char ignored[IMPORT_IGNORED_LEN]; /* header names ingest ignores, ", "-separated */
} import_file_info;

/* Reads path once: the first record must be a header naming every required
 * column; counts the data rows after it, hashes the file and lists the
 * columns ingest ignores into *info. On a problem prints it (naming the
 * file, the column and the accepted names) and returns OMS_EINVAL (or
 * OMS_EIO when the file cannot be read). */
oms_status import_check_file(const char *path, import_file_info *info);

/* ---- import_send.c ---- */

/* Called after each chunk is handed to nats.c, with the data rows sent so far. */
typedef void (*import_tick_fn)(void *ctx, int64_t rows_sent);

typedef struct import_send_opts {
    const char *path;
    const char *import_id;
    int64_t chunk_rows;         /* data rows per chunk; fewer when a chunk would
                                   exceed the server's max payload */
    int64_t ack_wait_ms;        /* for the PubAcks of all chunks, then of the end marker */
    const char *content_sha256; /* sent as Oms-Content-Sha256 with every chunk; may be NULL */
    import_tick_fn tick;        /* may be NULL */
    void *tick_ctx;
} import_send_opts;

/* Streams the file as chunks (header + rows, headers Oms-Import-Id, Oms-Chunk,
 * Oms-First-Row, Nats-Msg-Id "<id>:<chunk>"), waits for every PubAck, then
 * publishes the end marker (Oms-Import-End: rows, Nats-Msg-Id "<id>:end").
 * Sets *rows_sent to the data rows published (also on failure). Prints what
 * went wrong; stops early on cli_interrupted (OMS_ETRANSIENT). */
oms_status import_send(js_conn *c, const import_send_opts *o, int64_t *rows_sent);

/* ---- import_watch.c ---- */

typedef struct import_rejection {
    int32_t row;
    char order_id[ORDER_FIELD_MAX + 1];
    char field[32];
    char reason[ORDER_ERR_LEN + 96];
} import_rejection;

/* An order of the import that failed (order.failed). */
typedef struct import_failure {
    char order_id[ORDER_FIELD_MAX + 1];
    char reason[ORDER_ERR_LEN + 96]; /* truncated beyond */
} import_failure;

/* What has been seen of one import. */
typedef struct import_outcome {
    int64_t orders_seen;     /* order.created events of this import */
    int64_t rejections_seen; /* import.rejected events of this import */
    size_t n_rejections;     /* the lowest-numbered rows seen, in row order */
    import_rejection rejections[IMPORT_MAX_REJECTIONS];
    bool completed; /* import.completed arrived; the counts below are set */
    int32_t rows, valid_rows, rejected_rows, orders, missing_rows;
    bool timed_out; /* ingest sealed it before every announced row came */
    /* order.paid / order.failed of the import's orders, each order once. */
    int64_t paid, failed;
    int64_t failed_out_of_stock, failed_payment; /* failed, by reason prefix */
    int64_t revenue_cents;                       /* Σ total_cents of the paid orders (saturates) */
    char currency[IMPORT_CURRENCY_LEN];          /* of the import's events; "" before one came */
    size_t n_failures; /* the first failures to arrive, in arrival order */
    import_failure failures[IMPORT_MAX_FAILURES];
} import_outcome;

typedef struct import_watch import_watch;

/* Subscribes (core NATS) to order.created, import.rejected, import.completed,
 * order.paid and order.failed, keeping what concerns import_id (copied), and
 * flushes so the server knows the interest before anything is published.
 * Caller frees with import_watch_destroy. */
oms_status import_watch_start(import_watch **out, js_conn *c, const char *import_id);

/* Copies what was seen so far (thread-safe). */
void import_watch_snapshot(import_watch *w, import_outcome *out);

/* order.paid / order.failed events nats.c dropped because they came faster
 * than they were handled: when not 0, the paid and failed counts are short. */
int64_t import_watch_dropped(import_watch *w);

/* Unsubscribes, waits until no callback runs, and frees; NULL is a no-op. */
void import_watch_destroy(import_watch *w);

/* ---- import_report.c ---- */

/* What `omsctl import` reports when it stops waiting. */
typedef struct import_summary {
    const char *import_id; /* borrowed */
    import_outcome o;
    int64_t rows_sent;
    double completed_s;    /* from the start to import.completed */
    double elapsed_s;      /* from the start to the end of the wait */
    bool follow;           /* waited for every order to be paid or failed */
    bool settled;          /* follow, and every order was paid or failed */
    int64_t dropped;       /* import_watch_dropped */
    const char *ignored;   /* columns ingest ignored, ", "-separated; NULL or "" none */
    const char *id_prefix; /* generated order ids are id_prefix + row; NULL none */
} import_summary;

/* Orders of the import neither paid nor failed yet (ingest's count once the
 * import completed, the order.created events seen before). */
int64_t import_in_flight(const import_outcome *o);

/* One JSON object on stdout, also for an import that did not complete
 * ("completed": false) or whose orders did not all settle ("in_flight" > 0).
 * Returns OMS_EIO when stdout cannot be written. */
oms_status import_print_json(const import_summary *s);

/* The summary of a completed import for a person, on stdout. */
void import_print_text(const import_summary *s);

/* On stderr: why the wait ended before the import completed (timeout_s or
 * cli_interrupted), or before every order settled, and where to look. */
void import_print_unfinished(const import_summary *s, long long timeout_s);

#endif
