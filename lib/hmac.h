/*
 * hmac.h - signed webhooks: "Oms-Signature: t=<unix seconds>,v1=<hex>" where
 * v1 = HMAC-SHA256(secret, "<t>.<body>"). The timestamp is signed with the
 * body, so a captured request cannot be replayed later than the tolerance.
 * Used for payment gateway callbacks and notify's webhooks.
 */
#ifndef OMS_HMAC_H
#define OMS_HMAC_H

#include "oms.h"

#define HMAC_HEADER "Oms-Signature"
#define HMAC_HEX_LEN 64
#define HMAC_TOLERANCE_S (15 * 60)

typedef enum hmac_result {
    HMAC_VALID = 0,
    HMAC_MISSING,   /* no header */
    HMAC_MALFORMED, /* not "t=<digits>,v1=<64 hex>" */
    HMAC_STALE,     /* timestamp outside the tolerance */
    HMAC_MISMATCH,  /* wrong secret or altered body */
} hmac_result;

/* Hex HMAC-SHA256 of "<t>.<body>" into out[65]. */
oms_status hmac_sign(const char *secret, int64_t t, const void *body, size_t len,
                     char out[HMAC_HEX_LEN + 1]);

/* The header value for body signed at t. */
oms_status hmac_header_value(const char *secret, int64_t t, const void *body, size_t len, char *out,
                             size_t out_len);

/* Checks a header value against body at now_s (seconds); compares in
 * constant time. header may be NULL. */
hmac_result hmac_verify(const char *secret, const char *header, const void *body, size_t len,
                        int64_t now_s, int64_t tolerance_s);

const char *hmac_result_text(hmac_result r);

#endif
