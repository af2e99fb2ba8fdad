/*
 * notify_sender.c - the sender thread: claim, deliver, record, in three
 * steps, with no transaction open across the network.
 *
 * The claim is one statement: it locks due pending rows (FOR UPDATE SKIP
 * LOCKED, so replicas take disjoint groups), counts the attempt and pushes
 * next_attempt_at past the delivery's timeout (a lease), then commits; the
 * group is delivered in parallel; the outcomes are recorded by one UPDATE
 * FROM unnest conditional on the row still being pending.
 *
 * The at-least-once window is between a delivery and its record: a crash
 * there leaves the row pending and it is delivered again when the lease
 * ends. To keep the window to a crash, a record that fails (PostgreSQL
 * restarting) is retried on a new connection until the lease is nearly over
 * rather than given up at once. Counting the attempt at claim time bounds
 * retries even across crashes.
 *
 * The log channel is the exception: it delivers by writing a line on this
 * process's log, with nothing on the network to wait for. The consumer
 * writes it as it records the row (notify_consume.c), so the sender only
 * sees log rows pending for another reason (a retry asked by an operator,
 * rows recorded while the channel was off). They need no lease: they are
 * locked, written and marked sent in one transaction (notify_send_log_due).
 */
#include "notify.h"

#include "log.h"
#include "metrics.h"
#include "pgworker.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IDLE_POLL_MS 200
#define LEASE_MARGIN_MS 5000
#define RECORD_RETRY_MS 250
#define BACKLOG_EVERY_MS 1000
#define PRUNE_EVERY_MS (3600 * 1000)
#define PRUNE_ROWS 10000 /* per statement: a short transaction, the rest next time */
/* Idle connections kept for the next group: enough to reuse SMTP sessions
 * and keep-alive connections under load, few enough not to hold a
 * receiver's connection slots when it is quiet. */
#define KEEP_CONNECTIONS 8
#define KEEP_CONNECTION_S 60 /* an idle connection older than this is not reused */

static const double LATENCY_BUCKETS[] = {0.01, 0.05, 0.1, 0.25, 0.5, 1,    2.5,  5,    10,
                                         30,   60,   120, 300,  600, 1800, 3600, 21600};

struct notify_sender {
    pgworker *worker;
    httpc_session *http; /* kept across groups: its connections are reused */
    notify_ctx *ctx;
    int64_t backlog_at_ms; /* when the pending gauge was last refreshed */
    int64_t pruned_at_ms;  /* when old notifications were last deleted */
};

void notify_metrics_declare(metrics *m, const notify_settings *cfg)
{
    static const char *const states[] = {"sent", "failed", "dead"};
    metrics_counter_declare(m, "oms_notifications_total",
                            "Notifications by channel and final state (sent, failed, dead)");
    metrics_counter_declare(m, "oms_notification_retries_total",
                            "Deliveries that did not go through and were scheduled again");
    metrics_gauge_declare(m, "oms_notifications_pending",
                          "Notifications waiting to be delivered (all replicas)");
    metrics_histogram_declare(m, "oms_notification_delivery_seconds",
                              "From recording a notification to its delivery, seconds",
                              LATENCY_BUCKETS, sizeof LATENCY_BUCKETS / sizeof LATENCY_BUCKETS[0]);
    metrics_gauge_set(m, "oms_notifications_pending", "", 0);
    for (int c = 0; c < NOTIFY_N_CHANNELS; c++) {
        char labels[64];
        if (!cfg->enabled[c])
            continue;
        for (size_t s = 0; s < sizeof states / sizeof states[0]; s++) {
            snprintf(labels, sizeof labels, "channel=\"%s\",state=\"%s\"",
                     notify_channel_name((notify_channel)c), states[s]);
            metrics_counter_add(m, "oms_notifications_total", labels, 0);
        }
        snprintf(labels, sizeof labels, "channel=\"%s\"", notify_channel_name((notify_channel)c));
        metrics_counter_add(m, "oms_notification_retries_total", labels, 0);
    }
}

