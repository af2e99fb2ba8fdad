/*
 * outbox.c - outbox batches (COPY into the outbox table) and the relay.
 *
 * Relay design: rows are read in id order past a cursor (the last id
 * published), published asynchronously, and deleted once every PubAck is in.
 * A transaction that took a lower id may commit after a higher one was
 * published, so the cursor is reset to 0 every 200 ms (a bound on how long
 * such an event can wait; it showed as the pipeline's p99) and whenever a
 * notification finds nothing past it. The relay connection plans with real
 * parameters (force_custom_plan): a generic plan made while the table was
 * empty would scan every dead tuple the deletes leave behind.
 */
#include "outbox.h"

#include "backoff.h"
#include "js.h"
#include "log.h"
#include "metrics.h"
#include "pg.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RELAY_BATCH "5000"
#define RELAY_BATCH_N 5000
#define RELAY_RESCAN_MS 200
#define RELAY_BACKLOG_MS 2000
#define RELAY_INBOX_PRUNE_MS (10 * 60 * 1000)

/* ---- batches ---------------------------------------------------------- */

void outbox_batch_init(outbox_batch *b)
{
    pgcopy_init(&b->rows);
    b->total = 0;
}

void outbox_batch_fini(outbox_batch *b)
{
    pgcopy_fini(&b->rows);
}

oms_status outbox_batch_add(outbox_batch *b, const char *subject, const char *type,
                            const char *event_id, const void *payload, size_t len)
{
    pgcopy_text(&b->rows, subject);
    pgcopy_text(&b->rows, type);
    pgcopy_text(&b->rows, event_id);
    pgcopy_bytea(&b->rows, payload, len);
    pgcopy_end_row(&b->rows);
    return b->rows.oom ? OMS_ENOMEM : OMS_OK;
}

oms_status outbox_batch_add_message(outbox_batch *b, const char *subject, const char *event_id,
                                    const ProtobufCMessage *msg)
{
    uint8_t stack[1024];
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = len <= sizeof stack ? stack : malloc(len);
    if (buf == NULL)
        return OMS_ENOMEM;
    protobuf_c_message_pack(msg, buf);
    oms_status s = outbox_batch_add(b, subject, msg->descriptor->name, event_id, buf, len);
    if (buf != stack)
        free(buf);
    return s;
}

oms_status outbox_batch_flush(outbox_batch *b, PGconn *c)
{
    size_t rows = b->rows.rows;
    oms_status s = pgcopy_send(&b->rows, c,
                               "COPY outbox (subject, msg_type, event_id, payload) FROM STDIN");
    if (s == OMS_OK)
        b->total += rows;
    return s;
}

void outbox_meta_init(Oms__V1__EventMeta *meta, char id[37], const char *producer,
                      const char *correlation_id, const char *causation_id)
{
    oms__v1__event_meta__init(meta);
    oms_uuid4(id);
    meta->event_id = id;
    meta->occurred_at_ms = oms_now_ms();
    meta->producer = (char *)producer;
    meta->correlation_id = (char *)(correlation_id ? correlation_id : "");
    meta->causation_id = (char *)(causation_id ? causation_id : "");
}

/* ---- relay ------------------------------------------------------------ */

struct outbox_relay {
    pthread_t thread;
    atomic_int stop;
    atomic_long backlog;
    int64_t drain_deadline_ms;
    const char *dsn, *schema;
    js_conn *js;
    metrics *m;
    int64_t inbox_retention_ms;
    PGconn *conn;
    int64_t cursor;
};

static oms_status relay_connect(outbox_relay *r)
{
    char app[64], sql[96];
    snprintf(app, sizeof app, "%s-relay", r->schema);
    oms_status s = pg_connect(&r->conn, r->dsn, r->schema, app);
    if (s != OMS_OK)
        return s;
    snprintf(sql, sizeof sql, "LISTEN %s_outbox", r->schema);
    if ((s = pg_exec(r->conn, "SET plan_cache_mode = force_custom_plan")) != OMS_OK ||
        (s = pg_exec(r->conn, sql)) != OMS_OK) {
        PQfinish(r->conn);
        r->conn = NULL;
    }
    return s;
}

static int64_t be64(const char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | (unsigned char)p[i];
    return (int64_t)v;
}

