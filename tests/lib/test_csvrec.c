/*
 * test_csvrec.c - whole records out of CSV fed in arbitrary pieces: quoting,
 * embedded commas/quotes/newlines, CRLF, blank lines, a last record without
 * a line end; and csvrec_write output that parses back to the same fields.
 * Faults, each with its exact sentence: NUL bytes, unclosed and misplaced
 * quotes, fields past the limit (refused while read), too many fields.
 */
#include "testenv.h"

#include "csvrec.h"

#include <stdio.h>
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

#define REC(c, r, ...)                                                  \
    do {                                                                \
        static const char *const want_[] = {__VA_ARGS__};               \
        assert_record((c), (r), want_, sizeof want_ / sizeof want_[0]); \
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

/* ---- faults: what the bytes say, or an error naming row and field ----- */

/* Record faults seen through csvrec_set_fault_fn, copied out. */
typedef struct faults {
    collected rec;
    size_t count;
    csvrec_error e[8];
    size_t kept[8];    /* fields handed to the fault function */
    char first[8][16]; /* the first of them */
} faults;

static void collect_fault(void *ctx, const csvrec_error *e, char *const *fields, size_t n)
{
    faults *f = ctx;
    assert_true(f->count < 8);
    f->e[f->count] = *e;
    f->kept[f->count] = n;
    snprintf(f->first[f->count], sizeof f->first[0], "%s", n > 0 ? fields[0] : "");
    f->count++;
}

static void collect_into_faults(void *ctx, char *const *fields, size_t n)
{
    collect(&((faults *)ctx)->rec, fields, n);
}

/* Feeds len bytes of text in pieces of `chunk` (0: at once) and finishes;
 * returns the first status that is not OMS_OK. */
static oms_status feed_all(csvrec *r, const char *text, size_t len, size_t chunk)
{
    oms_status s = OMS_OK;
    if (chunk == 0)
        chunk = len ? len : 1;
    for (size_t off = 0; off < len && s == OMS_OK; off += chunk)
        s = csvrec_feed(r, text + off, len - off < chunk ? len - off : chunk);
    return s == OMS_OK ? csvrec_finish(r) : s;
}

/* Without a fault function, a NUL stops parsing at its record: the field is
 * never handed on cut short ("ORD-1\0EVIL" is not "ORD-1"). */
static void test_nul_stops_by_default(void **state)
{
    (void)state;
    static const char text[] = "a,b\nORD-1\0EVIL,2\nc,d\n";
    for (size_t chunk = 0; chunk <= 5; chunk += 5) {
        collected c;
        csvrec r;
        memset(&c, 0, sizeof c);
        assert_int_equal(csvrec_init(&r, collect, &c), OMS_OK);
        assert_int_equal(feed_all(&r, text, sizeof text - 1, chunk), OMS_EINVAL);
        const csvrec_error *e = csvrec_error_of(&r);
        assert_int_equal(e->fault, CSVREC_FAULT_NUL);
        assert_int_equal(e->record, 2);
        assert_int_equal(e->field, 1);
        assert_int_equal(e->byte, 6);
        assert_string_equal(e->text, "row 2, field 1 contains a NUL byte at byte 6");
        assert_int_equal(c.count, 1);
        REC(&c, 0, "a", "b");
        /* Stopped for good: a later feed changes nothing. */
        assert_int_equal(csvrec_feed(&r, "x\n", 2), OMS_EINVAL);
        assert_int_equal(c.count, 1);
        csvrec_fini(&r);
        collected_free(&c);
    }
}

/* With a fault function the faulty record is reported and the rows around it
 * come through whole: qty "1\0999" is neither 1 nor 1999. */
static void test_nul_record_fault_goes_on(void **state)
{
    (void)state;
    static const char text[] = "A-1,1\nA-2,1\0999\n\"x\0\",y\nA-3,3\n";
    faults f;
    csvrec r;
    memset(&f, 0, sizeof f);
    assert_int_equal(csvrec_init(&r, collect_into_faults, &f), OMS_OK);
    csvrec_set_fault_fn(&r, collect_fault);
    assert_int_equal(feed_all(&r, text, sizeof text - 1, 3), OMS_OK);
    assert_int_equal(f.rec.count, 2);
    REC(&f.rec, 0, "A-1", "1");
    REC(&f.rec, 1, "A-3", "3");
    assert_int_equal(f.count, 2);
    assert_int_equal(f.e[0].record, 2);
    assert_int_equal(f.e[0].field, 2);
    assert_string_equal(f.e[0].what, "contains a NUL byte at byte 2");
    assert_string_equal(f.e[0].text, "row 2, field 2 contains a NUL byte at byte 2");
    assert_string_equal(f.e[1].text, "row 3, field 1 contains a NUL byte at byte 2");
    /* The faulty record's fields still come, so it can be named; the field
     * with the NUL is cut there. */
    assert_int_equal(f.kept[0], 2);
    assert_string_equal(f.first[0], "A-2");
    assert_int_equal(f.kept[1], 2);
    assert_string_equal(f.first[1], "x");
    assert_int_equal(r.records, 2);
    assert_int_equal(csvrec_error_of(&r)->fault, CSVREC_FAULT_NONE);
    csvrec_fini(&r);
    collected_free(&f.rec);
}

/* Expects text to stop parsing with fault at record/field, text as given,
 * and only the first `delivered` records handed on; for every cut. */
static void expect_stop(const char *text, csvrec_fault fault, size_t record, size_t field,
                        const char *want, size_t delivered)
{
    size_t len = strlen(text);
    for (size_t chunk = 0; chunk <= len; chunk++) {
        collected c;
        csvrec r;
        memset(&c, 0, sizeof c);
        assert_int_equal(csvrec_init(&r, collect, &c), OMS_OK);
        assert_int_equal(feed_all(&r, text, len, chunk), OMS_EINVAL);
        const csvrec_error *e = csvrec_error_of(&r);
        assert_int_equal(e->fault, fault);
        assert_int_equal(e->record, record);
        assert_int_equal(e->field, field);
        assert_string_equal(e->text, want);
        assert_int_equal(c.count, delivered);
        csvrec_fini(&r);
        collected_free(&c);
    }
}

/* An unclosed quote is named where it opened; the rows after it are never
 * delivered as part of its field. */
static void test_unclosed_quote(void **state)
{
    (void)state;
#define UNCLOSED " starts a quoted field that is never properly closed"
    /* Open to the end of the input. */
    expect_stop("a,b\nORD-1,\"C1,SKU-1\nORD-2,C2,SKU-2\n", CSVREC_FAULT_UNCLOSED_QUOTE, 2, 2,
                "row 2, field 2" UNCLOSED, 1);
    /* A quote further on would have "closed" it: found, but named at row 2. */
    expect_stop("a,b\nORD-1,\"C1,SKU-1\nORD-2,\"C2\",SKU-2\nORD-3,C3\n",
                CSVREC_FAULT_UNCLOSED_QUOTE, 2, 2, "row 2, field 2" UNCLOSED, 1);
    expect_stop("x,y,\"open", CSVREC_FAULT_UNCLOSED_QUOTE, 1, 3, "row 1, field 3" UNCLOSED, 0);
#undef UNCLOSED
}

static void test_misplaced_quote(void **state)
{
    (void)state;
#define MISPLACED                                                                             \
    " has a misplaced quote (a quote inside a field is written \"\", and a closing quote is " \
    "followed by a comma or a line end)"
    expect_stop("a,b,c\nA-1,C-1,Pizza 12\" large\n", CSVREC_FAULT_BAD_QUOTE, 2, 3,
                "row 2, field 3" MISPLACED, 1);
    expect_stop("\"A-1\"x,C-1\n", CSVREC_FAULT_BAD_QUOTE, 1, 1, "row 1, field 1" MISPLACED, 0);
#undef MISPLACED
}

/* A field past the limit stops parsing while it is read: a 64 MiB field
 * leaves the parser's buffer at a few hundred bytes, never at 64 MiB. */
static void test_field_limit_while_parsing(void **state)
{
    (void)state;
    size_t big = (size_t)64 << 20;
    char *text = malloc(big + 8);
    assert_non_null(text);
    memcpy(text, "a,\"", 3);
    memset(text + 3, 'x', big);
    collected c;
    csvrec r;
    memset(&c, 0, sizeof c);
    assert_int_equal(csvrec_init(&r, collect, &c), OMS_OK);
    csvrec_set_limits(&r, 256, 0);
    assert_int_equal(csvrec_feed(&r, text, big + 3), OMS_EINVAL);
    assert_true(csv_get_buffer_size(&r.parser) <= 256 + 512 + 128);
    assert_string_equal(csvrec_error_of(&r)->text, "row 1, field 2 is longer than 256 bytes");
    assert_int_equal(csvrec_error_of(&r)->fault, CSVREC_FAULT_FIELD_TOO_LONG);
    assert_int_equal(c.count, 0);
    /* What the stopped record held before the fault can still name it. */
    assert_string_equal(csvrec_field_so_far(&r, 0), "a");
    assert_null(csvrec_field_so_far(&r, 1));
    csvrec_fini(&r);
    free(text);

    /* Exactly at the limit passes, one byte more does not, however it is cut. */
    char at[300], past[300];
    memset(at, 'y', 256);
    memcpy(at + 256, "\nz\n", 4);
    memcpy(past, "ok\n", 3);
    memset(past + 3, 'y', 257);
    memcpy(past + 260, ",z\n", 4);
    for (size_t chunk = 1; chunk <= 300; chunk += 37) {
        parse_chunked(at, strlen(at), chunk, &c);
        assert_int_equal(c.count, 2);
        assert_int_equal(strlen(c.fields[0][0]), 256);
        collected_free(&c);
        assert_int_equal(csvrec_init(&r, collect, &c), OMS_OK);
        csvrec_set_limits(&r, 256, 0);
        assert_int_equal(feed_all(&r, past, strlen(past), chunk), OMS_EINVAL);
        assert_string_equal(csvrec_error_of(&r)->text, "row 2, field 1 is longer than 256 bytes");
        assert_int_equal(c.count, 1);
        csvrec_fini(&r);
        collected_free(&c);
    }
}

/* One column may be wider (a JSON cell): it holds up to its own limit, the
 * other columns keep theirs, and past it the message is named with the
 * wide limit. */
static void test_wide_field(void **state)
{
    (void)state;
    static char text[4096];
    collected c;
    csvrec r;
    size_t len = 0;
    memset(&c, 0, sizeof c);
    text[len++] = 'a', text[len++] = ',';
    memset(text + len, 'w', 1000), len += 1000;
    text[len++] = '\n';
    assert_int_equal(csvrec_init(&r, collect, &c), OMS_OK);
    csvrec_set_limits(&r, 256, 0);
    csvrec_set_wide_field(&r, 1, 1000);
    assert_int_equal(feed_all(&r, text, len, 100), OMS_OK);
    assert_int_equal(csvrec_finish(&r), OMS_OK);
    assert_int_equal(c.count, 1);
    assert_int_equal(strlen(c.fields[0][1]), 1000);
    csvrec_fini(&r);
    collected_free(&c);

    /* 1,001 bytes in the wide column, or 257 in another, stop parsing. */
    memcpy(text + len - 1, "w\n", 3), len++;
    assert_int_equal(csvrec_init(&r, collect, &c), OMS_OK);
    csvrec_set_limits(&r, 256, 0);
    csvrec_set_wide_field(&r, 1, 1000);
    assert_int_equal(feed_all(&r, text, len, 100), OMS_EINVAL);
    assert_string_equal(csvrec_error_of(&r)->text, "row 1, field 2 is longer than 1000 bytes");
    csvrec_fini(&r);
    collected_free(&c);
    memset(text, 'w', 300);
    memcpy(text + 300, ",b\n", 4);
    assert_int_equal(csvrec_init(&r, collect, &c), OMS_OK);
    csvrec_set_limits(&r, 256, 0);
    csvrec_set_wide_field(&r, 1, 1000);
    assert_int_equal(feed_all(&r, text, strlen(text), 100), OMS_EINVAL);
    assert_string_equal(csvrec_error_of(&r)->text, "row 1, field 1 is longer than 256 bytes");
    csvrec_fini(&r);
    collected_free(&c);
}

/* Past fields_max a record is refused (its fields are not kept); the next
 * record is read as usual. */
static void test_fields_limit(void **state)
{
    (void)state;
    static const char text[] = "1,2,3,4\n1,2,3,4,5\n,,,,,,,,\n6,7\n";
    faults f;
    csvrec r;
    memset(&f, 0, sizeof f);
    assert_int_equal(csvrec_init(&r, collect_into_faults, &f), OMS_OK);
    csvrec_set_limits(&r, 0, 4);
    csvrec_set_fault_fn(&r, collect_fault);
    assert_int_equal(feed_all(&r, text, sizeof text - 1, 0), OMS_OK);
    assert_int_equal(f.rec.count, 2);
    REC(&f.rec, 0, "1", "2", "3", "4");
    REC(&f.rec, 1, "6", "7");
    assert_int_equal(f.count, 2);
    assert_int_equal(f.e[0].fault, CSVREC_FAULT_TOO_MANY_FIELDS);
    assert_int_equal(f.e[0].field, 0);
    assert_string_equal(f.e[0].text, "row 2 has more than 4 fields");
    assert_string_equal(f.e[1].text, "row 3 has more than 4 fields");
    assert_int_equal(f.kept[0], 4); /* never more than fields_max kept */
    assert_string_equal(f.first[0], "1");
    assert_int_equal(f.kept[1], 4);
    csvrec_fini(&r);
    collected_free(&f.rec);
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
        cmocka_unit_test(test_nul_stops_by_default),
        cmocka_unit_test(test_nul_record_fault_goes_on),
        cmocka_unit_test(test_unclosed_quote),
        cmocka_unit_test(test_misplaced_quote),
        cmocka_unit_test(test_field_limit_while_parsing),
        cmocka_unit_test(test_fields_limit),
        cmocka_unit_test(test_wide_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
