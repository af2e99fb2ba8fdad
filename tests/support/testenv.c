/*
 * testenv.c - integration test helpers (see testenv.h).
 */
#include "testenv.h"

#include "oms_events.pb-c.h"
#include "outbox.h"
#include "pg.h"
#include <arpa/inet.h>

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

const char *testenv_require(const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0') {
        fprintf(stderr,
                "%s is not set: integration tests run under `make test`, "
                "which starts the local stack and exports .oms/env\n",
                name);
        fail();
    }
    return v;
}

js_conn *testenv_js(void)
{
    js_conn *js = NULL;
    assert_int_equal(js_connect(&js, testenv_require("OMS_NATS_URL"), getenv("OMS_NATS_USER"),
                                getenv("OMS_NATS_PASSWORD"), "test"),
                     OMS_OK);
    return js;
}

PGconn *testenv_pg(void)
{
    PGconn *c = PQconnectdb(testenv_require("OMS_PG_DSN"));
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "cannot connect to PostgreSQL: %s", PQerrorMessage(c));
        fail();
    }
    PGresult *r = PQexec(c, "SET client_min_messages = warning");
    PQclear(r);
    return c;
}

long testenv_pg_long(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        fprintf(stderr, "query failed: %s\n%s", sql, PQerrorMessage(c));
        PQclear(r);
        fail();
    }
    long v = PQgetisnull(r, 0, 0) ? 0 : atol(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

void testenv_reset(const char *const *schemas)
{
    static const char *const streams[] = {"INGEST",  "ORDERS",  "STOCK",  "PAYMENTS",
                                          "REFUNDS", "IMPORTS", "CATALOG"};
    js_conn *js = testenv_js();
    for (size_t i = 0; i < sizeof streams / sizeof streams[0]; i++)
        js_DeleteStream(js_ctx(js), streams[i], NULL, NULL); /* absent is fine */
    /* Each service creates only the streams it owns and waits for the others
     * (lib/js.c): created here, with the services' defaults, a test can run
     * one service alone. Its owner, when started, updates it to its own. */
    const char *replicas = getenv("OMS_STREAM_REPLICAS");
    oms_status made = OMS_ENATS;
    /* A cluster just started may still be electing its JetStream leader. */
    for (int i = 0; i < 100 && made != OMS_OK; i++)
        if ((made = js_ensure_streams(js, replicas ? atoi(replicas) : 1, 168 * 3600 * 1000LL,
                                      120000)) != OMS_OK)
            usleep(200000);
    assert_int_equal(made, OMS_OK);
    js_conn_destroy(js);
    PGconn *c = testenv_pg();
    for (const char *const *s = schemas; s && *s; s++) {
        char sql[128];
        snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE", *s);
        PGresult *r = PQexec(c, sql);
        assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
        PQclear(r);
    }
    PQfinish(c);
}

/* ---- processes ------------------------------------------------------- */

#define MAX_SERVICES 32

/* Services this test process started and has not reaped. */
static pid_t running[MAX_SERVICES];

static void track(pid_t pid, bool add)
{
    for (int i = 0; i < MAX_SERVICES; i++) {
        if (add && running[i] == 0) {
            running[i] = pid;
            return;
        }
        if (!add && running[i] == pid) {
            running[i] = 0;
            return;
        }
    }
}

int testenv_cleanup(void **state)
{
    (void)state;
    for (int i = 0; i < MAX_SERVICES; i++) {
        if (running[i] > 0) {
            kill(running[i], SIGKILL);
            waitpid(running[i], NULL, 0);
            running[i] = 0;
        }
    }
    return 0;
}

/* In a child about to exec service name: it connects to NATS as its own user
 * (deploy/nats/auth.conf), with the password .oms/env exports as
 * OMS_NATS_PASSWORD_<NAME>, and its own inbox prefix. */
static void service_nats_identity(const char *name)
{
    char var[64], prefix[64];
    size_t i = 0;
    int n = snprintf(var, sizeof var, "OMS_NATS_PASSWORD_");
    for (; name[i] != '\0' && (size_t)n + i + 1 < sizeof var; i++)
        var[(size_t)n + i] = (char)(name[i] >= 'a' && name[i] <= 'z' ? name[i] - 32 : name[i]);
    var[(size_t)n + i] = '\0';
    const char *password = getenv(var);
    if (password == NULL)
        return; /* a stack without authorization */
    snprintf(prefix, sizeof prefix, "_INBOX.%s", name);
    setenv("OMS_NATS_USER", name, 1);
    setenv("OMS_NATS_PASSWORD", password, 1);
    setenv("OMS_NATS_INBOX_PREFIX", prefix, 1);
}

void testenv_service_log(const char *name, int port, char *out, size_t len)
{
    const char *bin = getenv("OMS_BIN_DIR") ? getenv("OMS_BIN_DIR") : getenv("OMS_BUILD_DIR");
    snprintf(out, len, "%s/Testing/%s-%d.log", bin ? bin : ".", name, port);
}

static void exec_service(const char *name, int port, const char *const *extra_env)
{
    char path[1024], addr[64], log[1024];
    const char *bin = getenv("OMS_BIN_DIR") ? getenv("OMS_BIN_DIR") : getenv("OMS_BUILD_DIR");
    snprintf(path, sizeof path, "%s/services/%s/oms-%s", bin ? bin : ".", name, name);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    testenv_service_log(name, port, log, sizeof log);
    setenv("OMS_HTTP_ADDR", addr, 1);
    /* The health listener's default (port + 100) would land on other tests'
     * fixed ports; a test that wants it sets OMS_HEALTH_ADDR in extra_env. */
    setenv("OMS_HEALTH_ADDR", "off", 1);
    service_nats_identity(name);
    for (const char *const *e = extra_env; e && *e; e++)
        putenv((char *)*e);
    FILE *f = freopen(log, "a", stderr);
    (void)f;
    execl(path, path, (char *)NULL);
    fprintf(stderr, "cannot exec %s\n", path);
    _exit(127);
}

pid_t testenv_service_start(const char *name, int port, const char *const *extra_env)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        exec_service(name, port, extra_env);
    for (int i = 0; i < 600; i++) {
        if (testenv_http("GET", port, "/readyz", NULL, NULL) == 200) {
            track(pid, true);
            return pid;
        }
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            fprintf(stderr, "service %s exited during start-up (status %d)\n", name, status);
            fail();
        }
        usleep(50000);
    }
    fprintf(stderr, "service %s not ready on port %d after 30 s\n", name, port);
    kill(pid, SIGKILL);
    fail();
    return -1;
}

