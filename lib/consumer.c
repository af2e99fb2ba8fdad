/*
 * consumer.c - the batch consumer loop shared by every service.
 */
#include "consumer.h"

#include "js.h"
#include "log.h"
#include "metrics.h"
#include "pg.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAK_DELAY_MS 1000
#define MAX_BACKOFF_MS 5000
#define TALLY_MAX 32
#define TALLY_LABELS_LEN 160

/* Counter increments of one transaction, published only after its COMMIT. */
struct consumer_tally {
    struct metrics *m;
    size_t n;
    struct {
        const char *name; /* a string literal of the service: borrowed */
        char labels[TALLY_LABELS_LEN];
        double v;
    } add[TALLY_MAX];
};

struct consumer {
    const consumer_spec *spec;
    const consumer_env *env;
    pthread_t thread;
    atomic_int stop;
    atomic_int ready;
    PGconn *conn;
    natsSubscription *sub;
    outbox_batch outbox;
    struct consumer_tally tally;
    char labels[96];             /* consumer="<name>" */
    char last_error[CONSUMER_REASON_LEN];
};

void consumer_reject(consumer_batch *b, size_t i, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->msgs[i].reason, sizeof b->msgs[i].reason, fmt, ap);
    va_end(ap);
    b->msgs[i].rejected = true;
}

void consumer_count(consumer_batch *b, const char *name, const char *labels, double v)
{
    struct consumer_tally *t = b->tally;
    for (size_t i = 0; i < t->n; i++) {
        if (strcmp(t->add[i].name, name) == 0 && strcmp(t->add[i].labels, labels) == 0) {
            t->add[i].v += v;
            return;
        }
    }
    if (t->n == TALLY_MAX || strlen(labels) >= TALLY_LABELS_LEN) {
        metrics_counter_add(t->m, name, labels, v); /* more series than a batch should touch */
        return;
    }
    t->add[t->n].name = name;
    snprintf(t->add[t->n].labels, TALLY_LABELS_LEN, "%s", labels);
    t->add[t->n].v = v;
    t->n++;
}

static void tally_publish(struct consumer_tally *t)
{
    for (size_t i = 0; i < t->n; i++)
        metrics_counter_add(t->m, t->add[i].name, t->add[i].labels, t->add[i].v);
    t->n = 0;
}

const char *oms_msg_header(const oms_msg *m, const char *key)
{
    const char *v = NULL;
    if (m->nmsg == NULL || natsMsgHeader_Get(m->nmsg, key, &v) != NATS_OK)
        return NULL;
    return v;
}

bool consumer_subject_matches(const char *filter, const char *subject)
{
    if (filter == NULL)
        return true;
    while (*filter && *subject) {
        if (filter[0] == '>' && filter[1] == '\0')
            return true;
        size_t ft = strcspn(filter, "."), st = strcspn(subject, ".");
        if (!(ft == 1 && filter[0] == '*') && (ft != st || strncmp(filter, subject, ft) != 0))
            return false;
        filter += ft;
        subject += st;
        if (*filter != *subject)
            return false;
        if (*filter == '.')
            filter++, subject++;
    }
    return *filter == '\0' && *subject == '\0';
}

/* ---- headers as text, for dead letters ------------------------------- */

static char *headers_to_text(natsMsg *m)
{
    const char **keys = NULL;
    int n = 0;
    size_t cap = 1, len = 0;
    if (natsMsgHeader_Keys(m, &keys, &n) != NATS_OK)
        return strdup("");
    for (int i = 0; i < n; i++) {
        const char *v = NULL;
        natsMsgHeader_Get(m, keys[i], &v);
        cap += strlen(keys[i]) + (v ? strlen(v) : 0) + 3;
    }
    char *out = malloc(cap);
    for (int i = 0; out != NULL && i < n; i++) {
        const char *v = NULL;
        natsMsgHeader_Get(m, keys[i], &v);
        len += (size_t)snprintf(out + len, cap - len, "%s: %s\n", keys[i], v ? v : "");
    }
    if (out != NULL)
        out[len] = '\0';
    free((void *)keys);
    return out;
}

static void headers_from_text(natsMsg *m, const char *text)
{
    char *copy = strdup(text ? text : "");
    char *save = NULL;
    for (char *line = copy ? strtok_r(copy, "\n", &save) : NULL; line;
         line = strtok_r(NULL, "\n", &save)) {
        char *colon = strstr(line, ": ");
        if (colon == NULL)
            continue;
        *colon = '\0';
        natsMsgHeader_Set(m, line, colon + 2);
    }
    free(copy);
}

