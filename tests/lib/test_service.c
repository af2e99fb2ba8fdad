/*
 * test_service.c - lib/service with a small service defined here, run as a
 * real process (this binary re-executed with --serve) against the stack:
 * it starts from its configuration (the environment) and answers /readyz;
 * SIGTERM while a batch is inside apply lets the batch commit and be acked,
 * the outbox events it wrote are published before exit, and the process
 * exits 0; started again, it applies nothing twice.
 */
#include "testenv.h"

#include "service.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define STREAM "RTSVC"
#define SCHEMA "rtsvc"
#define MESSAGES 5
#define IN_FLIGHT_MARK "rtsvc in-flight batch"

/* ---- the service (the child process) --------------------------------- */

static oms_status apply(void *ctx, consumer_batch *b)
{
    (void)ctx;
    PGresult *r = PQexec(b->conn, "SELECT pg_sleep(1.5) /* " IN_FLIGHT_MARK " */");
    oms_status s = PQresultStatus(r) == PGRES_TUPLES_OK ? OMS_OK : pg_error(b->conn, r, "sleep");
    PQclear(r);
    for (size_t i = 0; s == OMS_OK && i < b->n; i++) {
        const oms_msg *m = &b->msgs[i];
        const char *params[] = {m->event_id};
        char out_id[CONSUMER_EVENT_ID_LEN + 8];
        if (m->duplicate || m->rejected)
            continue;
        r = PQexecParams(b->conn, "INSERT INTO applied (event_id) VALUES ($1)", 1, NULL, params,
                         NULL, NULL, 0);
        s = PQresultStatus(r) == PGRES_COMMAND_OK ? OMS_OK : pg_error(b->conn, r, "applied");
        PQclear(r);
        snprintf(out_id, sizeof out_id, "out-%s", m->event_id);
        if (s == OMS_OK)
            s = outbox_batch_add(b->outbox, "rtsvc.out", "oms.v1.Test", out_id, m->data, m->len);
    }
    return s;
}

static const pg_migration migrations[] = {
    {"001_applied.sql", "CREATE TABLE applied (event_id text PRIMARY KEY)"},
    {NULL, NULL},
};

static const consumer_spec consumers[] = {
    {.pull = {.name = "rtsvc-in",
              .stream = STREAM,
              .durable = "rtsvc-in",
              .filter = "rtsvc.in.>",
              .batch_max = 16},
     .apply = apply},
};

static int serve(void)
{
    static const service_def def = {.name = SCHEMA,
                                    .http_port = 1,
                                    .migrations = migrations,
                                    .consumers = consumers,
                                    .n_consumers = 1};
    return service_main(&def);
}

/* ---- the test (the parent) ------------------------------------------- */

static js_conn *js;
static PGconn *pg;
static int port;
static char log_path[512];

static int setup(void **st)
{
    (void)st;
    const char *base = getenv("OMS_HTTP_PORT_BASE");
    char addr[32];
    port = (base ? atoi(base) : 18081) + 45; /* clear of other tests' services */
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    /* The child's configuration, as a deployment would give it. */
    setenv("OMS_HTTP_ADDR", addr, 1);
    setenv("OMS_HEALTH_ADDR", "off", 1);
    snprintf(log_path, sizeof log_path, "%s/Testing/rtsvc-%d.log", testenv_require("OMS_BUILD_DIR"),
             port);
    js = testenv_js();
    PGconn *admin = testenv_pg();
    PQclear(PQexec(admin, "DROP SCHEMA IF EXISTS " SCHEMA " CASCADE"));
    PQfinish(admin);
    testenv_stream_create(js, STREAM, "rtsvc.>", 120000);
    return 0;
}

static int teardown(void **st)
{
    (void)st;
    PQfinish(pg);
    js_DeleteStream(js_ctx(js), STREAM, NULL, NULL);
    js_conn_destroy(js);
    return 0;
}

static pid_t service_start(void)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0)
            dup2(fd, STDERR_FILENO);
        execl("/proc/self/exe", "lib_test_service", "--serve", (char *)NULL);
        _exit(127);
    }
    char *body = NULL;
    for (int waited = 0; testenv_http("GET", port, "/readyz", NULL, &body) != 200; waited += 50) {
        free(body);
        body = NULL;
        if (waited > 8000 || waitpid(pid, NULL, WNOHANG) == pid)
            fail_msg("the service did not become ready; see %s", log_path);
        usleep(50000);
    }
    free(body);
    return pid;
}

/* SIGTERM and the exit status, within 10 s. */
static int service_stop(pid_t pid)
{
    int status = 0;
    assert_int_equal(kill(pid, SIGTERM), 0);
    for (int waited = 0; waitpid(pid, &status, WNOHANG) == 0; waited += 50) {
        if (waited > 10000) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fail_msg("the service did not stop within 10 s after SIGTERM");
        }
        usleep(50000);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static long in_flight(void)
{
    return testenv_pg_long(pg, "SELECT count(*) FROM pg_stat_activity WHERE state = 'active'"
                               " AND query LIKE '%" IN_FLIGHT_MARK "%'"
                               " AND pid <> pg_backend_pid()");
}

static void test_sigterm_drains_in_flight_batch(void **st)
{
    (void)st;
    char id[32];
    long ack_pending = -1, pending = -1;
    for (int i = 1; i <= MESSAGES; i++) {
        const char *headers[] = {JS_HDR_MSG_ID, id, NULL};
        snprintf(id, sizeof id, "svc-%d", i);
        testenv_publish(js, "rtsvc.in.x", id, strlen(id), headers);
    }
    pid_t pid = service_start();
    pg = testenv_pg();
    for (int waited = 0; in_flight() != 1; waited += 20) {
        if (waited > 5000)
            fail_msg("no batch reached apply");
        usleep(20000);
    }
    /* The batch is inside apply, not committed: nothing applied yet. */
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM " SCHEMA ".applied"), 0);
    assert_int_equal(service_stop(pid), 0);

    /* It finished: committed with its inbox rows, acked, its events out. */
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM " SCHEMA ".applied"), MESSAGES);
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM " SCHEMA ".inbox"), MESSAGES);
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM " SCHEMA ".outbox"), 0);
    testenv_durable_pending(js, STREAM, "rtsvc-in", &ack_pending, &pending);
    assert_int_equal(ack_pending, 0);
    assert_int_equal(pending, 0);
    testenv_msg *msgs = NULL;
    size_t n = testenv_stream_read(js, STREAM, "rtsvc.out", &msgs);
    assert_int_equal(n, MESSAGES);
    for (size_t i = 0; i < n; i++) {
        snprintf(id, sizeof id, "out-svc-%zu", i + 1);
        assert_string_equal(msgs[i].msg_id, id);
    }
    testenv_msgs_free(msgs, n);

    /* Started again: nothing is delivered twice, so nothing is applied twice. */
    pid = service_start();
    assert_int_equal(service_stop(pid), 0);
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM " SCHEMA ".applied"), MESSAGES);
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM " SCHEMA ".dead_letters"), 0);
    assert_int_equal(testenv_stream_count(js, STREAM), 2 * MESSAGES);
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--serve") == 0)
        return serve();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigterm_drains_in_flight_batch),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
