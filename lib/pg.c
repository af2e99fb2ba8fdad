/*
 * pg.c - libpq wrappers shared by every service.
 */
#include "pg.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

oms_status pg_error(PGconn *c, const PGresult *res, const char *what)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(c);
    bool transient = PQstatus(c) != CONNECTION_OK || state == NULL ||
                     strncmp(state, "08", 2) == 0 ||  /* connection exception */
                     strcmp(state, "40001") == 0 ||   /* serialization failure */
                     strcmp(state, "40P01") == 0 ||   /* deadlock detected */
                     strncmp(state, "57P", 3) == 0 || /* admin shutdown, crash */
                     strcmp(state, "53300") == 0;     /* too many connections */
    char buf[512], stmt[96];
    snprintf(buf, sizeof buf, "%s", msg ? msg : "");
    buf[strcspn(buf, "\n")] = '\0';
    /* what may be a whole statement: its first line is enough to find it. */
    snprintf(stmt, sizeof stmt, "%s", what);
    stmt[strcspn(stmt, "\n")] = '\0';
    log_warn("postgres statement failed", "what", stmt, "sqlstate", state ? state : "", "error",
             buf, "transient", transient ? "true" : "false", NULL);
    return transient ? OMS_ETRANSIENT : OMS_EDB;
}

bool pg_ok(PGconn *c)
{
    return c != NULL && PQstatus(c) == CONNECTION_OK;
}

void pg_rollback(PGconn *c)
{
    PGTransactionStatusType t = c ? PQtransactionStatus(c) : PQTRANS_UNKNOWN;
    if (t == PQTRANS_INTRANS || t == PQTRANS_INERROR)
        PQclear(PQexec(c, "ROLLBACK"));
}

oms_status pg_exec(PGconn *c, const char *sql)
{
    /* The simple protocol: allows several statements (migrations). */
    PGresult *res = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(res);
    oms_status s = OMS_OK;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        s = pg_error(c, res, sql);
    PQclear(res);
    return s;
}

oms_status pg_query(PGconn *c, const char *what, const char *sql, int n_params,
                    const char *const *params, ExecStatusType expect, PGresult **out)
{
    PGresult *res = PQexecParams(c, sql, n_params, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != expect && !(expect == PGRES_COMMAND_OK && st == PGRES_TUPLES_OK)) {
        oms_status s = pg_error(c, res, what);
        PQclear(res);
        return s;
    }
    if (out != NULL)
        *out = res;
    else
        PQclear(res);
    return OMS_OK;
}

static bool schema_name_ok(const char *schema)
{
    /* Schema names are interpolated into SET search_path: allow only [a-z_]. */
    if (*schema == '\0')
        return false;
    for (const char *p = schema; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || *p == '_'))
            return false;
    return true;
}

/* PostgreSQL's NOTICEs ("schema already exists") are not ours to print:
 * libpq's default writes them raw to stderr, which would break the JSON logs. */
static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

oms_status pg_connect(PGconn **out, const char *dsn, const char *schema, const char *app)
{
    const char *keys[] = {"dbname", "application_name", "connect_timeout", NULL};
    const char *values[] = {dsn, app, "5", NULL};
    char sql[160];
    oms_status s = OMS_OK;

    if (!schema_name_ok(schema))
        return OMS_EINVAL;
    PGconn *c = PQconnectdbParams(keys, values, 1);
    if (PQstatus(c) != CONNECTION_OK) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", PQerrorMessage(c));
        buf[strcspn(buf, "\n")] = '\0';
        log_warn("cannot connect to PostgreSQL", "error", buf, NULL);
        s = OMS_ETRANSIENT;
        goto out;
    }
    PQsetNoticeProcessor(c, ignore_notice, NULL);
    snprintf(sql, sizeof sql, "CREATE SCHEMA IF NOT EXISTS %s", schema);
    if ((s = pg_exec(c, sql)) != OMS_OK)
        goto out;
    snprintf(sql, sizeof sql, "SET search_path TO %s", schema);
    if ((s = pg_exec(c, sql)) != OMS_OK)
        goto out;
    *out = c;
    c = NULL;
out:
    PQfinish(c);
    return s;
}

