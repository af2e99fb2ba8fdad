/*
 * csvrec.c - libcsv callbacks gathered into whole records.
 */
#include "csvrec.h"

#include <stdlib.h>
#include <string.h>

static bool grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return true;
    size_t c = *cap ? *cap : 16;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * elem);
    if (q == NULL)
        return false;
    *p = q;
    *cap = c;
    return true;
}

static void on_field(void *data, size_t len, void *ctx)
{
    csvrec *r = ctx;
    size_t fcap = r->cap;
    if (r->oom || !grow((void **)&r->arena, &r->arena_cap, r->arena_len + len + 1, 1) ||
        !grow((void **)&r->offsets, &fcap, r->n + 1, sizeof *r->offsets)) {
        r->oom = true;
        return;
    }
    if (fcap != r->cap) {
        char **f = realloc(r->fields, fcap * sizeof *f);
        if (f == NULL) {
            r->oom = true;
            return;
        }
        r->fields = f;
        r->cap = fcap;
    }
    r->offsets[r->n++] = r->arena_len;
    if (len > 0)
        memcpy(r->arena + r->arena_len, data, len);
    r->arena_len += len;
    r->arena[r->arena_len++] = '\0';
}

static void on_record(int terminator, void *ctx)
{
    csvrec *r = ctx;
    (void)terminator;
    if (!r->oom && r->n > 0) {
        for (size_t i = 0; i < r->n; i++)
            r->fields[i] = r->arena + r->offsets[i];
        r->records++;
        r->fn(r->ctx, r->fields, r->n);
    }
    r->n = 0;
    r->arena_len = 0;
}

oms_status csvrec_init(csvrec *r, csvrec_fn fn, void *ctx)
{
    memset(r, 0, sizeof *r);
    r->fn = fn;
    r->ctx = ctx;
    return csv_init(&r->parser, 0) == 0 ? OMS_OK : OMS_ENOMEM;
}

oms_status csvrec_feed(csvrec *r, const void *data, size_t len)
{
    if (csv_parse(&r->parser, data, len, on_field, on_record, r) != len || r->oom)
        return OMS_ENOMEM; /* without CSV_STRICT libcsv fails only on memory */
    return OMS_OK;
}

oms_status csvrec_finish(csvrec *r)
{
    csv_fini(&r->parser, on_field, on_record, r);
    return r->oom ? OMS_ENOMEM : OMS_OK;
}

void csvrec_fini(csvrec *r)
{
    csv_free(&r->parser);
    free(r->arena);
    free(r->offsets);
    free(r->fields);
    memset(r, 0, sizeof *r);
}

oms_status csvrec_write(char **buf, size_t *len, size_t *cap, char *const *fields, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t flen = strlen(fields[i]);
        /* csv_write needs at most 2 * len + 2 bytes; +2 for ',' or '\n'. */
        if (!grow((void **)buf, cap, *len + 2 * flen + 4, 1))
            return OMS_ENOMEM;
        *len += csv_write(*buf + *len, *cap - *len, fields[i], flen);
        (*buf)[(*len)++] = i + 1 < n ? ',' : '\n';
    }
    return OMS_OK;
}
