/*
 * redis.c - hiredis connections, argument vectors and pipelined scripts.
 *
 * Blocking hiredis with a socket timeout: a consumer thread owns its
 * connection and waits for its own round trip, so the asynchronous API would
 * add callbacks and buy nothing.
 */
#include "redis.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define URL_PREFIX "redis://"
#define HOST_LEN 256
#define SECRET_LEN 256

struct redis_conn {
    redisContext *ctx;
    bool broken;
};

/* ---- URL --------------------------------------------------------------- */

typedef struct redis_url {
    char host[HOST_LEN];
    int port;
    long db;
    char user[SECRET_LEN];
    char password[SECRET_LEN];
} redis_url;

static oms_status parse_number(const char *text, size_t len, long max, long *out)
{
    long v = 0;
    if (len == 0 || len > 9)
        return OMS_EINVAL;
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9')
            return OMS_EINVAL;
        v = v * 10 + (text[i] - '0');
    }
    if (v > max)
        return OMS_EINVAL;
    *out = v;
    return OMS_OK;
}

static oms_status parse_userinfo(const char *info, size_t len, redis_url *u)
{
    const char *colon = memchr(info, ':', len);
    if (colon == NULL || len >= SECRET_LEN)
        return OMS_EINVAL; /* a password is required when userinfo is given */
    snprintf(u->user, sizeof u->user, "%.*s", (int)(colon - info), info);
    snprintf(u->password, sizeof u->password, "%.*s", (int)(len - (size_t)(colon - info) - 1),
             colon + 1);
    return OMS_OK;
}

static oms_status parse_url(const char *url, redis_url *u, char err[REDIS_ERR_LEN])
{
    memset(u, 0, sizeof *u);
    u->port = 6379;
    const char *p = url + strlen(URL_PREFIX), *slash, *at, *colon;
    long port = 0;
    if (strncmp(url, URL_PREFIX, strlen(URL_PREFIX)) != 0)
        goto bad;
    slash = strchr(p, '/');
    size_t authority_len = slash ? (size_t)(slash - p) : strlen(p);
    at = memrchr(p, '@', authority_len);
    if (at != NULL) {
        if (parse_userinfo(p, (size_t)(at - p), u) != OMS_OK)
            goto bad;
        authority_len -= (size_t)(at + 1 - p);
        p = at + 1;
    }
    colon = memchr(p, ':', authority_len);
    size_t host_len = colon ? (size_t)(colon - p) : authority_len;
    if (host_len == 0 || host_len >= HOST_LEN)
        goto bad;
    snprintf(u->host, sizeof u->host, "%.*s", (int)host_len, p);
    if (colon != NULL) {
        if (parse_number(colon + 1, authority_len - host_len - 1, 65535, &port) != OMS_OK ||
            port == 0)
            goto bad;
        u->port = (int)port;
    }
    if (slash != NULL && slash[1] != '\0' &&
        parse_number(slash + 1, strlen(slash + 1), 1000000, &u->db) != OMS_OK)
        goto bad;
    return OMS_OK;
bad:
    snprintf(err, REDIS_ERR_LEN,
             "Redis URL \"%.120s\" is invalid: expected redis://[[user]:password@]host[:port][/db]",
             url);
    return OMS_EINVAL;
}

/* ---- connection -------------------------------------------------------- */

static oms_status expect_ok(redis_conn *c, redisReply *r, const char *what, char err[REDIS_ERR_LEN])
{
    oms_status s = OMS_OK;
    if (r == NULL) {
        snprintf(err, REDIS_ERR_LEN, "%s: %s", what, c->ctx->errstr);
        s = OMS_ETRANSIENT;
    } else if (r->type == REDIS_REPLY_ERROR) {
        snprintf(err, REDIS_ERR_LEN, "%s refused: %s", what, r->str);
        s = OMS_EINVAL;
    }
    freeReplyObject(r);
    return s;
}

