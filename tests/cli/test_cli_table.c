/*
 * test_cli_table.c - cli/cli_table.c pads every column to its widest cell
 * (headers included, UTF-8 counted as characters), right-aligns the numeric
 * columns it is told about, and never pads the last column; sizes and times
 * print as people read them.
 */
#include "testenv.h"

#include "cli.h"

#include <stdlib.h>
#include <string.h>

/* Prints t into a string; caller frees. */
static char *render(const cli_table *t)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    cli_table_print(t, f);
    fclose(f);
    return text;
}

static void test_columns_align(void **state)
{
    (void)state;
    static const char *const head[] = {"STREAM", "MESSAGES", "NOTE"};
    cli_table *t = cli_table_create(3, head, 0x2);
    const char *r1[] = {"INGEST", "5", "ok"};
    const char *r2[] = {"PAYMENTS", "161582", "é"};
    assert_int_equal(cli_table_add(t, r1), OMS_OK);
    assert_int_equal(cli_table_add(t, r2), OMS_OK);
    char *text = render(t);
    assert_string_equal(text, "STREAM    MESSAGES  NOTE\n"
                              "INGEST           5  ok\n"
                              "PAYMENTS    161582  é\n");
    free(text);
    cli_table_destroy(t);
}

static void test_empty_trailing_cells_leave_no_blanks(void **state)
{
    (void)state;
    static const char *const head[] = {"AT", "STATUS", "REASON"};
    cli_table *t = cli_table_create(3, head, 0);
    const char *r1[] = {"10:00", "created", ""};
    const char *r2[] = {"10:01", "failed", "out of stock"};
    assert_int_equal(cli_table_add(t, r1), OMS_OK);
    assert_int_equal(cli_table_add(t, r2), OMS_OK);
    char *text = render(t);
    assert_string_equal(text, "AT     STATUS   REASON\n"
                              "10:00  created\n"
                              "10:01  failed   out of stock\n");
    free(text);
    cli_table_destroy(t);
}

static void test_empty_table_prints_header(void **state)
{
    (void)state;
    static const char *const head[] = {"A", "B"};
    cli_table *t = cli_table_create(2, head, 0);
    char *text = render(t);
    assert_string_equal(text, "A  B\n");
    free(text);
    cli_table_destroy(t);
    cli_table_destroy(NULL);
}

static void test_format_bytes(void **state)
{
    (void)state;
    char out[32];
    cli_format_bytes(0, out, sizeof out);
    assert_string_equal(out, "0 B");
    cli_format_bytes(1023, out, sizeof out);
    assert_string_equal(out, "1023 B");
    cli_format_bytes(1536, out, sizeof out);
    assert_string_equal(out, "1.5 KiB");
    cli_format_bytes(51904512, out, sizeof out);
    assert_string_equal(out, "49.5 MiB");
}

static void test_format_time_ms(void **state)
{
    (void)state;
    char out[40];
    cli_format_time_ms(0, out, sizeof out);
    assert_string_equal(out, "1970-01-01T00:00:00Z");
    cli_format_time_ms(1793614500000LL, out, sizeof out);
    assert_string_equal(out, "2026-11-02T10:15:00Z");
    cli_format_time_ms(1793614500007LL, out, sizeof out);
    assert_string_equal(out, "2026-11-02T10:15:00.007Z");
    cli_format_time_ms(-1, out, sizeof out);
    assert_string_equal(out, "-1");
    cli_format_time_ms(253402300800000LL, out, sizeof out); /* year 10000 */
    assert_string_equal(out, "253402300800000");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_columns_align),
        cmocka_unit_test(test_empty_trailing_cells_leave_no_blanks),
        cmocka_unit_test(test_empty_table_prints_header),
        cmocka_unit_test(test_format_bytes),
        cmocka_unit_test(test_format_time_ms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
