/*
 * test_nats_tls.c - TLS between OMS and NATS (lib/js.c, OMS_NATS_TLS_*),
 * against real nats-server processes of its own on free loopback ports: a
 * CA, a server certificate for 127.0.0.1/localhost and a client certificate
 * are made with the openssl command, one server requires TLS and another
 * also verifies client certificates. A client with the CA connects; one
 * without it, or with another CA, is refused at once with OMS_ENATS (not
 * retried in the background); the verifying server refuses a client
 * without a certificate and takes one with it. The stack's own nats-server
 * is not used.
 */
#include "testenv.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define PATH_LEN 512

typedef struct tls_fixture {
    char dir[64];
    int tls_port;    /* TLS required */
    int verify_port; /* TLS and a client certificate required */
    pid_t tls_pid;
    pid_t verify_pid;
} tls_fixture;

static tls_fixture fx;

static void path_in(char out[PATH_LEN], const char *file)
{
    snprintf(out, PATH_LEN, "%s/%s", fx.dir, file);
}

static void run(const char *cmd)
{
    if (system(cmd) != 0) {
        fprintf(stderr, "failed: %s\n", cmd);
        fail();
    }
}

/* A CA (name.pem, name-key.pem) and a certificate signed by it. */
static void make_certificates(void)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "cd %s && exec >openssl.log 2>&1 && "
             "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=oms-test-ca "
             "-keyout ca-key.pem -out ca.pem && "
             "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=other-ca "
             "-keyout other-ca-key.pem -out other-ca.pem && "
             "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' >server.ext && "
             "openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server-key.pem "
             "-out server.csr && "
             "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial "
             "-days 2 -extfile server.ext -out server.pem && "
             "printf 'extendedKeyUsage=clientAuth\\n' >client.ext && "
             "openssl req -newkey rsa:2048 -nodes -subj /CN=oms-client -keyout client-key.pem "
             "-out client.csr && "
             "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial "
             "-days 2 -extfile client.ext -out client.pem",
             fx.dir);
    run(cmd);
}

static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static bool port_open(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    bool open = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return open;
}

/* Starts nats-server on port with TLS (verify: client certificates too). */
static pid_t start_server(const char *name, int port, bool verify)
{
    char conf[PATH_LEN], cert[PATH_LEN], key[PATH_LEN], ca[PATH_LEN], log[PATH_LEN + 8];
    path_in(conf, name);
    path_in(cert, "server.pem");
    path_in(key, "server-key.pem");
    path_in(ca, "ca.pem");
    snprintf(log, sizeof log, "%s.log", conf);
    FILE *f = fopen(conf, "w");
    assert_non_null(f);
    fprintf(f,
            "listen: 127.0.0.1:%d\n"
            "tls {\n  cert_file: \"%s\"\n  key_file: \"%s\"\n  ca_file: \"%s\"\n"
            "  verify: %s\n  timeout: 2\n}\n",
            port, cert, key, ca, verify ? "true" : "false");
    fclose(f);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execlp("nats-server", "nats-server", "-c", conf, "-l", log, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 100 && !port_open(port); i++)
        usleep(50000);
    assert_true(port_open(port));
    return pid;
}

