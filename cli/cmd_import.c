/*
 * cmd_import.c - `omsctl import FILE`: check the file, listen for the
 * import's events, send it, wait for ingest's verdict, then follow the
 * orders it created until each is paid or failed, and summarise.
 *
 * Listening starts before the first chunk is published, so no event of the
 * import can slip by: a small import's first orders may be paid before its
 * last chunk is acknowledged. The numbers of rows and orders are ingest's
 * own (import.completed); the paid and failed counts are the order.paid /
 * order.failed events of the import's orders, which ingest publishes once
 * per order, so the wait ends when they add up to the orders created.
 */
#include "import.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define CMD "import"
#define DEFAULT_CHUNK_ROWS 1000
#define MAX_CHUNK_ROWS ORDER_CSV_CHUNK_ROWS_MAX /* what ingest accepts in one message */
#define DEFAULT_TIMEOUT_S 600
#define ACK_WAIT_MS 60000
/* After import.completed, how long the order and rejection events published
 * just before it (on other subscriptions) may take to arrive. */
#define GRACE_MS 2000
/* After import.completed, how long without a single order paid or failed
 * before saying that nothing seems to process orders. */
#define IDLE_NOTE_MS 10000
#define POLL_MS 50
#define TTY_REDRAW_MS 100
#define PLAIN_REDRAW_MS 1000
#define BAR_MIN_WIDTH 10
#define BAR_MAX_WIDTH 30
#define LINE_LEN 512
#define DEFAULT_COLUMNS 80

typedef struct import_args {
    const char *path;
    long long chunk_rows;
    long long timeout_s;
    bool json;
    bool follow;
} import_args;

/* The progress line on stderr. */
typedef struct progress {
    bool tty;
    bool follow;
    int64_t total_rows;
    int64_t rows_sent;
    int64_t start_ms;
    int64_t last_draw_ms;
    bool on_screen; /* a bar is drawn and must be cleared before other output */
    import_watch *watch;
} progress;

static void print_help(FILE *out)
{
    fputs("usage: omsctl import FILE [--chunk-rows N] [--json] [--timeout S] [--no-follow]\n"
          "\n"
          "Sends an order CSV to ingest (subject ingest.rows), waits until ingest\n"
          "reports the import complete, then follows the orders it created until each\n"
          "is paid or failed (order.paid / order.failed). Prints a summary: rows, valid\n"
          "and rejected rows (with the first reasons), orders created, missing rows,\n"
          "orders paid and failed (out of stock / payment failed, with the first\n"
          "reasons), revenue of the paid orders, time taken.\n"
          "\n"
          "The first line must be a header. Required columns: order_id, customer_id,\n"
          "sku, qty, and unit_price or unit_price_cents; optional: placed_at, currency,\n"
          "customer_email, customer_name, product_name, phone, address. Or one order\n"
          "per row: a products column (a JSON array of {\"sku\", \"quantity\"}, prices\n"
          "optional: the catalogue's apply) and customer_id or customer_email; ids are\n"
          "generated from the file's SHA-256 and the row (docs/csv.md). The file is\n"
          "refused, and nothing sent, when a required column is missing. Rows with bad values are\n"
          "reported by ingest as rejected, and orders that fail are reported as\n"
          "failed: that is data, not a failure of the command.\n"
          "\n"
          "  --chunk-rows N   rows per message (default 1000, at most 10000)\n"
          "  --timeout S      seconds to wait once the file is sent, for ingest's\n"
          "                   verdict and every order's outcome (default 600)\n"
          "  --no-follow      stop once ingest reports the import complete, without\n"
          "                   waiting for orders to be paid or failed (for a system\n"
          "                   without inventory and payment)\n"
          "  --json           print the summary as one JSON object on stdout, also\n"
          "                   when the import did not complete (\"completed\": false)\n"
          "                   or orders are still in flight (\"in_flight\" > 0)\n"
          "  -h, --help       this help\n"
          "\n"
          "A progress line on stderr shows rows sent, orders created, paid and failed,\n"
          "rejected rows and orders per second. If, 10 s after the import completed, not\n"
          "one of its orders was paid or failed, a note says that nothing seems to\n"
          "process orders (are inventory and payment running?); the wait goes on.\n"
          "\n"
          "Exit status: 0 the import completed and (unless --no-follow) every order it\n"
          "created was paid or failed, 1 it could not be sent, did not complete or\n"
          "orders were still in flight when the timeout passed, 2 usage error.\n",
          out);
}

