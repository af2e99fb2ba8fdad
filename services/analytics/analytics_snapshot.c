/*
 * analytics_snapshot.c - copies of the projection in PostgreSQL: a day's
 * KPIs and the top 100 of its month's leaderboard, in one transaction with
 * set-based SQL; and the thread that takes yesterday's automatically.
 *
 * Replicas may all run the thread: the automatic snapshot inserts with
 * ON CONFLICT DO NOTHING, so the first one wins and the others write nothing.
 */
#include "analytics.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MS_PER_DAY 86400000LL
#define CHECK_EVERY_MS 30000

static oms_status insert_kpi(PGconn *pg, const analytics_kpi *k, const char *currency, bool replace,
                             bool *taken)
{
    char v[5][24];
    int64_t nums[] = {k->revenue_cents, k->order_count, k->failed_count, k->refund_cents,
                      k->refund_count};
    for (int i = 0; i < 5; i++)
        snprintf(v[i], sizeof v[i], "%lld", (long long)nums[i]);
    const char *params[] = {k->day, v[0], v[1], v[2], v[3], v[4], currency};
    PGresult *res = NULL;
    oms_status s = pg_query(
        pg, "kpi snapshot",
        replace ? "INSERT INTO kpi_snapshots AS k (day, revenue_cents, order_count, failed_count,"
                  " refund_cents, refund_count, currency) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                  " ON CONFLICT (day) DO UPDATE SET revenue_cents = EXCLUDED.revenue_cents,"
                  " order_count = EXCLUDED.order_count, failed_count = EXCLUDED.failed_count,"
                  " refund_cents = EXCLUDED.refund_cents, refund_count = EXCLUDED.refund_count,"
                  " currency = EXCLUDED.currency, taken_at = now() RETURNING day"
                : "INSERT INTO kpi_snapshots (day, revenue_cents, order_count, failed_count,"
                  " refund_cents, refund_count, currency) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                  " ON CONFLICT (day) DO NOTHING RETURNING day",
        7, params, PGRES_TUPLES_OK, &res);
    if (s == OMS_OK)
        *taken = PQntuples(res) == 1;
    PQclear(res);
    return s;
}

/* The columns of the leaderboard rows' unnest. */
enum { L_RANK, L_ID, L_NAME, L_EMAIL, L_NET, L_ORDERS, L_NCOLS };

/* The columns are $1..$6; the day and the period every row shares follow. */
static oms_status insert_rows(PGconn *pg, const char *day, const char *period, pg_cols *c)
{
    const char *const *cols = pg_cols_params(c);
    const char *params[L_NCOLS + 2];
    if (cols == NULL)
        return c->status != OMS_OK ? c->status : OMS_ENOMEM;
    memcpy(params, cols, L_NCOLS * sizeof *params);
    params[L_NCOLS] = day;
    params[L_NCOLS + 1] = period;
    return pg_query(pg, "leaderboard snapshot",
                    "INSERT INTO leaderboard_snapshots (day, period, rank, customer_id, name,"
                    " email, net_spend_cents, orders) SELECT $7, $8, r, c, nm, e, nt, o FROM"
                    " unnest($1::int[], $2::text[], $3::text[], $4::text[], $5::bigint[],"
                    " $6::bigint[]) AS t(r, c, nm, e, nt, o)",
                    L_NCOLS + 2, params, PGRES_COMMAND_OK, NULL);
}

static oms_status insert_leaders(PGconn *pg, const char *day, const char *period,
                                 const analytics_leader *l, size_t n)
{
    pg_cols c;
    oms_status s;
    pg_cols_init(&c, L_NCOLS);
    for (size_t i = 0; i < n; i++) {
        pg_cols_int(&c, L_RANK, (int64_t)i + 1);
        pg_cols_text(&c, L_ID, l[i].customer_id);
        pg_cols_text(&c, L_NAME, l[i].name);
        pg_cols_text(&c, L_EMAIL, l[i].email);
        pg_cols_int(&c, L_NET, l[i].net_cents);
        pg_cols_int(&c, L_ORDERS, l[i].orders);
    }
    const char *del[] = {day};
    if ((s = c.status) == OMS_OK)
        s = pg_query(pg, "leaderboard snapshot clear",
                     "DELETE FROM leaderboard_snapshots WHERE day = $1", 1, del, PGRES_COMMAND_OK,
                     NULL);
    if (s == OMS_OK && n > 0)
        s = insert_rows(pg, day, period, &c);
    pg_cols_fini(&c);
    return s;
}