/* ---- one transaction ------------------------------------------------- */

static int cmp_event_id(const void *a, const void *b)
{
    const oms_msg *const *x = a, *const *y = b;
    return strcmp((*x)->event_id, (*y)->event_id);
}

/* Records the batch's event ids in the inbox and marks the ones seen before. */
static oms_status inbox_filter(PGconn *conn, oms_msg *msgs, size_t n)
{
    pg_array ids;
    PGresult *res = NULL;
    oms_msg **sorted = calloc(n, sizeof *sorted);
    oms_status s = sorted ? OMS_OK : OMS_ENOMEM;

    pg_array_init(&ids);
    for (size_t i = 0; i < n && s == OMS_OK; i++) {
        msgs[i].duplicate = true; /* until the insert proves it new */
        sorted[i] = &msgs[i];
        s = pg_array_add(&ids, msgs[i].event_id);
    }
    const char *params[] = {pg_array_literal(&ids)};
    if (s == OMS_OK)
        s = pg_query(conn, "inbox insert",
                     /* Sorted: two processes given overlapping redeliveries
                      * take the inbox's index locks in the same order. */
                     "INSERT INTO inbox (event_id) SELECT e FROM unnest($1::text[]) AS e"
                     " ORDER BY e ON CONFLICT DO NOTHING RETURNING event_id",
                     1, params, PGRES_TUPLES_OK, &res);
    if (s != OMS_OK)
        goto out;
    qsort(sorted, n, sizeof *sorted, cmp_event_id);
    for (int r = 0; r < PQntuples(res); r++) {
        oms_msg key, *kp = &key;
        snprintf(key.event_id, sizeof key.event_id, "%s", PQgetvalue(res, r, 0));
        oms_msg **hit = bsearch(&kp, sorted, n, sizeof *sorted, cmp_event_id);
        /* The same id twice in one batch: only the first copy is new. */
        while (hit > sorted && strcmp((*(hit - 1))->event_id, key.event_id) == 0)
            hit--;
        if (hit != NULL)
            (*hit)->duplicate = false;
    }
out:
    PQclear(res);
    pg_array_fini(&ids);
    free(sorted);
    return s;
}

static oms_status dead_letter_insert(PGconn *conn, oms_msg *msgs, size_t n, size_t *count)
{
    pg_array subj, ids, hdrs, payloads, reasons;
    oms_status s = OMS_OK;
    *count = 0;
    pg_array_init(&subj), pg_array_init(&ids), pg_array_init(&hdrs);
    pg_array_init(&payloads), pg_array_init(&reasons);
    for (size_t i = 0; i < n && s == OMS_OK; i++) {
        if (!msgs[i].rejected || msgs[i].duplicate)
            continue;
        char *h = headers_to_text(msgs[i].nmsg);
        char *hex = malloc(msgs[i].len * 2 + 1);
        if (h == NULL || hex == NULL) {
            s = OMS_ENOMEM;
        } else {
            for (size_t k = 0; k < msgs[i].len; k++)
                snprintf(hex + 2 * k, 3, "%02x", ((const unsigned char *)msgs[i].data)[k]);
            hex[msgs[i].len * 2] = '\0';
            if (pg_array_add(&subj, msgs[i].subject) || pg_array_add(&ids, msgs[i].event_id) ||
                pg_array_add(&hdrs, h) || pg_array_add(&payloads, hex) ||
                pg_array_add(&reasons, msgs[i].reason))
                s = OMS_ENOMEM;
            (*count)++;
        }
        free(h);
        free(hex);
    }
    const char *params[] = {pg_array_literal(&subj), pg_array_literal(&ids),
                            pg_array_literal(&hdrs), pg_array_literal(&payloads),
                            pg_array_literal(&reasons)};
    if (s == OMS_OK && *count > 0)
        s = pg_query(conn, "dead letter insert",
                     "INSERT INTO dead_letters (subject, event_id, headers, payload, reason)"
                     " SELECT s, e, h, decode(p, 'hex'), r FROM unnest($1::text[], $2::text[],"
                     " $3::text[], $4::text[], $5::text[]) AS t(s, e, h, p, r)",
                     5, params, PGRES_COMMAND_OK, NULL);
    pg_array_fini(&subj), pg_array_fini(&ids), pg_array_fini(&hdrs);
    pg_array_fini(&payloads), pg_array_fini(&reasons);
    return s;
}

