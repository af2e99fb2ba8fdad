/*
 * test_consumer_msg.c - the boundary checks and printable forms of
 * lib/consumer_msg: what PostgreSQL would refuse as text is refused here with
 * the exact reason, and the printable form of any bytes is valid text,
 * escaped and bounded.
 */
#include "testenv.h"

#include "consumer_msg.h"

#include <string.h>

static const char *problem(const char *bytes, size_t len, size_t max)
{
    static char why[128];
    why[0] = '\0';
    return consumer_text_problem(bytes, len, max, why, sizeof why) ? why : NULL;
}

static void test_text_problem(void **st)
{
    (void)st;
    assert_null(problem("order.created", 13, 256));
    assert_null(problem("Zo\xc3\xab \xe2\x82\xac \xf0\x9f\x98\x80", 13, 256));
    assert_string_equal(problem("abcd", 4, 3), "is 4 bytes, longer than the 3 allowed");
    assert_string_equal(problem("ab\xff", 3, 16), "is not valid UTF-8 (byte 0xff at offset 2)");
    /* A character cut in half, an overlong "/", a surrogate, past U+10FFFF. */
    assert_string_equal(problem("x\xc3", 2, 16), "is not valid UTF-8 (byte 0xc3 at offset 1)");
    assert_string_equal(problem("\xc0\xaf", 2, 16), "is not valid UTF-8 (byte 0xc0 at offset 0)");
    assert_string_equal(problem("\xed\xa0\x80", 3, 16),
                        "is not valid UTF-8 (byte 0xed at offset 0)");
    assert_string_equal(problem("\xf4\x90\x80\x80", 4, 16),
                        "is not valid UTF-8 (byte 0xf4 at offset 0)");
    assert_string_equal(problem("a\tb", 3, 16), "contains control character U+0009 at offset 1");
    assert_string_equal(problem("a\x7f", 2, 16), "contains control character U+007F at offset 1");
    assert_string_equal(problem("\xc2\x85", 2, 16),
                        "contains control character U+0085 at offset 0");
    assert_string_equal(problem("a\0b", 3, 16), "contains control character U+0000 at offset 1");
}

static void test_printable(void **st)
{
    (void)st;
    char out[32];
    assert_string_equal(consumer_printable("plain", 5, out, sizeof out), "plain");
    assert_string_equal(consumer_printable("Zo\xc3\xab", 4, out, sizeof out), "Zo\xc3\xab");
    assert_string_equal(consumer_printable("a\\b", 3, out, sizeof out), "a\\\\b");
    assert_string_equal(consumer_printable("imp-\xff\xfe", 6, out, sizeof out), "imp-\\xff\\xfe");
    assert_string_equal(consumer_printable("a\x01\0z", 4, out, sizeof out), "a\\x01\\x00z");
    assert_string_equal(consumer_printable("\xc2\x85", 2, out, sizeof out), "\\xc2\\x85");
    /* Bounded: cut between characters, never inside one, with "...". */
    char small[10];
    assert_string_equal(consumer_printable("abcdefghijkl", 12, small, sizeof small), "abcdef...");
    assert_string_equal(consumer_printable("abcdefghi", 9, small, sizeof small), "abcdefghi");
    assert_string_equal(consumer_printable("abcde\xc3\xab\xc3\xab\xc3\xab", 11, small,
                                           sizeof small),
                        "abcde...");
    assert_string_equal(consumer_printable("ab\xff\xff\xff", 5, small, sizeof small), "ab\\xff...");
    /* Whatever comes in, what comes out passes the boundary itself. */
    unsigned char all[256];
    char big[1200];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    consumer_printable(all, sizeof all, big, sizeof big);
    assert_null(problem(big, strlen(big), sizeof big));
}

static void test_nak_delay(void **st)
{
    (void)st;
    assert_int_equal(consumer_max_attempts(0), CONSUMER_MAX_ATTEMPTS);
    assert_int_equal(consumer_max_attempts(3), 3);
    assert_int_equal(consumer_nak_delay_ms(0, 1), 1000);
    assert_int_equal(consumer_nak_delay_ms(0, 2), 2000);
    assert_int_equal(consumer_nak_delay_ms(0, 5), 16000);
    assert_int_equal(consumer_nak_delay_ms(0, 6), 30000);
    assert_int_equal(consumer_nak_delay_ms(0, 60), 30000);
    assert_int_equal(consumer_nak_delay_ms(100, 3), 400);
}

static void test_subject_label(void **st)
{
    (void)st;
    char out[32];
    assert_string_equal(consumer_subject_label("a\"b\\c\xff", out, sizeof out), "a_b__c_xff");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_problem),
        cmocka_unit_test(test_printable),
        cmocka_unit_test(test_nak_delay),
        cmocka_unit_test(test_subject_label),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
