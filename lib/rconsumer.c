/*
 * rconsumer.c - the batch loop of consumers that apply into Redis (see
 * rconsumer.h). One thread, one Redis connection and one durable per
 * consumer; PostgreSQL only for dead letters.
 */
#include "rconsumer.h"

#include "backoff.h"
#include "js.h"
#include "log.h"
#include "metrics.h"
#include "pg.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REDIS_TIMEOUT_MS 5000

struct rconsumer {
    const rconsumer_spec *spec;
    const rconsumer_env *env;
    pthread_t thread;
    atomic_int stop;
    atomic_int ready;
    atomic_int caught_up;
    atomic_llong applied;
    natsSubscription *sub;
    redis_conn *redis;
    redis_script script;
    PGconn *pg;
    redis_args *calls;       /* batch_max argument vectors, reused */
    redisReply **replies;
    size_t *slot;            /* calls[k] belongs to msgs[slot[k]] */
    bool *retry;             /* msgs[i] met a transient Redis error: nak it */
    size_t batch;            /* entries of replies, slot and retry */
    size_t calls_cap;        /* entries of calls (initialised) */
    char labels[128];        /* consumer="<name>" */
};

void rconsumer_reject(oms_msg *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->reason, sizeof m->reason, fmt, ap);
    va_end(ap);
    m->rejected = true;
}

static void count(rconsumer *c, const char *subject, const char *result, double v)
{
    char labels[192], subj[96];
    snprintf(labels, sizeof labels, "subject=\"%s\",result=\"%s\"",
             consumer_subject_label(subject, subj, sizeof subj), result);
    metrics_counter_add(c->env->m, "oms_events_consumed_total", labels, v);
}

/* ---- dead letters ------------------------------------------------------ */

static oms_status dead_letters_write(rconsumer *c, oms_msg *msgs, size_t n, size_t *count_out)
{
    oms_status s;
    if (!pg_ok(c->pg)) {
        PQfinish(c->pg);
        c->pg = NULL;
        if ((s = pg_connect(&c->pg, c->env->dsn, c->env->schema, c->spec->name)) != OMS_OK)
            return s;
    }
    if ((s = pg_exec(c->pg, "BEGIN")) == OMS_OK &&
        (s = consumer_dead_letters_insert(c->pg, msgs, n, count_out)) == OMS_OK)
        s = pg_exec(c->pg, "COMMIT");
    if (s != OMS_OK)
        pg_rollback(c->pg);
    return s;
}

/* ---- one batch --------------------------------------------------------- */

/* Fills and checks every message; one delivered past its last attempt is
 * rejected without being applied (see consumer.h). */
static void msgs_init(rconsumer *c, oms_msg *msgs, size_t n, natsMsgList *list)
{
    int max_attempts = consumer_max_attempts(c->spec->max_attempts);
    for (size_t i = 0; i < n; i++) {
        oms_msg *m = &msgs[i];
        consumer_msg_init(m, list->Msgs[i]);
        if (!m->rejected && m->deliveries > max_attempts)
            rconsumer_reject(m, "not applied after %d deliveries: the last one ended without"
                             " an answer (the process stopped or crashed, or the ack wait"
                             " expired)", m->deliveries - 1);
    }
}

static void nak(rconsumer *c, oms_msg *m)
{
    natsMsg_NakWithDelay(m->nmsg, consumer_nak_delay_ms(c->spec->nak_delay_ms, m->deliveries),
                         NULL);
}

/* Encodes every message; returns how many calls were built (their message
 * index in c->slot). */
static oms_status encode_all(rconsumer *c, oms_msg *msgs, size_t n, size_t *ncalls)
{
    *ncalls = 0;
    for (size_t i = 0; i < n; i++) {
        redis_args *a = &c->calls[*ncalls];
        if (msgs[i].rejected)
            continue; /* refused at the boundary or overdue */
        redis_args_reset(a);
        oms_status s = c->spec->encode(c->spec->ctx, &msgs[i], a);
        if (s != OMS_OK)
            return s;
        if (!msgs[i].rejected)
            c->slot[(*ncalls)++] = i;
    }
    return OMS_OK;
}

/* Errors that say Redis cannot take writes right now (loading, a busy
 * script, maxmemory, a replica after failover...), not that the event is bad. */
