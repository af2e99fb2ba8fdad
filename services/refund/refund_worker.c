/*
 * refund_worker.c - the http gateway's refund worker thread.
 *
 * Claim, call, record, with no transaction open across the network, as
 * payment's charger does. The claim is one statement: it locks due pending
 * refunds (FOR UPDATE SKIP LOCKED, so replicas take disjoint groups), counts
 * the attempt and pushes next_attempt_at past the calls' timeout (a lease).
 * The group is POSTed in parallel to {gateway}/refunds with Idempotency-Key:
 * <refund id>, and the answers are recorded in one transaction: the orders
 * are locked (byte order), then an UPDATE conditional on the refund still
 * being pending finalises it, moves its amount from held to refunded (or
 * back to refundable when the gateway refused), and writes its event. A
 * crash between claim and record leaves the refund pending: it is claimed
 * again when the lease ends and re-sent under the same key, which the
 * gateway answers without refunding twice; one outcome is published.
 */
#include "refund.h"

#include "backoff.h"
#include "httpc.h"
#include "log.h"
#include "metrics.h"
#include "pgworker.h"
#include "strs.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IDLE_POLL_MS 100
#define REF_MAX 256

int64_t refund_backoff_ms(int failed_attempts)
{
    return oms_backoff_delay_ms(failed_attempts, REFUND_BACKOFF_BASE_MS, REFUND_BACKOFF_MAX_MS);
}

/* ---- claim -------------------------------------------------------------- */

enum { C_ID, C_KEY, C_ORDER, C_AMOUNT, C_CURRENCY, C_REASON, C_ATTEMPTS };

static oms_status claim(refund_ctx *ctx, PGconn *conn, PGresult **out)
{
    char lease[24], limit[16];
    snprintf(lease, sizeof lease, "%lld",
             (long long)ctx->cfg.timeout_ms + ctx->cfg.lease_margin_ms);
    snprintf(limit, sizeof limit, "%d", REFUND_CLAIM_MAX);
    const char *params[] = {lease, limit};
    return pg_query(conn, "refund claim",
                    "UPDATE refunds r SET attempts = r.attempts + 1,"
                    " next_attempt_at = now() + $1::bigint * interval '1 ms'"
                    " FROM (SELECT refund_id FROM refunds"
                    "       WHERE state = 'pending' AND next_attempt_at <= now()"
                    "       ORDER BY next_attempt_at LIMIT $2::int FOR UPDATE SKIP LOCKED) due"
                    " WHERE r.refund_id = due.refund_id"
                    " RETURNING r.refund_id, r.idempotency_key, r.order_id, r.amount_cents,"
                    " r.currency, r.reason, r.attempts",
                    2, params, PGRES_TUPLES_OK, out);
}

/* ---- call --------------------------------------------------------------- */

typedef struct answer {
    const char *state; /* "processed", "rejected" or "pending" */
    char ref[REF_MAX];
    char why[REFUND_TEXT_LEN];
    int64_t retry_in_ms;
} answer;

static void decide_answer(const httpc_post *p, int attempts, int max_attempts, answer *a)
{
    char given[512];
    json_t *body = p->response_len ? json_loadb(p->response, p->response_len, 0, NULL) : NULL;
    const char *status = json_string_value(json_object_get(body, "status"));
    const char *ref = json_string_value(json_object_get(body, "gateway_ref"));
    memset(a, 0, sizeof *a);
    if (p->answered && p->status >= 200 && p->status < 300 &&
        (status == NULL || strcmp(status, "failed") != 0)) {
        a->state = "processed";
        snprintf(a->ref, sizeof a->ref, "%s", ref ? ref : "");
    } else if (!httpc_retryable(p) || (p->answered && p->status < 300)) {
        a->state = "rejected";
        httpc_reason(p, "no reason given", given, sizeof given);
        snprintf(a->why, sizeof a->why, "the payment gateway refused the refund (HTTP %ld): %s",
                 p->status, given);
    } else if (attempts >= max_attempts) {
        a->state = "rejected";
        snprintf(a->why, sizeof a->why,
                 "the payment gateway did not answer the refund after %d attempt%s (last: %s)",
                 attempts, attempts == 1 ? "" : "s", p->answered ? "a 5xx answer" : p->error);
    } else {
        a->state = "pending";
        a->retry_in_ms = refund_backoff_ms(attempts);
    }
    json_decref(body);
}