static oms_status handshake(redis_conn *c, const redis_url *u, char err[REDIS_ERR_LEN])
{
    oms_status s = OMS_OK;
    if (u->password[0] != '\0' && u->user[0] != '\0')
        s = expect_ok(c, redisCommand(c->ctx, "AUTH %s %s", u->user, u->password), "AUTH", err);
    else if (u->password[0] != '\0')
        s = expect_ok(c, redisCommand(c->ctx, "AUTH %s", u->password), "AUTH", err);
    if (s == OMS_OK && u->db != 0)
        s = expect_ok(c, redisCommand(c->ctx, "SELECT %ld", u->db), "SELECT", err);
    return s;
}

oms_status redis_connect(redis_conn **out, const char *url, int64_t timeout_ms,
                         char err[REDIS_ERR_LEN])
{
    redis_url u;
    redis_conn *c = NULL;
    oms_status s = parse_url(url, &u, err);
    if (s != OMS_OK)
        return s;
    struct timeval tv = {(time_t)(timeout_ms / 1000), (suseconds_t)(timeout_ms % 1000) * 1000};
    if ((c = calloc(1, sizeof *c)) == NULL)
        return OMS_ENOMEM;
    c->ctx = redisConnectWithTimeout(u.host, u.port, tv);
    if (c->ctx == NULL || c->ctx->err) {
        snprintf(err, REDIS_ERR_LEN, "cannot connect to Redis at %.64s:%d: %.100s", u.host, u.port,
                 c->ctx ? c->ctx->errstr : "out of memory");
        s = OMS_ETRANSIENT;
        goto out;
    }
    if (redisSetTimeout(c->ctx, tv) != REDIS_OK) {
        snprintf(err, REDIS_ERR_LEN, "cannot set the Redis socket timeout");
        s = OMS_ETRANSIENT;
        goto out;
    }
    s = handshake(c, &u, err);
out:
    if (s != OMS_OK) {
        redis_conn_destroy(c);
        return s;
    }
    *out = c;
    return OMS_OK;
}

void redis_conn_destroy(redis_conn *c)
{
    if (c == NULL)
        return;
    if (c->ctx != NULL)
        redisFree(c->ctx);
    free(c);
}

bool redis_ok(const redis_conn *c)
{
    return c != NULL && !c->broken && c->ctx != NULL && c->ctx->err == 0;
}

redisContext *redis_context(redis_conn *c)
{
    return c->ctx;
}

/* ---- arguments --------------------------------------------------------- */

void redis_args_init(redis_args *a)
{
    memset(a, 0, sizeof *a);
}

void redis_args_reset(redis_args *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->argv[i]);
    a->n = 0;
}

void redis_args_fini(redis_args *a)
{
    redis_args_reset(a);
    free(a->argv);
    free(a->lens);
    memset(a, 0, sizeof *a);
}

oms_status redis_args_add(redis_args *a, const char *v, size_t len)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16;
        char **argv = realloc(a->argv, cap * sizeof *argv);
        if (argv == NULL)
            return OMS_ENOMEM;
        a->argv = argv;
        size_t *lens = realloc(a->lens, cap * sizeof *lens);
        if (lens == NULL)
            return OMS_ENOMEM;
        a->lens = lens;
        a->cap = cap;
    }
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return OMS_ENOMEM;
    memcpy(copy, v, len);
    copy[len] = '\0';
    a->argv[a->n] = copy;
    a->lens[a->n++] = len;
    return OMS_OK;
}

oms_status redis_args_add_str(redis_args *a, const char *v)
{
    return redis_args_add(a, v, strlen(v));
}

oms_status redis_args_add_int(redis_args *a, int64_t v)
{
    char buf[24];
    int len = snprintf(buf, sizeof buf, "%lld", (long long)v);
    return redis_args_add(a, buf, (size_t)len);
}

/* ---- commands and scripts ---------------------------------------------- */

static oms_status broken(redis_conn *c, const char *what)
{
    log_warn("Redis connection lost", "during", what, "error",
             c->ctx->errstr[0] ? c->ctx->errstr : "no reply", NULL);
    c->broken = true;
    return OMS_ETRANSIENT;
}

oms_status redis_command_args(redis_conn *c, const redis_args *args, redisReply **out)
{
    if (!redis_ok(c))
        return OMS_ETRANSIENT;
    redisReply *r = redisCommandArgv(c->ctx, (int)args->n, (const char **)args->argv, args->lens);
    if (r == NULL)
        return broken(c, "command");
    *out = r;
    return OMS_OK;
}

