/*
 * cmd_events.c - `omsctl events tail [SUBJECT] [--count N]`: events as JSON
 * lines, decoded by their Oms-Type header.
 *
 * Core NATS subscriptions: tail shows what is published from now on and
 * leaves no consumer behind on the streams. Each subscription's handler
 * runs on its own nats.c thread; one mutex keeps lines whole and the count
 * exact.
 */
#include "cli.h"

#include "pbjson.h"

#include <getopt.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CMD "events tail"
#define POLL_MS 50
#define DRAIN_WAIT_MS 2000
#define MAX_SUBJECTS 8

/* What `>` means here: the subjects of the event contract. ingest.rows is
 * left out: it carries CSV, not events. */
static const char *const CONTRACT_SUBJECTS[] = {
    "order.>", "import.>", "catalog.>", "stock.>", "payment.>", "refund.>",
};

typedef struct tail {
    pthread_mutex_t mu;
    long long printed, limit; /* limit 0: no limit */
    bool done;                /* guarded by mu */
    bool write_failed;
} tail;

static void print_help(FILE *out)
{
    fputs("usage: omsctl events tail [SUBJECT] [--count N]\n"
          "\n"
          "Prints each event published from now on as one JSON line:\n"
          "  {\"subject\": ..., \"type\": <Oms-Type header>, \"event\": <decoded event>}\n"
          "Events of unknown type show as {\"raw_base64\": ...}.\n"
          "\n"
          "SUBJECT is a NATS subject and may use wildcards (order.*, import.>);\n"
          "the default, like >, is every subject of the contract: order.>, import.>,\n"
          "catalog.>, stock.>, payment.>, refund.>.\n"
          "\n"
          "  -n, --count N   exit after N events\n"
          "  -h, --help      this help\n"
          "\n"
          "Stops on Ctrl-C. Exit status: 0 ok, 1 failure, 2 usage error.\n",
          out);
}

/* {"subject", "type", "event"} for msg; NULL when out of memory. */
static json_t *event_json(natsMsg *msg)
{
    const char *type = NULL;
    if (natsMsgHeader_Get(msg, JS_HDR_TYPE, &type) != NATS_OK)
        type = NULL;
    json_t *event = pbjson_decode(type, natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg));
    return json_pack("{s:s,s:s?,s:o}", "subject", natsMsg_GetSubject(msg), "type", type, "event",
                     event);
}

static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *arg)
{
    tail *t = arg;
    (void)nc, (void)sub;
    json_t *line = event_json(msg);
    pthread_mutex_lock(&t->mu);
    if (!t->done && line != NULL) {
        oms_status s = cli_print_json(line); /* takes line */
        line = NULL;
        t->write_failed = s != OMS_OK;
        t->printed++;
        t->done = t->write_failed || (t->limit > 0 && t->printed >= t->limit);
    }
    pthread_mutex_unlock(&t->mu);
    json_decref(line);
    natsMsg_Destroy(msg);
}

static bool tail_done(tail *t)
{
    pthread_mutex_lock(&t->mu);
    bool done = t->done;
    pthread_mutex_unlock(&t->mu);
    return done;
}

/* Subscribes to every subject; on failure prints which. */
static oms_status subscribe_all(js_conn *c, const char *const *subjects, size_t n,
                                natsSubscription **subs, tail *t)
{
    for (size_t i = 0; i < n; i++) {
        natsStatus st = natsConnection_Subscribe(&subs[i], js_nats(c), subjects[i], on_msg, t);
        if (st != NATS_OK) {
            cli_error("cannot subscribe to \"%s\" on NATS at %s: %s", subjects[i], cli_nats_url(),
                      natsStatus_GetText(st));
            return OMS_ENATS;
        }
    }
    return natsConnection_FlushTimeout(js_nats(c), CLI_CONNECT_WAIT_MS) == NATS_OK ? OMS_OK
                                                                                   : OMS_ENATS;
}

static void unsubscribe_all(natsSubscription **subs, size_t n)
{
    /* Drain and wait so no handler still runs when the tail state goes. */
    for (size_t i = 0; i < n; i++)
        if (subs[i] != NULL && natsSubscription_Drain(subs[i]) == NATS_OK)
            natsSubscription_WaitForDrainCompletion(subs[i], DRAIN_WAIT_MS);
    for (size_t i = 0; i < n; i++)
        natsSubscription_Destroy(subs[i]);
}

static int run_tail(const char *const *subjects, size_t n, long long limit)
{
    js_conn *c = NULL;
    natsSubscription *subs[MAX_SUBJECTS] = {NULL};
    tail t = {.limit = limit};
    int rc = CLI_EXIT_FAIL;

    pthread_mutex_init(&t.mu, NULL);
    cli_catch_signals();
    if (cli_connect(&c, CLI_CONNECT_WAIT_MS) != OMS_OK)
        goto out;
    if (subscribe_all(c, subjects, n, subs, &t) != OMS_OK)
        goto out;
    if (isatty(STDERR_FILENO))
        fprintf(stderr, "listening on NATS at %s (Ctrl-C to stop)\n", cli_nats_url());
    while (!tail_done(&t) && !cli_interrupted)
        oms_sleep_ms(POLL_MS, NULL);
    rc = t.write_failed ? CLI_EXIT_FAIL : CLI_EXIT_OK;
out:
    unsubscribe_all(subs, n);
    js_conn_destroy(c);
    pthread_mutex_destroy(&t.mu);
    return rc;
}

static bool subject_ok(const char *s)
{
    if (*s == '\0' || *s == '.' || s[strlen(s) - 1] == '.' || strstr(s, "..") != NULL)
        return false;
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || (unsigned char)*s == 0x7f)
            return false;
    return true;
}

static int events_tail(int argc, char **argv)
{
    static const struct option opts[] = {
        {"count", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    long long limit = 0;
    int opt;

    while ((opt = cli_getopt(argc, argv, "hn:", opts, CMD)) != -1) {
        if (opt == 'h') {
            print_help(stdout);
            return CLI_EXIT_OK;
        }
        if (opt != 'n' || cli_parse_int(CMD, "--count", optarg, 1, INT64_MAX, &limit) != OMS_OK)
            return CLI_EXIT_USAGE;
    }
    if (optind + 1 < argc)
        return cli_usage_error(CMD, "one SUBJECT at a time, got \"%s\" too", argv[optind + 1]);
    const char *subject = optind < argc ? argv[optind] : ">";
    if (!subject_ok(subject))
        return cli_usage_error(CMD,
                               "\"%s\" is not a NATS subject (tokens separated by dots, "
                               "no spaces, e.g. order.* or import.>)",
                               subject);
    if (strcmp(subject, ">") == 0)
        return run_tail(CONTRACT_SUBJECTS, sizeof CONTRACT_SUBJECTS / sizeof CONTRACT_SUBJECTS[0],
                        limit);
    return run_tail(&subject, 1, limit);
}

int cmd_events(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "tail") == 0)
        return events_tail(argc - 1, argv + 1);
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        print_help(stdout);
        return CLI_EXIT_OK;
    }
    if (argc < 2)
        return cli_usage_error("events", "which subcommand? (events tail [SUBJECT])");
    return cli_usage_error("events", "unknown subcommand \"%s\" (events tail [SUBJECT])", argv[1]);
}
