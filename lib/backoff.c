/*
 * backoff.c - the retry policy of every loop (backoff.h).
 */
#include "backoff.h"

#include <stdlib.h>

int64_t oms_backoff_next(oms_backoff *b)
{
    int64_t ceiling = b->ceiling_ms > 0 ? b->ceiling_ms : 1;
    /* random() is thread-safe in glibc; a retry's timing needs no more. */
    int64_t wait = ceiling / 2 + (int64_t)(random() % (ceiling / 2 + 1));
    b->ceiling_ms = ceiling >= b->max_ms / 2 ? b->max_ms : ceiling * 2;
    return wait;
}

void oms_backoff_sleep(oms_backoff *b, const atomic_int *stop)
{
    oms_sleep_ms(oms_backoff_next(b), stop);
}

void oms_backoff_reset(oms_backoff *b)
{
    b->ceiling_ms = b->min_ms;
}

int64_t oms_backoff_delay_ms(int failed_attempts, int64_t base_ms, int64_t cap_ms)
{
    int64_t delay = base_ms;
    /* Doubling past the cap is pointless, and stops before any overflow. */
    for (int i = 1; i < failed_attempts && delay < cap_ms; i++)
        delay *= 2;
    return delay < cap_ms ? delay : cap_ms;
}
