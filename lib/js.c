/*
 * js.c - nats.c JetStream wrappers.
 *
 * Async publish failures are counted by the error handler (called on a nats.c
 * thread) and collected by js_publish_wait, so a relay can tell whether a
 * whole round of publishes made it before it deletes its outbox rows.
 */
#include "js.h"

#include "log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_PER_MS 1000000LL

struct js_conn {
    natsConnection *nc;
    jsCtx *js;
    atomic_long publish_failures;
};

typedef struct stream_def {
    const char *name;
    const char *subject;
    jsRetentionPolicy retention;
    const char *owner; /* the one service that creates and updates it */
} stream_def;

/* The streams of the event contract (docs/events.md). Each has one owner,
 * the service whose domain its subjects belong to; deploy/nats/auth.conf
 * grants STREAM.CREATE/UPDATE on a stream to that user only, so two
 * services with different settings cannot fight over a stream's config. */
static const stream_def STREAMS[] = {
    {"INGEST", "ingest.rows", js_WorkQueuePolicy, "ingest"},
    {"ORDERS", "order.>", js_LimitsPolicy, "ingest"},
    {"STOCK", "stock.>", js_LimitsPolicy, "inventory"},
    {"PAYMENTS", "payment.>", js_LimitsPolicy, "payment"},
    {"REFUNDS", "refund.>", js_LimitsPolicy, "refund"},
    {"IMPORTS", "import.>", js_LimitsPolicy, "ingest"},
    {"CATALOG", "catalog.>", js_LimitsPolicy, "inventory"},
};

static void on_publish_error(jsCtx *js, jsPubAckErr *pae, void *closure)
{
    (void)js;
    js_conn *c = closure;
    atomic_fetch_add(&c->publish_failures, 1);
    log_warn("async publish failed", "subject", natsMsg_GetSubject(pae->Msg), "error",
             pae->ErrText ? pae->ErrText : natsStatus_GetText(pae->Err), NULL);
}

static void on_disconnected(natsConnection *nc, void *closure)
{
    (void)closure;
    if (natsConnection_IsClosed(nc))
        return; /* our own close, not an outage */
    log_warn("disconnected from NATS, reconnecting", NULL);
}

static void on_connected(natsConnection *nc, void *closure)
{
    (void)nc;
    (void)closure;
    log_info("connected to NATS", NULL);
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    (void)nc;
    (void)closure;
    log_info("reconnected to NATS", NULL);
}

/* natsOptions_SetURL takes one URL: a comma-separated list (every node of a
 * cluster, as js.h promises) goes to natsOptions_SetServers instead. */
natsStatus js_options_set_servers(natsOptions *opts, const char *url)
{
    enum { MAX_SERVERS = 16 };
    const char *servers[MAX_SERVERS];
    int n = 0;
    if (strchr(url, ',') == NULL)
        return natsOptions_SetURL(opts, url);
    char *list = strdup(url), *save = NULL;
    if (list == NULL)
        return NATS_NO_MEMORY;
    for (char *tok = strtok_r(list, ", ", &save); tok != NULL && n < MAX_SERVERS;
         tok = strtok_r(NULL, ", ", &save))
        servers[n++] = tok;
    natsStatus st = n > 0 ? natsOptions_SetServers(opts, servers, n) : NATS_INVALID_ARG;
    free(list); /* nats.c copied the strings */
    return st;
}

static oms_status nats_fail(natsStatus st, const char *what)
{
    log_warn("NATS call failed", "what", what, "error", natsStatus_GetText(st), NULL);
    return st == NATS_TIMEOUT ? OMS_ETIMEOUT : OMS_ENATS;
}

oms_status js_connect(js_conn **out, const char *url, const char *user, const char *password,
                      const char *name)
{
    js_identity id = {.user = user, .password = password, .inbox_prefix = NULL};
    return js_connect_as(out, url, &id, name);
}

js_identity js_identity_of(const oms_config *cfg)
{
    return (js_identity){.user = cfg->nats_user,
                         .password = cfg->nats_password,
                         .inbox_prefix = cfg->nats_inbox_prefix,
                         .tls_ca = cfg->nats_tls_ca,
                         .tls_cert = cfg->nats_tls_cert,
                         .tls_key = cfg->nats_tls_key};
}