/* Sends the claimed refunds and decides each one's answer into answers[]. */
static oms_status call_gateway(refund_ctx *ctx, PGresult *claimed, answer *answers)
{
    int n = PQntuples(claimed);
    httpc_post *posts = calloc((size_t)n, sizeof *posts);
    char **bodies = calloc((size_t)n, sizeof *bodies);
    oms_status s = posts && bodies ? OMS_OK : OMS_ENOMEM;
    for (int r = 0; s == OMS_OK && r < n; r++) {
        json_t *j = json_pack("{s:s,s:s,s:s,s:I,s:s,s:s}", "refund_id",
                              PQgetvalue(claimed, r, C_ID), "idempotency_key",
                              PQgetvalue(claimed, r, C_KEY), "order_id",
                              PQgetvalue(claimed, r, C_ORDER), "amount_cents",
                              (json_int_t)atoll(PQgetvalue(claimed, r, C_AMOUNT)), "currency",
                              PQgetvalue(claimed, r, C_CURRENCY), "reason",
                              PQgetvalue(claimed, r, C_REASON));
        bodies[r] = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        if (bodies[r] == NULL)
            s = OMS_ENOMEM;
        posts[r].url = ctx->cfg.refunds_url;
        posts[r].body = bodies[r];
        posts[r].idempotency_key = PQgetvalue(claimed, r, C_ID);
    }
    if (s == OMS_OK)
        s = httpc_post_all(posts, (size_t)n, (long)ctx->cfg.connect_timeout_ms,
                           (long)ctx->cfg.timeout_ms);
    for (int r = 0; s == OMS_OK && r < n; r++) {
        answer *a = &answers[r];
        decide_answer(&posts[r], atoi(PQgetvalue(claimed, r, C_ATTEMPTS)), ctx->cfg.max_attempts,
                      a);
        const char *result = strcmp(a->state, "processed") == 0  ? "result=\"processed\""
                             : strcmp(a->state, "rejected") == 0 ? "result=\"refused\""
                                                                 : "result=\"error\"";
        metrics_counter_add(ctx->m, "oms_refund_gateway_requests_total", result, 1);
        if (strcmp(a->state, "processed") != 0)
            log_info("refund not processed by the gateway", "refund_id",
                     PQgetvalue(claimed, r, C_ID), "order_id", PQgetvalue(claimed, r, C_ORDER),
                     "attempts", PQgetvalue(claimed, r, C_ATTEMPTS), "now", a->state, "detail",
                     posts[r].answered ? posts[r].response : posts[r].error, NULL);
    }
    for (int r = 0; bodies != NULL && r < n; r++)
        free(bodies[r]);
    free(bodies), free(posts);
    return s;
}

/* ---- record ------------------------------------------------------------- */

typedef struct orders {
    PGresult *res; /* order_id, customer_id, email, name, paid, refunded, pending */
    const char **ids;
    int64_t *refunded, *pending;
    size_t n;
} orders;

