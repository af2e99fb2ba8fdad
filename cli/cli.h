/*
 * cli.h - what every omsctl command shares: settings from OMS_* variables,
 * user-facing errors, exit codes, option parsing, the NATS connection, HTTP
 * calls to the services' admin APIs, CSV files read record by record, and
 * aligned tables.
 *
 * omsctl talks to people: errors go to stderr as one sentence naming what is
 * wrong and what would fix it; results go to stdout (tables, or JSON for
 * scripts). The library's JSON logs stay quiet unless OMS_LOG_LEVEL asks.
 */
#ifndef OMS_CLI_H
#define OMS_CLI_H

#include "csvrec.h"
#include "js.h"
#include "oms.h"

#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2
#define CLI_EXIT_PENDING 3 /* requested, outcome not known when the wait ended */

#define CLI_DEFAULT_NATS_URL "nats://127.0.0.1:14222"
#define CLI_CONNECT_WAIT_MS 3000

/* Set by SIGINT/SIGTERM once a command installed cli_catch_signals. */
extern volatile sig_atomic_t cli_interrupted;

/* Makes the first SIGINT/SIGTERM set cli_interrupted instead of killing the
 * process, so a waiting command can say where it stopped and clean up; a
 * second one kills it as usual. */
void cli_catch_signals(void);

/* Prints "omsctl: <message>\n" on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints the error and "run `omsctl <cmd> --help` for usage"; returns
 * CLI_EXIT_USAGE so callers can `return cli_usage_error(...)`. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* getopt_long for command `cmd` (for messages, e.g. "dlq list"). Options may
 * come before or after positional arguments. Returns the option, -1 at the
 * end, or '?' after printing what is wrong (unknown option, missing value). */
int cli_getopt(int argc, char *const argv[], const char *shortopts, const struct option *longopts,
               const char *cmd);

/* Parses the arguments of a show command: "[--json] [-h|--help] [ARG]".
 * --help prints help(stdout) and returns -1; a bad option or a second ARG is
 * a usage error (CLI_EXIT_USAGE, reported naming arg_name); otherwise
 * CLI_EXIT_OK with *arg the argument or NULL when none was given. */
int cli_parse_show(int argc, char **argv, const char *cmd, void (*help)(FILE *out),
                   const char *arg_name, bool *json, const char **arg);

/* Parses option `name`'s value as an integer in [min, max]. On error prints
 * which option, the value and the range, and returns OMS_EINVAL. */
oms_status cli_parse_int(const char *cmd, const char *name, const char *text, long long min,
                         long long max, long long *out);

/* Connects to OMS_NATS_URL (with OMS_NATS_USER/OMS_NATS_PASSWORD if set) and
 * waits up to wait_ms for the connection. On failure prints what to do.
 * Caller frees with js_conn_destroy. */
oms_status cli_connect(js_conn **out, int64_t wait_ms);

/* Publishes *msg to JetStream asynchronously with Nats-Msg-Id msg_id (may be
 * NULL). When too many publishes await their PubAck, waits for room up to
 * stall_ms rather than failing. On success nats.c owns the message and *msg
 * is NULL; on failure the caller still owns it. The PubAck's outcome is
 * collected by js_publish_wait. (lib/js.h has no variant taking headers.) */
natsStatus cli_publish_async(js_conn *c, natsMsg **msg, const char *msg_id, int64_t stall_ms);

/* OMS_OK when JetStream has stream; otherwise prints why not and how to
 * create it (the services create the contract's streams when they start). */
oms_status cli_require_stream(js_conn *c, const char *stream);

/* The URL omsctl uses for NATS (for messages). */
const char *cli_nats_url(void);

/* ---- services and HTTP ------------------------------------------------ */

typedef struct cli_service {
    const char *name;        /* "ingest" */
    const char *url_env;     /* "OMS_INGEST_URL" */
    const char *default_url; /* "http://127.0.0.1:18081" */
} cli_service;

extern const cli_service CLI_SERVICES[];
extern const size_t CLI_N_SERVICES;

/* The service called name, or NULL. */
const cli_service *cli_service_find(const char *name);

/* The service's base URL from its variable (or the default), as given.
 * Points into the environment or statics. */
const char *cli_service_url(const cli_service *svc);

/* Writes the URL of path ("/readyz") on svc into out, however many slashes
 * end the base URL. */
void cli_service_endpoint(const cli_service *svc, const char *path, char *out, size_t out_len);

/* "ingest, inventory, ..." for messages. */
const char *cli_service_names(void);

#define CLI_HTTP_ERR_LEN 256
#define CLI_URL_LEN 2048

/* One HTTP call. bearer may be NULL (no Authorization header). On a transport
 * error (refused, timeout) returns OMS_EIO with the reason in err; otherwise
 * OMS_OK with *status and *body (parsed JSON or NULL when the body is not
 * JSON; caller decrefs). */
