/*
 * trace.c - an order's events, read from the streams rather than from the
 * services' databases, so the trace shows what an integration sees.
 *
 * Subjects name the kind of event, not the order (order.created, not
 * order.created.ORD-1), so no subject filter or direct get can pick one
 * order's messages: each stream is read once through an ordered consumer
 * (ephemeral, flow-controlled, nothing left behind) and an event is kept
 * when its EventMeta.correlation_id or its order_id names the order. IMPORTS
 * is read last because import.completed is correlated by the import id,
 * which only the order's order.created tells.
 *
 * Causal order: an event comes after the event its causation_id names;
 * among events whose cause is already placed (or not in the trace), the
 * earliest occurred_at_ms goes first. payment.settled may be decided before
 * stock.reserved is (they travel on different streams), and the clock
 * alone would then print the cause after its effect.
 */
#include "trace.h"

#include "money.h"
#include "pbjson.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define READ_WAIT_MS 5000
#define MAX_IMPORTS 16

typedef struct stream_spec {
    const char *name;
    const char *filter;
} stream_spec;

static const stream_spec ORDER_STREAMS[] = {
    {"ORDERS", "order.>"},
    {"STOCK", "stock.>"},
    {"PAYMENTS", "payment.>"},
    {"REFUNDS", "refund.>"},
};
static const stream_spec IMPORT_STREAM = {"IMPORTS", "import.>"};

typedef struct trace_run {
    js_conn *c;
    const char *order_id;
    json_t *events;                   /* as read, before ordering */
    const char *imports[MAX_IMPORTS]; /* borrowed from events */
    size_t n_imports;
    bool removed; /* some stream has dropped messages (age or limits) */
    int64_t orders_max_age_ms;
    char *err;
} trace_run;