static oms_status lock_orders(PGconn *conn, PGresult *claimed, orders *o)
{
    int n = PQntuples(claimed);
    const char **ids = calloc((size_t)n, sizeof *ids);
    size_t n_ids = 0;
    pg_array arr;
    oms_status s = ids ? OMS_OK : OMS_ENOMEM;
    pg_array_init(&arr);
    for (int r = 0; s == OMS_OK && r < n; r++)
        ids[n_ids++] = PQgetvalue(claimed, r, C_ORDER);
    strs_sort_unique(ids, &n_ids);
    for (size_t k = 0; s == OMS_OK && k < n_ids; k++)
        s = pg_array_add(&arr, ids[k]) ? OMS_ENOMEM : OMS_OK;
    free(ids);
    const char *params[] = {pg_array_literal(&arr)};
    if (s == OMS_OK)
        s = pg_query(conn, "refund worker orders lock",
                     "SELECT order_id, customer_id, customer_email, customer_name,"
                     " paid_total_cents, refunded_cents, pending_cents FROM paid_orders"
                     " WHERE order_id = ANY($1::text[]) ORDER BY order_id COLLATE \"C\" FOR UPDATE",
                     1, params, PGRES_TUPLES_OK, &o->res);
    pg_array_fini(&arr);
    if (s != OMS_OK)
        return s;
    o->n = (size_t)PQntuples(o->res);
    o->ids = calloc(o->n + 1, sizeof *o->ids);
    o->refunded = calloc(o->n + 1, sizeof *o->refunded);
    o->pending = calloc(o->n + 1, sizeof *o->pending);
    if (o->ids == NULL || o->refunded == NULL || o->pending == NULL)
        return OMS_ENOMEM;
    for (size_t k = 0; k < o->n; k++) {
        o->ids[k] = PQgetvalue(o->res, (int)k, 0);
        o->refunded[k] = atoll(PQgetvalue(o->res, (int)k, 5));
        o->pending[k] = atoll(PQgetvalue(o->res, (int)k, 6));
    }
    return OMS_OK;
}

/* The columns the finalising UPDATE returns. */
enum {
    F_ID,
    F_KEY,
    F_ORDER,
    F_AMOUNT,
    F_CURRENCY,
    F_REASON,
    F_RESTOCK,
    F_LINES,
    F_CAUSE,
    F_STATE,
    F_WHY,
    F_REF
};

/* The columns of the finalising UPDATE's unnest. */
enum { A_ID, A_STATE, A_WHY, A_REF, A_DELAY, A_NCOLS };

static oms_status finalise(PGconn *conn, PGresult *claimed, const answer *answers, PGresult **out)
{
    pg_cols c;
    oms_status s;
    pg_cols_init(&c, A_NCOLS);
    for (int r = 0; r < PQntuples(claimed); r++) {
        pg_cols_text(&c, A_ID, PQgetvalue(claimed, r, C_ID));
        pg_cols_text(&c, A_STATE, answers[r].state);
        pg_cols_text(&c, A_WHY, answers[r].why);
        pg_cols_text(&c, A_REF, answers[r].ref);
        pg_cols_int(&c, A_DELAY, answers[r].retry_in_ms);
    }
    s = pg_cols_query(
        conn, "refund outcome",
        "UPDATE refunds r SET state = a.state, reject_reason = a.why,"
        " gateway_ref = a.ref,"
        " amount_cents = CASE WHEN a.state = 'rejected' THEN 0 ELSE r.amount_cents END,"
        " decided_at = CASE WHEN a.state <> 'pending' THEN now() END,"
        " next_attempt_at = CASE WHEN a.state = 'pending'"
        "   THEN now() + a.delay * interval '1 ms' ELSE r.next_attempt_at END"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[])"
        "  AS a(refund_id, state, why, ref, delay)"
        " WHERE r.refund_id = a.refund_id AND r.state = 'pending'"
        /* The subquery reads the statement's snapshot: the amount
         * held before a rejection zeroed it. */
        " RETURNING r.refund_id, r.idempotency_key, r.order_id,"
        " (SELECT h.amount_cents FROM refunds h WHERE h.refund_id = r.refund_id),"
        " r.currency, r.reason, r.restock, r.lines::text, r.request_event_id,"
        " r.state, r.reject_reason, r.gateway_ref",
        &c, PGRES_TUPLES_OK, out);
    pg_cols_fini(&c);
    return s;
}

