/*
 * test_oms.c - UUIDv4 text form (layout, version and variant bits) and
 * uniqueness, constant-time secret comparison, status names and clocks.
 */
#include "testenv.h"

#include "oms.h"

#include <stdlib.h>
#include <string.h>

#define UUID_COUNT 10000

static bool is_lower_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* Asserts the RFC 9562 text form of a version 4, variant 10xx UUID. */
static void assert_uuid4_form(const char *u)
{
    assert_int_equal(strlen(u), 36);
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (u[i] != '-')
                fail_msg("uuid %s: want '-' at %d", u, i);
        } else if (!is_lower_hex(u[i])) {
            fail_msg("uuid %s: '%c' at %d is not lowercase hex", u, u[i], i);
        }
    }
    assert_int_equal(u[14], '4');
    if (strchr("89ab", u[19]) == NULL)
        fail_msg("uuid %s: variant nibble '%c' not in [89ab]", u, u[19]);
}

static void test_uuid4_format(void **state)
{
    (void)state;
    char u[40];
    memset(u, 'X', sizeof u);
    oms_uuid4(u);
    assert_uuid4_form(u);
    /* Writes exactly 37 bytes: nothing past the NUL. */
    assert_int_equal(u[36], '\0');
    assert_int_equal(u[37], 'X');
}

static int cmp_uuid(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* 10k ids: all well formed, all distinct, and the random nibbles vary (each
 * of the 16 values shows up in every random position). */
static void test_uuid4_unique_and_random(void **state)
{
    (void)state;
    char(*ids)[37] = calloc(UUID_COUNT, sizeof *ids);
    assert_non_null(ids);
    unsigned seen[36] = {0};
    unsigned variant_seen = 0;
    for (int i = 0; i < UUID_COUNT; i++) {
        oms_uuid4(ids[i]);
        assert_uuid4_form(ids[i]);
        for (int k = 0; k < 36; k++) {
            char c = ids[i][k];
            if (is_lower_hex(c))
                seen[k] |= 1u << (c <= '9' ? c - '0' : c - 'a' + 10);
        }
        variant_seen |= 1u << (ids[i][19] <= '9' ? ids[i][19] - '0' : ids[i][19] - 'a' + 10);
    }
    qsort(ids, UUID_COUNT, sizeof *ids, cmp_uuid);
    for (int i = 1; i < UUID_COUNT; i++)
        if (strcmp(ids[i - 1], ids[i]) == 0)
            fail_msg("duplicate uuid %s", ids[i]);
    for (int k = 0; k < 36; k++) {
        if (k == 8 || k == 13 || k == 18 || k == 23 || k == 14 || k == 19)
            continue;
        if (seen[k] != 0xffffu)
            fail_msg("position %d only took values mask 0x%x in %d ids", k, seen[k], UUID_COUNT);
    }
    assert_int_equal(seen[14], 1u << 4);
    /* 8, 9, a, b and nothing else. */
    assert_int_equal(variant_seen, (1u << 8) | (1u << 9) | (1u << 10) | (1u << 11));
    free(ids);
}

static void test_secret_equal(void **state)
{
    (void)state;
    assert_true(oms_secret_equal("s3cret-token", "s3cret-token"));
    assert_true(oms_secret_equal("", ""));
    assert_false(oms_secret_equal("s3cret-token", "s3cret-tokem"));
    assert_false(oms_secret_equal("s3cret-token", "S3cret-token"));
    /* Different lengths, either way round, including a prefix. */
    assert_false(oms_secret_equal("abc", "abcd"));
    assert_false(oms_secret_equal("abcd", "abc"));
    assert_false(oms_secret_equal("", "a"));
    assert_false(oms_secret_equal("a", ""));
    /* NULL is never equal, not even to NULL. */
    assert_false(oms_secret_equal(NULL, "abc"));
    assert_false(oms_secret_equal("abc", NULL));
    assert_false(oms_secret_equal(NULL, NULL));
    assert_false(oms_secret_equal(NULL, ""));
}

/* A one-bit difference at any position is caught: the comparison covers
 * every byte, not a prefix. */
static void test_secret_equal_every_position(void **state)
{
    (void)state;
    const char *secret = "0123456789abcdef0123456789abcdef";
    char other[33];
    for (size_t i = 0; i < 32; i++) {
        memcpy(other, secret, sizeof other);
        other[i] ^= 0x01;
        if (oms_secret_equal(secret, other))
            fail_msg("differs at %zu but compared equal", i);
    }
}

static void test_strstatus(void **state)
{
    (void)state;
    assert_string_equal(oms_strstatus(OMS_OK), "ok");
    assert_string_equal(oms_strstatus(OMS_ENOMEM), "out of memory");
    assert_string_equal(oms_strstatus(OMS_EINVAL), "invalid input");
    assert_string_equal(oms_strstatus(OMS_EDB), "database error");
    assert_string_equal(oms_strstatus(OMS_ETRANSIENT), "transient failure");
    assert_string_equal(oms_strstatus(OMS_ENATS), "NATS error");
    assert_string_equal(oms_strstatus(OMS_EIO), "I/O error");
    assert_string_equal(oms_strstatus(OMS_ENOTFOUND), "not found");
    assert_string_equal(oms_strstatus(OMS_ETIMEOUT), "timeout");
    assert_string_equal(oms_strstatus((oms_status)99), "unknown status");
}

static void test_clocks_and_sleep(void **state)
{
    (void)state;
    int64_t wall = oms_now_ms();
    /* After 2020-01-01 and before 2100-01-01. */
    assert_in_range(wall, 1577836800000LL, 4102444800000LL);
    int64_t start = oms_mono_ms();
    oms_sleep_ms(120, NULL);
    int64_t slept = oms_mono_ms() - start;
    assert_in_range(slept, 120, 2000);
    /* A stop flag already set returns at once. */
    atomic_int stop = 1;
    start = oms_mono_ms();
    oms_sleep_ms(5000, &stop);
    assert_in_range(oms_mono_ms() - start, 0, 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uuid4_format), cmocka_unit_test(test_uuid4_unique_and_random),
        cmocka_unit_test(test_secret_equal), cmocka_unit_test(test_secret_equal_every_position),
        cmocka_unit_test(test_strstatus),    cmocka_unit_test(test_clocks_and_sleep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
