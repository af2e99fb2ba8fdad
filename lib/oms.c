/*
 * oms.c - status names, clocks, UUIDs and constant-time comparison.
 */
#include "oms.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *oms_strstatus(oms_status s)
{
    switch (s) {
    case OMS_OK: return "ok";
    case OMS_ENOMEM: return "out of memory";
    case OMS_EINVAL: return "invalid input";
    case OMS_EDB: return "database error";
    case OMS_ETRANSIENT: return "transient failure";
    case OMS_ENATS: return "NATS error";
    case OMS_EIO: return "I/O error";
    case OMS_ENOTFOUND: return "not found";
    case OMS_ETIMEOUT: return "timeout";
    }
    return "unknown status";
}

int64_t oms_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t oms_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void oms_sleep_ms(int64_t ms, const atomic_int *stop)
{
    while (ms > 0 && (stop == NULL || !atomic_load(stop))) {
        int64_t step = ms < 50 ? ms : 50;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = step * 1000000};
        nanosleep(&ts, NULL);
        ms -= step;
    }
}

void oms_uuid4(char out[37])
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof b) != 1) {
        /* RAND_bytes only fails when the OS entropy source is broken; an event
         * id that might collide is worse than stopping. */
        fprintf(stderr, "fatal: RAND_bytes failed\n");
        abort();
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

bool oms_secret_equal(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return false;
    size_t la = strlen(a), lb = strlen(b);
    /* Compare over the expected length whatever the input, so timing shows
     * nothing but the (public) length of the secret. */
    unsigned char diff = (unsigned char)(la != lb);
    for (size_t i = 0; i < la; i++)
        diff |= (unsigned char)(a[i] ^ (i < lb ? b[i] : 0));
    return diff == 0 && CRYPTO_memcmp(a, b, la < lb ? la : lb) == 0;
}