/* The columns of the processed refunds' totals. */
enum { T_ID, T_TOTAL, T_FULL, T_NCOLS };

/* Moves each final refund's amount out of the order's held amount, emits its
 * event and collects the totals to write into totals (T_* columns). */
static oms_status settle_rows(outbox_batch *ob, PGresult *fin, orders *o, pg_cols *totals)
{
    oms_status s = OMS_OK;
    for (int r = 0; s == OMS_OK && r < PQntuples(fin); r++) {
        const char *state = PQgetvalue(fin, r, F_STATE);
        long k = strs_find(o->ids, o->n, PQgetvalue(fin, r, F_ORDER));
        int64_t amount = atoll(PQgetvalue(fin, r, F_AMOUNT));
        bool processed = strcmp(state, "processed") == 0;
        if (strcmp(state, "pending") == 0 || k < 0)
            continue;
        o->pending[k] -= amount;
        if (processed)
            o->refunded[k] += amount;
        int64_t paid = atoll(PQgetvalue(o->res, (int)k, 4));
        refund_outcome out = {
            .refund_id = PQgetvalue(fin, r, F_ID),
            .key = PQgetvalue(fin, r, F_KEY),
            .order_id = PQgetvalue(fin, r, F_ORDER),
            .currency = PQgetvalue(fin, r, F_CURRENCY),
            .reason = PQgetvalue(fin, r, F_REASON),
            .lines_json = PQgetvalue(fin, r, F_LINES),
            .gateway_ref = PQgetvalue(fin, r, F_REF),
            .customer_id = PQgetvalue(o->res, (int)k, 1),
            .customer_email = PQgetvalue(o->res, (int)k, 2),
            .customer_name = PQgetvalue(o->res, (int)k, 3),
            .cause = PQgetvalue(fin, r, F_CAUSE),
            .amount_cents = amount,
            .refunded_total_cents = o->refunded[k],
            .paid_total_cents = paid,
            .full = o->refunded[k] == paid,
            .restock = strcmp(PQgetvalue(fin, r, F_RESTOCK), "t") == 0,
            .reject_reason = PQgetvalue(fin, r, F_WHY),
        };
        if (processed) {
            pg_cols_text(totals, T_ID, out.refund_id);
            pg_cols_int(totals, T_TOTAL, out.refunded_total_cents);
            pg_cols_bool(totals, T_FULL, out.full);
            s = refund_emit_processed(ob, &out);
        } else {
            s = refund_emit_rejected(ob, &out);
        }
    }
    return s == OMS_OK ? totals->status : s;
}

static oms_status write_totals(PGconn *conn, orders *o, pg_cols *totals)
{
    pg_cols c;
    oms_status s = OMS_OK;
    pg_cols_init(&c, 3);
    for (size_t k = 0; k < o->n; k++) {
        pg_cols_text(&c, 0, o->ids[k]);
        pg_cols_int(&c, 1, o->refunded[k]);
        pg_cols_int(&c, 2, o->pending[k]);
    }
    if (o->n > 0)
        s = pg_cols_query(
            conn, "refund worker orders",
            "UPDATE paid_orders p SET refunded_cents = x.refunded,"
            " pending_cents = x.pending, updated_at = now()"
            " FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS x(id, refunded, pending)"
            " WHERE p.order_id = x.id",
            &c, PGRES_COMMAND_OK, NULL);
    if (s == OMS_OK && pg_cols_rows(totals) > 0)
        s = pg_cols_query(
            conn, "refund worker totals",
            "UPDATE refunds r SET refunded_total_cents = x.total, full_refund = x.is_full"
            " FROM unnest($1::text[], $2::bigint[], $3::bool[]) AS x(id, total, is_full)"
            " WHERE r.refund_id = x.id",
            totals, PGRES_COMMAND_OK, NULL);
    pg_cols_fini(&c);
    return s;
}