static const char *str_member(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

static int64_t int_member(const json_t *obj, const char *key)
{
    return (int64_t)json_integer_value(json_object_get(obj, key));
}

/* ---- summaries ------------------------------------------------------------ */

static void append(char *out, size_t out_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void append(char *out, size_t out_len, const char *fmt, ...)
{
    size_t used = strlen(out);
    if (used + 1 >= out_len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out + used, out_len - used, fmt, ap);
    va_end(ap);
}

static void append_money(char *out, size_t out_len, const char *label, const json_t *ev,
                         const char *key)
{
    char amount[64];
    money_format_currency(int_member(ev, key), str_member(ev, "currency"), amount, sizeof amount);
    append(out, out_len, "%s%s", label, amount);
}

static void append_lines(char *out, size_t out_len, const json_t *ev)
{
    const json_t *lines = json_object_get(ev, "lines");
    size_t n = json_array_size(lines);
    append(out, out_len, "%zu line%s", n, n == 1 ? "" : "s");
    for (size_t i = 0; i < n; i++) {
        const json_t *l = json_array_get(lines, i);
        append(out, out_len, "%s%s x%lld", i == 0 ? ": " : ", ", str_member(l, "sku"),
               (long long)int_member(l, "qty"));
    }
}

static void summary_payment(const json_t *ev, char *out, size_t out_len)
{
    const char *status = str_member(ev, "status");
    bool ok = strcmp(status, "PAYMENT_STATUS_SUCCEEDED") == 0;
    append(out, out_len, "%s ", ok ? "succeeded" : "failed");
    append_money(out, out_len, "", ev, "amount_cents");
    if (!ok)
        append(out, out_len, ": %s", str_member(ev, "reason"));
    if (*str_member(ev, "gateway_ref"))
        append(out, out_len, "; gateway ref %s", str_member(ev, "gateway_ref"));
}

static void summary_refund(const char *subject, const json_t *ev, char *out, size_t out_len)
{
    if (strcmp(subject, "refund.requested") == 0) {
        append(out, out_len, "key %s, ", str_member(ev, "idempotency_key"));
        char amount[64];
        money_format(int_member(ev, "amount_cents"), amount, sizeof amount);
        /* A request carries no currency: the order's is implied. */
        append(out, out_len, "%s",
               int_member(ev, "amount_cents") == 0 ? "everything left" : amount);
    } else if (strcmp(subject, "refund.processed") == 0) {
        append_money(out, out_len, "refunded ", ev, "amount_cents");
        append_money(out, out_len, ", total ", ev, "refunded_total_cents");
        if (*str_member(ev, "gateway_ref"))
            append(out, out_len, "; gateway ref %s", str_member(ev, "gateway_ref"));
    } else if (strcmp(subject, "order.refunded") == 0) {
        append(out, out_len, "%s, ", str_member(ev, "status"));
        append_money(out, out_len, "", ev, "amount_cents");
        append_money(out, out_len, " (refunded so far ", ev, "refunded_total_cents");
        append(out, out_len, ")");
    } else {
        append(out, out_len, "%s", str_member(ev, "reason"));
    }
}

void trace_summary(const char *subject, const json_t *ev, char *out, size_t out_len)
{
    out[0] = '\0';
    if (strcmp(subject, "order.created") == 0 || strcmp(subject, "stock.reserved") == 0 ||
        strcmp(subject, "stock.committed") == 0) {
        append_lines(out, out_len, ev);
        if (json_object_get(ev, "total_cents") != NULL)
            append_money(out, out_len, "; total ", ev, "total_cents");
    } else if (strcmp(subject, "payment.settled") == 0) {
        summary_payment(ev, out, out_len);
    } else if (strcmp(subject, "order.paid") == 0) {
        append_money(out, out_len, "paid ", ev, "total_cents");
    } else if (strcmp(subject, "import.completed") == 0) {
        append(out, out_len, "import %s: %lld rows, %lld valid, %lld rejected, %lld orders",
               str_member(ev, "import_id"), (long long)int_member(ev, "rows"),
               (long long)int_member(ev, "valid_rows"), (long long)int_member(ev, "rejected_rows"),
               (long long)int_member(ev, "orders"));
    } else if (strncmp(subject, "refund.", 7) == 0 || strcmp(subject, "order.refunded") == 0) {
        summary_refund(subject, ev, out, out_len);
    } else {
        /* stock.rejected, stock.released, order.failed, import.rejected */
        append(out, out_len, "%s", str_member(ev, "reason"));
    }
}

/* ---- reading the streams ------------------------------------------------ */

/* Whether a decoded event of subject belongs to the trace. */
static bool matches(trace_run *run, const char *subject, const json_t *ev)
{
    const json_t *meta = json_object_get(ev, "meta");
    if (strcmp(str_member(meta, "correlation_id"), run->order_id) == 0 ||
        strcmp(str_member(ev, "order_id"), run->order_id) == 0)
        return true;
    if (strcmp(subject, "import.completed") != 0)
        return false;
    for (size_t i = 0; i < run->n_imports; i++)
        if (strcmp(run->imports[i], str_member(ev, "import_id")) == 0)
            return true;
    return false;
}

static void remember_import(trace_run *run, const char *subject, const json_t *ev)
{
    const char *import_id = str_member(ev, "import_id");
    if (strcmp(subject, "order.created") != 0 || *import_id == '\0' ||
        run->n_imports == MAX_IMPORTS)
        return;
    run->imports[run->n_imports++] = import_id;
}

static json_t *event_record(const char *stream, uint64_t seq, natsMsg *msg, json_t *ev)
{
    const char *type = NULL, *subject = natsMsg_GetSubject(msg);
    char summary[1024];
    if (natsMsgHeader_Get(msg, JS_HDR_TYPE, &type) != NATS_OK)
        type = NULL;
    const json_t *meta = json_object_get(ev, "meta");
    trace_summary(subject, ev, summary, sizeof summary);
    return json_pack("{s:I,s:n,s:s,s:I,s:s,s:s?,s:s,s:s,s:s,s:s,s:O}", "time_ms",
                     (json_int_t)int_member(meta, "occurred_at_ms"), "since_created_ms", "stream",
                     stream, "seq", (json_int_t)seq, "subject", subject, "type", type, "producer",
                     str_member(meta, "producer"), "event_id", str_member(meta, "event_id"),
                     "causation_id", str_member(meta, "causation_id"), "summary", summary, "event",
                     ev);
}

/* Decodes msg and keeps it when it belongs to the order. */
static void consider(trace_run *run, const char *stream, natsMsg *msg, uint64_t seq)
{
    const char *type = NULL;
    if (natsMsgHeader_Get(msg, JS_HDR_TYPE, &type) != NATS_OK)
        return; /* not an event of the contract */
    json_t *ev = pbjson_decode(type, natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg));
    if (ev != NULL && json_object_get(ev, "meta") != NULL &&
        matches(run, natsMsg_GetSubject(msg), ev)) {
        json_t *rec = event_record(stream, seq, msg, ev);
        if (rec != NULL) {
            json_array_append_new(run->events, rec);
            remember_import(run, natsMsg_GetSubject(msg), json_object_get(rec, "event"));
        }
    }
    json_decref(ev);
}

/* Stream state before reading: false (err set) on a NATS error; *last 0 when
 * the stream is empty or missing. */
static bool stream_state(trace_run *run, const stream_spec *spec, uint64_t *last)
{
    jsStreamInfo *si = NULL;
    jsErrCode code = 0;
    natsStatus st = js_GetStreamInfo(&si, js_ctx(run->c), spec->name, NULL, &code);
    *last = 0;
    if (st == NATS_NOT_FOUND || code == JSStreamNotFoundErr)
        return true;
    if (st != NATS_OK) {
        snprintf(run->err, TRACE_ERR_LEN, "cannot read stream %s: %s", spec->name,
                 natsStatus_GetText(st));
        return false;
    }
    if (si->State.FirstSeq > 1)
        run->removed = true;
    if (strcmp(spec->name, "ORDERS") == 0)
        run->orders_max_age_ms = si->Config->MaxAge / 1000000;
    *last = si->State.Msgs > 0 ? si->State.LastSeq : 0;
    jsStreamInfo_Destroy(si);
    return true;
}

static bool read_stream(trace_run *run, const stream_spec *spec)
{
    natsSubscription *sub = NULL;
    jsSubOptions so;
    jsErrCode code = 0;
    uint64_t last = 0, seq = 0;
    bool ok = false;

    if (!stream_state(run, spec, &last))
        return false;
    if (last == 0)
        return true;
    jsSubOptions_Init(&so);
    so.Stream = spec->name;
    so.Ordered = true;
    so.Config.DeliverPolicy = js_DeliverAll;
    natsStatus st = js_SubscribeSync(&sub, js_ctx(run->c), spec->filter, NULL, &so, &code);
    /* Messages published after the stream's state was read are not waited for. */
    while (st == NATS_OK && seq < last) {
        natsMsg *msg = NULL;
        jsMsgMetaData *md = NULL;
        if ((st = natsSubscription_NextMsg(&msg, sub, READ_WAIT_MS)) != NATS_OK)
            break;
        if (natsMsg_GetMetaData(&md, msg) == NATS_OK) {
            seq = md->Sequence.Stream;
            consider(run, spec->name, msg, seq);
            if (md->NumPending == 0)
                seq = last;
            jsMsgMetaData_Destroy(md);
        }
        natsMsg_Destroy(msg);
    }
    if (st == NATS_OK)
        ok = true;
    else
        snprintf(run->err, TRACE_ERR_LEN, "cannot read stream %s: %s", spec->name,
                 natsStatus_GetText(st));
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    return ok;
}

/* ---- ordering -------------------------------------------------------------- */

static bool placed_before(const json_t *placed, const char *event_id)
{
    return json_object_get(placed, event_id) != NULL;
}

static bool in_trace(const json_t *events, const char *event_id)
{
    size_t i;
    json_t *e;
    json_array_foreach(events, i,
                       e) if (strcmp(str_member(e, "event_id"), event_id) == 0) return true;
    return false;
}

/* Index of the next event to place: its cause placed or outside the trace,
 * earliest first; on a cycle (corrupt ids) the earliest of all. */
static size_t next_event(const json_t *events, const json_t *placed, const bool *done)
{
    size_t best = SIZE_MAX, any = SIZE_MAX, i;
    json_t *e;
    json_array_foreach(events, i, e)
    {
        if (done[i])
            continue;
        const char *cause = str_member(e, "causation_id");
        bool ready = *cause == '\0' || placed_before(placed, cause) || !in_trace(events, cause);
        int64_t t = int_member(e, "time_ms");
        if (any == SIZE_MAX || t < int_member(json_array_get(events, any), "time_ms"))
            any = i;
        if (ready && (best == SIZE_MAX || t < int_member(json_array_get(events, best), "time_ms")))
            best = i;
    }
    return best != SIZE_MAX ? best : any;
}

/* The events in causal order, with since_created_ms set. */
static json_t *causal_order(json_t *events)
{
    size_t n = json_array_size(events);
    json_t *sorted = json_array(), *placed = json_object();
    bool *done = calloc(n ? n : 1, sizeof *done);
    int64_t created_ms = INT64_MIN;
    if (sorted == NULL || placed == NULL || done == NULL)
        goto out;
    for (size_t k = 0; k < n; k++) {
        size_t i = next_event(events, placed, done);
        json_t *e = json_array_get(events, i);
        done[i] = true;
        json_object_set_new(placed, str_member(e, "event_id"), json_true());
        if (created_ms == INT64_MIN && strcmp(str_member(e, "subject"), "order.created") == 0)
            created_ms = int_member(e, "time_ms");
        json_array_append(sorted, e);
    }
    size_t i;
    json_t *e;
    json_array_foreach(sorted, i, e) if (created_ms != INT64_MIN)
        json_object_set_new(e, "since_created_ms",
                            json_integer(int_member(e, "time_ms") - created_ms));
out:
    free(done);
    json_decref(placed);
    return sorted;
}

/* ---- the whole trace -------------------------------------------------------- */

static bool has_subject(const json_t *events, const char *subject)
{
    size_t i;
    json_t *e;
    json_array_foreach(events, i,
                       e) if (strcmp(str_member(e, "subject"), subject) == 0) return true;
    return false;
}

/* Why nothing, or no order.created, was found; NULL when nothing to say. */
static json_t *trace_note(const trace_run *run, const json_t *events)
{
    char note[512];
    double hours = (double)run->orders_max_age_ms / 3600000.0;
    char retention[64];
    if (run->orders_max_age_ms > 0)
        snprintf(retention, sizeof retention, "ORDERS keeps %.0f h", hours);
    else
        snprintf(retention, sizeof retention, "ORDERS has dropped its oldest messages");
    if (json_array_size(events) == 0 && !run->removed)
        snprintf(note, sizeof note,
                 "no event in the streams names order %s: there is no such order", run->order_id);
    else if (json_array_size(events) == 0)
        snprintf(note, sizeof note,
                 "no event in the streams names order %s: there is no such "
                 "order, or its events have aged out (%s)",
                 run->order_id, retention);
    else if (!has_subject(events, "order.created"))
        snprintf(note, sizeof note,
                 "order.created of %s is not in the streams any more (%s): "
                 "the events shown are what is left",
                 run->order_id, retention);
    else
        return json_null();
    return json_string(note);
}

oms_status trace_collect(js_conn *c, const char *order_id, json_t **out, char err[TRACE_ERR_LEN])
{
    trace_run run = {.c = c, .order_id = order_id, .events = json_array(), .err = err};
    json_t *sorted = NULL;
    oms_status s = OMS_ENATS;

    err[0] = '\0';
    if (run.events == NULL) {
        s = OMS_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < sizeof ORDER_STREAMS / sizeof ORDER_STREAMS[0]; i++)
        if (!read_stream(&run, &ORDER_STREAMS[i]))
            goto out;
    if (!read_stream(&run, &IMPORT_STREAM))
        goto out;
    char notify_note[512] = "";
    json_t *notifications = NULL;
    if (json_array_size(run.events) > 0 &&
        trace_fetch_notifications(order_id, &notifications, notify_note, sizeof notify_note) ==
            OMS_OK)
        trace_add_notifications(run.events, notifications);
    json_decref(notifications);
    sorted = causal_order(run.events);
    json_t *trace = json_pack("{s:s,s:b,s:O,s:o,s:o,s:I}", "order_id", order_id, "found",
                              has_subject(sorted, "order.created"), "events", sorted, "note",
                              trace_note(&run, sorted), "notifications_note",
                              notify_note[0] ? json_string(notify_note) : json_null(),
                              "retention_ms", (json_int_t)run.orders_max_age_ms);
    if (trace == NULL) {
        s = OMS_ENOMEM;
        goto out;
    }
    *out = trace;
    s = OMS_OK;
out:
    json_decref(sorted);
    json_decref(run.events);
    return s;
}