natsStatus js_options_set_tls(natsOptions *opts, const js_identity *id)
{
    natsStatus st = NATS_OK;
    if (id->tls_ca == NULL && id->tls_cert == NULL)
        return NATS_OK;
    /* Secure even for a nats:// URL: with a CA configured, a server that
     * offers no TLS must be refused, not talked to in clear. */
    st = natsOptions_SetSecure(opts, true);
    if (st == NATS_OK && id->tls_ca != NULL)
        st = natsOptions_LoadCATrustedCertificates(opts, id->tls_ca);
    if (st == NATS_OK && id->tls_cert != NULL)
        st = natsOptions_LoadCertificatesChain(opts, id->tls_cert, id->tls_key);
    return st;
}

/* With TLS 1.3 a server that wants a client certificate refuses it after
 * the client's side of the handshake: nats.c then sees the connection close
 * where it expected a PONG, a protocol error. */
static bool tls_failure(natsStatus st, const js_identity *id)
{
    bool tls = id->tls_ca != NULL || id->tls_cert != NULL;
    return st == NATS_SSL_ERROR || st == NATS_SECURE_CONNECTION_REQUIRED ||
           st == NATS_SECURE_CONNECTION_WANTED || (tls && st == NATS_PROTOCOL_ERROR);
}

static oms_status tls_fail(natsStatus st, const char *url, const js_identity *id)
{
    const char *detail = nats_GetLastError(NULL);
    log_error("TLS with NATS failed: check OMS_NATS_TLS_CA (the CA that signed the server's "
              "certificate) and OMS_NATS_TLS_CERT/OMS_NATS_TLS_KEY (a client certificate, "
              "when the server verifies clients)",
              "nats_url", url, "error", natsStatus_GetText(st), "detail", detail ? detail : "",
              "ca", id->tls_ca ? id->tls_ca : "(none)", NULL);
    return OMS_ENATS;
}

static natsStatus set_options(natsOptions *opts, const char *url, const js_identity *id,
                              const char *name)
{
    natsStatus st;
    if ((st = js_options_set_servers(opts, url)) != NATS_OK ||
        (st = natsOptions_SetName(opts, name)) != NATS_OK ||
        (st = natsOptions_SetMaxReconnect(opts, -1)) != NATS_OK ||
        (st = natsOptions_SetReconnectWait(opts, 250)) != NATS_OK ||
        (st = natsOptions_SetDisconnectedCB(opts, on_disconnected, NULL)) != NATS_OK ||
        (st = natsOptions_SetReconnectedCB(opts, on_reconnected, NULL)) != NATS_OK)
        return st;
    if (id->user != NULL && (st = natsOptions_SetUserInfo(opts, id->user, id->password)) != NATS_OK)
        return st;
    if (id->inbox_prefix != NULL &&
        (st = natsOptions_SetCustomInboxPrefix(opts, id->inbox_prefix)) != NATS_OK)
        return st;
    return js_options_set_tls(opts, id);
}

/* One attempt first, so that what retrying cannot fix (TLS) is reported
 * instead of being retried silently in the background. */
static oms_status connect_nats(js_conn *c, natsOptions *opts, const char *url,
                               const js_identity *id)
{
    natsStatus st = natsConnection_Connect(&c->nc, opts);
    if (st == NATS_OK) {
        log_info("connected to NATS", NULL);
        return OMS_OK;
    }
    if (tls_failure(st, id))
        return tls_fail(st, url, id);
    const char *detail = nats_GetLastError(NULL);
    log_warn("cannot connect to NATS yet, retrying in the background", "nats_url", url, "error",
             natsStatus_GetText(st), "detail", detail ? detail : "", NULL);
    /* With retry-on-failed-connect and a connected callback, Connect returns
     * NATS_NOT_YET_CONNECTED at once while the server is unreachable and the
     * client keeps trying in the background (without the callback it would
     * block here, deaf to SIGTERM). Callers retry their first requests. */
    if ((st = natsOptions_SetRetryOnFailedConnect(opts, true, on_connected, NULL)) != NATS_OK)
        return nats_fail(st, "options");
    st = natsConnection_Connect(&c->nc, opts);
    if (st != NATS_OK && st != NATS_NOT_YET_CONNECTED)
        return nats_fail(st, "connect");
    return OMS_OK;
}

