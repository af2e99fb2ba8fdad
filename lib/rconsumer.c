/*
 * rconsumer.c - the Redis applier (see rconsumer.h), plugged into the
 * pull-consumer core (lib/pullsub), which owns the thread, the durable and
 * the settling. One Redis connection per consumer; PostgreSQL only for dead
 * letters.
 */
#include "rconsumer.h"

#include "js.h"
#include "log.h"
#include "metrics.h"
#include "pg.h"
#include "pullsub.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REDIS_TIMEOUT_MS 5000

struct rconsumer {
    const rconsumer_spec *spec;
    const rconsumer_env *env;
    pullsub *ps; /* read by the caller's thread only */
    atomic_int caught_up;
    atomic_llong applied;
    redis_conn *redis; /* the rest: used by ps's thread only */
    redis_script script;
    PGconn *pg;
    redis_args *calls; /* batch_max argument vectors, reused */
    redisReply **replies;
    size_t *slot;     /* calls[k] belongs to msgs[slot[k]] */
    bool *retry;      /* msgs[i] met a transient Redis error: nak it */
    size_t batch;     /* entries of replies, slot and retry */
    size_t calls_cap; /* entries of calls (initialised) */
};

void rconsumer_reject(oms_msg *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->reason, sizeof m->reason, fmt, ap);
    va_end(ap);
    m->rejected = true;
}

/* ---- dead letters ------------------------------------------------------ */

