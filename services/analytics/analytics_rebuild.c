/*
 * analytics_rebuild.c - `oms-analytics rebuild`: the projection again from
 * the events, into a fresh generation of keys, swapped in atomically.
 *
 * 1. Take the rebuild lock; open generation G and add it to the set the live
 *    consumers write: from then on every event they apply goes to G too.
 * 2. Replay order.paid, order.failed and refund.processed from the start of
 *    ORDERS and REFUNDS into G, until nothing is pending. An event the live
 *    consumers applied before step 1 is in the stream, so the replay has it;
 *    one applied after step 1 is in G already, and G's own event ids make
 *    the replay's copy a no-op. Nothing is missed, nothing counted twice.
 * 3. Make G current and stop writing the old generation, in one script;
 *    readers switch at once. After a grace period for readers that read the
 *    old generation's name, its keys are deleted.
 */
#include "analytics.h"

#include "log.h"
#include "ports.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOCK_KEY "analytics:rebuild_lock"
#define LOCK_TTL_S 60
#define LOCK_TTL_TEXT "60"
#define REDIS_TIMEOUT_MS 10000
#define SWAP_GRACE_MS 2000
#define SCAN_COUNT "1000"

/* Picks a generation above the current one, registers it for writing, and
 * forgets generations a crashed rebuild left in the write set. Returns the
 * new generation and, after it, the forgotten ones. */
static const char BEGIN_SCRIPT[] =
    "local cur = tonumber(redis.call('GET', 'analytics:current') or '0')\n"
    "local g = redis.call('INCR', 'analytics:generation_seq')\n"
    "if g <= cur then g = cur + 1; redis.call('SET', 'analytics:generation_seq', g) end\n"
    "if not redis.call('GET', 'analytics:current') then\n"
    "  redis.call('SET', 'analytics:current', '0')\n"
    "  redis.call('SADD', 'analytics:writing', '0')\n"
    "end\n"
    "local out = {tostring(g)}\n"
    "for _, w in ipairs(redis.call('SMEMBERS', 'analytics:writing')) do\n"
    "  if w ~= tostring(cur) then\n"
    "    redis.call('SREM', 'analytics:writing', w); out[#out + 1] = w\n"
    "  end\n"
    "end\n"
    "redis.call('SADD', 'analytics:writing', g)\n"
    "return out\n";

/* ARGV[1] = the new generation: makes it current, writes only it; returns
 * the generation it replaced. */
static const char SWAP_SCRIPT[] = "local old = redis.call('GET', 'analytics:current')\n"
                                  "redis.call('SET', 'analytics:current', ARGV[1])\n"
                                  "redis.call('DEL', 'analytics:writing')\n"
                                  "redis.call('SADD', 'analytics:writing', ARGV[1])\n"
                                  "return old or ''\n";

typedef struct rebuild {
    oms_config cfg;
    js_conn *js;
    redis_conn *redis;
    metrics *m;
    analytics_ctx ctx;
    rconsumer_spec specs[ANALYTICS_N_CONSUMERS];
    rconsumer *consumers[ANALYTICS_N_CONSUMERS];
    char lock_token[37];
    long long replayed; /* events the replay applied to the new generation */
} rebuild;

static atomic_int interrupted;

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&interrupted, 1);
}

static oms_status command(rebuild *rb, redisReply **out, const char *const *argv, size_t argc)
{
    redis_args a;
    oms_status s = OMS_OK;
    redis_args_init(&a);
    for (size_t i = 0; i < argc && s == OMS_OK; i++)
        s = redis_args_add_str(&a, argv[i]);
    if (s == OMS_OK)
        s = redis_command_args(rb->redis, &a, out);
    redis_args_fini(&a);
    if (s == OMS_OK && (*out)->type == REDIS_REPLY_ERROR) {
        log_error("Redis refused a rebuild command", "command", argv[0], "error", (*out)->str,
                  NULL);
        freeReplyObject(*out);
        *out = NULL;
        s = OMS_EDB;
    }
    return s;
}

oms_status analytics_drop_generation(redis_conn *r, const char *gen)
{
    char pattern[64], cursor[32] = "0";
    snprintf(pattern, sizeof pattern, "analytics:%s:*", gen);
    do {
        redisReply *rep = redisCommand(redis_context(r), "SCAN %s MATCH %s COUNT " SCAN_COUNT,
                                       cursor, pattern);
        if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
            freeReplyObject(rep);
            return OMS_ETRANSIENT;
        }
        snprintf(cursor, sizeof cursor, "%s", rep->element[0]->str);
        redisReply *keys = rep->element[1];
        if (keys->elements > 0) {
            redis_args a;
            redisReply *del = NULL;
            oms_status s = OMS_OK;
            redis_args_init(&a);
            s = redis_args_add_str(&a, "UNLINK");
            for (size_t i = 0; i < keys->elements && s == OMS_OK; i++)
                s = redis_args_add(&a, keys->element[i]->str, keys->element[i]->len);
            if (s == OMS_OK)
                s = redis_command_args(r, &a, &del);
            freeReplyObject(del);
            redis_args_fini(&a);
            if (s != OMS_OK) {
                freeReplyObject(rep);
                return s;
            }
        }
        freeReplyObject(rep);
    } while (strcmp(cursor, "0") != 0);
    return OMS_OK;
}

