/*
 * test_ingest_bounds.c - the worst ingest.rows messages a publisher may send
 * (a full payload of tiny rows, one huge field, 120 headers, row numbers at
 * the edge, an unclosed quote, NUL bytes) are each refused with the exact
 * reason (dead letter, or the row at fault rejected), a full batch of the
 * largest messages ingest accepts is stored, ingest's peak RSS (VmHWM) stays
 * under a stated bound far below its Kubernetes limit (256 MiB), and a good
 * import sent right after is applied in full.
 *
 * The bound is asserted on the ASan build that `make test` runs, started
 * with a small ASan quarantine (see ENV): freed memory is then reused as in
 * a release build, and what remains of ASan's cost is its shadow memory and
 * redzones (see PEAK_RSS_MAX_KB). OMS_BIN_DIR=build runs the same test on
 * the release build.
 */
#include "testenv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const SCHEMAS[] = {"ingest", NULL};

#define HEADER_LINE "order_id,customer_id,sku,qty,unit_price\n"
/* What a payload may be under NATS's 1 MiB max_payload with our headers. */
#define PAYLOAD_BYTES (1048576 - 4096)
#define WORST_MESSAGES 16 /* one full batch (INGEST_BATCH_MAX) */
#define ROWS_MAX 10000
/* Peak RSS the service must stay under while applying all of the above.
 * Measured: ASan build 28 MiB idle, 81-85 MiB peak; release build (this
 * test with OMS_BIN_DIR=build) 11-12 MiB idle, 41-45 MiB peak, as the
 * arithmetic of docs/architecture.md says. 128 MiB leaves the ASan build
 * half again as much, and is half the 256 MiB limit of k8s/40-ingest.yaml. */
#define PEAK_RSS_MAX_KB (128L * 1024)

/* ASan settings for the service: a 16 MiB quarantine instead of 256 MiB, so
 * freed memory is reused as in production, leaks still checked at exit. */
static const char *const ENV[] = {
    "OMS_INGEST_SEAL_MS=200",
    "ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:quarantine_size_mb=16:"
    "thread_local_quarantine_size_kb=256",
    NULL,
};

/* A port of this checkout's own range: base + 30 (no service uses it). */
static int service_port(void)
{
    const char *base = getenv("OMS_HTTP_PORT_BASE");
    return (base ? atoi(base) : 18081) + 30;
}

static void publish_with(js_conn *js, const char *msg_id, const char *import_id,
                         const char *first_row, const char *body, size_t len)
{
    testenv_publish_rows(js, msg_id, import_id, first_row, NULL, body, len);
}

/* PAYLOAD_BYTES of "a\n": 520,000 records of one field each. */
static char *tiny_rows(const char *header, size_t *len)
{
    char *p = malloc(PAYLOAD_BYTES);
    assert_non_null(p);
    size_t h = strlen(header);
    memcpy(p, header, h);
    for (size_t i = h; i + 1 < PAYLOAD_BYTES; i += 2)
        p[i] = 'a', p[i + 1] = '\n';
    *len = PAYLOAD_BYTES - (PAYLOAD_BYTES - h) % 2;
    return p;
}

/* prefix, then one field of 'x' filling the payload. */
static char *huge_field(const char *prefix, size_t *len)
{
    char *p = malloc(PAYLOAD_BYTES);
    assert_non_null(p);
    size_t n = strlen(prefix);
    memcpy(p, prefix, n);
    memset(p + n, 'x', PAYLOAD_BYTES - n);
    *len = PAYLOAD_BYTES;
    return p;
}

/* The largest message ingest accepts: ROWS_MAX rows filling the payload,
 * each with a long customer id and an empty qty, so every row is stored as
 * rejected with its reason. */