static void count_published(outbox_relay *r, PGresult *res, const char *result)
{
    /* Rows come in id order, mostly runs of one subject: count per run. */
    int n = PQntuples(res);
    for (int i = 0; i < n;) {
        const char *subject = PQgetvalue(res, i, 1);
        int j = i;
        while (j < n && strcmp(PQgetvalue(res, j, 1), subject) == 0)
            j++;
        char labels[192];
        snprintf(labels, sizeof labels, "subject=\"%s\",result=\"%s\"", subject, result);
        metrics_counter_add(r->m, "oms_events_published_total", labels, j - i);
        i = j;
    }
}

/* Deletes the rows of res (in id order), in one statement. The range is what
 * the index scans: PostgreSQL 15 descends the index once per element of an
 * indexed "= ANY", about three pages per row (measured: 1,204 buffers for
 * 400 rows, 407 with the range). "id + 0" keeps the list out of the index
 * condition; it only filters the range, so a row in the range that committed
 * after the SELECT (and was not published) stays. */
static oms_status relay_delete(outbox_relay *r, PGresult *res)
{
    pg_array ids;
    char lo[24], hi[24];
    int n = PQntuples(res);
    pg_array_init(&ids);
    oms_status s = OMS_OK;
    for (int i = 0; i < n && s == OMS_OK; i++)
        s = pg_array_add_int(&ids, be64(PQgetvalue(res, i, 0)));
    snprintf(lo, sizeof lo, "%lld", (long long)be64(PQgetvalue(res, 0, 0)));
    snprintf(hi, sizeof hi, "%lld", (long long)be64(PQgetvalue(res, n - 1, 0)));
    const char *params[] = {pg_array_literal(&ids), lo, hi};
    if (s == OMS_OK)
        s = pg_query(r->conn, "outbox delete",
                     "DELETE FROM outbox WHERE id BETWEEN $2::bigint AND $3::bigint"
                     " AND id + 0 = ANY($1::bigint[])",
                     3, params, PGRES_COMMAND_OK, NULL);
    pg_array_fini(&ids);
    return s;
}

/* One round: publish up to RELAY_BATCH rows past the cursor. Sets *rows. */
static oms_status relay_round(outbox_relay *r, int *rows)
{
    char cursor[24];
    snprintf(cursor, sizeof cursor, "%lld", (long long)r->cursor);
    const char *params[] = {cursor};
    oms_status s = OMS_OK;
    *rows = 0;
    PGresult *res = PQexecParams(r->conn,
                                 "SELECT id, subject, msg_type, event_id, payload FROM outbox"
                                 " WHERE id > $1::bigint ORDER BY id LIMIT " RELAY_BATCH,
                                 1, NULL, params, NULL, NULL, 1);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        s = pg_error(r->conn, res, "outbox select");
        goto out;
    }
    int n = PQntuples(res);
    for (int i = 0; i < n && s == OMS_OK; i++)
        s = js_publish_async(r->js, PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
                             PQgetvalue(res, i, 3), PQgetvalue(res, i, 4),
                             (size_t)PQgetlength(res, i, 4));
    if (n == 0)
        goto out;
    oms_status waited = js_publish_wait(r->js, 30000);
    if (s == OMS_OK)
        s = waited;
    if (s != OMS_OK) {
        /* Keep every row: the next round republishes, Nats-Msg-Id dedupes. */
        count_published(r, res, "error");
        r->cursor = 0;
        goto out;
    }
    if ((s = relay_delete(r, res)) != OMS_OK)
        goto out;
    count_published(r, res, "ok");
    r->cursor = be64(PQgetvalue(res, n - 1, 0));
    *rows = n;
out:
    PQclear(res);
    return s;
}

/* Waits for a NOTIFY or timeout_ms; returns true if one arrived. */
static bool relay_wait(outbox_relay *r, int timeout_ms)
{
    struct pollfd pfd = {.fd = PQsocket(r->conn), .events = POLLIN};
    bool notified = false;
    if (poll(&pfd, 1, timeout_ms) > 0)
        PQconsumeInput(r->conn);
    PGnotify *n;
    while ((n = PQnotifies(r->conn)) != NULL) {
        notified = true;
        PQfreemem(n);
    }
    return notified;
}

