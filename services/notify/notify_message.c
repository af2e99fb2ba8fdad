/*
 * notify_message.c - what a notification says: the email subject and text,
 * the JSON of webhooks and log lines, and what a delivery's result does to
 * the row. Pure functions of the stored row, so a retry sends the same
 * content as the first attempt.
 *
 * Every value interpolated into the email loses its control characters
 * (CR/LF become spaces): an order id or a customer name cannot add a header
 * or break the message's framing. A subject with non-ASCII text is sent as
 * RFC 2047 encoded words.
 */
#include "notify.h"

#include "money.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define AMOUNT_LEN 64
#define WORD_BYTES 45 /* raw bytes per encoded word: 60 base64 chars, within 75 */

static bool is_refund(const notify_msg *n)
{
    return strcmp(n->subject, "order.refunded") == 0;
}

static bool is_failure(const notify_msg *n)
{
    return strcmp(n->subject, "order.failed") == 0;
}

void notify_subject(const notify_msg *n, char *out, size_t out_len)
{
    char amount[AMOUNT_LEN];
    const char *what = "paid";
    if (is_refund(n)) {
        money_format_currency(n->refund_cents, n->currency, amount, sizeof amount);
        what = strcmp(n->status, "partially_refunded") == 0 ? "partially refunded" : "refunded";
    } else {
        money_format_currency(n->total_cents, n->currency, amount, sizeof amount);
        what = is_failure(n) ? "failed" : "paid";
    }
    snprintf(out, out_len, "Order %s %s: %s", n->order_id, what, amount);
}

static void iso_time(int64_t ms, char *out, size_t out_len)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    char base[32];
    gmtime_r(&s, &tm);
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, out_len, "%s.%03dZ", base, (int)(ms % 1000));
}

json_t *notify_json(const notify_msg *n)
{
    char total[AMOUNT_LEN], occurred[40];
    money_format_currency(n->total_cents, n->currency, total, sizeof total);
    iso_time(n->occurred_at_ms, occurred, sizeof occurred);
    json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:s,s:s,s:s,s:s}", "event_id",
                          n->event_id, "type", n->subject, "order_id", n->order_id, "customer_id",
                          n->customer_id, "customer_email", n->customer_email, "customer_name",
                          n->customer_name, "status", n->status, "total_cents",
                          (json_int_t)n->total_cents, "currency", n->currency, "total", total,
                          "reason", n->reason, "occurred_at", occurred);
    if (j != NULL && is_refund(n)) {
        char amount[AMOUNT_LEN];
        money_format_currency(n->refund_cents, n->currency, amount, sizeof amount);
        json_t *refund = json_pack("{s:s,s:I,s:s,s:I}", "refund_id", n->refund_id, "amount_cents",
                                   (json_int_t)n->refund_cents, "amount", amount,
                                   "refunded_total_cents", (json_int_t)n->refunded_total_cents);
        if (refund == NULL || json_object_set_new(j, "refund", refund) != 0) {
            json_decref(j);
            return NULL;
        }
    }
    return j;
}

/* Writes text with every control character turned into a space. */
static void put_clean(FILE *f, const char *text)
{
    for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++)
        fputc(*p < ' ' || *p == 0x7f ? ' ' : *p, f);
}

/* The subject header's value: as is when ASCII, else encoded words of at
 * most WORD_BYTES bytes each, never splitting a UTF-8 sequence. */
static void put_subject(FILE *f, const char *subject)
{
    size_t len = strlen(subject);
    bool ascii = true;
    for (size_t i = 0; i < len; i++)
        ascii = ascii && (unsigned char)subject[i] < 0x80;
    if (ascii) {
        put_clean(f, subject);
        return;
    }
    for (size_t at = 0; at < len;) {
        size_t take = len - at < WORD_BYTES ? len - at : WORD_BYTES;
        while (at + take < len && take > 1 && ((unsigned char)subject[at + take] & 0xc0) == 0x80)
            take--;
        unsigned char word[4 * WORD_BYTES / 3 + 8];
        EVP_EncodeBlock(word, (const unsigned char *)subject + at, (int)take);
        fprintf(f, "%s=?UTF-8?B?%s?=", at > 0 ? "\r\n " : "", (const char *)word);
        at += take;
    }
}