static char *worst_accepted(size_t *len)
{
    char *p = malloc(PAYLOAD_BYTES);
    assert_non_null(p);
    size_t n = strlen(HEADER_LINE);
    memcpy(p, HEADER_LINE, n);
    size_t per_row = (PAYLOAD_BYTES - n) / ROWS_MAX; /* bytes per row, '\n' included */
    for (int r = 0; r < ROWS_MAX; r++) {
        int w = snprintf(p + n, per_row, "W-%d,", r);
        size_t pad = per_row - (size_t)w - strlen(",SKU-A,,1.00\n");
        memset(p + n + w, 'c', pad);
        memcpy(p + n + w + pad, ",SKU-A,,1.00\n", strlen(",SKU-A,,1.00\n"));
        n += per_row;
    }
    *len = n;
    return p;
}

/* One live row with `count` headers besides Nats-Msg-Id, ~500 bytes each:
 * JetStream stores at most 64 KiB of headers, so 120 is about the most. */
static void publish_many_headers(js_conn *js, const char *msg_id, int count)
{
    static const char body[] = "H-1,C-1,SKU-A,1,1.00\n";
    char key[32], value[480];
    natsMsg *m = NULL;
    memset(value, 'v', sizeof value - 1);
    value[sizeof value - 1] = '\0';
    assert_int_equal(natsMsg_Create(&m, "ingest.rows", NULL, body, (int)strlen(body)), NATS_OK);
    assert_int_equal(natsMsgHeader_Set(m, "Nats-Msg-Id", msg_id), NATS_OK);
    for (int i = 0; i < count; i++) {
        snprintf(key, sizeof key, "X-Pad-%d", i);
        assert_int_equal(natsMsgHeader_Set(m, key, value), NATS_OK);
    }
    assert_int_equal(js_publish_sync(js, m), OMS_OK);
    natsMsg_Destroy(m);
}

