/*
 * cli.c - errors, options, signals, the NATS connection and CSV files for
 * every omsctl command (see cli.h).
 */
#include "cli.h"

#include "config.h"
#include "order_csv.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define CSV_BLOCK_BYTES 65536

volatile sig_atomic_t cli_interrupted = 0;

static void on_signal(int sig)
{
    /* A second signal means "now": whatever is stuck, the process ends. */
    if (cli_interrupted) {
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    cli_interrupted = 1;
}

void cli_catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static void verror(const char *fmt, va_list ap)
{
    char line[1024];
    vsnprintf(line, sizeof line, fmt, ap);
    fprintf(stderr, "omsctl: %s\n", line);
}

void cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verror(fmt, ap);
    va_end(ap);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verror(fmt, ap);
    va_end(ap);
    fprintf(stderr, "run `omsctl %s --help` for usage\n", cmd);
    return CLI_EXIT_USAGE;
}

int cli_getopt(int argc, char *const argv[], const char *shortopts, const struct option *longopts,
               const char *cmd)
{
    char spec[64];
    /* A leading ':' makes getopt report a missing value as ':' and stay
     * quiet, so every message has omsctl's wording. */
    snprintf(spec, sizeof spec, ":%s", shortopts);
    opterr = 0;
    int c = getopt_long(argc, argv, spec, longopts, NULL);
    if (c == ':') {
        cli_usage_error(cmd, "option %s needs a value", argv[optind - 1]);
        return '?';
    }
    if (c == '?') {
        if (optopt != 0)
            cli_usage_error(cmd, "unknown option -%c", optopt);
        else
            cli_usage_error(cmd, "unknown option %s", argv[optind - 1]);
    }
    return c;
}

oms_status cli_parse_int(const char *cmd, const char *name, const char *text, long long min,
                         long long max, long long *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (*text == '\0' || *end != '\0' || errno != 0 || v < min || v > max) {
        cli_usage_error(cmd, "%s must be an integer from %lld to %lld, got \"%s\"", name, min, max,
                        text);
        return OMS_EINVAL;
    }
    *out = v;
    return OMS_OK;
}

const char *cli_nats_url(void)
{
    return config_str("OMS_NATS_URL", CLI_DEFAULT_NATS_URL);
}

/* Tries one plain connection, no retries, bounded by wait_ms. js_connect_as
 * does not block when the server is absent: after one failed attempt it
 * returns OMS_OK with a connection that keeps retrying in the background
 * (retry-on-failed-connect with a connected callback), logging the cause,
 * which is right for a service and wrong for a command; this probe lets
 * omsctl fail fast and say why (refused credentials, TLS, unreachable). */
static natsStatus probe(const char *url, const js_identity *id, int64_t wait_ms)
{
    natsOptions *opts = NULL;
    natsConnection *nc = NULL;
    natsStatus st = natsOptions_Create(&opts);
    if (st == NATS_OK)
        st = js_options_set_servers(opts, url);
    if (st == NATS_OK)
        st = natsOptions_SetTimeout(opts, wait_ms);
    if (st == NATS_OK)
        st = natsOptions_SetName(opts, "omsctl-probe");
    if (st == NATS_OK && id->user != NULL)
        st = natsOptions_SetUserInfo(opts, id->user, id->password);
    if (st == NATS_OK)
        st = js_options_set_tls(opts, id);
    if (st == NATS_OK)
        st = natsConnection_Connect(&nc, opts);
    natsConnection_Destroy(nc);
    natsOptions_Destroy(opts);
    return st;
}

/* TLS settings (README, Configuration): a CA, and a client certificate as
 * both or neither of its files. */
static oms_status tls_identity(js_identity *id)
{
    id->tls_ca = config_str("OMS_NATS_TLS_CA", NULL);
    id->tls_cert = config_str("OMS_NATS_TLS_CERT", NULL);
    id->tls_key = config_str("OMS_NATS_TLS_KEY", NULL);
    if ((id->tls_cert == NULL) == (id->tls_key == NULL))
        return OMS_OK;
    cli_error("a client certificate needs both OMS_NATS_TLS_CERT and OMS_NATS_TLS_KEY");
    return OMS_EINVAL;
}

