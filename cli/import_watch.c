/*
 * import_watch.c - following one import through its events.
 *
 * Core NATS subscriptions, not JetStream consumers: omsctl only needs what
 * happens while it waits, and leaves no durable state behind. nats.c calls
 * each subscription's handler on its own thread, so decoding happens outside
 * the lock and only the update of the shared outcome inside it. The
 * subscriptions are separate so a flood of order.created events from other
 * imports can never crowd out our import.completed.
 *
 * order.paid / order.failed are counted once per order: ingest publishes
 * each once, but an outbox that re-publishes after a lost PubAck reaches
 * core subscribers again even when the stream drops the copy, and a count
 * that overshoots would end the wait for the wrong reason.
 */
#include "import.h"

#include "oms_events.pb-c.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define DRAIN_WAIT_MS 2000
/* Events nats.c may buffer per subscription before it drops (its default is
 * 65536): a large import's orders settle in bursts. */
#define PENDING_MAX_MSGS (1 << 20)
#define PENDING_MAX_BYTES (256 << 20)

struct import_watch {
    char import_id[IMPORT_ID_LEN];
    natsSubscription *orders, *rejections, *completions, *paid, *failed;
    pthread_mutex_t mu;
    import_outcome seen; /* guarded by mu */
    json_t *settled;     /* order ids paid or failed, as a set; guarded by mu */
};

/* A row rejected only because another row of its order was: shown after
 * the causes, which are what a person has to fix. */
static bool is_consequence(const char *reason)
{
    return strstr(reason, " not created: row ") != NULL;
}

/* True when rejection a should be listed before b: causes first, then by row. */
static bool listed_before(bool a_consequence, int32_t a_row, const import_rejection *b)
{
    bool b_consequence = is_consequence(b->reason);
    if (a_consequence != b_consequence)
        return !a_consequence;
    return a_row < b->row;
}

/* Keeps the IMPORT_MAX_REJECTIONS first rejections to show: the lowest rows
 * whose own content is wrong, then the lowest rows rejected with their order
 * (caller locks). */
static void keep_rejection(import_outcome *o, const Oms__V1__ImportRejected *ev)
{
    bool consequence = is_consequence(ev->reason);
    size_t pos = o->n_rejections;
    while (pos > 0 && listed_before(consequence, ev->row, &o->rejections[pos - 1]))
        pos--;
    if (pos >= IMPORT_MAX_REJECTIONS)
        return;
    size_t last = o->n_rejections < IMPORT_MAX_REJECTIONS ? o->n_rejections
                                                          : IMPORT_MAX_REJECTIONS - 1;
    memmove(&o->rejections[pos + 1], &o->rejections[pos], (last - pos) * sizeof o->rejections[0]);
    import_rejection *r = &o->rejections[pos];
    r->row = ev->row;
    snprintf(r->order_id, sizeof r->order_id, "%s", ev->order_id);
    snprintf(r->field, sizeof r->field, "%s", ev->field);
    snprintf(r->reason, sizeof r->reason, "%s", ev->reason);
    if (o->n_rejections < IMPORT_MAX_REJECTIONS)
        o->n_rejections++;
}

/* The import's currency is that of its first event that names one (caller
 * locks): one system runs in one currency. */
static void note_currency(import_outcome *o, const char *currency)
{
    if (o->currency[0] == '\0' && currency != NULL)
        snprintf(o->currency, sizeof o->currency, "%s", currency);
}

/* Whether this is the first terminal event of order_id (caller locks). When
 * the set cannot grow the event counts anyway: a possible double count
 * beats a wait that never ends. */
static bool first_settlement(import_watch *w, const char *order_id)
{
    if (json_object_get(w->settled, order_id) != NULL)
        return false;
    json_object_set_new_nocheck(w->settled, order_id, json_true());
    return true;
}