static int setup(void **state)
{
    (void)state;
    snprintf(fx.dir, sizeof fx.dir, "/tmp/oms-nats-tls-XXXXXX");
    assert_non_null(mkdtemp(fx.dir));
    make_certificates();
    fx.tls_port = free_port();
    fx.tls_pid = start_server("tls.conf", fx.tls_port, false);
    fx.verify_port = free_port();
    fx.verify_pid = start_server("verify.conf", fx.verify_port, true);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pid_t pids[] = {fx.tls_pid, fx.verify_pid};
    for (size_t i = 0; i < 2; i++)
        if (pids[i] > 0) {
            kill(pids[i], SIGTERM);
            waitpid(pids[i], NULL, 0);
        }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", fx.dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Connects with id to the server on port; *c is set only on OMS_OK. */
static oms_status connect_tls(int port, const js_identity *id, js_conn **c)
{
    char url[64];
    snprintf(url, sizeof url, "nats://127.0.0.1:%d", port);
    return js_connect_as(c, url, id, "tls-test");
}

/* A connection that is up answers a flush (a PING/PONG over TLS). */
static void assert_usable(js_conn *c)
{
    assert_true(js_connected(c));
    assert_int_equal(natsConnection_FlushTimeout(js_nats(c), 5000), NATS_OK);
    const char *url = NULL;
    char buf[128];
    assert_int_equal(natsConnection_GetConnectedUrl(js_nats(c), buf, sizeof buf), NATS_OK);
    url = buf;
    assert_non_null(strstr(url, "127.0.0.1"));
}

static void test_connects_with_the_ca(void **state)
{
    (void)state;
    char ca[PATH_LEN];
    path_in(ca, "ca.pem");
    js_identity id = {.tls_ca = ca};
    js_conn *c = NULL;
    assert_int_equal(connect_tls(fx.tls_port, &id, &c), OMS_OK);
    assert_usable(c);
    js_conn_destroy(c);
}

/* Without TLS settings nats.c starts TLS when the server requires it, and
 * finds no CA it trusts for the server's certificate: refused at once. */
static void test_refused_without_the_ca(void **state)
{
    (void)state;
    js_identity id = {0};
    js_conn *c = NULL;
    assert_int_equal(connect_tls(fx.tls_port, &id, &c), OMS_ENATS);
    assert_null(c);
    natsStatus st = NATS_OK;
    nats_GetLastError(&st);
    assert_int_equal(st, NATS_SSL_ERROR); /* nats.c went TLS as the server asked */
}

/* A certificate signed by another CA fails the handshake: refused at once. */
static void test_refused_with_another_ca(void **state)
{
    (void)state;
    char ca[PATH_LEN];
    path_in(ca, "other-ca.pem");
    js_identity id = {.tls_ca = ca};
    js_conn *c = NULL;
    assert_int_equal(connect_tls(fx.tls_port, &id, &c), OMS_ENATS);
    assert_null(c);
    natsStatus st = NATS_OK;
    const char *detail = nats_GetLastError(&st);
    fprintf(stderr, "another CA: %s (%s)\n", natsStatus_GetText(st), detail ? detail : "");
    assert_int_equal(st, NATS_SSL_ERROR);
}

/* A CA file that is not a certificate is refused when the options are set. */
static void test_refused_with_a_bad_ca_file(void **state)
{
    (void)state;
    char conf[PATH_LEN];
    path_in(conf, "tls.conf");
    js_identity id = {.tls_ca = conf};
    js_conn *c = NULL;
    assert_int_equal(connect_tls(fx.tls_port, &id, &c), OMS_ENATS);
    assert_null(c);
}

/* The verifying server: no client certificate, no connection; with the
 * one the CA signed, a usable one. */
static void test_client_certificate_required(void **state)
{
    (void)state;
    char ca[PATH_LEN], cert[PATH_LEN], key[PATH_LEN];
    path_in(ca, "ca.pem");
    path_in(cert, "client.pem");
    path_in(key, "client-key.pem");
    js_identity without = {.tls_ca = ca};
    js_conn *c = NULL;
    /* TLS 1.3: the server's refusal comes after the client's handshake, as
     * a closed connection where nats.c expected its PONG. */
    assert_int_equal(connect_tls(fx.verify_port, &without, &c), OMS_ENATS);
    assert_null(c);
    natsStatus st = NATS_OK;
    nats_GetLastError(&st);
    assert_int_equal(st, NATS_PROTOCOL_ERROR);
    js_identity with = {.tls_ca = ca, .tls_cert = cert, .tls_key = key};
    assert_int_equal(connect_tls(fx.verify_port, &with, &c), OMS_OK);
    assert_usable(c);
    js_conn_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connects_with_the_ca),
        cmocka_unit_test(test_refused_without_the_ca),
        cmocka_unit_test(test_refused_with_another_ca),
        cmocka_unit_test(test_refused_with_a_bad_ca_file),
        cmocka_unit_test(test_client_certificate_required),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
