/*
 * csvrec.c - libcsv callbacks gathered into whole records.
 *
 * libcsv is run in strict mode, so malformed quoting stops it where it is
 * found instead of merging the rows that follow into one field. With a field
 * limit, input is fed in small pieces and the field being read is measured
 * after each one: a field past the limit stops parsing having buffered at
 * most one piece more than the limit, whatever the input holds.
 */
#include "csvrec.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What libcsv may read past the field limit before the field is measured. */
#define CSVREC_PIECE_BYTES 512

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

static void set_fault(csvrec *r, csvrec_fault fault, size_t field, size_t byte, const char *fmt,
                      ...) __attribute__((format(printf, 5, 6)));

/* Records the fault of the current record (number seen + 1). */
static void set_fault(csvrec *r, csvrec_fault fault, size_t field, size_t byte, const char *fmt,
                      ...)
{
    csvrec_error *e = &r->error;
    va_list ap;
    e->fault = fault;
    e->record = r->seen + 1;
    e->field = field;
    e->byte = byte;
    va_start(ap, fmt);
    vsnprintf(e->what, sizeof e->what, fmt, ap);
    va_end(ap);
    if (field > 0)
        snprintf(e->text, sizeof e->text, "row %zu, field %zu %s", e->record, field, e->what);
    else
        snprintf(e->text, sizeof e->text, "row %zu %s", e->record, e->what);
}

/* The limit of the field being read (fields_seen counts the ones before). */
static size_t limit_here(const csvrec *r)
{
    return r->wide_bytes_max > 0 && r->fields_seen == r->wide_index ? r->wide_bytes_max
                                                                    : r->field_bytes_max;
}

static void stop_too_long(csvrec *r)
{
    set_fault(r, CSVREC_FAULT_FIELD_TOO_LONG, r->fields_seen + 1, 0, "is longer than %zu bytes",
              limit_here(r));
    r->stopped = true;
}

static bool store_field(csvrec *r, const char *data, size_t len)
{
    size_t fcap = r->cap;
    if (!grow((void **)&r->arena, &r->arena_cap, r->arena_len + len + 1, 1) ||
        !grow((void **)&r->offsets, &fcap, r->n + 1, sizeof *r->offsets))
        return false;
    if (fcap != r->cap) {
        char **f = realloc(r->fields, fcap * sizeof *f);
        if (f == NULL)
            return false;
        r->fields = f;
        r->cap = fcap;
    }
    r->offsets[r->n++] = r->arena_len;
    if (len > 0)
        memcpy(r->arena + r->arena_len, data, len);
    r->arena_len += len;
    r->arena[r->arena_len++] = '\0';
    return true;
}

static void on_field(void *data, size_t len, void *ctx)
{
    csvrec *r = ctx;
    if (r->stopped || r->oom)
        return;
    if (r->field_bytes_max > 0 && len > limit_here(r)) {
        stop_too_long(r);
        return;
    }
    size_t field = ++r->fields_seen;
    if (r->fields_max > 0 && field > r->fields_max) {
        if (r->error.fault == CSVREC_FAULT_NONE)
            set_fault(r, CSVREC_FAULT_TOO_MANY_FIELDS, 0, 0, "has more than %zu fields",
                      r->fields_max);
        return; /* memory holds fields_max fields, however many follow */
    }
    const char *nul = len > 0 ? memchr(data, '\0', len) : NULL;
    if (nul != NULL && r->error.fault == CSVREC_FAULT_NONE) {
        size_t byte = (size_t)(nul - (const char *)data) + 1;
        set_fault(r, CSVREC_FAULT_NUL, field, byte, "contains a NUL byte at byte %zu", byte);
    }
    if (!store_field(r, data, len))
        r->oom = true;
}

