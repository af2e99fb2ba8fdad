/*
 * hmac.c - HMAC-SHA256 signatures with OpenSSL's libcrypto.
 */
#include "hmac.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

oms_status hmac_sign(const char *secret, int64_t t, const void *body, size_t len,
                     char out[HMAC_HEX_LEN + 1])
{
    char prefix[32];
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    int n = snprintf(prefix, sizeof prefix, "%lld.", (long long)t);
    size_t total = (size_t)n + len;
    unsigned char *msg = malloc(total ? total : 1);
    if (msg == NULL)
        return OMS_ENOMEM;
    memcpy(msg, prefix, (size_t)n);
    if (len > 0)
        memcpy(msg + n, body, len);
    unsigned char *ok = HMAC(EVP_sha256(), secret, (int)strlen(secret), msg, total, mac, &mac_len);
    free(msg);
    if (ok == NULL || mac_len != HMAC_HEX_LEN / 2)
        return OMS_EINVAL;
    for (unsigned i = 0; i < mac_len; i++)
        snprintf(out + 2 * i, 3, "%02x", mac[i]);
    return OMS_OK;
}

oms_status hmac_header_value(const char *secret, int64_t t, const void *body, size_t len, char *out,
                             size_t out_len)
{
    char hex[HMAC_HEX_LEN + 1];
    oms_status s = hmac_sign(secret, t, body, len, hex);
    if (s == OMS_OK)
        snprintf(out, out_len, "t=%lld,v1=%s", (long long)t, hex);
    return s;
}

/* Parses "t=<digits>,v1=<64 lowercase hex>". */
static bool parse_header(const char *h, int64_t *t, char v1[HMAC_HEX_LEN + 1])
{
    /* strtoll alone would also take " 17..." and "+17...": digits only. */
    if (strncmp(h, "t=", 2) != 0 || h[2] < '0' || h[2] > '9')
        return false;
    char *end = NULL;
    long long ts = strtoll(h + 2, &end, 10);
    if (end == h + 2 || ts <= 0 || strncmp(end, ",v1=", 4) != 0)
        return false;
    const char *hex = end + 4;
    if (strlen(hex) != HMAC_HEX_LEN)
        return false;
    for (size_t i = 0; i < HMAC_HEX_LEN; i++)
        if (!((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f')))
            return false;
    memcpy(v1, hex, HMAC_HEX_LEN + 1);
    *t = ts;
    return true;
}

hmac_result hmac_verify(const char *secret, const char *header, const void *body, size_t len,
                        int64_t now_s, int64_t tolerance_s)
{
    int64_t t = 0;
    char given[HMAC_HEX_LEN + 1], want[HMAC_HEX_LEN + 1];
    if (header == NULL || *header == '\0')
        return HMAC_MISSING;
    if (!parse_header(header, &t, given))
        return HMAC_MALFORMED;
    if (t < now_s - tolerance_s || t > now_s + tolerance_s)
        return HMAC_STALE;
    if (hmac_sign(secret, t, body, len, want) != OMS_OK)
        return HMAC_MISMATCH;
    return CRYPTO_memcmp(given, want, HMAC_HEX_LEN) == 0 ? HMAC_VALID : HMAC_MISMATCH;
}

const char *hmac_result_text(hmac_result r)
{
    switch (r) {
    case HMAC_VALID: return "valid";
    case HMAC_MISSING: return "missing Oms-Signature header";
    case HMAC_MALFORMED: return "malformed Oms-Signature header (expected t=<unix>,v1=<hex>)";
    case HMAC_STALE: return "signature timestamp is more than 15 minutes away";
    case HMAC_MISMATCH: return "signature does not match";
    }
    return "unknown";
}
