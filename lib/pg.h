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

/* Appends v to buf as a PostgreSQL text array literal element list, e.g. for
 * building "{a,b}" parameters: quotes and escapes the element. */
typedef struct pg_array {
    char *data;
    size_t len, cap;
    size_t count;
} pg_array;

void pg_array_init(pg_array *a);
oms_status pg_array_add(pg_array *a, const char *element);
oms_status pg_array_add_int(pg_array *a, int64_t v);
/* Returns the literal ("{...}"); valid until the next add or fini. */
const char *pg_array_literal(pg_array *a);
void pg_array_reset(pg_array *a);
void pg_array_fini(pg_array *a);


/* Runs sql (parameterised) through a server-side cursor inside the caller's
 * open transaction and calls fn for each page of up to page_rows rows, so a
 * result of any size is read in bounded memory. fn returns OMS_OK to go on. */
typedef oms_status (*pg_page_fn)(void *ctx, PGresult *page);
oms_status pg_cursor_each(PGconn *c, const char *sql, int n_params, const char *const *params,
                          int page_rows, pg_page_fn fn, void *ctx);
#endif