void testenv_service_stop(pid_t pid)
{
    int status = 0;
    kill(pid, SIGTERM);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    track(pid, false);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

void testenv_service_kill(pid_t pid)
{
    int status = 0;
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    track(pid, false);
}

/* ---- streams --------------------------------------------------------- */

void testenv_publish(js_conn *js, const char *subject, const void *data, size_t len,
                     const char *const *headers)
{
    natsMsg *m = NULL;
    assert_int_equal(natsMsg_Create(&m, subject, NULL, data, (int)len), NATS_OK);
    for (const char *const *h = headers; h && h[0] && h[1]; h += 2)
        natsMsgHeader_Set(m, h[0], h[1]);
    assert_int_equal(js_publish_sync(js, m), OMS_OK);
    natsMsg_Destroy(m);
}

void testenv_publish_rows(js_conn *js, const char *msg_id, const char *import_id,
                          const char *first_row, const char *end_rows, const void *body, size_t len)
{
    const char *names[] = {"Nats-Msg-Id", "Oms-Import-Id", "Oms-First-Row", "Oms-Import-End"};
    const char *values[] = {msg_id, import_id, first_row, end_rows};
    const char *headers[9] = {NULL};
    int h = 0;
    for (int i = 0; i < 4; i++) {
        if (values[i] != NULL) {
            headers[h++] = names[i];
            headers[h++] = values[i];
        }
    }
    testenv_publish(js, "ingest.rows", body, len, headers);
}

void testenv_publish_event(js_conn *js, const char *subject, const char *event_id,
                           const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(len ? len : 1);
    assert_non_null(buf);
    protobuf_c_message_pack(msg, buf);
    const char *headers[] = {"Nats-Msg-Id", event_id, "Oms-Type", msg->descriptor->name, NULL};
    testenv_publish(js, subject, buf, len, headers);
    free(buf);
}

long testenv_stream_count(js_conn *js, const char *stream)
{
    jsStreamInfo *si = NULL;
    if (js_GetStreamInfo(&si, js_ctx(js), stream, NULL, NULL) != NATS_OK)
        return -1;
    long n = (long)si->State.Msgs;
    jsStreamInfo_Destroy(si);
    return n;
}

/* The stream sequences a read has collected. A reader's consumer can be
 * sent a message again (an ack lost while a restarted node rejoins, or an
 * ack wait that ran out on a slow machine); that is the test's artefact,
 * not a second publish, which would carry a sequence of its own. */
typedef struct {
    unsigned char *bit;
    size_t len;
} seq_set;

static int seq_set_add(seq_set *s, uint64_t seq)
{
    size_t byte = (size_t)(seq / 8);
    if (byte >= s->len) {
        size_t len = s->len ? s->len : 1024;
        while (len <= byte)
            len *= 2;
        s->bit = realloc(s->bit, len);
        assert_non_null(s->bit);
        memset(s->bit + s->len, 0, len - s->len);
        s->len = len;
    }
    unsigned char mask = (unsigned char)(1u << (seq % 8));
    if (s->bit[byte] & mask)
        return 0;
    s->bit[byte] |= mask;
    return 1;
}

static int first_delivery(seq_set *seen, natsMsg *m)
{
    jsMsgMetaData *meta = NULL;
    assert_int_equal(natsMsg_GetMetaData(&meta, m), NATS_OK);
    int fresh = seq_set_add(seen, meta->Sequence.Stream);
    jsMsgMetaData_Destroy(meta);
    return fresh;
}

static void collect(testenv_msg **out, size_t *n, size_t *cap, natsMsg *m)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 256;
        *out = realloc(*out, *cap * sizeof **out);
        assert_non_null(*out);
    }
    testenv_msg *t = &(*out)[(*n)++];
    const char *id = NULL;
    natsMsgHeader_Get(m, "Nats-Msg-Id", &id);
    t->subject = strdup(natsMsg_GetSubject(m));
    t->msg_id = strdup(id ? id : "");
    t->len = (size_t)natsMsg_GetDataLength(m);
    t->data = malloc(t->len + 1);
    memcpy(t->data, natsMsg_GetData(m), t->len);
}