static oms_status script_load(redis_conn *c, redis_script *script)
{
    redisReply *r = redisCommand(c->ctx, "SCRIPT LOAD %s", script->source);
    oms_status s = OMS_OK;
    if (r == NULL)
        return broken(c, "SCRIPT LOAD");
    if (r->type == REDIS_REPLY_STRING && r->len == REDIS_SHA_LEN - 1) {
        memcpy(script->sha, r->str, REDIS_SHA_LEN - 1);
        script->sha[REDIS_SHA_LEN - 1] = '\0';
    } else {
        log_error("Redis refused the script", "error",
                  r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply", NULL);
        s = OMS_EINVAL;
    }
    freeReplyObject(r);
    return s;
}

static bool is_noscript(const redisReply *r)
{
    return r != NULL && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

/* Sends EVALSHA for calls[i] where todo[i], then reads every reply. */
static oms_status pipeline_round(redis_conn *c, const redis_script *script, const redis_args *calls,
                                 size_t n, const bool *todo, redisReply **replies)
{
    size_t max_argc = 0;
    for (size_t i = 0; i < n; i++)
        max_argc = calls[i].n > max_argc ? calls[i].n : max_argc;
    const char **argv = malloc((max_argc + 3) * sizeof *argv);
    size_t *lens = malloc((max_argc + 3) * sizeof *lens);
    oms_status s = (argv && lens) ? OMS_OK : OMS_ENOMEM;
    for (size_t i = 0; i < n && s == OMS_OK; i++) {
        if (!todo[i])
            continue;
        argv[0] = "EVALSHA", lens[0] = 7;
        argv[1] = script->sha, lens[1] = REDIS_SHA_LEN - 1;
        argv[2] = "0", lens[2] = 1;
        memcpy(argv + 3, calls[i].argv, calls[i].n * sizeof *argv);
        memcpy(lens + 3, calls[i].lens, calls[i].n * sizeof *lens);
        if (redisAppendCommandArgv(c->ctx, (int)calls[i].n + 3, argv, lens) != REDIS_OK)
            s = OMS_ENOMEM;
    }
    free(argv);
    free(lens);
    if (s != OMS_OK)
        c->broken = true; /* half a pipeline may sit in the output buffer */
    for (size_t i = 0; i < n && s == OMS_OK; i++) {
        void *reply = NULL;
        if (!todo[i])
            continue;
        if (redisGetReply(c->ctx, &reply) != REDIS_OK)
            s = broken(c, "EVALSHA");
        replies[i] = reply;
    }
    return s;
}

static void free_replies(redisReply **replies, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        freeReplyObject(replies[i]);
        replies[i] = NULL;
    }
}

oms_status redis_eval_pipeline(redis_conn *c, redis_script *script, const redis_args *calls,
                               size_t n, redisReply **replies)
{
    bool *todo = malloc((n ? n : 1) * sizeof *todo);
    oms_status s = todo ? OMS_OK : OMS_ENOMEM;
    memset(replies, 0, n * sizeof *replies);
    if (s == OMS_OK && !redis_ok(c))
        s = OMS_ETRANSIENT;
    if (s == OMS_OK && script->sha[0] == '\0')
        s = script_load(c, script);
    for (size_t i = 0; i < n && s == OMS_OK; i++)
        todo[i] = true;
    /* Two rounds at most: the second only for calls that found no script. */
    for (int round = 0; round < 2 && s == OMS_OK; round++) {
        if ((s = pipeline_round(c, script, calls, n, todo, replies)) != OMS_OK)
            break;
        bool again = false;
        for (size_t i = 0; i < n; i++) {
            todo[i] = is_noscript(replies[i]);
            again = again || todo[i];
        }
        if (!again || round == 1)
            break; /* a second NOSCRIPT stays an error reply for the caller */
        for (size_t i = 0; i < n; i++)
            if (todo[i]) {
                freeReplyObject(replies[i]);
                replies[i] = NULL;
            }
        s = script_load(c, script);
    }
    if (s != OMS_OK)
        free_replies(replies, n);
    free(todo);
    return s;
}
