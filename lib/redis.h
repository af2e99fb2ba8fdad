/*
 * redis.h - Redis through hiredis: a connection from OMS_REDIS_URL, argument
 * vectors, and Lua scripts called by SHA in one pipelined round trip.
 *
 * A script is sent once with SCRIPT LOAD and then called with EVALSHA; when
 * Redis answers NOSCRIPT (it restarted, or SCRIPT FLUSH ran) the script is
 * loaded again and the calls that got NOSCRIPT are sent again. Any socket
 * error leaves the connection unusable (redis_ok false): the caller drops it
 * and connects again.
 */
#ifndef OMS_REDIS_H
#define OMS_REDIS_H

#include "oms.h"

#include <hiredis/hiredis.h>

#define REDIS_SHA_LEN 41 /* 40 hex digits and NUL */
#define REDIS_ERR_LEN 256

typedef struct redis_conn redis_conn;

/* Connects to url, "redis://[[user]:password@]host[:port][/db]", with
 * timeout_ms for the connection and for every reply; sends AUTH and SELECT
 * when the URL names them. OMS_EINVAL (with err) for a malformed URL,
 * OMS_ETRANSIENT (with err) when Redis cannot be reached. Caller frees with
 * redis_conn_destroy. */
oms_status redis_connect(redis_conn **out, const char *url, int64_t timeout_ms,
                         char err[REDIS_ERR_LEN]);

/* Closes and frees; NULL is a no-op. */
void redis_conn_destroy(redis_conn *c);

/* False once a socket error happened: the connection must be replaced. */
bool redis_ok(const redis_conn *c);

/* The hiredis context, for plain commands (redisCommand). Borrowed. */
redisContext *redis_context(redis_conn *c);

/* One command's arguments, each with its length (binary safe). */
typedef struct redis_args {
    char **argv;
    size_t *lens;
    size_t n, cap;
} redis_args;

void redis_args_init(redis_args *a);
void redis_args_reset(redis_args *a); /* empties, keeps the memory */
void redis_args_fini(redis_args *a);
/* Appends a copy of len bytes of v. */
oms_status redis_args_add(redis_args *a, const char *v, size_t len);
oms_status redis_args_add_str(redis_args *a, const char *v);
oms_status redis_args_add_int(redis_args *a, int64_t v);

/* A Lua script and its SHA1 once loaded. source is borrowed. */
typedef struct redis_script {
    const char *source;
    char sha[REDIS_SHA_LEN];
} redis_script;

/* Calls the script once per calls[i] (its ARGV; no KEYS) in one pipelined
 * round trip, and stores each reply in replies[i] (caller frees each with
 * freeReplyObject; an error reply is a REDIS_REPLY_ERROR the script raised).
 * Loads the script first when it has no SHA yet, and again on NOSCRIPT.
 * OMS_ETRANSIENT when the connection failed: then no reply is returned and
 * the connection must be replaced; the calls may or may not have run. */
oms_status redis_eval_pipeline(redis_conn *c, redis_script *script, const redis_args *calls,
                               size_t n, redisReply **replies);

/* Runs one command given as arguments and returns its reply (caller frees).
 * OMS_ETRANSIENT on a connection failure; an error reply is returned as is. */
oms_status redis_command_args(redis_conn *c, const redis_args *args, redisReply **out);

#endif
