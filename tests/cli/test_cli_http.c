/*
 * test_cli_http.c - cli/cli_http.c's helpers that need no server: an id
 * goes into a URL path as one segment, whatever it holds, and a service's
 * endpoint is its base URL plus the path however many slashes end the base.
 */
#include "testenv.h"

#include "cli.h"

#include <stdlib.h>
#include <string.h>

static void test_url_escape_keeps_unreserved(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(cli_url_escape("ORD-1_a.b~Z9", out, sizeof out), OMS_OK);
    assert_string_equal(out, "ORD-1_a.b~Z9");
    assert_int_equal(cli_url_escape("", out, sizeof out), OMS_OK);
    assert_string_equal(out, "");
}

static void test_url_escape_encodes_the_rest(void **state)
{
    (void)state;
    char out[64];
    /* A slash or ? must not end the segment; UTF-8 goes byte by byte. */
    assert_int_equal(cli_url_escape("a/b?c d%#é", out, sizeof out), OMS_OK);
    assert_string_equal(out, "a%2Fb%3Fc%20d%25%23%C3%A9");
}

static void test_url_escape_refuses_what_does_not_fit(void **state)
{
    (void)state;
    char out[8];
    strcpy(out, "keep");
    /* "a/b" needs 5 bytes + NUL = 6: fits; "a/b/" needs 8 + NUL: does not. */
    assert_int_equal(cli_url_escape("a/b", out, 6), OMS_OK);
    assert_string_equal(out, "a%2Fb");
    strcpy(out, "keep");
    assert_int_equal(cli_url_escape("a/b/", out, sizeof out), OMS_EINVAL);
    assert_string_equal(out, "keep");
}

static void test_service_endpoint_trims_slashes(void **state)
{
    (void)state;
    char out[128];
    const cli_service *ingest = cli_service_find("ingest");
    assert_non_null(ingest);
    setenv("OMS_INGEST_URL", "http://127.0.0.1:38081//", 1);
    cli_service_endpoint(ingest, "/orders/ORD-1", out, sizeof out);
    assert_string_equal(out, "http://127.0.0.1:38081/orders/ORD-1");
    unsetenv("OMS_INGEST_URL");
    cli_service_endpoint(ingest, "/readyz", out, sizeof out);
    assert_string_equal(out, "http://127.0.0.1:18081/readyz");
    assert_null(cli_service_find("nope"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_escape_keeps_unreserved),
        cmocka_unit_test(test_url_escape_encodes_the_rest),
        cmocka_unit_test(test_url_escape_refuses_what_does_not_fit),
        cmocka_unit_test(test_service_endpoint_trims_slashes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
