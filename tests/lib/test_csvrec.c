/*
 * test_csvrec.c - whole records out of CSV fed in arbitrary pieces: quoting,
 * embedded commas/quotes/newlines, CRLF, blank lines, a last record without
 * a line end; and csvrec_write output that parses back to the same fields.
 */
#include "testenv.h"

#include "csvrec.h"

#include <stdlib.h>
#include <string.h>

#define MAX_RECORDS 64
#define MAX_FIELDS 2048

/* Every record delivered, copied out of the borrowed fields. */
typedef struct collected {
    size_t count;
    size_t nfields[MAX_RECORDS];
    char **fields[MAX_RECORDS];
} collected;

static void collect(void *ctx, char *const *fields, size_t n)
{
    collected *c = ctx;
    assert_true(c->count < MAX_RECORDS);
    assert_true(n <= MAX_FIELDS);
    char **copy = calloc(n, sizeof *copy);
    assert_non_null(copy);
    for (size_t i = 0; i < n; i++) {
        copy[i] = strdup(fields[i]);
        assert_non_null(copy[i]);
    }
    c->fields[c->count] = copy;
    c->nfields[c->count] = n;
    c->count++;
}

static void collected_free(collected *c)
{
    for (size_t r = 0; r < c->count; r++) {
        for (size_t i = 0; i < c->nfields[r]; i++)
            free(c->fields[r][i]);
        free(c->fields[r]);
    }
    memset(c, 0, sizeof *c);
}

/* Parses text fed in chunks of `chunk` bytes (0: all at once), then finishes.
 * Checks that the parser's own record count matches what was delivered. */
static void parse_chunked(const char *text, size_t len, size_t chunk, collected *out)
{
    csvrec r;
    memset(out, 0, sizeof *out);
    assert_int_equal(csvrec_init(&r, collect, out), OMS_OK);
    if (chunk == 0)
        chunk = len ? len : 1;
    for (size_t off = 0; off < len; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        assert_int_equal(csvrec_feed(&r, text + off, n), OMS_OK);
    }
    assert_int_equal(csvrec_finish(&r), OMS_OK);
    assert_int_equal(r.records, out->count);
    csvrec_fini(&r);
}

static void parse_all(const char *text, collected *out)
{
    parse_chunked(text, strlen(text), 0, out);
}