size_t testenv_stream_read(js_conn *js, const char *stream, const char *filter, testenv_msg **out)
{
    char durable[64];
    char uuid[37];
    natsSubscription *sub = NULL;
    size_t n = 0, cap = 0;
    seq_set seen = {0};
    oms_uuid4(uuid);
    snprintf(durable, sizeof durable, "test-%.8s", uuid);
    *out = NULL;
    assert_int_equal(js_pull_subscribe(js, stream, durable, filter, 30000, &sub), OMS_OK);
    /* What the new consumer has to deliver: an empty fetch alone does not
     * mean the end, since a stream whose leader was just elected (a node
     * restarted) can take longer than one fetch to start delivering. */
    jsConsumerInfo *ci = NULL;
    int64_t deadline = oms_mono_ms() + 30000;
    natsStatus ns;
    /* By name: nats.c refuses consumer info on a bound pull subscription. */
    while ((ns = js_GetConsumerInfo(&ci, js_ctx(js), stream, durable, NULL, NULL)) != NATS_OK &&
           oms_mono_ms() < deadline)
        oms_sleep_ms(200, NULL);
    assert_int_equal(ns, NATS_OK);
    size_t want = (size_t)ci->NumPending;
    jsConsumerInfo_Destroy(ci);
    for (;;) {
        natsMsgList list;
        assert_int_equal(js_fetch(sub, 1024, 500, &list), OMS_OK);
        int got = list.Count;
        for (int i = 0; i < got; i++) {
            if (first_delivery(&seen, list.Msgs[i]))
                collect(out, &n, &cap, list.Msgs[i]);
            natsMsg_Ack(list.Msgs[i], NULL);
        }
        natsMsgList_Destroy(&list);
        if (got == 0 && (n >= want || oms_mono_ms() >= deadline))
            break;
    }
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    js_DeleteConsumer(js_ctx(js), stream, durable, NULL, NULL);
    free(seen.bit);
    return n;
}

