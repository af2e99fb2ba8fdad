/*
 * smtp_sink.c - an SMTP server for the notify integration tests: enough of
 * RFC 5321 for libcurl (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT), one
 * thread per connection, plain sockets.
 *
 *   smtp_sink port=<n> dir=<directory> [mode=ok|reject]
 *
 * Each message accepted is stored as <dir>/<seq>.eml, written to a
 * temporary name and renamed, so a reader counting files never sees half a
 * message: first "X-Envelope-From: <addr>" and one "X-Envelope-To: <addr>"
 * per recipient, then the message as received, dot-unstuffed. mode=reject
 * answers 550 to every RCPT (a mailbox that does not exist).
 * SIGTERM or SIGINT: exits 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define LINE_MAX_BYTES 4096
#define RCPT_MAX 16
#define ADDR_MAX 320

typedef struct sink {
    const char *dir;
    bool reject;
    atomic_long seq;
} sink;

typedef struct session {
    sink *sink;
    int fd;
    char buf[LINE_MAX_BYTES * 2];
    size_t len;
    char from[ADDR_MAX];
    char rcpt[RCPT_MAX][ADDR_MAX];
    int n_rcpt;
} session;

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static bool reply(session *s, const char *text)
{
    size_t len = strlen(text);
    return send(s->fd, text, len, MSG_NOSIGNAL) == (ssize_t)len;
}

/* Reads one line (without CRLF) into out; false at EOF or on error. */
static bool read_line(session *s, char *out, size_t out_len)
{
    for (;;) {
        char *nl = memchr(s->buf, '\n', s->len);
        if (nl != NULL) {
            size_t n = (size_t)(nl - s->buf), keep = n;
            if (keep > 0 && s->buf[keep - 1] == '\r')
                keep--;
            if (keep >= out_len)
                keep = out_len - 1;
            memcpy(out, s->buf, keep);
            out[keep] = '\0';
            memmove(s->buf, nl + 1, s->len - n - 1);
            s->len -= n + 1;
            return true;
        }
        if (s->len == sizeof s->buf)
            s->len = 0; /* an over-long line: dropped */
        ssize_t got = recv(s->fd, s->buf + s->len, sizeof s->buf - s->len, 0);
        if (got <= 0)
            return false;
        s->len += (size_t)got;
    }
}

/* The address inside "<...>" after the command's colon. */
static void path_arg(const char *line, char *out, size_t out_len)
{
    const char *lt = strchr(line, '<'), *gt = lt ? strchr(lt, '>') : NULL;
    size_t n = lt && gt ? (size_t)(gt - lt - 1) : 0;
    if (n >= out_len)
        n = out_len - 1;
    memcpy(out, lt ? lt + 1 : "", n);
    out[n] = '\0';
}

/* Receives the message after DATA and stores it; false when the client left. */
static bool receive_data(session *s)
{
    char tmp[1024], final[1024], line[LINE_MAX_BYTES];
    long seq = atomic_fetch_add(&s->sink->seq, 1) + 1;
    snprintf(tmp, sizeof tmp, "%s/.%06ld.tmp", s->sink->dir, seq);
    snprintf(final, sizeof final, "%s/%06ld.eml", s->sink->dir, seq);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return reply(s, "451 cannot store the message\r\n");
    fprintf(f, "X-Envelope-From: %s\n", s->from);
    for (int i = 0; i < s->n_rcpt; i++)
        fprintf(f, "X-Envelope-To: %s\n", s->rcpt[i]);
    bool done = false;
    while (!done && read_line(s, line, sizeof line)) {
        if (strcmp(line, ".") == 0)
            done = true;
        else
            fprintf(f, "%s\n", line[0] == '.' ? line + 1 : line);
    }
    fclose(f);
    if (!done) {
        unlink(tmp);
        return false;
    }
    rename(tmp, final);
    fprintf(stderr, "smtp_sink: stored %s\n", final);
    s->n_rcpt = 0;
    s->from[0] = '\0';
    return reply(s, "250 2.0.0 stored\r\n");
}

static bool command(session *s, const char *line)
{
    if (strncasecmp(line, "EHLO", 4) == 0)
        return reply(s, "250-smtp_sink\r\n250-8BITMIME\r\n250 SIZE 10485760\r\n");
    if (strncasecmp(line, "HELO", 4) == 0)
        return reply(s, "250 smtp_sink\r\n");
    if (strncasecmp(line, "MAIL FROM:", 10) == 0) {
        path_arg(line, s->from, sizeof s->from);
        s->n_rcpt = 0;
        return reply(s, "250 2.1.0 ok\r\n");
    }
    if (strncasecmp(line, "RCPT TO:", 8) == 0) {
        if (s->sink->reject)
            return reply(s, "550 5.1.1 no such mailbox\r\n");
        if (s->n_rcpt == RCPT_MAX)
            return reply(s, "452 4.5.3 too many recipients\r\n");
        path_arg(line, s->rcpt[s->n_rcpt++], ADDR_MAX);
        return reply(s, "250 2.1.5 ok\r\n");
    }
    if (strncasecmp(line, "DATA", 4) == 0) {
        if (s->n_rcpt == 0)
            return reply(s, "503 5.5.1 no recipients\r\n");
        return reply(s, "354 end with <CRLF>.<CRLF>\r\n") && receive_data(s);
    }
    if (strncasecmp(line, "RSET", 4) == 0) {
        s->n_rcpt = 0;
        s->from[0] = '\0';
        return reply(s, "250 2.0.0 ok\r\n");
    }
    if (strncasecmp(line, "NOOP", 4) == 0)
        return reply(s, "250 2.0.0 ok\r\n");
    if (strncasecmp(line, "QUIT", 4) == 0) {
        reply(s, "221 2.0.0 bye\r\n");
        return false;
    }
    return reply(s, "502 5.5.2 command not implemented\r\n");
}

static void *session_main(void *arg)
{
    session *s = arg;
    char line[LINE_MAX_BYTES];
    if (reply(s, "220 smtp_sink ESMTP\r\n"))
        while (read_line(s, line, sizeof line) && command(s, line))
            ;
    close(s->fd);
    free(s);
    return NULL;
}

static int listen_on(long port)
{
    struct sockaddr_in addr;
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 64) != 0) {
        perror("smtp_sink: listen");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

int main(int argc, char **argv)
{
    sink k = {.dir = NULL};
    long port = 0;
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "port=", 5) == 0)
            port = strtol(argv[i] + 5, NULL, 10);
        else if (strncmp(argv[i], "dir=", 4) == 0)
            k.dir = argv[i] + 4;
        else if (strcmp(argv[i], "mode=reject") == 0)
            k.reject = true;
        else if (strcmp(argv[i], "mode=ok") != 0)
            port = 0;
    }
    if (port <= 0 || port > 65535 || k.dir == NULL) {
        fprintf(stderr, "usage: smtp_sink port=<n> dir=<directory> [mode=ok|reject]\n");
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: accept returns EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    int fd = listen_on(port);
    if (fd < 0)
        return 1;
    fprintf(stderr, "smtp_sink: listening on 127.0.0.1:%ld, storing in %s\n", port, k.dir);
    while (!stopping) {
        int c = accept(fd, NULL, NULL);
        if (c < 0) {
            if (errno != EINTR)
                perror("smtp_sink: accept");
            continue;
        }
        session *s = calloc(1, sizeof *s);
        pthread_t t;
        s->sink = &k;
        s->fd = c;
        if (pthread_create(&t, NULL, session_main, s) != 0) {
            close(c);
            free(s);
            continue;
        }
        pthread_detach(t);
    }
    close(fd);
    return 0;
}