static void keep_failure(import_outcome *o, const Oms__V1__OrderFailed *ev)
{
    o->failed++;
    if (strncmp(ev->reason, IMPORT_REASON_OUT_OF_STOCK, strlen(IMPORT_REASON_OUT_OF_STOCK)) == 0)
        o->failed_out_of_stock++;
    else if (strncmp(ev->reason, IMPORT_REASON_PAYMENT, strlen(IMPORT_REASON_PAYMENT)) == 0)
        o->failed_payment++;
    if (o->n_failures < IMPORT_MAX_FAILURES) {
        import_failure *f = &o->failures[o->n_failures++];
        snprintf(f->order_id, sizeof f->order_id, "%s", ev->order_id);
        snprintf(f->reason, sizeof f->reason, "%s", ev->reason);
    }
}

static void on_order(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *arg)
{
    import_watch *w = arg;
    (void)nc, (void)sub;
    Oms__V1__OrderCreated *ev = oms__v1__order_created__unpack(
        NULL, (size_t)natsMsg_GetDataLength(msg), (const uint8_t *)natsMsg_GetData(msg));
    if (ev != NULL && strcmp(ev->import_id, w->import_id) == 0) {
        pthread_mutex_lock(&w->mu);
        w->seen.orders_seen++;
        note_currency(&w->seen, ev->currency);
        pthread_mutex_unlock(&w->mu);
    }
    oms__v1__order_created__free_unpacked(ev, NULL);
    natsMsg_Destroy(msg);
}

static void on_rejected(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *arg)
{
    import_watch *w = arg;
    (void)nc, (void)sub;
    Oms__V1__ImportRejected *ev = oms__v1__import_rejected__unpack(
        NULL, (size_t)natsMsg_GetDataLength(msg), (const uint8_t *)natsMsg_GetData(msg));
    if (ev != NULL && strcmp(ev->import_id, w->import_id) == 0) {
        pthread_mutex_lock(&w->mu);
        w->seen.rejections_seen++;
        keep_rejection(&w->seen, ev);
        pthread_mutex_unlock(&w->mu);
    }
    oms__v1__import_rejected__free_unpacked(ev, NULL);
    natsMsg_Destroy(msg);
}

static void on_completed(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *arg)
{
    import_watch *w = arg;
    (void)nc, (void)sub;
    Oms__V1__ImportCompleted *ev = oms__v1__import_completed__unpack(
        NULL, (size_t)natsMsg_GetDataLength(msg), (const uint8_t *)natsMsg_GetData(msg));
    if (ev != NULL && strcmp(ev->import_id, w->import_id) == 0) {
        pthread_mutex_lock(&w->mu);
        import_outcome *o = &w->seen;
        o->completed = true;
        o->rows = ev->rows;
        o->valid_rows = ev->valid_rows;
        o->rejected_rows = ev->rejected_rows;
        o->orders = ev->orders;
        o->missing_rows = ev->missing_rows;
        o->timed_out = ev->timed_out;
        pthread_mutex_unlock(&w->mu);
    }
    oms__v1__import_completed__free_unpacked(ev, NULL);
    natsMsg_Destroy(msg);
}

static void on_paid(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *arg)
{
    import_watch *w = arg;
    (void)nc, (void)sub;
    Oms__V1__OrderPaid *ev = oms__v1__order_paid__unpack(NULL, (size_t)natsMsg_GetDataLength(msg),
                                                         (const uint8_t *)natsMsg_GetData(msg));
    if (ev != NULL && strcmp(ev->import_id, w->import_id) == 0) {
        pthread_mutex_lock(&w->mu);
        import_outcome *o = &w->seen;
        if (first_settlement(w, ev->order_id)) {
            o->paid++;
            if (__builtin_add_overflow(o->revenue_cents, ev->total_cents, &o->revenue_cents))
                o->revenue_cents = INT64_MAX;
            note_currency(o, ev->currency);
        }
        pthread_mutex_unlock(&w->mu);
    }
    oms__v1__order_paid__free_unpacked(ev, NULL);
    natsMsg_Destroy(msg);
}

