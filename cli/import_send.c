/*
 * import_send.c - streaming an order CSV to ingest.rows.
 *
 * The file is read record by record and re-serialised, so memory holds one
 * chunk whatever the file size, and quoting in the output is always clean
 * even when the input's was lenient. Every chunk repeats the header so
 * ingest can map columns for any chunk alone, and carries the record number
 * of its first row so rejections name the line of the user's file. Each
 * chunk's Nats-Msg-Id is "<import>:<chunk>": a publish that is retried is
 * dropped by the stream's duplicate window rather than stored twice.
 */
#include "import.h"

#include <stdlib.h>
#include <string.h>

/* Room left for the headers of a chunk below the server's max payload. */
#define HEADER_ROOM_BYTES 1024
/* How long a publish may wait for room among unacknowledged ones. */
#define STALL_WAIT_MS 60000

typedef struct sender {
    js_conn *c;
    const import_send_opts *o;
    char *buf; /* header line + this chunk's rows */
    size_t len, cap, header_len, max_bytes;
    int64_t record; /* records read; the header is record 1 */
    int64_t chunk_seq, chunk_first_row, chunk_rows;
    int64_t rows_sent;
    oms_status status;
    bool stop;
} sender;

static natsStatus set_headers(natsMsg *msg, const char *import_id, const char *key,
                              const char *value, const char *key2, const char *value2)
{
    natsStatus st = natsMsgHeader_Set(msg, IMPORT_HDR_ID, import_id);
    if (st == NATS_OK)
        st = natsMsgHeader_Set(msg, key, value);
    if (st == NATS_OK && key2 != NULL)
        st = natsMsgHeader_Set(msg, key2, value2);
    return st;
}

/* Publishes buf[0..len) as the next chunk and starts an empty one. */
static oms_status flush_chunk(sender *s)
{
    char seq[24], first[24], msg_id[IMPORT_ID_LEN + 24];
    natsMsg *msg = NULL;

    snprintf(seq, sizeof seq, "%lld", (long long)s->chunk_seq);
    snprintf(first, sizeof first, "%lld", (long long)s->chunk_first_row);
    snprintf(msg_id, sizeof msg_id, "%s:%s", s->o->import_id, seq);
    natsStatus st = natsMsg_Create(&msg, IMPORT_SUBJECT, NULL, s->buf, (int)s->len);
    if (st == NATS_OK)
        st = set_headers(msg, s->o->import_id, IMPORT_HDR_CHUNK, seq, IMPORT_HDR_FIRST_ROW, first);
    if (st == NATS_OK && s->o->content_sha256 != NULL && *s->o->content_sha256 != '\0')
        st = natsMsgHeader_Set(msg, ORDER_CSV_HDR_CONTENT_SHA256, s->o->content_sha256);
    if (st == NATS_OK)
        st = cli_publish_async(s->c, &msg, msg_id, STALL_WAIT_MS);
    natsMsg_Destroy(msg);
    if (st != NATS_OK) {
        cli_error("cannot publish chunk %s of import %s (rows %s-%lld of %s) to %s: %s", seq,
                  s->o->import_id, first, (long long)(s->chunk_first_row + s->chunk_rows - 1),
                  s->o->path, IMPORT_SUBJECT, natsStatus_GetText(st));
        return OMS_ENATS;
    }
    s->rows_sent += s->chunk_rows;
    s->chunk_seq++;
    s->chunk_rows = 0;
    s->len = s->header_len;
    if (s->o->tick != NULL)
        s->o->tick(s->o->tick_ctx, s->rows_sent);
    return OMS_OK;
}

/* Appends a data row; sends the chunk when it is full. */
static oms_status add_row(sender *s, char *const *fields, size_t n)
{
    size_t before = s->len;
    oms_status st = csvrec_write(&s->buf, &s->len, &s->cap, fields, n);
    if (st != OMS_OK)
        return st;
    if (s->len > s->max_bytes && s->chunk_rows > 0) {
        /* The server would refuse a message this big: send the chunk
         * without this row, then start the next chunk with it. */
        size_t row_len = s->len - before;
        s->len = before;
        if ((st = flush_chunk(s)) != OMS_OK)
            return st;
        memmove(s->buf + s->header_len, s->buf + before, row_len);
        s->len = s->header_len + row_len;
    }
    if (s->len > s->max_bytes) {
        cli_error("row %lld of %s is %zu bytes long: with its header it exceeds the largest "
                  "message NATS accepts (%zu bytes); nothing more was sent",
                  (long long)s->record, s->o->path, s->len - s->header_len, s->max_bytes);
        return OMS_EINVAL;
    }
    if (s->chunk_rows++ == 0)
        s->chunk_first_row = s->record;
    return s->chunk_rows == s->o->chunk_rows ? flush_chunk(s) : OMS_OK;
}

