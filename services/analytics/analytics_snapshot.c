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

static oms_status insert_kpi(PGconn *pg, const analytics_kpi *k, const char *currency,
                             bool replace, bool *taken)
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

static oms_status insert_leaders(PGconn *pg, const char *day, const char *period,
                                 const analytics_leader *l, size_t n)
{
    pg_array ranks, ids, names, emails, nets, orders;
    oms_status s = OMS_OK;
    pg_array_init(&ranks), pg_array_init(&ids), pg_array_init(&names);
    pg_array_init(&emails), pg_array_init(&nets), pg_array_init(&orders);
    for (size_t i = 0; i < n && s == OMS_OK; i++)
        if (pg_array_add_int(&ranks, (int64_t)i + 1) || pg_array_add(&ids, l[i].customer_id) ||
            pg_array_add(&names, l[i].name) || pg_array_add(&emails, l[i].email) ||
            pg_array_add_int(&nets, l[i].net_cents) || pg_array_add_int(&orders, l[i].orders))
            s = OMS_ENOMEM;
    const char *del[] = {day};
    if (s == OMS_OK)
        s = pg_query(pg, "leaderboard snapshot clear",
                     "DELETE FROM leaderboard_snapshots WHERE day = $1", 1, del,
                     PGRES_COMMAND_OK, NULL);
    const char *params[] = {day,
                            period,
                            pg_array_literal(&ranks),
                            pg_array_literal(&ids),
                            pg_array_literal(&names),
                            pg_array_literal(&emails),
                            pg_array_literal(&nets),
                            pg_array_literal(&orders)};
    if (s == OMS_OK && n > 0)
        s = pg_query(pg, "leaderboard snapshot",
                     "INSERT INTO leaderboard_snapshots (day, period, rank, customer_id, name,"
                     " email, net_spend_cents, orders) SELECT $1, $2, r, c, nm, e, nt, o FROM"
                     " unnest($3::int[], $4::text[], $5::text[], $6::text[], $7::bigint[],"
                     " $8::bigint[]) AS t(r, c, nm, e, nt, o)",
                     8, params, PGRES_COMMAND_OK, NULL);
    pg_array_fini(&ranks), pg_array_fini(&ids), pg_array_fini(&names);
    pg_array_fini(&emails), pg_array_fini(&nets), pg_array_fini(&orders);
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
    if ((s = pg_exec(pg, "BEGIN")) == OMS_OK && (s = insert_kpi(pg, &k, currency, replace,
                                                                taken)) == OMS_OK &&
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
