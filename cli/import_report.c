/*
 * import_report.c - what `omsctl import` prints when it stops waiting: a
 * summary for a person, one JSON object for a script, and on stderr why the
 * wait ended early.
 *
 * The row and order counts are ingest's (import.completed) once the import
 * completed, and what was seen on the way before; the paid and failed counts
 * are always the order.paid / order.failed events seen.
 */
#include "import.h"

#include "money.h"

#include <string.h>

#define MONEY_LEN 64

int64_t import_in_flight(const import_outcome *o)
{
    int64_t orders = o->completed ? o->orders : o->orders_seen;
    int64_t in_flight = orders - o->paid - o->failed;
    return in_flight > 0 ? in_flight : 0;
}

/* "1,234.56 USD", or "1,234.56" when no event named the currency. */
static void format_revenue(const import_outcome *o, char *out, size_t out_len)
{
    if (o->currency[0] != '\0')
        money_format_currency(o->revenue_cents, o->currency, out, out_len);
    else
        money_format(o->revenue_cents, out, out_len);
}

/* ---- JSON -------------------------------------------------------------- */

static json_t *rejections_json(const import_outcome *o)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < o->n_rejections; i++) {
        const import_rejection *r = &o->rejections[i];
        json_array_append_new(arr, json_pack("{s:i,s:s,s:s,s:s}", "row", (int)r->row, "order_id",
                                             r->order_id, "field", r->field, "reason", r->reason));
    }
    return arr;
}

static json_t *failures_json(const import_outcome *o)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < o->n_failures; i++)
        json_array_append_new(arr, json_pack("{s:s,s:s}", "order_id", o->failures[i].order_id,
                                             "reason", o->failures[i].reason));
    return arr;
}

/* The members beyond the import's own, added to out: completed_s (the time
 * to import.completed; elapsed_s covers the whole wait) and the lifecycle.
 * in_flight is null when the orders were not followed (--no-follow, or the
 * import never completed). */
static oms_status add_lifecycle_json(json_t *out, const import_summary *s)
{
    const import_outcome *o = &s->o;
    bool followed = s->follow && o->completed;
    json_t *lc = json_pack("{s:o,s:I,s:I,s:I,s:I,s:I,s:s?,s:o,s:o}", "completed_s",
                           o->completed ? json_real(s->completed_s) : json_null(), "paid",
                           (json_int_t)o->paid, "failed", (json_int_t)o->failed,
                           "failed_out_of_stock", (json_int_t)o->failed_out_of_stock,
                           "failed_payment", (json_int_t)o->failed_payment, "revenue_cents",
                           (json_int_t)o->revenue_cents, "currency",
                           o->currency[0] ? o->currency : NULL, "failures", failures_json(o),
                           "in_flight", followed ? json_integer(import_in_flight(o)) : json_null());
    oms_status st = lc != NULL && json_object_update(out, lc) == 0 ? OMS_OK : OMS_ENOMEM;
    json_decref(lc);
    return st;
}

oms_status import_print_json(const import_summary *s)
{
    const import_outcome *o = &s->o;
    json_int_t rows = o->completed ? o->rows : s->rows_sent;
    json_t *out = json_pack("{s:s,s:I,s:o,s:I,s:I,s:o,s:b,s:b,s:o,s:f}", "import_id", s->import_id,
                            "rows", rows, "valid_rows",
                            o->completed ? json_integer(o->valid_rows) : json_null(),
                            "rejected_rows",
                            (json_int_t)(o->completed ? o->rejected_rows : o->rejections_seen),
                            "orders", (json_int_t)(o->completed ? o->orders : o->orders_seen),
                            "missing_rows",
                            o->completed ? json_integer(o->missing_rows) : json_null(), "timed_out",
                            o->completed ? o->timed_out : true, "completed", o->completed,
                            "rejections", rejections_json(o), "elapsed_s", s->elapsed_s);
    if (out != NULL && s->ignored != NULL && *s->ignored != '\0')
        json_object_set_new(out, "ignored_columns", json_string(s->ignored));
    if (out != NULL && s->id_prefix != NULL)
        json_object_set_new(out, "generated_order_id_prefix", json_string(s->id_prefix));
    if (out != NULL && add_lifecycle_json(out, s) != OMS_OK) {
        json_decref(out);
        out = NULL;
    }
    return cli_print_json(out);
}

/* ---- text -------------------------------------------------------------- */

static void print_rejections(const import_outcome *o)
{
    printf("  rejected rows   %d\n", o->rejected_rows);
    for (size_t i = 0; i < o->n_rejections; i++)
        printf("    %s\n", o->rejections[i].reason);
    if (o->rejected_rows > (int32_t)o->n_rejections)
        printf("    ... and %lld more\n", (long long)o->rejected_rows - (long long)o->n_rejections);
}