static oms_status record(refund_ctx *ctx, PGconn *conn, PGresult *claimed, const answer *answers)
{
    orders o = {0};
    PGresult *fin = NULL;
    outbox_batch ob;
    pg_cols totals;
    oms_status s;
    outbox_batch_init(&ob);
    pg_cols_init(&totals, T_NCOLS);
    if ((s = pg_exec(conn, "BEGIN")) != OMS_OK || (s = lock_orders(conn, claimed, &o)) != OMS_OK ||
        (s = finalise(conn, claimed, answers, &fin)) != OMS_OK ||
        (s = settle_rows(&ob, fin, &o, &totals)) != OMS_OK ||
        (s = write_totals(conn, &o, &totals)) != OMS_OK ||
        (s = outbox_batch_flush(&ob, conn)) != OMS_OK || (s = pg_exec(conn, "COMMIT")) != OMS_OK)
        goto out;
    for (int r = 0; r < PQntuples(fin); r++) {
        const char *state = PQgetvalue(fin, r, F_STATE);
        if (strcmp(state, "pending") == 0)
            continue;
        bool processed = strcmp(state, "processed") == 0;
        metrics_counter_add(ctx->m, "oms_refunds_total",
                            processed ? "outcome=\"processed\"" : "outcome=\"rejected\"", 1);
        if (processed)
            metrics_counter_add(ctx->m, "oms_refunded_cents_total", "",
                                (double)atoll(PQgetvalue(fin, r, F_AMOUNT)));
    }
out:
    pg_rollback(conn);
    PQclear(fin);
    PQclear(o.res);
    free(o.ids), free(o.refunded), free(o.pending);
    pg_cols_fini(&totals);
    outbox_batch_fini(&ob);
    return s;
}

/* ---- one round and the thread ------------------------------------------- */

oms_status refund_send_due(refund_ctx *ctx, PGconn *conn, int *sent)
{
    PGresult *claimed = NULL;
    answer *answers = NULL;
    oms_status s;
    *sent = 0;
    if ((s = claim(ctx, conn, &claimed)) != OMS_OK || PQntuples(claimed) == 0)
        goto out;
    int n = PQntuples(claimed);
    /* Out of memory or a failed record: the refunds stay claimed and are
     * sent again, under the same key, when the lease ends. */
    if ((answers = calloc((size_t)n, sizeof *answers)) == NULL) {
        s = OMS_ENOMEM;
        goto out;
    }
    if ((s = call_gateway(ctx, claimed, answers)) != OMS_OK ||
        (s = record(ctx, conn, claimed, answers)) != OMS_OK)
        goto out;
    *sent = n;
out:
    free(answers);
    PQclear(claimed);
    return s;
}

/* pgworker_round_fn: one group of due refunds. */
static oms_status worker_round(void *ctx, PGconn **conn, bool *more)
{
    int sent = 0;
    oms_status s = refund_send_due(ctx, *conn, &sent);
    /* A full group suggests more are due: go on at once. */
    *more = sent == REFUND_CLAIM_MAX;
    return s;
}

oms_status refund_worker_start(refund_ctx *ctx)
{
    /* Before any thread: curl_global_init is not thread-safe. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return OMS_ENOMEM;
    if (pgworker_start(&ctx->worker, ctx->dsn, REFUND_PRODUCER, "refund-worker", IDLE_POLL_MS, 0,
                       worker_round, ctx) != OMS_OK) {
        curl_global_cleanup();
        return OMS_ENOMEM;
    }
    log_info("refund worker started", "refunds_url", ctx->cfg.refunds_url, NULL);
    return OMS_OK;
}

void refund_worker_stop(refund_ctx *ctx)
{
    if (ctx->worker == NULL)
        return;
    /* A group in flight finishes (bounded by the gateway timeout) and is recorded. */
    pgworker_stop(ctx->worker);
    ctx->worker = NULL;
    curl_global_cleanup();
}
