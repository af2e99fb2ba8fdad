/*
 * pullsub.c - the fetch loop, binding and settling shared by lib/consumer
 * and lib/rconsumer (pullsub.h). It knows JetStream and the metrics; it knows
 * nothing of PostgreSQL or Redis, which stay behind pullsub_ops.
 */
#include "pullsub.h"

#include "backoff.h"
#include "js.h"
#include "log.h"
#include "metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pullsub {
    pullsub_spec spec;
    struct js_conn *js;
    struct metrics *m;
    const pullsub_ops *ops;
    void *ctx;
    pthread_t thread;
    atomic_int stop;
    atomic_int ready;
    natsSubscription *sub;
    char labels[128]; /* consumer="<name>" */
};

const char *pullsub_name(const pullsub *ps)
{
    return ps->spec.name;
}

int pullsub_max_attempts(const pullsub *ps)
{
    return consumer_max_attempts(ps->spec.max_attempts);
}

bool pullsub_ready(const pullsub *ps)
{
    return ps != NULL && atomic_load(&ps->ready);
}

/* ---- settling ------------------------------------------------------------ */

static void count(pullsub *ps, const char *subject, const char *result)
{
    char labels[192], subj[96];
    snprintf(labels, sizeof labels, "subject=\"%s\",result=\"%s\"",
             consumer_subject_label(subject, subj, sizeof subj), result);
    metrics_counter_add(ps->m, "oms_events_consumed_total", labels, 1);
}

void pullsub_ack(pullsub *ps, oms_msg *m, const char *result)
{
    natsMsg_Ack(m->nmsg, NULL);
    count(ps, m->subject, result);
}

void pullsub_nak(pullsub *ps, oms_msg *m)
{
    natsMsg_NakWithDelay(m->nmsg, consumer_nak_delay_ms(ps->spec.nak_delay_ms, m->deliveries),
                         NULL);
}

void pullsub_dead_letter(pullsub *ps, oms_msg *m)
{
    char subj[CONSUMER_SUBJECT_MAX_BYTES + 64];
    log_warn("message dead-lettered", "consumer", ps->spec.name, "subject",
             consumer_printable(m->subject, strlen(m->subject), subj, sizeof subj), "event_id",
             m->event_id, "reason", m->reason, NULL);
    natsMsg_Term(m->nmsg, NULL);
    count(ps, m->subject, "dead_letter");
    metrics_counter_add(ps->m, "oms_dead_letters_total", "", 1);
}

void pullsub_count_retries(pullsub *ps, double n)
{
    metrics_counter_add(ps->m, "oms_consumer_retries_total", "", n);
}

/* ---- one batch ------------------------------------------------------------ */

static void reject_overdue(oms_msg *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void reject_overdue(oms_msg *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->reason, sizeof m->reason, fmt, ap);
    va_end(ap);
    m->rejected = true;
}

/* A delivery past the last attempt: the one before got no answer (the
 * process died or stalled past the ack wait) or could not be recorded. It is
 * dead-lettered without being applied, which ends a crash loop. */
static void give_up_overdue(pullsub *ps, oms_msg *msgs, size_t n)
{
    int max_attempts = pullsub_max_attempts(ps);
    for (size_t i = 0; i < n; i++) {
        if (msgs[i].rejected || msgs[i].deliveries <= max_attempts)
            continue;
        const char *seen = ps->ops->earlier_failure != NULL
                               ? ps->ops->earlier_failure(ps->ctx, &msgs[i])
                               : NULL;
        if (seen != NULL)
            reject_overdue(&msgs[i], "not applied after %d deliveries: %s", msgs[i].deliveries - 1,
                           seen);
        else
            reject_overdue(&msgs[i],
                           "not applied after %d deliveries: the last one ended"
                           " without an answer (the process stopped or crashed, or the ack"
                           " wait expired)",
                           msgs[i].deliveries - 1);
    }
}

static void process(pullsub *ps, natsMsgList *list)
{
    size_t n = (size_t)list->Count;
    int64_t t0 = oms_mono_ms();
    oms_msg *msgs = calloc(n, sizeof *msgs);
    if (msgs == NULL)
        return; /* unacked: redelivered after ack_wait */
    for (size_t i = 0; i < n; i++)
        consumer_msg_init(&msgs[i], list->Msgs[i]);
    give_up_overdue(ps, msgs, n);
    ps->ops->batch(ps->ctx, ps, msgs, n);
    metrics_histogram_observe(ps->m, "oms_batch_duration_seconds", ps->labels,
                              (double)(oms_mono_ms() - t0) / 1000.0);
    free(msgs);
}

/* What the durable still holds behind the batch's last message, and how long
 * ago the stream stored that message: the backlog dashboards and alerts
 * watch. From the message's own metadata, so it costs no request. */
static void observe_backlog(pullsub *ps, natsMsg *last)
{
    jsMsgMetaData *meta = NULL;
    if (last == NULL || natsMsg_GetMetaData(&meta, last) != NATS_OK)
        return;
    int64_t age_ms = oms_now_ms() - meta->Timestamp / 1000000;
    metrics_gauge_set(ps->m, "oms_consumer_pending", ps->labels, (double)meta->NumPending);
    metrics_gauge_set(ps->m, "oms_consumer_lag_seconds", ps->labels,
                      age_ms > 0 ? (double)age_ms / 1000.0 : 0);
    jsMsgMetaData_Destroy(meta);
}

