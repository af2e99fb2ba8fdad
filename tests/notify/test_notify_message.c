/*
 * test_notify_message.c - what a notification says and what a delivery's
 * answer does to it: subjects, the email's headers and body (no header
 * injection, encoded non-ASCII subjects), the JSON of webhooks, the retry
 * schedule and the classification of SMTP and HTTP answers.
 */
#include "testenv.h"

#include "notify.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static notify_msg paid(void)
{
    notify_msg n;
    memset(&n, 0, sizeof n);
    n.id = 7;
    n.channel = NOTIFY_EMAIL;
    n.event_id = "0b8a4a7e-1d2f-4c55-9b1e-6c1f2a3b4c5d";
    n.subject = "order.paid";
    n.order_id = "ORD-1001";
    n.customer_id = "C-1";
    n.customer_email = "ada@example.com";
    n.customer_name = "Ada";
    n.status = "paid";
    n.currency = "USD";
    n.reason = "";
    n.refund_id = "";
    n.total_cents = 129999;
    n.occurred_at_ms = 1795000000123LL;
    n.attempts = 1;
    return n;
}

static void test_subjects(void **state)
{
    (void)state;
    char s[256];
    notify_msg n = paid();
    notify_subject(&n, s, sizeof s);
    assert_string_equal(s, "Order ORD-1001 paid: 1,299.99 USD");
    n.subject = "order.failed";
    n.status = "failed";
    n.total_cents = 5;
    notify_subject(&n, s, sizeof s);
    assert_string_equal(s, "Order ORD-1001 failed: 0.05 USD");
    n.subject = "order.refunded";
    n.status = "partially_refunded";
    n.refund_cents = 2500;
    notify_subject(&n, s, sizeof s);
    assert_string_equal(s, "Order ORD-1001 partially refunded: 25.00 USD");
    n.status = "refunded";
    notify_subject(&n, s, sizeof s);
    assert_string_equal(s, "Order ORD-1001 refunded: 25.00 USD");
}

static void test_email_headers_and_body(void **state)
{
    (void)state;
    notify_msg n = paid();
    /* 2026-11-22 05:00:00 UTC, a Sunday */
    char *text = notify_email_text(&n, "orders@oms.test", 1795323600000LL);
    assert_non_null(text);
    const char *want[] = {"From: <orders@oms.test>\r\n",
                          "\r\nTo: <ada@example.com>\r\n",
                          "\r\nSubject: Order ORD-1001 paid: 1,299.99 USD\r\n",
                          "\r\nDate: Sun, 22 Nov 2026 05:00:00 +0000\r\n",
                          "\r\nMessage-ID: <0b8a4a7e-1d2f-4c55-9b1e-6c1f2a3b4c5d@oms.notify>\r\n",
                          "\r\nContent-Type: text/plain; charset=UTF-8\r\n",
                          "\r\n\r\nHello Ada,\r\n\r\nyour order ORD-1001 is paid.\r\n",
                          "Total:  1,299.99 USD\r\n"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        if (strstr(text, want[i]) == NULL)
            fprintf(stderr, "want \"%s\" in:\n%s\n", want[i], text);
        assert_non_null(strstr(text, want[i]));
    }
    assert_null(strstr(text, "Reason:"));
    /* Every line ends in CRLF: no bare LF. */
    for (const char *p = text; (p = strchr(p, '\n')) != NULL; p++)
        assert_int_equal(p[-1], '\r');
    free(text);
}

static void test_failure_and_refund_bodies(void **state)
{
    (void)state;
    notify_msg n = paid();
    n.subject = "order.failed";
    n.status = "failed";
    n.reason = "payment failed: card declined";
    n.customer_name = "";
    char *text = notify_email_text(&n, "orders@oms.test", 0);
    assert_non_null(strstr(text, "\r\n\r\nHello,\r\n"));
    assert_non_null(strstr(text, "could not be completed"));
    assert_non_null(strstr(text, "Reason: payment failed: card declined\r\n"));
    free(text);
    n = paid();
    n.subject = "order.refunded";
    n.status = "refunded";
    n.refund_cents = 129999;
    n.refunded_total_cents = 129999;
    n.reason = "returned";
    text = notify_email_text(&n, "orders@oms.test", 0);
    assert_non_null(strstr(text, "Subject: Order ORD-1001 refunded: 1,299.99 USD\r\n"));
    assert_non_null(strstr(text, "Refunded so far: 1,299.99 USD of 1,299.99 USD\r\n"));
    assert_non_null(strstr(text, "Reason:          returned\r\n"));
    free(text);
}