static void put_body(FILE *f, const notify_msg *n)
{
    char total[AMOUNT_LEN], amount[AMOUNT_LEN], refunded[AMOUNT_LEN];
    money_format_currency(n->total_cents, n->currency, total, sizeof total);
    fputs(*n->customer_name ? "Hello " : "Hello,", f);
    put_clean(f, n->customer_name);
    fputs(*n->customer_name ? ",\r\n\r\n" : "\r\n\r\n", f);
    if (is_refund(n)) {
        money_format_currency(n->refund_cents, n->currency, amount, sizeof amount);
        money_format_currency(n->refunded_total_cents, n->currency, refunded, sizeof refunded);
        fprintf(f, "we refunded %s on your order ", amount);
        put_clean(f, n->order_id);
        fprintf(f, ".\r\n\r\nOrder:           ");
        put_clean(f, n->order_id);
        fprintf(f, "\r\nRefund:          %s\r\nRefunded so far: %s of %s\r\n", amount, refunded,
                total);
    } else {
        fputs("your order ", f);
        put_clean(f, n->order_id);
        fputs(is_failure(n) ? " could not be completed.\r\n\r\n" : " is paid.\r\n\r\n", f);
        fputs("Order:  ", f);
        put_clean(f, n->order_id);
        fprintf(f, "\r\nTotal:  %s\r\n", total);
    }
    if (*n->reason) {
        fputs(is_refund(n) ? "Reason:          " : "Reason: ", f);
        put_clean(f, n->reason);
        fputs("\r\n", f);
    }
    fputs("\r\n-- \r\nOMS order notifications\r\n", f);
}

char *notify_email_text(const notify_msg *n, const char *from, int64_t now_ms)
{
    char *text = NULL, subject[NOTIFY_ID_MAX + 128], date[64];
    size_t len = 0;
    time_t s = (time_t)(now_ms / 1000);
    struct tm tm;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL)
        return NULL;
    gmtime_r(&s, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    notify_subject(n, subject, sizeof subject);
    fprintf(f, "From: <%s>\r\nTo: <", from);
    put_clean(f, n->customer_email);
    fputs(">\r\nSubject: ", f);
    put_subject(f, subject);
    fprintf(f, "\r\nDate: %s\r\nMessage-ID: <", date);
    put_clean(f, n->event_id);
    fputs("@oms.notify>\r\nX-Oms-Event-Id: ", f);
    put_clean(f, n->event_id);
    fputs("\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n"
          "Content-Transfer-Encoding: 8bit\r\n\r\n",
          f);
    put_body(f, n);
    bool failed = ferror(f) != 0;
    if (fclose(f) != 0 || failed) {
        free(text);
        return NULL;
    }
    return text;
}

void notify_decide(const notify_msg *n, const notify_settings *cfg, notify_outcome *out)
{
    out->retry_in_ms = 0;
    switch (n->result) {
    case NOTIFY_SENT: out->state = "sent"; break;
    case NOTIFY_REFUSED: out->state = "failed"; break;
    case NOTIFY_ERROR:
    default:
        if (n->attempts >= cfg->max_attempts) {
            out->state = "dead";
        } else {
            out->state = "pending";
            out->retry_in_ms = notify_backoff_ms(cfg->retry_base_ms, cfg->retry_max_ms,
                                                 n->attempts);
        }
        break;
    }
}

void notify_msg_view(PGresult *res, int row, notify_msg *m)
{
    memset(m, 0, sizeof *m);
    m->id = atoll(PQgetvalue(res, row, 0));
    if (!notify_channel_parse(PQgetvalue(res, row, 1), strlen(PQgetvalue(res, row, 1)),
                              &m->channel))
        m->channel = NOTIFY_LOG; /* the table's CHECK allows no other */
    const char **text[] = {&m->event_id,       &m->subject,       &m->order_id, &m->customer_id,
                           &m->customer_email, &m->customer_name, &m->status,   &m->currency,
                           &m->reason,         &m->refund_id};
    for (int c = 0; c < 10; c++)
        *text[c] = PQgetvalue(res, row, 2 + c);
    m->total_cents = atoll(PQgetvalue(res, row, 12));
    m->refund_cents = atoll(PQgetvalue(res, row, 13));
    m->refunded_total_cents = atoll(PQgetvalue(res, row, 14));
    m->occurred_at_ms = atoll(PQgetvalue(res, row, 15));
    m->attempts = atoi(PQgetvalue(res, row, 16));
}
