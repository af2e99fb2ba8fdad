/*
 * consumer.c - the PostgreSQL applier every service's consumers use, plugged
 * into the pull-consumer core (lib/pullsub); what a message must pass before
 * it gets here is lib/consumer_msg's. Dead letters never send PostgreSQL a
 * byte of the message as text: text columns get a printable form built here,
 * the message's own bytes go as hex into bytea, so the insert cannot be
 * refused for what a message carries.
 */
#include "consumer.h"

#include "js.h"
#include "log.h"
#include "metrics.h"
#include "pg.h"
#include "pullsub.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TALLY_MAX 32
#define TALLY_LABELS_LEN 160
#define RECENT_ERRORS 16

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

/* The PostgreSQL applier of one consumer; the fetch loop is c->ps's. */
struct consumer {
    const consumer_spec *spec;
    const consumer_env *env;
    pullsub *ps;  /* read by the caller's thread only */
    PGconn *conn; /* used by ps's thread only */
    outbox_batch outbox;
    struct consumer_tally tally;
    char last_error[CONSUMER_REASON_LEN];
    /* Why the last few nak'ed messages failed, for the reason of a delivery
     * past the last attempt (a nak'ed message can come back overdue when
     * PostgreSQL went away on its last attempt). */
    struct {
        char event_id[CONSUMER_EVENT_ID_LEN];
        char error[192];
    } recent[RECENT_ERRORS];
    size_t recent_next;
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

/* ---- headers as stored in dead letters ---------------------------------- */

/* Calls fn for every (key, value) of m, in nats.c's order. */
static void headers_each(natsMsg *m, void (*fn)(void *arg, const char *key, const char *value),
                         void *arg)
{
    const char **keys = NULL, **values = NULL;
    int nkeys = 0, nvalues = 0;
    if (m == NULL || natsMsgHeader_Keys(m, &keys, &nkeys) != NATS_OK)
        return;
    for (int k = 0; k < nkeys; k++) {
        if (natsMsgHeader_Values(m, keys[k], &values, &nvalues) != NATS_OK)
            continue;
        for (int v = 0; v < nvalues; v++)
            fn(arg, keys[k], values[v]);
        free((void *)values);
    }
    free((void *)keys);
}

typedef struct hdr_buf {
    char *data;
    size_t len, cap;
    bool failed;
    bool cut; /* headers_text: a line did not fit and "...\n" ends it */
} hdr_buf;

static void buf_put(hdr_buf *b, const char *bytes, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (d == NULL) {
            b->failed = true;
            return;
        }
        b->data = d, b->cap = cap;
    }
    memcpy(b->data + b->len, bytes, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void raw_line(void *arg, const char *key, const char *value)
{
    buf_put(arg, key, strlen(key));
    buf_put(arg, ": ", 2);
    buf_put(arg, value, strlen(value));
    buf_put(arg, "\r\n", 2);
}

#define HEADERS_TEXT_LEN 4096

static void text_line(void *arg, const char *key, const char *value)
{
    hdr_buf *b = arg;
    char k[CONSUMER_HEADER_MAX_BYTES], v[CONSUMER_HEADER_MAX_BYTES];
    consumer_printable(key, strlen(key), k, sizeof k);
    consumer_printable(value, strlen(value), v, sizeof v);
    if (b->cut || b->len + strlen(k) + strlen(v) + 3 + 4 >= HEADERS_TEXT_LEN) {
        if (!b->cut)
            buf_put(b, "...\n", 4); /* the bound keeps room for it */
        b->cut = true;
        return;
    }
    buf_put(b, k, strlen(k));
    buf_put(b, ": ", 2);
    buf_put(b, v, strlen(v));
    buf_put(b, "\n", 1);
}

/* The NATS header block of m as nats.c decoded it (malloc'd, *len set). */
static char *headers_raw(natsMsg *m, size_t *len)
{
    hdr_buf b = {0};
    buf_put(&b, "NATS/1.0\r\n", 10);
    headers_each(m, raw_line, &b);
    buf_put(&b, "\r\n", 2);
    if (b.failed) {
        free(b.data);
        return NULL;
    }
    *len = b.len;
    return b.data;
}

/* "Key: value\n" lines, printable, at most HEADERS_TEXT_LEN bytes (malloc'd). */
static char *headers_text(natsMsg *m)
{
    hdr_buf b = {0};
    buf_put(&b, "", 0);
    headers_each(m, text_line, &b);
    if (b.failed) {
        free(b.data);
        return NULL;
    }
    return b.data;
}

/* Sets the headers of m from a stored header block; false when it is not one. */
static bool headers_from_raw(natsMsg *m, const char *raw, size_t len)
{
    const char *p = raw, *end = raw + len;
    const char *eol = memchr(p, '\n', len);
    if (len < 12 || memcmp(raw, "NATS/1.0", 8) != 0 || eol == NULL)
        return false;
    for (p = eol + 1; p < end && !(end - p >= 2 && p[0] == '\r' && p[1] == '\n'); p = eol + 1) {
        eol = memchr(p, '\n', (size_t)(end - p));
        const char *colon = memchr(p, ':', (size_t)(end - p));
        if (eol == NULL || eol == p || eol[-1] != '\r' || colon == NULL || colon > eol)
            return false;
        const char *v = colon + 1 < eol - 1 && colon[1] == ' ' ? colon + 2 : colon + 1;
        char *key = strndup(p, (size_t)(colon - p));
        char *value = strndup(v, (size_t)(eol - 1 - v));
        natsStatus st = key && value ? natsMsgHeader_Add(m, key, value) : NATS_NO_MEMORY;
        free(key);
        free(value);
        if (st != NATS_OK)
            return false;
    }
    return true;
}

/* ---- one transaction ------------------------------------------------- */

static int cmp_event_id(const void *a, const void *b)
{
    const oms_msg *const *x = a, *const *y = b;
    return strcmp((*x)->event_id, (*y)->event_id);
}

/* Event id order, then position in the batch: the first copy sorts first. */
static int cmp_event_id_then_pos(const void *a, const void *b)
{
    const oms_msg *const *x = a, *const *y = b;
    int d = strcmp((*x)->event_id, (*y)->event_id);
    if (d != 0)
        return d;
    return (*x < *y) ? -1 : (*x > *y);
}

/* Records the batch's event ids in the inbox and marks the ones seen before. */
static oms_status inbox_filter(PGconn *conn, oms_msg *msgs, size_t n)
{
    pg_array ids;
    PGresult *res = NULL;
    oms_msg **sorted = calloc(n, sizeof *sorted);
    oms_status s = sorted ? OMS_OK : OMS_ENOMEM;

    pg_array_init(&ids);
    size_t m = 0;
    for (size_t i = 0; i < n && s == OMS_OK; i++) {
        if (msgs[i].invalid)
            continue;             /* no text to record: it goes to dead_letters only */
        msgs[i].duplicate = true; /* until the insert proves it new */
        sorted[m++] = &msgs[i];
        s = pg_array_add(&ids, msgs[i].event_id);
    }
    n = m;
    const char *params[] = {pg_array_literal(&ids)};
    if (s == OMS_OK && n > 0)
        s = pg_query(conn, "inbox insert",
                     /* Sorted: two processes given overlapping redeliveries
                      * take the inbox's index locks in the same order. */
                     "INSERT INTO inbox (event_id) SELECT e FROM unnest($1::text[]) AS e"
                     " ORDER BY e ON CONFLICT DO NOTHING RETURNING event_id",
                     1, params, PGRES_TUPLES_OK, &res);
    if (s != OMS_OK || n == 0)
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

/* The columns of one dead letter, each an array of text (bytea as hex). */
enum {
    DL_SUBJECT,
    DL_EVENT_ID,
    DL_HEADERS,
    DL_REASON,
    DL_SUBJECT_RAW,
    DL_EVENT_ID_RAW,
    DL_HEADERS_RAW,
    DL_PAYLOAD,
    DL_NCOLS
};

static oms_status add_hex(pg_cols *c, size_t col, const void *bytes, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *b = bytes;
    char *hex = malloc(len * 2 + 1);
    if (hex == NULL)
        return OMS_ENOMEM;
    for (size_t k = 0; k < len; k++)
        hex[2 * k] = digits[b[k] >> 4], hex[2 * k + 1] = digits[b[k] & 15];
    hex[len * 2] = '\0';
    oms_status s = pg_cols_text(c, col, hex);
    free(hex);
    return s;
}

static oms_status add_printable(pg_cols *c, size_t col, const char *text, size_t len, size_t bound)
{
    char *p = malloc(bound);
    if (p == NULL)
        return OMS_ENOMEM;
    oms_status s = pg_cols_text(c, col, consumer_printable(text, len, p, bound));
    free(p);
    return s;
}

/* Adds m's row: printable forms for people, raw bytes for a replay. */
static oms_status dead_letter_row(pg_cols *c, const oms_msg *m)
{
    size_t hraw_len = 0;
    const char *id = oms_msg_raw_event_id(m);
    char *htext = headers_text(m->nmsg), *hraw = headers_raw(m->nmsg, &hraw_len);
    oms_status s = htext != NULL && hraw != NULL ? OMS_OK : OMS_ENOMEM;
    if (s == OMS_OK)
        s = add_printable(c, DL_SUBJECT, m->subject, strlen(m->subject),
                          CONSUMER_SUBJECT_MAX_BYTES + 64);
    if (s == OMS_OK)
        s = add_printable(c, DL_EVENT_ID, id, strlen(id), 2 * CONSUMER_EVENT_ID_LEN);
    if (s == OMS_OK)
        s = pg_cols_text(c, DL_HEADERS, htext); /* printable already */
    if (s == OMS_OK)
        s = add_printable(c, DL_REASON, m->reason, strlen(m->reason), 2 * CONSUMER_REASON_LEN);
    if (s == OMS_OK)
        s = add_hex(c, DL_SUBJECT_RAW, m->subject, strlen(m->subject));
    if (s == OMS_OK)
        s = add_hex(c, DL_EVENT_ID_RAW, id, strlen(id));
    if (s == OMS_OK)
        s = add_hex(c, DL_HEADERS_RAW, hraw, hraw_len);
    if (s == OMS_OK)
        s = add_hex(c, DL_PAYLOAD, m->data, m->len);
    free(htext);
    free(hraw);
    return s;
}

/* Only printable text and hex reach PostgreSQL: nothing the message carries
 * can make this statement fail. */
static oms_status dead_letter_insert(PGconn *conn, oms_msg *msgs, size_t n, size_t *count)
{
    pg_cols c;
    oms_status s = OMS_OK;
    *count = 0;
    pg_cols_init(&c, DL_NCOLS);
    for (size_t i = 0; i < n && s == OMS_OK; i++) {
        if (!msgs[i].rejected || msgs[i].duplicate)
            continue;
        s = dead_letter_row(&c, &msgs[i]);
        (*count)++;
    }
    if (s == OMS_OK && *count > 0)
        s = pg_cols_query(
            conn, "dead letter insert",
            "INSERT INTO dead_letters (subject, event_id, headers, reason, subject_raw,"
            " event_id_raw, headers_raw, payload)"
            " SELECT s, e, h, r, decode(sr, 'hex'), decode(er, 'hex'), decode(hr, 'hex'),"
            " decode(p, 'hex') FROM unnest($1::text[], $2::text[], $3::text[],"
            " $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])"
            " AS t(s, e, h, r, sr, er, hr, p)",
            &c, PGRES_COMMAND_OK, NULL);
    pg_cols_fini(&c);
    return s;
}

/* The one place an apply function's status is read. Running out of memory
 * is this process's trouble, not the event's: it is retried like a database
 * that went away, never dead-lettered as a refusal. */
static oms_status apply_call(const consumer_spec *spec, consumer_batch *b)
{
    oms_status s = spec->apply(spec->ctx, b);
    return s == OMS_ENOMEM ? OMS_ETRANSIENT : s;
}

/* What went wrong, for the log and the reason of a last attempt: PostgreSQL's
 * message, or the status the apply function returned. */
static void remember_error(consumer *c, oms_status s)
{
    const char *pq = PQerrorMessage(c->conn);
    if (pq == NULL || *pq == '\0')
        snprintf(c->last_error, sizeof c->last_error, "apply: %s", oms_strstatus(s));
    else
        snprintf(c->last_error, sizeof c->last_error, "%s", pq);
    c->last_error[strcspn(c->last_error, "\n")] = '\0';
}

/* The inbox step of a batch. A CONSUMER_DEDUPE_BY_STATE durable records no
 * row: its effect is keyed by the domain (unique key, status guard), so a
 * redelivery applies as a no-op and emits no event; every message is new. */
static oms_status inbox_step(const consumer *c, oms_msg *msgs, size_t n)
{
    if (c->spec->dedupe != CONSUMER_DEDUPE_BY_STATE)
        return inbox_filter(c->conn, msgs, n);
    oms_msg **sorted = calloc(n ? n : 1, sizeof *sorted);
    if (sorted == NULL)
        return OMS_ENOMEM;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        msgs[i].duplicate = false;
        if (!msgs[i].invalid)
            sorted[m++] = &msgs[i];
    }
    /* The same id twice in one fetch (a redelivery overtaking the ack) is
     * still skipped, as the inbox would: the effect need not cope with two
     * copies inside one statement. Stable order keeps the first copy. */
    qsort(sorted, m, sizeof *sorted, cmp_event_id_then_pos);
    for (size_t k = 1; k < m; k++)
        if (strcmp(sorted[k - 1]->event_id, sorted[k]->event_id) == 0)
            sorted[k]->duplicate = true;
    free(sorted);
    return OMS_OK;
}

/* Applies msgs[0..n) in one transaction. On failure the transaction is rolled
 * back and c->last_error says why. */
static oms_status apply_tx(consumer *c, oms_msg *msgs, size_t n, size_t *dead)
{
    consumer_batch b = {c->conn, msgs, n, &c->outbox, c->env->schema, &c->tally};
    oms_status s;
    *dead = 0;
    c->tally.m = c->env->m;
    c->tally.n = 0;
    pgcopy_reset(&c->outbox.rows);
    /* Every applier's statements are keyed by the batch's ids. */
    if ((s = pg_exec(c->conn, "BEGIN; " PG_KEYED_PLANS)) != OMS_OK)
        goto fail;
    if ((s = inbox_step(c, msgs, n)) != OMS_OK)
        goto fail;
    if ((s = apply_call(c->spec, &b)) != OMS_OK)
        goto fail;
    if ((s = dead_letter_insert(c->conn, msgs, n, dead)) != OMS_OK ||
        (s = outbox_batch_flush(&c->outbox, c->conn)) != OMS_OK ||
        (s = pg_exec(c->conn, "COMMIT")) != OMS_OK)
        goto fail;
    tally_publish(&c->tally);
    return OMS_OK;
fail:
    remember_error(c, s);
    pg_rollback(c->conn);
    return s;
}

/* ---- the applier: one PostgreSQL transaction per batch ------------------- */

static void settle(pullsub *ps, oms_msg *msgs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (msgs[i].rejected && !msgs[i].duplicate)
            pullsub_dead_letter(ps, &msgs[i]);
        else
            pullsub_ack(ps, &msgs[i], msgs[i].duplicate ? "duplicate" : "applied");
    }
}

static void remember_failure(consumer *c, const oms_msg *m)
{
    size_t k = c->recent_next++ % RECENT_ERRORS;
    snprintf(c->recent[k].event_id, sizeof c->recent[k].event_id, "%s", m->event_id);
    snprintf(c->recent[k].error, sizeof c->recent[k].error, "%.191s", c->last_error);
}

/* pullsub_ops.earlier_failure: what the last nak of m said. */
static const char *recent_failure(void *ctx, const oms_msg *m)
{
    const consumer *c = ctx;
    for (size_t k = 0; k < RECENT_ERRORS; k++)
        if (c->recent[k].event_id[0] != '\0' && strcmp(c->recent[k].event_id, m->event_id) == 0)
            return c->recent[k].error;
    return NULL;
}

static void nak(consumer *c, pullsub *ps, oms_msg *m)
{
    if (!m->invalid)
        remember_failure(c, m);
    pullsub_nak(ps, m);
}

/* Records m alone as a dead letter with reason (a transaction of its own). */
static oms_status dead_letter_alone(consumer *c, oms_msg *m)
{
    size_t dead = 0;
    oms_status s;
    m->rejected = true;
    m->duplicate = false;
    if ((s = pg_exec(c->conn, "BEGIN")) == OMS_OK && (s = inbox_filter(c->conn, m, 1)) == OMS_OK &&
        (s = dead_letter_insert(c->conn, m, 1, &dead)) == OMS_OK)
        s = pg_exec(c->conn, "COMMIT");
    if (s != OMS_OK) {
        remember_error(c, s);
        pg_rollback(c->conn);
    }
    return s;
}

/* The batch failed while the database is up: apply each message on its own.
 * The one PostgreSQL still refuses alone is dead-lettered at once; one that
 * fails transiently is nak'ed alone, or dead-lettered on its last attempt. */
static oms_status isolate(consumer *c, pullsub *ps, oms_msg *msgs, size_t n,
                          oms_status batch_status)
{
    int max_attempts = pullsub_max_attempts(ps);
    oms_status failed = OMS_OK;
    for (size_t i = 0; i < n; i++) {
        size_t dead = 0;
        /* A batch of one has just been tried alone. */
        oms_status s = n == 1           ? batch_status
                       : pg_ok(c->conn) ? apply_tx(c, &msgs[i], 1, &dead)
                                        : OMS_ETRANSIENT;
        if (s == OMS_EDB) {
            snprintf(msgs[i].reason, sizeof msgs[i].reason, "database refused the event: %.400s",
                     c->last_error);
            s = dead_letter_alone(c, &msgs[i]);
        } else if (s != OMS_OK && pg_ok(c->conn) && msgs[i].deliveries >= max_attempts) {
            snprintf(msgs[i].reason, sizeof msgs[i].reason,
                     "not applied after %d deliveries: %.400s", msgs[i].deliveries, c->last_error);
            s = dead_letter_alone(c, &msgs[i]);
        }
        if (s == OMS_OK) {
            settle(ps, &msgs[i], 1);
            continue;
        }
        failed = s;
        nak(c, ps, &msgs[i]);
    }
    return failed;
}

static void nak_all(consumer *c, pullsub *ps, oms_msg *msgs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        nak(c, ps, &msgs[i]);
}

/* pullsub_ops.batch: the whole batch in one transaction; on failure, each
 * message alone while the database is up, else all of them nak'ed. */
static void apply_batch(void *ctx, pullsub *ps, oms_msg *msgs, size_t n)
{
    consumer *c = ctx;
    size_t dead = 0;
    oms_status s = apply_tx(c, msgs, n, &dead);
    if (s == OMS_OK)
        settle(ps, msgs, n);
    else if (pg_ok(c->conn))
        s = isolate(c, ps, msgs, n, s);
    else
        nak_all(c, ps, msgs, n); /* the database is gone: no message is at fault */
    if (s != OMS_OK) {
        log_warn("batch not applied, will retry", "consumer", c->spec->pull.name, "error",
                 c->last_error, NULL);
        pullsub_count_retries(ps, 1);
    }
}

/* pullsub_ops.connect */
static oms_status pg_connect_store(void *ctx)
{
    consumer *c = ctx;
    if (pg_ok(c->conn))
        return OMS_OK;
    PQfinish(c->conn);
    c->conn = NULL;
    return pg_connect(&c->conn, c->env->dsn, c->env->schema, c->spec->pull.name);
}

/* pullsub_ops.connected */
static bool pg_connected(void *ctx)
{
    const consumer *c = ctx;
    return pg_ok(c->conn);
}

static const pullsub_ops pg_applier = {
    .connect = pg_connect_store,
    .connected = pg_connected,
    .batch = apply_batch,
    .earlier_failure = recent_failure,
};

oms_status consumer_start(consumer **out, const consumer_spec *spec, const consumer_env *env)
{
    consumer *c = calloc(1, sizeof *c);
    if (c == NULL)
        return OMS_ENOMEM;
    c->spec = spec;
    c->env = env;
    outbox_batch_init(&c->outbox);
    oms_status s = pullsub_start(&c->ps, &spec->pull, env->js, env->m, &pg_applier, c);
    if (s != OMS_OK) {
        outbox_batch_fini(&c->outbox);
        free(c);
        return s;
    }
    *out = c;
    return OMS_OK;
}

void consumer_stop(consumer *c)
{
    if (c == NULL)
        return;
    pullsub_stop(c->ps);
    PQfinish(c->conn);
    outbox_batch_fini(&c->outbox);
    free(c);
}

bool consumer_ready(consumer *c)
{
    return c != NULL && pullsub_ready(c->ps);
}

/* A natsMsg carrying exactly the stored bytes, checked at the boundary. */
static oms_status replay_msg(const consumer_raw *raw, oms_msg *msg,
                             char reason_out[CONSUMER_REASON_LEN])
{
    natsMsg *nm = NULL;
    if (raw->len > INT32_MAX ||
        natsMsg_Create(&nm, raw->subject, NULL, raw->data, (int)raw->len) != NATS_OK)
        return OMS_ENOMEM;
    memset(msg, 0, sizeof *msg);
    msg->nmsg = nm;
    if (!headers_from_raw(nm, raw->headers, raw->headers_len)) {
        snprintf(reason_out, CONSUMER_REASON_LEN, "stored headers are not a NATS header block");
        return OMS_EINVAL;
    }
    consumer_msg_init(msg, nm);
    if (msg->invalid) {
        snprintf(reason_out, CONSUMER_REASON_LEN, "%s", msg->reason);
        return OMS_EINVAL;
    }
    /* Without Nats-Msg-Id the id was "<stream>:<seq>", which only the stored
     * row still knows. */
    if (oms_msg_header(msg, JS_HDR_MSG_ID) == NULL && raw->event_id != NULL) {
        if (strlen(raw->event_id) >= sizeof msg->event_id) {
            snprintf(reason_out, CONSUMER_REASON_LEN, "stored event id is too long");
            return OMS_EINVAL;
        }
        snprintf(msg->event_id, sizeof msg->event_id, "%s", raw->event_id);
    }
    return OMS_OK;
}

oms_status consumer_replay(const consumer_spec *spec, const consumer_env *env, PGconn *conn,
                           const consumer_raw *raw, char reason_out[CONSUMER_REASON_LEN])
{
    outbox_batch ob;
    oms_msg msg;
    oms_status s;
    /* On the heap: a tally is too big for an HTTP thread's stack, and retries
     * run at once on the HTTP pool's connections, so none may be shared. */
    struct consumer_tally *tally = calloc(1, sizeof *tally);

    memset(&msg, 0, sizeof msg);
    outbox_batch_init(&ob);
    if (tally == NULL) {
        s = OMS_ENOMEM;
        goto out;
    }
    if ((s = replay_msg(raw, &msg, reason_out)) != OMS_OK)
        goto out;
    tally->m = env->m;
    consumer_batch b = {conn, &msg, 1, &ob, env->schema, tally};
    s = apply_call(spec, &b);
    if (s == OMS_OK && msg.rejected) {
        snprintf(reason_out, CONSUMER_REASON_LEN, "%s", msg.reason);
        s = OMS_EINVAL;
    } else if (s == OMS_OK) {
        s = outbox_batch_flush(&ob, conn);
    }
    if (s == OMS_OK)
        tally_publish(tally); /* the caller commits next; a failed COMMIT over-counts one */
out:
    free(tally);
    outbox_batch_fini(&ob);
    natsMsg_Destroy(msg.nmsg);
    return s;
}

oms_status consumer_dead_letters_insert(PGconn *conn, oms_msg *msgs, size_t n, size_t *count)
{
    return dead_letter_insert(conn, msgs, n, count);
}
