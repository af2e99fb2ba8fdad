/*
 * oms_integration.c - how an outside system talks to OMS, with nothing but
 * nats.c and the C code protoc-c generates from proto/oms_events.proto (no
 * OMS library): docs/integrations.md walks through it, and
 * tests/integration/test_integrations.c runs it against the real services.
 *
 *   oms-integration follow [COUNT]        prints one line per order.* event,
 *                                         exits after COUNT (default: never)
 *   oms-integration import FILE IMPORT_ID [ROWS]
 *                                         publishes FILE (CSV with a header
 *                                         line) to ingest.rows as one import,
 *                                         ROWS rows a message (default 10000)
 *
 * It connects as OMS_NATS_USER (the `integrations` user) with
 * OMS_NATS_PASSWORD to OMS_NATS_URL, and takes its replies on the inbox
 * prefix that user may read, _INBOX.<user>.
 */
#include <nats/nats.h>

#include "oms_events.pb-c.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_MAX_BYTES (512 * 1024) /* well below NATS's 1 MB max payload */
#define FOLLOW_IDLE_MS 120000        /* follow gives up after this long without an event */
#define SEEN_IDS 1024                /* recent event ids remembered to drop a duplicate */

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v != NULL && *v != '\0' ? v : def;
}

/* Connects with the user's own inbox prefix (the server lets the
 * integrations user read _INBOX.integrations.> only). */
static natsStatus connect_nats(natsConnection **nc)
{
    natsOptions *opts = NULL;
    char prefix[128];
    const char *user = env_or("OMS_NATS_USER", "integrations");
    snprintf(prefix, sizeof prefix, "_INBOX.%s", user);
    natsStatus st = natsOptions_Create(&opts);
    if (st == NATS_OK)
        st = natsOptions_SetURL(opts, env_or("OMS_NATS_URL", "nats://127.0.0.1:4222"));
    if (st == NATS_OK)
        st = natsOptions_SetUserInfo(opts, user, env_or("OMS_NATS_PASSWORD", ""));
    if (st == NATS_OK)
        st = natsOptions_SetCustomInboxPrefix(opts, prefix);
    if (st == NATS_OK)
        st = natsConnection_Connect(nc, opts);
    natsOptions_Destroy(opts);
    return st;
}

/* ---- follow ---------------------------------------------------------- */

static void print_money(int64_t cents, const char *currency)
{
    uint64_t abs_cents = cents < 0 ? (uint64_t)0 - (uint64_t)cents : (uint64_t)cents;
    printf("%s%" PRIu64 ".%02" PRIu64 " %s", cents < 0 ? "-" : "", abs_cents / 100, abs_cents % 100,
           currency);
}

/* Decodes one event by its Oms-Type header and prints it on one line. */
static void print_event(natsMsg *m, const char *type)
{
    const uint8_t *data = (const uint8_t *)natsMsg_GetData(m);
    size_t len = (size_t)natsMsg_GetDataLength(m);
    if (strcmp(type, "oms.v1.OrderPaid") == 0) {
        Oms__V1__OrderPaid *e = oms__v1__order_paid__unpack(NULL, len, data);
        if (e != NULL) {
            printf("paid %s customer %s ", e->order_id, e->customer_id);
            print_money(e->total_cents, e->currency);
            oms__v1__order_paid__free_unpacked(e, NULL);
        }
    } else if (strcmp(type, "oms.v1.OrderFailed") == 0) {
        Oms__V1__OrderFailed *e = oms__v1__order_failed__unpack(NULL, len, data);
        if (e != NULL) {
            printf("failed %s customer %s: %s", e->order_id, e->customer_id, e->reason);
            oms__v1__order_failed__free_unpacked(e, NULL);
        }
    } else if (strcmp(type, "oms.v1.OrderCreated") == 0) {
        Oms__V1__OrderCreated *e = oms__v1__order_created__unpack(NULL, len, data);
        if (e != NULL) {
            printf("created %s customer %s %zu lines ", e->order_id, e->customer_id, e->n_lines);
            print_money(e->total_cents, e->currency);
            oms__v1__order_created__free_unpacked(e, NULL);
        }
    } else if (strcmp(type, "oms.v1.OrderRefunded") == 0) {
        Oms__V1__OrderRefunded *e = oms__v1__order_refunded__unpack(NULL, len, data);
        if (e != NULL) {
            printf("refunded %s %s ", e->order_id, e->status);
            print_money(e->amount_cents, e->currency);
            oms__v1__order_refunded__free_unpacked(e, NULL);
        }
    } else {
        printf("%s (%s, %zu bytes, not decoded)", natsMsg_GetSubject(m), type, len);
    }
    printf("\n");
    fflush(stdout);
}

