/*
 * testenv.h - helpers shared by the tests: cmocka includes, and for
 * integration tests the local stack's settings (the environment that
 * `make test` exports from .oms/env), service processes to start, stop and
 * kill -9, a PostgreSQL connection, and reading back what a stream holds.
 */
#ifndef OMS_TESTENV_H
#define OMS_TESTENV_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* After the four above, which it uses without including. */
#include <cmocka.h>

#include <libpq-fe.h>
#include <protobuf-c/protobuf-c.h>

#include "js.h"
#include "oms.h"

/* Returns the environment variable or fails the test with a message saying
 * that integration tests run under `make test`. */
const char *testenv_require(const char *name);

/* Deletes every stream of the contract and drops the given schemas (NULL-
 * terminated), so a test starts from nothing. */
void testenv_reset(const char *const *schemas);

/* Starts build's services/<name>/oms-<name> with OMS_HTTP_ADDR on
 * 127.0.0.1:port, OMS_HEALTH_ADDR=off, plus extra "KEY=value" settings
 * (NULL-terminated, may be NULL); waits until /readyz answers 200 (fails the test after 30 s). Its
 * stderr goes to <build>/Testing/<name>-<port>.log. */
pid_t testenv_service_start(const char *name, int port, const char *const *extra_env);

/* The file a service started on port writes its log to (appended across
 * starts): <build>/Testing/<name>-<port>.log. */
void testenv_service_log(const char *name, int port, char *out, size_t len);

/* cmocka teardown: kill -9 every service a failed test left running, so the
 * next test starts clean. Use with cmocka_unit_test_teardown. */
int testenv_cleanup(void **state);

/* SIGTERM, waits, and asserts a clean exit (status 0). */
void testenv_service_stop(pid_t pid);

/* kill -9 and reap. */
void testenv_service_kill(pid_t pid);

/* A connection to the stack's database (no schema set); fails the test if down. */
PGconn *testenv_pg(void);

/* Runs a query returning one value and returns it as a long (fails on error). */
long testenv_pg_long(PGconn *c, const char *sql);

/* A JetStream connection to the stack. */
js_conn *testenv_js(void);

/* One message read back from a stream. */
typedef struct testenv_msg {
    char *subject;
    char *msg_id;
    void *data;
    size_t len;
} testenv_msg;

/* Reads every message now in stream whose subject matches filter (NULL: all),
 * through a temporary consumer. Caller frees with testenv_msgs_free. */
size_t testenv_stream_read(js_conn *js, const char *stream, const char *filter, testenv_msg **out);
void testenv_msgs_free(testenv_msg *msgs, size_t n);

/* Publishes data on subject with the given headers ("Key", "value" pairs,
 * NULL-terminated; may be NULL) and waits for the PubAck. */
void testenv_publish(js_conn *js, const char *subject, const void *data, size_t len,
                     const char *const *headers);

/* Publishes a chunk of CSV rows on ingest.rows with the ingest headers that
 * are not NULL (Nats-Msg-Id, Oms-Import-Id, Oms-First-Row, Oms-Import-End). */
void testenv_publish_rows(js_conn *js, const char *msg_id, const char *import_id,
                          const char *first_row, const char *end_rows, const void *body,
                          size_t len);

/* Packs msg and publishes it as an event of the contract: Nats-Msg-Id =
 * event_id, Oms-Type = its protobuf type. Waits for the PubAck. */
void testenv_publish_event(js_conn *js, const char *subject, const char *event_id,
                           const ProtobufCMessage *msg);

/* Number of messages in a stream. */
long testenv_stream_count(js_conn *js, const char *stream);

/* Polls cond(arg) every 50 ms until it is true or timeout_ms passes. */
bool testenv_wait(bool (*cond)(void *arg), void *arg, int timeout_ms);

/* Polls a one-value SQL query until it equals want or timeout_ms passes;
 * returns the last value seen. */
long testenv_wait_pg(PGconn *c, const char *sql, long want, int timeout_ms);

/* HTTP request to 127.0.0.1:port path; method "GET" or "POST". token may be
 * NULL. Returns the status; *body (if not NULL) gets the malloc'd body. */
long testenv_http(const char *method, int port, const char *path, const char *token, char **body);