static void print_failures(const import_outcome *o)
{
    int64_t other = o->failed - o->failed_out_of_stock - o->failed_payment;
    printf("  failed          %lld", (long long)o->failed);
    if (o->failed > 0) {
        printf(" (%lld out of stock, %lld payment failed", (long long)o->failed_out_of_stock,
               (long long)o->failed_payment);
        if (other > 0)
            printf(", %lld other", (long long)other);
        putchar(')');
    }
    putchar('\n');
    for (size_t i = 0; i < o->n_failures; i++)
        printf("    %s: %s\n", o->failures[i].order_id, o->failures[i].reason);
    if (o->failed > (int64_t)o->n_failures)
        printf("    ... and %lld more\n", (long long)(o->failed - (int64_t)o->n_failures));
}

static void print_lifecycle(const import_summary *s)
{
    const import_outcome *o = &s->o;
    char revenue[MONEY_LEN];
    double settle_s = s->elapsed_s;
    format_revenue(o, revenue, sizeof revenue);
    printf("  paid            %lld\n", (long long)o->paid);
    print_failures(o);
    printf("  revenue         %s\n", revenue);
    if (s->settled)
        printf("  settled in      %.1f s (%.0f orders/s)\n", settle_s,
               settle_s > 0 ? (double)(o->paid + o->failed) / settle_s : 0.0);
    else
        printf("  in flight       %lld (neither paid nor failed yet)\n",
               (long long)import_in_flight(o));
}

void import_print_text(const import_summary *s)
{
    const import_outcome *o = &s->o;
    printf("import %s completed in %.1f s (%.0f rows/s)\n", s->import_id, s->completed_s,
           s->completed_s > 0 ? o->rows / s->completed_s : 0.0);
    printf("  rows            %d\n", o->rows);
    printf("  valid rows      %d\n", o->valid_rows);
    print_rejections(o);
    printf("  orders created  %d\n", o->orders);
    if (s->id_prefix != NULL)
        printf("  order ids       generated: %sROW, ROW the file's line (row 2 is %s2)\n",
               s->id_prefix, s->id_prefix);
    if (s->ignored != NULL && *s->ignored != '\0')
        printf("  ignored columns %s\n", s->ignored);
    if (o->missing_rows > 0 || o->timed_out)
        printf("  missing rows    %d (announced but never received: ingest sealed the import "
               "when it timed out)\n",
               o->missing_rows);
    if (s->follow)
        print_lifecycle(s);
}

/* ---- stopping early ---------------------------------------------------- */

static void print_not_completed(const import_summary *s, long long timeout_s)
{
    if (cli_interrupted)
        cli_error("stopped waiting: import %s was sent (%lld rows) but has not completed yet",
                  s->import_id, (long long)s->rows_sent);
    else
        cli_error("import %s was sent (%lld rows) but did not complete within %lld s", s->import_id,
                  (long long)s->rows_sent, timeout_s);
    fprintf(stderr,
            "ingest may still be working on it: `omsctl events tail import.completed` shows "
            "it when it completes;\n`omsctl status` shows what INGEST still holds, and "
            "`omsctl dlq list --service ingest` any chunk ingest could not apply\n");
}

static void print_in_flight(const import_summary *s, long long timeout_s)
{
    const import_outcome *o = &s->o;
    int64_t in_flight = import_in_flight(o);
    if (cli_interrupted)
        cli_error("stopped waiting: %lld of the %d orders of import %s are still in flight "
                  "(neither paid nor failed)",
                  (long long)in_flight, o->orders, s->import_id);
    else
        cli_error("%lld of the %d orders of import %s are still in flight (neither paid nor "
                  "failed) after %lld s",
                  (long long)in_flight, o->orders, s->import_id, timeout_s);
    if (s->dropped > 0)
        cli_error("%lld order.paid/order.failed events were dropped because omsctl could not "
                  "keep up: the paid and failed counts are short",
                  (long long)s->dropped);
    fprintf(stderr, "inventory and payment may still be working on them: `omsctl status` shows the "
                    "consumers' backlog and dead letters,\n`omsctl order show ORDER_ID` where one "
                    "order stands; --no-follow stops once the import completed\n");
}

void import_print_unfinished(const import_summary *s, long long timeout_s)
{
    if (!s->o.completed)
        print_not_completed(s, timeout_s);
    else if (s->follow && !s->settled)
        print_in_flight(s, timeout_s);
}