/* ---- claim ------------------------------------------------------------ */

/* What view_claim reads but the attempt count, which each caller adds. */
/* Whether a leased claim has any channel to take: any enabled but log. */
static bool remote_enabled(const notify_settings *cfg)
{
    for (int c = 0; c < NOTIFY_N_CHANNELS; c++)
        if (cfg->enabled[c] && c != NOTIFY_LOG)
            return true;
    return false;
}

/* Claims due rows of the enabled channels but log (notify_send_log_due's):
 * a channel switched off keeps its notifications pending until it is
 * switched on again. */
static oms_status claim(notify_ctx *ctx, PGconn *conn, PGresult **out)
{
    char lease[24], limit[16];
    pg_array channels;
    oms_status s = OMS_OK;
    snprintf(lease, sizeof lease, "%lld", (long long)ctx->cfg.timeout_ms + LEASE_MARGIN_MS);
    snprintf(limit, sizeof limit, "%d", NOTIFY_CLAIM_MAX);
    pg_array_init(&channels);
    for (int c = 0; c < NOTIFY_N_CHANNELS && s == OMS_OK; c++)
        if (ctx->cfg.enabled[c] && c != NOTIFY_LOG)
            s = pg_array_add(&channels, notify_channel_name((notify_channel)c));
    const char *params[] = {lease, limit, pg_array_literal(&channels)};
    if (s == OMS_OK && params[2] == NULL)
        s = OMS_ENOMEM;
    if (s == OMS_OK)
        s = pg_query(conn, "notification claim",
                     "UPDATE notifications n SET attempts = n.attempts + 1, updated_at = now(),"
                     " next_attempt_at = now() + $1::bigint * interval '1 ms'"
                     " FROM (SELECT id FROM notifications"
                     "       WHERE state = 'pending' AND next_attempt_at <= now()"
                     "         AND channel = ANY($3::text[])"
                     "       ORDER BY next_attempt_at LIMIT $2::int FOR UPDATE SKIP LOCKED) due"
                     " WHERE n.id = due.id RETURNING " NOTIFY_MSG_COLUMNS ", n.attempts",
                     3, params, PGRES_TUPLES_OK, out);
    pg_array_fini(&channels);
    return s;
}

/* Fills msgs from the claim's rows (borrowing res); returns how many. */
static int view_claim(PGresult *res, notify_msg *msgs)
{
    int n = PQntuples(res) < NOTIFY_CLAIM_MAX ? PQntuples(res) : NOTIFY_CLAIM_MAX;
    for (int r = 0; r < n; r++)
        notify_msg_view(res, r, &msgs[r]);
    return n;
}

/* ---- record ----------------------------------------------------------- */

/* The columns of the outcome UPDATE's unnest. */
enum { O_ID, O_STATE, O_ERROR, O_DELAY, O_NCOLS };

typedef struct outcomes {
    pg_cols cols; /* O_* */
    long retries[NOTIFY_N_CHANNELS];
} outcomes;

static oms_status outcomes_add(outcomes *o, const notify_msg *n, const notify_settings *cfg)
{
    notify_outcome out;
    notify_decide(n, cfg, &out);
    if (n->result != NOTIFY_SENT) {
        char attempts[16];
        snprintf(attempts, sizeof attempts, "%d", n->attempts);
        log_info(n->result == NOTIFY_REFUSED ? "notification refused"
                                             : "notification not delivered",
                 "channel", notify_channel_name(n->channel), "event_id", n->event_id, "order_id",
                 n->order_id, "attempts", attempts, "error", n->error, "now", out.state, NULL);
    }
    o->retries[n->channel] += strcmp(out.state, "pending") == 0;
    pg_cols_int(&o->cols, O_ID, n->id);
    pg_cols_text(&o->cols, O_STATE, out.state);
    pg_cols_text(&o->cols, O_ERROR, n->result == NOTIFY_SENT ? "" : n->error);
    pg_cols_int(&o->cols, O_DELAY, out.retry_in_ms);
    return o->cols.status;
}

