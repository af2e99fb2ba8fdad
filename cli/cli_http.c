/*
 * cli_http.c - the services' admin APIs over HTTP (lib/httpc) with JSON
 * bodies (jansson), and the table of services with their URL variables.
 *
 * No session: omsctl makes a handful of calls per run, so connection reuse
 * would buy nothing and cost shared state.
 */
#include "cli.h"

#include "config.h"
#include "httpc.h"
#include "ports.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HTTP_BODY_MAX_BYTES (16u * 1024 * 1024)
#define HTTP_CONNECT_TIMEOUT_MS 2000L
#define URL_UNRESERVED "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"

const cli_service CLI_SERVICES[] = {
    {"ingest", "OMS_INGEST_URL", OMS_LOCAL_URL(OMS_PORT_INGEST)},
    {"inventory", "OMS_INVENTORY_URL", OMS_LOCAL_URL(OMS_PORT_INVENTORY)},
    {"payment", "OMS_PAYMENT_URL", OMS_LOCAL_URL(OMS_PORT_PAYMENT)},
    {"notify", "OMS_NOTIFY_URL", OMS_LOCAL_URL(OMS_PORT_NOTIFY)},
    {"refund", "OMS_REFUND_URL", OMS_LOCAL_URL(OMS_PORT_REFUND)},
    {"analytics", "OMS_ANALYTICS_URL", OMS_LOCAL_URL(OMS_PORT_ANALYTICS)},
};
const size_t CLI_N_SERVICES = sizeof CLI_SERVICES / sizeof CLI_SERVICES[0];

const cli_service *cli_service_find(const char *name)
{
    for (size_t i = 0; i < CLI_N_SERVICES; i++)
        if (strcmp(CLI_SERVICES[i].name, name) == 0)
            return &CLI_SERVICES[i];
    return NULL;
}

const char *cli_service_url(const cli_service *svc)
{
    return config_str(svc->url_env, svc->default_url);
}

void cli_service_endpoint(const cli_service *svc, const char *path, char *out, size_t out_len)
{
    const char *base = cli_service_url(svc);
    size_t len = strlen(base);
    while (len > 0 && base[len - 1] == '/')
        len--;
    snprintf(out, out_len, "%.*s%s", (int)len, base, path);
}

const char *cli_service_names(void)
{
    return "ingest, inventory, payment, notify, refund, analytics";
}

oms_status cli_http(const char *method, const char *url, const char *bearer, long timeout_ms,
                    long *status, json_t **body, char err[CLI_HTTP_ERR_LEN])
{
    char auth[512];
    const char *headers[1] = {auth};
    if (bearer != NULL)
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", bearer);
    httpc_request r = {.url = url,
                       .method = method,
                       .body = strcmp(method, "POST") == 0 ? "" : NULL,
                       .headers = headers,
                       .n_headers = bearer != NULL ? 1 : 0,
                       .response_max_bytes = HTTP_BODY_MAX_BYTES,
                       .refuse_larger = true};
    oms_status s = httpc_run(NULL, &r, 1, HTTP_CONNECT_TIMEOUT_MS, timeout_ms);
    if (s != OMS_OK) {
        snprintf(err, CLI_HTTP_ERR_LEN, "out of memory");
        goto out;
    }
    if (!r.done) {
        snprintf(err, CLI_HTTP_ERR_LEN, "%s", r.error);
        s = OMS_EIO;
        goto out;
    }
    *status = r.status;
    *body = r.response_len > 0 ? json_loadb(r.response, r.response_len, 0, NULL) : NULL;
out:
    httpc_request_fini(&r);
    return s;
}

void cli_service_unreachable(const cli_service *svc, const char *err)
{
    cli_error("cannot reach %s at %s (%s): is it running? try `make up`, or check %s", svc->name,
              cli_service_url(svc), err, svc->url_env);
}

oms_status cli_service_get(const cli_service *svc, const char *path, long timeout_ms, long *status,
                           json_t **body, char *url, size_t url_len)
{
    char full[CLI_URL_LEN], err[CLI_HTTP_ERR_LEN];
    cli_service_endpoint(svc, path, full, sizeof full);
    if (url != NULL)
        snprintf(url, url_len, "%s", full);
    oms_status s = cli_http("GET", full, NULL, timeout_ms, status, body, err);
    if (s == OMS_EIO)
        cli_service_unreachable(svc, err);
    return s;
}

oms_status cli_url_escape(const char *text, char *out, size_t out_len)
{
    static const char HEX[] = "0123456789ABCDEF";
    size_t need = 1;
    for (const char *p = text; *p; p++)
        need += strchr(URL_UNRESERVED, *p) != NULL ? 1 : 3;
    if (need > out_len)
        return OMS_EINVAL;
    char *o = out;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (strchr(URL_UNRESERVED, *p) != NULL) {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = HEX[*p >> 4];
            *o++ = HEX[*p & 0xf];
        }
    }
    *o = '\0';
    return OMS_OK;
}

bool cli_http_no_route(long status, const json_t *body)
{
    return status == 404 && strncmp(cli_json_error(body), "no route", 8) == 0;
}

const char *cli_json_error(const json_t *body)
{
    const char *e = json_string_value(json_object_get(body, "error"));
    return e ? e : "";
}

const char *cli_json_text(const json_t *obj, const char *key, char *out, size_t out_len)
{
    const json_t *v = json_object_get(obj, key);
    if (json_is_string(v))
        snprintf(out, out_len, "%s", json_string_value(v));
    else if (json_is_integer(v))
        snprintf(out, out_len, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        snprintf(out, out_len, "%g", json_real_value(v));
    else if (json_is_boolean(v))
        snprintf(out, out_len, "%s", json_is_true(v) ? "true" : "false");
    else
        snprintf(out, out_len, "-");
    return out;
}

oms_status cli_print_json(json_t *json)
{
    oms_status s = OMS_OK;
    if (json == NULL)
        return OMS_ENOMEM;
    /* 15 digits print 1.182 as 1.182, not 1.1819999999999999. */
    size_t flags = JSON_COMPACT | JSON_REAL_PRECISION(15);
    if (json_dumpf(json, stdout, flags) != 0 || fputc('\n', stdout) == EOF || fflush(stdout) != 0)
        s = OMS_EIO;
    json_decref(json);
    return s;
}