static void remember_error(consumer *c)
{
    snprintf(c->last_error, sizeof c->last_error, "%s", PQerrorMessage(c->conn));
    c->last_error[strcspn(c->last_error, "\n")] = '\0';
}

static void rollback(PGconn *conn)
{
    PGresult *r = PQexec(conn, "ROLLBACK");
    PQclear(r);
}

/* Applies msgs[0..n) in one transaction. On failure the transaction is rolled
 * back and c->last_error holds PostgreSQL's message. */
static oms_status apply_tx(consumer *c, oms_msg *msgs, size_t n, size_t *dead)
{
    consumer_batch b = {c->conn, msgs, n, &c->outbox, c->env->schema, &c->tally};
    oms_status s;
    *dead = 0;
    c->tally.m = c->env->m;
    c->tally.n = 0;
    pgcopy_reset(&c->outbox.rows);
    if ((s = pg_exec(c->conn, "BEGIN")) != OMS_OK)
        goto fail;
    if ((s = inbox_filter(c->conn, msgs, n)) != OMS_OK)
        goto fail;
    if ((s = c->spec->apply(c->spec->ctx, &b)) != OMS_OK)
        goto fail;
    if ((s = dead_letter_insert(c->conn, msgs, n, dead)) != OMS_OK ||
        (s = outbox_batch_flush(&c->outbox, c->conn)) != OMS_OK ||
        (s = pg_exec(c->conn, "COMMIT")) != OMS_OK)
        goto fail;
    tally_publish(&c->tally);
    return OMS_OK;
fail:
    remember_error(c);
    rollback(c->conn);
    return s;
}

/* ---- the loop -------------------------------------------------------- */

static void count(consumer *c, const char *subject, const char *result, double v)
{
    char labels[192];
    snprintf(labels, sizeof labels, "subject=\"%s\",result=\"%s\"", subject, result);
    metrics_counter_add(c->env->m, "oms_events_consumed_total", labels, v);
}

static void settle(consumer *c, oms_msg *msgs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (msgs[i].rejected && !msgs[i].duplicate) {
            log_warn("message dead-lettered", "consumer", c->spec->name, "subject",
                     msgs[i].subject, "event_id", msgs[i].event_id, "reason", msgs[i].reason,
                     NULL);
            natsMsg_Term(msgs[i].nmsg, NULL);
            count(c, msgs[i].subject, "dead_letter", 1);
            metrics_counter_add(c->env->m, "oms_dead_letters_total", "", 1);
        } else {
            natsMsg_Ack(msgs[i].nmsg, NULL);
            count(c, msgs[i].subject, msgs[i].duplicate ? "duplicate" : "applied", 1);
        }
    }
}

/* The batch failed for a reason that is not transient: apply each message on
 * its own; the one PostgreSQL still refuses alone is dead-lettered. */
static oms_status isolate(consumer *c, oms_msg *msgs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t dead = 0;
        oms_status s = apply_tx(c, &msgs[i], 1, &dead);
        if (s == OMS_EDB) {
            msgs[i].rejected = true;
            msgs[i].duplicate = false;
            snprintf(msgs[i].reason, sizeof msgs[i].reason, "database refused the event: %.400s",
                     c->last_error);
            if ((s = pg_exec(c->conn, "BEGIN")) == OMS_OK &&
                (s = inbox_filter(c->conn, &msgs[i], 1)) == OMS_OK &&
                (s = dead_letter_insert(c->conn, &msgs[i], 1, &dead)) == OMS_OK)
                s = pg_exec(c->conn, "COMMIT");
            if (s != OMS_OK)
                rollback(c->conn);
        }
        if (s != OMS_OK)
            return s;
        settle(c, &msgs[i], 1);
    }
    return OMS_OK;
}

static void nak_all(oms_msg *msgs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        natsMsg_NakWithDelay(msgs[i].nmsg, NAK_DELAY_MS, NULL);
}

/* What the durable still holds behind the batch's last message, and how long
 * ago the stream stored that message: the backlog dashboards and alerts
 * watch. From the message's own metadata, so it costs no request. */
static void observe_backlog(consumer *c, natsMsg *last)
{
    jsMsgMetaData *meta = NULL;
    if (last == NULL || natsMsg_GetMetaData(&meta, last) != NATS_OK)
        return;
    int64_t age_ms = oms_now_ms() - meta->Timestamp / 1000000;
    metrics_gauge_set(c->env->m, "oms_consumer_pending", c->labels, (double)meta->NumPending);
    metrics_gauge_set(c->env->m, "oms_consumer_lag_seconds", c->labels,
                      age_ms > 0 ? (double)age_ms / 1000.0 : 0);
    jsMsgMetaData_Destroy(meta);
}