/* Counts what the record statement returned: channel, state, latency. */
static void count_recorded(metrics *m, PGresult *res, const outcomes *o)
{
    for (int r = 0; r < PQntuples(res); r++) {
        char labels[64];
        const char *state = PQgetvalue(res, r, 1);
        if (strcmp(state, "pending") == 0)
            continue;
        snprintf(labels, sizeof labels, "channel=\"%s\",state=\"%s\"", PQgetvalue(res, r, 0),
                 state);
        metrics_counter_add(m, "oms_notifications_total", labels, 1);
        if (strcmp(state, "sent") != 0)
            continue;
        snprintf(labels, sizeof labels, "channel=\"%s\"", PQgetvalue(res, r, 0));
        metrics_histogram_observe(m, "oms_notification_delivery_seconds", labels,
                                  atof(PQgetvalue(res, r, 2)));
    }
    for (int c = 0; c < NOTIFY_N_CHANNELS; c++) {
        char labels[64];
        if (o->retries[c] == 0)
            continue;
        snprintf(labels, sizeof labels, "channel=\"%s\"", notify_channel_name((notify_channel)c));
        metrics_counter_add(m, "oms_notification_retries_total", labels, (double)o->retries[c]);
    }
}

#define OUTCOME_SET                                                           \
    " state = o.state, last_error = o.error, updated_at = now(),"             \
    " sent_at = CASE WHEN o.state = 'sent' THEN now() ELSE n.sent_at END,"    \
    " next_attempt_at = CASE WHEN o.state = 'pending'"                        \
    "   THEN now() + o.delay_ms * interval '1 ms' ELSE n.next_attempt_at END" \
    " FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[])"        \
    "   AS o(id, state, error, delay_ms)"                                     \
    " WHERE n.id = o.id AND n.state = 'pending'"                              \
    " RETURNING n.channel, n.state, extract(epoch FROM now() - n.created_at)"

/* Records the outcomes; count_attempt for rows no claim counted (the log
 * channel's). */
static oms_status record(notify_ctx *ctx, PGconn *conn, outcomes *o, bool count_attempt)
{
    PGresult *res = NULL;
    oms_status s = pg_cols_query(
        conn, "notification outcome",
        count_attempt ? "UPDATE notifications n SET attempts = n.attempts + 1," OUTCOME_SET
                      : "UPDATE notifications n SET" OUTCOME_SET,
        &o->cols, PGRES_TUPLES_OK, &res);
    if (s == OMS_OK)
        count_recorded(ctx->m, res, o);
    PQclear(res);
    return s;
}

/* Records, retrying on a new connection while the lease still holds the
 * rows: a record given up means a second delivery later. Not cut short by
 * a shutdown either: the deliveries happened. */
static oms_status record_until(notify_ctx *ctx, PGconn **conn, outcomes *o, int64_t deadline_ms)
{
    oms_status s = record(ctx, *conn, o, false);
    while (s != OMS_OK && oms_mono_ms() < deadline_ms) {
        oms_sleep_ms(RECORD_RETRY_MS, NULL);
        if (!pg_ok(*conn)) {
            PQfinish(*conn);
            *conn = NULL;
            if (pg_connect(conn, ctx->dsn, NOTIFY_PRODUCER, "notify-sender") != OMS_OK)
                continue;
        }
        s = record(ctx, *conn, o, false);
    }
    return s;
}

/* ---- one round -------------------------------------------------------- */

