/*
 * pg.h - PostgreSQL through libpq: connections bound to one schema, error
 * classification (transient or not), transactions and migrations.
 *
 * Every connection sets search_path to the service's own schema, so a
 * service's SQL names its tables unqualified and cannot reach another's.
 */
#ifndef OMS_PG_H
#define OMS_PG_H

#include "oms.h"

#include <libpq-fe.h>

/* One versioned migration; name sorts in apply order ("001_init.sql"). */
typedef struct pg_migration {
    const char *name;
    const char *sql;
} pg_migration;

/* The runtime's own tables (outbox, inbox, dead_letters), applied to every
 * service schema before the service's migrations. */
extern const pg_migration oms_runtime_migrations[];

/* Connects and sets search_path to schema (created if missing). app is the
 * application_name shown in pg_stat_activity. Caller frees with PQfinish. */
oms_status pg_connect(PGconn **out, const char *dsn, const char *schema, const char *app);

/* Applies the runtime's and then the service's migrations not yet recorded in
 * <schema>.schema_migrations, each in its own transaction, under an advisory
 * lock so replicas starting together apply each one once. */
oms_status pg_migrate(PGconn *c, const char *schema, const pg_migration *service_migrations);

/* Classifies a failed result: OMS_ETRANSIENT when the connection is gone or
 * the statement lost a race (serialization failure, deadlock, shutdown),
 * OMS_EDB otherwise. Logs the error with what. Does not clear res. */
oms_status pg_error(PGconn *c, const PGresult *res, const char *what);

/* Settings for a transaction of keyed statements (lookups and joins by
 * primary key, `= ANY($1)`, `FROM unnest(...)`), run after BEGIN. Tables
 * filled from empty keep the statistics of their first rows until
 * autovacuum analyzes them, and the planner then reads them by sequential
 * scans and hash joins whose cost grows with the table (measured: the
 * orders of the status consumers, 24 rows read per order; the reservation
 * lock, ~560). A keyed statement always wants the index. SET LOCAL ends
 * with the transaction. No JIT: a plan left with a disabled node costs 1e10
 * and would be compiled (~200 ms per statement). */
#define PG_KEYED_PLANS                                                 \
    "SET LOCAL enable_seqscan = off; SET LOCAL enable_hashjoin = off;" \
    " SET LOCAL enable_mergejoin = off; SET LOCAL jit = off"

/* Runs a statement without parameters; OMS_OK when it succeeded. */
oms_status pg_exec(PGconn *c, const char *sql);

/* Runs a parameterised statement (text parameters) and checks it returned
 * expect (PGRES_COMMAND_OK or PGRES_TUPLES_OK). On success *out (if not NULL)
 * receives the result, which the caller clears; on failure nothing is returned. */
oms_status pg_query(PGconn *c, const char *what, const char *sql, int n_params,
                    const char *const *params, ExecStatusType expect, PGresult **out);

/* True when the connection is usable. */
bool pg_ok(PGconn *c);

/* Ends c's open or failed transaction with ROLLBACK; a no-op when c is NULL,
 * idle or broken. For cleanup paths: a ROLLBACK that fails leaves a broken
 * connection, which the next pg_ok reports. */
void pg_rollback(PGconn *c);

/* One PostgreSQL array literal ("{...}") built element by element, for a
 * $n::text[] / $n::bigint[] parameter: every element is double-quoted with
 * '"' and '\\' backslash-escaped, so commas, braces, blanks and the word NULL
 * stay text; a NULL element is written as an unquoted SQL NULL. Caller
 * allocates; pg_array_fini frees. Adds return OMS_ENOMEM and leave a unchanged. */
typedef struct pg_array {
    char *data;
    size_t len, cap;
    size_t count;
} pg_array;

void pg_array_init(pg_array *a);
/* Borrows element (NULL for SQL NULL); the literal keeps its own copy. */
oms_status pg_array_add(pg_array *a, const char *element);
oms_status pg_array_add_int(pg_array *a, int64_t v);
/* Returns the literal ("{...}"), owned by a and valid until the next add,
 * reset or fini; NULL when out of memory. */
const char *pg_array_literal(pg_array *a);
void pg_array_reset(pg_array *a);
void pg_array_fini(pg_array *a);

/* The parallel columns of UPDATE/INSERT ... FROM unnest($1::text[], $2::bigint[],
 * ...): one pg_array per column, appended row by row. The first failed add is
 * remembered, so a caller appends a whole row unchecked and learns of it from
 * pg_cols_params or pg_cols_query. Caller allocates; pg_cols_fini frees. */
#define PG_COLS_MAX 24

typedef struct pg_cols {
    size_t n_cols;
    oms_status status; /* first failed add, OMS_OK while none failed */
    pg_array col[PG_COLS_MAX];
    const char *params[PG_COLS_MAX];
} pg_cols;

/* Prepares n_cols (at most PG_COLS_MAX) empty columns. */
void pg_cols_init(pg_cols *c, size_t n_cols);
/* Append one value to column col; v is borrowed (copied), NULL is SQL NULL.
 * A row is complete once each column has had one value. */
oms_status pg_cols_text(pg_cols *c, size_t col, const char *v);
oms_status pg_cols_int(pg_cols *c, size_t col, int64_t v);
oms_status pg_cols_bool(pg_cols *c, size_t col, bool v);
/* Rows appended so far (the count of the first column). */
size_t pg_cols_rows(const pg_cols *c);
/* The n_cols literals as paramValues, owned by c and valid until the next add,
 * reset or fini; NULL when an add or the rendering ran out of memory. */
const char *const *pg_cols_params(pg_cols *c);
/* pg_query with the columns as $1..$n_cols; OMS_ENOMEM when they could not be
 * built (nothing is sent then). */
oms_status pg_cols_query(PGconn *conn, const char *what, const char *sql, pg_cols *c,
                         ExecStatusType expect, PGresult **out);
/* Empties every column for reuse, keeping their memory. */
void pg_cols_reset(pg_cols *c);
void pg_cols_fini(pg_cols *c);

/* Runs sql (parameterised) through a server-side cursor inside the caller's
 * open transaction and calls fn for each page of up to page_rows rows, so a
 * result of any size is read in bounded memory. fn returns OMS_OK to go on. */
typedef oms_status (*pg_page_fn)(void *ctx, PGresult *page);
oms_status pg_cursor_each(PGconn *c, const char *sql, int n_params, const char *const *params,
                          int page_rows, pg_page_fn fn, void *ctx);
#endif