static int parse_args(int argc, char **argv, import_args *a)
{
    static const struct option opts[] = {
        {"chunk-rows", required_argument, NULL, 'c'},
        {"timeout", required_argument, NULL, 't'},
        {"json", no_argument, NULL, 'j'},
        {"no-follow", no_argument, NULL, 'F'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    *a = (import_args){.chunk_rows = DEFAULT_CHUNK_ROWS,
                       .timeout_s = DEFAULT_TIMEOUT_S,
                       .follow = true};
    while ((c = cli_getopt(argc, argv, "h", opts, CMD)) != -1) {
        if (c == 'h') {
            print_help(stdout);
            return -1;
        }
        if (c == 'j')
            a->json = true;
        else if (c == 'F')
            a->follow = false;
        else if (c == 'c' &&
                 cli_parse_int(CMD, "--chunk-rows", optarg, 1, MAX_CHUNK_ROWS, &a->chunk_rows))
            return CLI_EXIT_USAGE;
        else if (c == 't' && cli_parse_int(CMD, "--timeout", optarg, 1, 7 * 86400, &a->timeout_s))
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

/* Orders per second since the start: settled ones when following (the
 * whole pipeline's pace), created ones otherwise. */
static double orders_rate(const progress *p, const import_outcome *o)
{
    double elapsed_s = (double)(oms_mono_ms() - p->start_ms) / 1000.0;
    int64_t orders = p->follow ? o->paid + o->failed : o->orders_seen;
    return elapsed_s > 0 ? (double)orders / elapsed_s : 0.0;
}

/* The counts; shorter words on a terminal, where the line shares its
 * columns with the bar. Returns the length. */
static int progress_counts(const progress *p, const import_outcome *o, char *out, size_t len)
{
    return snprintf(out, len,
                    p->tty ? "%lld/%lld rows sent, %lld orders, %lld paid, %lld failed, "
                             "%lld rejected, %.0f orders/s"
                           : "%lld/%lld rows sent, %lld orders created, %lld paid, %lld failed, "
                             "%lld rejected rows, %.0f orders/s",
                    (long long)p->rows_sent, (long long)p->total_rows, (long long)o->orders_seen,
                    (long long)o->paid, (long long)o->failed, (long long)o->rejections_seen,
                    orders_rate(p, o));
}

/* Columns of the terminal on stderr: a redrawn line must not wrap. */
static size_t terminal_columns(void)
{
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    return DEFAULT_COLUMNS;
}

/* The bar shows rows sent until the import completed, then (following)
 * the share of its orders paid or failed. Writes width cells and a NUL. */
static void draw_bar(const progress *p, const import_outcome *o, int width, char *bar)
{
    int64_t done = p->rows_sent, total = p->total_rows;
    if (o->completed && p->follow)
        done = o->paid + o->failed, total = o->orders;
    int filled = total > 0 ? (int)(done * width / total) : (o->completed ? width : 0);
    filled = filled < 0 ? 0 : (filled > width ? width : filled);
    memset(bar, '#', (size_t)filled);
    memset(bar + filled, '.', (size_t)(width - filled));
    bar[width] = '\0';
}

static void progress_draw(progress *p)
{
    import_outcome o;
    char counts[LINE_LEN], bar[BAR_MAX_WIDTH + 1], line[LINE_LEN + BAR_MAX_WIDTH + 8];
    import_watch_snapshot(p->watch, &o);
    int n = progress_counts(p, &o, counts, sizeof counts);
    if (!p->tty) {
        fprintf(stderr, "%s\n", counts);
        return;
    }
    /* The bar takes the room the counts leave, within bounds; past the
     * last column the line is cut, as it must not wrap. */
    size_t cols = terminal_columns();
    long room = (long)cols - 1 - n - 3;
    int width = room > BAR_MAX_WIDTH ? BAR_MAX_WIDTH
                                     : (room < BAR_MIN_WIDTH ? BAR_MIN_WIDTH : (int)room);
    draw_bar(p, &o, width, bar);
    n = snprintf(line, sizeof line, "[%s] %s", bar, counts);
    if (n > 0 && (size_t)n >= cols && cols - 1 < sizeof line)
        line[cols - 1] = '\0'; /* ASCII only: bytes are columns */
    /* \r and erase-to-end-of-line redraw the same line in place. */
    fprintf(stderr, "\r%s\033[K", line);
    p->on_screen = true;
}

/* Redraws at most 10 times a second on a terminal, once a second otherwise. */
static void progress_update(progress *p)
{
    int64_t now = oms_mono_ms();
    if (now - p->last_draw_ms < (p->tty ? TTY_REDRAW_MS : PLAIN_REDRAW_MS))
        return;
    p->last_draw_ms = now;
    progress_draw(p);
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
    progress_update(p);
}

/* ---- waiting ----------------------------------------------------------- */

/* Polls until import.completed arrived and the events sent before it are in
 * (or GRACE_MS passed), the deadline passed, or the user interrupted.
 * Returns whether the import completed; *o holds what was seen either way,
 * *completed_ms when import.completed was first seen. */
static bool wait_completed(progress *p, int64_t deadline_ms, import_outcome *o,
                           int64_t *completed_ms)
{
    int64_t grace_end = 0;
    for (;;) {
        int64_t now = oms_mono_ms();
        import_watch_snapshot(p->watch, o);
        if (o->completed) {
            if (grace_end == 0) {
                grace_end = now + GRACE_MS;
                *completed_ms = now;
            }
            if ((o->orders_seen >= o->orders && o->rejections_seen >= o->rejected_rows) ||
                now >= grace_end)
                return true;
        } else if (now >= deadline_ms || cli_interrupted) {
            return false;
        }
        progress_update(p);
        oms_sleep_ms(POLL_MS, NULL);
    }
}

static void note_idle(const char *import_id, const import_outcome *o, int64_t deadline_ms)
{
    cli_error("note: %d s after import %s completed, not one of its %d orders has been paid "
              "or failed: nothing seems to process orders (are inventory and payment "
              "running? `omsctl status`); waiting %lld s more, Ctrl-C to stop, or use "
              "--no-follow",
              IDLE_NOTE_MS / 1000, import_id, o->orders,
              (long long)((deadline_ms - oms_mono_ms()) / 1000));
}

/* Once the import completed: polls until every order it created was paid
 * or failed, the deadline passed, or the user interrupted; says once when
 * nothing seems to process orders. Returns whether every order settled. */
static bool wait_settled(progress *p, const char *import_id, int64_t deadline_ms,
                         int64_t completed_ms, import_outcome *o)
{
    bool noted = false;
    for (;;) {
        int64_t now = oms_mono_ms();
        import_watch_snapshot(p->watch, o);
        if (o->paid + o->failed >= o->orders)
            return true;
        if (now >= deadline_ms || cli_interrupted)
            return false;
        if (!noted && o->paid + o->failed == 0 && now - completed_ms >= IDLE_NOTE_MS) {
            progress_clear(p);
            note_idle(import_id, o, deadline_ms);
            noted = true;
        }
        progress_update(p);
        oms_sleep_ms(POLL_MS, NULL);
    }
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

/* Waits for the verdict, then (following) for every order; fills *sum. */
static void wait_outcome(progress *p, const import_args *a, import_summary *sum)
{
    int64_t deadline_ms = oms_mono_ms() + a->timeout_s * 1000, completed_ms = 0;
    bool completed = wait_completed(p, deadline_ms, &sum->o, &completed_ms);
    sum->completed_s = (double)(completed_ms - p->start_ms) / 1000.0;
    if (completed && a->follow)
        sum->settled = wait_settled(p, sum->import_id, deadline_ms, completed_ms, &sum->o);
    progress_clear(p);
    sum->elapsed_s = (double)(oms_mono_ms() - p->start_ms) / 1000.0;
    if (!completed)
        sum->completed_s = sum->elapsed_s;
    sum->dropped = import_watch_dropped(p->watch);
}

/* Sends the file, waits for the outcome and prints it; returns the exit code. */
static int run_import(js_conn *c, const import_args *a, const char *import_id,
                      const import_file_info *info)
{
    int64_t total_rows = info->data_rows;
    char id_prefix[64];
    import_watch *w = NULL;
    progress p = {.tty = isatty(STDERR_FILENO) == 1,
                  .follow = a->follow,
                  .total_rows = total_rows,
                  .start_ms = oms_mono_ms()};
    import_summary sum = {.import_id = import_id, .follow = a->follow, .ignored = info->ignored};
    /* The ids ingest generates are known here: the file's hash and the row. */
    if (info->generates_ids) {
        order_csv_generated_id(info->content_sha256, 0, id_prefix, sizeof id_prefix);
        id_prefix[strlen(id_prefix) - 1] = '\0';
        sum.id_prefix = id_prefix;
    }
    int rc = CLI_EXIT_FAIL;

    if (cli_require_stream(c, "INGEST") != OMS_OK || import_watch_start(&w, c, import_id) != OMS_OK)
        goto out;
    warn_without_consumer(c);
    p.watch = w;
    /* The plain line's first print comes after a second, not at once. */
    p.last_draw_ms = p.tty ? 0 : p.start_ms;
    import_send_opts so = {.path = a->path,
                           .import_id = import_id,
                           .chunk_rows = a->chunk_rows,
                           .ack_wait_ms = ACK_WAIT_MS,
                           .tick = on_tick,
                           .tick_ctx = &p,
                           .content_sha256 = info->content_sha256};
    oms_status s = import_send(c, &so, &sum.rows_sent);
    p.rows_sent = sum.rows_sent;
    if (s != OMS_OK) {
        progress_clear(&p);
        goto out;
    }
    wait_outcome(&p, a, &sum);
    bool done = sum.o.completed && (!a->follow || sum.settled);
    rc = done ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    /* With --json the summary is printed even when unfinished: scripts
     * read "completed" and "in_flight" instead of parsing stderr. */
    if (a->json && import_print_json(&sum) != OMS_OK)
        rc = CLI_EXIT_FAIL;
    else if (!a->json && sum.o.completed)
        import_print_text(&sum);
    if (!done) {
        fflush(stdout);
        import_print_unfinished(&sum, a->timeout_s);
    }
out:
    import_watch_destroy(w);
    return rc;
}

int cmd_import(int argc, char **argv)
{
    import_args a;
    js_conn *c = NULL;
    char uuid[37], import_id[IMPORT_ID_LEN];
    import_file_info info;

    int rc = parse_args(argc, argv, &a);
    if (rc != CLI_EXIT_OK)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if (import_check_file(a.path, &info) != OMS_OK)
        return CLI_EXIT_FAIL;
    cli_catch_signals();
    if (cli_connect(&c, CLI_CONNECT_WAIT_MS) != OMS_OK)
        return CLI_EXIT_FAIL;
    oms_uuid4(uuid);
    snprintf(import_id, sizeof import_id, "imp-%s", uuid);
    rc = run_import(c, &a, import_id, &info);
    js_conn_destroy(c);
    return rc;
}