oms_status js_connect_as(js_conn **out, const char *url, const js_identity *id, const char *name)
{
    natsOptions *opts = NULL;
    js_conn *c = calloc(1, sizeof *c);
    natsStatus st = NATS_OK;
    oms_status s = OMS_OK;
    jsOptions jo;

    if (c == NULL)
        return OMS_ENOMEM;
    if ((st = natsOptions_Create(&opts)) != NATS_OK ||
        (st = set_options(opts, url, id, name)) != NATS_OK) {
        const char *detail = nats_GetLastError(NULL);
        log_error("cannot set up the NATS connection", "error", natsStatus_GetText(st), "detail",
                  detail ? detail : "", NULL);
        s = OMS_ENATS;
        goto out;
    }
    if ((s = connect_nats(c, opts, url, id)) != OMS_OK)
        goto out;
    jsOptions_Init(&jo);
    jo.Wait = 10000;
    jo.PublishAsync.MaxPending = 16384;
    jo.PublishAsync.ErrHandler = on_publish_error;
    jo.PublishAsync.ErrHandlerClosure = c;
    if ((st = natsConnection_JetStream(&c->js, c->nc, &jo)) != NATS_OK) {
        s = nats_fail(st, "jetstream context");
        goto out;
    }
    *out = c;
    c = NULL;
out:
    natsOptions_Destroy(opts);
    js_conn_destroy(c);
    return s;
}

void js_conn_destroy(js_conn *c)
{
    if (c == NULL)
        return;
    if (c->js != NULL) {
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MaxWait = 5000;
        js_PublishAsyncComplete(c->js, &po);
        jsCtx_Destroy(c->js);
    }
    natsConnection_Destroy(c->nc);
    free(c);
}

natsConnection *js_nats(js_conn *c)
{
    return c->nc;
}

jsCtx *js_ctx(js_conn *c)
{
    return c->js;
}

bool js_connected(js_conn *c)
{
    return c != NULL && natsConnection_Status(c->nc) == NATS_CONN_STATUS_CONNECTED;
}

static oms_status ensure_stream(js_conn *c, const stream_def *d, int replicas, int64_t max_age_ms,
                                int64_t dup_window_ms)
{
    jsStreamConfig cfg;
    jsStreamInfo *si = NULL;
    jsErrCode code = 0;
    const char *subjects[] = {d->subject};

    jsStreamConfig_Init(&cfg);
    cfg.Name = d->name;
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Retention = d->retention;
    cfg.Storage = js_FileStorage;
    cfg.Replicas = replicas;
    cfg.MaxAge = max_age_ms * NS_PER_MS;
    cfg.Duplicates = dup_window_ms * NS_PER_MS;
    natsStatus st = js_AddStream(&si, c->js, &cfg, NULL, &code);
    if (st != NATS_OK && code == JSStreamNameExistErr)
        st = js_UpdateStream(&si, c->js, &cfg, NULL, &code);
    jsStreamInfo_Destroy(si);
    if (st != NATS_OK) {
        char codebuf[16];
        snprintf(codebuf, sizeof codebuf, "%d", (int)code);
        log_error("cannot create or update stream", "stream", d->name, "error",
                  natsStatus_GetText(st), "js_code", codebuf, NULL);
        return OMS_ENATS;
    }
    return OMS_OK;
}

oms_status js_ensure_streams(js_conn *c, int replicas, int64_t max_age_ms, int64_t dup_window_ms)
{
    for (size_t i = 0; i < sizeof STREAMS / sizeof STREAMS[0]; i++) {
        oms_status s = ensure_stream(c, &STREAMS[i], replicas, max_age_ms, dup_window_ms);
        if (s != OMS_OK)
            return s;
    }
    return OMS_OK;
}

oms_status js_ensure_owned_streams(js_conn *c, const char *owner, int replicas, int64_t max_age_ms,
                                   int64_t dup_window_ms)
{
    for (size_t i = 0; i < sizeof STREAMS / sizeof STREAMS[0]; i++) {
        if (strcmp(STREAMS[i].owner, owner) != 0)
            continue;
        oms_status s = ensure_stream(c, &STREAMS[i], replicas, max_age_ms, dup_window_ms);
        if (s != OMS_OK)
            return s;
    }
    return OMS_OK;
}

const char *js_stream_owner(const char *stream)
{
    for (size_t i = 0; i < sizeof STREAMS / sizeof STREAMS[0]; i++)
        if (strcmp(STREAMS[i].name, stream) == 0)
            return STREAMS[i].owner;
    return NULL;
}

oms_status js_stream_exists(js_conn *c, const char *stream)
{
    jsStreamInfo *si = NULL;
    jsErrCode code = 0;
    natsStatus st = js_GetStreamInfo(&si, c->js, stream, NULL, &code);
    jsStreamInfo_Destroy(si);
    if (st == NATS_OK)
        return OMS_OK;
    if (st == NATS_NOT_FOUND || code == JSStreamNotFoundErr)
        return OMS_ENOTFOUND;
    return nats_fail(st, "stream info");
}

oms_status js_pull_subscribe(js_conn *c, const char *stream, const char *durable,
                             const char *filter, int64_t ack_wait_ms, natsSubscription **out)
{
    return js_pull_subscribe_max(c, stream, durable, filter, ack_wait_ms, 0, out);
}

