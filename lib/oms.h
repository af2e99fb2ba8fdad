/*
 * oms.h - status codes and small helpers shared by every module.
 *
 * Functions that can fail return oms_status; results go out through pointer
 * parameters that are set only on success.
 */
#ifndef OMS_H
#define OMS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum oms_status {
    OMS_OK = 0,
    OMS_ENOMEM,     /* allocation failed */
    OMS_EINVAL,     /* bad input: the caller or the data is wrong, retrying will not help */
    OMS_EDB,        /* PostgreSQL refused a statement (not a connection problem) */
    OMS_ETRANSIENT, /* a peer is down or busy (connection lost, deadlock): retry later */
    OMS_ENATS,      /* NATS / JetStream error */
    OMS_EIO,        /* file or socket error */
    OMS_ENOTFOUND,
    OMS_ETIMEOUT,
} oms_status;

/* Static text for a status, for logs. */
const char *oms_strstatus(oms_status s);

/* Wall clock in milliseconds since the epoch (UTC). */
int64_t oms_now_ms(void);

/* Monotonic clock in milliseconds, for deadlines and durations. */
int64_t oms_mono_ms(void);

/* Sleeps up to ms, returning early when *stop becomes true (checked every 50 ms;
 * stop may be NULL). */
void oms_sleep_ms(int64_t ms, const atomic_int *stop);

/* Writes a random UUIDv4 ("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx") into out[37]. */
void oms_uuid4(char out[37]);

/* Constant-time equality of two NUL-terminated secrets (false if either is NULL). */
bool oms_secret_equal(const char *a, const char *b);

#endif
