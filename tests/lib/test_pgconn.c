/*
 * test_pgconn.c - lib/pg connections against the stack's PostgreSQL: a
 * connection is bound to its schema under its application name; pg_rollback
 * ends open and failed transactions and leaves idle ones alone; a refused
 * statement is OMS_EDB and logged with what ran and PostgreSQL's words; a
 * terminated backend is OMS_ETRANSIENT and a new connection works again; an
 * unreachable server is OMS_ETRANSIENT.
 */
#include "testenv.h"

#include "pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCHEMA "rtpgconn"

static PGconn *admin;

static int setup(void **st)
{
    (void)st;
    admin = testenv_pg();
    PQclear(PQexec(admin, "DROP SCHEMA IF EXISTS " SCHEMA " CASCADE"));
    return 0;
}

static int teardown(void **st)
{
    (void)st;
    PQclear(PQexec(admin, "DROP SCHEMA IF EXISTS " SCHEMA " CASCADE"));
    PQfinish(admin);
    return 0;
}

static char *one_value(PGconn *c, const char *sql)
{
    PGresult *r = NULL;
    assert_int_equal(pg_query(c, "one value", sql, 0, NULL, PGRES_TUPLES_OK, &r), OMS_OK);
    assert_int_equal(PQntuples(r), 1);
    char *v = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

static PGconn *connect_ok(void)
{
    PGconn *c = NULL;
    assert_int_equal(pg_connect(&c, testenv_require("OMS_PG_DSN"), SCHEMA, "rt-pgconn"), OMS_OK);
    assert_true(pg_ok(c));
    return c;
}

static void test_connect_binds_schema(void **st)
{
    (void)st;
    PGconn *c = connect_ok();
    char *path = one_value(c, "SHOW search_path");
    char *app = one_value(c, "SHOW application_name");
    assert_string_equal(path, SCHEMA);
    assert_string_equal(app, "rt-pgconn");
    free(path);
    free(app);
    /* Created by the connect: unqualified names land in it. */
    assert_int_equal(pg_exec(c, "CREATE TABLE t (v int NOT NULL)"), OMS_OK);
    assert_int_equal(testenv_pg_long(admin,
                                     "SELECT count(*) FROM pg_tables WHERE schemaname = '" SCHEMA
                                     "' AND tablename = 't'"),
                     1);
    PGconn *bad = (PGconn *)0x1;
    assert_int_equal(pg_connect(&bad, testenv_require("OMS_PG_DSN"), "no; drop", "x"), OMS_EINVAL);
    assert_ptr_equal(bad, (PGconn *)0x1); /* untouched on error */
    PQfinish(c);
}

static void test_rollback(void **st)
{
    (void)st;
    PGconn *c = connect_ok();
    assert_int_equal(pg_exec(c, "CREATE TABLE IF NOT EXISTS t (v int NOT NULL)"), OMS_OK);
    assert_int_equal(pg_exec(c, "TRUNCATE t"), OMS_OK);
    pg_rollback(NULL); /* a no-op */
    pg_rollback(c);    /* idle: a no-op */
    assert_int_equal(PQtransactionStatus(c), PQTRANS_IDLE);

    assert_int_equal(pg_exec(c, "BEGIN"), OMS_OK);
    assert_int_equal(pg_exec(c, "INSERT INTO t VALUES (1)"), OMS_OK);
    assert_int_equal(PQtransactionStatus(c), PQTRANS_INTRANS);
    pg_rollback(c);
    assert_int_equal(PQtransactionStatus(c), PQTRANS_IDLE);

    /* A failed transaction: rolled back too, and the connection usable. */
    assert_int_equal(pg_exec(c, "BEGIN"), OMS_OK);
    assert_int_equal(pg_exec(c, "INSERT INTO t VALUES (2)"), OMS_OK);
    testenv_stderr_begin();
    oms_status s = pg_exec(c, "INSERT INTO t VALUES (NULL)");
    free(testenv_stderr_end());
    assert_int_equal(s, OMS_EDB);
    assert_int_equal(PQtransactionStatus(c), PQTRANS_INERROR);
    pg_rollback(c);
    assert_int_equal(PQtransactionStatus(c), PQTRANS_IDLE);
    assert_true(pg_ok(c));
    assert_int_equal(testenv_pg_long(c, "SELECT count(*) FROM t"), 0);
    PQfinish(c);
}

static void test_refused_statement_named(void **st)
{
    (void)st;
    PGconn *c = connect_ok();
    const char *params[] = {"x"};
    PGresult *r = (PGresult *)0x1;
    testenv_stderr_begin();
    oms_status s = pg_query(c, "read the missing table", "SELECT v FROM rt_missing WHERE v = $1", 1,
                            params, PGRES_TUPLES_OK, &r);
    char *log = testenv_stderr_end();
    assert_int_equal(s, OMS_EDB);
    assert_ptr_equal(r, (PGresult *)0x1); /* nothing returned on failure */
    assert_non_null(strstr(log, "\"what\":\"read the missing table\""));
    assert_non_null(strstr(log, "\"sqlstate\":\"42P01\""));
    assert_non_null(strstr(log, "relation \\\"rt_missing\\\" does not exist"));
    assert_non_null(strstr(log, "\"transient\":\"false\""));
    free(log);
    assert_true(pg_ok(c)); /* a refusal is not a broken connection */
    PQfinish(c);
}

static void test_terminated_backend_is_transient(void **st)
{
    (void)st;
    PGconn *c = connect_ok();
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d)::int", PQbackendPID(c));
    assert_int_equal(testenv_pg_long(admin, sql), 1);
    testenv_stderr_begin();
    oms_status s = pg_exec(c, "SELECT 1");
    char *log = testenv_stderr_end();
    assert_int_equal(s, OMS_ETRANSIENT);
    assert_false(pg_ok(c));
    assert_non_null(strstr(log, "\"transient\":\"true\""));
    free(log);
    pg_rollback(c); /* broken: a no-op, not a crash */
    PQfinish(c);
    /* Reconnecting gives a working, schema-bound connection again. */
    c = connect_ok();
    char *path = one_value(c, "SHOW search_path");
    assert_string_equal(path, SCHEMA);
    free(path);
    PQfinish(c);
}

static void test_unreachable_is_transient(void **st)
{
    (void)st;
    PGconn *c = (PGconn *)0x1;
    testenv_stderr_begin();
    /* Port 1 on loopback: nothing listens, the connection is refused at once. */
    oms_status s = pg_connect(&c, "postgresql://nobody@127.0.0.1:1/none", SCHEMA, "x");
    char *log = testenv_stderr_end();
    assert_int_equal(s, OMS_ETRANSIENT);
    assert_ptr_equal(c, (PGconn *)0x1);
    assert_non_null(strstr(log, "cannot connect to PostgreSQL"));
    assert_non_null(strstr(log, "127.0.0.1"));
    free(log);
    assert_false(pg_ok(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_binds_schema),
        cmocka_unit_test(test_rollback),
        cmocka_unit_test(test_refused_statement_named),
        cmocka_unit_test(test_terminated_backend_is_transient),
        cmocka_unit_test(test_unreachable_is_transient),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