oms_status analytics_snapshot(PGconn *pg, redis_conn *r, int64_t day, const char *currency,
                              bool replace, bool *taken, size_t *leaders)
{
    analytics_kpi k;
    analytics_leader *l = NULL;
    size_t n = 0;
    char period[ANALYTICS_MONTH_LEN];
    oms_status s = analytics_read_kpis(r, day, 1, &k);
    *taken = false;
    snprintf(period, sizeof period, "%.7s", k.day);
    if (s == OMS_OK)
        s = analytics_read_leaderboard(r, period, ANALYTICS_TOP_SNAPSHOT, &l, &n);
    if (s != OMS_OK)
        return s;
    if ((s = pg_exec(pg, "BEGIN")) == OMS_OK &&
        (s = insert_kpi(pg, &k, currency, replace, taken)) == OMS_OK &&
        (!*taken || (s = insert_leaders(pg, k.day, period, l, n)) == OMS_OK))
        s = pg_exec(pg, "COMMIT");
    if (s != OMS_OK) {
        pg_rollback(pg);
        *taken = false;
    }
    *leaders = *taken ? n : 0;
    free(l);
    return s;
}

/* ---- the daily snapshot ------------------------------------------------ */

struct analytics_snapshotter {
    oms_service *svc;
    analytics_redis *redis;
    const char *currency;
    int64_t delay_ms;
    const atomic_int *stopping;
    atomic_int stop;
    pthread_t thread;
    int64_t done_day; /* the last day this replica knows is snapshotted */
};

static void snapshot_yesterday(analytics_snapshotter *t)
{
    int64_t now = oms_now_ms(), yesterday = now / MS_PER_DAY - 1;
    if (yesterday <= t->done_day || now - (yesterday + 1) * MS_PER_DAY < t->delay_ms)
        return;
    PGconn *pg = service_pg_acquire(t->svc, NULL);
    if (pg == NULL)
        return;
    redis_conn *r = analytics_redis_acquire(t->redis);
    bool taken = false;
    size_t leaders = 0;
    if (r != NULL) {
        if (analytics_snapshot(pg, r, yesterday, t->currency, false, &taken, &leaders) == OMS_OK)
            t->done_day = yesterday;
        analytics_redis_release(t->redis, r);
    }
    service_pg_release(t->svc, pg);
    if (taken) {
        char day[ANALYTICS_DAY_LEN];
        analytics_day_format(yesterday, day);
        log_info("daily KPI snapshot taken", "date", day, NULL);
    }
}

static void *snapshotter_main(void *arg)
{
    analytics_snapshotter *t = arg;
    while (!atomic_load(&t->stop) && !atomic_load(t->stopping)) {
        snapshot_yesterday(t);
        oms_sleep_ms(CHECK_EVERY_MS, &t->stop);
    }
    return NULL;
}

oms_status analytics_snapshotter_start(analytics_snapshotter **out, oms_service *svc,
                                       analytics_redis *redis, const char *currency,
                                       int64_t delay_s, const atomic_int *stopping)
{
    analytics_snapshotter *t = calloc(1, sizeof *t);
    if (t == NULL)
        return OMS_ENOMEM;
    t->svc = svc;
    t->redis = redis;
    t->currency = currency;
    t->delay_ms = delay_s * 1000;
    t->stopping = stopping;
    t->done_day = -1;
    if (pthread_create(&t->thread, NULL, snapshotter_main, t) != 0) {
        free(t);
        return OMS_ENOMEM;
    }
    *out = t;
    return OMS_OK;
}

void analytics_snapshotter_stop(analytics_snapshotter *t)
{
    if (t == NULL)
        return;
    atomic_store(&t->stop, 1);
    pthread_join(t->thread, NULL);
    free(t);
}
