/*
 * test_redis.c - OMS_REDIS_URL parsing and errors that need no server:
 * malformed URLs are refused naming the URL, a closed port is a transient
 * failure, and argument vectors keep binary values with their lengths.
 */
#include "testenv.h"

#include "redis.h"

#include <string.h>

static void test_malformed_urls(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "http://127.0.0.1:6379", "redis://",           "redis://:6379",
        "redis://host:0",        "redis://host:65536", "redis://host:12x",
        "redis://host/db",       "redis://host/-1",    "redis://nopassword@host",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        redis_conn *c = (redis_conn *)0x1;
        char err[REDIS_ERR_LEN] = "";
        assert_int_equal(redis_connect(&c, bad[i], 100, err), OMS_EINVAL);
        assert_ptr_equal(c, (redis_conn *)0x1); /* untouched on error */
        if (strstr(err, bad[i]) == NULL || strstr(err, "redis://[[user]:password@]host") == NULL)
            fail_msg("error for \"%s\" is \"%s\"", bad[i], err);
    }
}

static void test_closed_port_is_transient(void **state)
{
    (void)state;
    redis_conn *c = NULL;
    char err[REDIS_ERR_LEN] = "";
    /* Port 1 on loopback: nothing listens, the connection is refused at once. */
    assert_int_equal(redis_connect(&c, "redis://:secret@127.0.0.1:1/3", 500, err), OMS_ETRANSIENT);
    assert_null(c);
    assert_non_null(strstr(err, "cannot connect to Redis at 127.0.0.1:1"));
    assert_false(redis_ok(NULL));
    redis_conn_destroy(NULL); /* a no-op */
}

static void test_args_keep_bytes(void **state)
{
    (void)state;
    redis_args a;
    redis_args_init(&a);
    for (int i = 0; i < 40; i++) /* past the first growth */
        assert_int_equal(redis_args_add_int(&a, -i), OMS_OK);
    assert_int_equal(redis_args_add(&a, "a\0b", 3), OMS_OK);
    assert_int_equal(redis_args_add_str(&a, ""), OMS_OK);
    assert_int_equal(a.n, 42);
    assert_string_equal(a.argv[39], "-39");
    assert_int_equal(a.lens[40], 3);
    assert_memory_equal(a.argv[40], "a\0b", 3);
    assert_int_equal(a.lens[41], 0);
    redis_args_reset(&a);
    assert_int_equal(a.n, 0);
    assert_int_equal(redis_args_add_str(&a, "x"), OMS_OK);
    assert_string_equal(a.argv[0], "x");
    redis_args_fini(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malformed_urls),
        cmocka_unit_test(test_closed_port_is_transient),
        cmocka_unit_test(test_args_keep_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