/* Asserts record r holds exactly the n expected fields. */
static void assert_record(const collected *c, size_t r, const char *const *want, size_t n)
{
    assert_true(r < c->count);
    if (c->nfields[r] != n)
        fail_msg("record %zu has %zu fields, want %zu", r, c->nfields[r], n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(c->fields[r][i], want[i]);
}

static void assert_same(const collected *a, const collected *b)
{
    assert_int_equal(a->count, b->count);
    for (size_t r = 0; r < a->count; r++)
        assert_record(b, r, (const char *const *)a->fields[r], a->nfields[r]);
}

#define REC(c, r, ...)                                                                 \
    do {                                                                               \
        static const char *const want_[] = {__VA_ARGS__};                              \
        assert_record((c), (r), want_, sizeof want_ / sizeof want_[0]);                \
    } while (0)

static void test_simple_records(void **state)
{
    (void)state;
    collected c;
    parse_all("order_id,sku,qty\nA-1,SKU-1,2\nA-2,SKU-2,3\n", &c);
    assert_int_equal(c.count, 3);
    REC(&c, 0, "order_id", "sku", "qty");
    REC(&c, 1, "A-1", "SKU-1", "2");
    REC(&c, 2, "A-2", "SKU-2", "3");
    collected_free(&c);
}

static void test_quoted_fields(void **state)
{
    (void)state;
    collected c;
    parse_all("\"x,y\",\"say \"\"hi\"\"\",\"line1\nline2\",plain\n"
              "\"\",\"\"\"\",\"a,\"\"b\"\",\nc\"\n",
              &c);
    assert_int_equal(c.count, 2);
    REC(&c, 0, "x,y", "say \"hi\"", "line1\nline2", "plain");
    REC(&c, 1, "", "\"", "a,\"b\",\nc");
    collected_free(&c);
}

static void test_crlf(void **state)
{
    (void)state;
    collected c;
    parse_all("a,b\r\nc,d\r\n\"l1\r\nl2\",e\r\n", &c);
    assert_int_equal(c.count, 3);
    REC(&c, 0, "a", "b");
    REC(&c, 1, "c", "d");
    REC(&c, 2, "l1\r\nl2", "e");
    collected_free(&c);
}

static void test_empty_fields(void **state)
{
    (void)state;
    collected c;
    parse_all("a,,c\n,\n\"\"\n", &c);
    assert_int_equal(c.count, 3);
    REC(&c, 0, "a", "", "c");
    REC(&c, 1, "", "");
    REC(&c, 2, "");
    collected_free(&c);
}

static void test_blank_lines_skipped(void **state)
{
    (void)state;
    collected c;
    parse_all("\n\r\n\na,b\n\n\r\n   \n\nc\n\n", &c);
    assert_int_equal(c.count, 2);
    REC(&c, 0, "a", "b");
    REC(&c, 1, "c");
    collected_free(&c);
    parse_all("", &c);
    assert_int_equal(c.count, 0);
    parse_all("\n\n\r\n", &c);
    assert_int_equal(c.count, 0);
}

/* Spaces around unquoted fields go, spaces inside quotes stay. */
static void test_spaces_trimmed_unless_quoted(void **state)
{
    (void)state;
    collected c;
    parse_all(" a , b c ,\" d \"\n", &c);
    assert_int_equal(c.count, 1);
    REC(&c, 0, "a", "b c", " d ");
    collected_free(&c);
}

/* The record held back for lack of a line end comes out only at finish. */
static void test_last_record_without_newline(void **state)
{
    (void)state;
    collected c;
    memset(&c, 0, sizeof c);
    csvrec r;
    assert_int_equal(csvrec_init(&r, collect, &c), OMS_OK);
    const char *text = "a,b\nc,\"d\ne\"";
    assert_int_equal(csvrec_feed(&r, text, strlen(text)), OMS_OK);
    assert_int_equal(c.count, 1);
    assert_int_equal(r.records, 1);
    assert_int_equal(csvrec_finish(&r), OMS_OK);
    assert_int_equal(c.count, 2);
    assert_int_equal(r.records, 2);
    REC(&c, 0, "a", "b");
    REC(&c, 1, "c", "d\ne");
    csvrec_fini(&r);
    collected_free(&c);

    /* A trailing comma without newline still ends in an empty field. */
    parse_all("x,", &c);
    assert_int_equal(c.count, 1);
    REC(&c, 0, "x", "");
    collected_free(&c);

    /* finish after a complete last line delivers nothing more. */
    parse_all("x\n", &c);
    assert_int_equal(c.count, 1);
    collected_free(&c);
}

static const char MIXED[] = "order_id,customer_id,sku,qty,unit_price\r\n"
                            "\"A-1\",C-1,\"SKU,1\",2,\"1,299.99\"\n"
                            "\n"
                            "A-2,\"C \"\"quoted\"\"\",SKU-2,1,5\r\n"
                            "A-3,C-3,\"multi\r\nline\nsku\",3,0.5\n"
                            "  A-4 ,C-4,SKU-4,4,7.\n"
                            "A-5,C-5,SKU-5,5,\"\"";

/* Every way of cutting the input gives the same records. */
static void test_feed_boundaries_do_not_matter(void **state)
{
    (void)state;
    size_t len = sizeof MIXED - 1;
    collected whole, piece;
    parse_chunked(MIXED, len, 0, &whole);
    assert_int_equal(whole.count, 6);
    REC(&whole, 0, "order_id", "customer_id", "sku", "qty", "unit_price");
    REC(&whole, 1, "A-1", "C-1", "SKU,1", "2", "1,299.99");
    REC(&whole, 2, "A-2", "C \"quoted\"", "SKU-2", "1", "5");
    REC(&whole, 3, "A-3", "C-3", "multi\r\nline\nsku", "3", "0.5");
    REC(&whole, 4, "A-4", "C-4", "SKU-4", "4", "7.");
    REC(&whole, 5, "A-5", "C-5", "SKU-5", "5", "");
    for (size_t chunk = 1; chunk <= len; chunk++) {
        parse_chunked(MIXED, len, chunk, &piece);
        assert_same(&whole, &piece);
        collected_free(&piece);
    }

    /* Uneven cuts from a fixed pseudo-random sequence, including empty feeds. */
    uint32_t seed = 12345;
    for (int round = 0; round < 50; round++) {
        csvrec r;
        memset(&piece, 0, sizeof piece);
        assert_int_equal(csvrec_init(&r, collect, &piece), OMS_OK);
        for (size_t off = 0; off < len;) {
            seed = seed * 1103515245u + 12345u;
            size_t n = (seed >> 16) % 9;
            if (n > len - off)
                n = len - off;
            assert_int_equal(csvrec_feed(&r, MIXED + off, n), OMS_OK);
            off += n;
        }
        assert_int_equal(csvrec_finish(&r), OMS_OK);
        assert_int_equal(r.records, 6);
        assert_same(&whole, &piece);
        csvrec_fini(&r);
        collected_free(&piece);
    }
    collected_free(&whole);
}

/* One record bigger than any initial buffer: a 100 kB field and 2000 fields. */
static void test_large_record(void **state)
{
    (void)state;
    size_t big = 100000;
    size_t cap = big + 2 * MAX_FIELDS + 16;
    char *text = malloc(cap);
    assert_non_null(text);
    memset(text, 'x', big);
    size_t len = big;
    text[len++] = '\n';
    for (int i = 0; i < 2000; i++) {
        text[len++] = (char)('0' + i % 10);
        text[len++] = i + 1 < 2000 ? ',' : '\n';
    }
    collected c;
    parse_chunked(text, len, 777, &c);
    assert_int_equal(c.count, 2);
    assert_int_equal(c.nfields[0], 1);
    assert_int_equal(strlen(c.fields[0][0]), big);
    assert_int_equal(c.nfields[1], 2000);
    assert_string_equal(c.fields[1][0], "0");
    assert_string_equal(c.fields[1][1999], "9");
    collected_free(&c);
    free(text);
}

static void test_write_exact_bytes(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    char *one[] = {"a", "b,c"};
    char *two[] = {"say \"hi\"", ""};
    assert_int_equal(csvrec_write(&buf, &len, &cap, one, 2), OMS_OK);
    /* libcsv quotes every field. */
    const char *want1 = "\"a\",\"b,c\"\n";
    assert_int_equal(len, strlen(want1));
    assert_memory_equal(buf, want1, len);
    assert_true(cap >= len);
    /* A second call appends. */
    assert_int_equal(csvrec_write(&buf, &len, &cap, two, 2), OMS_OK);
    const char *want2 = "\"a\",\"b,c\"\n\"say \"\"hi\"\"\",\"\"\n";
    assert_int_equal(len, strlen(want2));
    assert_memory_equal(buf, want2, len);
    /* No fields: nothing written. */
    assert_int_equal(csvrec_write(&buf, &len, &cap, one, 0), OMS_OK);
    assert_int_equal(len, strlen(want2));
    free(buf);
}

static void test_write_parse_round_trip(void **state)
{
    (void)state;
    char *records[][5] = {
        {"order_id", "customer_id", "sku", "qty", "unit_price"},
        {"A,1", "say \"hi\"", "line1\nline2", "", "  padded  "},
        {"\"", "\"\"", ",", "\r\n", "caf\xc3\xa9 \xe6\x97\xa5"},
        {"a\rb", "trailing,", ",leading", "\"quoted\"", "x"},
    };
    size_t nrec = sizeof records / sizeof records[0];
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (size_t i = 0; i < nrec; i++)
        assert_int_equal(csvrec_write(&buf, &len, &cap, records[i], 5), OMS_OK);

    collected whole, bytes;
    parse_chunked(buf, len, 0, &whole);
    parse_chunked(buf, len, 1, &bytes);
    assert_int_equal(whole.count, nrec);
    for (size_t i = 0; i < nrec; i++)
        assert_record(&whole, i, (const char *const *)records[i], 5);
    assert_same(&whole, &bytes);
    collected_free(&whole);
    collected_free(&bytes);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_records),
        cmocka_unit_test(test_quoted_fields),
        cmocka_unit_test(test_crlf),
        cmocka_unit_test(test_empty_fields),
        cmocka_unit_test(test_blank_lines_skipped),
        cmocka_unit_test(test_spaces_trimmed_unless_quoted),
        cmocka_unit_test(test_last_record_without_newline),
        cmocka_unit_test(test_feed_boundaries_do_not_matter),
        cmocka_unit_test(test_large_record),
        cmocka_unit_test(test_write_exact_bytes),
        cmocka_unit_test(test_write_parse_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
