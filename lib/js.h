/*
 * js.h - NATS JetStream: connection, the streams of the event contract, durable
 * pull consumers and asynchronous publishing with Nats-Msg-Id.
 *
 * Written against nats.c 3.4.1 (Debian 12). The connection reconnects forever;
 * callers never see a dropped socket except as a failed publish or fetch.
 */
#ifndef OMS_JS_H
#define OMS_JS_H

#include "config.h"
#include "oms.h"

#include <nats/nats.h>

/* Header names of the contract. */
#define JS_HDR_MSG_ID "Nats-Msg-Id"
#define JS_HDR_TYPE "Oms-Type"

typedef struct js_conn js_conn;

/* Connects to url (comma-separated list allowed) as client name; user and
 * password may be NULL. Caller frees with js_conn_destroy. */
oms_status js_connect(js_conn **out, const char *url, const char *user, const char *password,
                      const char *name);

/* Who a process is to NATS: user and password (both may be NULL) and the
 * prefix of its reply inboxes (NULL: nats.c's "_INBOX"). The server grants a
 * user subscribe permission on its own prefix only (deploy/nats/auth.conf).
 * tls_ca (PEM file of the CA that signed the server's certificate) turns TLS
 * on; tls_cert and tls_key (PEM files, both or neither) add a client
 * certificate for a server that verifies clients. All may be NULL. */
typedef struct js_identity {
    const char *user;
    const char *password;
    const char *inbox_prefix;
    const char *tls_ca;
    const char *tls_cert;
    const char *tls_key;
} js_identity;

/* js_connect with the whole identity; borrows id. A TLS failure (the server's
 * certificate not signed by tls_ca, a server that requires TLS or a client
 * certificate it was not given) is logged with OpenSSL's reason and returns
 * OMS_ENATS at once: retrying would not fix it. An unreachable server is
 * retried in the background as with js_connect. */
oms_status js_connect_as(js_conn **out, const char *url, const js_identity *id, const char *name);

/* The identity a service's configuration gives it (OMS_NATS_USER,
 * OMS_NATS_PASSWORD, OMS_NATS_INBOX_PREFIX, OMS_NATS_TLS_*); borrows cfg's
 * strings, which live as long as the process. */
js_identity js_identity_of(const oms_config *cfg);

/* Sets opts' servers from url: one URL, or a comma-separated list of them. */
natsStatus js_options_set_servers(natsOptions *opts, const char *url);

/* Applies id's TLS settings to opts (nothing when tls_ca and tls_cert are
 * NULL). Borrows both; on failure nats_GetLastError says which file. */
natsStatus js_options_set_tls(natsOptions *opts, const js_identity *id);

/* Drains pending publishes (up to 5 s) and closes; NULL is a no-op. */
void js_conn_destroy(js_conn *c);

natsConnection *js_nats(js_conn *c);
jsCtx *js_ctx(js_conn *c);
bool js_connected(js_conn *c);

/* Creates or updates every stream of the contract (INGEST, ORDERS, STOCK,
 * PAYMENTS, REFUNDS, IMPORTS, CATALOG) with file storage: for operators and
 * tests, whose NATS user may manage every stream. */
oms_status js_ensure_streams(js_conn *c, int replicas, int64_t max_age_ms, int64_t dup_window_ms);

/* Creates or updates the streams whose owner is `owner` (a service name:
 * ingest owns INGEST, ORDERS, IMPORTS; inventory STOCK, CATALOG; payment
 * PAYMENTS; refund REFUNDS), and only those. OMS_OK when it owns none. */
oms_status js_ensure_owned_streams(js_conn *c, const char *owner, int replicas, int64_t max_age_ms,
                                   int64_t dup_window_ms);

/* The service that creates stream, or NULL for a name outside the contract.
 * Returns a static string. */
const char *js_stream_owner(const char *stream);

/* OMS_OK when stream exists, OMS_ENOTFOUND when it does not (yet), another
 * status when JetStream did not answer. Reads stream info only. */
oms_status js_stream_exists(js_conn *c, const char *stream);

/* Creates (or reuses) durable pull consumer `durable` on stream with a subject
 * filter (NULL for all), explicit acks, and binds a subscription to it.
 * Several processes binding the same durable share its messages. */
oms_status js_pull_subscribe(js_conn *c, const char *stream, const char *durable,
                             const char *filter, int64_t ack_wait_ms, natsSubscription **out);

/* js_pull_subscribe with MaxDeliver = max_deliver (<= 0: unlimited). An
 * existing durable is updated to this config, so a running stack's durables
 * get a new MaxDeliver or AckWait when the service restarts. */
oms_status js_pull_subscribe_max(js_conn *c, const char *stream, const char *durable,
                                 const char *filter, int64_t ack_wait_ms, int max_deliver,
                                 natsSubscription **out);

/* Fetches the messages available now, up to batch (on a rare race up to twice
 * what arrived late meanwhile: callers take any count); when none are, waits
 * up to wait_ms for the first one and returns it alone. Nothing is OMS_OK
 * with list->Count == 0. See js.c for why (a nats.c 3.4.1 overrun). */
oms_status js_fetch(natsSubscription *sub, int batch, int64_t wait_ms, natsMsgList *list);

/* Publishes asynchronously with Nats-Msg-Id = event_id and Oms-Type = type
 * (both may be NULL). Borrows everything. */
oms_status js_publish_async(js_conn *c, const char *subject, const char *type, const char *event_id,
                            const void *data, size_t len);

/* Waits until every async publish is acknowledged (or timeout_ms). Returns
 * OMS_OK only if all were acknowledged and none failed since the last call. */
oms_status js_publish_wait(js_conn *c, int64_t timeout_ms);

/* Publishes synchronously and waits for the PubAck (for tools and tests). */
oms_status js_publish_sync(js_conn *c, natsMsg *msg);

/* Returns an event id for msg: its Nats-Msg-Id header, or "<stream>:<seq>"
 * from its JetStream metadata. Writes into out; an id that does not fit in
 * out_len is never cut: OMS_EINVAL, out untouched. */
oms_status js_msg_event_id(natsMsg *msg, char *out, size_t out_len);

#endif