static void on_record(int terminator, void *ctx)
{
    csvrec *r = ctx;
    (void)terminator;
    if (r->stopped || r->oom)
        return;
    for (size_t i = 0; i < r->n; i++)
        r->fields[i] = r->arena + r->offsets[i];
    if (r->error.fault != CSVREC_FAULT_NONE) {
        if (r->fault_fn == NULL) {
            r->stopped = true;
            return;
        }
        r->fault_fn(r->ctx, &r->error, r->fields, r->n);
        memset(&r->error, 0, sizeof r->error);
    } else if (r->n > 0) {
        r->records++;
        r->fn(r->ctx, r->fields, r->n);
    }
    r->seen++;
    r->n = 0;
    r->fields_seen = 0;
    r->arena_len = 0;
}

oms_status csvrec_init(csvrec *r, csvrec_fn fn, void *ctx)
{
    memset(r, 0, sizeof *r);
    r->fn = fn;
    r->ctx = ctx;
    return csv_init(&r->parser, CSV_STRICT | CSV_STRICT_FINI) == 0 ? OMS_OK : OMS_ENOMEM;
}

void csvrec_set_limits(csvrec *r, size_t field_bytes_max, size_t fields_max)
{
    r->field_bytes_max = field_bytes_max;
    r->fields_max = fields_max;
}

void csvrec_set_wide_field(csvrec *r, size_t index, size_t bytes_max)
{
    r->wide_index = index;
    r->wide_bytes_max = bytes_max;
}

void csvrec_set_fault_fn(csvrec *r, csvrec_fault_fn fn)
{
    r->fault_fn = fn;
}

/* A quoted field whose text already runs over a line end was most likely
 * never closed: name that, at the field where the quote opened, rather than
 * the stray quote found rows later. */
static void stop_on_quote(csvrec *r)
{
    const struct csv_parser *p = &r->parser;
    bool spans_lines = p->quoted && p->entry_buf != NULL &&
                       (memchr(p->entry_buf, '\n', p->entry_pos) != NULL ||
                        memchr(p->entry_buf, '\r', p->entry_pos) != NULL);
    if (spans_lines)
        set_fault(r, CSVREC_FAULT_UNCLOSED_QUOTE, r->fields_seen + 1, 0,
                  "starts a quoted field that is never properly closed");
    else
        set_fault(r, CSVREC_FAULT_BAD_QUOTE, r->fields_seen + 1, 0,
                  "has a misplaced quote (a quote inside a field is written \"\", and a closing "
                  "quote is followed by a comma or a line end)");
    r->stopped = true;
}

static oms_status feed_piece(csvrec *r, const char *data, size_t len)
{
    size_t used = csv_parse(&r->parser, data, len, on_field, on_record, r);
    if (used != len && !r->stopped) {
        if (csv_error(&r->parser) == CSV_EPARSE)
            stop_on_quote(r);
        else
            r->oom = true;
    }
    if (!r->stopped && r->field_bytes_max > 0 && r->parser.entry_pos > limit_here(r))
        stop_too_long(r);
    if (r->oom)
        return OMS_ENOMEM;
    return r->stopped ? OMS_EINVAL : OMS_OK;
}

oms_status csvrec_feed(csvrec *r, const void *data, size_t len)
{
    const char *p = data;
    size_t piece = r->field_bytes_max > 0 ? CSVREC_PIECE_BYTES : len;
    oms_status s = r->stopped ? OMS_EINVAL : OMS_OK;
    while (s == OMS_OK && len > 0) {
        size_t n = len < piece ? len : piece;
        s = feed_piece(r, p, n);
        p += n;
        len -= n;
    }
    return s;
}

oms_status csvrec_finish(csvrec *r)
{
    if (r->stopped)
        return OMS_EINVAL;
    if (csv_fini(&r->parser, on_field, on_record, r) != 0 && !r->stopped) {
        set_fault(r, CSVREC_FAULT_UNCLOSED_QUOTE, r->fields_seen + 1, 0,
                  "starts a quoted field that is never properly closed");
        r->stopped = true;
    }
    if (r->oom)
        return OMS_ENOMEM;
    return r->stopped ? OMS_EINVAL : OMS_OK;
}

const char *csvrec_field_so_far(const csvrec *r, size_t i)
{
    return i < r->n ? r->arena + r->offsets[i] : NULL;
}

const csvrec_error *csvrec_error_of(const csvrec *r)
{
    return &r->error;
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
