/*
 * analytics.h - the analytics service: a projection of order.paid,
 * order.failed and refund.processed into Redis (daily KPIs, customer
 * leaderboards), queried over HTTP, snapshotted into PostgreSQL, and
 * rebuildable from the streams at any time.
 *
 * Keys live under a generation: analytics:<gen>:kpi:<YYYY-MM-DD> and so on;
 * analytics:current names the generation readers use and analytics:writing
 * the ones the consumers write (two while a rebuild runs). Every event is
 * applied by one Lua script (analytics_script.c) whose effects are sums, so
 * the totals do not depend on the order events arrive in. docs/analytics.md
 * has the key layout and the semantics.
 */
#ifndef OMS_ANALYTICS_H
#define OMS_ANALYTICS_H

#include "rconsumer.h"
#include "redis.h"
#include "service.h"

#include <pthread.h>

#define ANALYTICS_DAY_LEN 11  /* "YYYY-MM-DD" */
#define ANALYTICS_MONTH_LEN 8 /* "YYYY-MM" */
#define ANALYTICS_GEN_LEN 24
#define ANALYTICS_TOP_SNAPSHOT 100
#define ANALYTICS_MAX_RANGE_DAYS 366
#define ANALYTICS_MAX_LIMIT 1000
#define ANALYTICS_N_CONSUMERS 3 /* order.paid, order.failed, refund.processed */
#define ANALYTICS_NAME_LEN 64

extern const pg_migration analytics_migrations[];

/* What the consumers' encode and done functions need. */
typedef struct analytics_ctx {
    const char *currency;
    int64_t seen_ttl_s;                 /* event ids are remembered this long */
    char target_gen[ANALYTICS_GEN_LEN]; /* "" live (every generation written); a rebuild's own */
    metrics *m;
    char names[ANALYTICS_N_CONSUMERS][ANALYTICS_NAME_LEN]; /* consumer and durable names */
} analytics_ctx;

/* ---- days (analytics_day.c) ------------------------------------------- */

/* The UTC day "YYYY-MM-DD" and month "YYYY-MM" of ms since the epoch.
 * OMS_EINVAL for a time before 1970 or after 9999. */
oms_status analytics_day_of(int64_t ms, char day[ANALYTICS_DAY_LEN],
                            char month[ANALYTICS_MONTH_LEN]);

/* Parses a strict "YYYY-MM-DD" that names a real date into days since
 * 1970-01-01. OMS_EINVAL otherwise. */
oms_status analytics_day_parse(const char *text, int64_t *days);

/* Formats days since the epoch as "YYYY-MM-DD". */
void analytics_day_format(int64_t days, char day[ANALYTICS_DAY_LEN]);

/* Parses a strict "YYYY-MM" (month 01-12, year 1970-9999). */
bool analytics_month_valid(const char *text);

/* Average order value: revenue / orders rounded half up to a cent; 0 when
 * there are no orders. */
int64_t analytics_aov_cents(int64_t revenue_cents, int64_t orders);

/* ---- the projection (analytics_script.c) ------------------------------ */

/* The Lua script every event goes through. */
extern const char ANALYTICS_APPLY_SCRIPT[];

/* rconsumer encode functions: decode, validate, build the script's ARGV. */
oms_status analytics_encode_paid(void *ctx, oms_msg *m, redis_args *args);
oms_status analytics_encode_failed(void *ctx, oms_msg *m, redis_args *args);
oms_status analytics_encode_refund(void *ctx, oms_msg *m, redis_args *args);

/* rconsumer done function: business counters for events applied to the
 * generation readers see. */
void analytics_done(void *ctx, const oms_msg *m, long long result);

void analytics_metrics_declare(metrics *m);

/* Fills the specs of the three consumers (order.paid, order.failed on ORDERS;
 * refund.processed on REFUNDS), named "<durable_prefix>-paid|failed|refunds",
 * with batch settings from cfg. ctx is borrowed and holds the names. */