/* A CR/LF in any field cannot start a header of its own. */
static void test_no_header_injection(void **state)
{
    (void)state;
    notify_msg n = paid();
    n.order_id = "ORD-1\r\nBcc: victim@example.com";
    n.customer_name = "Eve\r\n\r\nfake body";
    n.event_id = "id\r\nX-Evil: 1";
    char *text = notify_email_text(&n, "orders@oms.test", 0);
    assert_null(strstr(text, "\r\nBcc:"));
    assert_null(strstr(text, "\nBcc:"));
    assert_null(strstr(text, "\r\nX-Evil"));
    assert_non_null(strstr(text, "Subject: Order ORD-1  Bcc: victim@example.com paid"));
    assert_non_null(strstr(text, "Hello Eve    fake body,"));
    free(text);
}

/* A subject with UTF-8 goes as RFC 2047 encoded words that decode back. */
static void test_non_ascii_subject_is_encoded(void **state)
{
    (void)state;
    notify_msg n = paid();
    n.order_id =
        "Bestellung-\xc3\xa4\xc3\xb6\xc3\xbc-\xe2\x82\xac-0123456789-0123456789-0123456789";
    char *text = notify_email_text(&n, "orders@oms.test", 0);
    char subject[256], decoded[512] = "";
    notify_subject(&n, subject, sizeof subject);
    const char *p = strstr(text, "\r\nSubject: ") + 11;
    /* Words of at most 75 characters, folded onto continuation lines. */
    size_t len = 0;
    while (strncmp(p, "=?UTF-8?B?", 10) == 0) {
        const char *end = strstr(p + 10, "?=");
        assert_non_null(end);
        assert_true(end + 2 - p <= 75);
        unsigned char raw[128];
        int n_raw = EVP_DecodeBlock(raw, (const unsigned char *)p + 10, (int)(end - p - 10));
        assert_true(n_raw > 0);
        /* EVP_DecodeBlock counts the padding's zero bytes too. */
        while (n_raw > 0 && raw[n_raw - 1] == '\0')
            n_raw--;
        memcpy(decoded + len, raw, (size_t)n_raw);
        len += (size_t)n_raw;
        decoded[len] = '\0';
        p = end + 2;
        if (strncmp(p, "\r\n ", 3) == 0)
            p += 3;
    }
    assert_string_equal(decoded, subject);
    assert_int_equal(strncmp(p, "\r\nDate: ", 8), 0);
    free(text);
}

static void test_json(void **state)
{
    (void)state;
    notify_msg n = paid();
    json_t *j = notify_json(&n);
    assert_string_equal(json_string_value(json_object_get(j, "event_id")), n.event_id);
    assert_string_equal(json_string_value(json_object_get(j, "type")), "order.paid");
    assert_string_equal(json_string_value(json_object_get(j, "order_id")), "ORD-1001");
    assert_string_equal(json_string_value(json_object_get(j, "customer_id")), "C-1");
    assert_int_equal(json_integer_value(json_object_get(j, "total_cents")), 129999);
    assert_string_equal(json_string_value(json_object_get(j, "total")), "1,299.99 USD");
    assert_string_equal(json_string_value(json_object_get(j, "occurred_at")),
                        "2026-11-18T11:06:40.123Z");
    assert_null(json_object_get(j, "refund"));
    json_decref(j);
    n.subject = "order.refunded";
    n.refund_id = "RF-9";
    n.refund_cents = 100;
    n.refunded_total_cents = 300;
    j = notify_json(&n);
    json_t *r = json_object_get(j, "refund");
    assert_string_equal(json_string_value(json_object_get(r, "refund_id")), "RF-9");
    assert_int_equal(json_integer_value(json_object_get(r, "amount_cents")), 100);
    assert_int_equal(json_integer_value(json_object_get(r, "refunded_total_cents")), 300);
    json_decref(j);
    n.order_id = "bad \xff utf-8";
    assert_null(notify_json(&n));
}

