/*
 * test_analytics.c - the analytics service end to end with the real
 * services: orders imported through ingest, inventory and payment reach
 * paid or failed, refunds are published as refund.processed, and Redis's
 * KPIs and leaderboard must equal what PostgreSQL says happened, to the
 * cent: after a redelivery, after deleting every Redis key and running
 * `oms-analytics rebuild`, and after kill -9 of analytics, dropped Redis
 * connections and a flushed script cache in the middle of an import. A real
 * Prometheus scrapes the services and must report the same business totals.
 */
#include "testenv.h"

#include "money.h"
#include "oms_events.pb-c.h"
#include "outbox.h"
#include "redis.h"

#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define INGEST_PORT 19481
#define INVENTORY_PORT 19482
#define PAYMENT_PORT 19483
#define REFUND_PORT 19485
#define ANALYTICS_PORT 19486
#define PROMETHEUS_PORT 19490
#define REDIS_DB "3"
#define DAY_MS 86400000LL

static const char *const SCHEMAS[] = {"ingest", "inventory", "payment",
                                      "refund", "analytics", NULL};
static const char *const INGEST_ENV[] = {"OMS_INGEST_SEAL_MS=200", NULL};
static const char *const PAY_ENV[] = {"OMS_PAYMENT_SUCCESS_RATE=0.8", NULL};
static char redis_url_setting[300]; /* "OMS_REDIS_URL=redis://.../3" */
static const char *analytics_env[] = {redis_url_setting, NULL};
static pid_t prometheus_pid;

typedef struct stack {
    pid_t ingest, inventory, payment, analytics;
} stack;

/* ---- Redis ------------------------------------------------------------ */

static const char *redis_url(void)
{
    if (redis_url_setting[0] == '\0') {
        const char *base = testenv_require("OMS_REDIS_URL");
        const char *slash = strchr(base + strlen("redis://"), '/');
        int len = slash ? (int)(slash - base) : (int)strlen(base);
        snprintf(redis_url_setting, sizeof redis_url_setting, "OMS_REDIS_URL=%.*s/" REDIS_DB, len,
                 base);
    }
    return redis_url_setting + strlen("OMS_REDIS_URL=");
}

static void redis_run(const char *cmd)
{
    char err[REDIS_ERR_LEN];
    redis_conn *r = NULL;
    assert_int_equal(redis_connect(&r, redis_url(), 2000, err), OMS_OK);
    redisReply *rep = redisCommand(redis_context(r), cmd);
    assert_non_null(rep);
    assert_int_not_equal(rep->type, REDIS_REPLY_ERROR);
    freeReplyObject(rep);
    redis_conn_destroy(r);
}

/* ---- the stack -------------------------------------------------------- */

static void start_all(stack *s)
{
    redis_url();
    testenv_reset(SCHEMAS);
    redis_run("FLUSHDB");
    s->ingest = testenv_service_start("ingest", INGEST_PORT, INGEST_ENV);
    s->inventory = testenv_service_start("inventory", INVENTORY_PORT, NULL);
    s->payment = testenv_service_start("payment", PAYMENT_PORT, PAY_ENV);
    s->analytics = testenv_service_start("analytics", ANALYTICS_PORT, analytics_env);
}

static void stop_all(stack *s)
{
    testenv_service_stop(s->analytics);
    testenv_service_stop(s->payment);
    testenv_service_stop(s->inventory);
    testenv_service_stop(s->ingest);
}

static int teardown(void **state)
{
    if (redis_url_setting[0] != '\0')
        redis_run("CONFIG SET maxmemory 0"); /* whatever a failed test left */
    if (prometheus_pid > 0) {
        kill(prometheus_pid, SIGKILL);
        waitpid(prometheus_pid, NULL, 0);
        prometheus_pid = 0;
    }
    return testenv_cleanup(state);
}

static void load_product(js_conn *js, const char *sku, long on_hand)
{
    Oms__V1__ProductUpserted ev = OMS__V1__PRODUCT_UPSERTED__INIT;
    Oms__V1__EventMeta meta;
    char id[37];
    outbox_meta_init(&meta, id, "test", sku, "");
    ev.meta = &meta;
    ev.sku = (char *)sku;
    ev.name = (char *)sku;
    ev.on_hand = on_hand;
    ev.price_cents = 100;
    testenv_publish_event(js, "catalog.product", id, &ev.base);
}

/* n orders of 1-3 units at varied prices for 23 customers (with names),
 * sent as one import in chunks of 200 rows. */