static void process(consumer *c, natsMsgList *list)
{
    size_t n = (size_t)list->Count;
    oms_msg *msgs = calloc(n, sizeof *msgs);
    if (msgs == NULL)
        return; /* unacked: redelivered after ack_wait */
    for (size_t i = 0; i < n; i++) {
        oms_msg *m = &msgs[i];
        m->nmsg = list->Msgs[i];
        m->subject = natsMsg_GetSubject(m->nmsg);
        m->data = natsMsg_GetData(m->nmsg);
        m->len = (size_t)natsMsg_GetDataLength(m->nmsg);
        if (js_msg_event_id(m->nmsg, m->event_id, sizeof m->event_id) != OMS_OK)
            snprintf(m->event_id, sizeof m->event_id, "unknown");
    }
    int64_t t0 = oms_mono_ms();
    size_t dead = 0;
    oms_status s = apply_tx(c, msgs, n, &dead);
    if (s == OMS_OK)
        settle(c, msgs, n);
    else if (s == OMS_EDB)
        s = isolate(c, msgs, n);
    if (s != OMS_OK) {
        log_warn("batch not applied, will retry", "consumer", c->spec->name, "error",
                 c->last_error, NULL);
        metrics_counter_add(c->env->m, "oms_consumer_retries_total", "", 1);
        nak_all(msgs, n);
    }
    char labels[96];
    snprintf(labels, sizeof labels, "consumer=\"%s\"", c->spec->name);
    metrics_histogram_observe(c->env->m, "oms_batch_duration_seconds", labels,
                              (double)(oms_mono_ms() - t0) / 1000.0);
    free(msgs);
}

/* Makes sure we have a PostgreSQL connection and a bound subscription. */
static oms_status ensure_bound(consumer *c)
{
    oms_status s = OMS_OK;
    if (!pg_ok(c->conn)) {
        PQfinish(c->conn);
        c->conn = NULL;
        atomic_store(&c->ready, 0);
        if ((s = pg_connect(&c->conn, c->env->dsn, c->env->schema, c->spec->name)) != OMS_OK)
            return s;
    }
    if (c->sub == NULL) {
        s = js_pull_subscribe(c->env->js, c->spec->stream, c->spec->durable, c->spec->filter,
                              c->spec->ack_wait_ms, &c->sub);
        if (s != OMS_OK)
            return s;
        log_info("consumer bound", "consumer", c->spec->name, "stream", c->spec->stream,
                 "durable", c->spec->durable, NULL);
    }
    atomic_store(&c->ready, 1);
    return OMS_OK;
}

/* Drops the subscription so ensure_bound creates the durable again: after
 * repeated fetch errors the consumer may have been deleted (a stream
 * recreated by an operator), and fetching from it would fail forever. */
static void rebind(consumer *c)
{
    log_warn("fetch keeps failing, binding the consumer again", "consumer", c->spec->name, NULL);
    natsSubscription_Destroy(c->sub);
    c->sub = NULL;
    atomic_store(&c->ready, 0);
}

static void *consumer_main(void *arg)
{
    consumer *c = arg;
    int64_t backoff_ms = 100;
    int fetch_errors = 0;
    while (!atomic_load(&c->stop)) {
        if (ensure_bound(c) != OMS_OK) {
            oms_sleep_ms(backoff_ms, &c->stop);
            backoff_ms = backoff_ms * 2 > MAX_BACKOFF_MS ? MAX_BACKOFF_MS : backoff_ms * 2;
            continue;
        }
        natsMsgList list;
        oms_status s = js_fetch(c->sub, c->spec->batch_max, c->spec->wait_ms, &list);
        if (s != OMS_OK && ++fetch_errors >= 3) {
            rebind(c);
            fetch_errors = 0;
        }
        if (s != OMS_OK) {
            oms_sleep_ms(backoff_ms, &c->stop);
            backoff_ms = backoff_ms * 2 > MAX_BACKOFF_MS ? MAX_BACKOFF_MS : backoff_ms * 2;
            continue;
        }
        backoff_ms = 100;
        fetch_errors = 0;
        if (list.Count > 0) {
            process(c, &list);
            observe_backlog(c, list.Msgs[list.Count - 1]);
        } else {
            metrics_gauge_set(c->env->m, "oms_consumer_pending", c->labels, 0);
        }
        natsMsgList_Destroy(&list);
        if (!pg_ok(c->conn))
            atomic_store(&c->ready, 0);
    }
    return NULL;
}