oms_status notify_send_due(notify_ctx *ctx, PGconn **conn, int *claimed)
{
    PGresult *res = NULL;
    notify_msg msgs[NOTIFY_CLAIM_MAX];
    outcomes o;
    oms_status s;
    *claimed = 0;
    if (!remote_enabled(&ctx->cfg))
        return OMS_OK;
    memset(&o, 0, sizeof o);
    pg_cols_init(&o.cols, O_NCOLS);
    int64_t lease_end_ms = oms_mono_ms() + ctx->cfg.timeout_ms + LEASE_MARGIN_MS;
    if ((s = claim(ctx, *conn, &res)) != OMS_OK)
        goto out;
    int n = view_claim(res, msgs);
    if (n == 0)
        goto out;
    /* Out of memory: the rows stay claimed and are tried again after the lease. */
    if ((s = notify_deliver(&ctx->cfg, ctx->sender->http, msgs, (size_t)n)) != OMS_OK)
        goto out;
    for (int r = 0; r < n && s == OMS_OK; r++)
        s = outcomes_add(&o, &msgs[r], &ctx->cfg);
    if (s == OMS_OK)
        s = record_until(ctx, conn, &o, lease_end_ms - LEASE_MARGIN_MS / 2);
    if (s == OMS_OK)
        *claimed = n;
out:
    PQclear(res);
    pg_cols_fini(&o.cols);
    return s;
}

/* The log channel's round, in one transaction: its due rows are locked (FOR
 * UPDATE SKIP LOCKED, so replicas take disjoint groups), written to the log
 * and marked sent, attempt counted, by one UPDATE. A crash or a failed
 * statement before COMMIT leaves them pending, to be written again: at
 * least once, as on every channel. Nothing on the network is waited for
 * while the transaction is open. */
oms_status notify_send_log_due(notify_ctx *ctx, PGconn *conn, int *claimed)
{
    PGresult *res = NULL;
    notify_msg msgs[NOTIFY_CLAIM_MAX];
    outcomes o;
    char limit[16];
    oms_status s;
    *claimed = 0;
    if (!ctx->cfg.enabled[NOTIFY_LOG])
        return OMS_OK;
    memset(&o, 0, sizeof o);
    pg_cols_init(&o.cols, O_NCOLS);
    snprintf(limit, sizeof limit, "%d", NOTIFY_CLAIM_MAX);
    const char *params[] = {limit};
    if ((s = pg_exec(conn, "BEGIN")) != OMS_OK ||
        (s = pg_query(conn, "log notification lock",
                      "SELECT " NOTIFY_MSG_COLUMNS ", n.attempts + 1 FROM notifications n"
                      " WHERE state = 'pending' AND next_attempt_at <= now() AND channel = 'log'"
                      " ORDER BY next_attempt_at LIMIT $1::int FOR UPDATE SKIP LOCKED",
                      1, params, PGRES_TUPLES_OK, &res)) != OMS_OK)
        goto out;
    int n = view_claim(res, msgs);
    if (n > 0 && (s = notify_deliver(&ctx->cfg, ctx->sender->http, msgs, (size_t)n)) != OMS_OK)
        goto out;
    for (int r = 0; r < n && s == OMS_OK; r++)
        s = outcomes_add(&o, &msgs[r], &ctx->cfg);
    if (s == OMS_OK && n > 0)
        s = record(ctx, conn, &o, true);
    if (s == OMS_OK && (s = pg_exec(conn, "COMMIT")) == OMS_OK)
        *claimed = n;
out:
    pg_rollback(conn);
    PQclear(res);
    pg_cols_fini(&o.cols);
    return s;
}

/* ---- the thread ------------------------------------------------------- */

/* Refreshes the pending gauge at most once a BACKLOG_EVERY_MS. */
static void refresh_backlog(notify_sender *sd, PGconn *conn)
{
    PGresult *res = NULL;
    if (conn == NULL || oms_mono_ms() - sd->backlog_at_ms < BACKLOG_EVERY_MS)
        return;
    sd->backlog_at_ms = oms_mono_ms();
    if (pg_query(conn, "notification backlog",
                 "SELECT count(*) FROM notifications WHERE state = 'pending'", 0, NULL,
                 PGRES_TUPLES_OK, &res) == OMS_OK)
        metrics_gauge_set(sd->ctx->m, "oms_notifications_pending", "", atof(PQgetvalue(res, 0, 0)));
    PQclear(res);
}