static void import_orders(js_conn *js, const char *import_id, const char *prefix, int n)
{
    const int chunk_rows = 200;
    int chunk = 0;
    for (int first = 0; first < n; first += chunk_rows, chunk++) {
        size_t cap = 256 + (size_t)chunk_rows * 160, len = 0;
        char *body = malloc(cap), id[128], row[16];
        len += (size_t)snprintf(body, cap,
                                "order_id,customer_id,customer_name,customer_email,"
                                "sku,qty,unit_price\n");
        for (int i = first; i < n && i < first + chunk_rows; i++)
            len += (size_t)snprintf(
                body + len, cap - len,
                "%s-%05d,C-%02d,Customer %02d,c%02d@example.com,SKU-A,%d,%d.%02d\n", prefix, i + 1,
                i % 23, i % 23, i % 23, 1 + i % 3, 5 + (i * 7) % 90, (i * 13) % 100);
        snprintf(id, sizeof id, "%s:%d", import_id, chunk);
        snprintf(row, sizeof row, "%d", first + 2);
        testenv_publish_rows(js, id, import_id, row, NULL, body, len);
        free(body);
    }
    char id[128], total[16];
    snprintf(id, sizeof id, "%s:end", import_id);
    snprintf(total, sizeof total, "%d", n);
    testenv_publish_rows(js, id, import_id, NULL, total, "", 0);
}

/* ---- refunds: published by the test, remembered in a temp table ------ */

static void refund_table(PGconn *pg)
{
    PGresult *r = PQexec(pg, "CREATE TEMP TABLE IF NOT EXISTS published_refunds (event_id text,"
                             " order_id text, customer_id text, amount_cents bigint,"
                             " processed_at timestamptz);"
                             " CREATE OR REPLACE TEMP VIEW truth_refunds AS SELECT order_id,"
                             " customer_id, amount_cents, processed_at FROM published_refunds");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
}

/* Publishes a refund of a third of each of the first n paid orders, each on
 * a different day (today and earlier), and records it. */
static void publish_refunds(js_conn *js, PGconn *pg, int n, const char *prefix)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT order_id, customer_id, total_cents FROM ingest.orders"
             " WHERE status = 'paid' AND order_id LIKE '%s-%%'"
             " ORDER BY order_id LIMIT %d",
             prefix, n);
    PGresult *res = PQexec(pg, sql);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(res), n);
    for (int i = 0; i < n; i++) {
        Oms__V1__RefundProcessed ev = OMS__V1__REFUND_PROCESSED__INIT;
        Oms__V1__EventMeta meta;
        char id[37], amount[24], at[24];
        outbox_meta_init(&meta, id, "refund", PQgetvalue(res, i, 0), "");
        ev.meta = &meta;
        ev.refund_id = id;
        ev.order_id = PQgetvalue(res, i, 0);
        ev.customer_id = PQgetvalue(res, i, 1);
        ev.amount_cents = atoll(PQgetvalue(res, i, 2)) / 3 + 1;
        ev.currency = (char *)"USD";
        ev.processed_at_ms = oms_now_ms() - (i % 3) * DAY_MS;
        testenv_publish_event(js, "refund.processed", id, &ev.base);
        snprintf(amount, sizeof amount, "%lld", (long long)ev.amount_cents);
        snprintf(at, sizeof at, "%lld", (long long)ev.processed_at_ms);
        const char *params[] = {id, ev.order_id, ev.customer_id, amount, at};
        PGresult *ins = PQexecParams(pg,
                                     "INSERT INTO published_refunds VALUES ($1, $2, $3,"
                                     " $4::bigint, to_timestamp($5::bigint / 1000.0))",
                                     5, NULL, params, NULL, NULL, 0);
        assert_int_equal(PQresultStatus(ins), PGRES_COMMAND_OK);
        PQclear(ins);
    }
    PQclear(res);
}

/* ---- the truth, computed by PostgreSQL -------------------------------- */

/* The refunds relation: (order_id, customer_id, amount_cents, processed_at),
 * a temp view over what the test published itself, or over the refund
 * service's own tables when refunds went through it. */
#define REFUNDS_RELATION "truth_refunds"

/* Every order's terminal status (paid or failed) and when it was reached,
 * from ingest's status history: a refund moves a paid order on to
 * partially_refunded or refunded, and its payment still counts when it was
 * paid. */
#define TERMINAL_RELATION                                                       \
    "(SELECT o.customer_id, o.total_cents, h.status, h.at FROM ingest.orders o" \
    "  JOIN ingest.order_status_history h ON h.order_id = o.order_id"           \
    "  AND h.status IN ('paid', 'failed'))"