static oms_status lock_take(rebuild *rb)
{
    redisReply *r = NULL;
    oms_uuid4(rb->lock_token);
    const char *argv[] = {"SET", LOCK_KEY, rb->lock_token, "NX", "EX", LOCK_TTL_TEXT};
    oms_status s = command(rb, &r, argv, 6);
    if (s == OMS_OK && r->type == REDIS_REPLY_NIL) {
        fprintf(stderr,
                "analytics rebuild: another rebuild holds %s (it expires %d s after"
                " that rebuild last progressed)\n",
                LOCK_KEY, LOCK_TTL_S);
        s = OMS_EINVAL;
    }
    freeReplyObject(r);
    return s;
}

static void lock_release(rebuild *rb)
{
    redisReply *r = redisCommand(redis_context(rb->redis), "EVAL %s 1 %s %s",
                                 "if redis.call('GET', KEYS[1]) == ARGV[1] then"
                                 " return redis.call('DEL', KEYS[1]) end return 0",
                                 LOCK_KEY, rb->lock_token);
    freeReplyObject(r);
}

/* Opens the new generation; forgets (and deletes) ones a crash left behind. */
static oms_status begin(rebuild *rb)
{
    redisReply *r = NULL;
    const char *argv[] = {"EVAL", BEGIN_SCRIPT, "0"};
    oms_status s = command(rb, &r, argv, 3);
    if (s != OMS_OK)
        return s;
    snprintf(rb->ctx.target_gen, sizeof rb->ctx.target_gen, "%s", r->element[0]->str);
    for (size_t i = 1; i < r->elements && s == OMS_OK; i++) {
        log_warn("deleting a generation a stopped rebuild left", "generation", r->element[i]->str,
                 NULL);
        s = analytics_drop_generation(rb->redis, r->element[i]->str);
    }
    freeReplyObject(r);
    if (s == OMS_OK)
        s = analytics_drop_generation(rb->redis, rb->ctx.target_gen);
    return s;
}

/* The replay's durables start from the stream's first message: delete any
 * that a stopped rebuild left, which would resume where it stopped. */
static void delete_durables(rebuild *rb)
{
    for (size_t i = 0; i < ANALYTICS_N_CONSUMERS; i++)
        js_DeleteConsumer(js_ctx(rb->js), rb->specs[i].pull.stream, rb->specs[i].pull.durable, NULL,
                          NULL);
}

/* Where each replay may stop: the last sequence its stream held once the new
 * generation was being written (later events reach it through the live
 * consumers). */
static oms_status set_replay_ends(rebuild *rb)
{
    for (size_t i = 0; i < ANALYTICS_N_CONSUMERS; i++) {
        jsStreamInfo *si = NULL;
        jsErrCode code = 0;
        if (js_GetStreamInfo(&si, js_ctx(rb->js), rb->specs[i].pull.stream, NULL, &code) !=
            NATS_OK) {
            fprintf(stderr, "analytics rebuild: cannot read stream %s\n", rb->specs[i].pull.stream);
            return OMS_ENATS;
        }
        rb->specs[i].replay_until_seq = si->State.LastSeq;
        jsStreamInfo_Destroy(si);
    }
    return OMS_OK;
}

static oms_status replay(rebuild *rb)
{
    rconsumer_env env = {rb->cfg.redis_url, rb->cfg.pg_dsn, "analytics", rb->js, rb->m};
    oms_status s = OMS_OK;
    int64_t last_log = oms_mono_ms();
    delete_durables(rb);
    for (size_t i = 0; i < ANALYTICS_N_CONSUMERS && s == OMS_OK; i++)
        s = rconsumer_start(&rb->consumers[i], &rb->specs[i], &env);
    for (bool done = false; s == OMS_OK && !done;) {
        oms_sleep_ms(100, &interrupted);
        if (atomic_load(&interrupted))
            s = OMS_ETRANSIENT;
        done = true;
        for (size_t i = 0; i < ANALYTICS_N_CONSUMERS; i++)
            done = done && rconsumer_caught_up(rb->consumers[i]);
        if (oms_mono_ms() - last_log > 5000) {
            char applied[24];
            long long sum = 0;
            for (size_t i = 0; i < ANALYTICS_N_CONSUMERS; i++)
                sum += rconsumer_applied(rb->consumers[i]);
            snprintf(applied, sizeof applied, "%lld", sum);
            log_info("rebuild progressing", "events", applied, NULL);
            redisReply *r = redisCommand(redis_context(rb->redis), "EXPIRE %s %d", LOCK_KEY,
                                         LOCK_TTL_S);
            freeReplyObject(r);
            last_log = oms_mono_ms();
        }
    }
    for (size_t i = 0; i < ANALYTICS_N_CONSUMERS; i++) {
        rb->replayed += rconsumer_applied(rb->consumers[i]);
        rconsumer_stop(rb->consumers[i]);
        rb->consumers[i] = NULL;
    }
    delete_durables(rb);
    return s;
}

