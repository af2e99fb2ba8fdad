/*
 * analytics.c - projection throughput: publishes N events onto ORDERS and
 * REFUNDS (order.paid 80 %, order.failed 15 %, refund.processed 5 %, for
 * 5,000 customers over 30 days, fixed seed), as fast as JetStream takes
 * them, and waits until the running analytics service has applied every
 * one (its oms_events_consumed_total); reports events/s and analytics'
 * batch duration.
 *
 *   bench-analytics --events N [--tag T] [--url http://127.0.0.1:18086]
 */
#include "js.h"
#include "oms.h"

#include "oms_events.pb-c.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DAY_MS 86400000LL

static unsigned long long rng_state = 42;

static unsigned rng(void)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (unsigned)(rng_state >> 33);
}

static void publish(js_conn *js, const char *subject, const char *id, const ProtobufCMessage *m)
{
    uint8_t buf[512];
    size_t len = protobuf_c_message_pack(m, buf);
    while (js_publish_async(js, subject, NULL, id, buf, len) != OMS_OK)
        js_publish_wait(js, 1000); /* too many in flight: let PubAcks come back */
}

static void publish_one(js_conn *js, const char *tag, long i, int64_t now)
{
    char id[96], order[64], customer[16];
    Oms__V1__EventMeta meta = OMS__V1__EVENT_META__INIT;
    unsigned kind = rng() % 100;
    int64_t at = now - (int64_t)(rng() % 30) * DAY_MS;
    snprintf(id, sizeof id, "bench-an-%s-%ld", tag, i);
    snprintf(order, sizeof order, "AB-%s-%ld", tag, i);
    snprintf(customer, sizeof customer, "C-%04u", rng() % 5000);
    meta.event_id = id;
    meta.occurred_at_ms = at;
    if (kind < 80) {
        Oms__V1__OrderPaid e = OMS__V1__ORDER_PAID__INIT;
        e.meta = &meta, e.order_id = order, e.customer_id = customer;
        e.customer_name = customer, e.total_cents = 100 + rng() % 50000;
        e.currency = (char *)"USD", e.paid_at_ms = at, e.status = (char *)"paid";
        publish(js, "order.paid", id, &e.base);
    } else if (kind < 95) {
        Oms__V1__OrderFailed e = OMS__V1__ORDER_FAILED__INIT;
        e.meta = &meta, e.order_id = order, e.customer_id = customer;
        e.currency = (char *)"USD", e.failed_at_ms = at, e.status = (char *)"failed";
        publish(js, "order.failed", id, &e.base);
    } else {
        Oms__V1__RefundProcessed e = OMS__V1__REFUND_PROCESSED__INIT;
        e.meta = &meta, e.refund_id = id, e.order_id = order, e.customer_id = customer;
        e.amount_cents = 100 + rng() % 1000, e.currency = (char *)"USD";
        e.processed_at_ms = at;
        publish(js, "refund.processed", id, &e.base);
    }
}

typedef struct text {
    char *data;
    size_t len;
} text;

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    text *t = arg;
    char *grown = realloc(t->data, t->len + size * n + 1);
    if (grown == NULL)
        return 0;
    memcpy(grown + t->len, p, size * n);
    t->data = grown;
    t->len += size * n;
    t->data[t->len] = '\0';
    return size * n;
}

/* Sum of the series of family whose labels contain every part. */
static double metric_sum(const char *url, const char *family, const char *part)
{
    char full[512];
    text t = {NULL, 0};
    snprintf(full, sizeof full, "%s/metrics", url);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, full);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
    if (curl_easy_perform(c) != CURLE_OK) {
        fprintf(stderr, "bench-analytics: cannot read %s\n", full);
        exit(1);
    }
    curl_easy_cleanup(c);
    double sum = 0;
    for (char *line = strtok(t.data, "\n"); line; line = strtok(NULL, "\n"))
        if (strncmp(line, family, strlen(family)) == 0 && (part == NULL || strstr(line, part)))
            sum += atof(strrchr(line, ' ') + 1);
    free(t.data);
    return sum;
}

static double consumed(const char *url)
{
    return metric_sum(url, "oms_events_consumed_total{", "result=\"applied\"") +
           metric_sum(url, "oms_events_consumed_total{", "result=\"duplicate\"");
}

int main(int argc, char **argv)
{
    long events = 100000;
    char tag[32];
    const char *url = getenv("OMS_ANALYTICS_URL") ? getenv("OMS_ANALYTICS_URL")
                                                  : "http://127.0.0.1:18086";
    snprintf(tag, sizeof tag, "%lld", (long long)oms_now_ms());
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--events") == 0)
            events = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--tag") == 0)
            snprintf(tag, sizeof tag, "%s", argv[i + 1]);
        else if (strcmp(argv[i], "--url") == 0)
            url = argv[i + 1];
    }
    const char *nats = getenv("OMS_NATS_URL") ? getenv("OMS_NATS_URL") : "nats://127.0.0.1:14222";
    js_conn *js = NULL;
    if (js_connect(&js, nats, getenv("OMS_NATS_USER"), getenv("OMS_NATS_PASSWORD"),
                   "bench-analytics") != OMS_OK) {
        fprintf(stderr, "bench-analytics: cannot connect to %s\n", nats);
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    double base = consumed(url);
    double batches0 = metric_sum(url, "oms_batch_duration_seconds_count", "analytics");
    double batch_s0 = metric_sum(url, "oms_batch_duration_seconds_sum", "analytics");
    int64_t t0 = oms_mono_ms(), now = oms_now_ms();
    for (long i = 0; i < events; i++)
        publish_one(js, tag, i, now);
    js_publish_wait(js, 60000);
    int64_t published_ms = oms_mono_ms() - t0;
    double done = 0;
    while ((done = consumed(url) - base) < (double)events && oms_mono_ms() - t0 < 600000)
        usleep(20000);
    int64_t total_ms = oms_mono_ms() - t0;
    double batches = metric_sum(url, "oms_batch_duration_seconds_count", "analytics") - batches0;
    double batch_s = metric_sum(url, "oms_batch_duration_seconds_sum", "analytics") - batch_s0;
    printf("events=%ld published_in_ms=%lld applied=%.0f total_ms=%lld events_per_s=%.0f"
           " batches=%.0f mean_batch_events=%.1f mean_batch_ms=%.2f\n",
           events, (long long)published_ms, done, (long long)total_ms,
           (double)events * 1000.0 / (double)(total_ms ? total_ms : 1), batches,
           batches > 0 ? done / batches : 0, batches > 0 ? batch_s * 1000.0 / batches : 0);
    js_conn_destroy(js);
    curl_global_cleanup();
    return done >= (double)events ? 0 : 1;
}