static void on_failed(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *arg)
{
    import_watch *w = arg;
    (void)nc, (void)sub;
    Oms__V1__OrderFailed *ev = oms__v1__order_failed__unpack(NULL,
                                                             (size_t)natsMsg_GetDataLength(msg),
                                                             (const uint8_t *)natsMsg_GetData(msg));
    if (ev != NULL && strcmp(ev->import_id, w->import_id) == 0) {
        pthread_mutex_lock(&w->mu);
        if (first_settlement(w, ev->order_id)) {
            keep_failure(&w->seen, ev);
            note_currency(&w->seen, ev->currency);
        }
        pthread_mutex_unlock(&w->mu);
    }
    oms__v1__order_failed__free_unpacked(ev, NULL);
    natsMsg_Destroy(msg);
}

static void unsubscribe(natsSubscription *sub)
{
    if (sub == NULL)
        return;
    /* Drain, then wait: once it completes no handler runs any more, so
     * the watch can be freed under it. */
    if (natsSubscription_Drain(sub) == NATS_OK)
        natsSubscription_WaitForDrainCompletion(sub, DRAIN_WAIT_MS);
    natsSubscription_Destroy(sub);
}

void import_watch_destroy(import_watch *w)
{
    if (w == NULL)
        return;
    unsubscribe(w->orders);
    unsubscribe(w->rejections);
    unsubscribe(w->completions);
    unsubscribe(w->paid);
    unsubscribe(w->failed);
    json_decref(w->settled);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

static natsStatus subscribe(natsConnection *nc, natsSubscription **sub, const char *subject,
                            natsMsgHandler handler, import_watch *w)
{
    natsStatus st = natsConnection_Subscribe(sub, nc, subject, handler, w);
    if (st == NATS_OK)
        st = natsSubscription_SetPendingLimits(*sub, PENDING_MAX_MSGS, PENDING_MAX_BYTES);
    return st;
}

oms_status import_watch_start(import_watch **out, js_conn *c, const char *import_id)
{
    natsConnection *nc = js_nats(c);
    import_watch *w = calloc(1, sizeof *w);
    natsStatus st;

    if (w == NULL)
        return OMS_ENOMEM;
    pthread_mutex_init(&w->mu, NULL);
    snprintf(w->import_id, sizeof w->import_id, "%s", import_id);
    if ((w->settled = json_object()) == NULL) {
        import_watch_destroy(w);
        return OMS_ENOMEM;
    }
    if ((st = subscribe(nc, &w->orders, "order.created", on_order, w)) == NATS_OK &&
        (st = subscribe(nc, &w->rejections, "import.rejected", on_rejected, w)) == NATS_OK &&
        (st = subscribe(nc, &w->completions, "import.completed", on_completed, w)) == NATS_OK &&
        (st = subscribe(nc, &w->paid, "order.paid", on_paid, w)) == NATS_OK &&
        (st = subscribe(nc, &w->failed, "order.failed", on_failed, w)) == NATS_OK)
        /* The server must have the interest before the first chunk goes
         * out, or a fast ingest could finish before we listen. */
        st = natsConnection_FlushTimeout(nc, CLI_CONNECT_WAIT_MS);
    if (st != NATS_OK) {
        cli_error("cannot subscribe to the import's events on NATS at %s: %s", cli_nats_url(),
                  natsStatus_GetText(st));
        import_watch_destroy(w);
        return OMS_ENATS;
    }
    *out = w;
    return OMS_OK;
}

void import_watch_snapshot(import_watch *w, import_outcome *out)
{
    pthread_mutex_lock(&w->mu);
    *out = w->seen;
    pthread_mutex_unlock(&w->mu);
}

int64_t import_watch_dropped(import_watch *w)
{
    int64_t paid = 0, failed = 0;
    if (natsSubscription_GetDropped(w->paid, &paid) != NATS_OK)
        paid = 0;
    if (natsSubscription_GetDropped(w->failed, &failed) != NATS_OK)
        failed = 0;
    return paid + failed;
}