void testenv_msgs_free(testenv_msg *msgs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(msgs[i].subject);
        free(msgs[i].msg_id);
        free(msgs[i].data);
    }
    free(msgs);
}

bool testenv_wait(bool (*cond)(void *arg), void *arg, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 50) {
        if (cond(arg))
            return true;
        usleep(50000);
    }
    return false;
}

long testenv_wait_pg(PGconn *c, const char *sql, long want, int timeout_ms)
{
    long v = -1;
    for (int waited = 0; waited <= timeout_ms; waited += 50) {
        if ((v = testenv_pg_long(c, sql)) == want)
            return v;
        usleep(50000);
    }
    return v;
}

/* ---- HTTP ------------------------------------------------------------ */

typedef struct body_buf {
    char *data;
    size_t len;
} body_buf;

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    body_buf *b = arg;
    char *d = realloc(b->data, b->len + size * n + 1);
    if (d == NULL)
        return 0;
    memcpy(d + b->len, p, size * n);
    b->len += size * n;
    d[b->len] = '\0';
    b->data = d;
    return size * n;
}

long testenv_http(const char *method, int port, const char *path, const char *token, char **body)
{
    return testenv_http_post_json(method, port, path, token, "", body);
}

long testenv_http_post_json(const char *method, int port, const char *path, const char *token,
                            const char *request_body, char **body)
{
    char url[512], auth[512];
    body_buf b = {NULL, 0};
    struct curl_slist *headers = NULL;
    long status = 0;
    CURL *curl = curl_easy_init();
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(curl, CURLOPT_POST, 1L);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request_body);
        if (*request_body != '\0')
            headers = curl_slist_append(headers, "Content-Type: application/json");
    }
    if (token != NULL) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        headers = curl_slist_append(headers, auth);
    }
    if (headers != NULL)
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    if (curl_easy_perform(curl) == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    if (body != NULL)
        *body = b.data ? b.data : strdup("");
    else
        free(b.data);
    return status;
}

/* ---- peers ------------------------------------------------------------ */

