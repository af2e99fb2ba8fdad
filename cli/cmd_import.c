/*
 * cmd_import.c - `omsctl import FILE`: check the file, listen for the
 * import's events, send it, then wait for ingest's verdict and summarise.
 *
 * Listening starts before the first chunk is published, so no event of the
 * import can slip by. The numbers of the summary are ingest's own
 * (import.completed); the events counted on the way only feed the progress
 * line and the first rejection reasons.
 */
#include "import.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CMD "import"
#define DEFAULT_CHUNK_ROWS 1000
#define MAX_CHUNK_ROWS 100000
#define DEFAULT_TIMEOUT_S 600
#define ACK_WAIT_MS 60000
/* After import.completed, how long the order and rejection events published
 * just before it (on other subscriptions) may take to arrive. */
#define GRACE_MS 2000
#define POLL_MS 50
#define TTY_REDRAW_MS 100
#define PLAIN_REDRAW_MS 1000
#define BAR_WIDTH 30

typedef struct import_args {
    const char *path;
    long long chunk_rows;
    long long timeout_s;
    bool json;
} import_args;

/* The progress line on stderr. */
typedef struct progress {
    bool tty;
    int64_t total_rows;
    int64_t rows_sent;
    int64_t last_draw_ms;
    bool on_screen;     /* a bar is drawn and must be cleared before other output */
    import_watch *watch;
} progress;

static void print_help(FILE *out)
{
    fputs("usage: omsctl import FILE [--chunk-rows N] [--json] [--timeout S]\n"
          "\n"
          "Sends an order CSV to ingest (subject ingest.rows) and waits until ingest\n"
          "reports the import complete, then prints a summary: rows, valid and rejected\n"
          "rows (with the first reasons), orders created, missing rows, time taken.\n"
          "\n"
          "The first line must be a header. Required columns: order_id, customer_id,\n"
          "sku, qty, and unit_price or unit_price_cents; optional: placed_at, currency,\n"
          "customer_email, customer_name, product_name. The file is refused, and\n"
          "nothing sent, when a required column is missing. Rows with bad values are\n"
          "reported by ingest as rejected: that is data, not a failure of the command.\n"
          "\n"
          "  --chunk-rows N   rows per message (default 1000, at most 100000)\n"
          "  --timeout S      seconds to wait for the result once the file is sent\n"
          "                   (default 600)\n"
          "  --json           print the summary as one JSON object on stdout, also\n"
          "                   when the import did not complete (\"completed\": false)\n"
          "  -h, --help       this help\n"
          "\n"
          "Exit status: 0 the import completed (even with rejected rows), 1 it could\n"
          "not be sent or did not complete in time, 2 usage error.\n",
          out);
}

