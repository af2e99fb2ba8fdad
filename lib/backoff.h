/*
 * backoff.h - how every loop of OMS waits after a failure (a peer down, a
 * statement refused): from min_ms, doubling to max_ms, reset by a success,
 * with equal jitter so that the processes a failure stopped together (every
 * consumer when PostgreSQL restarts) do not all retry in the same
 * millisecond. The one policy of the consumers, the outbox relay, the
 * background workers and start-up.
 */
#ifndef OMS_BACKOFF_H
#define OMS_BACKOFF_H

#include "oms.h"

#include <stdatomic.h>

typedef struct oms_backoff {
    int64_t min_ms, max_ms;
    int64_t ceiling_ms; /* the longest next wait: min_ms after a success */
} oms_backoff;

/* The policy of OMS's loops: 100 ms doubling to 5 s. */
#define OMS_BACKOFF_MIN_MS 100
#define OMS_BACKOFF_MAX_MS 5000
/* clang-format off: it would spread one initializer over four lines */
#define OMS_BACKOFF_INIT                                           \
    {                                                              \
        OMS_BACKOFF_MIN_MS, OMS_BACKOFF_MAX_MS, OMS_BACKOFF_MIN_MS \
    }
/* clang-format on */

/* The wait after one more failure, a random time in [ceiling/2, ceiling];
 * then the ceiling doubles, up to max_ms. */
int64_t oms_backoff_next(oms_backoff *b);

/* Sleeps oms_backoff_next(b); returns early once *stop (may be NULL) is set. */
void oms_backoff_sleep(oms_backoff *b, const atomic_int *stop);

/* After a success: the next failure waits about min_ms again. */
void oms_backoff_reset(oms_backoff *b);

/* The delay before a stored row's next attempt (its next_attempt_at) after
 * failed_attempts failures: base_ms * 2^(failed_attempts - 1), at most cap_ms;
 * base_ms for 0 or 1 failures. Pure, no jitter: the row's attempt count is
 * the state, and rows spread by when they failed. */
int64_t oms_backoff_delay_ms(int failed_attempts, int64_t base_ms, int64_t cap_ms);

#endif
