/*
 * payment_reconcile.c - charges the gateway accepted but never called back.
 *
 * A callback can be lost (the gateway gave up on an unreachable service, a
 * proxy dropped it). A payment still `submitted` OMS_PAYMENT_CALLBACK_TIMEOUT_MS
 * after it was sent is looked up with GET /charges/{payment_id}: a decided
 * charge is settled exactly as its callback would have settled it (the same
 * conditional UPDATE, so a callback arriving meanwhile still settles it
 * once); a charge the gateway does not know goes back to `pending` and is
 * sent again under the same idempotency key; anything else waits for the next
 * timeout. A payment is never failed for want of an answer: the money may
 * have been taken.
 */
#include "payment.h"

#include "log.h"
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>

static oms_status claim_overdue(payment_ctx *ctx, PGconn *conn, PGresult **out)
{
    char timeout[24], limit[16];
    snprintf(timeout, sizeof timeout, "%lld", (long long)ctx->cfg.callback_timeout_ms);
    snprintf(limit, sizeof limit, "%d", PAYMENT_CLAIM_MAX);
    const char *params[] = {timeout, limit};
    /* updated_at is bumped first: a second payment process skips these
     * until the next timeout instead of asking twice. */
    return pg_query(conn, "overdue callbacks",
                    "UPDATE payments SET updated_at = now() WHERE payment_id IN ("
                    " SELECT payment_id FROM payments WHERE status = 'submitted'"
                    "  AND updated_at < now() - $1::bigint * interval '1 millisecond'"
                    "  ORDER BY updated_at LIMIT $2::int FOR UPDATE SKIP LOCKED)"
                    " RETURNING payment_id",
                    2, params, PGRES_TUPLES_OK, out);
}

static oms_status charge_again(PGconn *conn, const char *payment_id)
{
    const char *params[] = {payment_id};
    return pg_query(conn, "charge again",
                    "UPDATE payments SET status = 'pending', next_attempt_at = now(),"
                    " updated_at = now() WHERE payment_id = $1 AND status = 'submitted'",
                    1, params, PGRES_COMMAND_OK, NULL);
}

static void count(payment_ctx *ctx, const char *result)
{
    char labels[48];
    snprintf(labels, sizeof labels, "result=\"%s\"", result);
    metrics_counter_add(ctx->m, "oms_payment_lookups_total", labels, 1);
}

/* Asks about one payment and acts on the answer. */
static oms_status reconcile_one(payment_ctx *ctx, PGconn *conn, const char *payment_id)
{
    payment_callback answer;
    char err[PAYMENT_ERR_LEN] = "";
    payment_tally tally = {0, 0};
    payment_settle_result settled = PAYMENT_SETTLE_UNKNOWN;
    oms_status s = OMS_OK;
    switch (payment_gateway_lookup(&ctx->cfg, payment_id, &answer, err)) {
    case PAYMENT_LOOKUP_SETTLED:
        s = payment_settle(conn, &answer, &settled, &tally);
        if (s == OMS_OK && settled == PAYMENT_SETTLED_NOW) {
            payment_tally_report(ctx->m, &tally);
            log_warn("payment settled by lookup: its callback never came", "payment_id", payment_id,
                     "status", answer.succeeded ? "succeeded" : "failed", NULL);
        }
        count(ctx, "settled");
        break;
    case PAYMENT_LOOKUP_UNKNOWN:
        log_warn("gateway does not know an accepted charge, charging again", "payment_id",
                 payment_id, NULL);
        s = charge_again(conn, payment_id);
        count(ctx, "unknown");
        break;
    case PAYMENT_LOOKUP_OPEN: count(ctx, "open"); break;
    case PAYMENT_LOOKUP_ERROR:
        log_warn("charge lookup failed, asking again later", "payment_id", payment_id, "error", err,
                 NULL);
        count(ctx, "error");
        break;
    }
    return s;
}

oms_status payment_reconcile_due(payment_ctx *ctx, PGconn *conn, int *looked_up)
{
    PGresult *res = NULL;
    oms_status s = claim_overdue(ctx, conn, &res);
    *looked_up = 0;
    for (int r = 0; s == OMS_OK && r < PQntuples(res); r++) {
        s = reconcile_one(ctx, conn, PQgetvalue(res, r, 0));
        (*looked_up)++;
    }
    PQclear(res);
    return s;
}