/* ---- the loop ------------------------------------------------------------- */

/* The store first: a subscription without a store to apply into would only
 * fetch messages to nak them. */
static oms_status ensure_bound(pullsub *ps)
{
    oms_status s = ps->ops->connect(ps->ctx);
    if (s != OMS_OK) {
        atomic_store(&ps->ready, 0);
        return s;
    }
    if (ps->sub == NULL) {
        s = js_pull_subscribe_max(ps->js, ps->spec.stream, ps->spec.durable, ps->spec.filter,
                                  ps->spec.ack_wait_ms,
                                  pullsub_max_attempts(ps) + CONSUMER_SPARE_DELIVERIES, &ps->sub);
        if (s != OMS_OK)
            return s;
        log_info("consumer bound", "consumer", ps->spec.name, "stream", ps->spec.stream, "durable",
                 ps->spec.durable, NULL);
    }
    atomic_store(&ps->ready, 1);
    return OMS_OK;
}

/* Drops the subscription so ensure_bound creates the durable again. Not
 * ready until it has: a probe must not see a consumer that cannot fetch. */
static void rebind(pullsub *ps)
{
    log_warn("fetch keeps failing, binding the consumer again", "consumer", ps->spec.name, NULL);
    natsSubscription_Destroy(ps->sub);
    ps->sub = NULL;
    atomic_store(&ps->ready, 0);
}

static void *pullsub_main(void *arg)
{
    pullsub *ps = arg;
    oms_backoff backoff = OMS_BACKOFF_INIT;
    int fetch_errors = 0;
    while (!atomic_load(&ps->stop)) {
        natsMsgList list;
        if (ensure_bound(ps) != OMS_OK) {
            oms_backoff_sleep(&backoff, &ps->stop);
            continue;
        }
        /* Only a failed fetch counts towards rebinding: a store that is down
         * says nothing about the durable, and rebinding would only drop a
         * good binding. */
        if (js_fetch(ps->sub, ps->spec.batch_max, ps->spec.wait_ms, &list) != OMS_OK) {
            if (++fetch_errors >= PULLSUB_REBIND_AFTER) {
                rebind(ps);
                fetch_errors = 0;
            }
            oms_backoff_sleep(&backoff, &ps->stop);
            continue;
        }
        fetch_errors = 0;
        if (list.Count > 0) {
            process(ps, &list);
            observe_backlog(ps, list.Msgs[list.Count - 1]);
        } else {
            metrics_gauge_set(ps->m, "oms_consumer_pending", ps->labels, 0);
            if (ps->ops->idle != NULL)
                ps->ops->idle(ps->ctx, ps);
        }
        natsMsgList_Destroy(&list);
        /* A batch that lost the store waits before connecting again, so a
         * store that went away is not hammered by every consumer at once. */
        if (ps->ops->connected(ps->ctx)) {
            oms_backoff_reset(&backoff);
        } else {
            atomic_store(&ps->ready, 0);
            oms_backoff_sleep(&backoff, &ps->stop);
        }
    }
    return NULL;
}

static void declare_metrics(struct metrics *m)
{
    metrics_counter_declare(
        m, "oms_events_consumed_total",
        "Events consumed, by subject and result (applied, duplicate, dead_letter)");
    metrics_counter_declare(m, "oms_dead_letters_total", "Messages sent to dead_letters");
    metrics_counter_declare(m, "oms_consumer_retries_total",
                            "Batches rolled back and redelivered after a transient failure");
    /* Both from 0, so that the first dead letter or retry is an increase that
     * rate()/increase() and the alert rules see, not a series that appears. */
    metrics_counter_add(m, "oms_dead_letters_total", "", 0);
    metrics_counter_add(m, "oms_consumer_retries_total", "", 0);
    metrics_histogram_declare(m, "oms_batch_duration_seconds",
                              "Time to apply and commit one fetched batch", METRICS_SECONDS_BUCKETS,
                              METRICS_SECONDS_BUCKETS_LEN);
    metrics_gauge_declare(m, "oms_consumer_pending",
                          "Messages of the stream not yet delivered to the consumer");
    metrics_gauge_declare(m, "oms_consumer_lag_seconds",
                          "Age of the last applied message when it was applied");
}

oms_status pullsub_start(pullsub **out, const pullsub_spec *spec, struct js_conn *js,
                         struct metrics *m, const pullsub_ops *ops, void *ctx)
{
    pullsub *ps = calloc(1, sizeof *ps);
    if (ps == NULL)
        return OMS_ENOMEM;
    ps->spec = *spec;
    ps->js = js;
    ps->m = m;
    ps->ops = ops;
    ps->ctx = ctx;
    snprintf(ps->labels, sizeof ps->labels, "consumer=\"%s\"", spec->name);
    declare_metrics(m);
    metrics_gauge_set(m, "oms_consumer_pending", ps->labels, 0);
    if (pthread_create(&ps->thread, NULL, pullsub_main, ps) != 0) {
        free(ps);
        return OMS_ENOMEM;
    }
    *out = ps;
    return OMS_OK;
}

void pullsub_stop(pullsub *ps)
{
    if (ps == NULL)
        return;
    atomic_store(&ps->stop, 1);
    pthread_join(ps->thread, NULL);
    if (ps->sub != NULL) {
        natsSubscription_Unsubscribe(ps->sub);
        natsSubscription_Destroy(ps->sub);
    }
    free(ps);
}