static bool tls_status(natsStatus st)
{
    return st == NATS_SSL_ERROR || st == NATS_SECURE_CONNECTION_REQUIRED ||
           st == NATS_SECURE_CONNECTION_WANTED;
}

oms_status cli_connect(js_conn **out, int64_t wait_ms)
{
    const char *url = cli_nats_url();
    js_identity id = {.user = config_str("OMS_NATS_USER", NULL),
                      .password = config_str("OMS_NATS_PASSWORD", NULL)};
    js_conn *c = NULL;

    if (tls_identity(&id) != OMS_OK)
        return OMS_EINVAL;
    natsStatus st = probe(url, &id, wait_ms);
    if (st == NATS_NOT_PERMITTED || st == NATS_CONNECTION_AUTH_FAILED) {
        cli_error("NATS at %s refused the credentials (%s): check OMS_NATS_USER and "
                  "OMS_NATS_PASSWORD (run `. .oms/env`)",
                  url, natsStatus_GetText(st));
        return OMS_ENATS;
    }
    if (tls_status(st)) {
        const char *detail = nats_GetLastError(NULL);
        cli_error("TLS with NATS at %s failed (%s: %s): check OMS_NATS_TLS_CA, "
                  "OMS_NATS_TLS_CERT and OMS_NATS_TLS_KEY",
                  url, natsStatus_GetText(st), detail ? detail : "");
        return OMS_ENATS;
    }
    if (st != NATS_OK) {
        cli_error("cannot connect to NATS at %s (%s): is the stack running? try `make up`, or "
                  "set OMS_NATS_URL (run `. .oms/env`)",
                  url, natsStatus_GetText(st));
        return OMS_ETRANSIENT;
    }
    oms_status s = js_connect_as(&c, url, &id, "omsctl");
    if (s != OMS_OK) {
        cli_error("cannot connect to NATS at %s (%s): check OMS_NATS_URL (run `. .oms/env`)", url,
                  oms_strstatus(s));
        return s;
    }
    int64_t deadline = oms_mono_ms() + wait_ms;
    while (!js_connected(c) && oms_mono_ms() < deadline && !cli_interrupted)
        oms_sleep_ms(20, NULL);
    if (!js_connected(c)) {
        cli_error("lost the connection to NATS at %s while connecting: is the server "
                  "restarting? try again",
                  url);
        js_conn_destroy(c);
        return OMS_ETRANSIENT;
    }
    *out = c;
    return OMS_OK;
}

natsStatus cli_publish_async(js_conn *c, natsMsg **msg, const char *msg_id, int64_t stall_ms)
{
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MsgId = msg_id;
    int64_t deadline = oms_mono_ms() + stall_ms;
    natsStatus st;
    /* NATS_TIMEOUT here means "stalled": MaxPending publishes await their
     * PubAck. The message was not sent and is still ours, so trying again
     * once acks drain is safe. */
    while ((st = js_PublishMsgAsync(js_ctx(c), msg, &po)) == NATS_TIMEOUT &&
           oms_mono_ms() < deadline && !cli_interrupted)
        ;
    return st;
}

oms_status cli_require_stream(js_conn *c, const char *stream)
{
    jsStreamInfo *si = NULL;
    jsErrCode code = 0;
    natsStatus st = js_GetStreamInfo(&si, js_ctx(c), stream, NULL, &code);
    jsStreamInfo_Destroy(si);
    if (st == NATS_OK)
        return OMS_OK;
    if (code == JSStreamNotFoundErr || st == NATS_NOT_FOUND)
        cli_error("stream %s does not exist on NATS at %s: the services create the streams "
                  "when they start; try `make up`",
                  stream, cli_nats_url());
    else
        cli_error("cannot read stream %s on NATS at %s: %s (is JetStream enabled?)", stream,
                  cli_nats_url(), natsStatus_GetText(st));
    return OMS_ENATS;
}

/* The first record of an order file decides whether one column (products)
 * may be longer than the others, as ingest reads it. */
typedef struct scan_ctx {
    csvrec_fn fn;
    void *ctx;
    csvrec *rec;
    bool first;
} scan_ctx;

