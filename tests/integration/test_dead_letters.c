/*
 * test_dead_letters.c - lib/consumer against the real nats-server and
 * PostgreSQL: a message that never applies is dead-lettered after exactly its
 * attempts while the rest of its batch and later messages are applied; one
 * whose earlier deliveries got no answer (a crash) is dead-lettered without
 * being applied; hostile subjects, headers and ids end in dead_letters with
 * the exact reason and their raw bytes; a retry replays the stored bytes; and
 * a database from before the raw columns migrates in place; lib/rconsumer
 * (Redis) follows the same rules; and ingest lists and retries over HTTP.
 */
#include "testenv.h"

#include "consumer.h"
#include "metrics.h"
#include "pg.h"
#include "rconsumer.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STREAM "TESTDL"
#define SCHEMA "testdl"
#define ATTEMPTS 3
#define POISON "att-3"

typedef struct seen {
    pthread_mutex_t mu;
    unsigned poison_deliveries; /* bit d set: the poison was applied on delivery d */
    int crash_applied;          /* times the "crashed" message reached apply */
    char reject_id[64];         /* apply rejects this event id ("" none) */
    char last_subject[64];      /* the last message applied, for the replay check */
    char last_event_id[CONSUMER_EVENT_ID_LEN];
    char last_customer[64];
    unsigned char last_payload[64];
    size_t last_len;
} seen;

static seen state = {.mu = PTHREAD_MUTEX_INITIALIZER};

static oms_status insert_applied(PGconn *conn, const oms_msg *m)
{
    const char *params[] = {m->event_id, m->subject, m->data};
    int lengths[] = {0, 0, (int)m->len}, formats[] = {0, 0, 1};
    PGresult *r = PQexecParams(conn,
                               "INSERT INTO applied (event_id, subject, payload)"
                               " VALUES ($1, $2, $3)",
                               3, NULL, params, lengths, formats, 0);
    oms_status s = PQresultStatus(r) == PGRES_COMMAND_OK ? OMS_OK : OMS_EDB;
    PQclear(r);
    return s;
}

/* Remembers m; says whether it is the poison (fails) or to be rejected. */
static void observe(const oms_msg *m, bool *poison, bool *reject)
{
    const char *customer = oms_msg_header(m, "Oms-Customer");
    pthread_mutex_lock(&state.mu);
    *poison = strcmp(m->event_id, POISON) == 0;
    *reject = state.reject_id[0] != '\0' && strcmp(m->event_id, state.reject_id) == 0;
    if (*poison)
        state.poison_deliveries |= 1u << (m->deliveries < 31 ? m->deliveries : 31);
    state.crash_applied += strcmp(m->event_id, "crash-1") == 0;
    snprintf(state.last_subject, sizeof state.last_subject, "%s", m->subject);
    snprintf(state.last_event_id, sizeof state.last_event_id, "%s", m->event_id);
    snprintf(state.last_customer, sizeof state.last_customer, "%s", customer ? customer : "");
    state.last_len = m->len < sizeof state.last_payload ? m->len : sizeof state.last_payload;
    memcpy(state.last_payload, m->data, state.last_len);
    pthread_mutex_unlock(&state.mu);
}

static oms_status apply(void *ctx, consumer_batch *b)
{
    (void)ctx;
    for (size_t i = 0; i < b->n; i++) {
        oms_msg *m = &b->msgs[i];
        bool poison = false, reject = false;
        if (m->duplicate || m->rejected)
            continue;
        observe(m, &poison, &reject);
        if (poison)
            return OMS_ETRANSIENT;
        if (reject) {
            consumer_reject(b, i, "test rejects %s", m->event_id);
            continue;
        }
        if (insert_applied(b->conn, m) != OMS_OK)
            return OMS_EDB;
    }
    return OMS_OK;
}

/* ---- the stack ------------------------------------------------------- */

static metrics *metr;
static js_conn *js;
static PGconn *pg;
static consumer_env env;