static void test_backoff_schedule(void **state)
{
    (void)state;
    static const int64_t want[] = {100, 200, 400, 800, 1000, 1000};
    for (int i = 1; i <= 6; i++)
        assert_int_equal(notify_backoff_ms(100, 1000, i), want[i - 1]);
    assert_int_equal(notify_backoff_ms(60000, 3600000, 0), 60000);
    assert_int_equal(notify_backoff_ms(60000, 3600000, 100000), 3600000);
}

static void test_decide(void **state)
{
    (void)state;
    notify_settings cfg;
    notify_outcome o;
    memset(&cfg, 0, sizeof cfg);
    cfg.max_attempts = 3;
    cfg.retry_base_ms = 100;
    cfg.retry_max_ms = 10000;
    notify_msg n = paid();
    n.result = NOTIFY_SENT;
    notify_decide(&n, &cfg, &o);
    assert_string_equal(o.state, "sent");
    n.result = NOTIFY_REFUSED;
    notify_decide(&n, &cfg, &o);
    assert_string_equal(o.state, "failed");
    n.result = NOTIFY_ERROR;
    n.attempts = 2;
    notify_decide(&n, &cfg, &o);
    assert_string_equal(o.state, "pending");
    assert_int_equal(o.retry_in_ms, 200);
    n.attempts = 3;
    notify_decide(&n, &cfg, &o);
    assert_string_equal(o.state, "dead");
}

static void test_classify(void **state)
{
    (void)state;
    assert_int_equal(notify_classify_smtp(true, 250), NOTIFY_SENT);
    assert_int_equal(notify_classify_smtp(false, 550), NOTIFY_REFUSED);
    assert_int_equal(notify_classify_smtp(false, 451), NOTIFY_ERROR);
    assert_int_equal(notify_classify_smtp(false, 0), NOTIFY_ERROR);
    assert_int_equal(notify_classify_webhook(true, 204), NOTIFY_SENT);
    assert_int_equal(notify_classify_webhook(true, 400), NOTIFY_REFUSED);
    assert_int_equal(notify_classify_webhook(true, 401), NOTIFY_REFUSED);
    assert_int_equal(notify_classify_webhook(true, 408), NOTIFY_ERROR);
    assert_int_equal(notify_classify_webhook(true, 429), NOTIFY_ERROR);
    assert_int_equal(notify_classify_webhook(true, 500), NOTIFY_ERROR);
    assert_int_equal(notify_classify_webhook(true, 302), NOTIFY_ERROR);
    assert_int_equal(notify_classify_webhook(false, 0), NOTIFY_ERROR);
}

static void test_email_valid(void **state)
{
    (void)state;
    assert_true(notify_email_valid("ada@example.com"));
    assert_true(notify_email_valid("a.b+tag@sub.example.co"));
    const char *bad[] = {"",
                         "ada",
                         "@example.com",
                         "ada@",
                         "a@b@c",
                         "ada @example.com",
                         "<ada@example.com>",
                         "ada@example.com\r\nRCPT TO:<x@y>",
                         "a,b@c"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(notify_email_valid(bad[i]));
    char longest[NOTIFY_EMAIL_MAX + 2];
    memset(longest, 'a', sizeof longest);
    longest[1] = '@';
    longest[NOTIFY_EMAIL_MAX] = '\0';
    assert_true(notify_email_valid(longest));
    longest[NOTIFY_EMAIL_MAX] = 'a';
    longest[NOTIFY_EMAIL_MAX + 1] = '\0';
    assert_false(notify_email_valid(longest));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_subjects),
        cmocka_unit_test(test_email_headers_and_body),
        cmocka_unit_test(test_failure_and_refund_bodies),
        cmocka_unit_test(test_no_header_injection),
        cmocka_unit_test(test_non_ascii_subject_is_encoded),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_backoff_schedule),
        cmocka_unit_test(test_decide),
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_email_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