oms_status js_pull_subscribe_max(js_conn *c, const char *stream, const char *durable,
                                 const char *filter, int64_t ack_wait_ms, int max_deliver,
                                 natsSubscription **out)
{
    jsConsumerConfig cc;
    jsConsumerInfo *ci = NULL;
    jsSubOptions so;
    jsErrCode code = 0;

    jsConsumerConfig_Init(&cc);
    cc.Durable = durable;
    cc.AckPolicy = js_AckExplicit;
    cc.AckWait = ack_wait_ms * NS_PER_MS;
    cc.MaxAckPending = 20000;
    cc.MaxDeliver = max_deliver > 0 ? max_deliver : -1;
    cc.FilterSubject = filter;
    natsStatus st = js_AddConsumer(&ci, c->js, stream, &cc, NULL, &code);
    if (st != NATS_OK && code == JSConsumerNameExistErr)
        st = js_UpdateConsumer(&ci, c->js, stream, &cc, NULL, &code);
    jsConsumerInfo_Destroy(ci);
    /* Another replica may have created it with the same config a moment ago. */
    if (st != NATS_OK && code != JSConsumerNameExistErr && code != 0)
        return nats_fail(st, "add consumer");
    jsSubOptions_Init(&so);
    so.Stream = stream;
    so.Consumer = durable;
    st = js_PullSubscribe(out, c->js, filter ? filter : ">", durable, NULL, &so, &code);
    if (st != NATS_OK)
        return nats_fail(st, "pull subscribe");
    return OMS_OK;
}

/*
 * Why fetching takes two requests: nats.c 3.4.1's fetch first takes messages
 * already waiting in the subscription (late deliveries for an earlier pull
 * request that expired on the client first), sends a pull request for the
 * remainder of the batch, and then loops until its count EQUALS that
 * remainder. With more than half a batch waiting, the count is already past
 * the remainder, so it keeps storing messages past the end of its array until
 * the wait runs out: heap corruption, seen as "corrupted size vs. prev_size"
 * under load. So: messages already waiting are taken by fetches of one (a
 * fetch of one cannot overshoot, and asks the server nothing while a waiting
 * message answers it); the batch is taken with a no-wait request (answered
 * at once, nothing lingers) that never asks for fewer than twice what waits;
 * and the request that waits asks for one message only, so at most one can
 * arrive late. Late answers also come from a slow or newly elected consumer
 * leader in a cluster.
 */
static natsStatus fetch_request(natsMsgList *list, natsSubscription *sub, int batch,
                                int64_t wait_ms, bool no_wait)
{
    jsFetchRequest req;
    int waiting = 0;
    natsSubscription_GetPending(sub, &waiting, NULL);
    jsFetchRequest_Init(&req);
    req.Batch = batch > 2 * waiting + 2 ? batch : 2 * waiting + 2;
    req.NoWait = no_wait;
    req.Expires = wait_ms * 1000000; /* nanoseconds; also the client's wait */
    return natsSubscription_FetchRequest(list, sub, &req);
}

static bool fetch_empty(natsStatus st)
{
    return st == NATS_TIMEOUT || st == NATS_NOT_FOUND;
}

static oms_status fetch_status(natsStatus st)
{
    if (st == NATS_CONNECTION_DISCONNECTED || st == NATS_CONNECTION_CLOSED)
        return OMS_ETRANSIENT;
    return nats_fail(st, "fetch");
}

/* Takes up to batch messages already waiting in the subscription, by
 * fetches of one. list->Msgs is ours (calloc), as natsMsgList_Destroy expects. */
static natsStatus fetch_waiting(natsSubscription *sub, int batch, int64_t wait_ms,
                                natsMsgList *list)
{
    natsMsg **msgs = calloc((size_t)batch, sizeof *msgs);
    natsStatus st = NATS_OK;
    int n = 0, waiting = 0;
    if (msgs == NULL)
        return NATS_NO_MEMORY;
    while (n < batch && natsSubscription_GetPending(sub, &waiting, NULL) == NATS_OK &&
           waiting > 0) {
        natsMsgList one;
        st = natsSubscription_Fetch(&one, sub, 1, wait_ms, NULL);
        if (st != NATS_OK)
            break; /* only a status message was waiting, or the link failed */
        for (int i = 0; i < one.Count && n < batch; i++) {
            msgs[n++] = one.Msgs[i];
            one.Msgs[i] = NULL; /* moved: Destroy skips NULL */
        }
        natsMsgList_Destroy(&one);
    }
    list->Msgs = msgs;
    list->Count = n;
    return n > 0 || fetch_empty(st) ? NATS_OK : st;
}