void analytics_specs_init(rconsumer_spec specs[ANALYTICS_N_CONSUMERS], analytics_ctx *ctx,
                          const oms_config *cfg, const char *durable_prefix, bool replay);

/* ---- reading (analytics_read.c) --------------------------------------- */

typedef struct analytics_kpi {
    char day[ANALYTICS_DAY_LEN];
    int64_t revenue_cents, order_count, failed_count, refund_cents, refund_count;
} analytics_kpi;

typedef struct analytics_leader {
    char customer_id[257];
    char name[257];
    char email[257];
    int64_t net_cents;
    int64_t orders;
} analytics_leader;

/* Reads the KPIs of days first..first+n-1 (days since the epoch) from the
 * current generation, in one atomic script call. out has n entries. */
oms_status analytics_read_kpis(redis_conn *r, int64_t first, size_t n, analytics_kpi *out);

/* Reads the top limit customers of period ("YYYY-MM" or "all"), highest net
 * spend first (ties by customer id). *out is malloc'd (caller frees), *n_out
 * its length. */
oms_status analytics_read_leaderboard(redis_conn *r, const char *period, size_t limit,
                                      analytics_leader **out, size_t *n_out);

/* Day KPIs and leaderboard entries as JSON (with derived values). */
json_t *analytics_kpi_json(const analytics_kpi *k, const char *currency);
json_t *analytics_leaders_json(const analytics_leader *l, size_t n, const char *period,
                               const char *currency);

/* ---- the shared Redis connection (analytics_redis.c) ------------------ */

typedef struct analytics_redis analytics_redis;

/* One Redis connection to url (borrowed), connected on first use and
 * shared by the query handlers and the snapshot thread. Caller frees with
 * analytics_redis_destroy once no thread uses it. */
oms_status analytics_redis_create(analytics_redis **out, const char *url);
void analytics_redis_destroy(analytics_redis *ar);

/* The connection, waiting for the thread using it to give it back, and
 * reconnected first when it broke; NULL when Redis is unreachable. Give it
 * back with analytics_redis_release (NULL is a no-op). */
redis_conn *analytics_redis_acquire(analytics_redis *ar);
void analytics_redis_release(analytics_redis *ar, redis_conn *c);

/* ---- HTTP (analytics_http.c) ------------------------------------------ */

typedef struct analytics_http {
    oms_service *svc;
    analytics_redis *redis; /* borrowed */
    const char *currency;
} analytics_http;

/* Registers the query routes; h is borrowed for the server's life. */
void analytics_routes(http_server *http, analytics_http *h);

/* ---- snapshots (analytics_snapshot.c) --------------------------------- */

/* Copies day's KPIs and the top 100 of its month's leaderboard into
 * PostgreSQL in one transaction. replace=false keeps an existing snapshot
 * (the automatic one); *taken tells whether one was written. */
oms_status analytics_snapshot(PGconn *pg, redis_conn *r, int64_t day, const char *currency,
                              bool replace, bool *taken, size_t *leaders);

typedef struct analytics_snapshotter analytics_snapshotter;

/* Starts the thread that snapshots each UTC day delay_s after it ended. */
/* svc, redis and currency are borrowed for the thread's life. */
oms_status analytics_snapshotter_start(analytics_snapshotter **out, oms_service *svc,
                                       analytics_redis *redis, const char *currency,
                                       int64_t delay_s, const atomic_int *stopping);
void analytics_snapshotter_stop(analytics_snapshotter *s);

/* ---- rebuild (analytics_rebuild.c) ------------------------------------ */

/* `oms-analytics rebuild`: replays ORDERS and REFUNDS from their start into
 * a fresh generation and makes it current. Returns the exit status. */
int analytics_rebuild_main(void);

/* Deletes every key of generation gen (SCAN + UNLINK). */
oms_status analytics_drop_generation(redis_conn *r, const char *gen);

#endif