static oms_status dead_letters_write(rconsumer *c, oms_msg *msgs, size_t n, size_t *count_out)
{
    oms_status s;
    if (!pg_ok(c->pg)) {
        PQfinish(c->pg);
        c->pg = NULL;
        if ((s = pg_connect(&c->pg, c->env->dsn, c->env->schema, c->spec->pull.name)) != OMS_OK)
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
    static const char *const prefixes[] = {"LOADING",    "BUSY",     "OOM",         "READONLY",
                                           "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "NOREPLICAS",
                                           "MISCONF",    "NOSCRIPT"};
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
            m->deliveries >= consumer_max_attempts(c->spec->pull.max_attempts)) {
            rconsumer_reject(m, "not applied after %d deliveries: Redis: %.400s", m->deliveries,
                             r->str);
        } else if (r->type == REDIS_REPLY_ERROR && transient_error(r)) {
            if (!logged)
                log_warn("Redis cannot apply now, will retry", "consumer", c->spec->pull.name,
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

static void settle(rconsumer *c, pullsub *ps, oms_msg *msgs, size_t n, bool dead_lettered)
{
    for (size_t i = 0; i < n; i++) {
        if (c->retry[i]) {
            pullsub_nak(ps, &msgs[i]);
            pullsub_count_retries(ps, 1);
        } else if (msgs[i].rejected && !c->spec->replay && !dead_lettered) {
            pullsub_nak(ps, &msgs[i]);
        } else if (msgs[i].rejected && !c->spec->replay) {
            pullsub_dead_letter(ps, &msgs[i]);
        } else {
            pullsub_ack(ps, &msgs[i],
                        msgs[i].rejected    ? "rejected"
                        : msgs[i].duplicate ? "duplicate"
                                            : "applied");
        }
    }
}

static void nak_all(pullsub *ps, oms_msg *msgs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        pullsub_nak(ps, &msgs[i]);
    pullsub_count_retries(ps, 1);
}

/* Replay mode: caught up once nothing is left behind the batch's last
 * message, or it is at or past replay_until_seq. Only after a batch Redis
 * answered: a nak'ed batch is not caught up whatever the durable says. */
static void replay_position(rconsumer *c, natsMsg *last)
{
    jsMsgMetaData *meta = NULL;
    if (!c->spec->replay || natsMsg_GetMetaData(&meta, last) != NATS_OK)
        return;
    if (meta->NumPending == 0 ||
        (c->spec->replay_until_seq > 0 && meta->Sequence.Stream >= c->spec->replay_until_seq))
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

/* pullsub_ops.batch: one pipelined round trip of script calls, then the dead
 * letters in PostgreSQL, then the acks. */
static void redis_batch(void *ctx, pullsub *ps, oms_msg *msgs, size_t n)
{
    rconsumer *c = ctx;
    size_t ncalls = 0, dead = 0;
    if (reserve(c, n) != OMS_OK)
        return; /* unacked: redelivered after ack_wait */
    memset(c->retry, 0, n * sizeof *c->retry);
    oms_status s = encode_all(c, msgs, n, &ncalls);
    if (s == OMS_OK && ncalls > 0)
        s = redis_eval_pipeline(c->redis, &c->script, c->calls, ncalls, c->replies);
    if (s != OMS_OK) {
        log_warn("batch not applied, will retry", "consumer", c->spec->pull.name, "error",
                 oms_strstatus(s), NULL);
        nak_all(ps, msgs, n);
        return;
    }
    take_replies(c, msgs, ncalls);
    bool any_rejected = false;
    for (size_t i = 0; i < n; i++)
        any_rejected = any_rejected || msgs[i].rejected;
    bool dead_lettered = true;
    if (any_rejected && !c->spec->replay && dead_letters_write(c, msgs, n, &dead) != OMS_OK) {
        log_warn("cannot write dead letters, will retry them", "consumer", c->spec->pull.name,
                 NULL);
        dead_lettered = false;
    }
    settle(c, ps, msgs, n, dead_lettered);
    replay_position(c, msgs[n - 1].nmsg);
}

/* pullsub_ops.connect */
static oms_status redis_connect_store(void *ctx)
{
    rconsumer *c = ctx;
    char err[REDIS_ERR_LEN];
    if (redis_ok(c->redis))
        return OMS_OK;
    redis_conn_destroy(c->redis);
    c->redis = NULL;
    c->script.sha[0] = '\0'; /* a restarted Redis has no scripts */
    oms_status s = redis_connect(&c->redis, c->env->redis_url, REDIS_TIMEOUT_MS, err);
    if (s != OMS_OK)
        log_warn("Redis not reachable, retrying", "consumer", c->spec->pull.name, "error", err,
                 NULL);
    return s;
}

/* pullsub_ops.connected */
static bool redis_connected(void *ctx)
{
    const rconsumer *c = ctx;
    return redis_ok(c->redis);
}

/* Replay mode, after an empty fetch: caught up when the durable has nothing
 * left to deliver. */
static void check_caught_up(void *ctx, pullsub *ps)
{
    rconsumer *c = ctx;
    jsConsumerInfo *ci = NULL;
    jsErrCode code = 0;
    (void)ps;
    if (!c->spec->replay)
        return;
    /* By name: nats.c 3.4.1 answers "Invalid Subscription" for a pull
     * subscription bound to an existing durable. */
    natsStatus st = js_GetConsumerInfo(&ci, js_ctx(c->env->js), c->spec->pull.stream,
                                       c->spec->pull.durable, NULL, &code);
    if (st != NATS_OK) {
        log_warn("cannot read the consumer's position", "consumer", c->spec->pull.name, "error",
                 natsStatus_GetText(st), NULL);
        return;
    }
    if (ci->NumPending == 0 && ci->NumAckPending == 0)
        atomic_store(&c->caught_up, 1);
    else
        log_debug("replay not caught up", "consumer", c->spec->pull.name, NULL);
    jsConsumerInfo_Destroy(ci);
}

static const pullsub_ops redis_applier = {
    .connect = redis_connect_store,
    .connected = redis_connected,
    .batch = redis_batch,
    .idle = check_caught_up,
};

oms_status rconsumer_start(rconsumer **out, const rconsumer_spec *spec, const rconsumer_env *env)
{
    rconsumer *c = calloc(1, sizeof *c);
    size_t batch = spec->pull.batch_max > 0 ? (size_t)spec->pull.batch_max : 1;
    if (c == NULL)
        return OMS_ENOMEM;
    c->spec = spec;
    c->env = env;
    c->script.source = spec->script;
    c->batch = batch;
    c->calls_cap = batch;
    c->calls = calloc(batch, sizeof *c->calls);
    c->replies = calloc(batch, sizeof *c->replies);
    c->slot = calloc(batch, sizeof *c->slot);
    c->retry = calloc(batch, sizeof *c->retry);
    oms_status s = OMS_ENOMEM;
    if (c->calls == NULL || c->replies == NULL || c->slot == NULL || c->retry == NULL)
        goto fail;
    for (size_t i = 0; i < batch; i++)
        redis_args_init(&c->calls[i]);
    if ((s = pullsub_start(&c->ps, &spec->pull, env->js, env->m, &redis_applier, c)) != OMS_OK)
        goto fail;
    *out = c;
    return OMS_OK;
fail:
    for (size_t i = 0; c->calls != NULL && i < batch; i++)
        redis_args_fini(&c->calls[i]);
    free(c->calls);
    free(c->replies);
    free(c->slot);
    free(c->retry);
    free(c);
    return s;
}

void rconsumer_stop(rconsumer *c)
{
    if (c == NULL)
        return;
    pullsub_stop(c->ps);
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
    return c != NULL && pullsub_ready(c->ps);
}

bool rconsumer_caught_up(rconsumer *c)
{
    return c != NULL && atomic_load(&c->caught_up);
}

long long rconsumer_applied(rconsumer *c)
{
    return c == NULL ? 0 : atomic_load(&c->applied);
}
