/*
 * test_pgworker.c - the one loop of the background jobs, against the real
 * PostgreSQL of `make test`: a round that says "more" runs again at once, one
 * that found less waits idle_ms, a failed one backs off (doubling, reset by a
 * success), a lost connection is replaced, and stop ends the wait at once but
 * lets a round in progress finish. Without a database it keeps trying to
 * connect, never runs a round, and still stops promptly.
 */
#include "testenv.h"

#include "pgworker.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define SCHEMA "test_pgworker"
#define APP "test-pgworker"
#define ROUNDS_MAX 16
#define LONG_IDLE_MS 60000 /* longer than any test: a round after it is a bug */

/* What each round does, by its number, one character each (past the end: 'i'):
 * 'm' succeeds with more work, 'i' succeeds idle, 'F' fails, 'k' terminates
 * its own backend and fails (PostgreSQL restarted), 's' works 300 ms, idle. */
typedef struct script {
    const char *plan;
    atomic_int started, finished;
    int64_t at_ms[ROUNDS_MAX]; /* when each round began */
    int pid[ROUNDS_MAX];       /* the backend each round ran on */
    char settings[2][128];     /* rounds 0 and 1: search_path,application_name,enable_bitmapscan */
} script;

static void read_settings(char *out, size_t len, PGconn *conn)
{
    PGresult *r = PQexec(conn, "SELECT current_setting('search_path') || ','"
                               " || current_setting('application_name') || ','"
                               " || current_setting('enable_bitmapscan')");
    snprintf(out, len, "%s",
             PQresultStatus(r) == PGRES_TUPLES_OK ? PQgetvalue(r, 0, 0) : "query failed");
    PQclear(r);
}

static oms_status scripted_round(void *arg, PGconn **conn, bool *more)
{
    script *sc = arg;
    int n = atomic_load(&sc->started);
    char step = n < (int)strlen(sc->plan) ? sc->plan[n] : 'i';
    oms_status s = OMS_OK;
    if (n < ROUNDS_MAX) {
        sc->at_ms[n] = oms_mono_ms();
        sc->pid[n] = *conn ? PQbackendPID(*conn) : 0;
    }
    if (n < 2)
        read_settings(sc->settings[n], sizeof sc->settings[n], *conn);
    atomic_fetch_add(&sc->started, 1);
    *more = step == 'm';
    if (step == 'F')
        s = OMS_EDB;
    if (step == 'k') {
        PQclear(PQexec(*conn, "SELECT pg_terminate_backend(pg_backend_pid())"));
        s = OMS_ETRANSIENT;
    }
    if (step == 's')
        oms_sleep_ms(300, NULL);
    atomic_fetch_add(&sc->finished, 1);
    return s;
}

/* Waits up to 10 s for the nth round to begin; fails the test otherwise. */
static void wait_rounds(script *sc, int n)
{
    int64_t deadline = oms_mono_ms() + 10000;
    while (atomic_load(&sc->started) < n && oms_mono_ms() < deadline)
        oms_sleep_ms(5, NULL);
    assert_int_equal(atomic_load(&sc->started), n);
}

static pgworker *start(script *sc, int64_t idle_ms, unsigned flags)
{
    pgworker *w = NULL;
    assert_int_equal(pgworker_start(&w, testenv_require("OMS_PG_DSN"), SCHEMA, APP, idle_ms, flags,
                                    scripted_round, sc),
                     OMS_OK);
    return w;
}

static void test_more_runs_again_at_once(void **state)
{
    (void)state;
    script sc = {.plan = "mmmmi"};
    pgworker *w = start(&sc, LONG_IDLE_MS, 0);
    wait_rounds(&sc, 5);
    /* The fifth round found nothing more: the worker waits LONG_IDLE_MS. */
    oms_sleep_ms(300, NULL);
    assert_int_equal(atomic_load(&sc.started), 5);
    assert_string_equal(sc.settings[0], SCHEMA "," APP ",on");
    for (int i = 1; i < 5; i++)
        assert_int_equal(sc.pid[i], sc.pid[0]);
    int64_t t0 = oms_mono_ms();
    pgworker_stop(w);
    assert_true(oms_mono_ms() - t0 < 500);
    assert_int_equal(atomic_load(&sc.finished), 5);
}

