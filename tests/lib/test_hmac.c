/*
 * test_hmac.c - webhook signatures: a known vector, and every way a
 * signature must be refused.
 */
#include "testenv.h"

#include "hmac.h"

#include <stdio.h>
#include <string.h>

#define KNOWN_HEX "ad95d1f6615c879c1fc7a6b7cc500cc94fd521b786431a333cda3a9e61a5ad43"

static const char BODY[] = "{\"payment_id\":\"p-1\",\"status\":\"succeeded\"}";

/* Known vector: HMAC-SHA256("whsec_test", "1700000000.<BODY>"), computed with
 * `printf '%s' "1700000000.$BODY" | openssl dgst -sha256 -hmac whsec_test`. */
static void test_known_vector(void **state)
{
    (void)state;
    char hex[HMAC_HEX_LEN + 1];
    assert_int_equal(hmac_sign("whsec_test", 1700000000, BODY, strlen(BODY), hex), OMS_OK);
    assert_string_equal(hex, KNOWN_HEX);
}

static void test_round_trip_valid(void **state)
{
    (void)state;
    char header[128];
    assert_int_equal(hmac_header_value("s3cret", 1700000000, BODY, strlen(BODY), header,
                                       sizeof header),
                     OMS_OK);
    assert_int_equal(strncmp(header, "t=1700000000,v1=", 16), 0);
    assert_int_equal(hmac_verify("s3cret", header, BODY, strlen(BODY), 1700000100,
                                 HMAC_TOLERANCE_S),
                     HMAC_VALID);
}

static void test_refusals(void **state)
{
    (void)state;
    char header[128];
    hmac_header_value("s3cret", 1700000000, BODY, strlen(BODY), header, sizeof header);
    int64_t now = 1700000000;
    assert_int_equal(hmac_verify("other", header, BODY, strlen(BODY), now, HMAC_TOLERANCE_S),
                     HMAC_MISMATCH);
    char tampered[] = "{\"payment_id\":\"p-1\",\"status\":\"succeedeD\"}";
    assert_int_equal(hmac_verify("s3cret", header, tampered, strlen(tampered), now,
                                 HMAC_TOLERANCE_S),
                     HMAC_MISMATCH);
    /* 15 minutes and one second later: stale; exactly 15 minutes: still valid. */
    assert_int_equal(hmac_verify("s3cret", header, BODY, strlen(BODY), now + 901, HMAC_TOLERANCE_S),
                     HMAC_STALE);
    assert_int_equal(hmac_verify("s3cret", header, BODY, strlen(BODY), now + 900, HMAC_TOLERANCE_S),
                     HMAC_VALID);
    assert_int_equal(hmac_verify("s3cret", NULL, BODY, strlen(BODY), now, HMAC_TOLERANCE_S),
                     HMAC_MISSING);
    assert_int_equal(hmac_verify("s3cret", "", BODY, strlen(BODY), now, HMAC_TOLERANCE_S),
                     HMAC_MISSING);
    assert_int_equal(hmac_verify("s3cret", "v1=abc", BODY, strlen(BODY), now, HMAC_TOLERANCE_S),
                     HMAC_MALFORMED);
    assert_int_equal(hmac_verify("s3cret", "t=1700000000,v1=XYZ", BODY, strlen(BODY), now,
                                 HMAC_TOLERANCE_S),
                     HMAC_MALFORMED);
    /* The timestamp is digits only: a sign or spaces before it make the
     * header malformed even though the number and signature are right. */
    const char *v1 = strchr(header, ',');
    char signed_ts[160];
    snprintf(signed_ts, sizeof signed_ts, "t=+1700000000%s", v1);
    assert_int_equal(hmac_verify("s3cret", signed_ts, BODY, strlen(BODY), now, HMAC_TOLERANCE_S),
                     HMAC_MALFORMED);
    snprintf(signed_ts, sizeof signed_ts, "t= 1700000000%s", v1);
    assert_int_equal(hmac_verify("s3cret", signed_ts, BODY, strlen(BODY), now, HMAC_TOLERANCE_S),
                     HMAC_MALFORMED);
    snprintf(signed_ts, sizeof signed_ts, "t=1700000000%s", v1);
    assert_int_equal(hmac_verify("s3cret", signed_ts, BODY, strlen(BODY), now, HMAC_TOLERANCE_S),
                     HMAC_VALID);
    /* Changing the signed timestamp breaks the signature. */
    char moved[128];
    snprintf(moved, sizeof moved, "t=1700000001,%s", strchr(header, ',') + 1);
    assert_int_equal(hmac_verify("s3cret", moved, BODY, strlen(BODY), now, HMAC_TOLERANCE_S),
                     HMAC_MISMATCH);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_vector),
        cmocka_unit_test(test_round_trip_valid),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
