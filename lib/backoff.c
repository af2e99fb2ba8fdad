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
