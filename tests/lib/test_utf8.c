/*
 * test_utf8.c - lib/utf8: strict UTF-8 exactly as PostgreSQL takes it, with
 * the offset of the first bad byte, and the controls the boundary refuses.
 */
#include "testenv.h"

#include "utf8.h"

#include <string.h>

/* The offset utf8_problem reports for s, or -1 when s is valid. */
static long bad_at(const char *s, size_t len)
{
    size_t off = 12345;
    return utf8_problem(s, len, &off) ? (long)off : -1;
}

static void test_decode(void **st)
{
    (void)st;
    uint32_t cp = 0;
    assert_int_equal(utf8_decode((const unsigned char *)"A", 1, &cp), 1);
    assert_int_equal(cp, 0x41);
    assert_int_equal(utf8_decode((const unsigned char *)"\xc3\xab", 2, &cp), 2);
    assert_int_equal(cp, 0xeb);
    assert_int_equal(utf8_decode((const unsigned char *)"\xe2\x82\xac", 3, &cp), 3);
    assert_int_equal(cp, 0x20ac);
    assert_int_equal(utf8_decode((const unsigned char *)"\xf4\x8f\xbf\xbf", 4, &cp), 4);
    assert_int_equal(cp, 0x10ffff);
    cp = 7;
    assert_int_equal(utf8_decode((const unsigned char *)"\xf4\x90\x80\x80", 4, &cp), 0);
    assert_int_equal(cp, 7); /* untouched on failure */
    assert_int_equal(utf8_decode((const unsigned char *)"\xe2\x82\xac", 2, &cp), 0);
    assert_int_equal(utf8_decode((const unsigned char *)"", 0, &cp), 0);
}

static void test_problem_offsets(void **st)
{
    (void)st;
    assert_int_equal(bad_at("", 0), -1);
    assert_int_equal(bad_at("order.created", 13), -1);
    assert_int_equal(bad_at("Zo\xc3\xab \xe2\x82\xac \xf0\x9f\x98\x80", 13), -1);
    assert_int_equal(bad_at("ab\xff", 3), 2);
    assert_int_equal(bad_at("x\xc3", 2), 1);                /* cut in half */
    assert_int_equal(bad_at("\xc0\xaf", 2), 0);             /* overlong "/" */
    assert_int_equal(bad_at("ok\xe0\x80\xaf", 5), 2);       /* overlong, 3 bytes */
    assert_int_equal(bad_at("\xed\xa0\x80", 3), 0);         /* surrogate U+D800 */
    assert_int_equal(bad_at("\xed\x9f\xbf", 3), -1);        /* U+D7FF, just below */
    assert_int_equal(bad_at("abc\xf4\x90\x80\x80", 7), 3);  /* past U+10FFFF */
    assert_int_equal(bad_at("\x80", 1), 0);                 /* stray continuation */
    assert_int_equal(bad_at("\xf8\x88\x80\x80\x80", 5), 0); /* 5-byte form */
    /* Embedded NUL is a character here: the length, not the NUL, ends it. */
    assert_int_equal(bad_at("a\0\xff", 3), 2);
    assert_true(utf8_problem("\xff", 1, NULL));
}

static void test_valid(void **st)
{
    (void)st;
    assert_true(utf8_valid(""));
    assert_true(utf8_valid("Zo\xc3\xab"));
    assert_true(utf8_valid("\xf0\x9f\x98\x80"));
    assert_false(utf8_valid("Zo\xc3"));
    assert_false(utf8_valid("\xc3\x28"));
    assert_false(utf8_valid("\xed\xbf\xbf"));
}

static void test_controls(void **st)
{
    (void)st;
    assert_true(utf8_is_control(0x00));
    assert_true(utf8_is_control(0x1f));
    assert_false(utf8_is_control(0x20));
    assert_false(utf8_is_control(0x7e));
    assert_true(utf8_is_control(0x7f));
    assert_true(utf8_is_control(0x80));
    assert_true(utf8_is_control(0x9f));
    assert_false(utf8_is_control(0xa0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_problem_offsets),
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_controls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
