/*
 * payment_mock.c - the mock gateway's decision: deterministic, so a test (or
 * an operator) can predict which orders succeed from the seed alone.
 *
 * The draw is 64-bit FNV-1a (http://www.isthe.com/chongo/tech/comp/fnv/,
 * offset basis 0xcbf29ce484222325, prime 0x100000001b3) of the bytes
 * "<seed>:<order_id>", passed through MurmurHash3's 64-bit finalizer
 * (fmix64); the top 53 bits, divided by 2^53, give a double in [0, 1) with
 * no rounding. An order succeeds when its draw is below the rate.
 *
 * Why the finalizer: FNV-1a's last multiplication carries the last bytes
 * into the top bits only weakly, so sequential ids (ORD-000001, ORD-000002,
 * ...) would draw nearly the same number in runs of ten or a hundred, and a
 * 0.9 rate would come out as 0.88 or 0.91 on a batch. fmix64 spreads every
 * input bit over the whole word.
 */
#include "payment.h"

#include <string.h>

uint64_t payment_fnv1a64(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= PAYMENT_FNV_PRIME;
    }
    return h;
}

uint64_t payment_fmix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

double payment_mock_draw(const char *seed, const char *order_id)
{
    uint64_t h = payment_fnv1a64(PAYMENT_FNV_OFFSET, seed, strlen(seed));
    h = payment_fnv1a64(h, ":", 1);
    h = payment_fmix64(payment_fnv1a64(h, order_id, strlen(order_id)));
    return (double)(h >> 11) / 9007199254740992.0; /* 2^53 */
}

bool payment_mock_succeeds(const char *seed, const char *order_id, double success_rate)
{
    return payment_mock_draw(seed, order_id) < success_rate;
}