/* True if id was seen among the last SEEN_IDS events (a redelivery after a
 * producer's retry carries the same Nats-Msg-Id); remembers it. */
static bool seen_before(const char *id)
{
    static char ids[SEEN_IDS][64];
    static int next;
    for (int i = 0; i < SEEN_IDS; i++)
        if (strcmp(ids[i], id) == 0)
            return true;
    snprintf(ids[next], sizeof ids[next], "%s", id);
    next = (next + 1) % SEEN_IDS;
    return false;
}

static int follow(natsConnection *nc, long count)
{
    natsSubscription *sub = NULL;
    natsStatus st = natsConnection_SubscribeSync(&sub, nc, "order.*");
    if (st == NATS_OK)
        st = natsConnection_Flush(nc);
    if (st == NATS_OK)
        st = natsConnection_GetLastError(nc, &(const char *){NULL});
    if (st != NATS_OK) {
        fprintf(stderr, "cannot subscribe to order.*: %s\n", natsStatus_GetText(st));
        natsSubscription_Destroy(sub);
        return 1;
    }
    fprintf(stderr, "following order.*\n");
    for (long printed = 0; count <= 0 || printed < count;) {
        natsMsg *m = NULL;
        st = natsSubscription_NextMsg(&m, sub, FOLLOW_IDLE_MS);
        if (st != NATS_OK) {
            fprintf(stderr, "no event: %s\n", natsStatus_GetText(st));
            break;
        }
        const char *type = "", *id = "";
        natsMsgHeader_Get(m, "Oms-Type", &type);
        natsMsgHeader_Get(m, "Nats-Msg-Id", &id);
        if (id == NULL || *id == '\0' || !seen_before(id)) {
            print_event(m, type ? type : "");
            printed++;
        }
        natsMsg_Destroy(m);
    }
    natsSubscription_Destroy(sub);
    return st == NATS_OK ? 0 : 1;
}

/* ---- import ---------------------------------------------------------- */

typedef struct importer {
    jsCtx *js;
    const char *import_id;
    char *header; /* the file's header line, repeated in every chunk */
    char *chunk;  /* header + rows */
    size_t len;
    int chunk_seq;
    long first_row; /* record number of the chunk's first row (header = 1) */
    long rows_in_chunk;
    long max_rows; /* rows a chunk at most */
} importer;

/* Publishes one message on ingest.rows with the import's headers and waits
 * for JetStream's acknowledgement. key/value is Oms-First-Row or Oms-Import-End. */
static natsStatus publish(importer *im, const char *msg_id, const char *data, size_t len,
                          const char *key, const char *value)
{
    natsMsg *m = NULL;
    jsPubAck *ack = NULL;
    jsErrCode code = 0;
    natsStatus st = natsMsg_Create(&m, "ingest.rows", NULL, data, (int)len);
    if (st == NATS_OK)
        st = natsMsgHeader_Set(m, "Nats-Msg-Id", msg_id);
    if (st == NATS_OK)
        st = natsMsgHeader_Set(m, "Oms-Import-Id", im->import_id);
    if (st == NATS_OK)
        st = natsMsgHeader_Set(m, key, value);
    if (st == NATS_OK)
        st = js_PublishMsg(&ack, im->js, m, NULL, &code);
    if (st != NATS_OK)
        fprintf(stderr, "publish %s failed: %s (JetStream error %d)\n", msg_id,
                natsStatus_GetText(st), (int)code);
    jsPubAck_Destroy(ack);
    natsMsg_Destroy(m);
    return st;
}

static natsStatus flush_chunk(importer *im)
{
    char id[256], first[24];
    if (im->rows_in_chunk == 0)
        return NATS_OK;
    snprintf(id, sizeof id, "%s:%d", im->import_id, im->chunk_seq++);
    snprintf(first, sizeof first, "%ld", im->first_row);
    natsStatus st = publish(im, id, im->chunk, im->len, "Oms-First-Row", first);
    im->first_row += im->rows_in_chunk;
    im->rows_in_chunk = 0;
    im->len = strlen(im->header);
    return st;
}

