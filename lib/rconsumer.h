/*
 * rconsumer.h - idempotent batch consumers whose effect lives in Redis:
 * fetch up to N messages from a durable pull consumer, turn each into the
 * arguments of one Lua script call, send the whole batch as one pipelined
 * round trip of EVALSHA, and ack only after Redis answered.
 *
 * The script does the inbox's job: it records the event id (with a TTL longer
 * than the streams' retention) together with its effect, atomically, and does
 * nothing for an id it has seen. So a crash or a lost connection between the
 * script and the ack redelivers the batch, and the redelivery changes nothing.
 * The script returns an integer: 1 when it applied the event, 0 when it had
 * seen it.
 *
 * A message the service cannot encode (undecodable, invalid), or whose call
 * the script refuses with an error, goes to the service's dead_letters table
 * in PostgreSQL and is terminated. When Redis is unreachable the batch is
 * nak'ed with a delay and the loop connects again with backoff.
 *
 * Boundary checks and attempts are those of lib/consumer (consumer.h): a
 * message refused at the boundary, one Redis still cannot apply on its last
 * attempt, and one delivered past the last attempt are dead-lettered.
 *
 * Replay mode (rebuilds): the durable is read from the stream's start until
 * nothing is pending; rejected messages are counted, not dead-lettered again.
 */
#ifndef OMS_RCONSUMER_H
#define OMS_RCONSUMER_H

#include "consumer.h"
#include "redis.h"

struct js_conn;
struct metrics;

/* Appends the script's ARGV for message m to args (empty on entry). Rejects
 * an invalid message with rconsumer_reject and returns OMS_OK; any other
 * status (OMS_ENOMEM) naks the batch. */
typedef oms_status (*rconsumer_encode_fn)(void *ctx, oms_msg *m, redis_args *args);

/* Called once the script answered for m, before the ack: result is the
 * script's integer (1 applied, 0 seen before). Optional (metrics). */
typedef void (*rconsumer_done_fn)(void *ctx, const oms_msg *m, long long result);

/* Marks m as rejected (dead letter) with a formatted reason. */
void rconsumer_reject(oms_msg *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

typedef struct rconsumer_spec {
    pullsub_spec pull;  /* the durable and how it is fetched */
    const char *script; /* Lua source, loaded once and called by SHA */
    rconsumer_encode_fn encode;
    rconsumer_done_fn done;
    void *ctx;
    bool replay;               /* stop being useful once caught up: see rconsumer_caught_up */
    uint64_t replay_until_seq; /* replay: also caught up once past this stream sequence
                                * (0: only when nothing is pending) */
} rconsumer_spec;

/* What the consumers of a service share; borrowed for the consumer's life.
 * dsn and schema locate dead_letters (connected to only when needed). */
typedef struct rconsumer_env {
    const char *redis_url;
    const char *dsn;
    const char *schema;
    struct js_conn *js;
    struct metrics *m;
} rconsumer_env;

typedef struct rconsumer rconsumer;

/* Starts a consumer thread. spec and env are borrowed. */
oms_status rconsumer_start(rconsumer **out, const rconsumer_spec *spec, const rconsumer_env *env);

/* Stops fetching, finishes (and acks) the batch in hand, joins; NULL is a no-op. */
void rconsumer_stop(rconsumer *c);

/* True once bound to the durable and connected to Redis. */
bool rconsumer_ready(rconsumer *c);

/* Replay mode: true once nothing was pending on the durable, or a message
 * at or past replay_until_seq was applied (a stream that never stops growing
 * still ends a replay). */
bool rconsumer_caught_up(rconsumer *c);

/* Messages applied (script answered 1) since start. */
long long rconsumer_applied(rconsumer *c);

#endif
