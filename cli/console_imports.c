/*
 * console_imports.c - imports in progress, as the console sees them go by.
 *
 * No service keeps an API of imports, and the streams cannot answer "how far
 * is import X" without reading everything (ingest.rows is a work queue: a
 * chunk is gone once applied). So the console follows the traffic on core
 * NATS subscriptions from its start: rows on ingest.rows (counted per
 * Oms-Import-Id, the total from the Oms-Import-End marker), order.created,
 * order.paid and order.failed by their import_id, and import.completed,
 * whose counts replace the console's own when it arrives. An import that
 * began before the console started shows only what followed.
 *
 * nats.c runs each subscription's handler on its own thread; decoding is
 * done outside the lock, only the counters are updated under it.
 */
#include "console.h"

#include "csvrec.h"
#include "oms_events.pb-c.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_IMPORTS 32
#define DRAIN_WAIT_MS 2000
#define HDR_IMPORT_ID "Oms-Import-Id"
#define HDR_IMPORT_END "Oms-Import-End"

typedef struct import_progress {
    char import_id[129];
    int64_t first_seen_ms, last_seen_ms;
    long long rows_received, rows_total; /* total -1 until the end marker */
    long long orders_created, paid, failed;
    bool completed;
    long long completed_rows, completed_orders, rejected_rows, missing_rows;
} import_progress;

enum { SUB_ROWS, SUB_CREATED, SUB_PAID, SUB_FAILED, SUB_COMPLETED, N_SUBS };

static const char *const SUBJECTS[N_SUBS] = {
    "ingest.rows", "order.created", "order.paid", "order.failed", "import.completed",
};

typedef struct sub_ctx {
    struct console_imports *ci;
    int kind; /* SUB_ */
} sub_ctx;

struct console_imports {
    pthread_mutex_t mu;
    import_progress imports[MAX_IMPORTS]; /* guarded by mu */
    size_t n;
    natsSubscription *subs[N_SUBS];
    sub_ctx ctxs[N_SUBS]; /* each subscription's closure */
};

/* The entry of import_id, created (replacing the oldest) when new. Under mu. */
static import_progress *entry(console_imports *ci, const char *import_id)
{
    size_t oldest = 0;
    for (size_t i = 0; i < ci->n; i++) {
        if (strcmp(ci->imports[i].import_id, import_id) == 0)
            return &ci->imports[i];
        if (ci->imports[i].last_seen_ms < ci->imports[oldest].last_seen_ms)
            oldest = i;
    }
    size_t i = ci->n < MAX_IMPORTS ? ci->n++ : oldest;
    import_progress *p = &ci->imports[i];
    memset(p, 0, sizeof *p);
    snprintf(p->import_id, sizeof p->import_id, "%s", import_id);
    p->rows_total = -1;
    p->first_seen_ms = oms_now_ms();
    return p;
}

typedef struct row_count {
    size_t records;
    bool header;
} row_count;

static void count_record(void *ctx, char *const *fields, size_t n)
{
    row_count *rc = ctx;
    /* The first record is a header when it names the order id column. */
    if (rc->records == 0 && n > 0 &&
        (strcasecmp(fields[0], "order_id") == 0 || strcasecmp(fields[0], "external_order_id") == 0))
        rc->header = true;
    rc->records++;
}

/* Data rows in a CSV chunk (its header, if any, not counted). */
static long long chunk_rows(const void *data, size_t len)
{
    csvrec r;
    row_count rc = {0};
    if (len == 0 || csvrec_init(&r, count_record, &rc) != OMS_OK)
        return 0;
    if (csvrec_feed(&r, data, len) == OMS_OK)
        csvrec_finish(&r);
    csvrec_fini(&r);
    return (long long)rc.records - (rc.header ? 1 : 0);
}

static void on_rows(console_imports *ci, natsMsg *msg)
{
    const char *import_id = NULL, *end = NULL;
    if (natsMsgHeader_Get(msg, HDR_IMPORT_ID, &import_id) != NATS_OK || *import_id == '\0')
        return; /* rows without an import are not an import */
    bool is_end = natsMsgHeader_Get(msg, HDR_IMPORT_END, &end) == NATS_OK;
    long long rows = is_end ? 0
                            : chunk_rows(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg));
    pthread_mutex_lock(&ci->mu);
    import_progress *p = entry(ci, import_id);
    p->rows_received += rows;
    if (is_end)
        p->rows_total = atoll(end);
    p->last_seen_ms = oms_now_ms();
    pthread_mutex_unlock(&ci->mu);
}

/* The import_id of an order event, copied into out ("" when none). */
static void order_import(int kind, natsMsg *msg, char *out, size_t out_len)
{
    const uint8_t *data = (const uint8_t *)natsMsg_GetData(msg);
    size_t len = (size_t)natsMsg_GetDataLength(msg);
    out[0] = '\0';
    if (kind == SUB_CREATED) {
        Oms__V1__OrderCreated *e = oms__v1__order_created__unpack(NULL, len, data);
        if (e != NULL && e->import_id)
            snprintf(out, out_len, "%s", e->import_id);
        oms__v1__order_created__free_unpacked(e, NULL);
    } else if (kind == SUB_PAID) {
        Oms__V1__OrderPaid *e = oms__v1__order_paid__unpack(NULL, len, data);
        if (e != NULL && e->import_id)
            snprintf(out, out_len, "%s", e->import_id);
        oms__v1__order_paid__free_unpacked(e, NULL);
    } else {
        Oms__V1__OrderFailed *e = oms__v1__order_failed__unpack(NULL, len, data);
        if (e != NULL && e->import_id)
            snprintf(out, out_len, "%s", e->import_id);
        oms__v1__order_failed__free_unpacked(e, NULL);
    }
}

