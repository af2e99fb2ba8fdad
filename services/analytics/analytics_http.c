/*
 * analytics_http.c - the query API: GET /kpi/today, GET /kpi/{YYYY-MM-DD},
 * GET /kpi?from=&to=, GET /leaderboard?period=&limit=, and
 * POST /kpi/snapshot?date= (admin token). Handlers share one Redis
 * connection (analytics_redis.c) with the snapshot thread; PostgreSQL comes
 * from service_pg_acquire's pool.
 */
#include "analytics.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIMIT_DEFAULT 10
#define QUERY_TEXT_MAX 64 /* longer dates or periods are refused before parsing */

static int64_t today_days(void)
{
    return oms_now_ms() / 86400000LL;
}

/* Responds with the KPIs of n days from first: one object for a single day,
 * else {"days": [...], "totals": {...}}. */
static void respond_kpis(analytics_http *h, int64_t first, size_t n, bool single,
                         http_response *resp)
{
    analytics_kpi *k = calloc(n, sizeof *k);
    redis_conn *r = k ? analytics_redis_acquire(h->redis) : NULL;
    if (r == NULL) {
        free(k);
        http_respond_error(resp, 503, "Redis is unavailable");
        return;
    }
    oms_status s = analytics_read_kpis(r, first, n, k);
    analytics_redis_release(h->redis, r);
    if (s != OMS_OK) {
        free(k);
        http_respond_error(resp, 503, "cannot read KPIs from Redis: %s", oms_strstatus(s));
        return;
    }
    if (single) {
        http_respond_json(resp, 200, analytics_kpi_json(&k[0], h->currency));
        free(k);
        return;
    }
    analytics_kpi total = {{0}, 0, 0, 0, 0, 0};
    json_t *days = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(days, analytics_kpi_json(&k[i], h->currency));
        total.revenue_cents += k[i].revenue_cents;
        total.order_count += k[i].order_count;
        total.failed_count += k[i].failed_count;
        total.refund_cents += k[i].refund_cents;
        total.refund_count += k[i].refund_count;
    }
    json_t *totals = analytics_kpi_json(&total, h->currency);
    json_object_del(totals, "date");
    json_t *body = json_pack("{s:s,s:s,s:o,s:o}", "from", k[0].day, "to", k[n - 1].day, "days",
                             days, "totals", totals);
    free(k);
    http_respond_json(resp, 200, body);
}

static void h_kpi_day(void *ctx, const http_request *req, http_response *resp)
{
    const char *date = NULL;
    int64_t day;
    if (http_path_str(req, 0, QUERY_TEXT_MAX, &date, resp) != OMS_OK)
        return;
    if (strcmp(date, "today") == 0)
        day = today_days();
    else if (analytics_day_parse(date, &day) != OMS_OK) {
        http_respond_error(resp, 400, "date \"%s\" is invalid: expected YYYY-MM-DD or today", date);
        return;
    }
    respond_kpis(ctx, day, 1, true, resp);
}

/* Parses query parameter name as a date; responds 400 naming it when bad. */
static bool query_day(const http_request *req, const char *name, int64_t *day, http_response *resp)
{
    const char *v = NULL;
    if (http_query_str(req, name, QUERY_TEXT_MAX, &v, resp) != OMS_OK)
        return false;
    if (v == NULL) {
        http_respond_error(resp, 400, "parameter %s is required (YYYY-MM-DD)", name);
        return false;
    }
    if (analytics_day_parse(v, day) != OMS_OK) {
        http_respond_error(resp, 400, "parameter %s=\"%s\" is invalid: expected YYYY-MM-DD", name,
                           v);
        return false;
    }
    return true;
}

static void h_kpi_range(void *ctx, const http_request *req, http_response *resp)
{
    int64_t from, to;
    if (!query_day(req, "from", &from, resp) || !query_day(req, "to", &to, resp))
        return;
    if (to < from) {
        http_respond_error(resp, 400, "parameter to=\"%s\" is before from=\"%s\"",
                           http_query(req, "to"), http_query(req, "from"));
        return;
    }
    if (to - from + 1 > ANALYTICS_MAX_RANGE_DAYS) {
        http_respond_error(resp, 400, "from..to spans %lld days: at most %d are allowed",
                           (long long)to - (long long)from + 1, ANALYTICS_MAX_RANGE_DAYS);
        return;
    }
    respond_kpis(ctx, from, (size_t)(to - from + 1), false, resp);
}

