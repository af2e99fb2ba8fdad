/*
 * test_omsctl.c - the exit statuses operators script against: `--version`,
 * `status` failing while any service is down or not ready, and `refund`
 * exiting 3 (pending) when its wait ends without an outcome. Real services
 * on their own ports, omsctl run as a user runs it.
 */
#include "testenv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static const char *const SCHEMAS[] = {"ingest", "inventory", "payment", "notify",
                                      "refund", "analytics", NULL};
static const char *const NAMES[] = {"ingest", "inventory", "payment",
                                    "notify", "refund",    "analytics"};
#define N_SERVICES 6
#define PORT_BASE 19781 /* ingest; the others follow in NAMES order */

/* Points omsctl at the ports this test starts the services on. */
static void set_service_urls(void)
{
    char var[64], url[64];
    for (int i = 0; i < N_SERVICES; i++) {
        snprintf(var, sizeof var, "OMS_%s_URL", NAMES[i]);
        for (char *c = var; *c; c++)
            *c = (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c);
        snprintf(url, sizeof url, "http://127.0.0.1:%d", PORT_BASE + i);
        setenv(var, url, 1);
    }
}

static void test_version(void **state)
{
    (void)state;
    char *out = NULL;
    assert_int_equal(testenv_omsctl(NULL, "--version", &out), 0);
    assert_string_equal(out, "omsctl " OMS_VERSION "\n");
    free(out);
}

/* All six ready: 0. One stopped: 1, and the screen says which. Then refund
 * gone: a request is stored in the stream but nobody decides it, so the
 * wait ends pending (3) and says the service did not answer. */
static void test_status_and_pending_refund(void **state)
{
    (void)state;
    pid_t pids[N_SERVICES];
    testenv_reset(SCHEMAS);
    set_service_urls();
    for (int i = 0; i < N_SERVICES; i++)
        pids[i] = testenv_service_start(NAMES[i], PORT_BASE + i, NULL);
    testenv_expect_omsctl("status", 0, "analytics");

    testenv_service_stop(pids[3]); /* notify */
    pids[3] = 0;
    testenv_expect_omsctl("status", 1, "down");
    testenv_expect_omsctl(
        "status --json", 1,
        "\"name\":\"notify\",\"url\":\"http://127.0.0.1:19784\",\"state\":\"down\"");

    testenv_service_stop(pids[4]); /* refund */
    pids[4] = 0;
    testenv_expect_omsctl(
        "refund ORD-PENDING 1.00 --key cli-pending --wait 1", 3,
        "requested; still pending after 1s (the refund service is not answering)");
    for (int i = 0; i < N_SERVICES; i++)
        if (pids[i] > 0)
            testenv_service_stop(pids[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version),
        cmocka_unit_test_teardown(test_status_and_pending_refund, testenv_cleanup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
