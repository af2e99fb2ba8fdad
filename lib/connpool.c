/*
 * connpool.c - the bounded connection pool (connpool.h).
 *
 * One mutex guards the idle stack and the count of open slots; a condition
 * variable wakes a waiter when a connection or a slot is given back. A slot
 * is reserved under the lock before connecting, so the pool never opens more
 * than cap connections however many threads race for the last one, and a
 * slow connect holds no other taker up.
 */
#include "connpool.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

struct connpool {
    pthread_mutex_t lock;
    pthread_cond_t freed;
    const connpool_ops *ops;
    void *ctx;
    void **idle; /* cap entries; idle[0..n_idle) are free */
    size_t n_idle;
    size_t n_open; /* idle, lent, or being connected */
    size_t cap;
    atomic_int up;
};

oms_status connpool_create(connpool **out, size_t cap, const connpool_ops *ops, void *ctx)
{
    oms_status s = OMS_ENOMEM;
    connpool *p = calloc(1, sizeof *p);
    if (p == NULL || cap == 0 || (p->idle = calloc(cap, sizeof *p->idle)) == NULL) {
        s = cap == 0 ? OMS_EINVAL : OMS_ENOMEM;
        goto out;
    }
    p->ops = ops;
    p->ctx = ctx;
    p->cap = cap;
    atomic_store(&p->up, 1);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->freed, NULL);
    *out = p;
    p = NULL;
    s = OMS_OK;
out:
    if (p != NULL)
        free(p->idle);
    free(p);
    return s;
}

void connpool_destroy(connpool *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->n_idle; i++)
        p->ops->close(p->ctx, p->idle[i]);
    free(p->idle);
    pthread_cond_destroy(&p->freed);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

static struct timespec deadline_after(int64_t ms)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

/* Gives up a slot that holds no connection (a failed connect, a closed one). */
static void forget_slot(connpool *p)
{
    pthread_mutex_lock(&p->lock);
    p->n_open--;
    pthread_cond_signal(&p->freed);
    pthread_mutex_unlock(&p->lock);
}

/* Under no lock: an idle connection, or a reserved slot (*conn NULL), or
 * OMS_ETIMEOUT. */
static oms_status wait_for_one(connpool *p, int64_t wait_ms, void **conn)
{
    oms_status s = OMS_ETIMEOUT;
    struct timespec until = deadline_after(wait_ms > 0 ? wait_ms : 0);
    pthread_mutex_lock(&p->lock);
    while (p->n_idle == 0 && p->n_open == p->cap && wait_ms != 0) {
        if (wait_ms < 0)
            pthread_cond_wait(&p->freed, &p->lock);
        else if (pthread_cond_timedwait(&p->freed, &p->lock, &until) == ETIMEDOUT)
            break;
    }
    if (p->n_idle > 0) {
        *conn = p->idle[--p->n_idle];
        s = OMS_OK;
    } else if (p->n_open < p->cap) {
        p->n_open++;
        *conn = NULL;
        s = OMS_OK;
    }
    pthread_mutex_unlock(&p->lock);
    return s;
}

oms_status connpool_take(connpool *p, int64_t wait_ms, void **conn)
{
    void *c = NULL;
    oms_status s = wait_for_one(p, wait_ms, &c);
    if (s != OMS_OK)
        return s;
    if (c != NULL && p->ops->ok(p->ctx, c)) {
        *conn = c;
        return OMS_OK;
    }
    if (c != NULL) /* broken while idle: replaced in its slot */
        p->ops->close(p->ctx, c);
    c = NULL;
    if (p->ops->connect(p->ctx, &c) != OMS_OK) {
        atomic_store(&p->up, 0);
        forget_slot(p);
        return OMS_ETRANSIENT;
    }
    atomic_store(&p->up, 1);
    *conn = c;
    return OMS_OK;
}

void connpool_give(connpool *p, void *conn)
{
    if (conn == NULL)
        return;
    bool ok = p->ops->ok(p->ctx, conn);
    if (!ok)
        atomic_store(&p->up, 0);
    if (!ok || (p->ops->reusable != NULL && !p->ops->reusable(p->ctx, conn))) {
        p->ops->close(p->ctx, conn);
        forget_slot(p);
        return;
    }
    pthread_mutex_lock(&p->lock);
    p->idle[p->n_idle++] = conn;
    pthread_cond_signal(&p->freed);
    pthread_mutex_unlock(&p->lock);
}

bool connpool_up(const connpool *p)
{
    return atomic_load(&p->up) != 0;
}

void connpool_mark(connpool *p, bool up)
{
    atomic_store(&p->up, up ? 1 : 0);
}
