/*
 * test_pgcols.c - the column set behind UPDATE/INSERT ... FROM unnest(...):
 * the exact array literals it renders, and a round trip through the real
 * PostgreSQL's unnest that must hand back every awkward value unchanged
 * (quotes, backslashes, commas, braces, blanks, UTF-8, empty, NULL and the
 * text "NULL").
 */
#include "testenv.h"

#include "pg.h"

#include <stdlib.h>
#include <string.h>

enum { C_TEXT, C_INT, C_FLAG, N_COLS };

static const char *const awkward[] = {
    "plain",
    "with \"quotes\"",
    "back\\slash",
    "a,b",
    "{braces}",
    " lead and trail ",
    "",
    NULL,
    "NULL",
    "null",
    "caf\xc3\xa9 \xe2\x82\xac",
    "\\\"",
    "}\",{\\",
    "tab\there",
    "new\nline",
};
#define N_AWKWARD (sizeof awkward / sizeof awkward[0])

static void fill(pg_cols *c)
{
    for (size_t i = 0; i < N_AWKWARD; i++) {
        pg_cols_text(c, C_TEXT, awkward[i]);
        pg_cols_int(c, C_INT, i % 2 ? INT64_MIN + (int64_t)i : INT64_MAX - (int64_t)i);
        pg_cols_bool(c, C_FLAG, i % 3 == 0);
    }
}

static void test_literals(void **state)
{
    (void)state;
    pg_cols c;
    pg_cols_init(&c, 3);
    pg_cols_text(&c, 0, "a\"b");
    pg_cols_text(&c, 0, NULL);
    pg_cols_text(&c, 0, "NULL");
    pg_cols_text(&c, 0, "x\\,{}");
    pg_cols_int(&c, 1, -42);
    pg_cols_int(&c, 1, 0);
    pg_cols_bool(&c, 2, true);
    const char *const *p = pg_cols_params(&c);
    assert_non_null(p);
    assert_string_equal(p[0], "{\"a\\\"b\",NULL,\"NULL\",\"x\\\\,{}\"}");
    assert_string_equal(p[1], "{\"-42\",\"0\"}");
    assert_string_equal(p[2], "{\"t\"}");
    assert_int_equal(pg_cols_rows(&c), 4);

    pg_cols_reset(&c);
    p = pg_cols_params(&c);
    assert_non_null(p);
    assert_string_equal(p[0], "{}");
    assert_string_equal(p[1], "{}");
    assert_int_equal(pg_cols_rows(&c), 0);
    pg_cols_fini(&c);
    pg_cols_fini(&c); /* twice is harmless */
}

static void test_unused_is_empty(void **state)
{
    (void)state;
    pg_cols c;
    pg_cols_init(&c, 2);
    const char *const *p = pg_cols_params(&c);
    assert_non_null(p);
    assert_string_equal(p[0], "{}");
    assert_string_equal(p[1], "{}");
    pg_cols_fini(&c);
}

static void test_bad_column_sticks(void **state)
{
    (void)state;
    pg_cols c;
    pg_cols_init(&c, 2);
    assert_int_equal(pg_cols_text(&c, 2, "x"), OMS_EINVAL);
    assert_int_equal(pg_cols_text(&c, 0, "y"), OMS_OK);
    assert_null(pg_cols_params(&c));
    assert_int_equal(pg_cols_query(NULL, "never sent", "SELECT 1", &c, PGRES_TUPLES_OK, NULL),
                     OMS_EINVAL);
    pg_cols_reset(&c);
    assert_non_null(pg_cols_params(&c));
    pg_cols_fini(&c);
}

static void test_round_trip(void **state)
{
    (void)state;
    PGconn *conn = testenv_pg();
    PGresult *res = NULL;
    pg_cols c;
    pg_cols_init(&c, N_COLS);
    fill(&c);
    assert_int_equal(pg_cols_rows(&c), N_AWKWARD);
    assert_int_equal(pg_cols_query(conn, "round trip",
                                   "SELECT t, n, f FROM unnest($1::text[], $2::bigint[],"
                                   " $3::bool[]) WITH ORDINALITY AS x(t, n, f, i) ORDER BY i",
                                   &c, PGRES_TUPLES_OK, &res),
                     OMS_OK);
    assert_int_equal(PQntuples(res), N_AWKWARD);
    for (int i = 0; i < (int)N_AWKWARD; i++) {
        char want_n[24];
        snprintf(want_n, sizeof want_n, "%lld", (long long)(i % 2 ? INT64_MIN + i : INT64_MAX - i));
        if (awkward[i] == NULL)
            assert_true(PQgetisnull(res, i, 0));
        else {
            assert_false(PQgetisnull(res, i, 0));
            assert_string_equal(PQgetvalue(res, i, 0), awkward[i]);
        }
        assert_string_equal(PQgetvalue(res, i, 1), want_n);
        assert_string_equal(PQgetvalue(res, i, 2), i % 3 == 0 ? "t" : "f");
    }
    PQclear(res);

    /* Reused after reset: only the new rows reach the server. */
    pg_cols_reset(&c);
    pg_cols_text(&c, C_TEXT, "again");
    pg_cols_int(&c, C_INT, 7);
    pg_cols_bool(&c, C_FLAG, false);
    assert_int_equal(pg_cols_query(conn, "reuse",
                                   "SELECT count(*), min(t), sum(n) FROM unnest($1::text[],"
                                   " $2::bigint[], $3::bool[]) AS x(t, n, f)",
                                   &c, PGRES_TUPLES_OK, &res),
                     OMS_OK);
    assert_string_equal(PQgetvalue(res, 0, 0), "1");
    assert_string_equal(PQgetvalue(res, 0, 1), "again");
    assert_string_equal(PQgetvalue(res, 0, 2), "7");
    PQclear(res);
    pg_cols_fini(&c);
    PQfinish(conn);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literals),
        cmocka_unit_test(test_unused_is_empty),
        cmocka_unit_test(test_bad_column_sticks),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