static void exec_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "%s: %s", sql, PQerrorMessage(c));
        fail();
    }
    PQclear(r);
}

static void stream_create(void)
{
    jsStreamConfig cfg;
    const char *subjects[] = {"testdl.>"};
    jsErrCode code = 0;
    js_DeleteStream(js_ctx(js), STREAM, NULL, NULL);
    jsStreamConfig_Init(&cfg);
    cfg.Name = STREAM;
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_MemoryStorage;
    assert_int_equal(js_AddStream(NULL, js_ctx(js), &cfg, NULL, &code), NATS_OK);
}

static int setup(void **st)
{
    (void)st;
    const char *const schemas[] = {SCHEMA, SCHEMA "_old", NULL};
    testenv_reset(schemas);
    metr = metrics_create();
    js = testenv_js();
    stream_create();
    assert_int_equal(pg_connect(&pg, testenv_require("OMS_PG_DSN"), SCHEMA, "test"), OMS_OK);
    assert_int_equal(pg_migrate(pg, SCHEMA, NULL), OMS_OK);
    exec_ok(pg, "CREATE TABLE applied (event_id text PRIMARY KEY, subject text NOT NULL,"
                " payload bytea NOT NULL)");
    env = (consumer_env){testenv_require("OMS_PG_DSN"), SCHEMA, js, metr};
    return 0;
}

static int teardown(void **st)
{
    (void)st;
    PQfinish(pg);
    js_DeleteStream(js_ctx(js), STREAM, NULL, NULL);
    js_conn_destroy(js);
    metrics_destroy(metr);
    return 0;
}

static consumer_spec spec_for(const char *durable, const char *filter)
{
    return (consumer_spec){.pull = {.name = durable,
                                    .stream = STREAM,
                                    .durable = durable,
                                    .filter = filter,
                                    .batch_max = 16,
                                    .wait_ms = 100,
                                    .ack_wait_ms = 30000,
                                    .max_attempts = ATTEMPTS,
                                    .nak_delay_ms = 100},
                           .apply = apply,
                           .ctx = NULL};
}

static void publish(const char *subject, const char *id, const void *data, size_t len,
                    const char *k1, const char *v1)
{
    const char *headers[] = {"Nats-Msg-Id", id, k1, v1, NULL};
    if (id == NULL)
        headers[0] = k1, headers[1] = v1, headers[2] = NULL;
    testenv_publish(js, subject, data, len, headers);
}