/* Appends one record (a line, or several when a quoted field holds newlines). */
static natsStatus add_record(importer *im, const char *rec, size_t len)
{
    if (im->len + len > CHUNK_MAX_BYTES || im->rows_in_chunk == im->max_rows) {
        natsStatus st = flush_chunk(im);
        if (st != NATS_OK)
            return st;
    }
    if (im->len + len > CHUNK_MAX_BYTES)
        return NATS_INVALID_ARG; /* one record larger than a chunk */
    memcpy(im->chunk + im->len, rec, len);
    im->len += len;
    im->rows_in_chunk++;
    return NATS_OK;
}

/* Reads f record by record: a newline inside double quotes does not end one. */
static natsStatus send_file(importer *im, FILE *f, long *rows)
{
    char *line = NULL, *rec = NULL;
    size_t line_cap = 0, rec_len = 0;
    long quotes = 0;
    ssize_t n;
    natsStatus st = NATS_OK;
    *rows = 0;
    while (st == NATS_OK && (n = getline(&line, &line_cap, f)) > 0) {
        char *grown = realloc(rec, rec_len + (size_t)n + 1);
        if (grown == NULL) {
            st = NATS_NO_MEMORY;
            break;
        }
        rec = grown;
        memcpy(rec + rec_len, line, (size_t)n);
        rec_len += (size_t)n;
        for (ssize_t i = 0; i < n; i++)
            quotes += line[i] == '"';
        if (quotes % 2 != 0)
            continue; /* the record goes on */
        rec[rec_len] = '\0';
        if (im->header == NULL) {
            im->header = strdup(rec);
            im->len = strlen(im->header);
            memcpy(im->chunk, im->header, im->len);
        } else {
            st = add_record(im, rec, rec_len);
            (*rows)++;
        }
        rec_len = 0;
        quotes = 0;
    }
    free(line);
    free(rec);
    if (st == NATS_OK)
        st = flush_chunk(im);
    return st;
}

static int import_file(natsConnection *nc, const char *path, const char *import_id, long max_rows)
{
    importer im = {.import_id = import_id, .first_row = 2, .max_rows = max_rows};
    long rows = 0;
    natsStatus st;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        perror(path);
        return 1;
    }
    im.chunk = malloc(CHUNK_MAX_BYTES);
    st = im.chunk ? natsConnection_JetStream(&im.js, nc, NULL) : NATS_NO_MEMORY;
    if (st == NATS_OK)
        st = send_file(&im, f, &rows);
    if (st == NATS_OK) {
        /* The end marker: an empty message saying how many data rows. */
        char id[256], total[24];
        snprintf(id, sizeof id, "%s:end", import_id);
        snprintf(total, sizeof total, "%ld", rows);
        st = publish(&im, id, "", 0, "Oms-Import-End", total);
    }
    if (st == NATS_OK)
        fprintf(stderr, "import %s: %ld rows in %d chunks sent\n", import_id, rows, im.chunk_seq);
    fclose(f);
    jsCtx_Destroy(im.js);
    free(im.header);
    free(im.chunk);
    return st == NATS_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
    natsConnection *nc = NULL;
    int rc = 2;
    bool do_follow = argc >= 2 && strcmp(argv[1], "follow") == 0;
    bool do_import = (argc == 4 || argc == 5) && strcmp(argv[1], "import") == 0;
    long max_rows = do_import && argc == 5 ? atol(argv[4]) : 10000;
    if ((!do_follow && !do_import) || max_rows < 1) {
        fprintf(stderr, "usage: %s follow [COUNT] | import FILE IMPORT_ID [ROWS]\n", argv[0]);
        return 2;
    }
    natsStatus st = connect_nats(&nc);
    if (st != NATS_OK) {
        fprintf(stderr, "cannot connect to %s as %s: %s\n",
                env_or("OMS_NATS_URL", "nats://127.0.0.1:4222"),
                env_or("OMS_NATS_USER", "integrations"), natsStatus_GetText(st));
        return 1;
    }
    if (do_follow)
        rc = follow(nc, argc >= 3 ? atol(argv[2]) : 0);
    else
        rc = import_file(nc, argv[2], argv[3], max_rows);
    natsConnection_Destroy(nc);
    nats_Close();
    return rc;
}