static int parse_args(int argc, char **argv, import_args *a)
{
    static const struct option opts[] = {
        {"chunk-rows", required_argument, NULL, 'c'},
        {"timeout", required_argument, NULL, 't'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    *a = (import_args){.chunk_rows = DEFAULT_CHUNK_ROWS, .timeout_s = DEFAULT_TIMEOUT_S};
    while ((c = cli_getopt(argc, argv, "h", opts, CMD)) != -1) {
        if (c == 'h') {
            print_help(stdout);
            return -1;
        }
        if (c == 'j')
            a->json = true;
        else if (c == 'c' &&
                 cli_parse_int(CMD, "--chunk-rows", optarg, 1, MAX_CHUNK_ROWS, &a->chunk_rows))
            return CLI_EXIT_USAGE;
        else if (c == 't' &&
                 cli_parse_int(CMD, "--timeout", optarg, 1, 7 * 86400, &a->timeout_s))
            return CLI_EXIT_USAGE;
        else if (c == '?')
            return CLI_EXIT_USAGE;
    }
    if (optind >= argc)
        return cli_usage_error(CMD, "which file? give the CSV to import");
    if (optind + 1 < argc)
        return cli_usage_error(CMD, "one FILE at a time, got \"%s\" too", argv[optind + 1]);
    a->path = argv[optind];
    return CLI_EXIT_OK;
}

/* ---- progress ---------------------------------------------------------- */

static void progress_draw(progress *p, bool sent_all)
{
    import_outcome o;
    import_watch_snapshot(p->watch, &o);
    if (!p->tty) {
        fprintf(stderr, "sent %lld/%lld rows, %lld orders created\n", (long long)p->rows_sent,
                (long long)p->total_rows, (long long)o.orders_seen);
        return;
    }
    char bar[BAR_WIDTH + 1];
    int filled = p->total_rows > 0 ? (int)(p->rows_sent * BAR_WIDTH / p->total_rows) : 0;
    memset(bar, '#', (size_t)filled);
    memset(bar + filled, '.', (size_t)(BAR_WIDTH - filled));
    bar[BAR_WIDTH] = '\0';
    /* \r and erase-to-end-of-line redraw the same line in place. */
    fprintf(stderr, "\r[%s] %lld/%lld rows sent, %lld orders created%s\033[K", bar,
            (long long)p->rows_sent, (long long)p->total_rows, (long long)o.orders_seen,
            sent_all ? ", waiting for ingest" : "");
    p->on_screen = true;
}

/* Redraws at most 10 times a second on a terminal, once a second otherwise. */
static void progress_update(progress *p, bool sent_all)
{
    int64_t now = oms_mono_ms();
    if (now - p->last_draw_ms < (p->tty ? TTY_REDRAW_MS : PLAIN_REDRAW_MS))
        return;
    p->last_draw_ms = now;
    progress_draw(p, sent_all);
}

static void progress_clear(progress *p)
{
    if (p->on_screen)
        fputs("\r\033[K", stderr);
    p->on_screen = false;
}

static void on_tick(void *ctx, int64_t rows_sent)
{
    progress *p = ctx;
    p->rows_sent = rows_sent;
    progress_update(p, false);
}

/* ---- waiting and the summary ------------------------------------------ */

/* Polls until import.completed arrived and the events sent before it are in
 * (or GRACE_MS passed), the timeout passed, or the user interrupted. Returns
 * whether the import completed; *o holds what was seen either way. */
static bool wait_completed(progress *p, int64_t timeout_ms, import_outcome *o)
{
    int64_t deadline = oms_mono_ms() + timeout_ms, grace_end = 0;
    for (;;) {
        int64_t now = oms_mono_ms();
        import_watch_snapshot(p->watch, o);
        if (o->completed) {
            if (grace_end == 0)
                grace_end = now + GRACE_MS;
            if ((o->orders_seen >= o->orders && o->rejections_seen >= o->rejected_rows) ||
                now >= grace_end)
                return true;
        } else if (now >= deadline || cli_interrupted) {
            return false;
        }
        progress_update(p, true);
        oms_sleep_ms(POLL_MS, NULL);
    }
}

static json_t *rejections_json(const import_outcome *o)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < o->n_rejections; i++) {
        const import_rejection *r = &o->rejections[i];
        json_array_append_new(arr, json_pack("{s:i,s:s,s:s,s:s}", "row", (int)r->row, "order_id",
                                             r->order_id, "field", r->field, "reason",
                                             r->reason));
    }
    return arr;
}

static oms_status print_summary_json(const char *import_id, const import_outcome *o,
                                     int64_t rows_sent, double elapsed_s)
{
    json_t *out = json_pack("{s:s,s:I,s:o,s:I,s:I,s:o,s:b,s:b,s:o,s:f}", "import_id", import_id,
                            "rows", (json_int_t)(o->completed ? o->rows : rows_sent),
                            "valid_rows", o->completed ? json_integer(o->valid_rows) : json_null(),
                            "rejected_rows",
                            (json_int_t)(o->completed ? o->rejected_rows : o->rejections_seen),
                            "orders", (json_int_t)(o->completed ? o->orders : o->orders_seen),
                            "missing_rows",
                            o->completed ? json_integer(o->missing_rows) : json_null(),
                            "timed_out", o->completed ? o->timed_out : true, "completed",
                            o->completed, "rejections", rejections_json(o), "elapsed_s",
                            elapsed_s);
    return cli_print_json(out);
}

static void print_summary_text(const char *import_id, const import_outcome *o,
                               double elapsed_s)
{
    printf("import %s completed in %.1f s (%.0f rows/s)\n", import_id, elapsed_s,
           elapsed_s > 0 ? o->rows / elapsed_s : 0.0);
    printf("  rows            %d\n", o->rows);
    printf("  valid rows      %d\n", o->valid_rows);
    printf("  rejected rows   %d\n", o->rejected_rows);
    for (size_t i = 0; i < o->n_rejections; i++)
        printf("    %s\n", o->rejections[i].reason);
    if (o->rejected_rows > (int32_t)o->n_rejections)
        printf("    ... and %lld more\n", (long long)o->rejected_rows - (long long)o->n_rejections);
    printf("  orders created  %d\n", o->orders);
    if (o->missing_rows > 0 || o->timed_out)
        printf("  missing rows    %d (announced but never received: ingest sealed the import "
               "when it timed out)\n",
               o->missing_rows);
}