/* Per UTC day: revenue, paid, failed, refunded cents, refunds. */
static const char TRUTH_KPI_SQL[] =
    "WITH o AS (SELECT status, total_cents, (at AT TIME ZONE 'UTC')::date AS day"
    "   FROM " TERMINAL_RELATION " t),"
    " r AS (SELECT amount_cents, (processed_at AT TIME ZONE 'UTC')::date AS day "
    "FROM " REFUNDS_RELATION " x),"
    " d AS (SELECT day FROM o UNION SELECT day FROM r)"
    " SELECT to_char(d.day, 'YYYY-MM-DD'),"
    "  (SELECT coalesce(sum(total_cents), 0) FROM o WHERE o.day = d.day AND status = 'paid'),"
    "  (SELECT count(*) FROM o WHERE o.day = d.day AND status = 'paid'),"
    "  (SELECT count(*) FROM o WHERE o.day = d.day AND status = 'failed'),"
    "  (SELECT coalesce(sum(amount_cents), 0) FROM r WHERE r.day = d.day),"
    "  (SELECT count(*) FROM r WHERE r.day = d.day)"
    " FROM d ORDER BY 1";

/* Per customer in period $1 ("YYYY-MM" or "all"): net spend (paid - refunded
 * in the period, by the UTC month of payment and of refund), paid orders. */
static const char TRUTH_LEADERS_SQL[] =
    "WITH p AS (SELECT customer_id, sum(total_cents) AS paid, count(*) AS n FROM " TERMINAL_RELATION
    " t WHERE status = 'paid' AND ($1 = 'all' OR"
    "   to_char(at AT TIME ZONE 'UTC', 'YYYY-MM') = $1) GROUP BY customer_id),"
    " r AS (SELECT customer_id, sum(amount_cents) AS refunded FROM " REFUNDS_RELATION " x"
    "   WHERE $1 = 'all' OR to_char(processed_at AT TIME ZONE 'UTC', 'YYYY-MM') = $1"
    "   GROUP BY customer_id)"
    " SELECT coalesce(p.customer_id, r.customer_id),"
    "  coalesce(p.paid, 0) - coalesce(r.refunded, 0), coalesce(p.n, 0)"
    " FROM p FULL JOIN r USING (customer_id) ORDER BY 1";

static json_t *http_json(int port, const char *path)
{
    char *body = NULL;
    long status = testenv_http("GET", port, path, NULL, &body);
    json_error_t err;
    json_t *j = body ? json_loads(body, 0, &err) : NULL;
    if (status != 200 || j == NULL)
        fail_msg("GET %s answered %ld: %s", path, status, body ? body : "(no body)");
    free(body);
    return j;
}