/* A one-value query with $1 = arg. */
static long count_sql(const char *sql, const char *arg)
{
    const char *params[] = {arg};
    PGresult *r = PQexecParams(pg, sql, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        fprintf(stderr, "%s: %s", sql, PQerrorMessage(pg));
        fail();
    }
    long v = atol(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

static long wait_sql(const char *sql, const char *arg, long want)
{
    long v = -1;
    for (int waited = 0; waited <= 20000 && (v = count_sql(sql, arg)) != want; waited += 50)
        usleep(50000);
    return v;
}

/* The dead letters of one raw event id, with bytea columns raw (binary
 * results): reason, subject, event_id, headers, then the raw ones. */
static PGresult *dead_letter_where(const char *where_event_id_raw, size_t len)
{
    const char *params[] = {where_event_id_raw};
    int lengths[] = {(int)len}, formats[] = {1};
    PGresult *r = PQexecParams(pg,
                               "SELECT reason, subject, event_id, headers, subject_raw,"
                               " event_id_raw, headers_raw, payload FROM dead_letters"
                               " WHERE event_id_raw = $1 ORDER BY id",
                               1, NULL, params, lengths, formats, 1);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    return r;
}

static void assert_bytes(PGresult *r, int col, const void *want, size_t len)
{
    assert_int_equal(PQgetlength(r, 0, col), (int)len);
    assert_memory_equal(PQgetvalue(r, 0, col), want, len);
}

static bool has_bytes(PGresult *r, int col, const char *want)
{
    return memmem(PQgetvalue(r, 0, col), (size_t)PQgetlength(r, 0, col), want, strlen(want)) !=
           NULL;
}

/* ---- attempts -------------------------------------------------------- */

static void test_attempts(void **st)
{
    (void)st;
    consumer_spec spec = spec_for("testdl-att", "testdl.att.>");
    natsSubscription *old = NULL;
    jsConsumerInfo *ci = NULL;
    consumer *c = NULL;
    char id[16], body[16];

    /* A durable from before MaxDeliver: the consumer must update it. */
    assert_int_equal(js_pull_subscribe(js, STREAM, spec.pull.durable, spec.pull.filter, 30000,
                                       &old),
                     OMS_OK);
    natsSubscription_Destroy(old);
    for (int i = 1; i <= 5; i++) {
        snprintf(id, sizeof id, "att-%d", i);
        int n = snprintf(body, sizeof body, "body %d", i);
        publish("testdl.att.x", id, body, (size_t)n, NULL, NULL);
    }
    assert_int_equal(consumer_start(&c, &spec, &env), OMS_OK);
    for (int i = 6; i <= 8; i++) {
        snprintf(id, sizeof id, "att-%d", i);
        int n = snprintf(body, sizeof body, "body %d", i);
        publish("testdl.att.y", id, body, (size_t)n, NULL, NULL);
    }
    assert_int_equal(wait_sql("SELECT count(*) FROM dead_letters WHERE event_id = $1", POISON, 1),
                     1);
    assert_int_equal(testenv_wait_pg(pg, "SELECT count(*) FROM applied WHERE event_id LIKE 'att-%'",
                                     7, 20000),
                     7);
    assert_int_equal(count_sql("SELECT count(*) FROM applied WHERE event_id = $1", POISON), 0);
    PGresult *r = dead_letter_where(POISON, strlen(POISON));
    assert_int_equal(PQntuples(r), 1);
    assert_string_equal(PQgetvalue(r, 0, 0),
                        "not applied after 3 deliveries: apply: transient failure");
    assert_bytes(r, 7, "body 3", 6);
    PQclear(r);

    /* Applied on deliveries 1, 2 and 3 exactly, and never delivered again. */
    sleep(1);
    pthread_mutex_lock(&state.mu);
    unsigned deliveries = state.poison_deliveries;
    pthread_mutex_unlock(&state.mu);
    assert_int_equal(deliveries, (1u << 1) | (1u << 2) | (1u << 3));
    assert_int_equal(js_GetConsumerInfo(&ci, js_ctx(js), STREAM, spec.pull.durable, NULL, NULL),
                     NATS_OK);
    assert_int_equal(ci->Config->MaxDeliver, ATTEMPTS + CONSUMER_SPARE_DELIVERIES);
    assert_int_equal(ci->NumAckPending, 0);
    assert_int_equal(ci->NumPending, 0);
    jsConsumerInfo_Destroy(ci);
    consumer_stop(c);
    assert_int_equal(count_sql("SELECT count(*) FROM dead_letters WHERE event_id = $1", POISON), 1);
}

/* Earlier deliveries that got no answer (a crashed process) use up the
 * attempts: the next one dead-letters the message without applying it. */
static void test_crash_loop_ends(void **st)
{
    (void)st;
    consumer_spec spec = spec_for("testdl-crash", "testdl.crash.>");
    natsSubscription *sub = NULL;
    consumer *c = NULL;

    publish("testdl.crash.x", "crash-1", "boom", 4, NULL, NULL);
    assert_int_equal(js_pull_subscribe_max(js, STREAM, spec.pull.durable, spec.pull.filter, 30000,
                                           ATTEMPTS + CONSUMER_SPARE_DELIVERIES, &sub),
                     OMS_OK);
    for (uint64_t delivered = 0; delivered < ATTEMPTS;) {
        natsMsgList list;
        assert_int_equal(js_fetch(sub, 1, 2000, &list), OMS_OK);
        assert_true(list.Count >= 1);
        for (int i = 0; i < list.Count; i++) {
            jsMsgMetaData *meta = NULL;
            assert_int_equal(natsMsg_GetMetaData(&meta, list.Msgs[i]), NATS_OK);
            delivered = meta->NumDelivered;
            jsMsgMetaData_Destroy(meta);
            assert_int_equal(natsMsg_Nak(list.Msgs[i], NULL), NATS_OK); /* as a crash would */
        }
        natsMsgList_Destroy(&list);
    }
    publish("testdl.crash.x", "crash-2", "fine", 4, NULL, NULL);
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    assert_int_equal(consumer_start(&c, &spec, &env), OMS_OK);
    assert_int_equal(wait_sql("SELECT count(*) FROM applied WHERE event_id = $1", "crash-2", 1), 1);
    assert_int_equal(wait_sql("SELECT count(*) FROM dead_letters WHERE event_id = $1", "crash-1",
                              1),
                     1);
    consumer_stop(c);
    PGresult *r = dead_letter_where("crash-1", 7);
    assert_string_equal(PQgetvalue(r, 0, 0),
                        "not applied after 3 deliveries: the last one ended without an answer"
                        " (the process stopped or crashed, or the ack wait expired)");
    PQclear(r);
    pthread_mutex_lock(&state.mu);
    assert_int_equal(state.crash_applied, 0);
    pthread_mutex_unlock(&state.mu);
}

/* ---- hostile messages ------------------------------------------------ */

typedef struct hostile {
    const char *id;  /* Nats-Msg-Id */
    const char *key; /* one more header, or NULL */
    const char *value;
    const char *reason;
} hostile;

static void test_hostile(void **st)
{
    (void)st;
    consumer_spec spec = spec_for("testdl-host", "testdl.host.>");
    consumer *c = NULL;
    char long_id[201], cut_id[128], shared_a[129], shared_b[129];
    static const unsigned char payload[] = {0x00, 0xff, 0xfe, 'x', 0x00, 0x80};

    memset(long_id, 'a', 200), long_id[200] = '\0';
    memset(cut_id, 'x', 126), cut_id[126] = '\xc3', cut_id[127] = '\0'; /* "é" cut in half */
    memset(shared_a, 's', 127), shared_a[127] = 'A', shared_a[128] = '\0';
    memcpy(shared_b, shared_a, 129), shared_b[127] = 'B';
    const hostile cases[] = {
        {"host-utf8", "Oms-Import-Id", "imp-\xff\xfe",
         "header Oms-Import-Id is not valid UTF-8 (byte 0xff at offset 4)"},
        {long_id, NULL, NULL, "header Nats-Msg-Id is 200 bytes, longer than the 127 allowed"},
        {"host-ctl", "Oms-Note",
         "a\x01"
         "b",
         "header Oms-Note contains control character U+0001 at offset 1"},
        {cut_id, NULL, NULL, "header Nats-Msg-Id is not valid UTF-8 (byte 0xc3 at offset 126)"},
        {shared_a, NULL, NULL, "header Nats-Msg-Id is 128 bytes, longer than the 127 allowed"},
        {shared_b, NULL, NULL, "header Nats-Msg-Id is 128 bytes, longer than the 127 allowed"},
    };
    size_t n = sizeof cases / sizeof cases[0];
    for (size_t i = 0; i < n; i++)
        publish("testdl.host.x", cases[i].id, payload, sizeof payload, cases[i].key,
                cases[i].value);
    publish("testdl.host.x", "host-ok", "fine", 4, "Oms-Customer", "Zo\xc3\xab");
    assert_int_equal(consumer_start(&c, &spec, &env), OMS_OK);
    assert_int_equal(wait_sql("SELECT count(*) FROM applied WHERE event_id = $1", "host-ok", 1), 1);
    assert_int_equal(testenv_wait_pg(pg,
                                     "SELECT count(*) FROM dead_letters"
                                     " WHERE subject_raw = 'testdl.host.x'",
                                     (long)n, 20000),
                     (long)n);
    consumer_stop(c);
    PGresult *r = NULL;
    for (size_t i = 0; i < n; i++) {
        r = dead_letter_where(cases[i].id, strlen(cases[i].id));
        assert_int_equal(PQntuples(r), 1);
        assert_string_equal(PQgetvalue(r, 0, 0), cases[i].reason);
        assert_string_equal(PQgetvalue(r, 0, 1), "testdl.host.x");
        assert_bytes(r, 4, "testdl.host.x", 13);
        assert_bytes(r, 5, cases[i].id, strlen(cases[i].id));
        assert_bytes(r, 7, payload, sizeof payload);
        char line[256];
        snprintf(line, sizeof line, "\r\nNats-Msg-Id: %s\r\n", cases[i].id);
        assert_true(has_bytes(r, 6, line));
        if (cases[i].key != NULL) {
            snprintf(line, sizeof line, "\r\n%s: %s\r\n", cases[i].key, cases[i].value);
            assert_true(has_bytes(r, 6, line));
        }
        PQclear(r);
    }
    /* Many long headers: the printable form is bounded, the raw one whole. */
    char big[1001];
    memset(big, 'v', 1000), big[1000] = '\0';
    const char *many[] = {"Nats-Msg-Id", "host-many", "X-1", big, "X-2",      big,    "X-3", big,
                          "X-4",         big,         "X-5", big, "Oms-Note", "\x7f", NULL};
    testenv_publish(js, "testdl.host.m", "m", 1, many);
    assert_int_equal(consumer_start(&c, &spec, &env), OMS_OK);
    assert_int_equal(wait_sql("SELECT count(*) FROM dead_letters WHERE event_id = $1", "host-many",
                              1),
                     1);
    consumer_stop(c);
    r = dead_letter_where("host-many", 9);
    assert_string_equal(PQgetvalue(r, 0, 0),
                        "header Oms-Note contains control character U+007F at offset 0");
    size_t text_len = strlen(PQgetvalue(r, 0, 3));
    assert_true(text_len < 4096 && text_len > 3000);
    assert_string_equal(PQgetvalue(r, 0, 3) + text_len - 4, "...\n");
    assert_true(PQgetlength(r, 0, 6) > 5 * 1000);
    for (int k = 1; k <= 5; k++) {
        char line[1100];
        snprintf(line, sizeof line, "\r\nX-%d: %s\r\n", k, big);
        assert_true(has_bytes(r, 6, line));
    }
    assert_true(has_bytes(r, 6, "\r\nOms-Note: \x7f\r\n"));
    PQclear(r);

    /* A subject is checked like a header. */
    publish("testdl.host.\x1b[31m", "host-subject", "s", 1, NULL, NULL);
    assert_int_equal(consumer_start(&c, &spec, &env), OMS_OK);
    assert_int_equal(wait_sql("SELECT count(*) FROM dead_letters WHERE event_id = $1",
                              "host-subject", 1),
                     1);
    consumer_stop(c);
    r = dead_letter_where("host-subject", 12);
    assert_string_equal(PQgetvalue(r, 0, 0),
                        "subject contains control character U+001B at offset 12");
    assert_string_equal(PQgetvalue(r, 0, 1), "testdl.host.\\x1b[31m");
    assert_bytes(r, 4, "testdl.host.\x1b[31m", 17);
    PQclear(r);

    /* The printable forms: escaped, never the raw bytes. */
    r = dead_letter_where(cut_id, strlen(cut_id));
    char want[160];
    snprintf(want, sizeof want, "%.126s\\xc3", cut_id);
    assert_string_equal(PQgetvalue(r, 0, 2), want);
    PQclear(r);
    r = dead_letter_where("host-utf8", 9);
    assert_non_null(strstr(PQgetvalue(r, 0, 3), "Oms-Import-Id: imp-\\xff\\xfe\n"));
    PQclear(r);
    r = dead_letter_where("host-ctl", 8);
    assert_non_null(strstr(PQgetvalue(r, 0, 3), "Oms-Note: a\\x01b\n"));
    PQclear(r);
}

/* ---- retry ----------------------------------------------------------- */

/* Replays the dead letter of event_id as service_dlq does: the raw columns. */
static oms_status replay(const consumer_spec *spec, const char *event_id, char *reason)
{
    PGresult *r = dead_letter_where(event_id, strlen(event_id));
    assert_int_equal(PQntuples(r), 1);
    char *subject = strndup(PQgetvalue(r, 0, 4), (size_t)PQgetlength(r, 0, 4));
    char *id = strndup(PQgetvalue(r, 0, 5), (size_t)PQgetlength(r, 0, 5));
    consumer_raw raw = {subject,
                        id,
                        PQgetvalue(r, 0, 6),
                        (size_t)PQgetlength(r, 0, 6),
                        PQgetvalue(r, 0, 7),
                        (size_t)PQgetlength(r, 0, 7)};
    exec_ok(pg, "BEGIN");
    oms_status s = consumer_replay(spec, &env, pg, &raw, reason);
    exec_ok(pg, s == OMS_OK ? "COMMIT" : "ROLLBACK");
    free(subject);
    free(id);
    PQclear(r);
    return s;
}

static void test_retry_replays_bytes(void **st)
{
    (void)st;
    consumer_spec spec = spec_for("testdl-rep", "testdl.rep.>");
    consumer *c = NULL;
    char reason[CONSUMER_REASON_LEN] = "";
    static const unsigned char payload[] = {0x00, 0x01, 0xff, 'p', 'a', 'y', 0x00};

    pthread_mutex_lock(&state.mu);
    snprintf(state.reject_id, sizeof state.reject_id, "rep-1");
    pthread_mutex_unlock(&state.mu);
    publish("testdl.rep.x", "rep-1", payload, sizeof payload, "Oms-Customer", "Zo\xc3\xab");
    publish("testdl.rep.x", "rep-bad", "x", 1, "Oms-Customer", "\xff");
    assert_int_equal(consumer_start(&c, &spec, &env), OMS_OK);
    assert_int_equal(testenv_wait_pg(pg,
                                     "SELECT count(*) FROM dead_letters"
                                     " WHERE event_id IN ('rep-1', 'rep-bad')",
                                     2, 20000),
                     2);
    consumer_stop(c);
    assert_int_equal(count_sql("SELECT count(*) FROM dead_letters WHERE reason = $1",
                               "test rejects rep-1"),
                     1);

    /* Its cause fixed, the retry applies exactly the bytes that came. */
    pthread_mutex_lock(&state.mu);
    state.reject_id[0] = '\0';
    state.last_len = 0;
    pthread_mutex_unlock(&state.mu);
    assert_int_equal(replay(&spec, "rep-1", reason), OMS_OK);
    pthread_mutex_lock(&state.mu);
    assert_string_equal(state.last_subject, "testdl.rep.x");
    assert_string_equal(state.last_event_id, "rep-1");
    assert_string_equal(state.last_customer, "Zo\xc3\xab");
    assert_int_equal(state.last_len, sizeof payload);
    assert_memory_equal(state.last_payload, payload, sizeof payload);
    pthread_mutex_unlock(&state.mu);
    assert_int_equal(count_sql("SELECT count(*) FROM applied WHERE event_id = $1"
                               " AND payload = '\\x0001ff70617900'",
                               "rep-1"),
                     1);

    /* A message refused at the boundary stays refused, for the same reason. */
    assert_int_equal(replay(&spec, "rep-bad", reason), OMS_EINVAL);
    assert_string_equal(reason, "header Oms-Customer is not valid UTF-8 (byte 0xff at offset 0)");
}

/* ---- migration ------------------------------------------------------- */

/* A schema from before the raw columns keeps its dead letters, now with raw
 * forms a retry can replay. */
static void test_migrates_in_place(void **st)
{
    (void)st;
    PGconn *old = NULL;
    consumer_spec spec = spec_for("testdl-old", "testdl.old.>");
    char reason[CONSUMER_REASON_LEN] = "";
    assert_int_equal(pg_connect(&old, testenv_require("OMS_PG_DSN"), SCHEMA "_old", "test"),
                     OMS_OK);
    exec_ok(old, "CREATE TABLE schema_migrations (version text PRIMARY KEY,"
                 " applied_at timestamptz NOT NULL DEFAULT now())");
    exec_ok(old, oms_runtime_migrations[0].sql);
    exec_ok(old, "INSERT INTO schema_migrations VALUES ('runtime/001_runtime.sql')");
    exec_ok(old, "INSERT INTO dead_letters (subject, event_id, headers, payload, reason)"
                 " VALUES ('testdl.old.x', 'old-1', 'Oms-Customer: Zoë\nNats-Msg-Id: old-1\n',"
                 " '\\x6f6c64', 'was refused')");
    assert_int_equal(pg_migrate(old, SCHEMA "_old", NULL), OMS_OK);
    PGresult *r = PQexec(old, "SELECT convert_from(subject_raw, 'UTF8'),"
                              " convert_from(event_id_raw, 'UTF8'),"
                              " convert_from(headers_raw, 'UTF8') FROM dead_letters");
    assert_int_equal(PQntuples(r), 1);
    assert_string_equal(PQgetvalue(r, 0, 0), "testdl.old.x");
    assert_string_equal(PQgetvalue(r, 0, 1), "old-1");
    assert_string_equal(PQgetvalue(r, 0, 2),
                        "NATS/1.0\r\nOms-Customer: Zoë\r\nNats-Msg-Id: old-1\r\n\r\n");
    PQclear(r);
    PQfinish(old);

    /* And replays through consumer_replay like a new one (from this schema). */
    exec_ok(pg, "INSERT INTO dead_letters (subject, event_id, headers, payload, reason,"
                " subject_raw, event_id_raw, headers_raw) SELECT subject, event_id, headers,"
                " payload, reason, subject_raw, event_id_raw, headers_raw"
                " FROM " SCHEMA "_old.dead_letters");
    assert_int_equal(replay(&spec, "old-1", reason), OMS_OK);
    pthread_mutex_lock(&state.mu);
    assert_string_equal(state.last_customer, "Zoë");
    assert_int_equal(state.last_len, 3);
    assert_memory_equal(state.last_payload, "old", 3);
    pthread_mutex_unlock(&state.mu);
}

/* ---- consumers that apply into Redis ---------------------------------- */

static oms_status rc_encode(void *ctx, oms_msg *m, redis_args *args)
{
    (void)ctx;
    return redis_args_add_str(args, m->event_id);
}

/* lib/rconsumer: the same boundary, and Redis refusing for "now" on every
 * attempt ends in a dead letter after exactly the attempts. */
static void test_redis_consumer(void **st)
{
    (void)st;
    static const char script[] = "if ARGV[1] == 'rc-busy' then"
                                 " return redis.error_reply('BUSY test is busy') end return 1";
    rconsumer_spec spec = {.pull = {.name = "testdl-rc",
                                    .stream = STREAM,
                                    .durable = "testdl-rc",
                                    .filter = "testdl.rc.>",
                                    .batch_max = 16,
                                    .wait_ms = 100,
                                    .ack_wait_ms = 30000,
                                    .max_attempts = ATTEMPTS,
                                    .nak_delay_ms = 100},
                           .script = script,
                           .encode = rc_encode};
    rconsumer_env renv = {testenv_require("OMS_REDIS_URL"), testenv_require("OMS_PG_DSN"), SCHEMA,
                          js, metr};
    rconsumer *c = NULL;

    publish("testdl.rc.x", "rc-busy", "b", 1, NULL, NULL);
    publish("testdl.rc.x", "rc-bad", "x", 1, "Oms-Note", "\x1b[0m");
    publish("testdl.rc.x", "rc-ok", "o", 1, NULL, NULL);
    assert_int_equal(rconsumer_start(&c, &spec, &renv), OMS_OK);
    assert_int_equal(wait_sql("SELECT count(*) FROM dead_letters WHERE event_id = $1", "rc-busy",
                              1),
                     1);
    assert_int_equal(count_sql("SELECT count(*) FROM dead_letters WHERE event_id = $1", "rc-bad"),
                     1);
    assert_int_equal(rconsumer_applied(c), 1);
    rconsumer_stop(c);
    PGresult *r = dead_letter_where("rc-busy", 7);
    assert_string_equal(PQgetvalue(r, 0, 0),
                        "not applied after 3 deliveries: Redis: BUSY test is busy");
    assert_bytes(r, 7, "b", 1);
    PQclear(r);
    r = dead_letter_where("rc-bad", 6);
    assert_string_equal(PQgetvalue(r, 0, 0),
                        "header Oms-Note contains control character U+001B at offset 0");
    assert_true(has_bytes(r, 6, "\r\nOms-Note: \x1b[0m\r\n"));
    PQclear(r);
}

/* ---- through a service's HTTP API ------------------------------------ */

/* ingest's own dead letters: the list shows the printable forms, a retry of
 * a message refused at the boundary is refused again for the same reason. */
static void test_service_lists_and_retries(void **st)
{
    (void)st;
    static const char *const schemas[] = {"ingest", NULL};
    static const char body_csv[] = "order_id,customer_id,sku,qty,unit_price\nSV-1,C1,SKU-A,1,1\n";
    const char *base = getenv("OMS_HTTP_PORT_BASE");
    int port = (base ? atoi(base) : 18081) + 20; /* clear of the services `make up` runs */
    char *body = NULL, path[64];

    testenv_reset(schemas);
    pid_t pid = testenv_service_start("ingest", port, NULL);
    testenv_publish_rows(js, "svc-bad", "imp-\xff", "2", NULL, body_csv, sizeof body_csv - 1);
    testenv_publish_rows(js, "svc-live", NULL, NULL, NULL, "SV-2,C2,SKU-A,1,2.50\n", 21);
    assert_int_equal(testenv_wait_pg(pg, "SELECT count(*) FROM ingest.orders", 1, 20000), 1);
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM ingest.dead_letters"), 1);
    assert_int_equal(testenv_http("GET", port, "/dead-letters", NULL, &body), 200);
    assert_non_null(strstr(body, "\"event_id\":\"svc-bad\""));
    assert_non_null(
        strstr(body,
               "\"reason\":\"header Oms-Import-Id is not valid UTF-8 (byte 0xff at offset 4)\""));
    assert_non_null(strstr(body, "Oms-Import-Id: imp-\\\\xff\\n"));
    assert_non_null(strstr(body, "\"payload_bytes\":58"));
    free(body);
    snprintf(path, sizeof path, "/dead-letters/%ld/retry",
             testenv_pg_long(pg, "SELECT id FROM ingest.dead_letters"));
    assert_int_equal(testenv_http("POST", port, path, testenv_require("OMS_ADMIN_TOKEN"), &body),
                     409);
    assert_non_null(strstr(body, "still rejected: header Oms-Import-Id is not valid UTF-8"
                                 " (byte 0xff at offset 4)"));
    free(body);
    assert_int_equal(testenv_pg_long(pg, "SELECT attempts FROM ingest.dead_letters"), 2);
    testenv_service_stop(pid);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attempts),
        cmocka_unit_test(test_crash_loop_ends),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_retry_replays_bytes),
        cmocka_unit_test(test_migrates_in_place),
        cmocka_unit_test(test_redis_consumer),
        cmocka_unit_test_teardown(test_service_lists_and_retries, testenv_cleanup),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
