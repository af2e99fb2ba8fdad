/*
 * service_dlq.c - dead letters over HTTP: list them, and re-apply one once
 * its cause is fixed (POST /dead-letters/{id}/retry, admin token required).
 */
#include "log.h"
#include "service_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *dead_letter_json(PGresult *res, int row)
{
    /* subject, event_id, headers and reason are the printable forms. */
    return json_pack("{s:I,s:s,s:s,s:s,s:i,s:s,s:s?,s:s,s:I}", "id",
                     (json_int_t)atoll(PQgetvalue(res, row, 0)), "subject", PQgetvalue(res, row, 1),
                     "event_id", PQgetvalue(res, row, 2), "reason", PQgetvalue(res, row, 3),
                     "attempts", atoi(PQgetvalue(res, row, 4)), "created_at",
                     PQgetvalue(res, row, 5), "resolved_at",
                     PQgetisnull(res, row, 6) ? NULL : PQgetvalue(res, row, 6), "headers",
                     PQgetvalue(res, row, 7), "payload_bytes",
                     (json_int_t)atoll(PQgetvalue(res, row, 8)));
}

static void h_list(void *ctx, const http_request *req, http_response *resp)
{
    oms_service *svc = ctx;
    const char *state = NULL;
    int64_t n = 0;
    if (http_query_str(req, "state", 16, &state, resp) != OMS_OK ||
        http_query_int(req, "limit", 1, 10000, 100, &n, resp) != OMS_OK)
        return;
    if (state && strcmp(state, "open") != 0 && strcmp(state, "all") != 0) {
        http_respond_error(resp, 400, "parameter state must be open or all, got \"%s\"", state);
        return;
    }
    char nbuf[24];
    snprintf(nbuf, sizeof nbuf, "%lld", (long long)n);
    const char *params[] = {state && strcmp(state, "all") == 0 ? "all" : "open", nbuf};
    PGconn *c = service_pg_acquire(svc, resp);
    PGresult *res = NULL;
    if (c == NULL)
        return;
    oms_status s =
        pg_query(c, "dead letter list",
                 "SELECT id, subject, event_id, reason, attempts,"
                 " to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"
                 " to_char(resolved_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"
                 " headers, octet_length(payload)"
                 " FROM dead_letters WHERE ($1 = 'all' OR resolved_at IS NULL)"
                 " ORDER BY id LIMIT $2::int",
                 2, params, PGRES_TUPLES_OK, &res);
    service_pg_release(svc, c);
    if (s != OMS_OK) {
        http_respond_error(resp, 503, "cannot read dead letters");
        return;
    }
    json_t *items = json_array();
    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(items, dead_letter_json(res, i));
    PQclear(res);
    http_respond_json(resp, 200,
                      json_pack("{s:s,s:o}", "service", service_config(svc)->service,
                                "dead_letters", items));
}

/* Re-applies dead letter `id` in one transaction; sets status and message. */
static oms_status retry_one(oms_service *svc, PGconn *c, const char *id, int *status, char *message,
                            size_t message_len)
{
    const char *params[] = {id};
    PGresult *res = NULL;
    char reason[CONSUMER_REASON_LEN] = "";
    oms_status s;

    if ((s = pg_exec(c, "BEGIN")) != OMS_OK)
        return s;
    s = pg_query(c, "dead letter load",
                 /* The raw bytes, as the message came: a replay sees what the
                  * consumer saw, not the printable forms. */
                 "SELECT subject, subject_raw, event_id_raw, headers_raw, payload"
                 " FROM dead_letters WHERE id = $1::bigint AND resolved_at IS NULL FOR UPDATE",
                 1, params, PGRES_TUPLES_OK, &res);
    if (s != OMS_OK)
        goto out;
    if (PQntuples(res) == 0) {
        *status = 404;
        snprintf(message, message_len, "no open dead letter with id %s", id);
        goto out;
    }
    size_t len[4] = {0};
    unsigned char *raw[4] = {NULL};
    for (int k = 0; k < 4; k++)
        raw[k] = PQunescapeBytea((const unsigned char *)PQgetvalue(res, 0, k + 1), &len[k]);
    char *subject = raw[0] ? strndup((const char *)raw[0], len[0]) : NULL;
    char *event_id = raw[1] ? strndup((const char *)raw[1], len[1]) : NULL;
    const consumer_spec *spec = subject ? service_consumer_for(svc, subject) : NULL;
    if (subject == NULL || event_id == NULL || raw[2] == NULL || raw[3] == NULL) {
        s = OMS_ENOMEM;
    } else if (spec == NULL) {
        *status = 409;
        snprintf(message, message_len, "no consumer of this service handles subject %s",
                 PQgetvalue(res, 0, 0));
    } else {
        consumer_raw msg = {subject, event_id, raw[2], len[2], raw[3], len[3]};
        s = consumer_replay(spec, service_consumer_env(svc), c, &msg, reason);
    }
    for (int k = 0; k < 4; k++)
        PQfreemem(raw[k]);
    free(subject);
    free(event_id);
    if (*status != 0 || (s != OMS_OK && s != OMS_EINVAL))
        goto out;
    if (s == OMS_EINVAL) {
        /* The reason may quote the message's bytes: store and show it printable. */
        char shown[2 * CONSUMER_REASON_LEN];
        const char *p2[] = {id, consumer_printable(reason, strlen(reason), shown, sizeof shown)};
        *status = 409;
        snprintf(message, message_len, "still rejected: %s", shown);
        s = pg_query(c, "dead letter attempt",
                     "UPDATE dead_letters SET attempts = attempts + 1, reason = $2"
                     " WHERE id = $1::bigint",
                     2, p2, PGRES_COMMAND_OK, NULL);
    } else {
        *status = 200;
        snprintf(message, message_len, "re-applied");
        s = pg_query(c, "dead letter resolve",
                     "UPDATE dead_letters SET attempts = attempts + 1, resolved_at = now()"
                     " WHERE id = $1::bigint",
                     1, params, PGRES_COMMAND_OK, NULL);
    }
    if (s == OMS_OK)
        s = pg_exec(c, "COMMIT");
out:
    PQclear(res);
    pg_rollback(c);
    return s;
}

static void h_retry(void *ctx, const http_request *req, http_response *resp)
{
    oms_service *svc = ctx;
    int64_t n = 0;
    char id[24];
    if (http_path_int(req, 0, 1, INT64_MAX, &n, resp) != OMS_OK)
        return;
    /* The canonical form: "007" and "7" are the same dead letter. */
    snprintf(id, sizeof id, "%lld", (long long)n);
    PGconn *c = service_pg_acquire(svc, resp);
    if (c == NULL)
        return;
    int status = 0;
    char message[2 * CONSUMER_REASON_LEN + 32];
    oms_status s = retry_one(svc, c, id, &status, message, sizeof message);
    service_pg_release(svc, c);
    if (s != OMS_OK) {
        http_respond_error(resp, 503, "retry failed: %s", oms_strstatus(s));
    } else if (status != 200) {
        http_respond_error(resp, status, "%s", message);
    } else {
        log_info("dead letter re-applied", "id", id, NULL);
        http_respond_json(resp, 200, json_pack("{s:s,s:s}", "id", id, "state", "resolved"));
    }
}

void service_dlq_routes(oms_service *svc, http_server *http)
{
    http_route(http, "GET", "/dead-letters", false, h_list, svc);
    http_route(http, "POST", "/dead-letters/{id}/retry", true, h_retry, svc);
}
