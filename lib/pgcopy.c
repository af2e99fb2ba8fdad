/*
 * pgcopy.c - COPY text format: tab-separated, \N for NULL, backslash escapes.
 */
#include "pgcopy.h"

#include "pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pgcopy_init(pgcopy *b)
{
    memset(b, 0, sizeof *b);
}

void pgcopy_fini(pgcopy *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

void pgcopy_reset(pgcopy *b)
{
    b->len = 0;
    b->rows = 0;
    b->col_open = false;
    b->oom = false;
}

static bool reserve(pgcopy *b, size_t extra)
{
    if (b->oom)
        return false;
    if (b->len + extra <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 8192;
    while (cap < b->len + extra)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (p == NULL) {
        b->oom = true;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

static void separator(pgcopy *b)
{
    if (b->col_open)
        b->data[b->len++] = '\t';
    b->col_open = true;
}

void pgcopy_text(pgcopy *b, const char *s)
{
    if (s == NULL) {
        pgcopy_null(b);
        return;
    }
    size_t n = strlen(s);
    if (!reserve(b, 2 * n + 2))
        return;
    separator(b);
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '\\' || ch == '\t' || ch == '\n' || ch == '\r') {
            b->data[b->len++] = '\\';
            ch = (char)(ch == '\t' ? 't' : ch == '\n' ? 'n' : ch == '\r' ? 'r' : '\\');
        }
        b->data[b->len++] = ch;
    }
}

void pgcopy_int(pgcopy *b, int64_t v)
{
    if (!reserve(b, 24))
        return;
    separator(b);
    b->len += (size_t)snprintf(b->data + b->len, 23, "%lld", (long long)v);
}

void pgcopy_bytea(pgcopy *b, const void *data, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    if (!reserve(b, 2 * len + 5))
        return;
    separator(b);
    /* "\\x..." : the backslash is doubled for COPY's own escaping. */
    memcpy(b->data + b->len, "\\\\x", 3);
    b->len += 3;
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        b->data[b->len++] = hex[p[i] >> 4];
        b->data[b->len++] = hex[p[i] & 15];
    }
}

void pgcopy_null(pgcopy *b)
{
    if (!reserve(b, 4))
        return;
    separator(b);
    memcpy(b->data + b->len, "\\N", 2);
    b->len += 2;
}

void pgcopy_end_row(pgcopy *b)
{
    if (!reserve(b, 1))
        return;
    b->data[b->len++] = '\n';
    b->col_open = false;
    b->rows++;
}

oms_status pgcopy_send(pgcopy *b, PGconn *c, const char *copy_sql)
{
    oms_status s = OMS_OK;
    if (b->oom) {
        pgcopy_reset(b);
        return OMS_ENOMEM;
    }
    if (b->rows == 0)
        return OMS_OK;
    PGresult *res = PQexec(c, copy_sql);
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        s = pg_error(c, res, copy_sql);
        PQclear(res);
        goto out;
    }
    PQclear(res);
    if (b->len > INT32_MAX || PQputCopyData(c, b->data, (int)b->len) != 1 ||
        PQputCopyEnd(c, NULL) != 1) {
        s = pg_error(c, NULL, copy_sql);
        goto out;
    }
    res = PQgetResult(c);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        s = pg_error(c, res, copy_sql);
    PQclear(res);
    /* Drain to the end of the command so the connection is ready again. */
    while ((res = PQgetResult(c)) != NULL)
        PQclear(res);
out:
    pgcopy_reset(b);
    return s;
}