static void print_not_completed(const char *import_id, int64_t rows_sent, long long timeout_s)
{
    if (cli_interrupted)
        cli_error("stopped waiting: import %s was sent (%lld rows) but has not completed yet",
                  import_id, (long long)rows_sent);
    else
        cli_error("import %s was sent (%lld rows) but did not complete within %lld s", import_id,
                  (long long)rows_sent, timeout_s);
    fprintf(stderr,
            "ingest may still be working on it: `omsctl events tail import.completed` shows "
            "it when it completes;\n`omsctl status` shows what INGEST still holds, and "
            "`omsctl dlq list --service ingest` any chunk ingest could not apply\n");
}

/* ---- the command ------------------------------------------------------- */

/* Rows wait in INGEST until ingest reads them: without a consumer the
 * import can only time out, which the user should know before waiting. */
static void warn_without_consumer(js_conn *c)
{
    jsStreamInfo *si = NULL;
    jsErrCode code = 0;
    if (js_GetStreamInfo(&si, js_ctx(c), "INGEST", NULL, &code) == NATS_OK &&
        si->State.Consumers == 0)
        cli_error("warning: nothing consumes stream INGEST: is the ingest service running? "
                  "(`omsctl status`); the rows will wait in the stream until it starts");
    jsStreamInfo_Destroy(si);
}

/* Sends the file, waits for the verdict and prints it; returns the exit code. */
static int run_import(js_conn *c, const import_args *a, const char *import_id,
                      int64_t total_rows)
{
    import_watch *w = NULL;
    progress p = {.tty = isatty(STDERR_FILENO) == 1, .total_rows = total_rows};
    import_outcome o;
    int64_t rows_sent = 0, start_ms = oms_mono_ms();
    int rc = CLI_EXIT_FAIL;

    if (cli_require_stream(c, "INGEST") != OMS_OK ||
        import_watch_start(&w, c, import_id) != OMS_OK)
        goto out;
    warn_without_consumer(c);
    p.watch = w;
    /* The plain line's first print comes after a second, not at once. */
    p.last_draw_ms = p.tty ? 0 : start_ms;
    import_send_opts so = {.path = a->path, .import_id = import_id, .chunk_rows = a->chunk_rows,
                           .ack_wait_ms = ACK_WAIT_MS, .tick = on_tick, .tick_ctx = &p};
    oms_status s = import_send(c, &so, &rows_sent);
    p.rows_sent = rows_sent;
    if (s != OMS_OK) {
        progress_clear(&p);
        goto out;
    }
    bool completed = wait_completed(&p, a->timeout_s * 1000, &o);
    progress_clear(&p);
    double elapsed_s = (double)(oms_mono_ms() - start_ms) / 1000.0;
    rc = completed ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    if (!completed)
        print_not_completed(import_id, rows_sent, a->timeout_s);
    /* With --json the summary is printed even when incomplete: scripts
     * read "completed" instead of parsing stderr. */
    if (a->json && print_summary_json(import_id, &o, rows_sent, elapsed_s) != OMS_OK)
        rc = CLI_EXIT_FAIL;
    else if (!a->json && completed)
        print_summary_text(import_id, &o, elapsed_s);
out:
    import_watch_destroy(w);
    return rc;
}

int cmd_import(int argc, char **argv)
{
    import_args a;
    js_conn *c = NULL;
    char uuid[37], import_id[IMPORT_ID_LEN];
    int64_t total_rows = 0;

    int rc = parse_args(argc, argv, &a);
    if (rc != CLI_EXIT_OK)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if (import_check_file(a.path, &total_rows) != OMS_OK)
        return CLI_EXIT_FAIL;
    cli_catch_signals();
    if (cli_connect(&c, CLI_CONNECT_WAIT_MS) != OMS_OK)
        return CLI_EXIT_FAIL;
    oms_uuid4(uuid);
    snprintf(import_id, sizeof import_id, "imp-%s", uuid);
    rc = run_import(c, &a, import_id, total_rows);
    js_conn_destroy(c);
    return rc;
}
