/*
 * pgcopy.h - rows for PostgreSQL's COPY ... FROM STDIN (text format), built
 * in memory and sent in one round trip: the fast way to write many rows.
 */
#ifndef OMS_PGCOPY_H
#define OMS_PGCOPY_H

#include "oms.h"

#include <libpq-fe.h>

typedef struct pgcopy {
    char *data;
    size_t len, cap;
    size_t rows;
    bool col_open; /* a column was written on the current row */
    bool oom;
} pgcopy;

void pgcopy_init(pgcopy *b);
void pgcopy_fini(pgcopy *b);
void pgcopy_reset(pgcopy *b);

/* Column writers; errors (out of memory) are sticky and reported by send. */
void pgcopy_text(pgcopy *b, const char *s); /* NULL writes SQL NULL */
void pgcopy_int(pgcopy *b, int64_t v);
void pgcopy_bytea(pgcopy *b, const void *data, size_t len);
void pgcopy_null(pgcopy *b);
void pgcopy_end_row(pgcopy *b);

/* Runs `copy_sql` ("COPY t (a, b) FROM STDIN") with the buffered rows inside
 * the caller's transaction, then resets the buffer. No rows: does nothing. */
oms_status pgcopy_send(pgcopy *b, PGconn *c, const char *copy_sql);

#endif
