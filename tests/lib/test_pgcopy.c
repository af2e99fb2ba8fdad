/*
 * test_pgcopy.c - the exact bytes of COPY text format the buffer builds:
 * tab separators, \N for NULL, backslash escapes for \ TAB LF CR, decimal
 * ints, bytea as \\x hex. pgcopy_send needs a server and is covered by the
 * integration tests.
 */
#include "testenv.h"

#include "pgcopy.h"

#include <stdlib.h>
#include <string.h>

/* Compares the whole buffer with want (which may not be NUL-terminated in b). */
static void assert_bytes(const pgcopy *b, const char *want)
{
    size_t n = strlen(want);
    if (b->len != n || memcmp(b->data, want, n) != 0)
        fail_msg("buffer is \"%.*s\" (%zu bytes), want \"%s\" (%zu bytes)", (int)b->len,
                 b->data ? b->data : "", b->len, want, n);
}

static void test_empty(void **state)
{
    (void)state;
    pgcopy b;
    pgcopy_init(&b);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.rows, 0);
    assert_false(b.col_open);
    assert_false(b.oom);
    pgcopy_fini(&b);
    pgcopy_fini(&b); /* twice is harmless */
}

static void test_text_escapes(void **state)
{
    (void)state;
    pgcopy b;
    pgcopy_init(&b);
    pgcopy_text(&b, "plain");
    pgcopy_text(&b, "tab\there");
    pgcopy_text(&b, "new\nline");
    pgcopy_text(&b, "back\\slash");
    pgcopy_text(&b, "cr\r\nlf");
    pgcopy_text(&b, "\\N");
    pgcopy_text(&b, "");
    pgcopy_text(&b, "caf\xc3\xa9, \"quoted\" 'x'");
    pgcopy_end_row(&b);
    assert_bytes(&b, "plain\t"
                     "tab\\there\t"
                     "new\\nline\t"
                     "back\\\\slash\t"
                     "cr\\r\\nlf\t"
                     "\\\\N\t"
                     "\t"
                     "caf\xc3\xa9, \"quoted\" 'x'\n");
    assert_int_equal(b.rows, 1);
    pgcopy_fini(&b);
}

static void test_null(void **state)
{
    (void)state;
    pgcopy b;
    pgcopy_init(&b);
    pgcopy_null(&b);
    pgcopy_text(&b, NULL);
    pgcopy_text(&b, "x");
    pgcopy_null(&b);
    pgcopy_end_row(&b);
    assert_bytes(&b, "\\N\t\\N\tx\t\\N\n");
    pgcopy_fini(&b);
}

static void test_ints(void **state)
{
    (void)state;
    pgcopy b;
    pgcopy_init(&b);
    pgcopy_int(&b, 0);
    pgcopy_int(&b, 42);
    pgcopy_int(&b, -42);
    pgcopy_int(&b, INT64_MAX);
    pgcopy_int(&b, INT64_MIN);
    pgcopy_end_row(&b);
    assert_bytes(&b, "0\t42\t-42\t9223372036854775807\t-9223372036854775808\n");
    pgcopy_fini(&b);
}

static void test_bytea_hex(void **state)
{
    (void)state;
    static const unsigned char bytes[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff, '\t', '\\'};
    pgcopy b;
    pgcopy_init(&b);
    pgcopy_bytea(&b, bytes, sizeof bytes);
    pgcopy_bytea(&b, "", 0);
    pgcopy_bytea(&b, "AZ", 2);
    pgcopy_end_row(&b);
    /* COPY unescapes "\\\\x" to "\\x", which bytea_in reads as hex. */
    assert_bytes(&b, "\\\\x00017f80abff095c\t\\\\x\t\\\\x415a\n");
    pgcopy_fini(&b);
}

static void test_rows_and_columns(void **state)
{
    (void)state;
    pgcopy b;
    pgcopy_init(&b);
    pgcopy_text(&b, "A-1");
    pgcopy_int(&b, 2);
    pgcopy_null(&b);
    pgcopy_end_row(&b);
    pgcopy_int(&b, 7);
    pgcopy_end_row(&b);
    pgcopy_end_row(&b); /* a row with no column is an empty line */
    pgcopy_bytea(&b, "\x01", 1);
    pgcopy_text(&b, "z");
    pgcopy_end_row(&b);
    assert_bytes(&b, "A-1\t2\t\\N\n7\n\n\\\\x01\tz\n");
    assert_int_equal(b.rows, 4);
    assert_false(b.col_open);
    pgcopy_fini(&b);
}

/* reset empties the buffer and the row state but keeps the memory. */
static void test_reset(void **state)
{
    (void)state;
    pgcopy b;
    pgcopy_init(&b);
    pgcopy_text(&b, "old");
    pgcopy_end_row(&b);
    pgcopy_text(&b, "half");
    char *data = b.data;
    size_t cap = b.cap;
    pgcopy_reset(&b);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.rows, 0);
    assert_false(b.col_open);
    assert_ptr_equal(b.data, data);
    assert_int_equal(b.cap, cap);
    /* No leading tab: the half-written row is gone with its open column. */
    pgcopy_text(&b, "new");
    pgcopy_int(&b, 1);
    pgcopy_end_row(&b);
    assert_bytes(&b, "new\t1\n");
    assert_int_equal(b.rows, 1);
    pgcopy_fini(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    /* Usable again after fini. */
    pgcopy_init(&b);
    pgcopy_int(&b, 5);
    pgcopy_end_row(&b);
    assert_bytes(&b, "5\n");
    pgcopy_fini(&b);
}

/* Growing past the first allocation keeps every byte; each writer's worst
 * case (all escapes, widest int, hex) is exercised right at the boundary. */
static void test_growth(void **state)
{
    (void)state;
    pgcopy b;
    pgcopy_init(&b);
    size_t n = 10000;
    char *tabs = malloc(n + 1);
    assert_non_null(tabs);
    memset(tabs, '\t', n);
    tabs[n] = '\0';
    pgcopy_text(&b, tabs);
    pgcopy_end_row(&b);
    assert_int_equal(b.len, 2 * n + 1);
    for (size_t i = 0; i < n; i++)
        if (b.data[2 * i] != '\\' || b.data[2 * i + 1] != 't')
            fail_msg("escape %zu wrong", i);
    assert_int_equal(b.data[2 * n], '\n');

    pgcopy_reset(&b);
    size_t rows = 3000;
    for (size_t i = 0; i < rows; i++) {
        pgcopy_int(&b, INT64_MIN);
        pgcopy_null(&b);
        pgcopy_bytea(&b, "\xff\xfe", 2);
        pgcopy_text(&b, "\\");
        pgcopy_end_row(&b);
    }
    const char *row = "-9223372036854775808\t\\N\t\\\\xfffe\t\\\\\n";
    size_t row_len = strlen(row);
    assert_int_equal(b.rows, rows);
    assert_int_equal(b.len, rows * row_len);
    for (size_t i = 0; i < rows; i++)
        if (memcmp(b.data + i * row_len, row, row_len) != 0)
            fail_msg("row %zu differs", i);
    assert_false(b.oom);
    pgcopy_fini(&b);
    free(tabs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),     cmocka_unit_test(test_text_escapes),
        cmocka_unit_test(test_null),      cmocka_unit_test(test_ints),
        cmocka_unit_test(test_bytea_hex), cmocka_unit_test(test_rows_and_columns),
        cmocka_unit_test(test_reset),     cmocka_unit_test(test_growth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