static void on_record(void *arg, char *const *fields, size_t n)
{
    sender *s = arg;
    if (s->stop)
        return;
    s->record++;
    if (s->record == 1) {
        s->status = csvrec_write(&s->buf, &s->len, &s->cap, fields, n);
        s->header_len = s->len;
    } else {
        s->status = add_row(s, fields, n);
    }
    s->stop = s->status != OMS_OK || cli_interrupted;
}

static oms_status publish_end(sender *s)
{
    char rows[24], msg_id[IMPORT_ID_LEN + 8];
    natsMsg *msg = NULL;

    snprintf(rows, sizeof rows, "%lld", (long long)s->rows_sent);
    snprintf(msg_id, sizeof msg_id, "%s:end", s->o->import_id);
    natsStatus st = natsMsg_Create(&msg, IMPORT_SUBJECT, NULL, NULL, 0);
    if (st == NATS_OK)
        st = set_headers(msg, s->o->import_id, IMPORT_HDR_END, rows, NULL, NULL);
    if (st == NATS_OK)
        st = cli_publish_async(s->c, &msg, msg_id, STALL_WAIT_MS);
    natsMsg_Destroy(msg);
    if (st != NATS_OK) {
        cli_error("cannot publish the end marker of import %s: %s", s->o->import_id,
                  natsStatus_GetText(st));
        return OMS_ENATS;
    }
    return OMS_OK;
}

/* Waits for the PubAcks of everything published so far. */
static oms_status wait_acks(sender *s, const char *what)
{
    oms_status st = js_publish_wait(s->c, s->o->ack_wait_ms);
    if (st == OMS_OK)
        return OMS_OK;
    cli_error("JetStream did not acknowledge %s of import %s (%s): is stream INGEST healthy? "
              "see `omsctl status`; OMS_LOG_LEVEL=warn shows each failure",
              what, s->o->import_id,
              st == OMS_ETIMEOUT ? "no answer in time" : "a publish was refused");
    return st;
}

/* Sends the last partial chunk, collects every PubAck, then marks the end:
 * the marker goes last so ingest never counts an import complete before
 * all its chunks are stored in the stream. */
static oms_status finish(sender *s)
{
    oms_status st = OMS_OK;
    if (s->chunk_rows > 0 && (st = flush_chunk(s)) != OMS_OK)
        return st;
    if ((st = wait_acks(s, "every chunk")) != OMS_OK)
        return st;
    if ((st = publish_end(s)) != OMS_OK)
        return st;
    return wait_acks(s, "the end marker");
}

oms_status import_send(js_conn *c, const import_send_opts *o, int64_t *rows_sent)
{
    sender s = {.c = c, .o = o, .status = OMS_OK};
    int64_t max_payload = natsConnection_GetMaxPayload(js_nats(c));
    oms_status st;

    s.max_bytes = max_payload > 2 * HEADER_ROOM_BYTES ? (size_t)max_payload - HEADER_ROOM_BYTES
                                                      : (size_t)max_payload / 2;
    if (s.max_bytes > ORDER_CSV_MSG_BYTES_MAX)
        s.max_bytes = ORDER_CSV_MSG_BYTES_MAX; /* ingest refuses more, whatever NATS allows */
    st = cli_csv_scan(o->path, on_record, &s, &s.stop);
    if (st == OMS_OK)
        st = s.status;
    if (st == OMS_ENOMEM)
        cli_error("out of memory while sending %s", o->path);
    if (st == OMS_OK && cli_interrupted) {
        cli_error("interrupted after sending %lld rows: import %s has no end marker, so ingest "
                  "will seal the rows it got as timed out",
                  (long long)s.rows_sent, o->import_id);
        st = OMS_ETRANSIENT;
    }
    if (st == OMS_OK)
        st = finish(&s);
    *rows_sent = s.rows_sent;
    free(s.buf);
    return st;
}