static oms_status migration_applied(PGconn *c, const char *version, bool *applied)
{
    const char *params[] = {version};
    PGresult *res = NULL;
    oms_status s = pg_query(c, "check migration",
                            "SELECT 1 FROM schema_migrations WHERE version = $1", 1, params,
                            PGRES_TUPLES_OK, &res);
    if (s == OMS_OK)
        *applied = PQntuples(res) > 0;
    PQclear(res);
    return s;
}

static oms_status apply_one(PGconn *c, const char *prefix, const pg_migration *m)
{
    char version[128];
    bool applied = false;
    oms_status s;

    snprintf(version, sizeof version, "%s/%s", prefix, m->name);
    if ((s = migration_applied(c, version, &applied)) != OMS_OK || applied)
        return s;
    if ((s = pg_exec(c, "BEGIN")) != OMS_OK)
        return s;
    const char *params[] = {version};
    if ((s = pg_exec(c, m->sql)) != OMS_OK ||
        (s = pg_query(c, "record migration", "INSERT INTO schema_migrations(version) VALUES ($1)",
                      1, params, PGRES_COMMAND_OK, NULL)) != OMS_OK ||
        (s = pg_exec(c, "COMMIT")) != OMS_OK) {
        pg_rollback(c);
        log_error("migration failed", "version", version, NULL);
        return s;
    }
    log_info("migration applied", "version", version, NULL);
    return OMS_OK;
}

oms_status pg_migrate(PGconn *c, const char *schema, const pg_migration *service_migrations)
{
    const char *params[] = {schema};
    oms_status s;

    /* Session-level lock keyed by the schema: a second replica waits here and
     * then finds every migration recorded. */
    if ((s = pg_query(c, "migration lock",
                      "SELECT pg_advisory_lock(hashtext('oms:migrate:' || $1))", 1, params,
                      PGRES_TUPLES_OK, NULL)) != OMS_OK)
        return s;
    s = pg_exec(c, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                   " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())");
    for (const pg_migration *m = oms_runtime_migrations; s == OMS_OK && m->name; m++)
        s = apply_one(c, "runtime", m);
    for (const pg_migration *m = service_migrations; s == OMS_OK && m && m->name; m++)
        s = apply_one(c, schema, m);
    oms_status unlock = pg_query(c, "migration unlock",
                                 "SELECT pg_advisory_unlock(hashtext('oms:migrate:' || $1))", 1,
                                 params, PGRES_TUPLES_OK, NULL);
    return s != OMS_OK ? s : unlock;
}

void pg_array_init(pg_array *a)
{
    memset(a, 0, sizeof *a);
}

static oms_status array_reserve(pg_array *a, size_t extra)
{
    if (a->len + extra + 3 <= a->cap)
        return OMS_OK;
    size_t cap = a->cap ? a->cap * 2 : 256;
    while (cap < a->len + extra + 3)
        cap *= 2;
    char *d = realloc(a->data, cap);
    if (d == NULL)
        return OMS_ENOMEM;
    if (a->data == NULL)
        d[0] = '{', a->len = 1;
    a->data = d;
    a->cap = cap;
    return OMS_OK;
}

oms_status pg_array_add(pg_array *a, const char *element)
{
    if (element == NULL) {
        /* Unquoted: "NULL" in quotes is the four-letter text. */
        if (array_reserve(a, 5) != OMS_OK)
            return OMS_ENOMEM;
        if (a->count > 0)
            a->data[a->len++] = ',';
        memcpy(a->data + a->len, "NULL", 4);
        a->len += 4;
        a->count++;
        return OMS_OK;
    }
    size_t n = strlen(element);
    /* Worst case every byte is escaped, plus quotes and a comma. */
    if (array_reserve(a, 2 * n + 3) != OMS_OK)
        return OMS_ENOMEM;
    if (a->count > 0)
        a->data[a->len++] = ',';
    a->data[a->len++] = '"';
    for (size_t i = 0; i < n; i++) {
        if (element[i] == '"' || element[i] == '\\')
            a->data[a->len++] = '\\';
        a->data[a->len++] = element[i];
    }
    a->data[a->len++] = '"';
    a->count++;
    return OMS_OK;
}

