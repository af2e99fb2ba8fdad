/*
 * payment_charger.c - the http gateway's charger thread.
 *
 * Design: claim, call, record, in three steps, with no transaction open
 * across the network. The claim is one statement: it locks due pending
 * payments (FOR UPDATE SKIP LOCKED, so replicas take disjoint groups), counts
 * the attempt and pushes next_attempt_at past the calls' timeout (a lease).
 * The group is then POSTed in parallel, and the answers are recorded in one
 * transaction by an UPDATE conditional on the payment still being pending:
 * a callback that settled it in the meantime wins, and its event is the only
 * one. A crash between claim and record leaves the payment pending; it is
 * claimed again when the lease ends and re-sent with the same
 * Idempotency-Key, which the gateway answers without charging twice.
 * Counting the attempt at claim time bounds retries even then.
 */
#include "payment.h"

#include "backoff.h"
#include "log.h"
#include "metrics.h"
#include "pgworker.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IDLE_POLL_MS 100
#define LEASE_MARGIN_MS 5000

struct payment_charger {
    pgworker *worker;
};

int64_t payment_backoff_ms(int failed_attempts)
{
    return oms_backoff_delay_ms(failed_attempts, PAYMENT_BACKOFF_BASE_MS, PAYMENT_BACKOFF_MAX_MS);
}

void payment_charge_outcome(const payment_charge *c, int max_attempts, payment_outcome *out)
{
    out->reason[0] = '\0';
    out->retry_in_ms = 0;
    switch (c->result) {
    case PAYMENT_GW_ACCEPTED: out->status = "submitted"; break;
    case PAYMENT_GW_REJECTED:
        out->status = "failed";
        snprintf(out->reason, sizeof out->reason, "%s", c->detail);
        break;
    case PAYMENT_GW_ERROR:
        if (c->attempts >= max_attempts) {
            out->status = "failed";
            snprintf(out->reason, sizeof out->reason,
                     "payment gateway unavailable after %d attempt%s", c->attempts,
                     c->attempts == 1 ? "" : "s");
        } else {
            out->status = "pending";
            out->retry_in_ms = payment_backoff_ms(c->attempts);
        }
        break;
    }
}

/* ---- claim ------------------------------------------------------------ */

static oms_status claim(payment_ctx *ctx, PGconn *conn, PGresult **out)
{
    char lease[24], limit[16];
    snprintf(lease, sizeof lease, "%lld", (long long)ctx->cfg.timeout_ms + LEASE_MARGIN_MS);
    snprintf(limit, sizeof limit, "%d", PAYMENT_CLAIM_MAX);
    const char *params[] = {lease, limit};
    return pg_query(conn, "payment claim",
                    "UPDATE payments p SET attempts = p.attempts + 1, updated_at = now(),"
                    " next_attempt_at = now() + $1::bigint * interval '1 ms'"
                    " FROM (SELECT payment_id FROM payments"
                    "       WHERE status = 'pending' AND next_attempt_at <= now()"
                    "       ORDER BY next_attempt_at LIMIT $2::int FOR UPDATE SKIP LOCKED) due"
                    " WHERE p.payment_id = due.payment_id"
                    " RETURNING p.payment_id, p.order_id, p.amount_cents, p.currency, p.attempts",
                    2, params, PGRES_TUPLES_OK, out);
}

/* ---- record ----------------------------------------------------------- */

/* The columns of the outcome UPDATE's unnest. */
enum { O_ID, O_STATUS, O_REASON, O_DELAY, O_NCOLS };

typedef struct outcomes {
    pg_cols cols; /* O_* */
    long accepted, rejected, errors;
} outcomes;

static oms_status outcomes_add(outcomes *o, const payment_charge *c, int max_attempts)
{
    payment_outcome out;
    payment_charge_outcome(c, max_attempts, &out);
    o->accepted += c->result == PAYMENT_GW_ACCEPTED;
    o->rejected += c->result == PAYMENT_GW_REJECTED;
    o->errors += c->result == PAYMENT_GW_ERROR;
    if (c->result != PAYMENT_GW_ACCEPTED) {
        char attempts[16];
        snprintf(attempts, sizeof attempts, "%d", c->attempts);
        log_info(c->result == PAYMENT_GW_REJECTED ? "charge refused by the gateway"
                                                  : "charge not answered by the gateway",
                 "payment_id", c->payment_id, "order_id", c->order_id, "attempts", attempts,
                 "detail", c->detail, "now", out.status, NULL);
    }
    pg_cols_text(&o->cols, O_ID, c->payment_id);
    pg_cols_text(&o->cols, O_STATUS, out.status);
    pg_cols_text(&o->cols, O_REASON, out.reason);
    pg_cols_int(&o->cols, O_DELAY, out.retry_in_ms);
    return o->cols.status;
}

/* Applies the outcomes to the payments still pending and publishes the
 * ones that became final, in one transaction. */
