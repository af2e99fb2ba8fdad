/*
 * csvrec.h - streaming CSV records on libcsv (RFC 4180: quotes, embedded
 * commas and newlines, CRLF). Feed bytes in any pieces; each complete record
 * is handed to a callback. Memory holds one record, whatever the input size.
 * Blank lines are skipped; spaces around unquoted fields are trimmed.
 */
#ifndef OMS_CSVREC_H
#define OMS_CSVREC_H

#include "oms.h"

#include <csv.h>

/* fields[i] are NUL-terminated, borrowed until the callback returns. */
typedef void (*csvrec_fn)(void *ctx, char *const *fields, size_t n);

typedef struct csvrec {
    struct csv_parser parser;
    csvrec_fn fn;
    void *ctx;
    char *arena;          /* the current record's fields, NUL-separated */
    size_t arena_len, arena_cap;
    size_t *offsets;      /* start of each field in arena */
    char **fields;
    size_t n, cap;
    size_t records;       /* records delivered so far */
    bool oom;
} csvrec;

oms_status csvrec_init(csvrec *r, csvrec_fn fn, void *ctx);
/* OMS_ENOMEM on allocation failure; malformed quoting is read leniently. */
oms_status csvrec_feed(csvrec *r, const void *data, size_t len);
/* Delivers a last record that has no line end. */
oms_status csvrec_finish(csvrec *r);
void csvrec_fini(csvrec *r);

/* Appends fields as one CSV line, every field quoted ("\"a\",\"b,c\"\n"), to *buf (realloc'd as needed;
 * *len and *cap track it). Quoting is libcsv's. */
oms_status csvrec_write(char **buf, size_t *len, size_t *cap, char *const *fields, size_t n);

#endif