static void test_idle_waits_idle_ms(void **state)
{
    (void)state;
    script sc = {.plan = "ii"};
    pgworker *w = start(&sc, 300, PGWORKER_NO_BITMAPSCAN);
    wait_rounds(&sc, 2);
    pgworker_stop(w);
    assert_true(sc.at_ms[1] - sc.at_ms[0] >= 300);
    assert_string_equal(sc.settings[0], SCHEMA "," APP ",off");
    assert_string_equal(sc.settings[1], SCHEMA "," APP ",off");
}

static void test_failure_backs_off_doubling_reset_by_success(void **state)
{
    (void)state;
    script sc = {.plan = "FFFmFi"};
    pgworker *w = start(&sc, LONG_IDLE_MS, 0);
    wait_rounds(&sc, 6);
    pgworker_stop(w);
    /* Waits of [50,100], [100,200], [200,400] ms (lib/backoff's jitter). */
    assert_true(sc.at_ms[1] - sc.at_ms[0] >= 50);
    assert_true(sc.at_ms[2] - sc.at_ms[1] >= 100);
    assert_true(sc.at_ms[3] - sc.at_ms[2] >= 200);
    /* The success reset the backoff: [50,100] again, not [400,800]. */
    assert_true(sc.at_ms[5] - sc.at_ms[4] >= 50);
    assert_true(sc.at_ms[5] - sc.at_ms[4] < 400);
    /* A failed statement leaves the connection good: it is kept. */
    for (int i = 1; i < 6; i++)
        assert_int_equal(sc.pid[i], sc.pid[0]);
    assert_int_equal(atomic_load(&sc.started), 6);
}

static void test_lost_connection_is_replaced(void **state)
{
    (void)state;
    script sc = {.plan = "ki"};
    pgworker *w = start(&sc, LONG_IDLE_MS, PGWORKER_NO_BITMAPSCAN);
    wait_rounds(&sc, 2);
    pgworker_stop(w);
    assert_true(sc.pid[0] != 0);
    assert_true(sc.pid[1] != 0);
    assert_true(sc.pid[1] != sc.pid[0]);
    assert_true(sc.at_ms[1] - sc.at_ms[0] >= 50);
    /* The new connection is set up as the first was. */
    assert_string_equal(sc.settings[1], SCHEMA "," APP ",off");
}

static void test_stop_lets_the_round_finish(void **state)
{
    (void)state;
    script sc = {.plan = "s"};
    pgworker *w = start(&sc, LONG_IDLE_MS, 0);
    wait_rounds(&sc, 1);
    assert_int_equal(atomic_load(&sc.finished), 0);
    int64_t t0 = oms_mono_ms();
    pgworker_stop(w);
    int64_t took = oms_mono_ms() - t0;
    assert_int_equal(atomic_load(&sc.finished), 1);
    assert_int_equal(atomic_load(&sc.started), 1);
    assert_true(took >= 100); /* waited for most of the 300 ms round */
    assert_true(took < 1000);
}

static atomic_int rounds;

static oms_status count_round(void *ctx, PGconn **conn, bool *more)
{
    (void)ctx, (void)conn;
    atomic_fetch_add(&rounds, 1);
    *more = false;
    return OMS_OK;
}

static void test_no_database_no_round_and_prompt_stop(void **state)
{
    (void)state;
    pgworker *w = NULL;
    /* Port 1 on loopback: nothing listens, the connection is refused at once. */
    assert_int_equal(pgworker_start(&w, "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1",
                                    "test", "test-pgworker", 50, 0, count_round, NULL),
                     OMS_OK);
    oms_sleep_ms(1200, NULL); /* several attempts, backoff grown past 400 ms */
    int64_t start_ms = oms_mono_ms();
    pgworker_stop(w);
    assert_true(oms_mono_ms() - start_ms < 500);
    assert_int_equal(atomic_load(&rounds), 0);
    pgworker_stop(NULL);
}

static int drop_schema(void **state)
{
    (void)state;
    PGconn *c = testenv_pg();
    PQclear(PQexec(c, "DROP SCHEMA IF EXISTS " SCHEMA " CASCADE"));
    PQfinish(c);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_more_runs_again_at_once),
        cmocka_unit_test(test_idle_waits_idle_ms),
        cmocka_unit_test(test_failure_backs_off_doubling_reset_by_success),
        cmocka_unit_test(test_lost_connection_is_replaced),
        cmocka_unit_test(test_stop_lets_the_round_finish),
        cmocka_unit_test(test_no_database_no_round_and_prompt_stop),
    };
    return cmocka_run_group_tests(tests, NULL, drop_schema);
}