/* The reason ingest dead-lettered message msg_id with ("" when none). */
static char *dead_letter_reason(PGconn *pg, const char *msg_id)
{
    const char *params[] = {msg_id};
    PGresult *res = PQexecParams(pg, "SELECT reason FROM ingest.dead_letters WHERE event_id = $1",
                                 1, NULL, params, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    char *reason = strdup(PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    return reason;
}

static void assert_dead_letter(PGconn *pg, const char *msg_id, const char *want)
{
    char *got = dead_letter_reason(pg, msg_id);
    if (strcmp(got, want) != 0)
        fail_msg("dead letter %s:\n got: %s\nwant: %s", msg_id, got, want);
    free(got);
}

/* VmHWM of pid in kB: the most memory it ever had resident. */
static long peak_rss_kb(pid_t pid)
{
    char path[64], line[256];
    long kb = -1;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

/* Publishes every hostile message while ingest is down, so it meets them
 * in full batches. */
static void publish_hostile(js_conn *js)
{
    size_t len;
    char *p = tiny_rows("", &len);
    publish_with(js, "tiny-live", NULL, NULL, p, len);
    free(p);
    p = tiny_rows(HEADER_LINE, &len);
    publish_with(js, "tiny-import", "imp-tiny", "2", p, len);
    free(p);
    p = huge_field("", &len);
    publish_with(js, "huge-field", NULL, NULL, p, len);
    free(p);
    p = huge_field(HEADER_LINE "B-1,\"", &len);
    publish_with(js, "huge-quoted", "imp-huge", "2", p, len);
    free(p);
    publish_many_headers(js, "many-headers", 120);
    static const char row[] = HEADER_LINE "F-1,C-1,SKU-A,1,1.00\n";
    publish_with(js, "first-row-max", "imp-first", "2147483647", row, strlen(row));
    publish_with(js, "first-row-zero", "imp-first", "0", row, strlen(row));
    static const char unclosed[] = HEADER_LINE "U-1,C-1,SKU-A,1,1.00\nU-2,\"C-2,SKU-A,1,1.00\n"
                                               "U-3,C-3,SKU-A,1,1.00\n";
    publish_with(js, "unclosed", "imp-unclosed", "2", unclosed, strlen(unclosed));
    /* A NUL is one rejected row, not a shorter value: the rows around it stay. */
    static const char nul[] = HEADER_LINE "N-1,C-1,SKU-A,1,1.00\nN-2\0EVIL,C-2,SKU-A,1,1.00\n"
                                          "N-3,C-3,SKU-A,1\0"
                                          "999,1.00\nN-4,C-4,SKU-A,2,1.00\n";
    publish_with(js, "nul", "imp-nul", "2", nul, sizeof nul - 1);
    p = worst_accepted(&len);
    for (int i = 0; i < WORST_MESSAGES; i++) {
        char id[32], first[16];
        snprintf(id, sizeof id, "worst-%d", i);
        snprintf(first, sizeof first, "%d", 2 + i * ROWS_MAX);
        publish_with(js, id, "imp-worst", first, p, len);
    }
    free(p);
}

static void assert_reasons(PGconn *pg)
{
    assert_dead_letter(pg, "tiny-live",
                       "message has more than 10000 rows (row 10001 is one too many): at most "
                       "10000 rows per message; nothing of it was imported");
    assert_dead_letter(pg, "tiny-import",
                       "message has more than 10000 rows (row 10002 is one too many): at most "
                       "10000 rows per message; nothing of it was imported");
    assert_dead_letter(pg, "many-headers",
                       "message has 121 headers: at most 32 per message; nothing of it was "
                       "imported");
    assert_dead_letter(pg, "first-row-max",
                       "header Oms-First-Row \"2147483647\" must be a row number from 1 to "
                       "1000000000");
    assert_dead_letter(pg, "first-row-zero",
                       "header Oms-First-Row \"0\" must be a row number from 1 to 1000000000");
}

/* A message whose CSV stops being readable (a field past 4 KiB, a quote
 * never closed) keeps the rows before the fault; the row at fault is
 * rejected naming its order when it could be read, nothing after it is. */
static void assert_unreadable_rows(PGconn *pg)
{
    static const char *const want[] = {
        "huge-field|live:|1||order_id|row 1: order_id is longer than 4096 bytes; the rest of "
        "the message was not read",
        "imp-huge|imp-huge|2|B-1|customer_id|row 2: customer_id is longer than 4096 bytes; the "
        "rest of the message was not read",
        "imp-unclosed|imp-unclosed|2|U-1||",
        "imp-unclosed|imp-unclosed|3|U-2|customer_id|row 3: customer_id starts a quoted field "
        "that is never properly closed; the rest of the message was not read",
    };
    PGresult *res = PQexec(pg, "SELECT CASE WHEN import_id = 'live:' THEN 'huge-field' ELSE "
                               "import_id END || '|' || import_id || '|' || row_no || '|' || "
                               "order_id || '|' || coalesce(field, '') || '|' || "
                               "coalesce(reason, '') FROM ingest.import_rows WHERE import_id IN "
                               "('live:', 'imp-huge', 'imp-unclosed') ORDER BY import_id <> "
                               "'live:', import_id, row_no");
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(res), 4);
    for (int i = 0; i < 4; i++)
        if (strcmp(PQgetvalue(res, i, 0), want[i]) != 0)
            fail_msg("row %d:\n got: %s\nwant: %s", i, PQgetvalue(res, i, 0), want[i]);
    PQclear(res);
}

/* The rows of the message with NUL bytes: two rejected naming the column
 * and the byte, the two around them valid and whole. */
static void assert_nul_rows(PGconn *pg)
{
    static const char *const want[] = {
        "2|N-1|1|",
        "3|||order_id|row 3: order_id contains a NUL byte at byte 4",
        "4|N-3||qty|row 4: qty contains a NUL byte at byte 2",
        "5|N-4|2|",
    };
    PGresult *res = PQexec(pg, "SELECT row_no || '|' || order_id || '|' || CASE WHEN reason IS "
                               "NULL THEN qty::text || '|' ELSE '|' || field || '|' || reason END"
                               " FROM ingest.import_rows WHERE import_id = 'imp-nul' ORDER BY "
                               "row_no");
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(res), 4);
    for (int i = 0; i < 4; i++)
        assert_string_equal(PQgetvalue(res, i, 0), want[i]);
    PQclear(res);
}

/* A good import after the storm: every row applied, both orders created. */
static void assert_good_import(js_conn *js, PGconn *pg)
{
    static const char csv[] = HEADER_LINE "G-1,C-1,SKU-A,1,2.50\nG-1,C-1,SKU-B,2,1.00\n"
                                          "G-2,C-2,SKU-A,3,2.50\n";
    testenv_publish_rows(js, "good:0", "imp-good", "2", NULL, csv, strlen(csv));
    testenv_publish_rows(js, "good:end", "imp-good", NULL, "3", "", 0);
    assert_int_equal(testenv_wait_pg(pg,
                                     "SELECT count(*) FROM ingest.imports WHERE import_id = "
                                     "'imp-good' AND sealed_at IS NOT NULL",
                                     1, 30000),
                     1);
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM ingest.orders WHERE import_id = "
                                         "'imp-good'"),
                     2);
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM ingest.import_rows WHERE "
                                         "import_id = 'imp-good' AND reason IS NULL"),
                     3);
    assert_int_equal(testenv_pg_long(pg, "SELECT total_cents FROM ingest.orders WHERE order_id "
                                         "= 'G-1'"),
                     450);
}