oms_status js_fetch(natsSubscription *sub, int batch, int64_t wait_ms, natsMsgList *list)
{
    natsStatus st;
    int waiting = 0;
    memset(list, 0, sizeof *list);
    if (natsSubscription_GetPending(sub, &waiting, NULL) == NATS_OK && waiting > 0) {
        st = fetch_waiting(sub, batch, wait_ms, list);
    } else {
        st = fetch_request(list, sub, batch, wait_ms, true);
        if (fetch_empty(st)) {
            natsSubscription_GetPending(sub, &waiting, NULL);
            st = waiting > 0 ? NATS_TIMEOUT : fetch_request(list, sub, 1, wait_ms, false);
        }
    }
    if (st == NATS_OK || fetch_empty(st))
        return OMS_OK;
    natsMsgList_Destroy(list);
    memset(list, 0, sizeof *list);
    return fetch_status(st);
}

oms_status js_publish_async(js_conn *c, const char *subject, const char *type, const char *event_id,
                            const void *data, size_t len)
{
    natsMsg *msg = NULL;
    jsPubOptions po;
    natsStatus st;

    if (len > INT32_MAX)
        return OMS_EINVAL;
    if ((st = natsMsg_Create(&msg, subject, NULL, data, (int)len)) != NATS_OK)
        return nats_fail(st, "message create");
    if (type != NULL)
        natsMsgHeader_Set(msg, JS_HDR_TYPE, type);
    jsPubOptions_Init(&po);
    po.MsgId = event_id;
    /* On success nats.c takes the message; on failure we still own it. */
    st = js_PublishMsgAsync(c->js, &msg, &po);
    natsMsg_Destroy(msg);
    if (st != NATS_OK) {
        atomic_fetch_add(&c->publish_failures, 1);
        return nats_fail(st, "publish async");
    }
    return OMS_OK;
}

/* A PubAck lost with the node that led the stream never arrives, and nats.c
 * 3.4.1 keeps such a message pending for good: every later wait would time
 * out too. The caller republishes what was not acknowledged (with the same
 * Nats-Msg-Id, so the stream drops what did land), so the pending ones are
 * dropped here. */
static void abandon_pending(js_conn *c)
{
    natsMsgList pending;
    if (js_PublishAsyncGetPendingList(&pending, c->js) != NATS_OK)
        return; /* none pending */
    char count[16];
    snprintf(count, sizeof count, "%d", pending.Count);
    log_warn("publishes not acknowledged in time, dropped for a resend", "count", count, NULL);
    natsMsgList_Destroy(&pending);
}

oms_status js_publish_wait(js_conn *c, int64_t timeout_ms)
{
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = timeout_ms;
    natsStatus st = js_PublishAsyncComplete(c->js, &po);
    long failures = atomic_exchange(&c->publish_failures, 0);
    if (st == NATS_TIMEOUT)
        abandon_pending(c);
    if (st != NATS_OK)
        return st == NATS_TIMEOUT ? OMS_ETIMEOUT : OMS_ENATS;
    return failures == 0 ? OMS_OK : OMS_ENATS;
}

oms_status js_publish_sync(js_conn *c, natsMsg *msg)
{
    jsPubAck *ack = NULL;
    jsErrCode code = 0;
    natsStatus st = js_PublishMsg(&ack, c->js, msg, NULL, &code);
    jsPubAck_Destroy(ack);
    return st == NATS_OK ? OMS_OK : nats_fail(st, "publish");
}

oms_status js_msg_event_id(natsMsg *msg, char *out, size_t out_len)
{
    const char *id = NULL;
    char seq_id[256];
    if (natsMsgHeader_Get(msg, JS_HDR_MSG_ID, &id) != NATS_OK || id == NULL || *id == '\0') {
        jsMsgMetaData *meta = NULL;
        if (natsMsg_GetMetaData(&meta, msg) != NATS_OK)
            return OMS_EINVAL;
        int n = snprintf(seq_id, sizeof seq_id, "%s:%llu", meta->Stream,
                         (unsigned long long)meta->Sequence.Stream);
        jsMsgMetaData_Destroy(meta);
        if (n < 0 || (size_t)n >= sizeof seq_id)
            return OMS_EINVAL;
        id = seq_id;
    }
    /* Cutting would make two ids that share a prefix one event. */
    size_t len = strlen(id);
    if (len >= out_len)
        return OMS_EINVAL;
    memcpy(out, id, len + 1);
    return OMS_OK;
}