static oms_status swap(rebuild *rb, char old[ANALYTICS_GEN_LEN])
{
    redisReply *r = NULL;
    const char *argv[] = {"EVAL", SWAP_SCRIPT, "0", rb->ctx.target_gen};
    oms_status s = command(rb, &r, argv, 4);
    if (s == OMS_OK)
        snprintf(old, ANALYTICS_GEN_LEN, "%s", r->str ? r->str : "");
    freeReplyObject(r);
    return s;
}

/* A rebuild that did not finish: stop writing its generation and delete it. */
static void abandon(rebuild *rb)
{
    if (rb->ctx.target_gen[0] == '\0' || !redis_ok(rb->redis))
        return;
    redisReply *r = redisCommand(redis_context(rb->redis), "SREM analytics:writing %s",
                                 rb->ctx.target_gen);
    freeReplyObject(r);
    analytics_drop_generation(rb->redis, rb->ctx.target_gen);
}

static oms_status connect_all(rebuild *rb)
{
    char err[REDIS_ERR_LEN];
    /* As the service: its NATS user may read replies on its inbox prefix only. */
    js_identity id = js_identity_of(&rb->cfg);
    oms_status s = js_connect_as(&rb->js, rb->cfg.nats_url, &id, "analytics-rebuild");
    for (int i = 0; s == OMS_OK && i < 100 && !js_connected(rb->js); i++)
        oms_sleep_ms(100, NULL);
    if (s != OMS_OK || !js_connected(rb->js)) {
        fprintf(stderr, "analytics rebuild: cannot connect to NATS at %s\n", rb->cfg.nats_url);
        return OMS_ETRANSIENT;
    }
    /* ingest and refund own the streams it replays: it only reads them. */
    static const char *const streams[] = {"ORDERS", "REFUNDS"};
    for (size_t i = 0; i < sizeof streams / sizeof streams[0]; i++)
        if ((s = js_stream_exists(rb->js, streams[i])) != OMS_OK) {
            fprintf(stderr,
                    "analytics rebuild: cannot read stream %s (%s): %s creates it when "
                    "it starts\n",
                    streams[i], oms_strstatus(s), js_stream_owner(streams[i]));
            return s;
        }
    if ((s = redis_connect(&rb->redis, rb->cfg.redis_url, REDIS_TIMEOUT_MS, err)) != OMS_OK)
        fprintf(stderr, "analytics rebuild: %s\n", err);
    return s;
}

static oms_status run(rebuild *rb)
{
    char old[ANALYTICS_GEN_LEN] = "";
    int64_t t0 = oms_mono_ms();
    oms_status s;
    if ((s = connect_all(rb)) != OMS_OK || (s = lock_take(rb)) != OMS_OK)
        return s;
    if ((s = begin(rb)) == OMS_OK) {
        log_info("rebuild started", "generation", rb->ctx.target_gen, NULL);
        analytics_specs_init(rb->specs, &rb->ctx, &rb->cfg, "analytics-rebuild", true);
        if ((s = set_replay_ends(rb)) == OMS_OK)
            s = replay(rb);
    }
    if (s == OMS_OK)
        s = swap(rb, old);
    if (s == OMS_OK && old[0] != '\0' && strcmp(old, rb->ctx.target_gen) != 0) {
        oms_sleep_ms(SWAP_GRACE_MS, NULL); /* readers that just read the old name */
        s = analytics_drop_generation(rb->redis, old);
    }
    if (s == OMS_OK) {
        printf("analytics rebuild: %lld events replayed; generation %s is current (replaced %s)"
               " after %.1f s\n",
               rb->replayed, rb->ctx.target_gen, old[0] ? old : "none",
               (double)(oms_mono_ms() - t0) / 1000);
    } else {
        abandon(rb);
        fprintf(stderr, "analytics rebuild: stopped (%s); the live projection is unchanged\n",
                oms_strstatus(s));
    }
    lock_release(rb);
    return s;
}

int analytics_rebuild_main(void)
{
    rebuild rb;
    char err[CONFIG_ERR_LEN];
    memset(&rb, 0, sizeof rb);
    if (config_load(&rb.cfg, "analytics", OMS_PORT_ANALYTICS, err) != OMS_OK) {
        fprintf(stderr, "analytics rebuild: configuration error: %s\n", err);
        return 2;
    }
    log_init("analytics-rebuild", (log_level)rb.cfg.log_level);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    rb.ctx.currency = rb.cfg.currency;
    rb.ctx.seen_ttl_s = rb.cfg.stream_max_age_ms / 1000 + 86400;
    rb.m = metrics_create();
    rb.ctx.m = rb.m;
    if (rb.m != NULL)
        analytics_metrics_declare(rb.m);
    oms_status s = rb.m ? run(&rb) : OMS_ENOMEM;
    redis_conn_destroy(rb.redis);
    js_conn_destroy(rb.js);
    metrics_destroy(rb.m);
    return s == OMS_OK ? 0 : 1;
}