static void scan_record(void *arg, char *const *fields, size_t n)
{
    scan_ctx *sc = arg;
    if (sc->first && order_csv_is_header(fields, n)) {
        order_csv_header h;
        order_col missing;
        char err[ORDER_ERR_LEN];
        (void)order_csv_header_parse(fields, n, &h, &missing, err);
        if (h.layout == ORDER_LAYOUT_PRODUCTS)
            csvrec_set_wide_field(sc->rec, (size_t)h.index[OC_PRODUCTS],
                                  ORDER_CSV_PRODUCTS_BYTES_MAX);
    }
    sc->first = false;
    sc->fn(sc->ctx, fields, n);
}

static void hex_digest(EVP_MD_CTX *md, char *out)
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    out[0] = '\0';
    if (EVP_DigestFinal_ex(md, digest, &len) != 1)
        return;
    for (unsigned i = 0; i < len; i++)
        snprintf(out + 2 * i, 3, "%02x", digest[i]);
}

oms_status cli_csv_scan(const char *path, csvrec_fn fn, void *ctx, const bool *stop)
{
    return cli_csv_scan_hashed(path, fn, ctx, stop, NULL);
}

oms_status cli_csv_scan_hashed(const char *path, csvrec_fn fn, void *ctx, const bool *stop,
                               char *sha256_hex)
{
    FILE *f = NULL;
    char *block = NULL;
    csvrec rec;
    bool rec_ready = false;
    oms_status s = OMS_OK;
    scan_ctx sc = {.fn = fn, .ctx = ctx, .rec = &rec, .first = true};
    EVP_MD_CTX *md = sha256_hex ? EVP_MD_CTX_new() : NULL;

    if (sha256_hex != NULL)
        sha256_hex[0] = '\0';
    if (sha256_hex != NULL && (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)) {
        s = OMS_ENOMEM;
        goto out;
    }

    if ((f = fopen(path, "rb")) == NULL) {
        cli_error("cannot open %s: %s", path, strerror(errno));
        s = OMS_EIO;
        goto out;
    }
    if ((block = malloc(CSV_BLOCK_BYTES)) == NULL ||
        (s = csvrec_init(&rec, scan_record, &sc)) != OMS_OK) {
        s = OMS_ENOMEM;
        goto out;
    }
    rec_ready = true;
    /* The limits ingest reads a chunk with: a file it would refuse is
     * refused here, naming the row, before anything is sent. */
    csvrec_set_limits(&rec, ORDER_CSV_FIELD_BYTES_MAX, ORDER_CSV_FIELDS_MAX);
    while (s == OMS_OK && (stop == NULL || !*stop)) {
        size_t n = fread(block, 1, CSV_BLOCK_BYTES, f);
        if (n > 0 && md != NULL && EVP_DigestUpdate(md, block, n) != 1)
            s = OMS_ENOMEM;
        if (n > 0 && s == OMS_OK)
            s = csvrec_feed(&rec, block, n);
        if (n < CSV_BLOCK_BYTES)
            break;
    }
    if (s == OMS_OK && ferror(f)) {
        cli_error("cannot read %s: %s", path, strerror(errno));
        s = OMS_EIO;
    } else if (s == OMS_OK && (stop == NULL || !*stop)) {
        s = csvrec_finish(&rec);
        if (s == OMS_OK && md != NULL)
            hex_digest(md, sha256_hex);
    }
    if (s == OMS_ENOMEM)
        cli_error("out of memory while reading %s", path);
    if (s == OMS_EINVAL)
        cli_error("cannot read %s: %s; nothing was sent", path, csvrec_error_of(&rec)->text);
out:
    if (rec_ready)
        csvrec_fini(&rec);
    EVP_MD_CTX_free(md);
    free(block);
    if (f != NULL)
        fclose(f);
    return s;
}

int cli_parse_show(int argc, char **argv, const char *cmd, void (*help)(FILE *out),
                   const char *arg_name, bool *json, const char **arg)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    *json = false;
    *arg = NULL;
    while ((opt = cli_getopt(argc, argv, "h", opts, cmd)) != -1) {
        if (opt == 'h') {
            help(stdout);
            return -1;
        }
        if (opt == '?')
            return CLI_EXIT_USAGE;
        *json = true;
    }
    if (optind + 1 < argc)
        return cli_usage_error(cmd, "one %s at a time, got \"%s\" too", arg_name, argv[optind + 1]);
    *arg = optind < argc ? argv[optind] : NULL;
    return CLI_EXIT_OK;
}