oms_status consumer_start(consumer **out, const consumer_spec *spec, const consumer_env *env)
{
    consumer *c = calloc(1, sizeof *c);
    if (c == NULL)
        return OMS_ENOMEM;
    c->spec = spec;
    c->env = env;
    outbox_batch_init(&c->outbox);
    metrics_counter_declare(env->m, "oms_events_consumed_total",
                            "Events consumed, by subject and result (applied, duplicate, dead_letter)");
    metrics_counter_declare(env->m, "oms_dead_letters_total", "Messages sent to dead_letters");
    metrics_counter_declare(env->m, "oms_consumer_retries_total",
                            "Batches rolled back and redelivered after a transient failure");
    /* Both from 0, so that the first dead letter or retry is an increase that
     * rate()/increase() and the alert rules see, not a series that appears. */
    metrics_counter_add(env->m, "oms_dead_letters_total", "", 0);
    metrics_counter_add(env->m, "oms_consumer_retries_total", "", 0);
    metrics_histogram_declare(env->m, "oms_batch_duration_seconds",
                              "Time to apply and commit one fetched batch",
                              METRICS_SECONDS_BUCKETS, METRICS_SECONDS_BUCKETS_LEN);
    metrics_gauge_declare(env->m, "oms_consumer_pending",
                          "Messages of the stream not yet delivered to the consumer");
    metrics_gauge_declare(env->m, "oms_consumer_lag_seconds",
                          "Age of the last applied message when it was applied");
    snprintf(c->labels, sizeof c->labels, "consumer=\"%s\"", spec->name);
    metrics_gauge_set(env->m, "oms_consumer_pending", c->labels, 0);
    if (pthread_create(&c->thread, NULL, consumer_main, c) != 0) {
        outbox_batch_fini(&c->outbox);
        free(c);
        return OMS_ENOMEM;
    }
    *out = c;
    return OMS_OK;
}

void consumer_stop(consumer *c)
{
    if (c == NULL)
        return;
    atomic_store(&c->stop, 1);
    pthread_join(c->thread, NULL);
    if (c->sub != NULL) {
        natsSubscription_Unsubscribe(c->sub);
        natsSubscription_Destroy(c->sub);
    }
    PQfinish(c->conn);
    outbox_batch_fini(&c->outbox);
    free(c);
}

bool consumer_ready(consumer *c)
{
    return c != NULL && atomic_load(&c->ready);
}

oms_status consumer_replay(const consumer_spec *spec, const consumer_env *env, PGconn *conn,
                           const char *subject, const char *headers, const void *data,
                           size_t len, char reason_out[CONSUMER_REASON_LEN])
{
    natsMsg *nm = NULL;
    outbox_batch ob;
    oms_msg msg;
    oms_status s;

    if (len > INT32_MAX || natsMsg_Create(&nm, subject, NULL, data, (int)len) != NATS_OK)
        return OMS_ENOMEM;
    headers_from_text(nm, headers);
    memset(&msg, 0, sizeof msg);
    msg.nmsg = nm;
    msg.subject = natsMsg_GetSubject(nm);
    msg.data = natsMsg_GetData(nm);
    msg.len = len;
    js_msg_event_id(nm, msg.event_id, sizeof msg.event_id);
    outbox_batch_init(&ob);
    /* Static: a tally is too big for an HTTP thread's stack, and replays are
     * serialised by the caller's connection lock. */
    static struct consumer_tally tally;
    tally.m = env->m;
    tally.n = 0;
    consumer_batch b = {conn, &msg, 1, &ob, env->schema, &tally};
    s = spec->apply(spec->ctx, &b);
    if (s == OMS_OK && msg.rejected) {
        snprintf(reason_out, CONSUMER_REASON_LEN, "%s", msg.reason);
        s = OMS_EINVAL;
    } else if (s == OMS_OK) {
        s = outbox_batch_flush(&ob, conn);
    }
    if (s == OMS_OK)
        tally_publish(&tally); /* the caller commits next; a failed COMMIT over-counts one */
    outbox_batch_fini(&ob);
    natsMsg_Destroy(nm);
    return s;
}

oms_status consumer_dead_letters_insert(PGconn *conn, oms_msg *msgs, size_t n, size_t *count)
{
    return dead_letter_insert(conn, msgs, n, count);
}
