/*
 * import_watch.c - following one import through its events.
 *
 * Core NATS subscriptions, not JetStream consumers: omsctl only needs what
 * happens while it waits, and leaves no durable state behind. nats.c calls
 * each subscription's handler on its own thread, so decoding happens outside
 * the lock and only the update of the shared outcome inside it. The three
 * subscriptions are separate so a flood of order.created events from other
 * imports can never crowd out our import.completed.
 */
#include "import.h"

#include "oms_events.pb-c.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define DRAIN_WAIT_MS 2000

struct import_watch {
    char import_id[IMPORT_ID_LEN];
    natsSubscription *orders, *rejections, *completions;
    pthread_mutex_t mu;
    import_outcome seen; /* guarded by mu */
};

/* Keeps the IMPORT_MAX_REJECTIONS lowest rows, in row order (caller locks). */
static void keep_rejection(import_outcome *o, const Oms__V1__ImportRejected *ev)
{
    size_t pos = o->n_rejections;
    while (pos > 0 && o->rejections[pos - 1].row > ev->row)
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

static void on_order(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *arg)
{
    import_watch *w = arg;
    (void)nc, (void)sub;
    Oms__V1__OrderCreated *ev = oms__v1__order_created__unpack(
        NULL, (size_t)natsMsg_GetDataLength(msg), (const uint8_t *)natsMsg_GetData(msg));
    if (ev != NULL && strcmp(ev->import_id, w->import_id) == 0) {
        pthread_mutex_lock(&w->mu);
        w->seen.orders_seen++;
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
    pthread_mutex_destroy(&w->mu);
    free(w);
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
    if ((st = natsConnection_Subscribe(&w->orders, nc, "order.created", on_order, w)) ==
            NATS_OK &&
        (st = natsConnection_Subscribe(&w->rejections, nc, "import.rejected", on_rejected, w)) ==
            NATS_OK &&
        (st = natsConnection_Subscribe(&w->completions, nc, "import.completed", on_completed,
                                       w)) == NATS_OK)
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