static void h_leaderboard(void *ctx, const http_request *req, http_response *resp)
{
    analytics_http *h = ctx;
    const char *period = NULL, *limit_text = NULL;
    if (http_query_str(req, "period", QUERY_TEXT_MAX, &period, resp) != OMS_OK ||
        http_query_str(req, "limit", QUERY_TEXT_MAX, &limit_text, resp) != OMS_OK)
        return;
    /* strtol saturates on overflow, which the range check then refuses. */
    char *end = NULL;
    long limit = limit_text ? strtol(limit_text, &end, 10) : LIMIT_DEFAULT;
    if (period == NULL)
        period = "all";
    if (strcmp(period, "all") != 0 && !analytics_month_valid(period)) {
        http_respond_error(resp, 400, "parameter period=\"%s\" is invalid: expected YYYY-MM or all",
                           period);
        return;
    }
    if (limit_text &&
        (*limit_text == '\0' || *end != '\0' || limit < 1 || limit > ANALYTICS_MAX_LIMIT)) {
        http_respond_error(resp, 400,
                           "parameter limit=\"%s\" is invalid: expected an integer"
                           " from 1 to %d",
                           limit_text, ANALYTICS_MAX_LIMIT);
        return;
    }
    analytics_leader *l = NULL;
    size_t n = 0;
    redis_conn *r = analytics_redis_acquire(h->redis);
    if (r == NULL) {
        http_respond_error(resp, 503, "Redis is unavailable");
        return;
    }
    oms_status s = analytics_read_leaderboard(r, period, (size_t)limit, &l, &n);
    analytics_redis_release(h->redis, r);
    if (s != OMS_OK) {
        http_respond_error(resp, 503, "cannot read the leaderboard from Redis: %s",
                           oms_strstatus(s));
        return;
    }
    http_respond_json(resp, 200, analytics_leaders_json(l, n, period, h->currency));
    free(l);
}

static void h_snapshot(void *ctx, const http_request *req, http_response *resp)
{
    analytics_http *h = ctx;
    const char *date = NULL;
    int64_t day = today_days();
    if (http_query_str(req, "date", QUERY_TEXT_MAX, &date, resp) != OMS_OK)
        return;
    if (date != NULL && analytics_day_parse(date, &day) != OMS_OK) {
        http_respond_error(resp, 400, "parameter date=\"%s\" is invalid: expected YYYY-MM-DD",
                           date);
        return;
    }
    bool taken = false;
    size_t leaders = 0;
    oms_status s = OMS_ETRANSIENT;
    PGconn *pg = service_pg_acquire(h->svc, NULL);
    if (pg != NULL) {
        redis_conn *r = analytics_redis_acquire(h->redis);
        if (r != NULL) {
            s = analytics_snapshot(pg, r, day, h->currency, true, &taken, &leaders);
            analytics_redis_release(h->redis, r);
        }
        service_pg_release(h->svc, pg);
    }
    if (s != OMS_OK) {
        http_respond_error(resp, 503, "snapshot not taken: %s", oms_strstatus(s));
        return;
    }
    char text[ANALYTICS_DAY_LEN], month[ANALYTICS_MONTH_LEN];
    analytics_day_format(day, text);
    snprintf(month, sizeof month, "%.7s", text);
    log_info("KPI snapshot taken", "date", text, NULL);
    http_respond_json(resp, 200,
                      json_pack("{s:s,s:s,s:I}", "date", text, "period", month, "leaders",
                                (json_int_t)leaders));
}

void analytics_routes(http_server *http, analytics_http *h)
{
    void *ctx = h;
    http_route(http, "GET", "/kpi", false, h_kpi_range, ctx);
    http_route(http, "GET", "/kpi/{date}", false, h_kpi_day, ctx);
    http_route(http, "POST", "/kpi/snapshot", true, h_snapshot, ctx);
    http_route(http, "GET", "/leaderboard", false, h_leaderboard, ctx);
}
