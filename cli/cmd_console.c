/*
 * cmd_console.c - `omsctl console [--addr HOST:PORT] [--token-file F]`: a web
 * page for operators, served from omsctl until Ctrl-C (console.h).
 *
 * Bound to loopback unless told otherwise; any other address could be
 * reached by others, so it needs --token-file (the token people type on the
 * login page) and says so on stderr. OMS_ADMIN_TOKEN, which the dead-letter
 * retries need, never leaves this process.
 */
#include "console.h"

#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#define CMD "console"
#define DEFAULT_ADDR "127.0.0.1:8088"
#define POLL_MS 100
#define TOKEN_MIN_LEN 16

static void print_help(FILE *out)
{
    fputs("usage: omsctl console [--addr HOST:PORT] [--token-file FILE]\n"
          "\n"
          "Serves a web page for operators (open the URL it prints): services' health\n"
          "and readiness, streams, consumers with rate sparklines, imports in progress,\n"
          "dead letters with a Retry button, today's KPIs and the leaderboard, and an\n"
          "order search showing the order, its status history and its trace. The page\n"
          "updates itself about once a second (Server-Sent Events).\n"
          "\n"
          "  --addr HOST:PORT    where to listen (default " DEFAULT_ADDR "); an address\n"
          "                      other than loopback needs --token-file\n"
          "  --token-file FILE   the login token the page asks for (first line of FILE,\n"
          "                      at least 16 characters)\n"
          "  -h, --help          this help\n"
          "\n"
          "Reads the services' URLs and NATS from the environment like every command;\n"
          "OMS_ADMIN_TOKEN (for Retry) stays in omsctl, the browser never sees it.\n"
          "Stops on Ctrl-C. Exit status: 0 stopped, 1 failure, 2 usage error.\n",
          out);
}

typedef struct console_opts {
    const char *addr;
    const char *token_file;
} console_opts;

static int parse_opts(int argc, char **argv, console_opts *o)
{
    static const struct option opts[] = {
        {"addr", required_argument, NULL, 'a'},
        {"token-file", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    o->addr = DEFAULT_ADDR;
    o->token_file = NULL;
    while ((opt = cli_getopt(argc, argv, "h", opts, CMD)) != -1) {
        if (opt == 'h') {
            print_help(stdout);
            return -1;
        }
        if (opt == 'a')
            o->addr = optarg;
        else if (opt == 't')
            o->token_file = optarg;
        else
            return CLI_EXIT_USAGE;
    }
    if (optind < argc)
        return cli_usage_error(CMD, "console takes no arguments, got \"%s\"", argv[optind]);
    return CLI_EXIT_OK;
}

/* Whether addr ("host:port") is on the loopback interface; *port gets the
 * port text. OMS_EINVAL when it is not host:port. */
static oms_status addr_loopback(const char *addr, bool *loopback, const char **port)
{
    const char *colon = strrchr(addr, ':');
    char host[64];
    struct in_addr a;
    if (colon == NULL || colon[1] == '\0' || (size_t)(colon - addr) >= sizeof host)
        return OMS_EINVAL;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    *port = colon + 1;
    *loopback = false;
    if (host[0] == '\0') /* every interface */
        return OMS_OK;
    if (strcmp(host, "localhost") == 0) {
        *loopback = true;
        return OMS_OK;
    }
    if (inet_pton(AF_INET, host, &a) != 1)
        return OMS_EINVAL;
    *loopback = (ntohl(a.s_addr) >> 24) == 127;
    return OMS_OK;
}

/* The first line of path as the login token. */
static oms_status read_token(const char *path, char *out, size_t out_len)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        cli_error("cannot read the token file %s: %s", path, strerror(errno));
        return OMS_EIO;
    }
    bool got = fgets(out, (int)out_len, f) != NULL;
    fclose(f);
    out[got ? strcspn(out, "\r\n") : 0] = '\0';
    if (strlen(out) < TOKEN_MIN_LEN) {
        cli_error("the token in %s is %zu characters long: use at least %d (e.g. `openssl rand "
                  "-hex 24 > %s`)",
                  path, strlen(out), TOKEN_MIN_LEN, path);
        return OMS_EINVAL;
    }
    return OMS_OK;
}