static void relay_housekeeping(outbox_relay *r, int64_t *next_backlog, int64_t *next_prune)
{
    int64_t now = oms_mono_ms();
    PGresult *res = NULL;
    if (now >= *next_backlog) {
        *next_backlog = now + RELAY_BACKLOG_MS;
        /* The rows past the relay's position (all of them after a failed
         * round, which rewinds it): a count of the whole table reads every
         * dead row the relay's deletes left until vacuum (measured: 27 ms,
         * 3,000 pages a call during a bench run). */
        char cursor[24];
        snprintf(cursor, sizeof cursor, "%lld", (long long)r->cursor);
        const char *params[] = {cursor};
        if (pg_query(r->conn, "outbox backlog", "SELECT count(*) FROM outbox WHERE id > $1::bigint",
                     1, params, PGRES_TUPLES_OK, &res) == OMS_OK) {
            long backlog = atol(PQgetvalue(res, 0, 0));
            atomic_store(&r->backlog, backlog);
            metrics_gauge_set(r->m, "oms_outbox_backlog", "", (double)backlog);
        }
        PQclear(res);
    }
    if (now >= *next_prune) {
        *next_prune = now + RELAY_INBOX_PRUNE_MS;
        char ms[24];
        snprintf(ms, sizeof ms, "%lld", (long long)r->inbox_retention_ms);
        const char *params[] = {ms};
        pg_query(r->conn, "inbox prune",
                 "DELETE FROM inbox WHERE seen_at < now() - $1::bigint * interval '1 ms'", 1,
                 params, PGRES_COMMAND_OK, NULL);
    }
}

static void *relay_main(void *arg)
{
    outbox_relay *r = arg;
    oms_backoff backoff = OMS_BACKOFF_INIT;
    int64_t next_rescan = 0, next_backlog = 0, next_prune = 0;
    bool notified = false;

    for (;;) {
        bool stopping = atomic_load(&r->stop);
        if (stopping && oms_mono_ms() >= r->drain_deadline_ms)
            break;
        if (!pg_ok(r->conn) && relay_connect(r) != OMS_OK) {
            if (stopping)
                break;
            oms_backoff_sleep(&backoff, NULL);
            continue;
        }
        oms_backoff_reset(&backoff);
        if (oms_mono_ms() >= next_rescan) {
            r->cursor = 0;
            next_rescan = oms_mono_ms() + RELAY_RESCAN_MS;
        }
        int rows = 0;
        oms_status s = relay_round(r, &rows);
        if (s == OMS_OK && rows == 0 && notified && r->cursor != 0) {
            r->cursor = 0; /* a commit landed behind the cursor */
            s = relay_round(r, &rows);
        }
        relay_housekeeping(r, &next_backlog, &next_prune);
        if (s != OMS_OK) {
            oms_sleep_ms(500, NULL);
            continue;
        }
        if (rows == RELAY_BATCH_N)
            continue;
        if (stopping)
            break; /* drained */
        notified = relay_wait(r, 1000);
    }
    PQfinish(r->conn);
    r->conn = NULL;
    return NULL;
}

oms_status outbox_relay_start(outbox_relay **out, const char *dsn, const char *schema, js_conn *js,
                              metrics *m, int64_t inbox_retention_ms)
{
    outbox_relay *r = calloc(1, sizeof *r);
    if (r == NULL)
        return OMS_ENOMEM;
    r->dsn = dsn;
    r->schema = schema;
    r->js = js;
    r->m = m;
    r->inbox_retention_ms = inbox_retention_ms;
    metrics_counter_declare(m, "oms_events_published_total",
                            "Events published from the outbox, by subject and result");
    metrics_gauge_declare(m, "oms_outbox_backlog", "Events waiting in the outbox");
    if (pthread_create(&r->thread, NULL, relay_main, r) != 0) {
        free(r);
        return OMS_ENOMEM;
    }
    *out = r;
    return OMS_OK;
}

void outbox_relay_stop(outbox_relay *r, int64_t drain_ms)
{
    if (r == NULL)
        return;
    r->drain_deadline_ms = oms_mono_ms() + drain_ms;
    atomic_store(&r->stop, 1);
    pthread_join(r->thread, NULL);
    free(r);
}

long outbox_relay_backlog(outbox_relay *r)
{
    return atomic_load(&r->backlog);
}
