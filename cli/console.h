/*
 * console.h - `omsctl console`: a local web page for operators, served by
 * lib/http's server from omsctl. The modules:
 *   cmd_console.c       options, token file, start and stop
 *   console_http.c      routes: the embedded page, the JSON/SSE API, security
 *   console_snapshot.c  one JSON picture of the system (services, streams,
 *                       consumers, dead letters, KPIs, leaderboard, imports)
 *   console_imports.c   imports in progress, followed on core NATS
 *   console_assets.c    generated at build time from cli/console/
 *
 * The admin token (OMS_ADMIN_TOKEN) stays in this process: the browser gets
 * a console token instead, random per run on loopback and the login token of
 * --token-file elsewhere, and every /api request must carry it.
 */
#ifndef OMS_CONSOLE_H
#define OMS_CONSOLE_H

#include "cli.h"
#include "http.h"

#include <pthread.h>

#define CONSOLE_TOKEN_LEN 256
#define CONSOLE_ORIGIN_LEN 300

typedef struct console_asset {
    const char *name; /* "index.html" */
    const char *data;
    size_t len;
} console_asset;

/* The files of cli/console/, ending with {NULL, NULL, 0}. */
extern const console_asset CONSOLE_ASSETS[];

typedef struct console_imports console_imports;

typedef struct console {
    js_conn *nats;                       /* NULL while NATS is unreachable at start */
    const char *admin_token;             /* for the services' admin calls; never sent out */
    char token[CONSOLE_TOKEN_LEN];       /* what the page must send */
    bool login_required;                 /* bound beyond loopback: the page asks for token */
    char host[CONSOLE_ORIGIN_LEN];       /* on loopback, the Host requests must carry: */
    char host_alias[CONSOLE_ORIGIN_LEN]; /* the address as given, or localhost:PORT */
    console_imports *imports;
    pthread_mutex_t mu; /* guards the cached snapshot */
    char *snapshot;     /* last one built (JSON text), shared by every page */
    int64_t snapshot_ms;
} console;

/* Registers the console's routes on http; borrows con. */
oms_status console_routes(http_server *http, console *con);

/* The current picture of the system as compact JSON text (one line; caller
 * frees), or NULL when out of memory: built at most once every ~900 ms,
 * shared otherwise. */
char *console_snapshot_text(console *con);

/* Follows imports on core NATS subscriptions (ingest.rows, order.created,
 * order.paid/failed, import.completed) from now on. Borrows c. Caller frees
 * with console_imports_destroy. */
oms_status console_imports_create(console_imports **out, js_conn *c);

/* The imports seen, newest first, as a JSON array (caller decrefs). */
json_t *console_imports_json(console_imports *ci);

/* Stops the subscriptions and frees; NULL is a no-op. */
void console_imports_destroy(console_imports *ci);

#endif