static long long jint(const json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

/* Asserts /leaderboard?period=period lists exactly the truth's customers
 * with their net spend and paid orders, ranked by net spend. */
static void assert_leaders_equal_truth(PGconn *pg, const char *period)
{
    const char *params[] = {period};
    char path[96];
    PGresult *res = PQexecParams(pg, TRUTH_LEADERS_SQL, 1, NULL, params, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    snprintf(path, sizeof path, "/leaderboard?period=%s&limit=1000", period);
    json_t *lb = http_json(ANALYTICS_PORT, path);
    json_t *leaders = json_object_get(lb, "leaders");
    if (json_array_size(leaders) != (size_t)PQntuples(res))
        fail_msg("%s lists %zu customers, PostgreSQL %d", path, json_array_size(leaders),
                 PQntuples(res));
    for (int i = 0; i < PQntuples(res); i++) {
        const char *cust = PQgetvalue(res, i, 0);
        json_t *found = NULL, *l;
        size_t idx;
        json_array_foreach(leaders, idx, l)
        {
            if (strcmp(json_string_value(json_object_get(l, "customer_id")), cust) == 0)
                found = l;
        }
        if (found == NULL)
            fail_msg("customer %s missing from %s", cust, path);
        assert_int_equal(jint(found, "net_spend_cents"), atoll(PQgetvalue(res, i, 1)));
        assert_int_equal(jint(found, "orders"), atoll(PQgetvalue(res, i, 2)));
    }
    for (size_t i = 1; i < json_array_size(leaders); i++)
        assert_true(jint(json_array_get(leaders, i - 1), "net_spend_cents") >=
                    jint(json_array_get(leaders, i), "net_spend_cents"));
    json_decref(lb);
    PQclear(res);
}

/* Asserts analytics' API equals the truth, day by day and customer by
 * customer (all time and this month). */
static void assert_equals_truth(PGconn *pg)
{
    PGresult *res = PQexec(pg, TRUTH_KPI_SQL);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_true(PQntuples(res) > 0);
    for (int i = 0; i < PQntuples(res); i++) {
        char path[64];
        snprintf(path, sizeof path, "/kpi/%s", PQgetvalue(res, i, 0));
        json_t *k = http_json(ANALYTICS_PORT, path);
        static const char *const keys[] = {"revenue_cents", "order_count", "failed_count",
                                           "refund_cents", "refund_count"};
        for (int c = 0; c < 5; c++)
            if (jint(k, keys[c]) != atoll(PQgetvalue(res, i, c + 1)))
                fail_msg("%s %s: analytics %lld, PostgreSQL %s", path, keys[c], jint(k, keys[c]),
                         PQgetvalue(res, i, c + 1));
        json_decref(k);
    }
    PQclear(res);

    char month[8];
    time_t now_s = time(NULL);
    struct tm tm_now;
    gmtime_r(&now_s, &tm_now);
    strftime(month, sizeof month, "%Y-%m", &tm_now);
    assert_leaders_equal_truth(pg, "all");
    assert_leaders_equal_truth(pg, month);
}

/* Waits until analytics counts `terminal` orders and `refunds` refunds over
 * the last 40 days. */
static void wait_projection(long terminal, long refunds)
{
    char path[96], from[16], to[16];
    int64_t now = oms_now_ms();
    long long got_t = -1, got_r = -1;
    snprintf(to, sizeof to, "%s", "");
    for (int i = 0; i < 600; i++) {
        time_t t0 = (time_t)((now - 40 * DAY_MS) / 1000), t1 = (time_t)(now / 1000 + 86400);
        struct tm a, b;
        gmtime_r(&t0, &a);
        gmtime_r(&t1, &b);
        strftime(from, sizeof from, "%Y-%m-%d", &a);
        strftime(to, sizeof to, "%Y-%m-%d", &b);
        snprintf(path, sizeof path, "/kpi?from=%s&to=%s", from, to);
        json_t *k = http_json(ANALYTICS_PORT, path);
        json_t *totals = json_object_get(k, "totals");
        got_t = jint(totals, "order_count") + jint(totals, "failed_count");
        got_r = jint(totals, "refund_count");
        json_decref(k);
        if (got_t == terminal && got_r == refunds)
            return;
        usleep(100000);
    }
    fail_msg("analytics counts %lld terminal orders and %lld refunds, expected %ld and %ld", got_t,
             got_r, terminal, refunds);
}

/* Everything the API shows over the last 40 days, as one string. */
static char *api_view(void)
{
    char path[96], from[16], to[16];
    int64_t now = oms_now_ms();
    time_t t0 = (time_t)((now - 40 * DAY_MS) / 1000), t1 = (time_t)(now / 1000 + 86400);
    struct tm a, b;
    gmtime_r(&t0, &a);
    gmtime_r(&t1, &b);
    strftime(from, sizeof from, "%Y-%m-%d", &a);
    strftime(to, sizeof to, "%Y-%m-%d", &b);
    snprintf(path, sizeof path, "/kpi?from=%s&to=%s", from, to);
    char *kpi = NULL, *lb = NULL, *month = NULL, *out = NULL;
    assert_int_equal(testenv_http("GET", ANALYTICS_PORT, path, NULL, &kpi), 200);
    assert_int_equal(testenv_http("GET", ANALYTICS_PORT, "/leaderboard?period=all&limit=1000", NULL,
                                  &lb),
                     200);
    snprintf(path, sizeof path, "/leaderboard?period=%.7s&limit=1000", to);
    assert_int_equal(testenv_http("GET", ANALYTICS_PORT, path, NULL, &month), 200);
    assert_true(asprintf(&out, "%s\n%s\n%s", kpi, lb, month) > 0);
    free(kpi);
    free(lb);
    free(month);
    return out;
}

static pid_t rebuild_start(void)
{
    const char *bin = getenv("OMS_BIN_DIR") ? getenv("OMS_BIN_DIR") : getenv("OMS_BUILD_DIR");
    char path[1024], log[1024];
    snprintf(path, sizeof path, "%s/services/analytics/oms-analytics", bin ? bin : ".");
    snprintf(log, sizeof log, "%s/Testing/analytics-rebuild.log", bin ? bin : ".");
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        putenv(redis_url_setting);
        FILE *f = freopen(log, "a", stderr);
        (void)f;
        execl(path, path, "rebuild", (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void rebuild_wait(pid_t pid)
{
    int status = 0;
    pid_t got = 0;
    for (int i = 0; i < 1200 && (got = waitpid(pid, &status, WNOHANG)) == 0; i++)
        usleep(100000);
    if (got == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        fail_msg("oms-analytics rebuild still running after 120 s (see analytics-rebuild.log)");
    }
    assert_int_equal(got, pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void run_rebuild(void)
{
    rebuild_wait(rebuild_start());
}

static double metric_value(int port, const char *series)
{
    char *body = NULL;
    assert_int_equal(testenv_http("GET", port, "/metrics", NULL, &body), 200);
    const char *p = body;
    double v = 0;
    size_t len = strlen(series);
    while ((p = strstr(p, series)) != NULL) {
        if ((p == body || p[-1] == '\n') && p[len] == ' ') {
            v = atof(p + len + 1);
            break;
        }
        p += len;
    }
    free(body);
    return v;
}

/* Runs omsctl with args against the test's analytics; returns its stdout. */
static char *omsctl(const char *args)
{
    char prefix[64], *out = NULL;
    snprintf(prefix, sizeof prefix, "OMS_ANALYTICS_URL=http://127.0.0.1:%d", ANALYTICS_PORT);
    assert_int_equal(testenv_omsctl(prefix, args, &out), 0);
    return out;
}

/* omsctl's leaderboard shows the API's top customer with money formatted. */
static void assert_omsctl_leaderboard(void)
{
    json_t *lb = http_json(ANALYTICS_PORT, "/leaderboard?period=all&limit=1");
    json_t *top = json_array_get(json_object_get(lb, "leaders"), 0);
    long long cents = jint(top, "net_spend_cents");
    char money[64];
    money_format_currency(cents, "USD", money, sizeof money);
    char *out = omsctl("leaderboard --limit 1");
    /* The header, then one row: rank 1, the customer, the name, the money. */
    size_t header = strcspn(out, "\n");
    assert_int_equal(out[header], '\n');
    /* Indexed from out rather than strchr's pointer: GCC 12 at -O2 reported
     * that pointer as dangling (-Wdangling-pointer), a false positive. */
    const char *row = out + header + 1;
    if (strncmp(row, "   1  ", 6) != 0 ||
        strstr(row, json_string_value(json_object_get(top, "customer_id"))) == NULL ||
        strstr(row, json_string_value(json_object_get(top, "name"))) == NULL ||
        strstr(row, money) == NULL)
        fail_msg("omsctl leaderboard printed:\n%s\nexpected rank 1, %s and %s", out,
                 json_string_value(json_object_get(top, "customer_id")), money);
    free(out);
    json_decref(lb);
    out = omsctl("kpi --json");
    json_t *k = json_loads(out, 0, NULL);
    assert_non_null(k);
    assert_true(jint(k, "order_count") > 0);
    json_decref(k);
    free(out);
}

/* A bad parameter answers 400 with an error naming it and the value. */
static void assert_400(const char *path, const char *names)
{
    char *body = NULL;
    long status = testenv_http("GET", ANALYTICS_PORT, path, NULL, &body);
    if (status != 400 || strstr(body, names) == NULL)
        fail_msg("GET %s answered %ld %s, expected 400 naming %s", path, status, body, names);
    free(body);
}

static void assert_bad_requests(void)
{
    assert_400("/kpi/2026-13-01", "date \\\"2026-13-01\\\" is invalid");
    assert_400("/kpi/2026-02-29", "2026-02-29");
    assert_400("/kpi?from=2026-11-02&to=2026-11-01", "to=\\\"2026-11-01\\\" is before from");
    assert_400("/kpi?from=2026-11-01", "parameter to is required");
    assert_400("/kpi?from=2020-01-01&to=2026-01-01", "at most 366");
    assert_400("/leaderboard?limit=0", "limit=\\\"0\\\" is invalid");
    assert_400("/leaderboard?limit=abc", "limit=\\\"abc\\\"");
    assert_400("/leaderboard?period=2026-13", "period=\\\"2026-13\\\" is invalid");
}

/* POST /kpi/snapshot needs the token; the snapshot's rows equal the API. */
static void assert_snapshot(PGconn *pg)
{
    const char *token = testenv_require("OMS_ADMIN_TOKEN");
    char *body = NULL;
    assert_int_equal(testenv_http("POST", ANALYTICS_PORT, "/kpi/snapshot", NULL, &body), 401);
    free(body);
    assert_int_equal(testenv_http("POST", ANALYTICS_PORT, "/kpi/snapshot", token, &body), 200);
    json_t *snap = json_loads(body, 0, NULL);
    free(body);
    assert_non_null(snap);
    json_t *today = http_json(ANALYTICS_PORT, "/kpi/today");
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT revenue_cents FROM analytics.kpi_snapshots WHERE day = '%s'",
             json_string_value(json_object_get(today, "date")));
    assert_int_equal(testenv_pg_long(pg, sql), jint(today, "revenue_cents"));
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM analytics.leaderboard_snapshots WHERE day = '%s'",
             json_string_value(json_object_get(today, "date")));
    assert_int_equal(testenv_pg_long(pg, sql), jint(snap, "leaders"));
    assert_true(jint(snap, "leaders") > 0);
    json_decref(today);
    json_decref(snap);
}

/* ---- Prometheus ------------------------------------------------------- */

static void start_prometheus(void)
{
    const char *bin = getenv("OMS_BUILD_DIR") ? getenv("OMS_BUILD_DIR") : ".";
    char dir[1024], config[1100], data[1100], log[1100], listen[64];
    snprintf(dir, sizeof dir, "%s/Testing/prometheus", bin);
    snprintf(config, sizeof config, "%s/prometheus.yml", dir);
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(log, sizeof log, "%s/prometheus.log", dir);
    snprintf(listen, sizeof listen, "127.0.0.1:%d", PROMETHEUS_PORT);
    char cmd[2400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", dir, data);
    assert_int_equal(system(cmd), 0);
    FILE *f = fopen(config, "w");
    assert_non_null(f);
    fprintf(f,
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: oms\n    static_configs:\n"
            "      - targets: ['127.0.0.1:%d', '127.0.0.1:%d', '127.0.0.1:%d', '127.0.0.1:%d']\n",
            INGEST_PORT, INVENTORY_PORT, PAYMENT_PORT, ANALYTICS_PORT);
    fclose(f);
    prometheus_pid = fork();
    assert_true(prometheus_pid >= 0);
    if (prometheus_pid == 0) {
        FILE *lf = freopen(log, "w", stderr);
        (void)lf;
        char a1[1200], a2[1200], a3[128];
        snprintf(a1, sizeof a1, "--config.file=%s", config);
        snprintf(a2, sizeof a2, "--storage.tsdb.path=%s", data);
        snprintf(a3, sizeof a3, "--web.listen-address=%s", listen);
        execlp("prometheus", "prometheus", a1, a2, a3, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200; i++) {
        if (testenv_http("GET", PROMETHEUS_PORT, "/-/ready", NULL, NULL) == 200)
            return;
        usleep(100000);
    }
    fail_msg("prometheus not ready on port %d (see %s)", PROMETHEUS_PORT, log);
}

/* The value of an instant query with one series, or -1 when it has none. */
static double prometheus_query(const char *promql)
{
    char *escaped = curl_easy_escape(NULL, promql, 0);
    char path[512];
    snprintf(path, sizeof path, "/api/v1/query?query=%s", escaped);
    curl_free(escaped);
    json_t *j = http_json(PROMETHEUS_PORT, path);
    json_t *result = json_object_get(json_object_get(j, "data"), "result");
    double v = -1;
    if (json_array_size(result) == 1)
        v = atof(json_string_value(
            json_array_get(json_object_get(json_array_get(result, 0), "value"), 1)));
    json_decref(j);
    return v;
}

static void assert_prometheus(const char *promql, double want)
{
    double got = -1;
    for (int i = 0; i < 300 && got != want; i++) {
        got = prometheus_query(promql);
        if (got != want)
            usleep(100000);
    }
    if (got != want)
        fail_msg("prometheus: %s = %.0f, expected %.0f", promql, got, want);
}

/* ---- tests ------------------------------------------------------------ */

static long pg_count(PGconn *pg, const char *sql)
{
    return testenv_pg_long(pg, sql);
}

/* An import, refunds, a redelivered event, poison, Prometheus, and a rebuild
 * from nothing: Redis equals the PostgreSQL truth after each. */
static void test_projection_equals_truth(void **state)
{
    (void)state;
    const int n = 400, refunds = 12;
    stack s;
    start_all(&s);
    start_prometheus();
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();
    refund_table(pg);
    load_product(js, "SKU-A", 600); /* runs out: some orders fail for stock */
    assert_int_equal(testenv_wait_pg(pg, "SELECT count(*) FROM inventory.products", 1, 10000), 1);
    import_orders(js, "imp-an", "AN", n);
    const char *terminal = "SELECT count(*) FROM ingest.orders WHERE status IN ('paid','failed')";
    assert_int_equal(testenv_wait_pg(pg, terminal, n, 60000), n);
    publish_refunds(js, pg, refunds, "AN");
    wait_projection(n, refunds);
    assert_equals_truth(pg);
    long paid = pg_count(pg, "SELECT count(*) FROM ingest.orders"
                             " WHERE status IN ('paid', 'partially_refunded', 'refunded')");
    assert_true(paid > 0 && paid < n);

    /* A redelivered event moves nothing: the same OrderPaid again (under a
     * new Nats-Msg-Id, so JetStream takes it; its event id is unchanged). */
    testenv_msg *msgs = NULL;
    size_t nm = testenv_stream_read(js, "ORDERS", "order.paid", &msgs);
    assert_true(nm > 0);
    const char *hdr[] = {"Nats-Msg-Id", "redelivery-1", NULL};
    testenv_publish(js, "order.paid", msgs[0].data, msgs[0].len, hdr);
    testenv_msgs_free(msgs, nm);
    assert_omsctl_leaderboard();
    assert_bad_requests();
    assert_snapshot(pg);
    char *before = api_view();
    for (int i = 0;
         i < 100 &&
         metric_value(ANALYTICS_PORT,
                      "oms_events_consumed_total{subject=\"order.paid\",result=\"duplicate\"}") < 1;
         i++)
        usleep(100000);
    assert_true(
        metric_value(ANALYTICS_PORT,
                     "oms_events_consumed_total{subject=\"order.paid\",result=\"duplicate\"}") >=
        1);
    char *after = api_view();
    assert_string_equal(before, after);
    free(after);

    /* Poison goes to analytics' dead letters; the projection goes on. */
    const char *phdr[] = {"Nats-Msg-Id", "poison-1", NULL};
    testenv_publish(js, "order.paid", "\xff\x01garbage", 9, phdr);
    assert_int_equal(testenv_wait_pg(pg,
                                     "SELECT count(*) FROM analytics.dead_letters WHERE"
                                     " reason LIKE '%not a valid oms.v1.OrderPaid%'"
                                     " AND event_id = 'poison-1'",
                                     1, 10000),
                     1);
    after = api_view();
    assert_string_equal(before, after);
    free(after);

    /* Prometheus scraped the business series the test can predict. */
    char promql[128];
    assert_prometheus("sum(oms_orders_total{status=\"paid\"})", (double)paid);
    assert_prometheus("sum(oms_orders_total{status=\"failed\"})", (double)(n - paid));
    assert_prometheus("sum(oms_revenue_cents_total)",
                      (double)pg_count(pg, "SELECT sum(total_cents) FROM ingest.orders"
                                           " WHERE status IN ('paid', 'partially_refunded',"
                                           " 'refunded')"));
    assert_prometheus("sum(oms_refunds_total)", refunds);
    assert_prometheus("sum(oms_refunds_cents_total)",
                      (double)pg_count(pg, "SELECT sum(amount_cents) FROM published_refunds"));
    assert_prometheus("sum(oms_order_value_cents_count)", (double)paid);
    snprintf(promql, sizeof promql, "count(up{job=\"oms\"} == 1)");
    assert_prometheus(promql, 4);

    /* Every Redis key gone: the API shows nothing; a rebuild brings back
     * exactly what it showed. */
    redis_run("FLUSHDB");
    char *empty = api_view();
    assert_null(strstr(empty, "\"order_count\":1"));
    free(empty);
    run_rebuild();
    after = api_view();
    assert_string_equal(before, after);
    assert_equals_truth(pg);
    /* A second rebuild swaps a generation for an equal one. */
    run_rebuild();
    free(after);
    after = api_view();
    assert_string_equal(before, after);
    free(after);
    free(before);

    PQfinish(pg);
    js_conn_destroy(js);
    stop_all(&s);
    teardown(NULL);
}

/* ---- refunds through the refund service ------------------------------ */

static void request_refund(js_conn *js, const char *key, const char *order_id, int64_t cents)
{
    Oms__V1__RefundRequested ev = OMS__V1__REFUND_REQUESTED__INIT;
    Oms__V1__EventMeta meta;
    char id[37];
    outbox_meta_init(&meta, id, "test", order_id, "");
    ev.meta = &meta;
    ev.idempotency_key = (char *)key;
    ev.order_id = (char *)order_id;
    ev.amount_cents = cents;
    ev.reason = (char *)"analytics test";
    testenv_publish_event(js, "refund.requested", id, &ev.base);
}

/* Partial, full, over-the-limit and repeated refund requests on paid orders
 * go through the refund service; analytics' KPIs and leaderboard equal the
 * truth in ingest's and refund's schemas, to the cent. */
static void test_refund_service_equals_truth(void **state)
{
    (void)state;
    const int n = 120;
    stack s;
    start_all(&s);
    pid_t refund = testenv_service_start("refund", REFUND_PORT, NULL);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();
    PGresult *r = PQexec(pg, "CREATE TEMP VIEW truth_refunds AS SELECT r.order_id, p.customer_id,"
                             " r.amount_cents, r.decided_at AS processed_at FROM refund.refunds r"
                             " JOIN refund.paid_orders p USING (order_id)"
                             " WHERE r.state = 'processed'");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    load_product(js, "SKU-A", 1000);
    assert_int_equal(testenv_wait_pg(pg, "SELECT count(*) FROM inventory.products", 1, 10000), 1);
    import_orders(js, "imp-rf", "RF", n);
    const char *terminal = "SELECT count(*) FROM ingest.orders WHERE status IN ('paid','failed')";
    assert_int_equal(testenv_wait_pg(pg, terminal, n, 60000), n);
    long paid = pg_count(pg, "SELECT count(*) FROM ingest.orders"
                             " WHERE status IN ('paid', 'partially_refunded', 'refunded')");
    assert_int_equal(testenv_wait_pg(pg, "SELECT count(*) FROM refund.paid_orders", paid, 20000),
                     paid);

    PGresult *res = PQexec(pg, "SELECT order_id, total_cents FROM ingest.orders"
                               " WHERE status = 'paid' ORDER BY order_id LIMIT 30");
    assert_int_equal(PQntuples(res), 30);
    int requests = 0;
    for (int i = 0; i < 30; i++, requests++) {
        char key[64];
        const char *order = PQgetvalue(res, i, 0);
        int64_t total = atoll(PQgetvalue(res, i, 1));
        snprintf(key, sizeof key, "an-rf-%d", i);
        if (i % 3 == 0) { /* a third, then all that is left */
            request_refund(js, key, order, total / 3);
            snprintf(key, sizeof key, "an-rf-%d-rest", i);
            request_refund(js, key, order, 0);
            requests++;
        } else if (i % 3 == 1) { /* one cent too many: rejected */
            request_refund(js, key, order, total + 1);
        } else { /* a part, asked twice under one key */
            request_refund(js, key, order, total / 4 + 1);
            request_refund(js, key, order, total / 4 + 1);
        }
    }
    PQclear(res);
    assert_int_equal(testenv_wait_pg(pg,
                                     "SELECT count(*) FROM refund.refunds"
                                     " WHERE state <> 'pending'",
                                     requests, 30000),
                     requests);
    long processed = pg_count(pg, "SELECT count(*) FROM truth_refunds");
    assert_int_equal(processed, 30); /* 10 partial + 10 rest + 10 part; 10 rejected */
    wait_projection(n, processed);
    assert_equals_truth(pg);
    assert_int_equal(testenv_wait_pg(pg,
                                     "SELECT count(*) FROM ingest.orders"
                                     " WHERE status = 'refunded'",
                                     10, 20000),
                     10);

    PQfinish(pg);
    js_conn_destroy(js);
    testenv_service_stop(refund);
    stop_all(&s);
    teardown(NULL);
}

/* kill -9 of analytics twice, its Redis connections dropped and the script
 * cache flushed while an import flows: nothing lost, nothing counted twice. */
static void test_crash_and_redis_faults(void **state)
{
    (void)state;
    const int n = 2000;
    stack s;
    start_all(&s);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();
    refund_table(pg);
    load_product(js, "SKU-A", 3000);
    assert_int_equal(testenv_wait_pg(pg, "SELECT count(*) FROM inventory.products", 1, 10000), 1);
    import_orders(js, "imp-crash", "CR", n);
    const char *terminal = "SELECT count(*) FROM ingest.orders WHERE status IN ('paid','failed')";
    for (int i = 0; i < 3000 && pg_count(pg, terminal) < 300; i++)
        usleep(10000);
    testenv_service_kill(s.analytics);
    fprintf(stderr, "killed analytics at %ld terminal orders\n", pg_count(pg, terminal));
    s.analytics = testenv_service_start("analytics", ANALYTICS_PORT, analytics_env);
    for (int i = 0; i < 3000 && pg_count(pg, terminal) < 900; i++)
        usleep(10000);
    redis_run("SCRIPT FLUSH");
    redis_run("CLIENT KILL TYPE normal SKIPME yes");
    /* Redis refusing writes (maxmemory) for a while: retried, not dead-lettered. */
    redis_run("CONFIG SET maxmemory 1mb");
    sleep(2);
    redis_run("CONFIG SET maxmemory 0");
    /* A rebuild while events flow (and analytics is killed once more): the
     * live consumers write the new generation too until it is swapped in. */
    pid_t rebuild = rebuild_start();
    for (int i = 0; i < 3000 && pg_count(pg, terminal) < 1400; i++)
        usleep(10000);
    testenv_service_kill(s.analytics);
    s.analytics = testenv_service_start("analytics", ANALYTICS_PORT, analytics_env);
    assert_int_equal(testenv_wait_pg(pg, terminal, n, 120000), n);
    rebuild_wait(rebuild);
    publish_refunds(js, pg, 5, "CR");
    wait_projection(n, 5);
    assert_equals_truth(pg);
    assert_int_equal(pg_count(pg, "SELECT count(*) FROM analytics.dead_letters"), 0);
    PQfinish(pg);
    js_conn_destroy(js);
    stop_all(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_projection_equals_truth, teardown),
        cmocka_unit_test_teardown(test_crash_and_redis_faults, teardown),
        cmocka_unit_test_teardown(test_refund_service_equals_truth, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