oms_status pg_array_add_int(pg_array *a, int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%lld", (long long)v);
    return pg_array_add(a, buf);
}

const char *pg_array_literal(pg_array *a)
{
    if (array_reserve(a, 0) != OMS_OK)
        return NULL;
    a->data[a->len] = '}';
    a->data[a->len + 1] = '\0';
    return a->data;
}

void pg_array_reset(pg_array *a)
{
    if (a->data != NULL)
        a->len = 1;
    a->count = 0;
}

void pg_array_fini(pg_array *a)
{
    free(a->data);
    pg_array_init(a);
}

void pg_cols_init(pg_cols *c, size_t n_cols)
{
    memset(c, 0, sizeof *c);
    c->n_cols = n_cols <= PG_COLS_MAX ? n_cols : PG_COLS_MAX;
}

/* Keeps the first failure: a later add must not hide a lost value. */
static oms_status cols_note(pg_cols *c, oms_status s)
{
    if (c->status == OMS_OK)
        c->status = s;
    return s;
}

oms_status pg_cols_text(pg_cols *c, size_t col, const char *v)
{
    if (col >= c->n_cols)
        return cols_note(c, OMS_EINVAL);
    return cols_note(c, pg_array_add(&c->col[col], v));
}

oms_status pg_cols_int(pg_cols *c, size_t col, int64_t v)
{
    if (col >= c->n_cols)
        return cols_note(c, OMS_EINVAL);
    return cols_note(c, pg_array_add_int(&c->col[col], v));
}

oms_status pg_cols_bool(pg_cols *c, size_t col, bool v)
{
    return pg_cols_text(c, col, v ? "t" : "f");
}

size_t pg_cols_rows(const pg_cols *c)
{
    return c->n_cols > 0 ? c->col[0].count : 0;
}

const char *const *pg_cols_params(pg_cols *c)
{
    if (c->status != OMS_OK)
        return NULL;
    for (size_t k = 0; k < c->n_cols; k++)
        if ((c->params[k] = pg_array_literal(&c->col[k])) == NULL)
            return NULL;
    return c->params;
}

oms_status pg_cols_query(PGconn *conn, const char *what, const char *sql, pg_cols *c,
                         ExecStatusType expect, PGresult **out)
{
    const char *const *params = pg_cols_params(c);
    if (params == NULL)
        return c->status != OMS_OK ? c->status : OMS_ENOMEM;
    return pg_query(conn, what, sql, (int)c->n_cols, params, expect, out);
}

void pg_cols_reset(pg_cols *c)
{
    for (size_t k = 0; k < c->n_cols; k++)
        pg_array_reset(&c->col[k]);
    c->status = OMS_OK;
}

void pg_cols_fini(pg_cols *c)
{
    for (size_t k = 0; k < c->n_cols; k++)
        pg_array_fini(&c->col[k]);
    pg_cols_init(c, c->n_cols);
}

oms_status pg_cursor_each(PGconn *c, const char *sql, int n_params, const char *const *params,
                          int page_rows, pg_page_fn fn, void *ctx)
{
    size_t len = strlen(sql) + 64;
    char *declare = malloc(len);
    char fetch[64];
    oms_status s;

    if (declare == NULL)
        return OMS_ENOMEM;
    snprintf(declare, len, "DECLARE oms_cursor NO SCROLL CURSOR FOR %s", sql);
    snprintf(fetch, sizeof fetch, "FETCH %d FROM oms_cursor", page_rows);
    s = pg_query(c, "cursor declare", declare, n_params, params, PGRES_COMMAND_OK, NULL);
    free(declare);
    while (s == OMS_OK) {
        PGresult *page = NULL;
        if ((s = pg_query(c, "cursor fetch", fetch, 0, NULL, PGRES_TUPLES_OK, &page)) != OMS_OK)
            break;
        int rows = PQntuples(page);
        if (rows > 0)
            s = fn(ctx, page);
        PQclear(page);
        if (rows < page_rows)
            break;
    }
    if (s == OMS_OK)
        s = pg_exec(c, "CLOSE oms_cursor");
    return s;
}
