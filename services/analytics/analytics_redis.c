/*
 * analytics_redis.c - the Redis connection the query handlers and the
 * snapshot thread share: a lib/connpool of one, so they take turns on it
 * (as they did under a mutex), and a broken connection is replaced on the
 * next use. Its own module so neither user depends on the other.
 */
#include "analytics.h"

#include "connpool.h"
#include "log.h"

#include <stdlib.h>

#define REDIS_TIMEOUT_MS 2000

struct analytics_redis {
    const char *url;
    connpool *pool;
};

static oms_status redis_pool_connect(void *ctx, void **conn)
{
    analytics_redis *ar = ctx;
    char err[REDIS_ERR_LEN];
    redis_conn *c = NULL;
    oms_status s = redis_connect(&c, ar->url, REDIS_TIMEOUT_MS, err);
    if (s != OMS_OK) {
        log_warn("Redis unavailable for a query", "error", err, NULL);
        return s;
    }
    *conn = c;
    return OMS_OK;
}

static bool redis_pool_ok(void *ctx, void *conn)
{
    (void)ctx;
    return redis_ok(conn);
}

static void redis_pool_close(void *ctx, void *conn)
{
    (void)ctx;
    redis_conn_destroy(conn);
}

static const connpool_ops redis_pool_ops = {redis_pool_connect, redis_pool_ok, NULL,
                                            redis_pool_close};

oms_status analytics_redis_create(analytics_redis **out, const char *url)
{
    oms_status s = OMS_ENOMEM;
    analytics_redis *ar = calloc(1, sizeof *ar);
    if (ar == NULL)
        goto out;
    ar->url = url;
    if ((s = connpool_create(&ar->pool, 1, &redis_pool_ops, ar)) != OMS_OK)
        goto out;
    *out = ar;
    ar = NULL;
out:
    free(ar);
    return s;
}

void analytics_redis_destroy(analytics_redis *ar)
{
    if (ar == NULL)
        return;
    connpool_destroy(ar->pool);
    free(ar);
}

redis_conn *analytics_redis_acquire(analytics_redis *ar)
{
    void *c = NULL;
    /* Waits its turn without bound: a Redis command is bounded by
     * REDIS_TIMEOUT_MS, so the holder always gives it back. */
    if (connpool_take(ar->pool, CONNPOOL_WAIT_FOREVER, &c) != OMS_OK)
        return NULL;
    return c;
}

void analytics_redis_release(analytics_redis *ar, redis_conn *c)
{
    connpool_give(ar->pool, c);
}