/* Runs the build's omsctl through the shell as "<prefix> omsctl <args>":
 * prefix (may be NULL) is shell text before the command, such as variable
 * assignments or a `cd DIR &&`; args may end in 2>&1 to capture stderr too.
 * Returns the exit status (-1 when it did not exit); *out gets stdout
 * (caller frees). The command and its output are logged to stderr. */
int testenv_omsctl(const char *prefix, const char *args, char **out);

/* Runs omsctl with args, stderr included, and fails the test unless it exits
 * want_rc with want_text somewhere in its output. */
void testenv_expect_omsctl(const char *args, int want_rc, const char *want_text);

/* A raw TCP connection to 127.0.0.1:port, for tests that play a slow or
 * broken HTTP client; fails the test when it cannot connect. */
int testenv_connect_raw(int port);

/* True when the server has closed fd (end of stream or reset), without
 * waiting. */
bool testenv_closed_by_server(int fd);

/* Starts a peer we do not ship (a test server from tests/support/) as path
 * with args (NULL-terminated), its stderr appended to
 * <build>/Testing/<name>-<port>.log, and waits until it accepts TCP
 * connections on 127.0.0.1:port (fails the test after 10 s or if it exits). */
pid_t testenv_peer_start(const char *path, const char *name, int port, const char *const *args);

/* SIGTERM, waits, asserts a clean exit (status 0) and sets *pid to 0. */
void testenv_peer_stop(pid_t *pid);

/* kill -9 and reap when *pid > 0 (for teardowns); sets *pid to 0. */
void testenv_peer_kill(pid_t *pid);

/* GETs path on 127.0.0.1:port, asserts 200 and a JSON body, returns it
 * (caller decrefs). */
struct json_t *testenv_http_json(int port, const char *path);

/* The value of one series ("name{labels}") from GET /metrics on
 * 127.0.0.1:port; -1 when absent. */
double testenv_metric(int port, const char *series);
/* As testenv_http, with request_body (JSON, "" for none) sent by a POST. */
long testenv_http_post_json(const char *method, int port, const char *path, const char *token,
                            const char *request_body, char **body);

/* ---- orders end to end ---------------------------------------------- */

/* Publishes catalog.product for sku with on_hand units (price 1.00). */
void testenv_load_product(js_conn *js, const char *sku, long on_hand);

/* Sends n CSV rows (no header, default column order) as import import_id on
 * ingest.rows, chunk_rows rows a chunk, then the end marker. */
void testenv_import_rows(js_conn *js, const char *import_id, char **rows, int n, int chunk_rows);

/* Reads order.paid and order.failed from ORDERS into *paid and *failed and
 * asserts there is one per order (distinct order ids == messages). */
void testenv_terminal_events(js_conn *js, PGconn *pg, long *paid, long *failed);

/* ---- runtime tests (tests/lib/test_rt_*, test_outbox, ...) ------------ */

/* (Re)creates a memory stream `stream` holding subjects (one filter, e.g.
 * "rtc.>") with a duplicate window of dup_window_ms (0: the server's). */
void testenv_stream_create(js_conn *js, const char *stream, const char *subjects,
                           int64_t dup_window_ms);

/* Drops schema, connects to it with pg_connect and applies the runtime's
 * migrations (outbox, inbox, dead_letters). Caller frees with PQfinish. */
PGconn *testenv_pg_schema(const char *schema);

/* Delivered-but-unacked and not-yet-delivered counts of durable on stream;
 * fails the test when JetStream does not answer. */
void testenv_durable_pending(js_conn *js, const char *stream, const char *durable,
                             long *ack_pending, long *pending);

/* Polls until durable has nothing pending and nothing unacked, or timeout_ms. */
bool testenv_durable_settled(js_conn *js, const char *stream, const char *durable, int timeout_ms);

/* Polls until every durable of service (named service or service-...) on
 * every stream has nothing pending and nothing unacked, or timeout_ms: all
 * it was sent is applied, ignored or dead-lettered. The barrier for durables
 * that keep no inbox row (CONSUMER_DEDUPE_BY_STATE). */
bool testenv_service_settled(js_conn *js, const char *service, int timeout_ms);

/* Sends what the process writes to stderr (the logs) to a temporary file
 * until testenv_stderr_end, which restores stderr and returns the text
 * captured (caller frees). One capture at a time. */
void testenv_stderr_begin(void);
char *testenv_stderr_end(void);

#endif