static void test_worst_messages_bounded(void **state)
{
    (void)state;
    int port = service_port();
    testenv_reset(SCHEMAS);
    pid_t pid = testenv_service_start("ingest", port, ENV); /* creates the streams */
    long idle_kb = peak_rss_kb(pid);
    testenv_service_stop(pid);
    js_conn *js = testenv_js();
    PGconn *pg = testenv_pg();
    publish_hostile(js);

    pid = testenv_service_start("ingest", port, ENV);
    assert_int_equal(testenv_wait_pg(pg, "SELECT count(*) FROM ingest.dead_letters", 5, 120000), 5);
    assert_int_equal(testenv_wait_pg(pg,
                                     "SELECT count(*) FROM ingest.import_rows WHERE import_id = "
                                     "'imp-worst'",
                                     WORST_MESSAGES * ROWS_MAX, 120000),
                     WORST_MESSAGES * ROWS_MAX);
    assert_reasons(pg);
    /* The accepted worst rows are stored as rejected, with their reason. */
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM ingest.import_rows WHERE "
                                         "import_id = 'imp-worst' AND reason = 'row ' || row_no "
                                         "|| ': qty \"\" must be an integer from 1 to 100000'"),
                     WORST_MESSAGES * ROWS_MAX);
    assert_int_equal(testenv_pg_long(pg, "SELECT max(row_no) FROM ingest.import_rows"),
                     1 + WORST_MESSAGES * ROWS_MAX);
    /* Nothing of a refused message was stored. */
    assert_int_equal(testenv_pg_long(pg, "SELECT count(*) FROM ingest.import_rows WHERE "
                                         "import_id NOT IN ('imp-worst', 'imp-nul', "
                                         "'imp-huge', 'imp-unclosed', 'live:')"),
                     0);
    assert_nul_rows(pg);
    assert_unreadable_rows(pg);
    long peak_kb = peak_rss_kb(pid);
    fprintf(stderr, "ingest peak RSS (VmHWM): %ld kB idle, %ld kB after the worst messages\n",
            idle_kb, peak_kb);
    assert_true(peak_kb > 0);
    if (peak_kb >= PEAK_RSS_MAX_KB)
        fail_msg("ingest peak RSS %ld kB, bound %ld kB", peak_kb, PEAK_RSS_MAX_KB);

    assert_good_import(js, pg);
    PQfinish(pg);
    js_conn_destroy(js);
    testenv_service_stop(pid);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_worst_messages_bounded, testenv_cleanup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
