/*
 * test_payment_callback.c - parsing the gateway's callback body: what is
 * accepted, and a message naming the field for everything that is not.
 */
#include "testenv.h"

#include "payment.h"

#include <stdio.h>
#include <string.h>

static oms_status parse(const char *body, payment_callback *cb, char err[PAYMENT_ERR_LEN])
{
    err[0] = '\0';
    return payment_callback_parse(body, strlen(body), cb, err);
}

static void test_succeeded(void **state)
{
    (void)state;
    payment_callback cb;
    char err[PAYMENT_ERR_LEN];
    assert_int_equal(parse("{\"payment_id\":\"p-1\",\"status\":\"succeeded\","
                           "\"gateway_ref\":\"ch_42\",\"reason\":\"ignored\",\"extra\":[1]}",
                           &cb, err),
                     OMS_OK);
    assert_string_equal(cb.payment_id, "p-1");
    assert_true(cb.succeeded);
    assert_string_equal(cb.gateway_ref, "ch_42");
    assert_string_equal(cb.reason, ""); /* a success has no reason */
    assert_int_equal(parse("{\"payment_id\":\"p-2\",\"status\":\"succeeded\"}", &cb, err), OMS_OK);
    assert_string_equal(cb.gateway_ref, "");
    assert_int_equal(parse("{\"payment_id\":\"p-3\",\"status\":\"succeeded\",\"gateway_ref\":null}",
                           &cb, err),
                     OMS_OK);
}

static void test_failed(void **state)
{
    (void)state;
    payment_callback cb;
    char err[PAYMENT_ERR_LEN];
    assert_int_equal(parse("{\"status\":\"failed\",\"payment_id\":\"p-1\","
                           "\"reason\":\"insufficient funds\"}",
                           &cb, err),
                     OMS_OK);
    assert_false(cb.succeeded);
    assert_string_equal(cb.reason, "insufficient funds");
    assert_int_equal(parse("{\"status\":\"failed\",\"payment_id\":\"p-1\"}", &cb, err), OMS_OK);
    assert_string_equal(cb.reason, "declined by the payment gateway");
}

static void refused(const char *body, const char *want_err)
{
    payment_callback cb;
    char err[PAYMENT_ERR_LEN];
    memset(&cb, 0x5a, sizeof cb);
    assert_int_equal(parse(body, &cb, err), OMS_EINVAL);
    if (strstr(err, want_err) == NULL)
        fprintf(stderr, "body %s\n  want \"%s\" in \"%s\"\n", body, want_err, err);
    assert_non_null(strstr(err, want_err));
    assert_int_equal(cb.payment_id[0], 0x5a); /* out untouched on error */
}

static void test_refusals_name_the_field(void **state)
{
    (void)state;
    char long_id[300], long_reason[700], long_ref[400];
    refused("", "body is not valid JSON");
    refused("not json", "body is not valid JSON");
    refused("{\"payment_id\":\"p\",\"status\":\"succeeded\"", "body is not valid JSON");
    refused("{\"payment_id\":\"p\",\"payment_id\":\"q\",\"status\":\"failed\"}",
            "body is not valid JSON");
    refused("[\"p-1\",\"succeeded\"]", "body must be a JSON object");
    refused("{\"status\":\"succeeded\"}", "payment_id is required");
    refused("{\"payment_id\":\"\",\"status\":\"succeeded\"}", "payment_id is required");
    refused("{\"payment_id\":7,\"status\":\"succeeded\"}", "payment_id is required");
    refused("{\"payment_id\":\"p-1\"}", "status is required: \"succeeded\" or \"failed\"");
    refused("{\"payment_id\":\"p-1\",\"status\":\"maybe\"}", "status is required");
    refused("{\"payment_id\":\"p-1\",\"status\":\"SUCCEEDED\"}", "status is required");
    refused("{\"payment_id\":\"p-1\",\"status\":1}", "status is required");
    refused("{\"payment_id\":\"p-1\",\"status\":\"failed\",\"reason\":false}",
            "reason must be a string");
    refused("{\"payment_id\":\"p-1\",\"status\":\"failed\",\"gateway_ref\":{}}",
            "gateway_ref must be a string");
    snprintf(long_id, sizeof long_id, "{\"payment_id\":\"%0129d\",\"status\":\"failed\"}", 0);
    refused(long_id, "payment_id is longer than 128 bytes");
    snprintf(long_reason, sizeof long_reason,
             "{\"payment_id\":\"p\",\"status\":\"failed\",\"reason\":\"%0513d\"}", 0);
    refused(long_reason, "reason is longer than 512 bytes");
    snprintf(long_ref, sizeof long_ref,
             "{\"payment_id\":\"p\",\"status\":\"failed\",\"gateway_ref\":\"%0257d\"}", 0);
    refused(long_ref, "gateway_ref is longer than 256 bytes");
}

/* The limits themselves are accepted. */
static void test_limits(void **state)
{
    (void)state;
    payment_callback cb;
    char err[PAYMENT_ERR_LEN], body[800];
    snprintf(body, sizeof body,
             "{\"payment_id\":\"%0128d\",\"status\":\"failed\",\"reason\":\"%0512d\"}", 0, 0);
    assert_int_equal(parse(body, &cb, err), OMS_OK);
    assert_int_equal(strlen(cb.payment_id), 128);
    assert_int_equal(strlen(cb.reason), 512);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_succeeded),
        cmocka_unit_test(test_failed),
        cmocka_unit_test(test_refusals_name_the_field),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