/* A random token for the page on loopback: proves a request came from it. */
static oms_status random_token(char *out, size_t out_len)
{
    unsigned char raw[24];
    if (RAND_bytes(raw, (int)sizeof raw) != 1 || out_len < 2 * sizeof raw + 1)
        return OMS_EIO;
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    return OMS_OK;
}

/* Fills con's tokens and hosts from the options; prints what is wrong. */
static int set_up(console *con, const console_opts *o)
{
    bool loopback = false;
    const char *port = NULL;
    if (addr_loopback(o->addr, &loopback, &port) != OMS_OK)
        return cli_usage_error(CMD,
                               "--addr must be HOST:PORT with an IPv4 host or localhost, "
                               "got \"%s\"",
                               o->addr);
    if (!loopback && o->token_file == NULL)
        return cli_usage_error(CMD,
                               "--addr %s is not loopback: anyone who can reach it would "
                               "see orders and retry dead letters; give --token-file FILE with "
                               "a login token",
                               o->addr);
    con->login_required = o->token_file != NULL;
    if (con->login_required ? read_token(o->token_file, con->token, sizeof con->token) != OMS_OK
                            : random_token(con->token, sizeof con->token) != OMS_OK)
        return CLI_EXIT_FAIL;
    snprintf(con->host, sizeof con->host, "%s", o->addr);
    snprintf(con->host_alias, sizeof con->host_alias, "localhost:%s", port);
    con->admin_token = config_str("OMS_ADMIN_TOKEN", NULL);
    if (!loopback)
        fprintf(stderr,
                "omsctl: warning: the console listens on %s, beyond this machine; it "
                "asks for the token of %s and serves plain HTTP (put TLS in front of it)\n",
                o->addr, o->token_file);
    return CLI_EXIT_OK;
}

static int serve(console *con, const char *addr)
{
    http_server *http = NULL;
    int rc = CLI_EXIT_FAIL;
    if (http_server_create(&http, addr, NULL) != OMS_OK || console_routes(http, con) != OMS_OK) {
        cli_error("cannot set up the console on %s", addr);
        goto out;
    }
    if (http_server_start(http) != OMS_OK) {
        cli_error("cannot listen on %s: is the port taken? (choose another with --addr)", addr);
        goto out;
    }
    fprintf(stderr, "console on http://%s/ (Ctrl-C to stop)\n", addr);
    if (con->admin_token == NULL)
        fprintf(stderr, "omsctl: OMS_ADMIN_TOKEN is not set: Retry will be refused\n");
    while (!cli_interrupted)
        oms_sleep_ms(POLL_MS, NULL);
    rc = CLI_EXIT_OK;
out:
    http_server_destroy(http);
    return rc;
}

int cmd_console(int argc, char **argv)
{
    console_opts o;
    console con = {0};
    int rc = parse_opts(argc, argv, &o);
    if (rc != CLI_EXIT_OK)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if ((rc = set_up(&con, &o)) != CLI_EXIT_OK)
        return rc;
    pthread_mutex_init(&con.mu, NULL);
    cli_catch_signals();
    /* The page still shows the services when NATS is down; it says so. */
    if (cli_connect(&con.nats, CLI_CONNECT_WAIT_MS) == OMS_OK &&
        console_imports_create(&con.imports, con.nats) != OMS_OK)
        cli_error("cannot follow imports on NATS at %s; the page will not show them",
                  cli_nats_url());
    rc = serve(&con, o.addr);
    console_imports_destroy(con.imports);
    js_conn_destroy(con.nats);
    free(con.snapshot);
    pthread_mutex_destroy(&con.mu);
    return rc;
}