static bool transient_error(const redisReply *r)
{
    static const char *const prefixes[] = {"LOADING", "BUSY", "OOM", "READONLY", "MASTERDOWN",
                                           "TRYAGAIN", "CLUSTERDOWN", "NOREPLICAS", "MISCONF",
                                           "NOSCRIPT"};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (strncmp(r->str, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    return false;
}

/* Reads the script's answers: integers are results; an error rejects the
 * event, unless Redis is only unable to write now (then it is retried). */
static void take_replies(rconsumer *c, oms_msg *msgs, size_t ncalls)
{
    bool logged = false;
    for (size_t k = 0; k < ncalls; k++) {
        oms_msg *m = &msgs[c->slot[k]];
        redisReply *r = c->replies[k];
        if (r->type == REDIS_REPLY_ERROR && transient_error(r) &&
            m->deliveries >= consumer_max_attempts(c->spec->max_attempts)) {
            rconsumer_reject(m, "not applied after %d deliveries: Redis: %.400s", m->deliveries,
                             r->str);
        } else if (r->type == REDIS_REPLY_ERROR && transient_error(r)) {
            if (!logged)
                log_warn("Redis cannot apply now, will retry", "consumer", c->spec->name,
                         "error", r->str, NULL);
            logged = true;
            c->retry[c->slot[k]] = true;
        } else if (r->type == REDIS_REPLY_INTEGER) {
            if (r->integer == 1)
                atomic_fetch_add(&c->applied, 1);
            m->duplicate = r->integer == 0;
            if (c->spec->done != NULL)
                c->spec->done(c->spec->ctx, m, r->integer);
        } else {
            rconsumer_reject(m, "Redis refused the event: %.400s",
                             r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply type");
        }
        freeReplyObject(r);
        c->replies[k] = NULL;
    }
}

static void settle(rconsumer *c, oms_msg *msgs, size_t n, bool dead_lettered)
{
    for (size_t i = 0; i < n; i++) {
        if (c->retry[i]) {
            nak(c, &msgs[i]);
            metrics_counter_add(c->env->m, "oms_consumer_retries_total", "", 1);
            continue;
        }
        if (msgs[i].rejected && !c->spec->replay) {
            if (!dead_lettered) {
                nak(c, &msgs[i]);
                continue;
            }
            char subj[CONSUMER_SUBJECT_MAX_BYTES + 64];
            log_warn("message dead-lettered", "consumer", c->spec->name, "subject",
                     consumer_printable(msgs[i].subject, strlen(msgs[i].subject), subj,
                                        sizeof subj),
                     "event_id", msgs[i].event_id, "reason", msgs[i].reason, NULL);
            natsMsg_Term(msgs[i].nmsg, NULL);
            count(c, msgs[i].subject, "dead_letter", 1);
            metrics_counter_add(c->env->m, "oms_dead_letters_total", "", 1);
            continue;
        }
        natsMsg_Ack(msgs[i].nmsg, NULL);
        count(c, msgs[i].subject,
              msgs[i].rejected ? "rejected" : msgs[i].duplicate ? "duplicate" : "applied", 1);
    }
}

static void nak_all(rconsumer *c, oms_msg *msgs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        nak(c, &msgs[i]);
    metrics_counter_add(c->env->m, "oms_consumer_retries_total", "", 1);
}

/* Pending and lag from the batch's last message: what is left behind it on
 * the durable, and how long ago the stream stored it. */
static void observe_position(rconsumer *c, natsMsg *last)
{
    jsMsgMetaData *meta = NULL;
    if (natsMsg_GetMetaData(&meta, last) != NATS_OK)
        return;
    metrics_gauge_set(c->env->m, "oms_consumer_pending", c->labels, (double)meta->NumPending);
    double lag_s = (double)(oms_now_ms() - meta->Timestamp / 1000000) / 1000.0;
    metrics_gauge_set(c->env->m, "oms_consumer_lag_seconds", c->labels, lag_s > 0 ? lag_s : 0);
    if (c->spec->replay && (meta->NumPending == 0 || (c->spec->replay_until_seq > 0 &&
                                                      meta->Sequence.Stream >=
                                                          c->spec->replay_until_seq)))
        atomic_store(&c->caught_up, 1);
    jsMsgMetaData_Destroy(meta);
}

/* Grows the per-message arrays to n: js_fetch may return more than the
 * batch when more messages are already buffered. */
static oms_status reserve(rconsumer *c, size_t n)
{
    if (n <= c->batch)
        return OMS_OK;
    if (n > c->calls_cap) {
        redis_args *calls = realloc(c->calls, n * sizeof *calls);
        if (calls == NULL)
            return OMS_ENOMEM;
        c->calls = calls;
        for (size_t i = c->calls_cap; i < n; i++)
            redis_args_init(&c->calls[i]);
        c->calls_cap = n;
    }
    redisReply **replies = realloc(c->replies, n * sizeof *replies);
    if (replies == NULL)
        return OMS_ENOMEM;
    c->replies = replies;
    size_t *slot = realloc(c->slot, n * sizeof *slot);
    if (slot == NULL)
        return OMS_ENOMEM;
    c->slot = slot;
    bool *retry = realloc(c->retry, n * sizeof *retry);
    if (retry == NULL)
        return OMS_ENOMEM;
    c->retry = retry;
    c->batch = n;
    return OMS_OK;
}

static void process(rconsumer *c, natsMsgList *list)
{
    size_t n = (size_t)list->Count, ncalls = 0, dead = 0;
    int64_t t0 = oms_mono_ms();
    oms_msg *msgs = calloc(n, sizeof *msgs);
    if (msgs == NULL || reserve(c, n) != OMS_OK) {
        free(msgs);
        return; /* unacked: redelivered after ack_wait */
    }
    msgs_init(c, msgs, n, list);
    memset(c->retry, 0, n * sizeof *c->retry);
    oms_status s = encode_all(c, msgs, n, &ncalls);
    if (s == OMS_OK && ncalls > 0)
        s = redis_eval_pipeline(c->redis, &c->script, c->calls, ncalls, c->replies);
    if (s != OMS_OK) {
        log_warn("batch not applied, will retry", "consumer", c->spec->name, "error",
                 oms_strstatus(s), NULL);
        nak_all(c, msgs, n);
        goto out;
    }
    take_replies(c, msgs, ncalls);
    bool any_rejected = false;
    for (size_t i = 0; i < n; i++)
        any_rejected = any_rejected || msgs[i].rejected;
    bool dead_lettered = true;
    if (any_rejected && !c->spec->replay && dead_letters_write(c, msgs, n, &dead) != OMS_OK) {
        log_warn("cannot write dead letters, will retry them", "consumer", c->spec->name, NULL);
        dead_lettered = false;
    }
    settle(c, msgs, n, dead_lettered);
    observe_position(c, msgs[n - 1].nmsg);
out:
    metrics_histogram_observe(c->env->m, "oms_batch_duration_seconds", c->labels,
                              (double)(oms_mono_ms() - t0) / 1000.0);
    free(msgs);
}

/* ---- the loop ---------------------------------------------------------- */

static oms_status ensure_bound(rconsumer *c)
{
    oms_status s;
    char err[REDIS_ERR_LEN];
    if (!redis_ok(c->redis)) {
        atomic_store(&c->ready, 0);
        redis_conn_destroy(c->redis);
        c->redis = NULL;
        c->script.sha[0] = '\0'; /* a restarted Redis has no scripts */
        if ((s = redis_connect(&c->redis, c->env->redis_url, REDIS_TIMEOUT_MS, err)) != OMS_OK) {
            log_warn("Redis not reachable, retrying", "consumer", c->spec->name, "error", err,
                     NULL);
            return s;
        }
    }
    if (c->sub == NULL) {
        s = js_pull_subscribe_max(c->env->js, c->spec->stream, c->spec->durable,
                                  c->spec->filter, c->spec->ack_wait_ms,
                                  consumer_max_attempts(c->spec->max_attempts) +
                                      CONSUMER_SPARE_DELIVERIES,
                                  &c->sub);
        if (s != OMS_OK)
            return s;
        log_info("consumer bound", "consumer", c->spec->name, "stream", c->spec->stream,
                 "durable", c->spec->durable, NULL);
    }
    atomic_store(&c->ready, 1);
    return OMS_OK;
}

/* Replay mode, after an empty fetch: caught up when the durable has nothing
 * left to deliver. */
static void check_caught_up(rconsumer *c)
{
    jsConsumerInfo *ci = NULL;
    jsErrCode code = 0;
    if (!c->spec->replay)
        return;
    /* By name: nats.c 3.4.1 answers "Invalid Subscription" for a pull
     * subscription bound to an existing durable. */
    natsStatus st = js_GetConsumerInfo(&ci, js_ctx(c->env->js), c->spec->stream,
                                       c->spec->durable, NULL, &code);
    if (st != NATS_OK) {
        log_warn("cannot read the consumer's position", "consumer", c->spec->name, "error",
                 natsStatus_GetText(st), NULL);
        return;
    }
    if (ci->NumPending == 0 && ci->NumAckPending == 0)
        atomic_store(&c->caught_up, 1);
    else
        log_debug("replay not caught up", "consumer", c->spec->name, NULL);
    jsConsumerInfo_Destroy(ci);
}

static void *rconsumer_main(void *arg)
{
    rconsumer *c = arg;
    oms_backoff backoff = OMS_BACKOFF_INIT;
    int fetch_errors = 0;
    while (!atomic_load(&c->stop)) {
        natsMsgList list;
        oms_status s = ensure_bound(c);
        if (s == OMS_OK)
            s = js_fetch(c->sub, c->spec->batch_max, c->spec->wait_ms, &list);
        if (s != OMS_OK) {
            /* The durable may have been deleted (stream recreated): bind again. */
            if (c->sub != NULL && ++fetch_errors >= 3) {
                natsSubscription_Destroy(c->sub);
                c->sub = NULL;
                fetch_errors = 0;
            }
            oms_backoff_sleep(&backoff, &c->stop);
            continue;
        }
        fetch_errors = 0;
        if (list.Count > 0) {
            process(c, &list);
        } else {
            metrics_gauge_set(c->env->m, "oms_consumer_pending", c->labels, 0);
            check_caught_up(c);
        }
        natsMsgList_Destroy(&list);
        if (redis_ok(c->redis)) {
            oms_backoff_reset(&backoff);
        } else {
            atomic_store(&c->ready, 0);
            oms_backoff_sleep(&backoff, &c->stop);
        }
    }
    return NULL;
}

static void declare_metrics(metrics *m)
{
    metrics_counter_declare(m, "oms_events_consumed_total",
                            "Events consumed, by subject and result (applied, duplicate, dead_letter)");
    metrics_counter_declare(m, "oms_dead_letters_total", "Messages sent to dead_letters");
    metrics_counter_declare(m, "oms_consumer_retries_total",
                            "Batches rolled back and redelivered after a transient failure");
    /* Both from 0, so that the first dead letter or retry is an increase that
     * rate()/increase() and the alert rules see, not a series that appears. */
    metrics_counter_add(m, "oms_dead_letters_total", "", 0);
    metrics_counter_add(m, "oms_consumer_retries_total", "", 0);
    metrics_histogram_declare(m, "oms_batch_duration_seconds",
                              "Time to apply and commit one fetched batch",
                              METRICS_SECONDS_BUCKETS, METRICS_SECONDS_BUCKETS_LEN);
    metrics_gauge_declare(m, "oms_consumer_pending",
                          "Messages of the stream not yet delivered to the consumer");
    metrics_gauge_declare(m, "oms_consumer_lag_seconds",
                          "Age of the last applied message when it was applied");
}

oms_status rconsumer_start(rconsumer **out, const rconsumer_spec *spec, const rconsumer_env *env)
{
    rconsumer *c = calloc(1, sizeof *c);
    size_t batch = spec->batch_max > 0 ? (size_t)spec->batch_max : 1;
    if (c == NULL)
        return OMS_ENOMEM;
    c->spec = spec;
    c->env = env;
    c->script.source = spec->script;
    c->batch = batch;
    c->calls_cap = batch;
    snprintf(c->labels, sizeof c->labels, "consumer=\"%s\"", spec->name);
    c->calls = calloc(batch, sizeof *c->calls);
    c->replies = calloc(batch, sizeof *c->replies);
    c->slot = calloc(batch, sizeof *c->slot);
    c->retry = calloc(batch, sizeof *c->retry);
    if (c->calls == NULL || c->replies == NULL || c->slot == NULL || c->retry == NULL)
        goto fail;
    for (size_t i = 0; i < batch; i++)
        redis_args_init(&c->calls[i]);
    declare_metrics(env->m);
    if (pthread_create(&c->thread, NULL, rconsumer_main, c) != 0)
        goto fail;
    *out = c;
    return OMS_OK;
fail:
    free(c->calls);
    free(c->replies);
    free(c->slot);
    free(c->retry);
    free(c);
    return OMS_ENOMEM;
}

void rconsumer_stop(rconsumer *c)
{
    if (c == NULL)
        return;
    atomic_store(&c->stop, 1);
    pthread_join(c->thread, NULL);
    if (c->sub != NULL) {
        natsSubscription_Unsubscribe(c->sub);
        natsSubscription_Destroy(c->sub);
    }
    redis_conn_destroy(c->redis);
    PQfinish(c->pg);
    for (size_t i = 0; i < c->calls_cap; i++)
        redis_args_fini(&c->calls[i]);
    free(c->calls);
    free(c->replies);
    free(c->slot);
    free(c->retry);
    free(c);
}

bool rconsumer_ready(rconsumer *c)
{
    return c != NULL && atomic_load(&c->ready);
}

bool rconsumer_caught_up(rconsumer *c)
{
    return c != NULL && atomic_load(&c->caught_up);
}

long long rconsumer_applied(rconsumer *c)
{
    return c == NULL ? 0 : atomic_load(&c->applied);
}