static bool port_open(int port)
{
    struct sockaddr_in addr;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

pid_t testenv_peer_start(const char *path, const char *name, int port, const char *const *args)
{
    char log[1024];
    const char *argv[16] = {path};
    size_t n = 1;
    const char *bin = getenv("OMS_BIN_DIR") ? getenv("OMS_BIN_DIR") : getenv("OMS_BUILD_DIR");
    snprintf(log, sizeof log, "%s/Testing/%s-%d.log", bin ? bin : ".", name, port);
    for (const char *const *a = args; a && *a && n < 15; a++)
        argv[n++] = *a;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        FILE *f = freopen(log, "a", stderr);
        (void)f;
        execv(path, (char *const *)argv);
        fprintf(stderr, "cannot exec %s\n", path);
        _exit(127);
    }
    for (int i = 0; i < 200; i++) {
        if (port_open(port))
            return pid;
        assert_int_equal(waitpid(pid, NULL, WNOHANG), 0);
        usleep(50000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    fail_msg("%s not listening on port %d after 10 s", name, port);
    return -1;
}

void testenv_peer_stop(pid_t *pid)
{
    int status = 0;
    kill(*pid, SIGTERM);
    assert_int_equal(waitpid(*pid, &status, 0), *pid);
    *pid = 0;
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

void testenv_peer_kill(pid_t *pid)
{
    if (*pid <= 0)
        return;
    kill(*pid, SIGKILL);
    waitpid(*pid, NULL, 0);
    *pid = 0;
}

json_t *testenv_http_json(int port, const char *path)
{
    char *body = NULL;
    assert_int_equal(testenv_http("GET", port, path, NULL, &body), 200);
    json_t *json = json_loads(body, 0, NULL);
    if (json == NULL)
        fprintf(stderr, "GET %s on port %d: not JSON: %s\n", path, port, body);
    free(body);
    assert_non_null(json);
    return json;
}

double testenv_metric(int port, const char *series)
{
    char *body = NULL, *save = NULL;
    double v = -1;
    size_t len = strlen(series);
    assert_int_equal(testenv_http("GET", port, "/metrics", NULL, &body), 200);
    for (char *line = strtok_r(body, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save))
        if (strncmp(line, series, len) == 0 && line[len] == ' ')
            v = atof(line + len + 1);
    free(body);
    return v;
}

/* ---- orders end to end ---------------------------------------------- */

void testenv_load_product(js_conn *js, const char *sku, long on_hand)
{
    Oms__V1__ProductUpserted ev = OMS__V1__PRODUCT_UPSERTED__INIT;
    Oms__V1__EventMeta meta;
    char id[37];
    outbox_meta_init(&meta, id, "test", sku, "");
    ev.meta = &meta;
    ev.sku = (char *)sku;
    ev.name = (char *)sku;
    ev.on_hand = on_hand;
    ev.price_cents = 100;
    testenv_publish_event(js, "catalog.product", id, &ev.base);
}

void testenv_import_rows(js_conn *js, const char *import_id, char **rows, int n, int chunk_rows)
{
    char id[160], number[16];
    int chunk = 0;
    for (int first = 0; first < n; first += chunk_rows, chunk++) {
        size_t cap = 64, len = 0;
        for (int i = first; i < n && i < first + chunk_rows; i++)
            cap += strlen(rows[i]) + 1;
        char *body = malloc(cap);
        assert_non_null(body);
        for (int i = first; i < n && i < first + chunk_rows; i++)
            len += (size_t)snprintf(body + len, cap - len, "%s\n", rows[i]);
        snprintf(id, sizeof id, "%s:%d", import_id, chunk);
        snprintf(number, sizeof number, "%d", first + 1);
        testenv_publish_rows(js, id, import_id, number, NULL, body, len);
        free(body);
    }
    snprintf(id, sizeof id, "%s:end", import_id);
    snprintf(number, sizeof number, "%d", n);
    testenv_publish_rows(js, id, import_id, NULL, number, "", 0);
}

/* The order id of a terminal event, or NULL (caller frees *unpacked). */
static const char *terminal_order_id(const testenv_msg *m, ProtobufCMessage **unpacked)
{
    *unpacked = NULL;
    if (strcmp(m->subject, "order.paid") == 0) {
        Oms__V1__OrderPaid *p = oms__v1__order_paid__unpack(NULL, m->len, m->data);
        assert_non_null(p);
        *unpacked = &p->base;
        return p->order_id;
    }
    if (strcmp(m->subject, "order.failed") == 0) {
        Oms__V1__OrderFailed *f = oms__v1__order_failed__unpack(NULL, m->len, m->data);
        assert_non_null(f);
        *unpacked = &f->base;
        return f->order_id;
    }
    return NULL;
}

void testenv_terminal_events(js_conn *js, PGconn *pg, long *paid, long *failed)
{
    testenv_msg *msgs = NULL;
    size_t n = testenv_stream_read(js, "ORDERS", "order.*", &msgs);
    PGresult *r = PQexec(pg, "DROP TABLE IF EXISTS seen; CREATE TEMP TABLE seen (order_id text)");
    PQclear(r);
    *paid = *failed = 0;
    for (size_t i = 0; i < n; i++) {
        ProtobufCMessage *ev = NULL;
        const char *order_id = terminal_order_id(&msgs[i], &ev);
        if (order_id == NULL)
            continue;
        if (strcmp(msgs[i].subject, "order.paid") == 0)
            (*paid)++;
        else
            (*failed)++;
        const char *params[] = {order_id};
        r = PQexecParams(pg, "INSERT INTO seen VALUES ($1)", 1, NULL, params, NULL, NULL, 0);
        PQclear(r);
        protobuf_c_message_free_unpacked(ev, NULL);
    }
    assert_int_equal(testenv_pg_long(pg, "SELECT count(DISTINCT order_id) FROM seen"),
                     *paid + *failed);
    testenv_msgs_free(msgs, n);
}

int testenv_omsctl(const char *prefix, const char *args, char **out)
{
    const char *bin = getenv("OMS_BIN_DIR") ? getenv("OMS_BIN_DIR") : getenv("OMS_BUILD_DIR");
    size_t len = 0, cap = 1 << 16, n;
    char cmd[4096];
    char *buf = malloc(cap);
    assert_non_null(buf);
    snprintf(cmd, sizeof cmd, "%s '%s/cli/omsctl' %s", prefix ? prefix : "", bin ? bin : ".", args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    while (len < cap - 1 && (n = fread(buf + len, 1, cap - 1 - len, p)) > 0)
        len += n;
    buf[len] = '\0';
    int status = pclose(p);
    int rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    fprintf(stderr, "omsctl %s -> %d\n%s", args, rc, buf);
    *out = buf;
    return rc;
}

void testenv_expect_omsctl(const char *args, int want_rc, const char *want_text)
{
    char with_stderr[2048], *out = NULL;
    snprintf(with_stderr, sizeof with_stderr, "%s 2>&1", args);
    int rc = testenv_omsctl(NULL, with_stderr, &out);
    if (rc != want_rc || strstr(out, want_text) == NULL)
        fail_msg("omsctl %s exited %d printing %s; wanted %d and %s", args, rc, out, want_rc,
                 want_text);
    free(out);
}

int testenv_connect_raw(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

bool testenv_closed_by_server(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    char byte;
    if (poll(&pfd, 1, 0) <= 0)
        return false;
    ssize_t n = recv(fd, &byte, 1, MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

/* ---- runtime tests --------------------------------------------------- */

void testenv_stream_create(js_conn *js, const char *stream, const char *subjects,
                           int64_t dup_window_ms)
{
    jsStreamConfig cfg;
    const char *subject_list[] = {subjects};
    jsErrCode code = 0;
    js_DeleteStream(js_ctx(js), stream, NULL, NULL); /* absent is fine */
    jsStreamConfig_Init(&cfg);
    cfg.Name = stream;
    cfg.Subjects = subject_list;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_MemoryStorage;
    cfg.Duplicates = dup_window_ms * 1000000; /* nanoseconds */
    natsStatus s = js_AddStream(NULL, js_ctx(js), &cfg, NULL, &code);
    if (s != NATS_OK) {
        fprintf(stderr, "cannot create stream %s: %s (JetStream error %d)\n", stream,
                natsStatus_GetText(s), (int)code);
        fail();
    }
}

PGconn *testenv_pg_schema(const char *schema)
{
    PGconn *admin = testenv_pg(), *c = NULL;
    char sql[128];
    snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE", schema);
    PGresult *r = PQexec(admin, sql);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    PQfinish(admin);
    assert_int_equal(pg_connect(&c, testenv_require("OMS_PG_DSN"), schema, "test"), OMS_OK);
    assert_int_equal(pg_migrate(c, schema, NULL), OMS_OK);
    r = PQexec(c, "SET client_min_messages = warning");
    PQclear(r);
    return c;
}

void testenv_durable_pending(js_conn *js, const char *stream, const char *durable,
                             long *ack_pending, long *pending)
{
    jsConsumerInfo *ci = NULL;
    jsErrCode code = 0;
    natsStatus s = js_GetConsumerInfo(&ci, js_ctx(js), stream, durable, NULL, &code);
    if (s != NATS_OK) {
        fprintf(stderr, "consumer info %s/%s: %s (JetStream error %d)\n", stream, durable,
                natsStatus_GetText(s), (int)code);
        fail();
    }
    *ack_pending = (long)ci->NumAckPending;
    *pending = (long)ci->NumPending;
    jsConsumerInfo_Destroy(ci);
}

bool testenv_durable_settled(js_conn *js, const char *stream, const char *durable, int timeout_ms)
{
    long ack_pending = -1, pending = -1;
    for (int waited = 0;; waited += 50) {
        testenv_durable_pending(js, stream, durable, &ack_pending, &pending);
        if (ack_pending == 0 && pending == 0)
            return true;
        if (waited >= timeout_ms)
            return false;
        usleep(50000);
    }
}

static bool is_durable_of(const char *name, const char *service)
{
    size_t n = strlen(service);
    return strncmp(name, service, n) == 0 && (name[n] == '\0' || name[n] == '-');
}

/* Whether every durable of service on stream is settled now. */
static bool stream_settled(js_conn *js, const char *stream, const char *service)
{
    jsConsumerNamesList *names = NULL;
    jsErrCode code = 0;
    natsStatus s = js_ConsumerNames(&names, js_ctx(js), stream, NULL, &code);
    if (s == NATS_NOT_FOUND)
        return true; /* a stream without consumers */
    if (s != NATS_OK) {
        fprintf(stderr, "consumer names of %s: %s (JetStream error %d)\n", stream,
                natsStatus_GetText(s), (int)code);
        fail();
    }
    bool settled = true;
    for (int i = 0; settled && i < names->Count; i++) {
        long ack_pending = 0, pending = 0;
        if (!is_durable_of(names->List[i], service))
            continue;
        testenv_durable_pending(js, stream, names->List[i], &ack_pending, &pending);
        settled = ack_pending == 0 && pending == 0;
    }
    jsConsumerNamesList_Destroy(names);
    return settled;
}

bool testenv_service_settled(js_conn *js, const char *service, int timeout_ms)
{
    for (int waited = 0;; waited += 50) {
        jsStreamNamesList *streams = NULL;
        jsErrCode code = 0;
        natsStatus s = js_StreamNames(&streams, js_ctx(js), NULL, &code);
        if (s != NATS_OK) {
            fprintf(stderr, "stream names: %s (JetStream error %d)\n", natsStatus_GetText(s),
                    (int)code);
            fail();
        }
        bool settled = true;
        for (int i = 0; settled && i < streams->Count; i++)
            settled = stream_settled(js, streams->List[i], service);
        jsStreamNamesList_Destroy(streams);
        if (settled)
            return true;
        if (waited >= timeout_ms)
            return false;
        usleep(50000);
    }
}

static int stderr_saved = -1;
static FILE *stderr_capture;

void testenv_stderr_begin(void)
{
    fflush(stderr);
    assert_int_equal(stderr_saved, -1);
    assert_non_null(stderr_capture = tmpfile());
    assert_true((stderr_saved = dup(STDERR_FILENO)) >= 0);
    assert_true(dup2(fileno(stderr_capture), STDERR_FILENO) >= 0);
}

char *testenv_stderr_end(void)
{
    fflush(stderr);
    assert_true(dup2(stderr_saved, STDERR_FILENO) >= 0);
    close(stderr_saved);
    stderr_saved = -1;
    /* The logs went through the descriptor, not the FILE: read it as such. */
    int fd = fileno(stderr_capture);
    off_t len = lseek(fd, 0, SEEK_END);
    assert_true(len >= 0);
    char *text = calloc(1, (size_t)len + 1);
    assert_non_null(text);
    ssize_t got = pread(fd, text, (size_t)len, 0);
    text[got > 0 ? got : 0] = '\0';
    fclose(stderr_capture);
    stderr_capture = NULL;
    /* Shown again, so a failing test's log still has it. */
    fputs(text, stderr);
    return text;
}
