/*
 * console_snapshot.c - one JSON picture of the system for the console page:
 * what `omsctl status --json` shows (streams, consumers, services' readiness
 * and open dead letters), each service's /healthz, the open dead letters
 * themselves, today's KPIs, the leaderboard and the imports in progress.
 *
 * Built at most about once a second and shared: however many pages are
 * open, the services and NATS see one set of requests per interval. Rates
 * (for the sparklines) are left to the page, which keeps the history.
 */
#include "console.h"

#include <stdlib.h>
#include <string.h>

#define SNAPSHOT_MAX_AGE_MS 900
#define HTTP_TIMEOUT_MS 2000L
#define DEAD_LETTERS_SHOWN 50
#define LEADERBOARD_LIMIT 10

/* GET path on svc: its JSON body when it answered 200, else
 * {"error": why}. */
static json_t *service_json_get(const cli_service *svc, const char *path)
{
    char url[CLI_URL_LEN], err[CLI_HTTP_ERR_LEN];
    long status = 0;
    json_t *body = NULL;
    cli_service_endpoint(svc, path, url, sizeof url);
    if (cli_http("GET", url, NULL, HTTP_TIMEOUT_MS, &status, &body, err) != OMS_OK)
        return json_pack("{s:s}", "error", err);
    if (status == 200 && json_is_object(body))
        return body;
    json_t *e = json_pack("{s:s,s:I}", "error",
                          *cli_json_error(body) ? cli_json_error(body) : "unexpected answer",
                          "status", (json_int_t)status);
    json_decref(body);
    return e;
}

/* Adds "healthy" (GET /healthz answered 200) to each service of status. */
static void add_health(json_t *services)
{
    size_t i;
    json_t *s;
    json_array_foreach(services, i, s)
    {
        const cli_service *svc = cli_service_find(json_string_value(json_object_get(s, "name")));
        char url[CLI_URL_LEN], err[CLI_HTTP_ERR_LEN];
        long status = 0;
        json_t *body = NULL;
        if (svc == NULL)
            continue;
        cli_service_endpoint(svc, "/healthz", url, sizeof url);
        bool ok = cli_http("GET", url, NULL, HTTP_TIMEOUT_MS, &status, &body, err) == OMS_OK &&
                  status == 200;
        json_decref(body);
        json_object_set_new(s, "healthy", json_boolean(ok));
    }
}

/* {service: {"dead_letters": [...]} or {"error"}} for every service. */
static json_t *dead_letters_json(void)
{
    json_t *all = json_object();
    char path[64];
    snprintf(path, sizeof path, "/dead-letters?limit=%d", DEAD_LETTERS_SHOWN);
    for (size_t i = 0; all != NULL && i < CLI_N_SERVICES; i++)
        json_object_set_new(all, CLI_SERVICES[i].name, service_json_get(&CLI_SERVICES[i], path));
    return all;
}

static json_t *build(console *con)
{
    const cli_service *analytics = cli_service_find("analytics");
    char path[64];
    json_t *snap = cli_status_gather(con->nats);
    if (snap == NULL)
        return NULL;
    add_health(json_object_get(snap, "services"));
    snprintf(path, sizeof path, "/leaderboard?period=all&limit=%d", LEADERBOARD_LIMIT);
    json_object_set_new(snap, "time_ms", json_integer(oms_now_ms()));
    json_object_set_new(snap, "dead_letters", dead_letters_json());
    json_object_set_new(snap, "kpi", service_json_get(analytics, "/kpi/today"));
    json_object_set_new(snap, "leaderboard", service_json_get(analytics, path));
    json_object_set_new(snap, "imports", console_imports_json(con->imports));
    return snap;
}

char *console_snapshot_text(console *con)
{
    char *text = NULL;
    pthread_mutex_lock(&con->mu);
    /* Built under the lock: concurrent requests wait for one build rather
     * than each asking every service. Kept as text, so no two threads ever
     * walk the same JSON value. */
    if (con->snapshot == NULL || oms_now_ms() - con->snapshot_ms >= SNAPSHOT_MAX_AGE_MS) {
        json_t *fresh = build(con);
        char *dumped = fresh ? json_dumps(fresh, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(fresh);
        if (dumped != NULL) {
            free(con->snapshot);
            con->snapshot = dumped;
            con->snapshot_ms = oms_now_ms();
        }
    }
    text = con->snapshot ? strdup(con->snapshot) : NULL;
    pthread_mutex_unlock(&con->mu);
    return text;
}