static void on_order(console_imports *ci, int kind, natsMsg *msg)
{
    char import_id[129];
    order_import(kind, msg, import_id, sizeof import_id);
    if (import_id[0] == '\0')
        return;
    pthread_mutex_lock(&ci->mu);
    import_progress *p = entry(ci, import_id);
    if (kind == SUB_CREATED)
        p->orders_created++;
    else if (kind == SUB_PAID)
        p->paid++;
    else
        p->failed++;
    p->last_seen_ms = oms_now_ms();
    pthread_mutex_unlock(&ci->mu);
}

static void on_completed(console_imports *ci, natsMsg *msg)
{
    Oms__V1__ImportCompleted *e = oms__v1__import_completed__unpack(
        NULL, (size_t)natsMsg_GetDataLength(msg), (const uint8_t *)natsMsg_GetData(msg));
    if (e == NULL || e->import_id == NULL || *e->import_id == '\0')
        goto out;
    pthread_mutex_lock(&ci->mu);
    import_progress *p = entry(ci, e->import_id);
    p->completed = true;
    p->completed_rows = e->rows;
    p->completed_orders = e->orders;
    p->rejected_rows = e->rejected_rows;
    p->missing_rows = e->missing_rows;
    p->last_seen_ms = oms_now_ms();
    pthread_mutex_unlock(&ci->mu);
out:
    oms__v1__import_completed__free_unpacked(e, NULL);
}

static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *arg)
{
    const sub_ctx *sc = arg;
    console_imports *ci = sc->ci;
    int kind = sc->kind;
    (void)nc, (void)sub;
    if (kind == SUB_ROWS)
        on_rows(ci, msg);
    else if (kind == SUB_COMPLETED)
        on_completed(ci, msg);
    else
        on_order(ci, kind, msg);
    natsMsg_Destroy(msg);
}

oms_status console_imports_create(console_imports **out, js_conn *c)
{
    console_imports *ci = calloc(1, sizeof *ci);
    if (ci == NULL)
        return OMS_ENOMEM;
    pthread_mutex_init(&ci->mu, NULL);
    for (int i = 0; i < N_SUBS; i++) {
        ci->ctxs[i] = (sub_ctx){.ci = ci, .kind = i};
        if (natsConnection_Subscribe(&ci->subs[i], js_nats(c), SUBJECTS[i], on_msg, &ci->ctxs[i]) !=
            NATS_OK) {
            console_imports_destroy(ci);
            return OMS_ENATS;
        }
        natsSubscription_SetPendingLimits(ci->subs[i], 1 << 20, 256 << 20);
    }
    *out = ci;
    return OMS_OK;
}

static long long at_most(long long v, long long limit)
{
    return limit >= 0 && v > limit ? limit : v;
}

/* Core subscribers also see a publish that JetStream dropped as a
 * duplicate (a chunk or an event re-sent after a lost PubAck), so counts
 * can overshoot: they are capped at the totals once those are known. */
static json_t *progress_json(const import_progress *p)
{
    long long rows = p->completed ? p->completed_rows : p->rows_total;
    long long orders = p->completed ? p->completed_orders : -1;
    long long received = p->completed ? rows - p->missing_rows : at_most(p->rows_received, rows);
    long long paid = at_most(p->paid, orders);
    long long failed = at_most(p->failed, orders < 0 ? -1 : orders - paid);
    bool settled = p->completed && paid + failed >= orders;
    return json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:b,s:I,s:I,s:b}", "import_id", p->import_id,
                     "started_ms", (json_int_t)p->first_seen_ms, "rows_received",
                     (json_int_t)received, "rows_total", (json_int_t)rows, "orders_created",
                     (json_int_t)at_most(p->orders_created, orders), "paid", (json_int_t)paid,
                     "failed", (json_int_t)failed, "completed", p->completed, "orders",
                     (json_int_t)orders, "rejected_rows", (json_int_t)p->rejected_rows, "done",
                     settled);
}

json_t *console_imports_json(console_imports *ci)
{
    json_t *arr = json_array();
    if (ci == NULL || arr == NULL)
        return arr;
    pthread_mutex_lock(&ci->mu);
    for (size_t i = 0; i < ci->n; i++) {
        /* Newest first: insert each before the ones that started earlier. */
        size_t at = 0;
        while (at < json_array_size(arr) &&
               json_integer_value(json_object_get(json_array_get(arr, at), "started_ms")) >
                   ci->imports[i].first_seen_ms)
            at++;
        json_array_insert_new(arr, at, progress_json(&ci->imports[i]));
    }
    pthread_mutex_unlock(&ci->mu);
    return arr;
}

void console_imports_destroy(console_imports *ci)
{
    if (ci == NULL)
        return;
    for (int i = 0; i < N_SUBS; i++)
        if (ci->subs[i] != NULL && natsSubscription_Drain(ci->subs[i]) == NATS_OK)
            natsSubscription_WaitForDrainCompletion(ci->subs[i], DRAIN_WAIT_MS);
    for (int i = 0; i < N_SUBS; i++)
        natsSubscription_Destroy(ci->subs[i]);
    pthread_mutex_destroy(&ci->mu);
    free(ci);
}
