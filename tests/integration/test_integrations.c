/*
 * test_integrations.c - docs/integrations.md's C program
 * (examples/oms_integration.c), run as the `integrations` NATS user against
 * the real services: `follow` sees every order.created and order.paid of an
 * import that `import` sent from a CSV file whose columns are not in the
 * default order, holds a quoted newline and spans several messages.
 */
#include "testenv.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define INGEST_PORT 19760
#define INVENTORY_PORT 19761
#define PAYMENT_PORT 19762
#define ORDERS 300       /* 2 rows each */
#define CHUNK_ROWS "100" /* so the import spans 6 messages, each repeating the header */

static const char *const SCHEMAS[] = {"ingest", "inventory", "payment", NULL};

static void path_in_build(char *out, size_t len, const char *rel)
{
    snprintf(out, len, "%s/%s", testenv_require("OMS_BUILD_DIR"), rel);
}

/* The example runs as the integrations user, with its password only. */
static void integration_env(void)
{
    setenv("OMS_NATS_USER", "integrations", 1);
    setenv("OMS_NATS_PASSWORD", testenv_require("OMS_NATS_PASSWORD_INTEGRATIONS"), 1);
}

static pid_t spawn(const char *const argv[], const char *out_path, const char *err_path)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        integration_env();
        if (freopen(out_path, "w", stdout) == NULL || freopen(err_path, "w", stderr) == NULL)
            _exit(126);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

static int wait_exit(pid_t pid, int timeout_ms)
{
    int status = 0;
    for (int waited = 0; waited < timeout_ms; waited += 50) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
        usleep(50000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static bool file_has(const char *path, const char *text)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    char line[256];
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, text) != NULL;
    fclose(f);
    return found;
}

static size_t count_lines(const char *s, const char *prefix)
{
    size_t n = 0;
    for (const char *p = s; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        n += strncmp(p, prefix, strlen(prefix)) == 0;
    return n;
}

/* A CSV in a column order of its own, with a quoted name holding a comma and
 * a newline: two lines per order, 4.50 + 2 x 3.25 = 11.00 each. */
static void write_csv(const char *path)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "sku,qty,order_id,customer_id,unit_price,customer_name\n");
    for (int i = 1; i <= ORDERS; i++) {
        fprintf(f, "SKU-A,1,INT-%04d,C-%d,4.50,\"Doe, Jane\nline two\"\n", i, i % 7);
        fprintf(f, "SKU-B,2,INT-%04d,C-%d,3.25,\n", i, i % 7);
    }
    fclose(f);
}

static void test_follow_sees_an_import_sent_by_the_example(void **state)
{
    (void)state;
    static const char *const pay[] = {"OMS_PAYMENT_SUCCESS_RATE=1", NULL};
    char bin[1024], csv[1024], out[1024], err[1024], import_err[1024], expect[128];
    testenv_reset(SCHEMAS);
    pid_t ingest = testenv_service_start("ingest", INGEST_PORT, NULL);
    pid_t inventory = testenv_service_start("inventory", INVENTORY_PORT, NULL);
    pid_t payment = testenv_service_start("payment", PAYMENT_PORT, pay);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();
    testenv_load_product(js, "SKU-A", ORDERS);
    testenv_load_product(js, "SKU-B", 2 * ORDERS);
    assert_int_equal(testenv_wait_pg(pg, "SELECT count(*) FROM inventory.products", 2, 10000), 2);

    path_in_build(bin, sizeof bin, "examples/oms-integration");
    path_in_build(csv, sizeof csv, "Testing/integration.csv");
    path_in_build(out, sizeof out, "Testing/integration-follow.out");
    path_in_build(err, sizeof err, "Testing/integration-follow.err");
    path_in_build(import_err, sizeof import_err, "Testing/integration-import.err");
    write_csv(csv);
    char count[16];
    snprintf(count, sizeof count, "%d", 2 * ORDERS);
    const char *follow_argv[] = {bin, "follow", count, NULL};
    pid_t follower = spawn(follow_argv, out, err);
    for (int i = 0; i < 200 && !file_has(err, "following order.*"); i++)
        usleep(50000);
    assert_true(file_has(err, "following order.*"));

    const char *import_argv[] = {bin, "import", csv, "imp-integration", CHUNK_ROWS, NULL};
    pid_t importer = spawn(import_argv, "/dev/null", import_err);
    assert_int_equal(wait_exit(importer, 30000), 0);
    assert_int_equal(wait_exit(follower, 60000), 0);

    char *lines = slurp(out);
    assert_int_equal(count_lines(lines, "created INT-"), ORDERS);
    assert_int_equal(count_lines(lines, "paid INT-"), ORDERS);
    assert_non_null(strstr(lines, "created INT-0001 customer C-1 2 lines 11.00 USD\n"));
    snprintf(expect, sizeof expect, "paid INT-%04d customer C-%d 11.00 USD\n", ORDERS, ORDERS % 7);
    assert_non_null(strstr(lines, expect));
    free(lines);
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM ingest.orders WHERE status = 'paid'"
                                         " AND customer_name = 'Doe, Jane\nline two'"),
                     ORDERS);

    PQfinish(pg);
    js_conn_destroy(js);
    testenv_service_stop(ingest);
    testenv_service_stop(inventory);
    testenv_service_stop(payment);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_follow_sees_an_import_sent_by_the_example, testenv_cleanup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
