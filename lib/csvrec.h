/*
 * csvrec.h - streaming CSV records on libcsv (RFC 4180: quotes, embedded
 * commas and newlines, CRLF). Feed bytes in any pieces; each complete record
 * is handed to a callback. Memory holds one record, whatever the input size,
 * and with limits set (csvrec_set_limits) one record is at most
 * fields_max * (field_bytes_max + 1) bytes: a field is refused while it is
 * read, never buffered whole first.
 * Blank lines are skipped; spaces around unquoted fields are trimmed.
 *
 * The input is read strictly, so a record is never other than what the
 * bytes say: a misplaced or unclosed quote stops parsing (libcsv's
 * CSV_STRICT), and a NUL byte, which would silently cut a C string short,
 * makes its record faulty.
 */
#ifndef OMS_CSVREC_H
#define OMS_CSVREC_H

#include "oms.h"

#include <csv.h>

#define CSVREC_ERR_LEN 200

/* fields[i] are NUL-terminated, borrowed until the callback returns. */
typedef void (*csvrec_fn)(void *ctx, char *const *fields, size_t n);

typedef enum csvrec_fault {
    CSVREC_FAULT_NONE = 0,
    /* Record faults: the record is refused, the input after it is readable. */
    CSVREC_FAULT_NUL,             /* a field holds a NUL byte */
    CSVREC_FAULT_TOO_MANY_FIELDS, /* more than fields_max fields */
    /* Input faults: nothing after this point can be read. */
    CSVREC_FAULT_FIELD_TOO_LONG, /* more than field_bytes_max bytes */
    CSVREC_FAULT_BAD_QUOTE,      /* a quote inside an unquoted field, or text after one closed */
    CSVREC_FAULT_UNCLOSED_QUOTE, /* a quoted field still open at a parse error or the end */
} csvrec_fault;

/* Where and what. record and field count from 1 (blank lines are not
 * records); for an unclosed quote they name the field where it opened. */
typedef struct csvrec_error {
    csvrec_fault fault;
    size_t record;
    size_t field;                   /* 0 for CSVREC_FAULT_TOO_MANY_FIELDS */
    size_t byte;                    /* CSVREC_FAULT_NUL: position in the field, from 1 */
    char what[CSVREC_ERR_LEN];      /* "contains a NUL byte at byte 6", no position */
    char text[CSVREC_ERR_LEN + 64]; /* "row 3, field 2 " + what, or "row 3 " + what */
} csvrec_error;

/* Called instead of csvrec_fn for a record with a record fault, with the
 * fields that were kept (the first fields_max; a field with a NUL is cut
 * there), so the caller can still name the record (an order id). e and
 * fields are borrowed until it returns. Parsing goes on with the next
 * record. */
typedef void (*csvrec_fault_fn)(void *ctx, const csvrec_error *e, char *const *fields, size_t n);

typedef struct csvrec {
    struct csv_parser parser;
    csvrec_fn fn;
    csvrec_fault_fn fault_fn;
    void *ctx;
    size_t field_bytes_max, fields_max; /* 0: no limit */
    size_t wide_index, wide_bytes_max;  /* one field allowed more (0: none) */
    char *arena;                        /* the current record's fields, NUL-separated */
    size_t arena_len, arena_cap;
    size_t *offsets; /* start of each field in arena */
    char **fields;
    size_t n, cap;
    size_t fields_seen; /* fields of the current record, kept or not */
    size_t records;     /* records delivered to fn so far */
    size_t seen;        /* records ended so far, faulty ones included */
    csvrec_error error; /* the current record's fault, or the input fault */
    bool stopped;       /* an input fault (or a record fault without fault_fn) */
    bool oom;
} csvrec;

oms_status csvrec_init(csvrec *r, csvrec_fn fn, void *ctx);

/* Limits what one record may hold; 0 leaves a limit off (the default). */
void csvrec_set_limits(csvrec *r, size_t field_bytes_max, size_t fields_max);

/* Lets field index (from 0) of every record hold up to bytes_max bytes
 * instead of field_bytes_max (a JSON cell); only with limits set. */
void csvrec_set_wide_field(csvrec *r, size_t index, size_t bytes_max);

/* Reports record faults to fn and goes on; without it (the default) the first
 * record fault stops parsing like an input fault. */
void csvrec_set_fault_fn(csvrec *r, csvrec_fault_fn fn);

/* OMS_ENOMEM on allocation failure; OMS_EINVAL once parsing stopped on a
 * fault, described by csvrec_error_of (later feeds do nothing). */
oms_status csvrec_feed(csvrec *r, const void *data, size_t len);
/* Delivers a last record that has no line end; OMS_EINVAL on a quote still
 * open at the end, or an earlier fault. */
oms_status csvrec_finish(csvrec *r);
void csvrec_fini(csvrec *r);

/* Field i (from 0) of the record being read, as far as it was read before
 * parsing stopped, or NULL when that field was not reached. Borrowed from r. */
const char *csvrec_field_so_far(const csvrec *r, size_t i);

/* The fault that stopped parsing (fault CSVREC_FAULT_NONE when none);
 * borrowed from r. */
const csvrec_error *csvrec_error_of(const csvrec *r);

/* Appends fields as one CSV line, every field quoted ("\"a\",\"b,c\"\n"), to *buf (realloc'd as
 * needed; *len and *cap track it). Quoting is libcsv's. */
oms_status csvrec_write(char **buf, size_t *len, size_t *cap, char *const *fields, size_t n);

#endif