oms_status cli_http(const char *method, const char *url, const char *bearer, long timeout_ms,
                    long *status, json_t **body, char err[CLI_HTTP_ERR_LEN]);

/* Prints that svc did not answer (err, from cli_http), naming its URL, its
 * variable and `make up`. */
void cli_service_unreachable(const cli_service *svc, const char *err);

/* GETs path on svc (timeout_ms). When svc cannot be reached, prints so with
 * cli_service_unreachable and returns OMS_EIO; otherwise as cli_http. url
 * (may be NULL) receives the full URL, for messages. */
oms_status cli_service_get(const cli_service *svc, const char *path, long timeout_ms, long *status,
                           json_t **body, char *url, size_t url_len);

/* Percent-encodes text as one URL path segment: every byte but RFC 3986's
 * unreserved ones (A-Z a-z 0-9 - . _ ~) becomes %XX, so "/" and "?" in an id
 * stay part of it. Returns OMS_EINVAL, out untouched, when it does not fit. */
oms_status cli_url_escape(const char *text, char *out, size_t out_len);

/* Whether a 404 came from the server's router (lib/http: "no route for
 * PATH") rather than from a handler that looked the thing up: the URL
 * points at another service, or one too old to have the route. */
bool cli_http_no_route(long status, const json_t *body);

/* Text of body's "error" member, or "" (borrowed from body). */
const char *cli_json_error(const json_t *body);

/* A JSON member as display text: strings as is, numbers formatted, null and
 * absent as "-". Writes into out. */
const char *cli_json_text(const json_t *obj, const char *key, char *out, size_t out_len);

/* Prints json as one compact line on stdout; takes ownership (decref'd).
 * Returns OMS_EIO when stdout cannot be written. */
oms_status cli_print_json(json_t *json);

/* ---- CSV files ------------------------------------------------------ */

/* Reads path in blocks through csvrec, handing fn each record; stops after
 * the block in which *stop became true (stop may be NULL). Prints an error
 * naming the file when it cannot be read. */
oms_status cli_csv_scan(const char *path, csvrec_fn fn, void *ctx, const bool *stop);

/* cli_csv_scan that also sets sha256_hex (65 bytes) to the SHA-256 of the
 * file's bytes, in lowercase hex, when the whole file was read ("" when
 * it stopped early). */
oms_status cli_csv_scan_hashed(const char *path, csvrec_fn fn, void *ctx, const bool *stop,
                               char *sha256_hex);

/* ---- tables --------------------------------------------------------- */

typedef struct cli_table cli_table;

/* A table of ncols columns; column i is right-aligned when bit i of
 * right_mask is set (numbers). Headers are borrowed. Caller frees with
 * cli_table_destroy. NULL when out of memory. */
cli_table *cli_table_create(size_t ncols, const char *const *headers, unsigned right_mask);

/* Adds a row of ncols cells (copied). */
oms_status cli_table_add(cli_table *t, const char *const *cells);

/* Prints the header and rows with columns padded to their widest cell. */
void cli_table_print(const cli_table *t, FILE *out);

void cli_table_destroy(cli_table *t);

/* ---- formatting ----------------------------------------------------- */

/* "12.3 KiB" style size into out. */
void cli_format_bytes(uint64_t bytes, char *out, size_t out_len);

/* Milliseconds since the epoch as UTC ISO 8601 into out:
 * "2026-11-02T10:15:00Z", with ".123" before the Z when ms is not a whole
 * second. Out-of-range values print as the number of ms. */
void cli_format_time_ms(int64_t ms, char *out, size_t out_len);

/* ---- commands (cmd_*.c): argv[0] is the command name ---------------- */

int cmd_import(int argc, char **argv);
int cmd_order(int argc, char **argv);
int cmd_stock(int argc, char **argv);
/* `stock show` (stock_show.c); cmd_stock dispatches to it. */
int stock_show(int argc, char **argv);
int cmd_events(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_dlq(int argc, char **argv);
int cmd_notifications(int argc, char **argv);
int cmd_refund(int argc, char **argv);
int cmd_kpi(int argc, char **argv);
int cmd_leaderboard(int argc, char **argv);
int cmd_trace(int argc, char **argv);
int cmd_console(int argc, char **argv);

/* What `omsctl status --json` prints: {"nats": {streams, consumers},
 * "services": [{name, url, state, dead_letters}]} (cmd_status.c). c may be
 * NULL (NATS unreachable). Caller decrefs. */
json_t *cli_status_gather(js_conn *c);

/* Calls path on the analytics service (cmd_kpi.c). On 200 with a JSON object
 * *out gets it (caller decrefs) and CLI_EXIT_OK is returned; otherwise prints
 * why (a 400's message as a usage error) and returns the exit status. */
int cli_analytics_call(const char *method, const char *path, const char *token, json_t **out);

#endif