oms_status notify_prune(PGconn *conn, int64_t retention_days, int limit, long *deleted)
{
    char days[24], rows[16];
    PGresult *res = NULL;
    snprintf(days, sizeof days, "%lld", (long long)retention_days);
    snprintf(rows, sizeof rows, "%d", limit);
    const char *params[] = {days, rows};
    /* Oldest ids first through the (state, id) index; ids grow with time. */
    oms_status s = pg_query(conn, "notification prune",
                            "DELETE FROM notifications WHERE id IN (SELECT id FROM notifications"
                            " WHERE state IN ('sent', 'failed')"
                            "   AND created_at < now() - $1::int * interval '1 day'"
                            " ORDER BY id LIMIT $2::int)",
                            2, params, PGRES_COMMAND_OK, &res);
    if (s == OMS_OK)
        *deleted = atol(PQcmdTuples(res));
    PQclear(res);
    return s;
}

/* Deletes expired notifications at start and then hourly: one slice per
 * round, so a long history to catch up on never holds up delivery. */
static void prune_expired(notify_sender *sd, PGconn *conn)
{
    long deleted = 0;
    if (conn == NULL || sd->ctx->cfg.retention_days == 0 ||
        oms_mono_ms() - sd->pruned_at_ms < PRUNE_EVERY_MS)
        return;
    if (notify_prune(conn, sd->ctx->cfg.retention_days, PRUNE_ROWS, &deleted) != OMS_OK)
        return;
    /* A full slice: more to go, the next round goes on. */
    if (deleted < PRUNE_ROWS)
        sd->pruned_at_ms = oms_mono_ms();
    if (deleted > 0) {
        char n[24];
        snprintf(n, sizeof n, "%ld", deleted);
        log_info("old notifications deleted", "notifications", n, NULL);
    }
}

static oms_status sender_round(void *arg, PGconn **conn, bool *more)
{
    notify_sender *sd = arg;
    int logged = 0, claimed = 0;
    oms_status s = notify_send_log_due(sd->ctx, *conn, &logged);
    if (s == OMS_OK)
        s = notify_send_due(sd->ctx, conn, &claimed);
    if (s == OMS_OK) {
        refresh_backlog(sd, *conn);
        prune_expired(sd, *conn);
    }
    /* A full group suggests more are due: go on at once. */
    *more = logged == NOTIFY_CLAIM_MAX || claimed == NOTIFY_CLAIM_MAX;
    return s;
}

oms_status notify_sender_start(notify_ctx *ctx)
{
    /* Before any thread: curl_global_init is not thread-safe. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return OMS_ENOMEM;
    notify_sender *sd = calloc(1, sizeof *sd);
    if (sd == NULL) {
        curl_global_cleanup();
        return OMS_ENOMEM;
    }
    sd->ctx = ctx;
    sd->backlog_at_ms = oms_mono_ms() - BACKLOG_EVERY_MS;
    sd->pruned_at_ms = oms_mono_ms() - PRUNE_EVERY_MS;
    ctx->sender = sd;
    if (httpc_session_create(&sd->http, KEEP_CONNECTIONS, KEEP_CONNECTION_S) != OMS_OK ||
        pgworker_start(&sd->worker, ctx->dsn, NOTIFY_PRODUCER, "notify-sender", IDLE_POLL_MS,
                       PGWORKER_NO_BITMAPSCAN, sender_round, sd) != OMS_OK) {
        httpc_session_destroy(sd->http);
        ctx->sender = NULL;
        free(sd);
        curl_global_cleanup();
        return OMS_ENOMEM;
    }
    return OMS_OK;
}

void notify_sender_stop(notify_ctx *ctx)
{
    notify_sender *sd = ctx->sender;
    if (sd == NULL)
        return;
    /* A group in flight finishes (bounded by the timeout) and is recorded. */
    pgworker_stop(sd->worker);
    httpc_session_destroy(sd->http);
    free(sd);
    ctx->sender = NULL;
    curl_global_cleanup();
}
