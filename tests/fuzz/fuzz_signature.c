/*
 * fuzz_signature.c - the Oms-Signature header and the body it signs, as
 * POST /callbacks/payment receives them (services/payment/payment_callback.c:
 * verify with lib/hmac.c, then parse) and as notify's webhooks send them.
 *
 * Input: the first line is the header value as received, the rest the body.
 *
 * Properties: a received header verifies to one of hmac_result's values,
 * anything but the documented "t=<digits>,v1=<64 hex>" is malformed, and
 * only a parsed body follows a valid one; a header that hmac_header_value
 * made for the body verifies as valid at any time within the tolerance, as
 * stale outside it, and as a mismatch once one byte of the body changes.
 */
#include "fuzz.h"

#include "hmac.h"
#include "payment.h"

#define SECRET "whsec_fuzz_0123456789"
#define NOW_S 1765000000LL

/* hmac.h's format, exactly: "t=<digits>,v1=<64 lowercase hex>". */
static bool strict_syntax(const char *header)
{
    const char *p = header + 2;
    if (strncmp(header, "t=", 2) != 0 || *p < '0' || *p > '9')
        return false;
    while (*p >= '0' && *p <= '9')
        p++;
    if (strncmp(p, ",v1=", 4) != 0 || strlen(p + 4) != HMAC_HEX_LEN)
        return false;
    for (p += 4; *p != '\0'; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

/* The handler's order: signature first, the body only once it is valid. */
static void check_received(const char *header, const uint8_t *body, size_t len)
{
    hmac_result r = hmac_verify(SECRET, header, body, len, NOW_S, HMAC_TOLERANCE_S);
    FUZZ_CHECK(r >= HMAC_VALID && r <= HMAC_MISMATCH);
    FUZZ_CHECK(strcmp(hmac_result_text(r), "unknown") != 0);
    if (*header == '\0')
        FUZZ_CHECK(r == HMAC_MISSING);
    /* Only a header of the documented form gets as far as the clock. */
    if (r == HMAC_VALID || r == HMAC_STALE || r == HMAC_MISMATCH)
        FUZZ_CHECK(strict_syntax(header));
    if (r == HMAC_VALID) {
        payment_callback cb;
        char err[PAYMENT_ERR_LEN];
        (void)payment_callback_parse((const char *)body, len, &cb, err);
    }
}

static void check_signed(const uint8_t *body, size_t len)
{
    char header[128];
    int64_t skew = (int64_t)(len * 131 + (len ? body[0] : 0)) % (2 * HMAC_TOLERANCE_S + 1) -
                   HMAC_TOLERANCE_S;
    int64_t t = NOW_S + skew;
    if (hmac_header_value(SECRET, t, body, len, header, sizeof header) != OMS_OK)
        return;
    FUZZ_CHECK(hmac_verify(SECRET, header, body, len, NOW_S, HMAC_TOLERANCE_S) == HMAC_VALID);
    FUZZ_CHECK(hmac_verify(SECRET, header, body, len, t + HMAC_TOLERANCE_S + 1, HMAC_TOLERANCE_S) ==
               HMAC_STALE);
    FUZZ_CHECK(hmac_verify("another secret", header, body, len, NOW_S, HMAC_TOLERANCE_S) ==
               HMAC_MISMATCH);
    uint8_t *altered = malloc(len + 1);
    if (altered == NULL)
        return;
    if (len > 0)
        memcpy(altered, body, len);
    if (len > 0)
        altered[len - 1] ^= 0x01;
    else
        altered[0] = 'x';
    FUZZ_CHECK(hmac_verify(SECRET, header, altered, len > 0 ? len : 1, NOW_S, HMAC_TOLERANCE_S) ==
               HMAC_MISMATCH);
    free(altered);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t header_len = nl ? (size_t)(nl - data) : size;
    char *header = fuzz_strndup(data, header_len);
    const uint8_t *body = nl ? nl + 1 : data + size;
    size_t body_len = size - header_len - (nl ? 1 : 0);
    if (header == NULL)
        return 0;
    check_received(header, body, body_len);
    check_signed(body, body_len);
    free(header);
    return 0;
}