static oms_status record(payment_ctx *ctx, PGconn *conn, outcomes *o)
{
    PGresult *res = NULL;
    outbox_batch ob;
    payment_tally tally = {0, 0};
    oms_status s;
    outbox_batch_init(&ob);
    if ((s = pg_exec(conn, "BEGIN")) != OMS_OK)
        goto out;
    s = pg_cols_query(
        conn, "payment charge outcome",
        "UPDATE payments p SET status = o.status, reason = o.reason, updated_at = now(),"
        " next_attempt_at = CASE WHEN o.status = 'pending'"
        "   THEN now() + o.delay_ms * interval '1 ms' ELSE p.next_attempt_at END"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])"
        "   AS o(payment_id, status, reason, delay_ms)"
        " WHERE p.payment_id = o.payment_id AND p.status = 'pending'"
        " RETURNING " PAYMENT_RETURNING,
        &o->cols, PGRES_TUPLES_OK, &res);
    for (int r = 0; s == OMS_OK && r < PQntuples(res); r++)
        s = payment_emit_settled(&ob, res, r, &tally);
    if (s != OMS_OK || (s = outbox_batch_flush(&ob, conn)) != OMS_OK ||
        (s = pg_exec(conn, "COMMIT")) != OMS_OK)
        goto out;
    payment_tally_report(ctx->m, &tally);
out:
    pg_rollback(conn);
    PQclear(res);
    outbox_batch_fini(&ob);
    return s;
}

static void count_requests(metrics *m, const outcomes *o)
{
    if (o->accepted > 0)
        metrics_counter_add(m, "oms_payment_gateway_requests_total", "result=\"accepted\"",
                            (double)o->accepted);
    if (o->rejected > 0)
        metrics_counter_add(m, "oms_payment_gateway_requests_total", "result=\"rejected\"",
                            (double)o->rejected);
    if (o->errors > 0)
        metrics_counter_add(m, "oms_payment_gateway_requests_total", "result=\"error\"",
                            (double)o->errors);
}

/* ---- one round -------------------------------------------------------- */

oms_status payment_charge_due(payment_ctx *ctx, PGconn *conn, int *charged)
{
    PGresult *res = NULL;
    payment_charge charges[PAYMENT_CLAIM_MAX];
    outcomes o = {.accepted = 0};
    oms_status s;
    *charged = 0;
    pg_cols_init(&o.cols, O_NCOLS);
    if ((s = claim(ctx, conn, &res)) != OMS_OK)
        goto out;
    int n = PQntuples(res);
    if (n == 0)
        goto out;
    for (int r = 0; r < n && r < PAYMENT_CLAIM_MAX; r++) {
        payment_charge *c = &charges[r];
        memset(c, 0, sizeof *c);
        c->payment_id = PQgetvalue(res, r, 0);
        c->order_id = PQgetvalue(res, r, 1);
        c->amount_cents = atoll(PQgetvalue(res, r, 2));
        c->currency = PQgetvalue(res, r, 3);
        c->attempts = atoi(PQgetvalue(res, r, 4));
    }
    /* Out of memory: the payments stay claimed and are retried after the lease. */
    if ((s = payment_gateway_send(&ctx->cfg, charges, (size_t)n)) != OMS_OK)
        goto out;
    for (int r = 0; r < n && s == OMS_OK; r++)
        s = outcomes_add(&o, &charges[r], ctx->cfg.max_attempts);
    count_requests(ctx->m, &o);
    if (s == OMS_OK)
        s = record(ctx, conn, &o);
    if (s == OMS_OK)
        *charged = n;
out:
    PQclear(res);
    pg_cols_fini(&o.cols);
    return s;
}

/* ---- the thread ------------------------------------------------------- */

static oms_status charger_round(void *arg, PGconn **conn, bool *more)
{
    int charged = 0, looked_up = 0;
    oms_status s = payment_charge_due(arg, *conn, &charged);
    if (s == OMS_OK)
        s = payment_reconcile_due(arg, *conn, &looked_up);
    /* A full group suggests more are due: go on at once. */
    *more = charged == PAYMENT_CLAIM_MAX || looked_up == PAYMENT_CLAIM_MAX;
    return s;
}

oms_status payment_charger_start(payment_ctx *ctx)
{
    /* Before any thread: curl_global_init is not thread-safe. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return OMS_ENOMEM;
    payment_charger *ch = calloc(1, sizeof *ch);
    if (ch == NULL) {
        curl_global_cleanup();
        return OMS_ENOMEM;
    }
    if (pgworker_start(&ch->worker, ctx->dsn, PAYMENT_PRODUCER, "payment-charger", IDLE_POLL_MS,
                       PGWORKER_NO_BITMAPSCAN, charger_round, ctx) != OMS_OK) {
        free(ch);
        curl_global_cleanup();
        return OMS_ENOMEM;
    }
    ctx->charger = ch;
    log_info("charger started", "charges_url", ctx->cfg.charges_url, "callback_url",
             ctx->cfg.callback_url, NULL);
    return OMS_OK;
}

void payment_charger_stop(payment_ctx *ctx)
{
    payment_charger *ch = ctx->charger;
    if (ch == NULL)
        return;
    /* A group in flight finishes (bounded by the gateway timeout) and is recorded. */
    pgworker_stop(ch->worker);
    free(ch);
    ctx->charger = NULL;
    curl_global_cleanup();
}
